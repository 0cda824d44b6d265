//! From input relevance to a 2-D map: channel reduction and the paper's heat quantization.

use ndarray::{Array2, ArrayD, Axis};

use crate::error::{Error, Result};
use crate::preprocess::{InputSpec, Layout};

/// Sums the relevance over the colour channels: an `[H, W]` map.
///
/// # Errors
/// [`Error::InvalidInput`] if `relevance` does not have the input's shape.
pub fn channel_sum(relevance: &ArrayD<f32>, input: &InputSpec) -> Result<Array2<f32>> {
    if relevance.shape() != input.shape.as_slice() {
        return Err(Error::InvalidInput(format!("relevance {:?} vs input {:?}", relevance.shape(), input.shape)));
    }
    let per_image = relevance.index_axis(Axis(0), 0);
    let axis = match input.layout {
        Layout::NCHW => 0,
        Layout::NHWC => 2,
    };
    per_image.sum_axis(Axis(axis)).into_dimensionality().map_err(|e| Error::Internal(e.to_string()))
}

/// The map of an explanation: relevance summed over the colour channels ([`channel_sum`]), then
/// heat-quantized to `levels` levels ([`heat_quantize`]; 0 or 1 = raw). Explanations, their
/// downloads and the rankings of the evaluation all use this one map.
///
/// # Errors
/// As [`channel_sum`].
pub fn map(relevance: &ArrayD<f32>, input: &InputSpec, levels: usize) -> Result<Array2<f32>> {
    let map = channel_sum(relevance, input)?;
    Ok(if levels > 1 { heat_quantize(&map, levels) } else { map })
}

/// Heat quantization (Otsuki et al. 2024): `levels` equally spaced edges from the map's
/// minimum to its maximum; each value becomes the edge at or below it (the maximum stays).
pub fn heat_quantize(map: &Array2<f32>, levels: usize) -> Array2<f32> {
    let lo = map.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if levels < 2 || hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return map.clone();
    }
    let step = (hi - lo) / (levels - 1) as f32;
    map.mapv(|v| {
        if v >= hi {
            hi
        } else {
            let k = ((v - lo) / step).floor().clamp(0.0, (levels - 2) as f32);
            lo + k * step
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization_snaps_to_lower_edges() {
        let m = Array2::from_shape_vec((1, 5), vec![0.0, 0.2, 0.5, 0.99, 1.0]).unwrap();
        let q = heat_quantize(&m, 3); // edges 0, 0.5, 1
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![0.0, 0.0, 0.5, 0.5, 1.0]);
    }
}
