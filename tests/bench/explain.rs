//! Native benchmark: forward vs explain (forward + LRP) on full-size models.
//!
//! `cargo bench -p resnet-lrp --bench explain -- [MODEL.onnx ...]`; without arguments it
//! uses `tests/fixtures/big/resnet18.onnx`, `resnet50.onnx` (`./build.sh fixtures --full`)
//! and `www/models/open_nsfw.onnx` (`./build.sh assets`) where present.
//! Prints the median of several runs and the ratios, measured in one process. With
//! `--features threads` and `-- --parallel`, explanations compute their denominators on a second
//! thread (`Explainer::set_parallel`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use resnet_lrp::{Composite, Method, Model, Start, Target, Variant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1e3)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let args: Vec<PathBuf> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    let models = if args.is_empty() {
        ["tests/fixtures/big/resnet18.onnx", "tests/fixtures/big/resnet50.onnx", "www/models/open_nsfw.onnx"]
            .iter()
            .map(|p| root.join(p))
            .filter(|p| p.exists())
            .collect()
    } else {
        args
    };
    let runs = 5;
    println!("| model | plain inference (`Model::run`) ms | forward (`Explainer::forward`: the same plan, keeping the activations LRP reads) ms | LRP ms | explain = forward + LRP ms | explain / forward | 2nd class LRP / forward |");
    println!("|---|---|---|---|---|---|---|");
    for path in models {
        let model = Model::from_onnx_bytes(&std::fs::read(&path).unwrap()).unwrap();
        let shape = model.input().shape.clone();
        let n: usize = shape.iter().product();
        let x =
            ArrayD::from_shape_vec(IxDyn(&shape), (0..n).map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0).collect())
                .unwrap();
        let method = Method::Lrp {
            composite: Composite::by_name("conserving", (vec![0.0], vec![1.0])).unwrap(),
            variant: Variant::FlowsSkip,
        };
        let mut ex = model.explainer();
        ex.set_parallel(std::env::args().any(|a| a == "--parallel"));
        // warm-up: compiles every kernel once
        let acts = ex.forward(x.clone()).unwrap();
        ex.explain(&acts, Target::Top1, Start::Probability, &method).unwrap();
        let (mut tf, mut of, mut lrp, mut second) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            tf.push(time(|| model.run(&x).unwrap()).1);
            let (acts, t) = time(|| ex.forward(x.clone()).unwrap());
            of.push(t);
            lrp.push(time(|| ex.explain(&acts, Target::Top1, Start::Probability, &method).unwrap()).1);
            second.push(time(|| ex.explain(&acts, Target::Class(1), Start::Probability, &method).unwrap()).1);
        }
        let (tf, of, lrp, second) = (median(tf), median(of), median(lrp), median(second));
        println!(
            "| {} | {tf:.0} | {of:.0} | {lrp:.0} | {:.0} | {:.2}× | {:.2}× |",
            path.file_name().unwrap().to_string_lossy(),
            of + lrp,
            (of + lrp) / of,
            second / of
        );
    }
}
