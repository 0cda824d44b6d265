//! Composites: which rule goes on which layer, registered under snake_case names.
//!
//! `reference` follows the authors' code (Otsuki et al. 2024) with two differences, both
//! invisible on their models: a 0/0 split ratio (|s| + |m| = 0 at a residual addition) is ½
//! here, in `reference` as in `conserving`, where their code gives NaN; and z⁺ on an input of
//! either sign is `a⁺W⁺ + a⁻W⁻` (as zennit's `ZPlus`), where their code computes `conv(a, W⁺)`.
//! The two agree wherever the input is ≥ 0 (after a ReLU, i.e. every conv of a torchvision
//! ResNet but the first, whose input is replaced by ones); they differ on linear bottlenecks
//! such as EfficientNet-Lite0's, whose convs read signed activations.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rules::{Rule, Stabilizer};

/// How relevance goes back through max pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxPoolRule {
    /// All of a window's relevance to its maximum (the gradient's routing); conserves.
    WinnerTakeAll,
    /// The authors' substitute: a 2×2 stride-2 average pool over the max pool's input,
    /// z-rule with `ε`. Loses the relevance of windows whose inputs are all zero.
    AvgSubstitute,
}

/// A complete assignment of rules to layer kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composite {
    /// Registered name.
    pub name: String,
    /// Rule for the first weighted layer (the one reading the image).
    pub first: Rule,
    /// Rule for every other convolution.
    pub conv: Rule,
    /// Rule for dense layers (`Gemm`, `MatMul`).
    pub dense: Rule,
    /// Stabiliser for z⁺ / flat / w² / zB / gamma denominators, and ε of the pooling rules.
    pub stabilizer: Stabilizer,
    /// Max pooling.
    pub maxpool: MaxPoolRule,
    /// Where a denominator is zero (|z| ≤ [`crate::rules::ZERO_DENOMINATOR`], in weighted
    /// layers and pools alike), spread the relevance flat over the receptive field instead of
    /// dividing by (almost) nothing and dropping it. Makes the pass conserving. (0/0 split
    /// ratios at residual additions are ½ in every composite, this one or not: see
    /// [`crate::split::Split::Ratio`].)
    pub conserve: bool,
    /// On a file that keeps its `BatchNormalization` nodes: rules act on the raw convolution
    /// weights and BatchNorm passes relevance, as in the authors' code (`reference`). Otherwise
    /// BatchNorm is folded into the convolution first, as zennit's canonizer does, so that a
    /// network gives the same map from either export form. On a file whose BatchNorm was folded
    /// at export the raw weights are gone and this has no effect.
    #[serde(default)]
    pub raw_batchnorm: bool,
}

/// Rule parameters a user may set on a named composite; `None` keeps the composite's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// ε of every epsilon rule and of the composite's stabiliser.
    pub epsilon: Option<f32>,
    /// γ of every gamma rule.
    pub gamma: Option<f32>,
    /// α of every alpha-beta rule (β = α − 1 unless given).
    pub alpha: Option<f32>,
    /// β of every alpha-beta rule (α = β + 1 unless given).
    pub beta: Option<f32>,
}

/// The authors' ε.
pub const REFERENCE_EPSILON: f32 = 1e-5;

/// Per-channel `(low, high)` bounds of the input, for the z^B rule.
type ZBox = (Vec<f32>, Vec<f32>);

/// A composite's definition: its rules, given the input bounds.
type Definition = fn(ZBox) -> Composite;

/// The registered composites, each name beside its definition (zennit's
/// `@register_composite`). [`COMPOSITES`] and [`Composite::by_name`] read only this table;
/// the definitions leave `name` empty for `by_name` to fill in.
const REGISTRY: [(&str, Definition); 6] = [
    ("conserving", |_| Composite {
        name: String::new(),
        first: Rule::ZPlusOnes,
        conv: Rule::ZPlus,
        dense: Rule::ZPlus,
        stabilizer: Stabilizer { epsilon: 0.0, signed: false },
        maxpool: MaxPoolRule::WinnerTakeAll,
        conserve: true,
        raw_batchnorm: false,
    }),
    ("reference", |_| Composite {
        name: String::new(),
        first: Rule::ZPlusOnes,
        conv: Rule::ZPlus,
        dense: Rule::ZPlus,
        stabilizer: Stabilizer { epsilon: REFERENCE_EPSILON, signed: false },
        maxpool: MaxPoolRule::AvgSubstitute,
        conserve: false,
        raw_batchnorm: true,
    }),
    ("epsilon_plus", |_| zennit(Rule::ZPlus, Rule::ZPlus)),
    ("epsilon_gamma_box", |(low, high)| zennit(Rule::ZBox { low, high }, Rule::Gamma { gamma: 0.25 })),
    ("epsilon_plus_flat", |_| zennit(Rule::Flat, Rule::ZPlus)),
    ("epsilon_alpha2_beta1", |_| {
        let ab = Rule::AlphaBeta { alpha: 2.0, beta: 1.0 };
        zennit(ab.clone(), ab)
    }),
];

