//! Statistics of per-image scores, as the evaluation reports them: mean, standard error and a
//! 95 % interval of a method's scores, and the paired difference of two methods on the same
//! images with a paired bootstrap interval.

use crate::error::{Error, Result};
use crate::metrics::SplitMix64;

/// Mean, standard error and 95 % interval (Student's t) of one score over images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of images.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Standard error of the mean (NaN for fewer than two images).
    pub se: f64,
    /// Lower end of the 95 % interval of the mean (NaN for fewer than two images).
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// P(|T| < t) for Student's t with `dof` ≥ 1 degrees of freedom: the finite series in
/// θ = atan(t/√ν) that holds for whole ν (Abramowitz & Stegun 26.7.3–4).
fn t_two_sided(t: f64, dof: usize) -> f64 {
    let theta = (t / (dof as f64).sqrt()).atan();
    let (s, c2) = (theta.sin(), theta.cos().powi(2));
    // Σ of the terms a₀ = 1, aₖ = aₖ₋₁ · cos²θ · (2k − 1 + odd)/(2k + odd), up to the last power
    let series = |odd: bool, terms: usize| {
        let (mut term, mut sum) = (1.0, 1.0);
        for k in 1..terms {
            let k = k as f64;
            term *= c2 * if odd { 2.0 * k / (2.0 * k + 1.0) } else { (2.0 * k - 1.0) / (2.0 * k) };
            sum += term;
        }
        sum
    };
    if dof % 2 == 1 {
        let rest = if dof == 1 { 0.0 } else { s * theta.cos() * series(true, (dof - 1) / 2) };
        2.0 / std::f64::consts::PI * (theta + rest)
    } else {
        s * series(false, dof / 2)
    }
}

/// The 97.5 % quantile of Student's t distribution with `dof` degrees of freedom (NaN for 0),
/// by bisection on the exact distribution function.
pub fn t975(dof: usize) -> f64 {
    if dof == 0 {
        return f64::NAN;
    }
    let (mut low, mut high) = (0.0, 20.0); // t₀.₉₇₅(1) = 12.7 is the largest
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if t_two_sided(mid, dof) < 0.95 {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

/// Mean, standard error and 95 % t interval of `v`.
pub fn summarize(v: &[f64]) -> Summary {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Summary { n, mean, se: f64::NAN, low: f64::NAN, high: f64::NAN };
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    let half = t975(n - 1) * se;
    Summary { n, mean, se, low: mean - half, high: mean + half }
}

/// The mean paired difference `a − b` over images and its 95 % paired bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDifference {
    /// Mean of `aᵢ − bᵢ`.
    pub mean: f64,
    /// 2.5 % percentile of the bootstrap means.
    pub low: f64,
    /// 97.5 % percentile.
    pub high: f64,
}

/// Resamples of the paired bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The paired difference of two methods scored on the same images (`a[i]` and `b[i]` belong to
/// image `i`): its mean and the percentile interval of the means of `resamples` resamples of the
/// images with replacement, drawn reproducibly from `seed`.
///
/// # Errors
/// [`Error::InvalidParam`] for lengths that differ, no images or no resamples.
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<PairedDifference> {
    if a.len() != b.len() || a.is_empty() || resamples == 0 {
        return Err(Error::param(
            "scores",
            format!("a paired difference needs the same images on both sides ({} and {})", a.len(), b.len()),
        ));
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let mut rng = SplitMix64(seed);
    let mut means: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| d[(rng.next() % n as u64) as usize]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    // the nearest-rank percentiles
    let at = |q: f64| means[((q * resamples as f64).ceil() as usize).clamp(1, resamples) - 1];
    Ok(PairedDifference { mean: d.iter().sum::<f64>() / n as f64, low: at(0.025), high: at(0.975) })
}
