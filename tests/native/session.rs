//! The application layer and the request parsers: a session runs the same steps as the engine's
//! parts driven by hand, evaluations can be cancelled, names parse the same for the CLI and the
//! page, and errors come by kind with their sources, named once.

use std::error::Error as _;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array3, ArrayD};
use ndarray_npy::read_npy;
use resnet_lrp::metrics::{self, InsDelConfig, Masker, Runner};
use resnet_lrp::request::{self, ExplainOptions, ExplainRequest, MethodName};
use resnet_lrp::session::Session;
use resnet_lrp::{heatmap, Composite, Error, Method, Model, Preprocess, Start, Target, Variant, VARIANTS};

use crate::models::root;

fn basic() -> (Vec<u8>, ArrayD<f32>) {
    let dir = root().join("tests/fixtures");
    (std::fs::read(dir.join("basic_bn.onnx")).unwrap(), read_npy(dir.join("basic_bn.input.npy")).unwrap())
}

/// A 64 × 48 RGBA photo with some structure (a bright disc on a gradient).
fn photo() -> (Vec<u8>, usize, usize) {
    let (w, h) = (64, 48);
    let mut rgba = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - 40.0).powi(2) + (y as f32 - 20.0).powi(2)).sqrt();
            let v = if d < 12.0 { 230 } else { (x * 3) as u8 };
            rgba.extend([v, (y * 5) as u8, 255 - v, 255]);
        }
    }
    (rgba, w, h)
}

fn request(method: Option<Method>, quantize: usize) -> ExplainRequest {
    ExplainRequest { target: Target::Top1, start: Start::Probability, method, seed: 7, quantize, cell: 1 }
}

fn lrp(variant: Variant) -> Option<Method> {
    Some(Method::Lrp { composite: Composite::by_name("conserving", Preprocess::default().bounds()).unwrap(), variant })
}

