//! The options of one explanation or evaluation as the page sends them (a JSON-like record),
//! turned into the engine's types with errors that name the offending field. The wasm boundary
//! and the tests read options through here, so both validate the same way.

use serde::Deserialize;

use crate::composite::{Composite, Params};
use crate::error::{Error, Result};
use crate::lrp::{Method, Start, Target};
use crate::metrics::InsDelConfig;
use crate::split::Variant;

/// Options of an explanation; every field is optional (`camelCase` in JavaScript).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExplainOptions {
    /// Class index; absent = top-1.
    pub target: Option<i64>,
    /// `"lrp"` (default) or `"gradient"` (gradient × input); evaluations also take `"random"`.
    pub method: Option<String>,
    /// Composite name (default `conserving`).
    pub composite: Option<String>,
    /// Variant name (default `flows_skip`).
    pub variant: Option<String>,
    /// `"prob"` (default) or `"logit"`.
    pub start: Option<String>,
    /// Heat quantization levels for the returned map (0, 1 or absent = off).
    pub quantize: Option<usize>,
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
        match self.start.as_deref() {
            None | Some("prob") | Some("probability") => Ok(Start::Probability),
            Some("logit") => Ok(Start::Logit),
            Some(s) => Err(Error::param("start", format!("`{s}`: use `prob` or `logit`"))),
        }
    }

    /// Whether the method is the random-ranking baseline (evaluations only).
    pub fn is_random(&self) -> bool {
        self.method.as_deref() == Some("random")
    }

    /// The method; `zbox` = the input's per-channel `(low, high)` bounds for `epsilon_gamma_box`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown method, composite or variant, or rule parameters
    /// out of range.
    pub fn method(&self, zbox: (Vec<f32>, Vec<f32>)) -> Result<Method> {
        match self.method.as_deref() {
            Some("gradient") => Ok(Method::GradientTimesInput),
            None | Some("lrp") => Ok(Method::Lrp {
                composite: Composite::by_name(self.composite.as_deref().unwrap_or("conserving"), zbox)?
                    .with_params(&self.params)?,
                variant: Variant::from_name(self.variant.as_deref().unwrap_or("flows_skip"))?,
            }),
            Some(m) => Err(Error::param("method", format!("`{m}`: use `lrp`, `gradient` or `random`"))),
        }
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
        let cfg = InsDelConfig::default();
        ProtocolOptions { block: cfg.block_size, step: cfg.step, seed: 0 }
    }
}

impl ProtocolOptions {
    /// The curve configuration.
    pub fn config(&self) -> InsDelConfig {
        InsDelConfig { block_size: self.block, step: self.step }
    }
}
