//! `resnet-lrp evaluate`: the paper's Insertion, Deletion and ID over a directory of images, one
//! [`Session::evaluate`] per image and method, printed as a table and optionally a CSV.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use resnet_lrp::image_io;
use resnet_lrp::metrics::{self, InsDelConfig};
use resnet_lrp::model::BatchPlan;
use resnet_lrp::request::{ExplainRequest, MethodName};
use resnet_lrp::session::{Evaluation, Session};
use resnet_lrp::{Error, Result, Start, Target};

use super::{list_images, read_model, side_files, PreprocessArgs, RuleArgs};

/// Every method `evaluate` knows, in the order of its table.
const EVAL_METHODS: &str = "flows_skip,flows_skip_simple,latest,simple,conventional,gradient,random";

#[derive(clap::Args)]
pub(super) struct EvaluateArgs {
    /// ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Directory of images (PNG, JPEG, GIF, BMP, WebP), evaluated in file-name order.
    #[arg(long)]
    images: PathBuf,
    /// Comma-separated: splitting variants (flows_skip, flows_skip_simple, latest, simple,
    /// conventional) with `--composite`, `gradient` (gradient × input), `random` (seeded random ranking).
    #[arg(long, value_delimiter = ',', default_value = EVAL_METHODS)]
    methods: Vec<MethodName>,
    /// LRP composite for the splitting variants.
    #[arg(long, default_value = "conserving")]
    composite: String,
    /// Heat Quantization of the ranking map (the paper uses 8; 0 = raw channel-summed relevance).
    #[arg(long, default_value_t = 0)]
    quantize: usize,
    /// `top1` or a class index.
    #[arg(long, default_value = "top1")]
    target: Target,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
    /// Write one row per image and method.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Patches added or removed per step of a curve.
    #[arg(long, default_value_t = metrics::DEFAULT_STEP)]
    step: usize,
    /// Patch size in pixels; a patch scores the maximum of the map inside it.
    #[arg(long, default_value_t = metrics::DEFAULT_BLOCK)]
    block: usize,
    /// Seed of the random baseline (image k uses seed + k).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per forward pass of the curves (a second tract plan with that batch; 1 = none).
    /// On x86 tract runs batches slower per image than single images, hence the default.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Threads for the forward passes of the curves [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Evaluate at most this many images.
    #[arg(long)]
    limit: Option<usize>,
}

/// Per method: one entry per image.
#[derive(Default)]
struct MethodStats {
    insertion: Vec<f64>,
    deletion: Vec<f64>,
    id: Vec<f64>,
    explain: Duration,
    curves: Duration,
    passes: usize,
}

impl MethodStats {
    fn add(&mut self, r: &Evaluation) {
        self.insertion.push(r.curves.insertion.auc);
        self.deletion.push(r.curves.deletion.auc);
        self.id.push(r.curves.id());
        self.explain += r.explain_time.unwrap_or_default();
        self.curves += r.curves_time.unwrap_or_default();
        self.passes += r.curves.forward_passes();
    }
}

/// Mean and standard error of the mean.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// One CSV row.
fn csv_row(image: &str, label: &str, r: &Evaluation) -> String {
    let join = |v: &[f32]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ");
    let ms = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64() * 1e3;
    let (ins, del) = (&r.curves.insertion, &r.curves.deletion);
    format!(
        "{image},{label},{},{},{},{},{},{},{:.1},{:.1},{:.4},{},{}\n",
        r.target,
        r.probability,
        ins.auc,
        del.auc,
        r.curves.id(),
        r.curves.forward_passes(),
        ms(r.explain_time),
        ms(r.curves_time),
        ins.kept[0] as f64 / r.pixels as f64,
        join(&ins.probabilities),
        join(&del.probabilities)
    )
}

