//! Command-line interface: `resnet-lrp explain`, `resnet-lrp evaluate` and `resnet-lrp info`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::ArrayD;
use ndarray_npy::{read_npy, write_npy};
use resnet_lrp::image_io;
use resnet_lrp::metrics::{self, Masker, Runner};
use resnet_lrp::model::{self, BatchPlan};
use resnet_lrp::{heatmap, Composite, Error, Method, Model, Params, Preprocess, Result, Start, Target, Variant};
use serde_json::json;

#[derive(Parser)]
#[command(name = "resnet-lrp", version, about = "LRP heatmaps with Relevance Splitting for ONNX ResNets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain one image (or preprocessed tensor) for one class.
    Explain(Box<ExplainArgs>),
    /// Insertion, Deletion and ID of several methods over a directory of images (the paper's protocol).
    Evaluate(Box<EvaluateArgs>),
    /// Print the model's input and layer graph.
    Info {
        /// ONNX model.
        #[arg(long)]
        model: PathBuf,
    },
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Image file (PNG, JPEG, GIF, BMP, WebP).
    #[arg(long, conflicts_with = "input_npy", required_unless_present = "input_npy")]
    image: Option<PathBuf>,
    /// Preprocessed float32 tensor in the model's own input layout (bypasses preprocessing).
    #[arg(long)]
    input_npy: Option<PathBuf>,
    /// `top1` or a class index.
    #[arg(long, default_value = "top1")]
    target: String,
    /// Splitting variant: flows_skip, flows_skip_simple, latest, simple, conventional.
    #[arg(long, default_value = "flows_skip")]
    variant: String,
    /// Composite: conserving, reference, epsilon_plus, epsilon_gamma_box, epsilon_plus_flat,
    /// epsilon_alpha2_beta1; or `gradient` for gradient × input.
    #[arg(long, default_value = "conserving")]
    composite: String,
    /// Start relevance: `prob` (softmax probability) or `logit`.
    #[arg(long, default_value = "prob")]
    start: String,
    /// Write the input relevance as float32 .npy with the model input's shape.
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Write the channel-summed heatmap as a PNG (signed, blue–white–red).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Heat Quantization levels for the PNG (the paper uses 8; 0 = off).
    #[arg(long, default_value_t = 0)]
    quantize: usize,
    /// Print one JSON object with the target, relevance sums and the ledger.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    preprocess: PreprocessArgs,
}

/// Entry point of the binary.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info { model } => info(&model),
        Command::Explain(args) => explain(*args),
        Command::Evaluate(args) => evaluate(*args),
    }
}

fn read_model(path: &Path) -> Result<Model> {
    Model::from_onnx_bytes(&read_model_bytes(path)?)
}

/// The model file's bytes; a file above [`MAX_MODEL_BYTES`] is refused before it is read.
fn read_model_bytes(path: &Path) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Load(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(Error::Load(format!("{} is a directory", path.display())));
    }
    model::check_model_size(meta.len()).map_err(|e| Error::Load(format!("{}: {e}", path.display())))?;
    std::fs::read(path).map_err(io)
}

fn info(path: &Path) -> Result<()> {
    let model = read_model(path)?;
    println!("input: {:?}", model.input());
    for (i, n) in model.graph().nodes.iter().enumerate() {
        println!("{i:4} {:12} {:?} <- {:?}  {}", n.layer.kind(), n.shape, n.inputs, n.name);
    }
    Ok(())
}

/// Rule parameters over the composite's own (shared by `explain` and `evaluate`).
#[derive(clap::Args)]
struct RuleArgs {
    /// ε of the epsilon rules and the stabiliser (≥ 0).
    #[arg(long, allow_hyphen_values = true)]
    epsilon: Option<f32>,
    /// γ of the gamma rules (≥ 0; composite `epsilon_gamma_box`).
    #[arg(long, allow_hyphen_values = true)]
    gamma: Option<f32>,
    /// α of the alpha-beta rules (α − β = 1; composite `epsilon_alpha2_beta1`).
    #[arg(long, allow_hyphen_values = true)]
    alpha: Option<f32>,
    /// β of the alpha-beta rules.
    #[arg(long, allow_hyphen_values = true)]
    beta: Option<f32>,
}

