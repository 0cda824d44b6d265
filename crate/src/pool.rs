//! Spatial pooling windows (max and average) in NCHW, batch 1: forward and the relevance
//! rules that go with them. Pools are cheap next to convolutions, so plain loops do.

use ndarray::{Array4, ArrayView4};

/// Geometry of a 2-D pooling window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Window size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Strides `[sh, sw]`.
    pub strides: [usize; 2],
    /// Padding before `[top, left]`.
    pub pad_begin: [usize; 2],
    /// Padding after `[bottom, right]` (includes the extra row/column of ceil mode).
    pub pad_end: [usize; 2],
    /// Input spatial size.
    pub in_hw: [usize; 2],
    /// Output spatial size.
    pub out_hw: [usize; 2],
}

impl PoolGeometry {
    /// The input positions `(y, x)` of window `(oy, ox)`, padding excluded.
    pub fn window(&self, oy: usize, ox: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let y0 = (oy * self.strides[0]) as isize - self.pad_begin[0] as isize;
        let x0 = (ox * self.strides[1]) as isize - self.pad_begin[1] as isize;
        let (h, w) = (self.in_hw[0] as isize, self.in_hw[1] as isize);
        (0..self.kernel[0] as isize).flat_map(move |dy| {
            (0..self.kernel[1] as isize).filter_map(move |dx| {
                let (y, x) = (y0 + dy, x0 + dx);
                (y >= 0 && y < h && x >= 0 && x < w).then_some((y as usize, x as usize))
            })
        })
    }

    /// Output size along one axis for the given input size (floor mode over the explicit pads).
    pub fn output_len(&self, axis: usize, input: usize) -> Option<usize> {
        (input + self.pad_begin[axis] + self.pad_end[axis])
            .checked_sub(self.kernel[axis])
            .map(|v| v / self.strides[axis] + 1)
    }

    /// Whether the geometry is self-consistent.
    pub fn is_valid(&self) -> bool {
        self.kernel.iter().all(|&k| k > 0)
            && self.strides.iter().all(|&s| s > 0)
            && (0..2).all(|a| self.output_len(a, self.in_hw[a]) == Some(self.out_hw[a]))
            && (0..self.out_hw[0]).all(|oy| self.window(oy, 0).next().is_some())
            && (0..self.out_hw[1]).all(|ox| self.window(0, ox).next().is_some())
    }

    fn out_array(&self, c: usize) -> Array4<f32> {
        Array4::zeros((1, c, self.out_hw[0], self.out_hw[1]))
    }

    /// Max pooling forward.
    pub fn max_forward(&self, a: ArrayView4<f32>) -> Array4<f32> {
        let mut out = self.out_array(a.shape()[1]);
        for c in 0..a.shape()[1] {
            for oy in 0..self.out_hw[0] {
                for ox in 0..self.out_hw[1] {
                    out[(0, c, oy, ox)] =
                        self.window(oy, ox).map(|(y, x)| a[(0, c, y, x)]).fold(f32::NEG_INFINITY, f32::max);
                }
            }
        }
        out
    }

    /// Average pooling forward; `count_include_pad` divides by the full window size.
    pub fn avg_forward(&self, a: ArrayView4<f32>, count_include_pad: bool) -> Array4<f32> {
        let mut out = self.out_array(a.shape()[1]);
        let full = (self.kernel[0] * self.kernel[1]) as f32;
        for c in 0..a.shape()[1] {
            for oy in 0..self.out_hw[0] {
                for ox in 0..self.out_hw[1] {
                    let (sum, n) =
                        self.window(oy, ox).fold((0.0f32, 0usize), |(s, n), (y, x)| (s + a[(0, c, y, x)], n + 1));
                    out[(0, c, oy, ox)] = sum / if count_include_pad { full } else { n as f32 };
                }
            }
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
    /// sum is zero spread their relevance evenly instead of dropping it.
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
            if flat_fallback && sum == 0.0 {
                self.for_window(c, oy, ox, |k| out[k] += rel / n as f32);
            } else {
                let s = rel / (sum + eps);
                self.for_window(c, oy, ox, |k| out[k] += src[k] * s);
            }
        });
        Array4::from_shape_vec(a.raw_dim(), out).expect("the output has the input's size")
    }

    /// Calls `f` with the offset, in a standard-layout `[1, c, h, w]` input, of every position of
    /// window `(oy, ox)` of channel `c` (padding excluded), row by row: the same positions as
    /// [`Self::window`].
    fn for_window(&self, c: usize, oy: usize, ox: usize, mut f: impl FnMut(usize)) {
        let [h, w] = self.in_hw;
        let span = |o: usize, axis: usize, len: usize| {
            let start = (o * self.strides[axis]) as isize - self.pad_begin[axis] as isize;
            let end = (start + self.kernel[axis] as isize).min(len as isize);
            (start.max(0) as usize)..(end.max(0) as usize)
        };
        let xs = span(ox, 1, w);
        for y in span(oy, 0, h) {
            let row = (c * h + y) * w;
            for x in xs.clone() {
                f(row + x);
            }
        }
    }

    /// Gradient of average pooling: each window's gradient spread over its inputs.
    pub fn avg_backward(&self, a_shape: [usize; 4], g: ArrayView4<f32>, count_include_pad: bool) -> Array4<f32> {
        let mut out = Array4::zeros(a_shape);
        let full = (self.kernel[0] * self.kernel[1]) as f32;
        self.each_nonzero(g, |c, oy, ox, v| {
            let n = if count_include_pad { full } else { self.window(oy, ox).count() as f32 };
            for (y, x) in self.window(oy, ox) {
                out[(0, c, y, x)] += v / n;
            }
        });
        out
    }
}
