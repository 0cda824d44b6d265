//! Requests: the names a user types or the page sends, turned into the engine's typed choices.
//! Each choice has one [`FromStr`] that the CLI (clap's value parser) and the page (the serde
//! record [`ExplainOptions`], read through the same parsers) share, so both accept and refuse the
//! same words with the same message; the defaults and limits the page shows come from
//! [`capabilities`].
//!
//! One word for what is computed: the **method** is `flows_skip | flows_skip_simple | latest |
//! simple | conventional` (LRP with that splitting variant), or a baseline: `gradient` (gradient ×
//! input), `ig` (Integrated Gradients), `guided_backprop`, `gradcam`, `scorecam` or `random` (a
//! seeded random ranking); the **composite** (which LRP rule on which layer) is chosen separately. For the page's older form, `method: "lrp"` with a separate
//! `variant` means the same as naming the variant.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::composite::{Composite, Params, COMPOSITES};
use crate::error::{Error, Result};
use crate::lrp::{Method, Start, Target, IG_STEPS, SCORE_CAM_CHANNELS};
use crate::metrics::{InsDelConfig, DEFAULT_BLOCK, DEFAULT_STEP};
use crate::model::MAX_MODEL_BYTES;
use crate::preprocess::Preprocess;
use crate::split::{Variant, VARIANTS};

/// The composite explanations use unless told otherwise.
pub const DEFAULT_COMPOSITE: &str = "conserving";
/// The splitting variant explanations use unless told otherwise.
pub const DEFAULT_VARIANT: Variant = Variant::FlowsSkip;
/// Heat quantization levels of an evaluation's ranking map unless told otherwise (the paper's 8).
pub const EVAL_QUANTIZE: usize = 8;

impl FromStr for Target {
    type Err = Error;
    /// `top1` or a class index.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "top1" => Ok(Target::Top1),
            t => t
                .parse()
                .map(Target::Class)
                .map_err(|_| Error::param("target", format!("`{t}` is neither `top1` nor a class index"))),
        }
    }
}

impl FromStr for Start {
    type Err = Error;
    /// `prob` (or `probability`) or `logit`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "prob" | "probability" => Ok(Start::Probability),
            "logit" => Ok(Start::Logit),
            s => Err(Error::param("start", format!("`{s}`: use `prob` or `logit`"))),
        }
    }
}

impl FromStr for Variant {
    type Err = Error;
    /// A variant's [`Variant::name`].
    fn from_str(s: &str) -> Result<Self> {
        Variant::from_name(s)
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is computed: LRP with a splitting variant, or one of the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodName {
    /// LRP with this splitting variant (and a composite chosen separately).
    Lrp(Variant),
    /// Gradient × input.
    Gradient,
    /// Integrated Gradients ([`Method::IntegratedGradients`], [`IG_STEPS`] points).
    IntegratedGradients,
    /// Guided Backprop ([`Method::GuidedBackprop`]).
    GuidedBackprop,
    /// Grad-CAM ([`Method::GradCam`]).
    GradCam,
    /// Score-CAM ([`Method::ScoreCam`], [`SCORE_CAM_CHANNELS`] channels).
    ScoreCam,
    /// A seeded random ranking of the pixels.
    Random,
}

/// The baselines, in the order of the evaluation's table (after the splitting variants).
const BASELINES: [MethodName; 6] = [
    MethodName::Gradient,
    MethodName::IntegratedGradients,
    MethodName::GuidedBackprop,
    MethodName::GradCam,
    MethodName::ScoreCam,
    MethodName::Random,
];

impl MethodName {
    /// The name, as [`FromStr`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            MethodName::Lrp(v) => v.name(),
            MethodName::Gradient => "gradient",
            MethodName::IntegratedGradients => "ig",
            MethodName::GuidedBackprop => "guided_backprop",
            MethodName::GradCam => "gradcam",
            MethodName::ScoreCam => "scorecam",
            MethodName::Random => "random",
        }
    }

    /// Every method, in the order of the evaluation's table: the variants, then the baselines.
    pub fn all() -> Vec<MethodName> {
        VARIANTS.iter().map(|&v| MethodName::Lrp(v)).chain(BASELINES).collect()
    }

