//! From input relevance to a 2-D map: channel reduction and the paper's heat quantization.

use ndarray::{s, Array2, ArrayD, Axis};

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
    map_in_cells(relevance, input, levels, 1)
}

/// The map as shown: relevance summed over the colour channels, averaged over `cell × cell`
/// pixel cells ([`cell_mean`]), then heat-quantized ([`heat_quantize`]); `cell` 0 or 1 is [`map`].
/// A display choice: the relevance itself and the evaluation's rankings stay per pixel.
///
/// # Errors
/// As [`channel_sum`].
pub fn map_in_cells(relevance: &ArrayD<f32>, input: &InputSpec, levels: usize, cell: usize) -> Result<Array2<f32>> {
    let map = cell_mean(&channel_sum(relevance, input)?, cell);
    Ok(if levels > 1 { heat_quantize(&map, levels) } else { map })
}

/// Every pixel replaced by the mean of its `cell × cell` cell (cells tiled from the top-left
/// corner; those at the right and bottom edges may be smaller), so the map keeps its total. A
/// first convolution of stride `s` covers the pixels unevenly when its kernel is not a multiple
/// of `s` (EfficientNet-Lite0's 3×3 stride-2 stem: 4, 2, 2 or 1 windows), and every LRP rule
/// that redistributes over windows paints that coverage as an `s`-periodic grid; averaging over
/// `s × s` cells removes it at the price of resolution. `cell` 0 or 1 leaves the map as it is.
pub fn cell_mean(map: &Array2<f32>, cell: usize) -> Array2<f32> {
    if cell < 2 {
        return map.clone();
    }
    let (h, w) = map.dim();
    let mut out = Array2::zeros((h, w));
    for y in (0..h).step_by(cell) {
        for x in (0..w).step_by(cell) {
            let (ys, xs) = (y..(y + cell).min(h), x..(x + cell).min(w));
            let block = map.slice(s![ys.clone(), xs.clone()]);
            // summed in f64: a cell may hold many pixels of very different magnitude
            let mean = block.iter().map(|&v| f64::from(v)).sum::<f64>() / block.len() as f64;
            out.slice_mut(s![ys, xs]).fill(mean as f32);
        }
    }
    out
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
