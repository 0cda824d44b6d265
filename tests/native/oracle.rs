//! The `conserving` composite against the independent float64 numpy oracle
//! (`tests/reference/authors_lrp.py --composite conserving`), whole maps, every fixture and
//! splitting variant; and BN-kept files against their BN-folded twins.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use ndarray::{ArrayD, Axis, Slice};
use ndarray_npy::{read_npy, write_npy};
use resnet_lrp::{Start, Target, Variant, VARIANTS};

use crate::models::{fixture, lrp, root, FIXTURES};

/// Largest |engine − oracle| allowed, as a fraction of max |R_oracle|, for the splitting variants
/// whose shares lie in [0, 1] (ratio, half, main only).
///
/// The engine computes in float32, the oracle in float64 on the same float32 weights and input,
/// so the difference is the engine's rounding: about 20 weighted layers, each a sum of up to
/// 3·3·64 = 576 products, rounded at 2⁻²⁴ ≈ 6e-8; such rounding errors grow like √n per layer
/// (≈ 1.5e-6 at worst) and partly cancel over the depth. Measured worst case over every fixture,
/// input and variant: 9.9e-7 (`bottleneck_nhwc`, `latest`), so 4e-6 leaves a margin of 4 for
/// other CPUs' kernels. What the test must tell apart moves the map far more (measured with the
/// oracle, float64 against itself): a max-pool tie sent to the last maximum instead of the first,
/// 0.85–0.96 of max on the zero inputs; the flat fallback dropped, 3e-3–0.6; ε = 10⁻⁵ added to
/// every z⁺ denominator, 6.6e-6 on `basic_bn` (more elsewhere); z⁺ on the unfolded weights of a
/// negative-γ file, 1.5e-2–1.1.
const TOLERANCE: f64 = 4e-6;

/// The same for the `conventional` variant. Its signed split `m / (s + m)` multiplies the relative
/// rounding error of `s` and `m` by `(|s| + |m|) / |s + m|`, which is large where the two branches
/// nearly cancel: measured worst case 3.3e-5 (`basic_bn`, lower half zeroed), so 1e-4 (a margin
/// of 3). The stabiliser is what this variant is checked for: zennit's `10⁻⁶` against the `10⁻⁹`
/// used before moved `bottleneck_nhwc` by 8.1e-5.
const TOLERANCE_CONVENTIONAL: f64 = 1e-4;

fn tolerance(variant: Variant) -> f64 {
    if variant == Variant::Conventional {
        TOLERANCE_CONVENTIONAL
    } else {
        TOLERANCE
    }
}