    /// The engine's [`Method`] with composite `composite` and rule parameters `params`
    /// (`zbox`: the input's per-channel bounds for `epsilon_gamma_box`); `None` for
    /// [`MethodName::Random`], which explains nothing.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown composite or parameters out of range.
    pub fn method(self, composite: &str, params: &Params, zbox: (Vec<f32>, Vec<f32>)) -> Result<Option<Method>> {
        Ok(match self {
            MethodName::Lrp(variant) => {
                Some(Method::Lrp { composite: Composite::by_name(composite, zbox)?.with_params(params)?, variant })
            }
            MethodName::Gradient => Some(Method::GradientTimesInput),
            MethodName::IntegratedGradients => Some(Method::IntegratedGradients { steps: IG_STEPS }),
            MethodName::GuidedBackprop => Some(Method::GuidedBackprop),
            MethodName::GradCam => Some(Method::GradCam),
            MethodName::ScoreCam => Some(Method::ScoreCam { channels: SCORE_CAM_CHANNELS }),
            MethodName::Random => None,
        })
    }
}

impl FromStr for MethodName {
    type Err = Error;
    /// A [`MethodName::name`]; `lrp` is the default variant.
    fn from_str(s: &str) -> Result<Self> {
        if s == "lrp" {
            return Ok(MethodName::Lrp(DEFAULT_VARIANT));
        }
        match BASELINES.into_iter().find(|m| m.name() == s) {
            Some(m) => Ok(m),
            None => Variant::from_name(s).map(MethodName::Lrp).map_err(|_| {
                let known: Vec<&str> = MethodName::all().into_iter().map(MethodName::name).collect();
                Error::param("method", format!("`{s}`: use `lrp`, {}", known.join(", ")))
            }),
        }
    }
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for asking the explainer itself for the random ranking (a session draws it).
pub(crate) fn random_explains_nothing() -> Error {
    Error::param("method", "`random` is a seeded random map a session draws, not a method of the explainer")
}

/// What one explanation (or the ranking of one evaluation) is asked with, typed.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// The class.
    pub target: Target,
    /// The start relevance.
    pub start: Start,
    /// The method; `None` is the random ranking.
    pub method: Option<Method>,
    /// Seed of the random ranking.
    pub seed: u64,
    /// Heat quantization levels of the returned map (0 or 1: off).
    pub quantize: usize,
    /// Side of the pixel cells the returned map is averaged over before heat quantization
    /// ([`crate::heatmap::map_in_cells`]; 0 or 1: per pixel). Display only: the relevance and
    /// the rankings of an evaluation stay per pixel.
    pub cell: usize,
}

/// Options of an explanation as the page sends them; every field is optional (`camelCase` in
/// JavaScript).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExplainOptions {
    /// Class index; absent = top-1.
    pub target: Option<i64>,
    /// A [`MethodName`], or `"lrp"` (default) with [`Self::variant`].
    pub method: Option<String>,
    /// Composite name (default `conserving`).
    pub composite: Option<String>,
    /// Variant name (default `flows_skip`) when `method` is `"lrp"` or absent.
    pub variant: Option<String>,
    /// `"prob"` (default) or `"logit"`.
    pub start: Option<String>,
    /// Heat quantization levels for the returned map (0, 1 or absent = off).
    pub quantize: Option<usize>,
    /// Cells the returned map is averaged over before quantization (0, 1 or absent = per pixel;
    /// see [`ExplainRequest::cell`]).
    pub cell: Option<usize>,
    /// Rule parameters over the composite's own: `epsilon`, `gamma`, `alpha`, `beta`.
    #[serde(flatten)]
    pub params: Params,
}

impl ExplainOptions {
    /// The target class.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a negative class (a class past the model's last is reported
    /// by [`crate::Explainer::explain`]).
    pub fn target(&self) -> Result<Target> {
        match self.target {
            None => Ok(Target::Top1),
            Some(c) if c < 0 => Err(Error::param("target", format!("class {c} is negative"))),
            Some(c) => Ok(Target::Class(usize::try_from(c).unwrap_or(usize::MAX))),
        }
    }

    /// The start relevance.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown name.
    pub fn start(&self) -> Result<Start> {
        self.start.as_deref().map_or(Ok(Start::Probability), str::parse)
    }

    /// What is computed.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown method or variant, or a variant that contradicts
    /// the method.
    pub fn method_name(&self) -> Result<MethodName> {
        let variant = self.variant.as_deref().map(Variant::from_name).transpose()?;
        match self.method.as_deref() {
            None | Some("lrp") => Ok(MethodName::Lrp(variant.unwrap_or(DEFAULT_VARIANT))),
            Some(m) => match (m.parse()?, variant) {
                (MethodName::Lrp(a), Some(b)) if a != b => {
                    Err(Error::param("variant", format!("`{}` contradicts method `{m}`", b.name())))
                }
                (name, _) => Ok(name),
            },
        }
    }

