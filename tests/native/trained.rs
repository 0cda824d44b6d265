//! The committed, trained Fashion-MNIST ResNet (`models/`, made by `tools/train_fashion.py`): its
//! metadata is read, the engine gives torch's logits on the committed sample images, the
//! conserving composite conserves under every splitting variant and the variants differ (the
//! model has identity and projection shortcuts), and bad metadata is a load error naming its key.

use ndarray::{Array2, ArrayD};
use ndarray_npy::read_npy;
use resnet_lrp::metadata::{Resize, CLASSES_KEY, PREPROCESS_KEY};
use resnet_lrp::request::ExplainRequest;
use resnet_lrp::session::{Prediction, Session};
use resnet_lrp::{image_io, Composite, Error, Method, Model, Preprocess, Start, Target, VARIANTS};

use crate::models::root;

const CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// How far the engine's logits may be from torch's (absolute; the samples' logits reach 12).
/// Both compute in float32 but sum in different orders through 15 convolutions: measured at most
/// 2.9e-6 (onnxruntime differs from torch by as much), so this leaves a margin of 7. A
/// preprocessing that is wrong by little — the mean off by 1 % — moves the logits by far more
/// (`tolerance_is_tight_enough`), as does any wrong weight.
const LOGIT_TOL: f32 = 2e-5;

fn bytes() -> Vec<u8> {
    std::fs::read(root().join("models/fashion_resnet.onnx")).unwrap()
}

