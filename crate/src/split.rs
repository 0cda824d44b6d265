//! Relevance Splitting at residual additions (Otsuki et al., ECCV 2024).
//!
//! A residual block computes `y = s + m` (shortcut `s`, main branch `m`). The relevance of
//! `y` is split element-wise between the two paths; the variants differ in how.
//!
//! The example to follow for a new splitting variant: a name, a [`Split`] per shortcut kind, and
//! the element-wise formula, checked against closed forms and for conservation in the tests.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ε of the signed split's stabiliser: zennit's default for its `Norm` rule.
pub const NORM_EPSILON: f32 = 1e-6;

/// How relevance is split at one residual addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// `|s| / (|s| + |m|)` to the shortcut, the rest to the main branch (½–½ where both are 0).
    Ratio,
    /// Half to each path.
    Half,
    /// Everything to the main branch.
    MainOnly,
    /// Signed proportional `s / (s + m)` (conventional LRP: zennit's `Norm` rule on the sum),
    /// the denominator stabilised as zennit does, `y + ((y = 0) + sign y) · 10⁻⁶`. Does not
    /// conserve exactly: `y / (y ± 10⁻⁶)` of the relevance goes on, and where `s = −m ≠ 0` the two
    /// shares are large and opposite.
    Signed,
}

/// A splitting variant: which [`Split`] applies at identity and at projection shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The paper's method: ratio splitting at every residual addition.
    FlowsSkip,
    /// Half–half at every residual addition.
    FlowsSkipSimple,
    /// Identity shortcuts get nothing, projection shortcuts the ratio split (the authors' code default).
    Latest,
    /// Identity shortcuts get nothing, projection shortcuts half.
    Simple,
    /// Conventional LRP: signed proportional splitting everywhere.
    Conventional,
}

/// All variants, in the order they are shown.
pub const VARIANTS: [Variant; 5] =
    [Variant::FlowsSkip, Variant::FlowsSkipSimple, Variant::Latest, Variant::Simple, Variant::Conventional];

impl Variant {
    /// The split for an identity (`projection = false`) or projection shortcut.
    pub fn split(self, projection: bool) -> Split {
        match (self, projection) {
            (Variant::FlowsSkip, _) => Split::Ratio,
            (Variant::FlowsSkipSimple, _) => Split::Half,
            (Variant::Latest, false) | (Variant::Simple, false) => Split::MainOnly,
            (Variant::Latest, true) => Split::Ratio,
            (Variant::Simple, true) => Split::Half,
            (Variant::Conventional, _) => Split::Signed,
        }
    }

    /// The variant's name as the CLI and the page spell it.
    pub fn name(self) -> &'static str {
        match self {
            Variant::FlowsSkip => "flows_skip",
            Variant::FlowsSkipSimple => "flows_skip_simple",
            Variant::Latest => "latest",
            Variant::Simple => "simple",
            Variant::Conventional => "conventional",
        }
    }

    /// Parses a variant name.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] listing the known names.
    pub fn from_name(name: &str) -> Result<Self> {
        VARIANTS.iter().copied().find(|v| v.name() == name).ok_or_else(|| {
            let known: Vec<_> = VARIANTS.iter().map(|v| v.name()).collect();
            Error::param("variant", format!("unknown variant `{name}`; known: {}", known.join(", ")))
        })
    }
}

impl Split {
    /// Whether the split treats its two inputs alike (swapping shortcut and main branch swaps
    /// their shares): true for all but [`Split::MainOnly`].
    pub fn is_symmetric(self) -> bool {
        !matches!(self, Split::MainOnly)
    }

    /// What the split gives the shortcut, in a few words (for `info` and the page).
    pub fn describe(self) -> &'static str {
        match self {
            Split::Ratio => "ratio |s|/(|s|+|m|) to the shortcut",
            Split::Half => "half to each path",
            Split::MainOnly => "all to the main branch",
            Split::Signed => "signed s/(s+m) to the shortcut",
        }
    }

    /// Splits one element's relevance `r` into `(shortcut, main)` for values `s` and `m`.
    pub fn split_one(self, s: f32, m: f32, r: f32) -> (f32, f32) {
        let share = match self {
            Split::Ratio => {
                let d = s.abs() + m.abs();
                if d > 0.0 {
                    s.abs() / d
                } else {
                    0.5
                }
            }
            Split::Half => 0.5,
            Split::MainOnly => 0.0,
            Split::Signed => {
                // zennit's Norm rule on the sum: y + ((y == 0) + sign y)·ε, so y = 0 counts as
                // positive (and -0.0 too, which `copysign` would not do)
                let y = s + m;
                let d = if y >= 0.0 { y + NORM_EPSILON } else { y - NORM_EPSILON };
                return (s / d * r, m / d * r);
            }
        };
        // the main branch gets exactly the rest, so the two always sum to r
        let to_s = share * r;
        (to_s, r - to_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed split against zennit's Norm rule on the sum, written out: each input gets
    /// `x / (y + ((y = 0) + sign y)·10⁻⁶)` of `r`.
    #[test]
    fn signed_split_is_zennits_norm_rule() {
        let zennit = |s: f64, m: f64, r: f64| {
            let y = s + m;
            let d = y + ((y == 0.0) as u8 as f64 + if y == 0.0 { 0.0 } else { y.signum() }) * 1e-6;
            (s / d * r, m / d * r)
        };
        for (s, m) in [(1.0f32, 2.0f32), (-3.0, 1.0), (0.5, -0.5), (0.0, 0.0), (1e-7, 0.0), (-1e-7, 0.0), (2.0, -2.5)] {
            let (gs, gm) = Split::Signed.split_one(s, m, 0.75);
            let (ws, wm) = zennit(s as f64, m as f64, 0.75);
            for (g, w) in [(gs, ws), (gm, wm)] {
                assert!((g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0), "s={s} m={m}: {g} vs {w}");
            }
        }
    }

    /// Swapping the inputs swaps the shares for every split but main-only.
    #[test]
    fn symmetric_splits_swap_with_their_inputs() {
        for split in [Split::Ratio, Split::Half, Split::MainOnly, Split::Signed] {
            let (a, b) = split.split_one(0.3, -1.2, 1.0);
            let (c, d) = split.split_one(-1.2, 0.3, 1.0);
            let swaps = (a - d).abs() <= 1e-6 && (b - c).abs() <= 1e-6;
            assert_eq!(swaps, split.is_symmetric(), "{split:?}");
        }
    }
}
