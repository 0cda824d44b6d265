//! Command-line interface: `resnet-lrp explain` and `resnet-lrp info`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use ndarray::ArrayD;
use ndarray_npy::{read_npy, write_npy};
use resnet_lrp::{heatmap, Composite, Error, Method, Model, Preprocess, Result, Start, Target, Variant};
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

/// Entry point of the binary.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info { model } => info(&model),
        Command::Explain(args) => explain(*args),
    }
}

fn read_model(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|e| Error::Load(format!("{}: {e}", path.display())))?;
    Model::from_onnx_bytes(&bytes)
}

fn info(path: &Path) -> Result<()> {
    let model = read_model(path)?;
    println!("input: {:?}", model.input());
    for (i, n) in model.graph().nodes.iter().enumerate() {
        println!("{i:4} {:12} {:?} <- {:?}  {}", n.layer.kind(), n.shape, n.inputs, n.name);
    }
    Ok(())
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
    let d = Preprocess::default();
    let pre = Preprocess {
        scale: a.scale.unwrap_or(d.scale),
        mean: triple(&a.mean, "mean", d.mean)?,
        std: triple(&a.std, "std", d.std)?,
        bgr: a.bgr,
    };
    pre.validate()?;
    let input: ArrayD<f32> = match (&a.image, &a.input_npy) {
        (_, Some(p)) => read_npy(p).map_err(|e| Error::Shape(format!("{}: {e}", p.display())))?,
        (Some(p), None) => {
            let img = image::open(p).map_err(|e| Error::Image(format!("{}: {e}", p.display())))?.to_rgba8();
            let (w, h) = img.dimensions();
            model.preprocess(img.as_raw(), w as usize, h as usize, &pre)?
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
        Method::Lrp { composite: Composite::by_name(&a.composite, pre.bounds())?, variant }
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