#[test]
fn session_explains_as_the_explainer_does() {
    let (bytes, x) = basic();
    let mut session = Session::from_onnx_bytes(&bytes).unwrap();
    let prediction = session.set_input(x.clone()).unwrap();
    let model = Model::from_onnx_bytes(&bytes).unwrap();
    let mut ex = model.explainer();
    let acts = ex.forward(x).unwrap();
    assert_eq!(prediction.logits, acts.logits());
    assert_eq!(prediction.top[0].class, acts.top_k(1)[0].0);
    for (variant, levels) in [(Variant::FlowsSkip, 0), (Variant::Latest, 8)] {
        let got = session.explain(&request(lrp(variant), levels)).unwrap();
        let want = ex.explain(&acts, Target::Top1, Start::Probability, lrp(variant).as_ref().unwrap()).unwrap();
        assert_eq!(got.explanation.relevance, want.relevance, "{variant:?}");
        let map = heatmap::map(&want.relevance, model.input(), levels).unwrap();
        assert_eq!(got.map, map, "{variant:?}");
        // quantized maps take at most `levels` values, raw maps many more
        let mut distinct: Vec<u32> = got.map.iter().map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(if levels > 1 { distinct.len() <= levels } else { distinct.len() > 8 }, "{}", distinct.len());
    }
    // 2×2 cells: the same relevance, its map averaged over the cells before quantization
    let per_pixel = session.explain(&request(lrp(Variant::FlowsSkip), 8)).unwrap();
    let cells = session.explain(&ExplainRequest { cell: 2, ..request(lrp(Variant::FlowsSkip), 8) }).unwrap();
    assert_eq!(cells.explanation.relevance, per_pixel.explanation.relevance);
    let sum = heatmap::channel_sum(&per_pixel.explanation.relevance, model.input()).unwrap();
    assert_eq!(cells.map, heatmap::heat_quantize(&heatmap::cell_mean(&sum, 2), 8));
    assert_ne!(cells.map, per_pixel.map);
    // the random ranking is the session's (a seeded map), not a method of the explainer
    let random = session.explain(&request(None, 0)).unwrap();
    assert_eq!(random.explanation.conservation(), None);
    let options: ExplainOptions = serde_json::from_str(r#"{"method": "random"}"#).unwrap();
    let e = options.method(Preprocess::default().bounds()).unwrap_err();
    assert!(matches!(&e, Error::InvalidParam { name, .. } if name == "method"), "{e}");
}

#[test]
fn session_evaluation_is_the_protocol_driven_by_hand() {
    let (bytes, _) = basic();
    let (rgba, w, h) = photo();
    let mut session = Session::from_onnx_bytes(&bytes).unwrap();
    let pre = Preprocess { scale: 1.0, mean: [0.5; 3], std: [0.25; 3], bgr: true };
    session.set_preprocess(pre.clone()).unwrap();
    session.set_image(&rgba, w, h).unwrap();
    let cfg = InsDelConfig { block_size: 2, step: 100 };
    // by hand, from the parts: resize, normalise, forward, explain, rank, mask, run
    let model = Model::from_onnx_bytes(&bytes).unwrap();
    let pixels: Array3<f32> = model.resize_rgba(&rgba, w, h).unwrap();
    let masker = Masker::new(&model, &pixels, &pre).unwrap();
    let mut ex = model.explainer();
    let acts = ex.forward(masker.full().clone()).unwrap();
    let class = acts.top_k(1)[0].0;
    for (method, levels) in [(lrp(Variant::Simple), 8), (Some(Method::GradientTimesInput), 0), (None, 0)] {
        let got = session.evaluate(&request(method.clone(), levels), &cfg, None, None).unwrap();
        let map = match &method {
            Some(m) => {
                let e = ex.explain(&acts, Target::Class(class), Start::Probability, m).unwrap();
                metrics::ranking_map(&e.relevance, model.input(), levels).unwrap()
            }
            None => metrics::random_map(model.input().height, model.input().width, 7),
        };
        let want = metrics::insertion_deletion(&masker, &Runner::new(&model), &map, class, &cfg).unwrap();
        assert_eq!(got.target, class);
        assert_eq!(got.probability, acts.probabilities()[class]);
        assert_eq!(got.curves, want, "{method:?}");
        assert_eq!(got.pixels, model.input().height * model.input().width);
        // display cells do not reach the ranking: it stays per pixel
        let celled = ExplainRequest { cell: 2, ..request(method.clone(), levels) };
        assert_eq!(session.evaluate(&celled, &cfg, None, None).unwrap().curves, want, "{method:?} in cells");
    }
    // a tensor has no pixels to mask
    session.set_input(masker.full().clone()).unwrap();
    let e = session.evaluate(&request(None, 0), &cfg, None, None).unwrap_err();
    assert!(e.to_string().contains("pixels"), "{e}");
}

#[test]
fn evaluations_stop_when_cancelled_and_the_session_goes_on() {
    let (bytes, _) = basic();
    let (rgba, w, h) = photo();
    let mut session = Session::from_onnx_bytes(&bytes).unwrap();
    session.set_image(&rgba, w, h).unwrap();
    let cfg = InsDelConfig { block_size: 1, step: 50 };
    let cancel = AtomicBool::new(false);
    let calls = std::sync::Mutex::new(Vec::new());
    let progress = |done: usize, total: usize| {
        calls.lock().unwrap().push((done, total));
        if done >= 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let e = session.evaluate(&request(lrp(Variant::FlowsSkip), 0), &cfg, Some(&progress), Some(&cancel)).unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    let calls = calls.into_inner().unwrap();
    let total = calls[0].1;
    // stopped at the first check after the flag was set, long before the end
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(total > 20, "{total}");
    // nothing the user did is lost: the photo is still there
    let r = session.evaluate(&request(lrp(Variant::FlowsSkip), 0), &cfg, None, None).unwrap();
    assert_eq!(r.curves.forward_passes(), total);
}

#[test]
fn names_parse_once_for_the_cli_and_the_page() {
    let options = |json: &str| -> ExplainOptions { serde_json::from_str(json).unwrap() };
    for m in MethodName::all() {
        let page = options(&format!(r#"{{"method": "{}"}}"#, m.name())).method_name().unwrap();
        assert_eq!(page, m);
        assert_eq!(MethodName::from_str(m.name()).unwrap(), m);
    }
    // the page's older form: `lrp` plus a variant
    for v in VARIANTS {
        let page = options(&format!(r#"{{"method": "lrp", "variant": "{}"}}"#, v.name())).method_name().unwrap();
        assert_eq!(page, MethodName::Lrp(v));
        assert_eq!(Variant::from_str(v.name()).unwrap(), v);
    }
    assert_eq!(options("{}").method_name().unwrap(), MethodName::Lrp(request::DEFAULT_VARIANT));
    let e = options(r#"{"method": "latest", "variant": "simple"}"#).method_name().unwrap_err();
    assert!(matches!(&e, Error::InvalidParam { name, .. } if name == "variant"), "{e}");
    let e = MethodName::from_str("integrated_gradients").unwrap_err();
    assert!(e.to_string().contains("flows_skip") && e.to_string().contains("random"), "{e}");
    assert_eq!(Target::from_str("top1").unwrap(), Target::Top1);
    assert_eq!(Target::from_str("12").unwrap(), Target::Class(12));
    assert!(Target::from_str("-1").is_err() && Start::from_str("softmax").is_err());
    assert_eq!(Start::from_str("logit").unwrap(), Start::Logit);
    // the same words and messages through serde's record as through FromStr
    let e = options(r#"{"start": "softmax"}"#).start().unwrap_err();
    assert_eq!(e.to_string(), Start::from_str("softmax").unwrap_err().to_string());
}

#[test]
fn capabilities_are_the_engines_own_names() {
    let c = request::capabilities();
    assert_eq!(c.variants, VARIANTS.iter().map(|v| v.name()).collect::<Vec<_>>());
    for name in &c.composites {
        assert_eq!(&Composite::by_name(name, (vec![0.0], vec![1.0])).unwrap().name, name);
    }
    for name in &c.methods {
        MethodName::from_str(name).unwrap();
    }
    assert_eq!(c.defaults.composite, "conserving");
    assert_eq!(Variant::from_str(c.defaults.variant).unwrap(), request::DEFAULT_VARIANT);
    Start::from_str(c.defaults.start).unwrap();
    assert_eq!(c.preprocess, Preprocess::default());
    assert_eq!(c.limits.max_model_bytes, resnet_lrp::model::MAX_MODEL_BYTES);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["limits"]["maxModelBytes"], 500_000_000);
    assert_eq!(json["defaults"]["evalQuantize"], 8);
}

/// Runs the CLI: (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_resnet-lrp")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `resnet-lrp info … | head -1`: the reader is gone before the CLI writes; before SIGPIPE had its
/// default action, `println!` panicked here ("failed printing to stdout: Broken pipe").
#[cfg(unix)]
#[test]
fn cli_ends_quietly_on_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let model = root().join("tests/fixtures/basic_bn.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_resnet-lrp"))
        .args(["info", "--model", model.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before the model is even read
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "ended by the closed pipe: {:?}", out.status);
}

#[test]
fn cli_method_is_the_one_word_for_what_is_computed() {
    let fixtures = root().join("tests/fixtures");
    let model = fixtures.join("basic_bn.onnx");
    let input = fixtures.join("basic_bn.input.npy");
    let base = ["explain", "--model", model.to_str().unwrap(), "--input-npy", input.to_str().unwrap(), "--json"];
    let run = |extra: &[&str]| {
        let (ok, out, err) = cli(&[&base[..], extra].concat());
        assert!(ok, "{extra:?}: {err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(run(&["--method", "gradient"]), run(&["--composite", "gradient"]));
    assert_eq!(run(&["--method", "gradient"])["method"], "gradient_x_input");
    let latest = run(&["--method", "latest"]);
    assert_eq!(latest, run(&["--variant", "latest"]));
    assert_eq!(latest["method"]["variant"], "latest");
    assert_ne!(latest["ledger"], run(&["--method", "conventional"])["ledger"]);
    // the baselines report no conservation error: it is not defined for them
    assert!(latest["conservation_error"].is_f64());
    for name in ["gradient", "ig", "guided_backprop", "gradcam", "scorecam", "random"] {
        let out = run(&["--method", name]);
        assert!(out["conservation_error"].is_null(), "{name}: {out}");
    }
    assert_eq!(run(&["--method", "random"])["method"], "random");
    assert_eq!(run(&["--method", "ig"])["method"]["steps"], 50);
}

#[test]
fn errors_come_by_kind_named_once_with_their_source() {
    let e = Model::from_onnx_bytes(b"definitely not onnx").unwrap_err();
    assert!(matches!(e, Error::Load { .. }), "{e}");
    assert!(e.source().is_some(), "tract's error is kept as the source: {e:?}");
    let dir = std::env::temp_dir().join(format!("resnet-lrp-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let (ok, _, err) = cli(&["info", "--model", empty.to_str().unwrap()]);
    assert!(!ok && err.matches("could not load the ONNX model").count() == 1, "{err}");
    assert!(err.contains("empty.onnx") && err.contains("empty"), "{err}");
    let missing = dir.join("missing.onnx");
    let (ok, _, err) = cli(&["info", "--model", missing.to_str().unwrap()]);
    assert!(
        !ok && err.contains("missing.onnx") && !err.contains("could not load"),
        "an I/O error, not a load error: {err}"
    );
    // input the user hands in is bad input, not an internal error
    let (bytes, _) = basic();
    let mut session = Session::from_onnx_bytes(&bytes).unwrap();
    let e = session.set_input(ArrayD::from_elem(ndarray::IxDyn(&[1, 3, 64, 64]), f32::NAN)).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    let e = session.set_input(ArrayD::zeros(ndarray::IxDyn(&[1, 3, 8, 8]))).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cli_explains_a_directory_image_by_image() {
    let dir = std::env::temp_dir().join(format!("resnet-lrp-batch-{}", std::process::id()));
    let (input, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let corpus = root().join("tests/robustness/corpus/images");
    for name in ["rgb.png", "palette.png", "text.png"] {
        std::fs::copy(corpus.join(name), input.join(name)).unwrap();
    }
    let model = root().join("tests/fixtures/basic_bn.onnx");
    let m = model.to_str().unwrap();
    let (ok, stdout, stderr) = cli(&[
        "explain",
        "--model",
        m,
        "--images",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--method",
        "latest",
    ]);
    // text.png is not an image: its line names the error, the others are explained, the exit says so
    assert!(!ok && stderr.contains("1 of 3 images"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[2]["image"].as_str().unwrap().ends_with("text.png") && lines[2]["error"].is_string());
    let loaded = Model::from_onnx_bytes(&std::fs::read(&model).unwrap()).unwrap();
    for line in &lines[..2] {
        let image = line["image"].as_str().unwrap();
        assert!(line["conservation_error"].as_f64().unwrap() < 1e-4, "{line}");
        assert_eq!(line["method"]["variant"], "latest");
        // the batch's relevance is the single-image command's, bit for bit
        let single = dir.join("single.npy");
        let (ok, _, err) =
            cli(&["explain", "--model", m, "--image", image, "--method", "latest", "--npy", single.to_str().unwrap()]);
        assert!(ok, "{err}");
        let r: ArrayD<f32> = read_npy(line["relevance"].as_str().unwrap()).unwrap();
        assert_eq!(r, read_npy::<_, ArrayD<f32>>(&single).unwrap(), "{image}");
        let sum: f64 = r.iter().map(|&v| v as f64).sum();
        assert!((sum - line["input_relevance_sum"].as_f64().unwrap()).abs() <= 1e-6 * sum.abs(), "{line}");
        // the overlay: the photo at the model's size, red (+) or blue (−) blended by |map| / max |map|
        let png = image::open(line["overlay"].as_str().unwrap()).unwrap().to_rgb8();
        let photo = resnet_lrp::image_io::read_image(std::path::Path::new(image)).unwrap();
        let pixels = loaded.resize_rgba(&photo.data, photo.width, photo.height).unwrap();
        let map = r
            .sum_axis(ndarray::Axis(1))
            .index_axis_move(ndarray::Axis(0), 0)
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let max = map.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!((png.width() as usize, png.height() as usize), (map.dim().1, map.dim().0));
        let mut worst = 0f32;
        for ((y, x), &v) in map.indexed_iter() {
            let a = 0.6 * v.abs() / max;
            let colour = if v >= 0.0 { [255.0, 0.0, 0.0] } else { [0.0, 0.0, 255.0] };
            for c in 0..3 {
                let want = (1.0 - a) * pixels[(y, x, c)] + a * colour[c];
                worst = worst.max((png.get_pixel(x as u32, y as u32)[c] as f32 - want).abs());
            }
        }
        // rounding to bytes is the only difference
        assert!(worst <= 0.51, "overlay off by {worst}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every LRP explanation says what its composite did with the model's BatchNorm, and the four
/// cases (file keeps BatchNorm or not × composite uses raw weights or not) read differently.
#[test]
fn explanations_say_how_batchnorm_was_treated() {
    let dir = root().join("tests/fixtures");
    let mut notes = Vec::new();
    for file in ["basic_neg_bn", "basic_neg_folded"] {
        let mut session = Session::from_onnx_bytes(&std::fs::read(dir.join(format!("{file}.onnx"))).unwrap()).unwrap();
        session.set_input(read_npy(dir.join(format!("{file}.input.npy"))).unwrap()).unwrap();
        for composite in ["reference", "conserving"] {
            let method = Method::Lrp {
                composite: Composite::by_name(composite, Preprocess::default().bounds()).unwrap(),
                variant: Variant::FlowsSkip,
            };
            let note = session.explain(&request(Some(method), 0)).unwrap().batchnorm.unwrap();
            notes.push((file, composite, note));
        }
        let gradient = session.explain(&request(Some(Method::GradientTimesInput), 0)).unwrap();
        assert!(gradient.batchnorm.is_none(), "{file}: gradient uses no LRP rule");
    }
    let has = |i: usize, words: &str| assert!(notes[i].2.contains(words), "{:?} lacks `{words}`", notes[i]);
    has(0, "kept in the file (10 layers): z⁺ acts on the raw convolution weights");
    has(1, "kept in the file (10 layers), folded into the convolutions first");
    has(2, "No BatchNorm nodes in the file: if the network had BatchNorm");
    assert_eq!(notes[3].2, "No BatchNorm nodes in the file.");
}
