//! `resnet-lrp evaluate`: the paper's Insertion, Deletion and ID over a directory of images, one
//! [`Session::evaluate`] per image and method, printed as a table and optionally a CSV.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use resnet_lrp::image_io;
use resnet_lrp::metrics::{self, InsDelConfig};
use resnet_lrp::model::BatchPlan;
use resnet_lrp::request::{ExplainRequest, MethodName};
use resnet_lrp::session::{Evaluation, Session};
use resnet_lrp::stats::{self, BOOTSTRAP_RESAMPLES};
use resnet_lrp::{Error, Result, Start, Target};

use super::{list_images, read_model, side_files, PreprocessArgs, RuleArgs};

/// Every method `evaluate` knows, in the order of its table.
const EVAL_METHODS: &str =
    "flows_skip,flows_skip_simple,latest,simple,conventional,gradient,ig,guided_backprop,gradcam,scorecam,random";

#[derive(clap::Args)]
pub(super) struct EvaluateArgs {
    /// ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Directory of images (PNG, JPEG, GIF, BMP, WebP), evaluated in file-name order.
    #[arg(long)]
    images: PathBuf,
    /// Comma-separated: splitting variants (flows_skip, flows_skip_simple, latest, simple,
    /// conventional) with `--composite`, and the baselines gradient (gradient × input), ig
    /// (Integrated Gradients, 50 steps), guided_backprop, gradcam, scorecam (32 channels), random
    /// (seeded random ranking).
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
    /// Seed of the random baseline (the k-th image of the directory in file-name order uses seed + k,
    /// in a shard too).
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
    /// Ground truth: a CSV with a header row holding the columns `file` (an image's file name)
    /// and `class` (its class index); other columns are ignored. Each image is then scored for
    /// its labelled class (as the authors do), whatever `--target` says.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// `K/N`: evaluate only every N-th image (in file-name order) from the K-th (0-based), so
    /// that N jobs together cover the directory; join their CSVs with `resnet-lrp merge`.
    #[arg(long)]
    shard: Option<Shard>,
}

/// One of `n` interleaved parts of a directory: the images at positions `k`, `k + n`, ….
#[derive(Debug, Clone, Copy)]
pub(super) struct Shard {
    k: usize,
    n: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::param("shard", format!("`{s}` is not K/N with 0 ≤ K < N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if k < n {
            Ok(Shard { k, n })
        } else {
            Err(bad())
        }
    }
}

/// `resnet-lrp merge`: joins the CSVs of `evaluate` runs (shards) into one and prints the table.
#[derive(clap::Args)]
pub(super) struct MergeArgs {
    /// CSV files written by `evaluate --csv` (for instance one per shard).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Write the joined CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// The labelled class of every file of a labels CSV.
fn read_labels(path: &Path) -> Result<HashMap<String, usize>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, why: String| Error::param("labels", format!("{} line {line}: {why}", path.display()));
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| bad(1, "the file is empty".into()))?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| bad(1, format!("no column `{name}` in the header")))
    };
    let (file, class) = (col("file")?, col("class")?);
    let mut out = HashMap::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(f), Some(c)) = (cells.get(file), cells.get(class)) else {
            return Err(bad(i + 1, format!("{} columns, the header has {}", cells.len(), columns.len())));
        };
        let c = c.parse().map_err(|_| bad(i + 1, format!("class `{c}` is not a class index")))?;
        if out.insert(f.to_string(), c).is_some() {
            return Err(bad(i + 1, format!("`{f}` is labelled twice")));
        }
    }
    Ok(out)
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
    let s = stats::summarize(v);
    (s.mean, s.se)
}

/// The CSV header; `merge` reads the columns `image`, `method`, `insertion`, `deletion`, `id`.
const CSV_HEADER: &str = "image,method,target,probability,insertion,deletion,id,forward_passes,explain_ms,curves_ms,\
                          insertion_first_kept,insertion_curve,deletion_curve,label\n";

/// One CSV row.
fn csv_row(image: &str, label: &str, r: &Evaluation, truth: Option<usize>) -> String {
    let join = |v: &[f32]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ");
    let ms = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64() * 1e3;
    let (ins, del) = (&r.curves.insertion, &r.curves.deletion);
    format!(
        "{image},{label},{},{},{},{},{},{},{:.1},{:.1},{:.4},{},{},{}\n",
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
        join(&del.probabilities),
        truth.map_or_else(String::new, |c| c.to_string())
    )
}

