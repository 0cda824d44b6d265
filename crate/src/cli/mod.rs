//! Command-line interface: `resnet-lrp explain`, `resnet-lrp evaluate` and `resnet-lrp info`. A
//! thin adapter: clap parses names with the engine's own parsers ([`resnet_lrp::request`]), a
//! [`Session`] does the work, and this module prints or writes what it returns.

mod batch;
mod evaluate;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use ndarray::ArrayD;
use ndarray_npy::{read_npy, write_npy};
use resnet_lrp::external::{self, SideFiles};
use resnet_lrp::image_io;
use resnet_lrp::model::{self, Model};
use resnet_lrp::request::{ExplainRequest, MethodName, DEFAULT_VARIANT};
use resnet_lrp::session::Session;
use resnet_lrp::{Error, Method, Params, Preprocess, Result, Start, Target, Variant};
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
    Evaluate(Box<evaluate::EvaluateArgs>),
    /// Join the CSVs of several `evaluate` runs (shards) and print their statistics.
    Merge(evaluate::MergeArgs),
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
    #[arg(long, conflicts_with_all = ["input_npy", "images"], required_unless_present_any = ["input_npy", "images"])]
    image: Option<PathBuf>,
    /// A directory of images to explain one by one (with `--out`): per image an overlay PNG and the
    /// relevance `.npy` in `--out`, and one JSON line on standard output.
    #[arg(long, conflicts_with = "input_npy", requires = "out")]
    images: Option<PathBuf>,
    /// Where `--images` writes its files (created if missing).
    #[arg(long, requires = "images")]
    out: Option<PathBuf>,
    /// Preprocessed float32 tensor in the model's own input layout (bypasses preprocessing).
    #[arg(long)]
    input_npy: Option<PathBuf>,
    /// `top1` or a class index.
    #[arg(long, default_value = "top1")]
    target: Target,
    /// What to compute: a splitting variant (flows_skip, flows_skip_simple, latest, simple,
    /// conventional: LRP with `--composite`) or a baseline: gradient (gradient × input), ig
    /// (Integrated Gradients), guided_backprop, gradcam, scorecam, random [default: --variant].
    #[arg(long)]
    method: Option<MethodName>,
    /// Splitting variant when no --method is given: flows_skip, flows_skip_simple, latest, simple, conventional.
    #[arg(long, default_value_t = DEFAULT_VARIANT)]
    variant: Variant,
    /// Composite: conserving, reference, epsilon_plus, epsilon_gamma_box, epsilon_plus_flat,
    /// epsilon_alpha2_beta1 (`gradient` here is the older spelling of `--method gradient`).
    #[arg(long, default_value = "conserving")]
    composite: String,
    /// Start relevance: `prob` (softmax probability) or `logit`.
    #[arg(long, default_value = "prob")]
    start: Start,
    /// Write the input relevance as float32 .npy with the model input's shape.
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Write the channel-summed heatmap as a PNG (signed, blue–white–red).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Heat Quantization levels for the PNG (the paper uses 8; 0 = off).
    #[arg(long, default_value_t = 0)]
    quantize: usize,
    /// Average the PNG's map over CELL × CELL pixel cells before quantization (1 = per pixel; 2
    /// removes the grid a stride-2 first convolution paints). The `.npy` stays per pixel.
    #[arg(long, default_value_t = 1)]
    cell: usize,
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
        Command::Evaluate(args) => evaluate::run(*args),
        Command::Merge(args) => evaluate::merge(args),
    }
}

/// Loads the model file; a file above [`model::MAX_MODEL_BYTES`] is refused before it is read.
fn read_model(path: &Path) -> Result<Model> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::load("it is a directory").in_file(path));
    }
    model::check_model_size(meta.len()).map_err(|e| e.in_file(path))?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Model::from_onnx_owned(bytes, &mut side_files(path)).map_err(|e| e.in_file(path))
}

/// The side files of the model at `path` (its external data): files in the model's directory,
/// read when a tensor names them ([`resnet_lrp::external`] refuses locations outside it).
pub(crate) fn side_files(path: &Path) -> SideFiles {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    SideFiles::with_loader(Box::new(move |location| {
        let p = dir.join(location);
        let meta = match std::fs::metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(external::missing(location)),
            r => r.map_err(|e| Error::io(&p, e))?,
        };
        if meta.is_dir() {
            return Err(Error::load("it is a directory").in_file(&p));
        }
        model::check_model_size(meta.len()).map_err(|e| e.in_file(&p))?;
        std::fs::read(&p).map_err(|e| Error::io(&p, e))
    }))
}

