//! The forms real ResNets come out of exporters in (`tests/fixtures/README.md`, "Export forms"):
//! torch.export's head and dynamic batch, external data, squeeze-excitation gates, timm's
//! average-pool shortcut, pre-activation blocks, opset 11 with initializers listed as inputs.
//! Each must load, compute what the numpy interpreter computes, and conserve relevance.

use ndarray::ArrayD;
use ndarray_npy::read_npy;
use resnet_lrp::external::SideFiles;
use resnet_lrp::model::BatchPlan;
use resnet_lrp::{Model, Start, Target, Variant, VARIANTS};

use crate::models::{check_gradient, lrp, root};
use crate::session::cli;

const ZOO: [&str; 7] =
    ["dynamo_head", "dynamo_batch", "external_data", "se_basic", "avg_down", "preact", "opset11_inputs"];

fn bytes(file: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures").join(file)).unwrap()
}

/// The fixture's side files: `<name>.onnx.data` where the generator wrote one.
fn side(name: &str) -> SideFiles {
    let data = format!("{name}.onnx.data");
    let files = root().join("tests/fixtures").join(&data).exists().then(|| (data.clone(), bytes(&data)));
    SideFiles::from_files(files)
}

fn zoo(name: &str) -> (Model, ArrayD<f32>) {
    let model =
        Model::from_onnx(&bytes(&format!("{name}.onnx")), &mut side(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let x: ArrayD<f32> = read_npy(root().join(format!("tests/fixtures/{name}.input.npy"))).unwrap();
    (model, x)
}

/// max |a − b| / max |b|.
fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-12);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn export_forms_compute_what_numpy_computes() {
    for name in ZOO {
        let (model, x) = zoo(name);
        let numpy: ArrayD<f32> = read_npy(root().join(format!("tests/fixtures/{name}.logits.npy"))).unwrap();
        // float32 through ≤ 12 layers against float64: the other fixtures agree to ~1e-6 of max|logit|
        let tract = model.run(&x).unwrap();
        let e = rel_error(&tract, numpy.as_slice().unwrap());
        assert!(e < 1e-4, "{name}: tract vs numpy: {e:.2e}");
        // our layer graph, layer by layer on our kernels, computes the same function
        let acts = model.explainer().forward_layer_by_layer(x).unwrap();
        let ours: Vec<f32> = acts.value(model.graph().output).iter().copied().collect();
        let e = rel_error(&ours, numpy.as_slice().unwrap());
        assert!(e < 1e-4, "{name}: layer graph vs numpy: {e:.2e}");
    }
}

#[test]
fn export_forms_conserve_for_every_variant() {
    for name in ZOO {
        let (model, x) = zoo(name);
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        for variant in VARIANTS {
            for start in [Start::Probability, Start::Logit] {
                let e = ex.explain(&acts, Target::Top1, start, &lrp("conserving", variant)).unwrap();
                // the other fixtures measure ~1e-7; 1e-4 is the README's promise
                assert!(
                    e.conservation_error() <= 1e-4,
                    "{name} {variant:?} {start:?}: Σ R_in {} vs start {}",
                    e.input_relevance_sum(),
                    e.start_relevance
                );
                // relevance reached the pixels: a gate or a head that swallowed it would conserve nothing
                assert!(e.relevance.iter().any(|v| *v != 0.0), "{name}: no relevance at the input");
            }
        }
    }
}

#[test]
fn a_symbolic_batch_runs_in_batches() {
    let (model, x) = zoo("dynamo_batch");
    let mut side = SideFiles::none();
    let plan = BatchPlan::from_onnx(&model, &bytes("dynamo_batch.onnx"), &mut side, 3).unwrap();
    let other = x.mapv(|v| 0.5 * v + 0.1);
    let out = plan.run(&[x.clone(), other.clone()]).unwrap();
    for (img, batched) in [x, other].iter().zip(&out) {
        assert!(rel_error(batched, &model.run(img).unwrap()) < 1e-5);
    }
}

#[test]
fn external_data_errors_name_the_side_file() {
    let onnx = bytes("external_data.onnx");
    let e = Model::from_onnx_bytes(&onnx).unwrap_err().to_string();
    assert!(e.contains("`external_data.onnx.data`") && e.contains("not given"), "{e}");
    let mut data = bytes("external_data.onnx.data");
    data.truncate(data.len() - 4);
    let e = Model::from_onnx(&onnx, &mut SideFiles::from_files([("external_data.onnx.data".into(), data)]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`external_data.onnx.data`") && e.contains("bytes"), "{e}");
}

/// The squeeze-excitation gate is a constant scale of its branch: relevance goes through the gated
/// branch, unchanged by the multiplication, and none into the gate's own path (its pooling, 1×1
/// convolutions and sigmoid get nothing).
#[test]
fn squeeze_excitation_gates_pass_relevance_to_the_branch_only() {
    let (model, x) = zoo("se_basic");
    let g = model.graph();
    let gates: Vec<usize> = (0..g.nodes.len()).filter(|&i| g.nodes[i].layer.kind() == "gate").collect();
    assert_eq!(gates.len(), 4, "one gate per block");
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    let e = ex.explain(&acts, Target::Top1, Start::Logit, &lrp("conserving", Variant::FlowsSkip)).unwrap();
    let ledger = |name: &str| e.ledger.iter().find(|l| l.node == name).map(|l| l.relevance);
    for &i in &gates {
        let gate = &g.nodes[i];
        let (branch, path) = (&g.nodes[gate.inputs[0]], &g.nodes[gate.inputs[1]]);
        let (at_gate, at_branch) = (ledger(&gate.name).unwrap(), ledger(&branch.name).unwrap());
        assert!(
            (at_gate - at_branch).abs() <= 1e-6 * at_gate.abs().max(1.0),
            "{}: {at_gate} vs {at_branch}",
            gate.name
        );
        assert_eq!(ledger(&path.name), None, "{}: the gate's path got relevance", gate.name);
    }
}

/// Gradient × input differentiates through the gate's path too (the gate depends on the branch).
#[test]
fn gradient_through_squeeze_excitation_matches_finite_differences() {
    let (model, x) = zoo("se_basic");
    check_gradient(&model, &x, [[0, 0, 10, 10], [0, 1, 31, 40], [0, 2, 50, 5]]);
}

/// The generator writes every residual addition as `Add(main, shortcut)`, projections named
/// `…downsample…` or `…shortcut…`: the analysis must find input 1 and the right kind everywhere,
/// through squeeze-excitation gates (whose path also reads the branch), timm's pooled projections
/// and pre-activation blocks (whose identity shortcut is the previous block's sum).
#[test]
fn shortcuts_are_identified_in_every_export_form() {
    for name in ZOO {
        let (model, _) = zoo(name);
        let residuals = resnet_lrp::lrp::residuals(model.graph());
        assert!(residuals.len() >= 3, "{name}: {} residual additions", residuals.len());
        for r in residuals {
            assert_eq!(r.shortcut_input, Some(1), "{name} {}: shortcut {:?}", r.node, r.shortcut);
            let shortcut = r.shortcut.as_deref().unwrap_or_default();
            let projection = shortcut.contains("downsample") || shortcut.contains("shortcut");
            assert_eq!(r.projection, projection, "{name} {}: shortcut `{shortcut}`", r.node);
        }
        let gates = resnet_lrp::lrp::gates(model.graph());
        assert_eq!(gates.len(), if name == "se_basic" { 4 } else { 0 }, "{name}");
    }
}

/// The command line reads a model's side files from the model's directory (not the working
/// directory), refuses a model whose side file is not there naming it, and `info` lists the
/// residual additions and the gates.
#[test]
fn cli_reads_side_files_beside_the_model_and_lists_the_structure() {
    let fixtures = root().join("tests/fixtures");
    let path = |f: &str| fixtures.join(f).to_string_lossy().into_owned();
    let (model, input) = (path("external_data.onnx"), path("external_data.input.npy"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_resnet-lrp"))
        .args(["explain", "--model", &model, "--input-npy", &input, "--json"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let logits: Vec<f32> = out["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let numpy: ArrayD<f32> = read_npy(fixtures.join("external_data.logits.npy")).unwrap();
    assert!(rel_error(&logits, numpy.as_slice().unwrap()) < 1e-4);

    let alone = std::env::temp_dir().join(format!("resnet-lrp-alone-{}", std::process::id()));
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(fixtures.join("external_data.onnx"), alone.join("external_data.onnx")).unwrap();
    let (ok, _, err) = cli(&["info", "--model", &alone.join("external_data.onnx").to_string_lossy()]);
    std::fs::remove_dir_all(&alone).unwrap();
    assert!(!ok && err.contains("`external_data.onnx.data`") && err.contains("not given"), "{err}");

    let (ok, out, err) = cli(&["info", "--model", &path("se_basic.onnx")]);
    assert!(ok, "{err}");
    assert!(out.contains("residual additions: 4"), "{out}");
    assert!(out.contains("layer2.0.add: projection shortcut = input 1 (`layer2.0.downsample.1`)"), "{out}");
    assert!(out.contains("squeeze-excitation gates: 4"), "{out}");
    assert!(out.contains("layer1.0.se.mul: branch `layer1.0.bn2` × gate `layer1.0.se.gate`"), "{out}");
}
