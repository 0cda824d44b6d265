//! The baselines of the paper's Table 1 against an independent numpy implementation
//! (`tests/reference/baselines.py`: its own float64 interpreter and reverse-mode pass over the ONNX
//! graph, numpy's `leggauss`, resizing by interpolation matrices), Integrated Gradients'
//! completeness, the pure pieces against closed forms, and all eleven methods through a session.

use std::process::Command;

use ndarray::{Array2, ArrayD, Axis, IxDyn};
use ndarray_npy::read_npy;
use resnet_lrp::graph::{Layer, LayerGraph, Node};
use resnet_lrp::lrp::cam::{bilinear, min_max, spread_over_channels, top_channels};
use resnet_lrp::lrp::{gauss_legendre, IG_STEPS, SCORE_CAM_CHANNELS};
use resnet_lrp::request::{ExplainRequest, MethodName};
use resnet_lrp::session::Session;
use resnet_lrp::{Error, Explainer, Method, Model, Preprocess, Start, Target};

use crate::models::root;

fn fixture(name: &str) -> (Model, ArrayD<f32>) {
    let dir = root().join("tests/fixtures");
    let model = Model::from_onnx_bytes(&std::fs::read(dir.join(format!("{name}.onnx"))).unwrap()).unwrap();
    (model, read_npy(dir.join(format!("{name}.input.npy"))).unwrap())
}

/// Max |a − b| over max |b|.
fn error_of_max(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

/// The `[H, W]` map of input relevance (the channel sum, as the page and the evaluation see it).
fn map_of(model: &Model, relevance: &ArrayD<f32>) -> Array2<f32> {
    resnet_lrp::heatmap::channel_sum(relevance, model.input()).unwrap()
}

/// Runs the numpy reference on fixture `name`; returns its output directory.
fn reference(name: &str, channels: usize) -> std::path::PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "needs the Python venv with numpy + onnx: run ./build.sh setup");
    let out = std::env::temp_dir().join(format!("resnet-lrp-baselines-{}-{name}-{channels}", std::process::id()));
    let fixtures = root().join("tests/fixtures");
    let status = Command::new(&python)
        .arg(root().join("tests/reference/baselines.py"))
        .args(["--model", &fixtures.join(format!("{name}.onnx")).to_string_lossy()])
        .args(["--input-npy", &fixtures.join(format!("{name}.input.npy")).to_string_lossy()])
        .args(["--out", &out.to_string_lossy(), "--channels", &channels.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "baselines.py failed on {name}");
    out
}

/// Measured agreement is 1e-7 – 1e-6 of the largest value (float32 against float64); 1e-4 leaves room
/// for tract's summation order, while every definitional slip tried moves a map by more than 1e-2 of its
/// maximum (guided vs plain ReLU gradient, aligned vs half-pixel resizing, logit vs probability
/// scores: asserted below or in `pure_pieces_match_closed_forms`).
const TOL: f64 = 1e-4;