/// Names of the registered composites, in registration order (derived from the registry,
/// so the two cannot disagree).
pub const COMPOSITES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = REGISTRY[i].0;
        i += 1;
    }
    names
};

/// A composite in zennit's style: the given rules on the first layer and the other
/// convolutions, ε = 10⁻⁶ on dense layers and as the (signed) stabiliser.
fn zennit(first: Rule, conv: Rule) -> Composite {
    Composite {
        name: String::new(),
        first,
        conv,
        dense: Rule::Epsilon { epsilon: 1e-6 },
        stabilizer: Stabilizer { epsilon: 1e-6, signed: true },
        maxpool: MaxPoolRule::WinnerTakeAll,
        conserve: false,
        raw_batchnorm: false,
    }
}

impl Composite {
    /// Looks a composite up by name. `zbox` gives the per-channel `(low, high)` input bounds
    /// used by `epsilon_gamma_box`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown name.
    pub fn by_name(name: &str, zbox: (Vec<f32>, Vec<f32>)) -> Result<Composite> {
        let Some((_, define)) = REGISTRY.iter().find(|(n, _)| *n == name) else {
            return Err(Error::param(
                "composite",
                format!("unknown composite `{name}`; known: {}", COMPOSITES.join(", ")),
            ));
        };
        let c = Composite { name: name.to_string(), ..define(zbox) };
        c.validate()?;
        Ok(c)
    }

    /// The composite with `params` applied to its rules, validated.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a parameter out of range (ε < 0, γ < 0, α − β ≠ 1, …) or
    /// one the composite has no rule for (γ without a gamma rule, α/β without an alpha-beta rule).
    pub fn with_params(mut self, params: &Params) -> Result<Composite> {
        if let Some(epsilon) = params.epsilon {
            if !(epsilon >= 0.0 && epsilon.is_finite()) {
                return Err(Error::param("epsilon", format!("must be a finite number ≥ 0, got {epsilon}")));
            }
            self.stabilizer.epsilon = epsilon;
            for r in self.rules_mut() {
                if let Rule::Epsilon { epsilon: e } = r {
                    *e = epsilon;
                }
            }
        }
        if let Some(gamma) = params.gamma {
            if !self.has_rule(|r| matches!(r, Rule::Gamma { .. })) {
                return Err(Error::param("gamma", format!("composite `{}` has no gamma rule", self.name)));
            }
            for r in self.rules_mut() {
                if let Rule::Gamma { gamma: g } = r {
                    *g = gamma;
                }
            }
        }
        let (alpha, beta) = match (params.alpha, params.beta) {
            (None, None) => (None, None),
            (Some(a), None) => (Some(a), Some(a - 1.0)),
            (None, Some(b)) => (Some(b + 1.0), Some(b)),
            (a, b) => (a, b),
        };
        if let (Some(alpha), Some(beta)) = (alpha, beta) {
            if !self.has_rule(|r| matches!(r, Rule::AlphaBeta { .. })) {
                let name = if params.alpha.is_some() { "alpha" } else { "beta" };
                return Err(Error::param(name, format!("composite `{}` has no alpha-beta rule", self.name)));
            }
            for r in self.rules_mut() {
                if let Rule::AlphaBeta { .. } = r {
                    *r = Rule::AlphaBeta { alpha, beta };
                }
            }
        }
        self.validate()?;
        Ok(self)
    }

    fn rules_mut(&mut self) -> [&mut Rule; 3] {
        [&mut self.first, &mut self.conv, &mut self.dense]
    }

    fn has_rule(&self, f: fn(&Rule) -> bool) -> bool {
        [&self.first, &self.conv, &self.dense].into_iter().any(f)
    }

    /// Checks every rule's parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        self.first.validate()?;
        self.conv.validate()?;
        self.dense.validate()?;
        if !(self.stabilizer.epsilon >= 0.0 && self.stabilizer.epsilon.is_finite()) {
            return Err(Error::param("epsilon", "must be a finite number ≥ 0"));
        }
        Ok(())
    }

    /// The stabiliser for a rule: the epsilon rule keeps its own, the others use the composite's.
    pub fn stabilizer_for(&self, rule: &Rule) -> Stabilizer {
        match rule {
            Rule::Epsilon { .. } => rule.default_stabilizer(),
            _ => self.stabilizer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_name_is_unique_and_resolves_to_itself() {
        for (i, name) in COMPOSITES.iter().enumerate() {
            assert!(!COMPOSITES[..i].contains(name), "`{name}` is registered twice");
            let c = Composite::by_name(name, (vec![0.0], vec![1.0])).unwrap();
            assert_eq!(c.name, *name);
        }
    }
}
