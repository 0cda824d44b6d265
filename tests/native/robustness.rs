//! The robustness corpus (`tests/robustness/corpus`, written by `gen_corpus.py`): every image,
//! model and parameter set in it must give the outcome its manifest states, as a named error or
//! a finite, conserving explanation, never a panic or a hang. Plus the CLI's refusals.

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use ndarray::{ArrayD, Dimension, IxDyn};
use resnet_lrp::image_io::{self, STREAM_LONG_SIDE};
use resnet_lrp::metrics::{self, Masker, Runner};
use resnet_lrp::request::{ExplainOptions, ProtocolOptions};
use resnet_lrp::{Error, Method, Model, Preprocess, Target};
use serde_json::Value;

use crate::models::root;

fn corpus() -> PathBuf {
    root().join("tests/robustness/corpus")
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "Io",
        Error::Load { .. } => "Load",
        Error::UnsupportedOp { .. } => "UnsupportedOp",
        Error::UnsupportedInput(_) => "UnsupportedInput",
        Error::InvalidInput(_) => "InvalidInput",
        Error::InvalidParam { .. } => "InvalidParam",
        Error::Image(_) => "Image",
        Error::Tract { .. } => "Tract",
        Error::Numeric(_) => "Numeric",
        Error::Cancelled => "Cancelled",
        Error::Internal(_) => "Internal",
    }
}

fn basic() -> Model {
    let bytes = std::fs::read(root().join("tests/fixtures/basic_bn.onnx")).unwrap();
    Model::from_onnx_bytes(&bytes).unwrap()
}

/// An explanation of `x` that must be finite and conserve relevance.
fn explain_ok(model: &Model, x: ArrayD<f32>, method: &Method, target: Target) -> resnet_lrp::Result<String> {
    let mut ex = model.explainer();
    let acts = ex.forward(x)?;
    let e = ex.explain(&acts, target, resnet_lrp::Start::Probability, method)?;
    if e.relevance.iter().any(|v| !v.is_finite()) {
        return Ok("relevance is not finite".into());
    }
    let conserving = matches!(method, Method::Lrp { composite, .. } if composite.conserve);
    if conserving && e.conservation_error() > 1e-4 {
        return Ok(format!("conservation error {:.2e}", e.conservation_error()));
    }
    Ok(String::new())
}

fn conserving() -> Method {
    ExplainOptions::default().method(Preprocess::default().bounds()).unwrap()
}

/// Runs one case; `Ok(problem)` with an empty problem when the outcome is the expected one.
fn run_case(case: &Value, model: &Model) -> resnet_lrp::Result<String> {
    let file = case.get("file").and_then(Value::as_str).unwrap_or("");
    match case["kind"].as_str().unwrap() {
        "image" => {
            let img = image_io::read_image(&corpus().join(file))?;
            if img.width == 0 || img.height == 0 || img.data.len() != img.width * img.height * 4 {
                return Ok(format!("decoded to {}×{} with {} bytes", img.width, img.height, img.data.len()));
            }
            if img.width.max(img.height) > STREAM_LONG_SIDE as usize && file.contains("huge") {
                return Ok(format!("not downscaled: {}×{}", img.width, img.height));
            }
            if let Some(o) = file.strip_prefix("images/exif_orientation_").and_then(|s| s[..1].parse::<u8>().ok()) {
                // the picture is 64 × 48; orientations 5–8 turn it by a quarter
                let want = if o >= 5 { (48, 64) } else { (64, 48) };
                if (img.width, img.height) != want {
                    return Ok(format!("orientation {o}: {}×{}, expected {want:?}", img.width, img.height));
                }
            }
            let x = model.preprocess(&img.data, img.width, img.height, &Preprocess::default())?;
            explain_ok(model, x, &conserving(), Target::Top1)
        }
        "model" => {
            let bytes = std::fs::read(corpus().join(file)).unwrap();
            let m = Model::from_onnx_bytes(&bytes)?;
            let x = ArrayD::from_shape_fn(IxDyn(&m.input().shape), |i| {
                ((i.slice().iter().sum::<usize>() % 7) as f32) - 3.0
            });
            explain_ok(&m, x, &conserving(), Target::Top1)
        }
        "params" => {
            let mut p = case["params"].clone();
            // JSON has no NaN or infinity: the corpus spells them as strings
            let mut special = None;
            if let Some(v) = p.get("epsilon").and_then(Value::as_str) {
                special = Some(if v == "nan" { f32::NAN } else { f32::INFINITY });
                p.as_object_mut().unwrap().remove("epsilon");
            }
            let mut o: ExplainOptions =
                serde_json::from_value(p.clone()).map_err(|e| Error::param("options", e.to_string()))?;
            if special.is_some() {
                o.params.epsilon = special;
            }
            let protocol: ProtocolOptions =
                serde_json::from_value(p).map_err(|e| Error::param("options", e.to_string()))?;
            let x = ArrayD::from_shape_fn(IxDyn(&model.input().shape), |i| {
                (i.slice().iter().sum::<usize>() % 5) as f32 * 0.5
            });
            if o.is_random() {
                return Ok("random is for evaluations only".into());
            }
            let method = o.method(Preprocess::default().bounds())?;
            let problem = explain_ok(model, x.clone(), &method, o.target()?)?;
            // and the same options through an evaluation (patch size, step)
            protocol.config().validate()?;
            let (h, w) = (model.input().height, model.input().width);
            let masker = Masker::new(model, &ndarray::Array3::from_elem((h, w, 3), 100.0), &Preprocess::default())?;
            let mut ex = model.explainer();
            let acts = ex.forward(masker.full().clone())?;
            let target = match o.target()? {
                Target::Class(c) => c,
                Target::Top1 => acts.top_k(1)[0].0,
            };
            let e = ex.explain(&acts, Target::Class(target), o.start()?, &method)?;
            let map = metrics::ranking_map(&e.relevance, model.input(), o.quantize.unwrap_or(0))?;
            let cfg = metrics::InsDelConfig { step: protocol.step.max(1) * 50, ..protocol.config() };
            metrics::insertion_deletion(&masker, &Runner::new(model), &map, target, &cfg)?;
            Ok(problem)
        }
        k => panic!("unknown case kind {k}"),
    }
}