    /// Whether the method is the random-ranking baseline (evaluations only).
    pub fn is_random(&self) -> bool {
        matches!(self.method_name(), Ok(MethodName::Random))
    }

    /// The method; `zbox` = the input's per-channel `(low, high)` bounds for `epsilon_gamma_box`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown method, composite or variant, rule parameters out
    /// of range, or `random` (which is not an explanation).
    pub fn method(&self, zbox: (Vec<f32>, Vec<f32>)) -> Result<Method> {
        self.method_or_random(zbox)?.ok_or_else(random_explains_nothing)
    }

    /// The method, `None` for the random ranking.
    fn method_or_random(&self, zbox: (Vec<f32>, Vec<f32>)) -> Result<Option<Method>> {
        let composite = self.composite.as_deref().unwrap_or(DEFAULT_COMPOSITE);
        self.method_name()?.method(composite, &self.params, zbox)
    }

    /// The typed request; `zbox` as in [`Self::method`], `seed` for the random ranking,
    /// `quantize` the default levels.
    ///
    /// # Errors
    /// As [`Self::target`], [`Self::start`] and [`Self::method`] (`random` allowed).
    pub fn request(&self, zbox: (Vec<f32>, Vec<f32>), seed: u64, quantize: usize) -> Result<ExplainRequest> {
        let method = self.method_or_random(zbox)?;
        Ok(ExplainRequest {
            target: self.target()?,
            start: self.start()?,
            method,
            seed,
            quantize: self.quantize.unwrap_or(quantize),
            cell: self.cell.unwrap_or(1),
        })
    }
}

/// The protocol options of an evaluation (read from the same record as its [`ExplainOptions`]).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProtocolOptions {
    /// Patch side in pixels.
    pub block: usize,
    /// Patches per step.
    pub step: usize,
    /// Seed of the random ranking.
    pub seed: u64,
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        ProtocolOptions { block: DEFAULT_BLOCK, step: DEFAULT_STEP, seed: 0 }
    }
}

impl ProtocolOptions {
    /// The curve configuration.
    pub fn config(&self) -> InsDelConfig {
        InsDelConfig { block_size: self.block, step: self.step }
    }
}

/// Defaults of a request, as [`capabilities`] reports them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    /// Method of the page's protocol.
    pub method: &'static str,
    /// Composite.
    pub composite: &'static str,
    /// Splitting variant.
    pub variant: &'static str,
    /// Start relevance.
    pub start: &'static str,
    /// Heat quantization of an evaluation's ranking.
    pub eval_quantize: usize,
    /// Patch side of the curves.
    pub block: usize,
    /// Patches per step of the curves.
    pub step: usize,
    /// Quadrature points of Integrated Gradients (`ig`): forward and backward passes.
    pub ig_steps: usize,
    /// Channels Score-CAM (`scorecam`) uses as masks: forward passes.
    pub score_cam_channels: usize,
}

/// Limits the engine enforces.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest model file accepted, in bytes.
    pub max_model_bytes: u64,
}

/// What this engine offers, for front ends that must not repeat its constants.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// The crate version.
    pub version: &'static str,
    /// Every method name, in the order of the evaluation's table (the protocol's `method`; the
    /// older `lrp` with a separate `variant` is accepted too).
    pub methods: Vec<&'static str>,
    /// Splitting variants.
    pub variants: Vec<&'static str>,
    /// Registered composites.
    pub composites: Vec<&'static str>,
    /// Defaults.
    pub defaults: Defaults,
    /// ImageNet preprocessing (the default).
    pub preprocess: Preprocess,
    /// Limits.
    pub limits: Limits,
    /// Whether this build can run explanations on a thread pool.
    pub threads: bool,
}

/// What this engine offers: names, defaults and limits.
pub fn capabilities() -> Capabilities {
    Capabilities {
        version: env!("CARGO_PKG_VERSION"),
        methods: MethodName::all().into_iter().map(MethodName::name).collect(),
        variants: VARIANTS.iter().map(|v| v.name()).collect(),
        composites: COMPOSITES.to_vec(),
        defaults: Defaults {
            method: "lrp",
            composite: DEFAULT_COMPOSITE,
            variant: DEFAULT_VARIANT.name(),
            start: "prob",
            eval_quantize: EVAL_QUANTIZE,
            block: DEFAULT_BLOCK,
            step: DEFAULT_STEP,
            ig_steps: IG_STEPS,
            score_cam_channels: SCORE_CAM_CHANNELS,
        },
        preprocess: Preprocess::default(),
        limits: Limits { max_model_bytes: MAX_MODEL_BYTES },
        threads: cfg!(feature = "threads"),
    }
}
