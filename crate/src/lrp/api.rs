//! What an explanation is asked with and answered in.

use super::*;

/// Activations of one forward pass: the output of every node.
#[derive(Debug, Clone)]
pub struct Activations {
    /// Unique per forward pass: keys the cache of class-independent denominators.
    pub(super) id: u64,
    /// Shared (not copied) with the thread that computes denominators ahead of the sweep.
    pub(super) values: Arc<Vec<ArrayD<f32>>>,
    pub(super) logits: Vec<f32>,
    pub(super) probabilities: Vec<f32>,
}

impl Activations {
    /// The logits (input of a final softmax, or the model output).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Softmax of the logits.
    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// The output of node `i`.
    pub fn value(&self, i: usize) -> &ArrayD<f32> {
        &self.values[i]
    }

    /// The `k` most probable classes, best first, as `(class, probability)`.
    pub fn top_k(&self, k: usize) -> Vec<(usize, f32)> {
        let mut idx: Vec<usize> = (0..self.probabilities.len()).collect();
        idx.sort_by(|&a, &b| self.probabilities[b].total_cmp(&self.probabilities[a]));
        idx.into_iter().take(k).map(|i| (i, self.probabilities[i])).collect()
    }
}

/// What the explanation starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The softmax probability of the target (the paper).
    Probability,
    /// The target's logit (zennit's convention).
    Logit,
}

/// Which class to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The most probable class.
    Top1,
    /// A class index.
    Class(usize),
}

/// The method of one explanation.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// LRP with a composite and a splitting variant.
    Lrp {
        /// Rules per layer.
        composite: Composite,
        /// Splitting at residual additions.
        variant: Variant,
    },
    /// Gradient of the target logit times the input.
    GradientTimesInput,
    /// Integrated Gradients (Sundararajan et al. 2017) from the zero input of the model (the zero
    /// tensor in the space the model reads, after normalisation, as captum's default baseline):
    /// `x ⊙ Σ_k w_k ∇f(α_k x)` with Gauss–Legendre nodes `α_k` and weights `w_k` on [0, 1]
    /// (captum's default `gausslegendre`), `f` the target's logit.
    IntegratedGradients {
        /// Quadrature points (captum's default: 50), ≥ 1.
        steps: usize,
    },
    /// Guided Backprop (Springenberg et al. 2015): the gradient of the target logit where every
    /// ReLU (`max(x, 0)`) also zeroes negative incoming gradients; the gradient itself, not × input.
    GuidedBackprop,
    /// Grad-CAM (Selvaraju et al. 2017) at the input of the global pooling (for a ResNet, the
    /// output of the last residual stage), upsampled to the input size.
    GradCam,
    /// Score-CAM (Wang et al. 2020) at the same node, over the `channels` channels of largest mean
    /// activation (one forward pass each).
    ScoreCam {
        /// Channels used as masks, ≥ 1 (capped by the stage's channels).
        channels: usize,
    },
}

impl Method {
    /// Whether the method is meant to conserve relevance (LRP); the baselines are not.
    pub fn conserves(&self) -> bool {
        matches!(self, Method::Lrp { .. })
    }
}

/// Σ relevance at one node, in the order relevance reached it.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerEntry {
    /// Node name.
    pub node: String,
    /// Layer kind.
    pub kind: String,
    /// Σ R at the node's output.
    pub relevance: f64,
}

/// What happened at one residual addition.
#[derive(Debug, Clone, Serialize)]
pub struct BlockEntry {
    /// Name of the addition node.
    pub node: String,
    /// Whether the shortcut is a projection (else identity).
    pub projection: bool,
    /// Σ R arriving at the addition.
    pub relevance: f64,
    /// Σ R sent down the shortcut.
    pub shortcut: f64,
    /// Σ R sent down the main branch.
    pub main: f64,
    /// Σ R at the block's input once both paths are back (the next block's starting point).
    pub block_input: Option<f64>,
}

/// One explanation.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Explained class.
    pub target: usize,
    /// Relevance put on the target at the start.
    pub start_relevance: f32,
    /// Relevance of the model input, in the input's own shape and layout.
    pub relevance: ArrayD<f32>,
    /// Σ R per node, from the logits down to the input.
    pub ledger: Vec<LedgerEntry>,
    /// Per residual block.
    pub blocks: Vec<BlockEntry>,
    /// Whether the method is meant to conserve relevance ([`Method::conserves`]); for the
    /// baselines [`Explanation::conservation`] is `None`.
    pub conserves: bool,
}

impl Explanation {
    /// Σ of the input relevance.
    pub fn input_relevance_sum(&self) -> f64 {
        self.relevance.iter().map(|&v| v as f64).sum()
    }

    /// The conservation error for methods meant to conserve relevance (LRP), `None` for the
    /// baselines (gradients, CAMs, random), where it would be a meaningless number.
    pub fn conservation(&self) -> Option<f64> {
        self.conserves.then(|| self.conservation_error())
    }

    /// |Σ R_input − R_start| / |R_start| (meaningful for LRP only, see [`Self::conservation`]).
    pub fn conservation_error(&self) -> f64 {
        let s = self.start_relevance as f64;
        (self.input_relevance_sum() - s).abs() / s.abs().max(f64::MIN_POSITIVE)
    }
}