impl RuleArgs {
    fn composite(&self, name: &str, pre: &Preprocess) -> Result<Composite> {
        let params = Params { epsilon: self.epsilon, gamma: self.gamma, alpha: self.alpha, beta: self.beta };
        Composite::by_name(name, pre.bounds())?.with_params(&params)
    }
}

/// Image preprocessing flags shared by the subcommands that read images.
#[derive(clap::Args)]
struct PreprocessArgs {
    /// Per-channel mean after scaling (model channel order), e.g. `0.485,0.456,0.406`.
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel std, e.g. `0.229,0.224,0.225`.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Pixel scale before mean/std: 1 for [0,1], 255 for [0,255].
    #[arg(long)]
    scale: Option<f32>,
    /// Feed channels in BGR order.
    #[arg(long)]
    bgr: bool,
}

impl PreprocessArgs {
    /// The flags over ImageNet's defaults, validated.
    fn to_preprocess(&self) -> Result<Preprocess> {
        let d = Preprocess::default();
        let pre = Preprocess {
            scale: self.scale.unwrap_or(d.scale),
            mean: triple(&self.mean, "mean", d.mean)?,
            std: triple(&self.std, "std", d.std)?,
            bgr: self.bgr,
        };
        pre.validate()?;
        Ok(pre)
    }
}

fn triple(v: &Option<Vec<f32>>, name: &str, default: [f32; 3]) -> Result<[f32; 3]> {
    match v {
        None => Ok(default),
        Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        Some(v) if v.len() == 1 => Ok([v[0]; 3]),
        Some(v) => Err(Error::param(name, format!("expects 1 or 3 values, got {}", v.len()))),
    }
}

fn explain(a: ExplainArgs) -> Result<()> {
    let model = read_model(&a.model)?;
    let pre = a.preprocess.to_preprocess()?;
    let input: ArrayD<f32> = match (&a.image, &a.input_npy) {
        (_, Some(p)) => read_npy(p).map_err(|e| Error::Shape(format!("{}: {e}", p.display())))?,
        (Some(p), None) => {
            let img = image_io::read_image(p)?;
            model.preprocess(&img.data, img.width, img.height, &pre)?
        }
        (None, None) => return Err(Error::param("image", "give --image or --input-npy")),
    };
    let target = match a.target.as_str() {
        "top1" => Target::Top1,
        t => Target::Class(
            t.parse().map_err(|_| Error::param("target", format!("`{t}` is neither `top1` nor a class index")))?,
        ),
    };
    let start = match a.start.as_str() {
        "prob" | "probability" => Start::Probability,
        "logit" => Start::Logit,
        s => return Err(Error::param("start", format!("`{s}`: use `prob` or `logit`"))),
    };
    let variant = Variant::from_name(&a.variant)?;
    let method = if a.composite == "gradient" {
        Method::GradientTimesInput
    } else {
        Method::Lrp { composite: a.rules.composite(&a.composite, &pre)?, variant }
    };
    let mut explainer = model.explainer();
    let acts = explainer.forward(input)?;
    let e = explainer.explain(&acts, target, start, &method)?;
    if let Some(p) = &a.npy {
        write_npy(p, &e.relevance).map_err(|err| Error::Shape(format!("{}: {err}", p.display())))?;
    }
    if let Some(p) = &a.png {
        let mut map = heatmap::channel_sum(&e.relevance, model.input())?;
        if a.quantize > 1 {
            map = heatmap::heat_quantize(&map, a.quantize);
        }
        let m = map.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let (h, w) = map.dim();
        let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let v = (map[(y as usize, x as usize)] / m).clamp(-1.0, 1.0);
            let (r, g, b) = if v >= 0.0 { (1.0, 1.0 - v, 1.0 - v) } else { (1.0 + v, 1.0 + v, 1.0) };
            image::Rgb([(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8])
        });
        img.save(p).map_err(|err| Error::Image(format!("{}: {err}", p.display())))?;
    }
    if a.json {
        let out = json!({
            "target": e.target,
            "start_relevance": e.start_relevance,
            "input_relevance_sum": e.input_relevance_sum(),
            "conservation_error": e.conservation_error(),
            "method": match &method { Method::Lrp { composite, variant } => json!({"composite": composite.name, "variant": variant.name()}), Method::GradientTimesInput => json!("gradient_x_input") },
            "logits": acts.logits(),
            "probabilities": acts.probabilities(),
            "blocks": e.blocks,
            "ledger": e.ledger,
        });
        println!("{out}");
    } else {
        println!(
            "target {}  p={:.4}  start {:.6}  Σ input relevance {:.6}  conservation error {:.2e}",
            e.target,
            acts.probabilities()[e.target],
            e.start_relevance,
            e.input_relevance_sum(),
            e.conservation_error()
        );
    }
    Ok(())
}