/// The images of a directory (PNG, JPEG, GIF, BMP, WebP by extension), in file-name order.
pub(crate) fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
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

/// ` (name)` of class `c` when the model names its classes, else nothing.
pub(crate) fn class_suffix(model: &Model, c: usize) -> String {
    model.metadata().class_name(c).map_or_else(String::new, |n| format!(" ({n})"))
}

fn info(path: &Path) -> Result<()> {
    let model = read_model(path)?;
    println!("input: {:?}", model.input());
    match model.raw_batchnorm_graph().map_or(0, |g| g.batchnorms()) {
        0 => println!(
            "batchnorm: no BatchNormalization nodes after convolutions (folded at export, if the network had \
             any): composite `reference` applies z+ to the folded weights"
        ),
        n => println!(
            "batchnorm: {n} BatchNormalization nodes kept after convolutions: `reference` applies z+ to the raw \
             weights (BatchNorm passes relevance, as the authors); the other composites fold them first"
        ),
    }
    let meta = model.metadata();
    match &meta.preprocess {
        Some(p) => println!("preprocess (from the file): {p:?}, resize {:?}", meta.resize),
        None => println!("preprocess: none in the file (ImageNet's by default)"),
    }
    if let Some(names) = &meta.classes {
        println!("classes (from the file): {}", names.join(", "));
    }
    for (i, n) in model.graph().nodes.iter().enumerate() {
        println!("{i:4} {:12} {:?} <- {:?}  {}", n.layer.kind(), n.shape, n.inputs, n.name);
    }
    print_structure(model.graph());
    Ok(())
}

/// The residual additions (how each shortcut was identified, the split of every variant) and the
/// squeeze-excitation gates.
fn print_structure(graph: &resnet_lrp::graph::LayerGraph) {
    let residuals = resnet_lrp::lrp::residuals(graph);
    println!("residual additions: {}", residuals.len());
    for r in &residuals {
        let kind = if r.projection { "projection" } else { "identity" };
        match (r.shortcut_input, &r.shortcut, &r.main) {
            (Some(k), Some(s), Some(m)) => {
                println!("  {}: {kind} shortcut = input {k} (`{s}`), main branch = input {} (`{m}`)", r.node, 1 - k)
            }
            _ => println!("  {}: no shortcut: both inputs pass through as many weighted layers", r.node),
        }
        let splits: Vec<String> = r.splits.iter().map(|(v, s)| format!("{v}: {s}")).collect();
        println!("    {}", splits.join("; "));
    }
    let gates = resnet_lrp::lrp::gates(graph);
    if !gates.is_empty() {
        println!(
            "squeeze-excitation gates: {} (LRP treats each gate as a constant scale of its branch: the branch gets \
             all the relevance, the gate's own path none)",
            gates.len()
        );
        for g in &gates {
            println!("  {}: branch `{}` × gate `{}`", g.node, g.branch, g.gate);
        }
    }
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
    fn params(&self) -> Params {
        Params { epsilon: self.epsilon, gamma: self.gamma, alpha: self.alpha, beta: self.beta }
    }
}

