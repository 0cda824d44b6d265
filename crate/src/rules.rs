//! LRP rules for weighted layers (convolutions and dense layers), as data.
//!
//! A [`Rule`] is interpreted by one generic routine in [`crate::lrp`], built from four
//! pieces: an input modifier, a weight modifier, a stabilised division and the
//! back-projection (a transposed convolution). Each rule expands into one or more
//! [`Propagation`]s; alpha-beta is the only rule with two.
//!
//! # References
//! Bach et al. 2015 (LRP-0, epsilon, alpha-beta); Montavon et al. 2017 (z⁺, zB);
//! Montavon et al. 2019, *Layer-wise relevance propagation: an overview* (gamma, flat, w²);
//! Otsuki et al. 2024, *Layer-Wise Relevance Propagation with Conservation Property for
//! ResNet* (z⁺ everywhere, the first layer with its input replaced by ones).
//!
//! This module is the example to follow for a new rule: a new arm of [`Rule`] (data, no code
//! path of its own) and a naive closed-form twin in `tests/native/rules.rs` that it is proven
//! against.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How one weighted layer redistributes relevance to its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// `R_i = a_i w_ij / (z_j + ε sign z_j) R_j` with the bias in `z`; `epsilon = 0` is LRP-0.
    Epsilon {
        /// Stabiliser, ≥ 0.
        epsilon: f32,
    },
    /// `z⁺`: only positive contributions `a⁺w⁺ + a⁻w⁻`, bias left out.
    ZPlus,
    /// The authors' first-layer rule: `z⁺` with the input replaced by ones (zero padding
    /// still applies), so the image acts only through the deeper activations.
    ZPlusOnes,
    /// Gamma: weights `w + γ w⁺` (and bias `b + γ b⁺`).
    Gamma {
        /// Emphasis on positive contributions, ≥ 0.
        gamma: f32,
    },
    /// Alpha-beta: `α` times the positive part minus `β` times the negative part, `α − β = 1`.
    AlphaBeta {
        /// Weight of positive contributions.
        alpha: f32,
        /// Weight of negative contributions.
        beta: f32,
    },
    /// Flat: input and weights replaced by ones; spreads relevance evenly over the receptive field.
    Flat,
    /// w²: input replaced by ones, weights squared.
    WSquare,
    /// Pass: the relevance goes through unchanged (only for layers whose input and output
    /// have the same shape).
    Pass,
    /// zB (box rule) for the first layer, with per-channel input bounds `low ≤ x ≤ high`.
    ZBox {
        /// Lower bound per input channel (one value broadcasts).
        low: Vec<f32>,
        /// Upper bound per input channel (one value broadcasts).
        high: Vec<f32>,
    },
}

/// What the input activations are replaced by in one term.
#[derive(Debug, Clone, PartialEq)]
pub enum InputMod {
    /// `a`
    Identity,
    /// ones (zero padding is still zero)
    Ones,
    /// `max(a, 0)`
    Positive,
    /// `min(a, 0)`
    Negative,
    /// a per-channel constant (zB bounds)
    Channel(Vec<f32>),
}

/// What the weights are replaced by in one term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightMod {
    /// `w`
    Identity,
    /// `max(w, 0)`
    Positive,
    /// `min(w, 0)`
    Negative,
    /// ones
    Ones,
    /// `w²`
    Square,
    /// `w + γ max(w, 0)`
    GammaPlus(f32),
}

impl WeightMod {
    /// Applies the modifier to one weight.
    pub fn apply(self, w: f32) -> f32 {
        match self {
            WeightMod::Identity => w,
            WeightMod::Positive => w.max(0.0),
            WeightMod::Negative => w.min(0.0),
            WeightMod::Ones => 1.0,
            WeightMod::Square => w * w,
            WeightMod::GammaPlus(g) => w + g * w.max(0.0),
        }
    }

    /// A hashable key (the gamma value by its bits).
    pub fn key(self) -> (u8, u32) {
        match self {
            WeightMod::Identity => (0, 0),
            WeightMod::Positive => (1, 0),
            WeightMod::Negative => (2, 0),
            WeightMod::Ones => (3, 0),
            WeightMod::Square => (4, 0),
            WeightMod::GammaPlus(g) => (5, g.to_bits()),
        }
    }
}

/// One signed term `sign · conv(input_mod(a), weight_mod(W))` of a rule's denominator.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// Input modifier.
    pub input: InputMod,
    /// Weight modifier.
    pub weight: WeightMod,
    /// +1 or −1.
    pub sign: f32,
}

/// One stabilised propagation: `z = Σ terms + bias'`, `s = R / stab(z)`,
/// `R_in = Σ sign · input' ⊙ convᵀ(s, W')`.
#[derive(Debug, Clone, PartialEq)]
pub struct Propagation {
    /// The terms of `z` (and of the back-projection).
    pub terms: Vec<Term>,
    /// Modifier applied to the bias, or `None` to leave the bias out of `z`.
    pub bias: Option<WeightMod>,
}

