//! Insertion, Deletion and ID: the authors' protocol on synthetic maps, on the test ResNets and
//! (when `./build.sh assets` has run) on the real models and photos.

use ndarray::{Array2, Array3, ArrayD};
use resnet_lrp::heatmap::{cell_mean, heat_quantize};
use resnet_lrp::metrics::{self, InsDelConfig, Masker, Mode, Runner};
use resnet_lrp::model::BatchPlan;
use resnet_lrp::{Activations, Composite, Explanation, Method, Model, Preprocess, Start, Target, Variant};

use crate::models::root;

fn fixture(name: &str) -> (Model, Vec<u8>) {
    let bytes = std::fs::read(root().join(format!("tests/fixtures/{name}.onnx"))).unwrap();
    (Model::from_onnx_bytes(&bytes).unwrap(), bytes)
}

/// A colourful RGBA test pattern (not the model's size, so that it is resized).
fn pattern(width: usize, height: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(width * height * 4);
    for y in 0..height {
        for x in 0..width {
            let r = (x * 255 / width) as u8;
            let g = (y * 255 / height) as u8;
            let b = ((x * 7 + y * 13) % 256) as u8;
            v.extend_from_slice(&[r, g, b, 255]);
        }
    }
    v
}

fn map_from(rows: &[&[f32]]) -> Array2<f32> {
    let w = rows[0].len();
    Array2::from_shape_vec((rows.len(), w), rows.iter().flat_map(|r| r.iter().copied()).collect()).unwrap()
}

fn count(mask: &Array2<bool>) -> usize {
    mask.iter().filter(|&&k| k).count()
}

#[test]
fn auc_of_known_curves() {
    assert_eq!(metrics::auc(&[0.0, 0.5, 1.0]), 0.5);
    // (Σ − first/2 − last/2) / (n − 1)
    assert!((metrics::auc(&[1.0, 0.0, 0.0, 0.0, 0.0]) - 0.125).abs() < 1e-12);
    assert!((metrics::auc(&[0.2, 0.4, 0.9, 1.0]) - (2.5 - 0.1 - 0.5) / 3.0).abs() < 1e-7);
    let ramp: Vec<f32> = (0..=100).map(|i| i as f32 / 100.0).collect();
    assert!((metrics::auc(&ramp) - 0.5).abs() < 1e-6);
    let flat = vec![0.3f32; 101];
    assert!((metrics::auc(&flat) - 0.3).abs() < 1e-6);
    assert_eq!(metrics::auc(&[0.7]), 0.7f32 as f64);
    assert_eq!(metrics::auc(&[]), 0.0);
}