/// Every method `evaluate` knows, in the order of its table.
const EVAL_METHODS: &str = "flows_skip,flows_skip_simple,latest,simple,conventional,gradient,random";

#[derive(clap::Args)]
struct EvaluateArgs {
    /// ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Directory of images (PNG, JPEG, GIF, BMP, WebP), evaluated in file-name order.
    #[arg(long)]
    images: PathBuf,
    /// Comma-separated: splitting variants (flows_skip, flows_skip_simple, latest, simple,
    /// conventional) with `--composite`, `gradient` (gradient × input), `random` (seeded random ranking).
    #[arg(long, value_delimiter = ',', default_value = EVAL_METHODS)]
    methods: Vec<String>,
    /// LRP composite for the splitting variants.
    #[arg(long, default_value = "conserving")]
    composite: String,
    /// Heat Quantization of the ranking map (the paper uses 8; 0 = raw channel-summed relevance).
    #[arg(long, default_value_t = 0)]
    quantize: usize,
    /// `top1` or a class index.
    #[arg(long, default_value = "top1")]
    target: String,
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

/// What `evaluate` explains an image with.
enum EvalMethod {
    Explain(Method),
    Random,
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

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Image(format!("{}: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            p.is_file() && ["png", "jpg", "jpeg", "gif", "bmp", "webp"].contains(&ext.as_str())
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Error::Image(format!("no images in {}", dir.display())));
    }
    Ok(out)
}

fn evaluate(a: EvaluateArgs) -> Result<()> {
    let started = Instant::now();
    let bytes = read_model_bytes(&a.model)?;
    let model = Model::from_onnx_bytes(&bytes)?;
    let pre = a.preprocess.to_preprocess()?;
    let target = match a.target.as_str() {
        "top1" => Target::Top1,
        t => Target::Class(
            t.parse().map_err(|_| Error::param("target", format!("`{t}` is neither `top1` nor a class index")))?,
        ),
    };
    let cfg = metrics::InsDelConfig { block_size: a.block, step: a.step };
    let mut methods = Vec::new();
    for name in &a.methods {
        let m = match name.as_str() {
            "random" => EvalMethod::Random,
            "gradient" => EvalMethod::Explain(Method::GradientTimesInput),
            v => EvalMethod::Explain(Method::Lrp {
                composite: a.rules.composite(&a.composite, &pre)?,
                variant: Variant::from_name(v)?,
            }),
        };
        methods.push((name.clone(), m));
    }
    let mut images = list_images(&a.images)?;
    images.truncate(a.limit.unwrap_or(usize::MAX));

    let batch_plan = match a.batch {
        0 | 1 => None,
        b => match BatchPlan::from_onnx_bytes(&model, &bytes, b) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: no batched plan ({e}); running one image at a time");
                None
            }
        },
    };
    let threads =
        a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    let mut runner = Runner::new(&model).with_threads(threads);
    if let Some(p) = &batch_plan {
        runner = runner.with_batch(p);
    }

    let mut csv = String::from(
        "image,method,target,probability,insertion,deletion,id,forward_passes,explain_ms,curves_ms,\
         insertion_first_kept,insertion_curve,deletion_curve\n",
    );
    let mut stats: Vec<MethodStats> = methods.iter().map(|_| MethodStats::default()).collect();
    let mut forward_time = Duration::ZERO;
    let bar = ProgressBar::new((images.len() * methods.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("static template"),
    );
    let mut explainer = model.explainer();
    for (k, path) in images.iter().enumerate() {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let img = image_io::read_image(path)?;
        let t0 = Instant::now();
        let pixels = model.resize_rgba(&img.data, img.width, img.height)?;
        let masker = Masker::new(&model, &pixels, &pre)?;
        let acts = explainer.forward(masker.full().clone())?;
        forward_time += t0.elapsed();
        let class = match target {
            Target::Class(c) if c < acts.probabilities().len() => c,
            Target::Class(c) => {
                return Err(Error::param("target", format!("class {c} of {}", acts.probabilities().len())))
            }
            Target::Top1 => acts.top_k(1)[0].0,
        };
        for ((label, method), st) in methods.iter().zip(stats.iter_mut()) {
            bar.set_message(format!("{name} {label}"));
            let t1 = Instant::now();
            let map = match method {
                EvalMethod::Random => {
                    let inp = model.input();
                    metrics::random_map(inp.height, inp.width, a.seed.wrapping_add(k as u64))
                }
                EvalMethod::Explain(m) => {
                    let e = explainer.explain(&acts, Target::Class(class), Start::Probability, m)?;
                    metrics::ranking_map(&e.relevance, model.input(), a.quantize)?
                }
            };
            let explain_time = t1.elapsed();
            let t2 = Instant::now();
            let r = metrics::insertion_deletion(&masker, &runner, &map, class, &cfg)?;
            let curves_time = t2.elapsed();
            st.insertion.push(r.insertion.auc);
            st.deletion.push(r.deletion.auc);
            st.id.push(r.id());
            st.explain += explain_time;
            st.curves += curves_time;
            st.passes += r.forward_passes();
            let pixels = (model.input().height * model.input().width) as f64;
            let join = |v: &[f32]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ");
            csv.push_str(&format!(
                "{name},{label},{class},{},{},{},{},{},{:.1},{:.1},{:.4},{},{}\n",
                acts.probabilities()[class],
                r.insertion.auc,
                r.deletion.auc,
                r.id(),
                r.forward_passes(),
                explain_time.as_secs_f64() * 1e3,
                curves_time.as_secs_f64() * 1e3,
                r.insertion.kept[0] as f64 / pixels,
                join(&r.insertion.probabilities),
                join(&r.deletion.probabilities)
            ));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let n = images.len();
    let ranking = if a.quantize > 1 { format!("heat-quantized ({} levels)", a.quantize) } else { "raw".to_string() };
    println!(
        "{}: {n} images, target {}, composite {}, ranking {ranking}, step {}, block {}",
        a.model.display(),
        a.target,
        a.composite,
        a.step,
        a.block
    );
    println!(
        "forward passes of the curves: {} images, {} per batch, {threads} threads; resize + forward pass keeping the activations LRP reads once per image ({:.0} ms/image)",
        runner.forward_passes(),
        batch_plan.as_ref().map_or(1, BatchPlan::batch),
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
    for ((label, _), st) in methods.iter().zip(&stats) {
        println!(
            "| {:<18} | {:>13} | {:>13} | {:>13} | {:>14.0} | {:>13.0} | {:>13.1} |",
            label,
            pm(&st.insertion),
            pm(&st.deletion),
            pm(&st.id),
            st.explain.as_secs_f64() * 1e3 / n as f64,
            st.curves.as_secs_f64() * 1e3 / n as f64,
            st.passes as f64 / n as f64
        );
    }
    println!();
    println!("mean ± standard error over images; total {:.1} s", started.elapsed().as_secs_f64());
    if let Some(p) = &a.csv {
        std::fs::write(p, csv).map_err(|e| Error::Image(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}