/// Image preprocessing flags shared by the subcommands that read images.
#[derive(clap::Args)]
struct PreprocessArgs {
    /// Per-channel mean after scaling (model channel order), e.g. `0.485,0.456,0.406` [default: the
    /// model file's (metadata `resnet_lrp.preprocess`), else ImageNet's].
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel std, e.g. `0.229,0.224,0.225` [default: the model file's, else ImageNet's].
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Pixel scale before mean/std: 1 for [0,1], 255 for [0,255] [default: the model file's, else 1].
    #[arg(long)]
    scale: Option<f32>,
    /// Feed channels in BGR order (also when the model file says so).
    #[arg(long)]
    bgr: bool,
}

impl PreprocessArgs {
    /// The flags over `base` (the model's own preprocessing, or ImageNet's), validated.
    fn over(&self, base: &Preprocess) -> Result<Preprocess> {
        let pre = Preprocess {
            scale: self.scale.unwrap_or(base.scale),
            mean: triple(&self.mean, "mean", base.mean)?,
            std: triple(&self.std, "std", base.std)?,
            bgr: self.bgr || base.bgr,
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

impl ExplainArgs {
    /// The typed request; `--composite gradient` is the older spelling of `--method gradient`.
    fn request(&self, pre: &Preprocess) -> Result<ExplainRequest> {
        let name = match (self.method, self.composite.as_str()) {
            (Some(m), _) => m,
            (None, "gradient") => MethodName::Gradient,
            (None, _) => MethodName::Lrp(self.variant),
        };
        let method = name.method(&self.composite, &self.rules.params(), pre.bounds())?;
        Ok(ExplainRequest {
            target: self.target,
            start: self.start,
            method,
            seed: 0,
            quantize: self.quantize,
            cell: self.cell,
        })
    }
}

fn explain(a: ExplainArgs) -> Result<()> {
    let mut session = Session::new(read_model(&a.model)?);
    session.set_preprocess(a.preprocess.over(session.preprocess())?)?;
    let request = a.request(session.preprocess())?;
    if let (Some(dir), Some(out)) = (&a.images, &a.out) {
        return batch::run(&mut session, &request, dir, out);
    }
    let prediction = match (&a.image, &a.input_npy) {
        (_, Some(p)) => {
            let x: ArrayD<f32> = read_npy(p).map_err(|e| Error::InvalidInput(e.to_string()).in_file(p))?;
            session.set_input(x)?
        }
        (Some(p), None) => {
            let img = image_io::read_image(p)?;
            session.set_image(&img.data, img.width, img.height)?
        }
        (None, None) => return Err(Error::param("image", "give --image, --input-npy or --images with --out")),
    };
    let out = session.explain(&request)?;
    let e = &out.explanation;
    if let Some(p) = &a.npy {
        write_npy(p, &e.relevance).map_err(|err| Error::io(p, std::io::Error::other(err.to_string())))?;
    }
    if let Some(p) = &a.png {
        signed_png(&out.map).save(p).map_err(|err| Error::io(p, std::io::Error::other(err.to_string())))?;
    }
    if a.json {
        let out = json!({
            "target": e.target,
            "class": session.model().metadata().class_name(e.target),
            "start_relevance": e.start_relevance,
            "input_relevance_sum": e.input_relevance_sum(),
            "conservation_error": e.conservation(),
            "method": method_json(&request),
            "batchnorm": out.batchnorm,
            "logits": prediction.logits,
            "probabilities": prediction.probabilities,
            "blocks": e.blocks,
            "ledger": e.ledger,
        });
        println!("{out}");
    } else {
        let conservation = e.conservation().map_or("n/a (not an LRP method)".into(), |c| format!("{c:.2e}"));
        println!(
            "target {}{}  p={:.4}  start {:.6}  Σ input relevance {:.6}  conservation error {conservation}",
            e.target,
            class_suffix(session.model(), e.target),
            prediction.probabilities[e.target],
            e.start_relevance,
            e.input_relevance_sum(),
        );
        if let Some(note) = &out.batchnorm {
            println!("{note}");
        }
    }
    Ok(())
}

/// How the JSON outputs name the method of `request`: LRP by composite and variant, the
/// baselines by name (gradient × input keeps its older `gradient_x_input`).
fn method_json(request: &ExplainRequest) -> serde_json::Value {
    match &request.method {
        Some(Method::Lrp { composite, variant }) => json!({"composite": composite.name, "variant": variant.name()}),
        Some(Method::GradientTimesInput) => json!("gradient_x_input"),
        Some(Method::IntegratedGradients { steps }) => json!({"name": "ig", "steps": steps}),
        Some(Method::GuidedBackprop) => json!("guided_backprop"),
        Some(Method::GradCam) => json!("gradcam"),
        Some(Method::ScoreCam { channels }) => json!({"name": "scorecam", "channels": channels}),
        None => json!("random"),
    }
}

/// A signed map as a blue–white–red picture, scaled by its largest magnitude.
fn signed_png(map: &ndarray::Array2<f32>) -> image::RgbImage {
    let m = map.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let (h, w) = map.dim();
    image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let v = (map[(y as usize, x as usize)] / m).clamp(-1.0, 1.0);
        let (r, g, b) = if v >= 0.0 { (1.0, 1.0 - v, 1.0 - v) } else { (1.0 + v, 1.0 + v, 1.0) };
        image::Rgb([(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8])
    })
}