#[test]
fn thresholds_follow_the_rank_rule_with_ties() {
    let map = map_from(&[&[5.0, 4.0, 5.0, 3.0, 0.0], &[2.0, 5.0, 3.0, 1.0, 0.0]]);
    // sorted: 5 5 5 4 3 3 2 1 0 0; step 3 → ceil(10/3) = 4 images at ranks 3, 6, 9, min(12, 9)
    let flat: Vec<f32> = map.iter().copied().collect();
    assert_eq!(metrics::thresholds(&flat, 3).unwrap(), vec![4.0, 2.0, 0.0, 0.0]);
    let cfg = InsDelConfig { block_size: 1, step: 3 };
    let ins = metrics::masks(&map, &cfg, Mode::Insertion).unwrap();
    let del = metrics::masks(&map, &cfg, Mode::Deletion).unwrap();
    assert_eq!(ins.iter().map(count).collect::<Vec<_>>(), vec![4, 7, 10, 10]);
    assert_eq!(del.iter().map(count).collect::<Vec<_>>(), vec![6, 3, 0, 0]);
    for (i, d) in ins.iter().zip(&del) {
        assert!(i.iter().zip(d).all(|(a, b)| a != b), "deletion removes exactly what insertion keeps");
    }
    assert_eq!(ins[0], map.mapv(|v| v >= 4.0));
    // ties are included: the threshold at rank 1 is 5, and all three 5s enter together
    let step1 = metrics::masks(&map, &InsDelConfig { block_size: 1, step: 1 }, Mode::Insertion).unwrap();
    assert_eq!(metrics::thresholds(&flat, 1).unwrap(), vec![5.0, 5.0, 4.0, 3.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(step1.iter().map(count).collect::<Vec<_>>(), vec![3, 3, 4, 6, 6, 7, 8, 10, 10, 10]);
    // a step of at least N: one image, the full one
    assert_eq!(metrics::thresholds(&flat, 10).unwrap(), vec![0.0]);
    assert_eq!(metrics::thresholds(&flat, 1000).unwrap(), vec![0.0]);
    // a heat-quantized map enters level by level: at most `levels` distinct masks
    let ramp = Array2::from_shape_fn((10, 10), |(y, x)| (y * 10 + x) as f32);
    let q = heat_quantize(&ramp, 8);
    let masks = metrics::masks(&q, &InsDelConfig { block_size: 1, step: 5 }, Mode::Insertion).unwrap();
    assert_eq!(masks.len(), 20);
    let mut counts: Vec<usize> = masks.iter().map(count).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]));
    counts.dedup();
    assert!(counts.len() <= 8, "{counts:?}");
    assert_eq!(*counts.last().unwrap(), 100);
    // bad parameters are errors
    assert!(metrics::thresholds(&flat, 0).is_err());
    assert!(metrics::masks(&map, &InsDelConfig { block_size: 0, step: 1 }, Mode::Insertion).is_err());
    assert!(metrics::masks(&map.mapv(|v| v / 0.0), &cfg, Mode::Insertion).is_err());
}

#[test]
fn patches_score_their_maximum() {
    let map = Array2::from_shape_fn((4, 4), |(y, x)| ((y * 4 + x) * 7 % 16) as f32);
    let s = metrics::patch_scores(&map, 2).unwrap();
    assert_eq!(s.dim(), (2, 2));
    for py in 0..2 {
        for px in 0..2 {
            let m = (0..2)
                .flat_map(|dy| (0..2).map(move |dx| (2 * py + dy, 2 * px + dx)))
                .map(|p| map[p])
                .fold(f32::MIN, f32::max);
            assert_eq!(s[(py, px)], m);
        }
    }
    // edge patches are cut to the image
    let s3 = metrics::patch_scores(&map, 3).unwrap();
    assert_eq!(s3.dim(), (2, 2));
    assert_eq!(s3[(1, 1)], map[(3, 3)]);
    // masks treat a patch as a whole: 4 patches, step 1 → ranks 1, 2, 3, 3
    let masks = metrics::masks(&map, &InsDelConfig { block_size: 2, step: 1 }, Mode::Insertion).unwrap();
    assert_eq!(masks.iter().map(count).collect::<Vec<_>>(), vec![8, 12, 16, 16]);
    for m in &masks {
        for ((y, x), &k) in m.indexed_iter() {
            assert_eq!(k, m[(y / 2 * 2, x / 2 * 2)], "pixels of one patch share the mask");
        }
    }
}