/// Runs the oracle once for all variants on fixture `name` with input `input` (an `.npy` file);
/// returns the map of each variant.
fn oracle(name: &str, input: &Path, composite: &str, dir: &Path) -> HashMap<String, ArrayD<f32>> {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "needs the Python venv with numpy + onnx: run ./build.sh setup");
    let stem = input.file_stem().unwrap().to_string_lossy();
    let pattern = dir.join(format!("{stem}.{composite}.{{variant}}.npy"));
    let status = Command::new(&python)
        .arg(root().join("tests/reference/authors_lrp.py"))
        .args(["--model", &root().join(format!("tests/fixtures/{name}.onnx")).to_string_lossy()])
        .args(["--input-npy", &input.to_string_lossy()])
        .args(["--composite", composite, "--variant", "all", "--out", &pattern.to_string_lossy()])
        .status()
        .unwrap();
    assert!(status.success(), "authors_lrp.py failed on {name}");
    VARIANTS
        .iter()
        .map(|v| {
            let path = pattern.to_string_lossy().replace("{variant}", v.name());
            (v.name().to_string(), read_npy(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        })
        .collect()
}

/// max |a − b| / max |b|.
fn max_error(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

/// The engine's `conserving` map of a fixture for every variant, for input `x` (the fixture's
/// own input if `None`).
fn engine_maps(name: &str, x: Option<ArrayD<f32>>) -> Vec<(Variant, ArrayD<f32>)> {
    let (model, own) = fixture(name);
    let x = x.unwrap_or(own);
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    VARIANTS
        .iter()
        .map(|&v| {
            let e = ex.explain(&acts, Target::Top1, Start::Probability, &lrp("conserving", v)).unwrap();
            (v, e.relevance)
        })
        .collect()
}

/// Compares engine and oracle on fixture `name` for input `x` (written to `dir` for the oracle);
/// prints the error of every variant and returns those above [`TOLERANCE`].
fn compare(name: &str, what: &str, x: Option<ArrayD<f32>>, dir: &Path) -> Vec<String> {
    let input = match &x {
        Some(x) => {
            let path = dir.join(format!("{name}.{what}.npy"));
            write_npy(&path, x).unwrap();
            path
        }
        None => root().join(format!("tests/fixtures/{name}.input.npy")),
    };
    let want = oracle(name, &input, "conserving", dir);
    let mut failures = Vec::new();
    for (variant, got) in engine_maps(name, x) {
        let err = max_error(&got, &want[variant.name()]);
        eprintln!("{name:>22} {what:<8} {:<18} max |engine − oracle| = {err:.2e} of max", variant.name());
        if err > tolerance(variant) {
            failures.push(format!("{name} {what} {variant:?}: {err:.2e} > {:e}", tolerance(variant)));
        }
    }
    failures
}

#[test]
fn conserving_composite_matches_the_numpy_oracle() {
    let dir = std::env::temp_dir().join(format!("resnet-lrp-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let failures: Vec<String> = FIXTURES.iter().flat_map(|name| compare(name, "fixture", None, &dir)).collect();
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "engine and oracle disagree: {failures:?}");
}

/// The fixtures' own inputs never produce a max-pool window with two equal maxima. A zero input
/// makes every window of the stem's max pool a tie (the stem's output is its bias) and many
/// deeper z⁺ denominators zero; the input with its lower half zeroed mixes such regions with
/// ordinary ones. Both reach the flat fallback's second stage (`WeightMod::Ones`) on the
/// bottleneck fixtures.
#[test]
fn conserving_composite_matches_the_numpy_oracle_on_degenerate_inputs() {
    let dir = std::env::temp_dir().join(format!("resnet-lrp-oracle-degenerate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for name in ["basic_bn", "bottleneck_bn", "bottleneck_nhwc", "bottleneck_neg_folded"] {
        let (_, x) = fixture(name);
        // the image's rows: axis 2 in NCHW, axis 1 in NHWC
        let rows = if name.ends_with("nhwc") { 1 } else { 2 };
        let h = x.shape()[rows];
        let mut half = x.clone();
        half.slice_axis_mut(Axis(rows), Slice::from(h / 2..)).fill(0.0);
        failures.extend(compare(name, "zeros", Some(ArrayD::zeros(x.raw_dim())), &dir));
        failures.extend(compare(name, "half", Some(half), &dir));
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "engine and oracle disagree: {failures:?}");
}

/// `conserving` works on the BN-folded graph, so a file with BatchNorm nodes and its folded twin
/// must give the same map, negative γ included. They differ only by where the folding is rounded
/// to float32 (the generator folds in float64, the loader in float32): same tolerances as above.
#[test]
fn bn_kept_and_folded_files_give_the_same_conserving_map() {
    let mut failures = Vec::new();
    for (kept, folded) in [
        ("basic_bn", "basic_folded"),
        ("basic_neg_bn", "basic_neg_folded"),
        ("bottleneck_neg_bn", "bottleneck_neg_folded"),
    ] {
        for ((variant, a), (_, b)) in engine_maps(kept, None).into_iter().zip(engine_maps(folded, None)) {
            let err = max_error(&a, &b);
            eprintln!("{kept:>18} vs {folded:<22} {:<18} {err:.2e} of max", variant.name());
            if err > tolerance(variant) {
                failures.push(format!("{kept} vs {folded} {variant:?}: {err:.2e}"));
            }
        }
    }
    assert!(failures.is_empty(), "BN kept and BN folded differ: {failures:?}");
}

/// The oracle's JSON summary of every variant (with its ledger) for a fixture's own input.
fn oracle_ledgers(name: &str, composite: &str, dir: &Path) -> HashMap<String, serde_json::Value> {
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/reference/authors_lrp.py"))
        .args(["--model", &root().join(format!("tests/fixtures/{name}.onnx")).to_string_lossy()])
        .args(["--input-npy", &root().join(format!("tests/fixtures/{name}.input.npy")).to_string_lossy()])
        .args(["--composite", composite, "--variant", "all", "--json", "--ledger"])
        .args(["--out", &dir.join(format!("{name}.{{variant}}.npy")).to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "authors_lrp.py failed on {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["variant"].as_str().unwrap().to_string(), v))
        .collect()
}

/// The ledger (Σ R at every conv, dense layer, pool and residual addition) and every block's split
/// (Σ R down the shortcut and down the main branch), against the oracle's, which computes them
/// from its own float64 activations and relevance: with `reference` the ledger shows the authors'
/// losses where they occur, with `conserving` the splits are what sends relevance into each
/// branch. Sums of float32 maps: compared at 1e-5 of the start relevance (measured ≤ 1e-6; a
/// split with the shortcut and main branch swapped, or the ratio taken from other activations,
/// moves a block's shares by ≥ 1e-2).
#[test]
fn ledgers_and_block_splits_match_the_oracle() {
    let dir = std::env::temp_dir().join(format!("resnet-lrp-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut worst = 0f64;
    for name in ["basic_bn", "bottleneck_bn", "bottleneck_nhwc"] {
        let (model, x) = fixture(name);
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        for composite in ["conserving", "reference"] {
            let oracle = oracle_ledgers(name, composite, &dir);
            for variant in VARIANTS {
                let e = ex.explain(&acts, Target::Top1, Start::Probability, &lrp(composite, variant)).unwrap();
                let want = &oracle[variant.name()];
                let start = want["start_relevance"].as_f64().unwrap();
                let what = format!("{name} {composite} {}", variant.name());
                let mut check = |node: &str, field: &str, got: f64, want: f64| {
                    let err = (got - want).abs() / start;
                    worst = worst.max(err);
                    assert!(err <= 1e-5, "{what}: `{node}` {field}: engine {got} vs oracle {want}");
                };
                for entry in want["ledger"].as_array().unwrap() {
                    let node = entry["node"].as_str().unwrap();
                    if !matches!(entry["op"].as_str(), Some("Conv" | "Gemm" | "MatMul" | "MaxPool" | "Add")) {
                        continue;
                    }
                    if entry.get("main").is_none() && entry["op"] == "Add" {
                        continue; // a bias addition
                    }
                    let Some(l) = e.ledger.iter().find(|l| l.node == node) else {
                        panic!("{what}: the engine's ledger has no `{node}`")
                    };
                    check(node, "Σ R", l.relevance, entry["r_out"].as_f64().unwrap());
                    if let Some(main) = entry.get("main") {
                        let b = e.blocks.iter().find(|b| b.node == node).unwrap_or_else(|| panic!("{what}: {node}"));
                        check(node, "main", b.main, main.as_f64().unwrap());
                        check(node, "shortcut", b.shortcut, entry["shortcut"].as_f64().unwrap());
                    }
                }
            }
        }
    }
    eprintln!("worst ledger / split difference: {worst:.2e} of the start relevance");
    std::fs::remove_dir_all(&dir).ok();
}
