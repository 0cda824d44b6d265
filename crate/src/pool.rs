//! Spatial pooling windows (max and average) in NCHW, batch 1: forward and the relevance
//! rules that go with them. Pools are cheap next to convolutions, so plain loops do.

use ndarray::{Array4, ArrayView4};

pub use crate::geometry::PoolGeometry;
use crate::rules::ZERO_DENOMINATOR;

impl PoolGeometry {
    /// Calls `f` with the offset, in a standard-layout `[1, c, h, w]` input, of every position of
    /// window `(oy, ox)` of channel `c`, row by row.
    fn for_window(&self, c: usize, oy: usize, ox: usize, mut f: impl FnMut(usize)) {
        let [h, w] = self.in_hw;
        let (ys, xs) = self.window(oy, ox);
        for y in ys {
            let row = (c * h + y) * w;
            for x in xs.clone() {
                f(row + x);
            }
        }
    }

    fn out_array(&self, c: usize) -> Array4<f32> {
        Array4::zeros((1, c, self.out_hw[0], self.out_hw[1]))
    }

    /// Max pooling forward.
    pub fn max_forward(&self, a: ArrayView4<f32>) -> Array4<f32> {
        let a = a.as_standard_layout();
        let src = a.as_slice().expect("a standard-layout array is contiguous");
        let mut out = self.out_array(a.shape()[1]);
        for ((_, c, oy, ox), o) in out.indexed_iter_mut() {
            let mut m = f32::NEG_INFINITY;
            self.for_window(c, oy, ox, |k| m = m.max(src[k]));
            *o = m;
        }
        out
    }

    /// Average pooling forward; `count_include_pad` divides by the full window size.
    pub fn avg_forward(&self, a: ArrayView4<f32>, count_include_pad: bool) -> Array4<f32> {
        let a = a.as_standard_layout();
        let src = a.as_slice().expect("a standard-layout array is contiguous");
        let mut out = self.out_array(a.shape()[1]);
        let full = (self.kernel[0] * self.kernel[1]) as f32;
        for ((_, c, oy, ox), o) in out.indexed_iter_mut() {
            let (mut sum, mut n) = (0.0f32, 0usize);
            self.for_window(c, oy, ox, |k| {
                sum += src[k];
                n += 1;
            });
            *o = sum / if count_include_pad { full } else { n as f32 };
        }
        out
    }

    /// Calls `f(c, oy, ox, r)` for every output position whose relevance `r` is non-zero.
    fn each_nonzero(&self, r: ArrayView4<f32>, mut f: impl FnMut(usize, usize, usize, f32)) {
        for c in 0..r.shape()[1] {
            for oy in 0..self.out_hw[0] {
                for ox in 0..self.out_hw[1] {
                    let rel = r[(0, c, oy, ox)];
                    if rel != 0.0 {
                        f(c, oy, ox, rel);
                    }
                }
            }
        }
    }

    /// Winner-take-all relevance for max pooling: each window's relevance goes to the first
    /// input that attains the maximum. Conserves relevance exactly. (Also the gradient.)
    pub fn max_winner_take_all(&self, a: ArrayView4<f32>, r: ArrayView4<f32>) -> Array4<f32> {
        let a = a.as_standard_layout();
        let src = a.as_slice().expect("a standard-layout array is contiguous");
        let mut out = vec![0.0f32; src.len()];
        self.each_nonzero(r, |c, oy, ox, rel| {
            let mut best: Option<(usize, f32)> = None;
            self.for_window(c, oy, ox, |k| {
                let v = src[k];
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((k, v));
                }
            });
            if let Some((k, _)) = best {
                out[k] += rel;
            }
        });
        Array4::from_shape_vec(a.raw_dim(), out).expect("the output has the input's size")
    }

    /// Proportional (z-rule) relevance through a window sum: each input gets
    /// `a_i / (Σ_window a + eps)` of the window's relevance. With `flat_fallback`, windows whose
    /// sum is zero (at most [`ZERO_DENOMINATOR`] in magnitude, as for weighted layers) spread
    /// their relevance evenly instead of dropping it.
    pub fn proportional(&self, a: ArrayView4<f32>, r: ArrayView4<f32>, eps: f32, flat_fallback: bool) -> Array4<f32> {
        let a = a.as_standard_layout();
        let src = a.as_slice().expect("a standard-layout array is contiguous");
        let mut out = vec![0.0f32; src.len()];
        self.each_nonzero(r, |c, oy, ox, rel| {
            let (mut sum, mut n) = (0.0f32, 0usize);
            self.for_window(c, oy, ox, |k| {
                sum += src[k];
                n += 1;
            });
            if flat_fallback && sum.abs() <= ZERO_DENOMINATOR {
                self.for_window(c, oy, ox, |k| out[k] += rel / n as f32);
            } else {
                let s = rel / (sum + eps);
                self.for_window(c, oy, ox, |k| out[k] += src[k] * s);
            }
        });
        Array4::from_shape_vec(a.raw_dim(), out).expect("the output has the input's size")
    }

    /// Gradient of average pooling: each window's gradient spread over its inputs.
    pub fn avg_backward(&self, a_shape: [usize; 4], g: ArrayView4<f32>, count_include_pad: bool) -> Array4<f32> {
        let mut out = vec![0.0f32; a_shape.iter().product()];
        let full = (self.kernel[0] * self.kernel[1]) as f32;
        self.each_nonzero(g, |c, oy, ox, v| {
            let (ys, xs) = self.window(oy, ox);
            let n = if count_include_pad { full } else { (ys.len() * xs.len()) as f32 };
            self.for_window(c, oy, ox, |k| out[k] += v / n);
        });
        Array4::from_shape_vec(a_shape, out).expect("the output has the input's size")
    }
}