#[test]
fn random_map_is_a_seeded_permutation() {
    let a = metrics::random_map(8, 9, 7);
    let mut v: Vec<f32> = a.iter().copied().collect();
    v.sort_by(f32::total_cmp);
    assert_eq!(v, (1..=72).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(a, metrics::random_map(8, 9, 7));
    assert_ne!(a, metrics::random_map(8, 9, 8));
}

#[test]
fn preprocess_is_resize_then_normalize() {
    for name in ["basic_bn", "bottleneck_nhwc"] {
        let (model, _) = fixture(name);
        let rgba = pattern(93, 71);
        for bgr in [false, true] {
            let pre = Preprocess { bgr, ..Preprocess::default() };
            let x = model.preprocess(&rgba, 93, 71, &pre).unwrap();
            let px = model.resize_rgba(&rgba, 93, 71).unwrap();
            assert_eq!(px.dim(), (64, 64, 3));
            assert_eq!(model.normalize(&px, &pre).unwrap(), x, "{name} bgr={bgr}");
        }
        assert!(model.normalize(&Array3::zeros((3, 3, 3)), &Preprocess::default()).is_err());
    }
}

#[test]
fn masked_images_are_black_in_pixel_space() {
    for name in ["basic_bn", "bottleneck_nhwc"] {
        let (model, _) = fixture(name);
        let pre = Preprocess { scale: 255.0, mean: [104.0, 117.0, 123.0], std: [57.0, 58.0, 59.0], bgr: true };
        let px = model.resize_rgba(&pattern(80, 50), 80, 50).unwrap();
        let masker = Masker::new(&model, &px, &pre).unwrap();
        assert_eq!(masker.masked(&Array2::from_elem((64, 64), true)), model.normalize(&px, &pre).unwrap());
        let black = model.normalize(&Array3::zeros((64, 64, 3)), &pre).unwrap();
        assert_eq!(masker.masked(&Array2::from_elem((64, 64), false)), black);
        let keep = Array2::from_shape_fn((64, 64), |(y, x)| (x * 3 + y * 5) % 7 < 3);
        let mut cut = px.clone();
        for ((y, x, _), v) in cut.indexed_iter_mut() {
            if !keep[(y, x)] {
                *v = 0.0;
            }
        }
        assert_eq!(masker.masked(&keep), model.normalize(&cut, &pre).unwrap(), "{name}");
    }
}

/// The default explanation (`conserving`, `flows_skip`, top-1) of the masker's full image.
fn explain_full_image(model: &Model, masker: &Masker, pre: &Preprocess) -> (Activations, Explanation) {
    let mut ex = model.explainer();
    let acts = ex.forward(masker.full().clone()).unwrap();
    let method =
        Method::Lrp { composite: Composite::by_name("conserving", pre.bounds()).unwrap(), variant: Variant::FlowsSkip };
    let e = ex.explain(&acts, Target::Top1, Start::Probability, &method).unwrap();
    (acts, e)
}

fn softmax_at(out: &[f32], c: usize) -> f32 {
    let m = out.iter().copied().fold(f32::MIN, f32::max);
    let z: f32 = out.iter().map(|v| (v - m).exp()).sum();
    (out[c] - m).exp() / z
}

fn assert_close(a: f32, b: f32, what: &str) {
    assert!((a - b).abs() <= 1e-6, "{what}: {a} vs {b}");
}

#[test]
fn curves_run_from_the_top_patches_to_the_full_image_and_to_black() {
    for name in ["basic_bn", "bottleneck_nhwc"] {
        let (model, _) = fixture(name);
        let pre = Preprocess::default();
        let px = model.resize_rgba(&pattern(90, 77), 90, 77).unwrap();
        let masker = Masker::new(&model, &px, &pre).unwrap();
        let (acts, e) = explain_full_image(&model, &masker, &pre);
        let map = metrics::ranking_map(&e.relevance, model.input(), 0).unwrap();
        let cfg = InsDelConfig::default();
        let runner = Runner::new(&model);
        let r = metrics::insertion_deletion(&masker, &runner, &map, e.target, &cfg).unwrap();
        // 64 × 64 = 4096 pixels, 500 per step → 9 images per curve
        assert_eq!(r.insertion.probabilities.len(), 9);
        assert_eq!(r.deletion.probabilities.len(), 9);
        assert_eq!(runner.forward_passes(), r.forward_passes());
        assert!(r.forward_passes() <= 18);
        // the model's output, or its softmax when the graph does not end in one
        let ends_in_softmax = model.graph().logits != model.graph().output;
        let p = |x: &ArrayD<f32>| {
            let out = model.run(x).unwrap();
            if ends_in_softmax {
                out[e.target]
            } else {
                softmax_at(&out, e.target)
            }
        };
        // the last insertion image is the full image: the model's own prediction
        let p_full = acts.probabilities()[e.target];
        let last_ins = *r.insertion.probabilities.last().unwrap();
        assert!((last_ins - p_full).abs() <= 1e-4, "{name}: {last_ins} vs {p_full}");
        assert_close(last_ins, p(masker.full()), name);
        // the last deletion image is all black
        let black = model.normalize(&Array3::zeros((64, 64, 3)), &pre).unwrap();
        assert_close(*r.deletion.probabilities.last().unwrap(), p(&black), name);
        // the first images already hold (lack) the top `step + 1` pixels, ties included
        let ins = metrics::masks(&map, &cfg, Mode::Insertion).unwrap();
        let del = metrics::masks(&map, &cfg, Mode::Deletion).unwrap();
        let mut sorted: Vec<f32> = map.iter().copied().collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(count(&ins[0]), map.iter().filter(|&&v| v >= sorted[500]).count());
        assert!(count(&ins[0]) >= 501);
        assert_eq!(count(&del[0]), 4096 - count(&ins[0]));
        assert_close(r.insertion.probabilities[0], p(&masker.masked(&ins[0])), name);
        assert_close(r.deletion.probabilities[0], p(&masker.masked(&del[0])), name);
        assert_eq!(r.insertion.kept, ins.iter().map(count).collect::<Vec<_>>());
        assert_eq!(r.deletion.kept, del.iter().map(count).collect::<Vec<_>>());
        assert_eq!(count(ins.last().unwrap()), 4096);
        assert_eq!(count(del.last().unwrap()), 0);
        for c in [&r.insertion, &r.deletion] {
            assert!(c.auc.is_finite() && (0.0..=1.0).contains(&c.auc), "{name}: {}", c.auc);
            assert_eq!(c.auc, metrics::auc(&c.probabilities));
        }
        assert_eq!(r.id(), r.insertion.auc - r.deletion.auc);
        // the random baseline
        for seed in 0..3 {
            let rnd = metrics::random_map(64, 64, seed);
            let rr = metrics::insertion_deletion(&masker, &runner, &rnd, e.target, &cfg).unwrap();
            for v in [rr.insertion.auc, rr.deletion.auc] {
                assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{name} seed {seed}: {v}");
            }
            assert_eq!(rr.forward_passes(), 18, "no ties in a random ranking");
            assert_eq!(*rr.insertion.probabilities.last().unwrap(), last_ins);
        }
        // wrong map size or target
        assert!(metrics::insertion_deletion(&masker, &runner, &Array2::zeros((8, 8)), 0, &cfg).is_err());
        assert!(metrics::insertion_deletion(&masker, &runner, &map, 10_000, &cfg).is_err());
    }
}

#[test]
fn heat_quantized_maps_need_few_forward_passes() {
    let (model, _) = fixture("basic_bn");
    let pre = Preprocess::default();
    let px = model.resize_rgba(&pattern(64, 64), 64, 64).unwrap();
    let masker = Masker::new(&model, &px, &pre).unwrap();
    let mut ex = model.explainer();
    let acts = ex.forward(masker.full().clone()).unwrap();
    let e = ex.explain(&acts, Target::Top1, Start::Probability, &Method::GradientTimesInput).unwrap();
    let raw = metrics::ranking_map(&e.relevance, model.input(), 0).unwrap();
    let q = metrics::ranking_map(&e.relevance, model.input(), 8).unwrap();
    let cfg = InsDelConfig { block_size: 1, step: 100 };
    let runner = Runner::new(&model);
    let r = metrics::insertion_deletion(&masker, &runner, &q, e.target, &cfg).unwrap();
    assert_eq!(r.insertion.probabilities.len(), 41);
    assert!(r.insertion.distinct_masks <= 8, "{}", r.insertion.distinct_masks);
    // deduplication changes nothing: every point equals its own forward pass
    for (t, p) in r.insertion.thresholds.iter().zip(&r.insertion.probabilities) {
        let keep = q.mapv(|v| v >= *t);
        assert_close(*p, softmax_at(&model.run(&masker.masked(&keep)).unwrap(), e.target), "quantized");
    }
    let rr = metrics::insertion_deletion(&masker, &runner, &raw, e.target, &cfg).unwrap();
    assert!(rr.insertion.distinct_masks > r.insertion.distinct_masks);
}

#[test]
fn batched_and_threaded_runs_match_single_runs() {
    for name in ["basic_bn", "bottleneck_nhwc"] {
        let (model, bytes) = fixture(name);
        let px = model.resize_rgba(&pattern(70, 70), 70, 70).unwrap();
        let masker = Masker::new(&model, &px, &Preprocess::default()).unwrap();
        let inputs: Vec<ArrayD<f32>> = (0..6)
            .map(|i| masker.masked(&Array2::from_shape_fn((64, 64), |(y, x)| (x + y * 3 + i * 11) % 6 < 3)))
            .collect();
        let single = Runner::new(&model);
        let want = single.probabilities(&inputs, 2).unwrap();
        assert_eq!(single.forward_passes(), 6);
        let plan = BatchPlan::from_onnx_bytes(&model, &bytes, 4).unwrap();
        assert_eq!(plan.batch(), 4);
        let outs = plan.run(&inputs[..3]).unwrap();
        assert_eq!(outs.len(), 3);
        for (o, x) in outs.iter().zip(&inputs) {
            let one = model.run(x).unwrap();
            assert!(o.iter().zip(&one).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())), "{name}");
        }
        for runner in [
            Runner::new(&model).with_threads(2),
            Runner::new(&model).with_batch(&plan),
            Runner::new(&model).with_batch(&plan).with_threads(2),
        ] {
            let got = runner.probabilities(&inputs, 2).unwrap();
            assert_eq!(runner.forward_passes(), 6, "padding is not counted");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5, "{name} {runner:?}: {a} vs {b}");
            }
        }
        assert!(plan.run(&[]).is_err());
        assert!(plan.run(&inputs[..5]).is_err());
        assert!(BatchPlan::from_onnx_bytes(&model, &bytes, 0).is_err());
    }
}