/// The samples, in `labels.csv` order: (file name, class index).
fn samples() -> Vec<(String, usize)> {
    let csv = std::fs::read_to_string(root().join("models/fashion_samples/labels.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("file,class"));
    lines
        .map(|l| {
            let (file, class) = l.split_once(',').unwrap();
            (file.to_string(), CLASSES.iter().position(|c| *c == class).unwrap())
        })
        .collect()
}

fn torch_logits() -> Array2<f32> {
    read_npy(root().join("models/fashion_samples/logits.npy")).unwrap()
}

fn predict(session: &mut Session, file: &str) -> Prediction {
    let img = image_io::read_image(&root().join("models/fashion_samples").join(file)).unwrap();
    session.set_image(&img.data, img.width, img.height).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn metadata_gives_class_names_and_preprocessing() {
    let model = Model::from_onnx_bytes(&bytes()).unwrap();
    let meta = model.metadata();
    assert_eq!(meta.classes.as_deref().unwrap(), CLASSES.map(String::from).as_slice());
    assert_eq!(meta.class_name(9), Some("Ankle boot"));
    assert_eq!(meta.class_name(10), None);
    assert_eq!(meta.resize, Some(Resize::Full));
    // the mean and std the training measured, as the training log records them
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("models/fashion_resnet.train.json")).unwrap())
            .unwrap();
    let p = meta.preprocess.clone().unwrap();
    let (mean, std) = (log["mean"].as_f64().unwrap() as f32, log["std"].as_f64().unwrap() as f32);
    assert!((p.mean[0] - mean).abs() < 1e-6 && (p.std[0] - std).abs() < 1e-6, "{p:?} vs {mean} {std}");
    assert_eq!((p.scale, p.bgr), (1.0, false));
    // a session starts with the file's preprocessing
    assert_eq!(Session::new(model).preprocess(), &p);
    // a model without metadata: none, and ImageNet's preprocessing
    let plain = Model::from_onnx_bytes(&std::fs::read(root().join("tests/fixtures/basic_bn.onnx")).unwrap()).unwrap();
    assert_eq!(plain.metadata().preprocess, None);
    assert_eq!(plain.metadata().classes, None);
    assert_eq!(Session::new(plain).preprocess(), &Preprocess::default());
}

#[test]
fn logits_of_the_samples_are_torchs() {
    let mut session = Session::from_onnx_bytes(&bytes()).unwrap();
    let want = torch_logits();
    let samples = samples();
    assert_eq!(want.nrows(), samples.len());
    let mut correct = 0;
    for ((file, label), torch) in samples.iter().zip(want.rows()) {
        let got = predict(&mut session, file);
        let torch = torch.to_vec();
        let d = max_diff(&got.logits, &torch);
        assert!(d <= LOGIT_TOL, "{file}: logits differ from torch's by {d}");
        correct += usize::from(got.top[0].class == *label);
    }
    // 92.6 % accurate on the whole test set; 19 of the 20 samples are right (an ankle boot is
    // taken for a sandal)
    assert!(correct + 1 >= samples.len(), "{correct}/{} samples classified right", samples.len());
}

#[test]
fn tolerance_is_tight_enough() {
    // the mean 1 % off: the logits move by much more than LOGIT_TOL
    let mut session = Session::from_onnx_bytes(&bytes()).unwrap();
    let mut p = session.preprocess().clone();
    p.mean = p.mean.map(|m| m * 1.01);
    session.set_preprocess(p).unwrap();
    let (file, _) = &samples()[0];
    let d = max_diff(&predict(&mut session, file).logits, &torch_logits().row(0).to_vec());
    assert!(d > 10.0 * LOGIT_TOL, "a 1 % error in the mean moves the logits by only {d}");
}

#[test]
fn conserving_conserves_under_every_variant_and_the_variants_differ() {
    let mut session = Session::from_onnx_bytes(&bytes()).unwrap();
    for (file, _) in samples().iter().take(3) {
        predict(&mut session, file);
        let mut maps: Vec<ArrayD<f32>> = Vec::new();
        for variant in VARIANTS {
            let composite = Composite::by_name("conserving", session.preprocess().bounds()).unwrap();
            let request = ExplainRequest {
                target: Target::Top1,
                start: Start::Probability,
                method: Some(Method::Lrp { composite, variant }),
                seed: 0,
                quantize: 0,
                cell: 1,
            };
            let e = session.explain(&request).unwrap().explanation;
            assert!(e.conservation_error() <= 1e-4, "{file} {variant:?}: {}", e.conservation_error());
            maps.push(e.relevance);
        }
        for i in 0..maps.len() {
            for j in 0..i {
                let scale = maps[i].iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = maps[i].iter().zip(&maps[j]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d > 1e-3 * scale, "{file}: {:?} and {:?} give the same map", VARIANTS[i], VARIANTS[j]);
            }
        }
    }
}

/// Protobuf varint.
fn varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `bytes` with one more `metadata_props` entry: a protobuf message followed by a field is that
/// message with the field added (ModelProto field 14, StringStringEntryProto key 1, value 2).
fn with_prop(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let mut entry = Vec::new();
    for (tag, s) in [(0x0a, key), (0x12, value)] {
        entry.push(tag);
        varint(s.len(), &mut entry);
        entry.extend(s.as_bytes());
    }
    let mut out = bytes.to_vec();
    out.push(14 << 3 | 2);
    varint(entry.len(), &mut out);
    out.extend(entry);
    out
}

#[test]
fn an_added_property_is_read() {
    // the bad-metadata cases below rely on it: the entry appended last is the one that counts
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let b = with_prop(&bytes(), CLASSES_KEY, &serde_json::to_string(&names).unwrap());
    assert_eq!(Model::from_onnx_bytes(&b).unwrap().metadata().classes, Some(names));
    let pre = r#"{"channels": 1, "mean": [0.5], "std": [0.25], "scale": 255}"#;
    let p = Model::from_onnx_bytes(&with_prop(&bytes(), PREPROCESS_KEY, pre)).unwrap().metadata().preprocess.clone();
    assert_eq!(p, Some(Preprocess { scale: 255.0, mean: [0.5; 3], std: [0.25; 3], bgr: false }));
}

#[test]
fn bad_metadata_is_a_load_error_naming_the_key() {
    let good = r#""mean": [0.3], "std": [0.35]"#;
    let cases = [
        (PREPROCESS_KEY, "{not json".to_string()),
        (PREPROCESS_KEY, format!(r#"{{"channels": 3, {good}}}"#)),
        (PREPROCESS_KEY, r#"{"channels": 1, "mean": [0.3], "std": [0.0]}"#.to_string()),
        (PREPROCESS_KEY, r#"{"channels": 1, "mean": [0.3], "std": [-1]}"#.to_string()),
        (PREPROCESS_KEY, r#"{"channels": 1, "mean": [0.3, 0.3, 0.3], "std": [0.35]}"#.to_string()),
        (PREPROCESS_KEY, format!(r#"{{"channels": 1, "size": [32, 32], {good}}}"#)),
        (PREPROCESS_KEY, format!(r#"{{"channels": 1, "layout": "NHWC", {good}}}"#)),
        (PREPROCESS_KEY, format!(r#"{{"channels": 1, "scale": 0, {good}}}"#)),
        (PREPROCESS_KEY, format!(r#"{{"channels": 1, "stds": [1], {good}}}"#)),
        (PREPROCESS_KEY, format!(r#"{{"channels": 1, "resize": "bicubic", {good}}}"#)),
        (CLASSES_KEY, r#"["a", "b"]"#.to_string()),
        (CLASSES_KEY, r#"{"0": "a"}"#.to_string()),
    ];
    for (key, value) in cases {
        match Model::from_onnx_bytes(&with_prop(&bytes(), key, &value)) {
            Err(e @ Error::Load { .. }) => assert!(e.to_string().contains(key), "{value}: {e}"),
            other => panic!("{value}: expected a load error, got {other:?}"),
        }
    }
}