pub(super) fn run(a: EvaluateArgs) -> Result<()> {
    let started = Instant::now();
    let mut session = Session::new(read_model(&a.model)?);
    session.set_preprocess(a.preprocess.over(session.preprocess())?)?;
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
            cell: 1,
        });
    }
    let cfg = InsDelConfig { block_size: a.block, step: a.step };
    cfg.validate()?;
    // (position in the whole directory, path): the random baseline's seed follows the position,
    // so that a shard draws what the whole run draws for its images
    let mut images: Vec<(usize, PathBuf)> = list_images(&a.images)?.into_iter().enumerate().collect();
    if let Some(Shard { k, n }) = a.shard {
        images = images.into_iter().skip(k).step_by(n).collect();
    }
    images.truncate(a.limit.unwrap_or(usize::MAX));
    let labels = a.labels.as_deref().map(read_labels).transpose()?;
    let truths = images
        .iter()
        .map(|(_, p)| {
            let Some(labels) = &labels else { return Ok(None) };
            let name = p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            labels.get(&name).copied().map(Some).ok_or_else(|| {
                Error::param("labels", format!("`{name}` has no row in {}", a.labels.as_deref().unwrap_or(p).display()))
            })
        })
        .collect::<Result<Vec<Option<usize>>>>()?;
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

    let mut csv = String::from(CSV_HEADER);
    let mut stats: Vec<MethodStats> = requests.iter().map(|_| MethodStats::default()).collect();
    let mut forward_time = Duration::ZERO;
    let bar = ProgressBar::new((images.len() * requests.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("static template"),
    );
    for (k, (position, path)) in images.iter().enumerate() {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let img = image_io::read_image(path)?;
        let t0 = Instant::now();
        session.set_image(&img.data, img.width, img.height)?;
        forward_time += t0.elapsed();
        for ((label, request), st) in a.methods.iter().zip(&requests).zip(stats.iter_mut()) {
            bar.set_message(format!("{name} {label}"));
            let target = truths[k].map_or(request.target, Target::Class);
            let request = ExplainRequest { seed: a.seed.wrapping_add(*position as u64), target, ..request.clone() };
            let r = session.evaluate(&request, &cfg, None, None)?;
            st.add(&r);
            csv.push_str(&csv_row(&name, label.name(), &r, truths[k]));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let passes: usize = stats.iter().map(|s| s.passes).sum();
    print_table(&a, &stats, images.len(), threads, passes, forward_time, session.batch_plan());
    println!("mean ± standard error over images; total {:.1} s", started.elapsed().as_secs_f64());
    let scores: Vec<(String, Scores)> = a
        .methods
        .iter()
        .zip(&stats)
        .map(|(m, st)| (m.name().to_string(), [st.insertion.clone(), st.deletion.clone(), st.id.clone()]))
        .collect();
    print_statistics(&scores)?;
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
    let target = match (a.target, &a.labels) {
        (_, Some(path)) => format!("the labelled class ({})", path.display()),
        (Target::Top1, None) => "top1".to_string(),
        (Target::Class(c), None) => c.to_string(),
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

/// Per method, one score per image for Insertion, Deletion and ID (in that order), the images in
/// the same order for every method.
type Scores = [Vec<f64>; 3];

/// Mean with its 95 % interval per method and measure, then the paired difference of
/// `flows_skip` against every other method on the same images with its paired bootstrap
/// interval (all in %).
fn print_statistics(scores: &[(String, Scores)]) -> Result<()> {
    let measures = ["Insertion ↑", "Deletion ↓", "ID ↑"];
    let pct = |v: f64| format!("{:.2}", 100.0 * v);
    println!("| {:<18} | {:>26} | {:>26} | {:>26} |", "method (95 % CI)", measures[0], measures[1], measures[2]);
    println!("|{:-<20}|{:->28}|{:->28}|{:->28}|", ":", ":", ":", ":");
    for (name, s) in scores {
        let cells: Vec<String> = s
            .iter()
            .map(|v| {
                let t = stats::summarize(v);
                if t.se.is_nan() {
                    pct(t.mean)
                } else {
                    format!("{} [{}, {}]", pct(t.mean), pct(t.low), pct(t.high))
                }
            })
            .collect();
        println!("| {:<18} | {:>26} | {:>26} | {:>26} |", name, cells[0], cells[1], cells[2]);
    }
    let Some((_, ours)) = scores.iter().find(|(n, _)| n == "flows_skip") else { return Ok(()) };
    println!();
    println!(
        "| {:<18} | {:>26} | {:>26} | {:>26} |",
        "flows_skip − method",
        format!("Δ {}", measures[0]),
        format!("Δ {}", measures[1]),
        format!("Δ {}", measures[2])
    );
    println!("|{:-<20}|{:->28}|{:->28}|{:->28}|", ":", ":", ":", ":");
    for (name, other) in scores.iter().filter(|(n, _)| n != "flows_skip") {
        let mut cells = Vec::new();
        for (m, (a, b)) in ours.iter().zip(other).enumerate() {
            let d = stats::paired_bootstrap(a, b, BOOTSTRAP_RESAMPLES, m as u64)?;
            cells.push(format!("{:+.2} [{:+.2}, {:+.2}]", 100.0 * d.mean, 100.0 * d.low, 100.0 * d.high));
        }
        println!("| {:<18} | {:>26} | {:>26} | {:>26} |", name, cells[0], cells[1], cells[2]);
    }
    println!("means over images with Student-t 95 % intervals; differences paired by image, {BOOTSTRAP_RESAMPLES} bootstrap resamples (percentile interval)");
    Ok(())
}

/// Joins `evaluate` CSVs: the same header in every file, each (image, method) once; prints the
/// statistics and writes the joined rows (sorted by image, methods in first-seen order).
pub(super) fn merge(a: MergeArgs) -> Result<()> {
    let bad = |p: &Path, why: String| Error::param("merge", format!("{}: {why}", p.display()));
    let mut header: Option<String> = None;
    let mut rows: Vec<(String, String, String)> = Vec::new(); // image, method, line
    for path in &a.inputs {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let head = lines.next().ok_or_else(|| bad(path, "empty file".into()))?;
        match &header {
            Some(h) if h != head => return Err(bad(path, "its header differs from the first file's".into())),
            Some(_) => {}
            None => header = Some(head.to_string()),
        }
        for line in lines {
            let mut cells = line.splitn(3, ',');
            let (Some(image), Some(method)) = (cells.next(), cells.next()) else {
                return Err(bad(path, format!("row `{line}` has no image and method")));
            };
            rows.push((image.to_string(), method.to_string(), line.to_string()));
        }
    }
    let header = header.unwrap_or_default();
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| bad(&a.inputs[0], format!("no column `{name}`")))
    };
    let idx = [col("insertion")?, col("deletion")?, col("id")?];
    let mut methods: Vec<String> = Vec::new();
    for (_, m, _) in &rows {
        if !methods.contains(m) {
            methods.push(m.clone());
        }
    }
    rows.sort_by(|x, y| {
        x.0.cmp(&y.0).then(methods.iter().position(|m| *m == x.1).cmp(&methods.iter().position(|m| *m == y.1)))
    });
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1) {
        return Err(Error::param("merge", format!("image `{}` has two rows for `{}`", w[0].0, w[0].1)));
    }
    let images: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        v.dedup();
        v
    };
    let mut scores: Vec<(String, Scores)> = Vec::new();
    for m in &methods {
        let mine: Vec<&(String, String, String)> = rows.iter().filter(|r| &r.1 == m).collect();
        if mine.len() != images.len() {
            return Err(Error::param(
                "merge",
                format!(
                    "method `{m}` has {} of the {} images: pairing needs every method on every image",
                    mine.len(),
                    images.len()
                ),
            ));
        }
        let mut s: Scores = Default::default();
        for r in mine {
            let cells: Vec<&str> = r.2.split(',').collect();
            for (k, &c) in idx.iter().enumerate() {
                let v = cells.get(c).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| {
                    Error::param(
                        "merge",
                        format!("image `{}` method `{m}`: column {} is not a number", r.0, columns[c]),
                    )
                })?;
                s[k].push(v);
            }
        }
        scores.push((m.clone(), s));
    }
    println!("{} images, {} methods, from {} files", images.len(), methods.len(), a.inputs.len());
    print_statistics(&scores)?;
    if let Some(p) = &a.csv {
        let mut out = format!("{header}\n");
        for r in &rows {
            out.push_str(&r.2);
            out.push('\n');
        }
        std::fs::write(p, out).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}