#[test]
fn baselines_match_an_independent_numpy_implementation() {
    for name in ["basic_bn", "bottleneck_bn", "bottleneck_nhwc"] {
        let (model, x) = fixture(name);
        let dir = reference(name, SCORE_CAM_CHANNELS);
        let mut ex = model.explainer();
        let acts = ex.forward(x).unwrap();
        let methods = [
            ("ig", Method::IntegratedGradients { steps: IG_STEPS }),
            ("guided_backprop", Method::GuidedBackprop),
            ("gradcam", Method::GradCam),
            ("scorecam", Method::ScoreCam { channels: SCORE_CAM_CHANNELS }),
        ];
        for (file, method) in methods {
            let want: ArrayD<f32> = read_npy(dir.join(format!("{file}.npy"))).unwrap();
            let e = ex.explain(&acts, Target::Top1, Start::Probability, &method).unwrap();
            assert!(e.conservation().is_none() && e.ledger.is_empty(), "{name} {file}");
            let got = if want.ndim() == 2 { map_of(&model, &e.relevance).into_dyn() } else { e.relevance.clone() };
            assert_eq!(got.shape(), want.shape(), "{name} {file}");
            let err = error_of_max(got.as_slice().unwrap(), want.as_slice().unwrap());
            assert!(err < TOL, "{name} {file}: error {err:.2e} of max");
        }
        // guided backprop is not the plain gradient on these models (the test could tell them apart)
        let plain = ex.explain(&acts, Target::Top1, Start::Logit, &Method::GradientTimesInput).unwrap();
        let guided: ArrayD<f32> = read_npy(dir.join("guided_backprop.npy")).unwrap();
        let guided_times_input = guided * acts.value(0);
        let err = error_of_max(guided_times_input.as_slice().unwrap(), plain.relevance.as_slice().unwrap());
        assert!(err > 1e-2, "{name}: guided and plain gradients agree to {err:.2e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn score_cam_cap_keeps_the_channels_of_largest_mean_activation() {
    // 4 of the stage's 16 channels: the softmax runs over those four only
    let (model, x) = fixture("basic_bn");
    let dir = reference("basic_bn", 4);
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    let e = ex.explain(&acts, Target::Top1, Start::Probability, &Method::ScoreCam { channels: 4 }).unwrap();
    let want: ArrayD<f32> = read_npy(dir.join("scorecam.npy")).unwrap();
    let got = map_of(&model, &e.relevance);
    let err = error_of_max(got.as_slice().unwrap(), want.as_slice().unwrap());
    assert!(err < TOL, "error {err:.2e} of max");
    let all = ex.explain(&acts, Target::Top1, Start::Probability, &Method::ScoreCam { channels: 16 }).unwrap();
    assert!(error_of_max(got.as_slice().unwrap(), map_of(&model, &all.relevance).as_slice().unwrap()) > 1e-2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn integrated_gradients_is_complete_within_one_percent_at_50_steps() {
    for name in ["basic_bn", "basic_folded", "bottleneck_bn", "bottleneck_nhwc"] {
        let (model, x) = fixture(name);
        let mut ex = model.explainer();
        let zero = ex.forward(ArrayD::zeros(x.raw_dim())).unwrap();
        let acts = ex.forward(x).unwrap();
        let target = ex.resolve_target(&acts, Target::Top1).unwrap();
        let e =
            ex.explain(&acts, Target::Top1, Start::Probability, &Method::IntegratedGradients { steps: 50 }).unwrap();
        let want = (acts.logits()[target] - zero.logits()[target]) as f64;
        let rel = (e.input_relevance_sum() - want).abs() / want.abs();
        assert!(rel < 0.01, "{name}: Σ {} vs f(x) − f(0) = {want} ({rel:.2e})", e.input_relevance_sum());
        assert_eq!(e.start_relevance, acts.logits()[target]);
    }
}

#[test]
fn pure_pieces_match_closed_forms() {
    // Gauss–Legendre: the textbook 2- and 3-point rules, and exactness for polynomials of degree 2n − 1
    let (a, w) = gauss_legendre(2);
    let d = 0.5 / 3f64.sqrt();
    assert!((a[0] - (0.5 - d)).abs() < 1e-14 && (a[1] - (0.5 + d)).abs() < 1e-14 && (w[0] - 0.5).abs() < 1e-14);
    let (a, w) = gauss_legendre(3);
    let d = 0.5 * 0.6f64.sqrt();
    assert!((a[0] - (0.5 - d)).abs() < 1e-14 && (a[1] - 0.5).abs() < 1e-14);
    assert!((w[0] - 5.0 / 18.0).abs() < 1e-14 && (w[1] - 8.0 / 18.0).abs() < 1e-14);
    let (a, w) = gauss_legendre(50);
    for k in [0, 1, 7, 50, 99] {
        let integral: f64 = a.iter().zip(&w).map(|(a, w)| w * a.powi(k)).sum();
        assert!((integral - 1.0 / (k + 1) as f64).abs() < 1e-12, "∫ α^{k} = {integral}");
    }
    assert!(a.windows(2).all(|p| p[0] < p[1]) && a[0] > 0.0 && a[49] < 1.0);
    // bilinear: [0, 4] doubled is OpenCV's [0, 1, 3, 4] with pixel centres aligned, [0, 4/3, 8/3, 4] with corners
    let row = Array2::from_shape_vec((1, 2), vec![0.0, 4.0]).unwrap();
    let half = bilinear(row.view(), (1, 4), false);
    assert_eq!(half.as_slice().unwrap(), &[0.0, 1.0, 3.0, 4.0]);
    let corners = bilinear(row.view(), (1, 4), true);
    let want = [0.0, 4.0 / 3.0, 8.0 / 3.0, 4.0];
    assert!(corners.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{corners:?}");
    let m = Array2::from_shape_vec((2, 2), vec![1.0, 3.0, 5.0, 9.0]).unwrap();
    assert_eq!(bilinear(m.view(), (2, 2), false), m);
    assert_eq!(min_max(&m, 0.0).as_slice().unwrap(), &[0.0, 0.25, 0.5, 1.0]);
    // spreading over channels: the channel sum is the map again, in either layout
    for (shape, axis) in [([1, 3, 2, 2], 1), ([1, 2, 2, 3], 3)] {
        let r = spread_over_channels(&m, &shape, axis).unwrap();
        let back = r.index_axis(Axis(0), 0).sum_axis(Axis(if axis == 1 { 0 } else { 2 }));
        assert!(back.iter().zip(&m).all(|(a, b)| (a - b).abs() < 1e-6), "{back:?}");
    }
    assert!(spread_over_channels(&m, &[1, 3, 4, 4], 1).is_err());
    let acts = ndarray::Array3::from_shape_fn((4, 2, 2), |(c, y, x)| [2.0, 5.0, 5.0, -1.0][c] + (y + x) as f32);
    assert_eq!(top_channels(acts.view(), 2), vec![1, 2]);
}

#[test]
fn cams_need_a_global_pooling_and_say_so() {
    let node = |name: &str, layer, inputs: Vec<usize>, shape: Vec<usize>| Node {
        name: name.into(),
        layer,
        inputs,
        shape,
        source: None,
    };
    let graph = LayerGraph {
        nodes: vec![
            node("x", Layer::Input, vec![], vec![1, 3, 2, 2]),
            node("flat", Layer::Reshape, vec![0], vec![1, 12]),
        ],
        logits: 1,
        output: 1,
    };
    let mut ex = Explainer::new(graph);
    let acts = ex.forward(ArrayD::from_elem(IxDyn(&[1, 3, 2, 2]), 1.0)).unwrap();
    for method in [Method::GradCam, Method::ScoreCam { channels: 4 }] {
        let e = ex.explain(&acts, Target::Top1, Start::Logit, &method).unwrap_err();
        assert!(matches!(&e, Error::InvalidParam { name, .. } if name == "method"), "{e}");
        assert!(e.to_string().contains("global pooling"), "{e}");
    }
    let e = ex.explain(&acts, Target::Top1, Start::Logit, &Method::IntegratedGradients { steps: 0 }).unwrap_err();
    assert!(e.to_string().contains("step"), "{e}");
}

#[test]
fn every_method_explains_and_evaluates_through_a_session() {
    let bytes = std::fs::read(root().join("tests/fixtures/bottleneck_bn.onnx")).unwrap();
    let mut session = Session::from_onnx_bytes(&bytes).unwrap();
    let rgba: Vec<u8> = (0..64 * 64 * 4).map(|i| ((i * 37) % 251) as u8).collect();
    session.set_image(&rgba, 64, 64).unwrap();
    let names = MethodName::all();
    assert_eq!(
        names.iter().map(|m| m.name()).collect::<Vec<_>>().join(" "),
        "flows_skip flows_skip_simple latest simple conventional gradient ig guided_backprop gradcam scorecam random"
    );
    let cfg = resnet_lrp::metrics::InsDelConfig { block_size: 1, step: 1024 };
    for name in names {
        let method = name.method("conserving", &Default::default(), Preprocess::default().bounds()).unwrap();
        let request =
            ExplainRequest { target: Target::Top1, start: Start::Probability, method, seed: 3, quantize: 0, cell: 1 };
        let out = session.explain(&request).unwrap();
        assert_eq!(out.map.dim(), (64, 64), "{name}");
        assert!(out.map.iter().all(|v| v.is_finite()), "{name}");
        assert_eq!(out.explanation.conservation().is_some(), matches!(name, MethodName::Lrp(_)), "{name}");
        let r = session.evaluate(&request, &cfg, None, None).unwrap();
        assert_eq!(r.curves.insertion.probabilities.len(), 4, "{name}");
    }
    // random's map is the seeded random ranking
    let random =
        ExplainRequest { target: Target::Top1, start: Start::Probability, method: None, seed: 3, quantize: 0, cell: 1 };
    let map = session.explain(&random).unwrap().map;
    let want = resnet_lrp::metrics::random_map(64, 64, 3);
    assert!(map.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-3 * b), "random map");
}

#[test]
fn score_cam_cost_is_one_forward_pass_per_channel() {
    let (model, x) = fixture("bottleneck_bn");
    let mut ex = model.explainer();
    let t = std::time::Instant::now();
    let acts = ex.forward(x.clone()).unwrap();
    let forward = t.elapsed();
    let t = std::time::Instant::now();
    ex.explain(&acts, Target::Top1, Start::Probability, &Method::ScoreCam { channels: SCORE_CAM_CHANNELS }).unwrap();
    let score_cam = t.elapsed();
    let t = std::time::Instant::now();
    ex.explain(&acts, Target::Top1, Start::Probability, &Method::IntegratedGradients { steps: IG_STEPS }).unwrap();
    let ig = t.elapsed();
    eprintln!(
        "bottleneck_bn: forward {:.2} ms, Score-CAM ({SCORE_CAM_CHANNELS} channels) {:.1} ms, IG ({IG_STEPS} steps) {:.1} ms",
        forward.as_secs_f64() * 1e3,
        score_cam.as_secs_f64() * 1e3,
        ig.as_secs_f64() * 1e3
    );
}
