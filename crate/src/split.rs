//! Relevance Splitting at residual additions (Otsuki et al., ECCV 2024).
//!
//! A residual block computes `y = s + m` (shortcut `s`, main branch `m`). The relevance of
//! `y` is split element-wise between the two paths; the variants differ in how.
//!
//! The example to follow for a new splitting variant: a name, a [`Split`] per shortcut kind, and
//! the element-wise formula, checked against closed forms and for conservation in the tests.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// Signed proportional `s / (s + m)` (conventional LRP), stabilised by a tiny ε.
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
                let y = s + m;
                if y == 0.0 {
                    return (0.5 * r, 0.5 * r);
                }
                let d = y + 1e-9f32.copysign(y);
                return (s / d * r, m / d * r);
            }
        };
        // the main branch gets exactly the rest, so the two always sum to r
        let to_s = share * r;
        (to_s, r - to_s)
    }
}