/// Denominators of at most this magnitude count as zero wherever a rule may divide by one: with
/// `conserve`, the relevance of such an output goes to the flat fallback (weighted layers) or is
/// spread evenly over its window (pools) instead of being divided by (almost) nothing. One
/// threshold for every layer kind, so that an output is "zero" or not whatever layer it is in.
pub const ZERO_DENOMINATOR: f32 = 1e-25;

/// How a denominator is kept away from zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stabilizer {
    /// ε ≥ 0.
    pub epsilon: f32,
    /// `z + ε·sign(z)` if true (zennit), `z + ε` if false (the authors' code).
    pub signed: bool,
}

impl Stabilizer {
    /// Stabilises one denominator.
    pub fn apply(self, z: f32) -> f32 {
        if self.signed {
            z + if z >= 0.0 { self.epsilon } else { -self.epsilon }
        } else {
            z + self.epsilon
        }
    }
}

fn term(input: InputMod, weight: WeightMod, sign: f32) -> Term {
    Term { input, weight, sign }
}

impl Rule {
    /// Checks parameter ranges.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        match self {
            Rule::Epsilon { epsilon } if !(*epsilon >= 0.0 && epsilon.is_finite()) => {
                Err(Error::param("epsilon", format!("must be a finite number ≥ 0, got {epsilon}")))
            }
            Rule::Gamma { gamma } if !(*gamma >= 0.0 && gamma.is_finite()) => {
                Err(Error::param("gamma", format!("must be a finite number ≥ 0, got {gamma}")))
            }
            Rule::AlphaBeta { alpha, beta } => {
                if !(alpha.is_finite() && beta.is_finite() && *alpha >= 0.0 && *beta >= 0.0) {
                    Err(Error::param("alpha", "alpha and beta must be finite and ≥ 0"))
                } else if ((alpha - beta) - 1.0).abs() > 1e-6 {
                    Err(Error::param("alpha", format!("alpha − beta must be 1, got {alpha} − {beta}")))
                } else {
                    Ok(())
                }
            }
            Rule::ZBox { low, high } => {
                if low.is_empty() || low.len() != high.len() {
                    Err(Error::param("low", "low and high need the same, non-zero length"))
                } else if low
                    .iter()
                    .zip(high)
                    .any(|(l, h)| l.partial_cmp(h).is_none_or(|o| o == std::cmp::Ordering::Greater))
                {
                    Err(Error::param("low", "low must be ≤ high for every channel"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Expands the rule into weighted propagations `(coefficient, propagation)`.
    pub fn propagations(&self) -> Vec<(f32, Propagation)> {
        use InputMod as I;
        use WeightMod as W;
        let one = |terms: Vec<Term>, bias: Option<WeightMod>| vec![(1.0, Propagation { terms, bias })];
        match self {
            Rule::Epsilon { .. } => one(vec![term(I::Identity, W::Identity, 1.0)], Some(W::Identity)),
            Rule::ZPlus => one(vec![term(I::Positive, W::Positive, 1.0), term(I::Negative, W::Negative, 1.0)], None),
            Rule::ZPlusOnes => one(vec![term(I::Ones, W::Positive, 1.0)], None),
            Rule::Gamma { gamma } => {
                one(vec![term(I::Identity, W::GammaPlus(*gamma), 1.0)], Some(W::GammaPlus(*gamma)))
            }
            Rule::AlphaBeta { alpha, beta } => vec![
                (
                    *alpha,
                    Propagation {
                        terms: vec![term(I::Positive, W::Positive, 1.0), term(I::Negative, W::Negative, 1.0)],
                        bias: Some(W::Positive),
                    },
                ),
                (
                    -*beta,
                    Propagation {
                        terms: vec![term(I::Positive, W::Negative, 1.0), term(I::Negative, W::Positive, 1.0)],
                        bias: Some(W::Negative),
                    },
                ),
            ],
            Rule::Pass => vec![],
            Rule::Flat => one(vec![term(I::Ones, W::Ones, 1.0)], None),
            Rule::WSquare => one(vec![term(I::Ones, W::Square, 1.0)], None),
            Rule::ZBox { low, high } => one(
                vec![
                    term(I::Identity, W::Identity, 1.0),
                    term(I::Channel(low.clone()), W::Positive, -1.0),
                    term(I::Channel(high.clone()), W::Negative, -1.0),
                ],
                None,
            ),
        }
    }

    /// The stabiliser a rule uses unless the composite overrides it.
    pub fn default_stabilizer(&self) -> Stabilizer {
        match self {
            Rule::Epsilon { epsilon } => Stabilizer { epsilon: *epsilon, signed: true },
            _ => Stabilizer { epsilon: 1e-6, signed: true },
        }
    }
}