/// The real models on a bundled photo: the curve ends at the model's own prediction, and the
/// paper's method ranks better than the random baseline.
#[test]
fn real_models_on_a_photo() {
    let models = [
        ("efficientnet_lite0", Preprocess { scale: 255.0, mean: [127.0; 3], std: [128.0; 3], bgr: false }),
        ("open_nsfw", Preprocess { scale: 255.0, mean: [104.0, 117.0, 123.0], std: [1.0; 3], bgr: true }),
    ];
    let photo = root().join("www/photos/chelsea.png");
    for (name, pre) in models {
        let path = root().join(format!("www/models/{name}.onnx"));
        if !path.exists() || !photo.exists() {
            assert!(
                std::env::var_os("RESNET_LRP_REQUIRE_ASSETS").is_none(),
                "{} or {} is missing: run ./build.sh assets",
                path.display(),
                photo.display()
            );
            eprintln!("skipping: {} missing (run ./build.sh assets)", path.display());
            continue;
        }
        let model = Model::from_onnx_bytes(&std::fs::read(&path).unwrap()).unwrap();
        let img = image::open(&photo).unwrap().to_rgba8();
        let px = model.resize_rgba(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let masker = Masker::new(&model, &px, &pre).unwrap();
        let (acts, e) = explain_full_image(&model, &masker, &pre);
        let runner = Runner::new(&model).with_threads(2);
        // heat-quantized ranking and a coarse step keep this test fast
        let cfg = InsDelConfig { block_size: 1, step: 2000 };
        let q = metrics::ranking_map(&e.relevance, model.input(), 8).unwrap();
        let r = metrics::insertion_deletion(&masker, &runner, &q, e.target, &cfg).unwrap();
        let p_full = acts.probabilities()[e.target];
        let last = *r.insertion.probabilities.last().unwrap();
        assert!((last - p_full).abs() <= 1e-4, "{name}: {last} vs {p_full}");
        let rnd = metrics::random_map(224, 224, 0);
        let rr = metrics::insertion_deletion(&masker, &runner, &rnd, e.target, &cfg).unwrap();
        eprintln!(
            "{name}: flows_skip ins {:.3} del {:.3}; random ins {:.3} del {:.3}",
            r.insertion.auc, r.deletion.auc, rr.insertion.auc, rr.deletion.auc
        );
        if name == "efficientnet_lite0" {
            assert!(r.id() > rr.id(), "{name}: ID {} vs random {}", r.id(), rr.id());
            stride_two_stem_paints_a_grid(&e, &model);
        }
    }
}

/// Why the page shows EfficientNet-Lite0's map in 2×2 cells (README, "Why EfficientNet-Lite0's map is
/// shown in 2×2 cells"): its 3×3 stride-2 stem covers even pixels twice per axis and odd ones once, so per
/// pixel the map's (even, even) phase holds several times the relevance of its (odd, odd) phase (4.5 times
/// on `chelsea.png`'s centre crop; 3 leaves room for this whole-photo resize), which no object explains.
fn stride_two_stem_paints_a_grid(e: &Explanation, model: &Model) {
    let map = resnet_lrp::heatmap::channel_sum(&e.relevance, model.input()).unwrap();
    let phase = |py: usize, px: usize| {
        let v: Vec<f64> =
            map.indexed_iter().filter(|((y, x), _)| y % 2 == py && x % 2 == px).map(|(_, &m)| f64::from(m)).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (even, odd) = (phase(0, 0), phase(1, 1));
    assert!(even > 3.0 * odd, "(even, even) phase {even:.3e} vs (odd, odd) {odd:.3e}");
}

/// The naive twin of `cell_mean`: each pixel is the f64 mean of every pixel in the same cell,
/// cells found by integer division of the coordinates (the function tiles with strided loops).
fn cell_mean_naive(map: &Array2<f32>, cell: usize) -> Array2<f64> {
    let (h, w) = map.dim();
    Array2::from_shape_fn((h, w), |(y, x)| {
        let members: Vec<f64> = map
            .indexed_iter()
            .filter(|((v, u), _)| v / cell == y / cell && u / cell == x / cell)
            .map(|(_, &m)| f64::from(m))
            .collect();
        members.iter().sum::<f64>() / members.len() as f64
    })
}

#[test]
fn cell_means_match_their_naive_twin_and_keep_the_total() {
    // 7 × 10 with cells of 2, 3 and 4: partial cells at the right and bottom edges
    let map = Array2::from_shape_fn((7, 10), |(y, x)| ((y * 31 + x * 17) % 23) as f32 * 1e-5 - 4e-5);
    assert_eq!(cell_mean(&map, 1), map);
    assert_eq!(cell_mean(&map, 0), map);
    for cell in [2, 3, 4, 64] {
        let got = cell_mean(&map, cell);
        let want = cell_mean_naive(&map, cell);
        // one f32 rounding of an f64 mean: half an ulp of values ≤ 2.2e-4 is 7e-12
        for (g, w) in got.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() <= 1e-11, "cell {cell}: {g} vs {w}");
        }
        let (total, kept) =
            (map.iter().map(|&v| f64::from(v)).sum::<f64>(), got.iter().map(|&v| f64::from(v)).sum::<f64>());
        assert!((total - kept).abs() <= 1e-9, "cell {cell}: {total} vs {kept}");
        assert!(got != map, "cell {cell} changes this map");
    }
}