pub(super) fn run(a: EvaluateArgs) -> Result<()> {
    let started = Instant::now();
    let mut session = Session::new(read_model(&a.model)?);
    session.set_preprocess(a.preprocess.to_preprocess()?)?;
    let zbox = session.preprocess().bounds();
    let mut requests = Vec::new();
    for name in &a.methods {
        let method = name.method(&a.composite, &a.rules.params(), zbox.clone())?;
        requests.push(ExplainRequest {
            target: a.target,
            start: Start::Probability,
            method,
            seed: a.seed,
            quantize: a.quantize,
        });
    }
    let cfg = InsDelConfig { block_size: a.block, step: a.step };
    cfg.validate()?;
    let mut images = list_images(&a.images)?;
    images.truncate(a.limit.unwrap_or(usize::MAX));
    if a.batch > 1 {
        let bytes = std::fs::read(&a.model).map_err(|e| Error::io(&a.model, e))?;
        match BatchPlan::from_onnx(session.model(), &bytes, &mut side_files(&a.model), a.batch) {
            Ok(p) => session.set_batch_plan(Some(p)),
            Err(e) => eprintln!("warning: no batched plan ({e}); running one image at a time"),
        }
    }
    let threads =
        a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    session.set_threads(threads);

    let mut csv = String::from(
        "image,method,target,probability,insertion,deletion,id,forward_passes,explain_ms,curves_ms,\
         insertion_first_kept,insertion_curve,deletion_curve\n",
    );
    let mut stats: Vec<MethodStats> = requests.iter().map(|_| MethodStats::default()).collect();
    let mut forward_time = Duration::ZERO;
    let bar = ProgressBar::new((images.len() * requests.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("static template"),
    );
    for (k, path) in images.iter().enumerate() {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let img = image_io::read_image(path)?;
        let t0 = Instant::now();
        session.set_image(&img.data, img.width, img.height)?;
        forward_time += t0.elapsed();
        for ((label, request), st) in a.methods.iter().zip(&requests).zip(stats.iter_mut()) {
            bar.set_message(format!("{name} {label}"));
            let request = ExplainRequest { seed: a.seed.wrapping_add(k as u64), ..request.clone() };
            let r = session.evaluate(&request, &cfg, None, None)?;
            st.add(&r);
            csv.push_str(&csv_row(&name, label.name(), &r));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let passes: usize = stats.iter().map(|s| s.passes).sum();
    print_table(&a, &stats, images.len(), threads, passes, forward_time, session.batch_plan());
    println!("mean ± standard error over images; total {:.1} s", started.elapsed().as_secs_f64());
    if let Some(p) = &a.csv {
        std::fs::write(p, csv).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

fn print_table(
    a: &EvaluateArgs,
    stats: &[MethodStats],
    n: usize,
    threads: usize,
    passes: usize,
    forward_time: Duration,
    batch: Option<&BatchPlan>,
) {
    let ranking = if a.quantize > 1 { format!("heat-quantized ({} levels)", a.quantize) } else { "raw".to_string() };
    let target = match a.target {
        Target::Top1 => "top1".to_string(),
        Target::Class(c) => c.to_string(),
    };
    println!(
        "{}: {n} images, target {target}, composite {}, ranking {ranking}, step {}, block {}",
        a.model.display(),
        a.composite,
        a.step,
        a.block
    );
    println!(
        "forward passes of the curves: {passes} images, {} per batch, {threads} threads; resize + forward pass keeping the activations LRP reads once per image ({:.0} ms/image)",
        batch.map_or(1, BatchPlan::batch),
        forward_time.as_secs_f64() * 1e3 / n as f64
    );
    println!();
    println!(
        "| {:<18} | {:>13} | {:>13} | {:>13} | {:>13} | {:>12} | {:>13} |",
        "method", "Insertion ↑ %", "Deletion ↓ %", "ID ↑ %", "explain ms/img", "curves ms/img", "passes/img"
    );
    println!("|{:-<20}|{:->15}|{:->15}|{:->15}|{:->16}|{:->15}|{:->15}|", ":", ":", ":", ":", ":", ":", ":");
    let pm = |v: &[f64]| {
        let (m, se) = mean_se(v);
        if se.is_nan() {
            format!("{:.1}", 100.0 * m)
        } else {
            format!("{:.1} ± {:.1}", 100.0 * m, 100.0 * se)
        }
    };
    for (label, st) in a.methods.iter().zip(stats) {
        println!(
            "| {:<18} | {:>13} | {:>13} | {:>13} | {:>14.0} | {:>13.0} | {:>13.1} |",
            label.name(),
            pm(&st.insertion),
            pm(&st.deletion),
            pm(&st.id),
            st.explain.as_secs_f64() * 1e3 / n as f64,
            st.curves.as_secs_f64() * 1e3 / n as f64,
            st.passes as f64 / n as f64
        );
    }
    println!();
}