#[test]
fn corpus_cases_end_as_the_manifest_says() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("manifest.json")).expect("run gen_corpus.py"))
            .unwrap();
    let cases = manifest["cases"].as_array().unwrap().clone();
    assert!(cases.len() >= 200, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for case in cases {
        let label = case.get("file").map_or_else(|| case["params"].to_string(), |f| f.as_str().unwrap().to_string());
        let expect = case["expect"].as_str().unwrap().to_string();
        let message = case.get("message").and_then(Value::as_str).map(str::to_string);
        // a case that hangs must not hang the suite: run it on a thread with a deadline
        let (tx, rx) = mpsc::channel();
        let c = case.clone();
        std::thread::spawn(move || {
            let model = basic();
            // a panic drops `tx` unsent: the receiver sees the channel disconnect
            let _ = tx.send(run_case(&c, &model));
        });
        let outcome = match rx.recv_timeout(Duration::from_secs(120)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                failures.push(format!("{label}: no answer within 120 s"));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                failures.push(format!("{label}: PANIC (see the message above)"));
                continue;
            }
            Ok(r) => r,
        };
        let got = match &outcome {
            Ok(problem) if problem.is_empty() => "ok".to_string(),
            Ok(problem) => {
                failures.push(format!("{label}: {problem}"));
                continue;
            }
            Err(e) => format!("error:{}", kind(e)),
        };
        *counts.entry(got.clone()).or_default() += 1;
        let text = outcome.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let fine = match expect.as_str() {
            "any" => got == "ok" || !text.is_empty(),
            e => e == got && message.as_deref().is_none_or(|m| text.contains(m)),
        };
        if !fine {
            failures.push(format!(
                "{label}: expected {expect}{}, got {got} {text}",
                message.map_or_else(String::new, |m| format!(" ({m})"))
            ));
        }
    }
    eprintln!("corpus outcomes: {counts:?}");
    assert!(failures.is_empty(), "{} of the corpus cases failed:\n{}", failures.len(), failures.join("\n"));
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_resnet-lrp")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_refuses_huge_models_before_reading_them_and_names_bad_files() {
    let dir = std::env::temp_dir().join(format!("resnet-lrp-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // a sparse 600 MB file: refusing it must not need the bytes
    let big = dir.join("big.onnx");
    std::fs::File::create(&big).unwrap().set_len(600_000_000).unwrap();
    let (ok, err) = cli(&["info", "--model", big.to_str().unwrap()]);
    assert!(!ok && err.contains("600 MB") && err.contains("500 MB"), "{err}");

    let model = root().join("tests/fixtures/basic_bn.onnx");
    let corpus = corpus();
    for (image, needle) in [("images/text.png", "not a PNG"), ("images/empty.png", "empty"), ("images", "directory")] {
        let path = corpus.join(image);
        let (ok, err) = cli(&["explain", "--model", model.to_str().unwrap(), "--image", path.to_str().unwrap()]);
        assert!(!ok && err.contains(needle) && err.contains(path.to_str().unwrap()), "{image}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let photo = corpus.join("images/rgb.png");
    for (flags, needle) in [
        (vec!["--epsilon", "-1"], "epsilon"),
        (vec!["--composite", "epsilon_alpha2_beta1", "--alpha", "2", "--beta", "2"], "alpha − beta"),
        (vec!["--composite", "nope"], "unknown composite"),
        (vec!["--target", "10"], "target"),
        (vec!["--gamma", "0.5"], "no gamma rule"),
    ] {
        let mut args = vec!["explain", "--model", model.to_str().unwrap(), "--image", photo.to_str().unwrap()];
        args.extend(flags.iter());
        let (ok, err) = cli(&args);
        assert!(!ok && err.contains(needle), "{flags:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
