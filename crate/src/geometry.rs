//! Shapes of the windowed layers: convolution and pooling geometry in NCHW, batch 1. Plain data
//! and arithmetic, no tract: the layer graph, the convolution kernels and the pooling rules all
//! read it.

use std::ops::Range;

use crate::error::{Error, Result};

/// Geometry of a 2-D convolution in NCHW layout with an OIHW kernel, batch 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input spatial size `[h, w]`.
    pub in_hw: [usize; 2],
    /// Output spatial size `[h, w]`.
    pub out_hw: [usize; 2],
    /// Kernel spatial size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Strides `[sh, sw]`.
    pub strides: [usize; 2],
    /// Dilations `[dh, dw]`.
    pub dilations: [usize; 2],
    /// Zero padding before `[top, left]`.
    pub pad_begin: [usize; 2],
    /// Zero padding after `[bottom, right]`.
    pub pad_end: [usize; 2],
    /// Number of groups (depthwise: `group == c_in`).
    pub group: usize,
}

impl ConvGeometry {
    /// Output size along one axis, from the input size and the other parameters.
    pub fn output_len(&self, axis: usize, input: usize) -> Option<usize> {
        let padded = input + self.pad_begin[axis] + self.pad_end[axis];
        let extent = self.dilations[axis] * (self.kernel[axis] - 1) + 1;
        padded.checked_sub(extent).map(|v| v / self.strides[axis] + 1)
    }

    /// Kernel tensor shape `[c_out, c_in / group, kh, kw]`.
    pub fn kernel_shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.group, self.kernel[0], self.kernel[1]]
    }

    /// Input tensor shape `[1, c_in, h, w]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [1, self.c_in, self.in_hw[0], self.in_hw[1]]
    }

    /// Output tensor shape `[1, c_out, h, w]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [1, self.c_out, self.out_hw[0], self.out_hw[1]]
    }

    /// Checks internal consistency; used on geometries read from a model.
    pub fn validate(&self) -> Result<()> {
        let ok = self.group > 0
            && self.c_in.is_multiple_of(self.group)
            && self.c_out.is_multiple_of(self.group)
            && self.kernel.iter().all(|&k| k > 0)
            && self.strides.iter().all(|&s| s > 0)
            && self.dilations.iter().all(|&d| d > 0)
            && (0..2).all(|a| self.output_len(a, self.in_hw[a]) == Some(self.out_hw[a]));
        if ok {
            Ok(())
        } else {
            Err(Error::Internal(format!("inconsistent convolution geometry {self:?}")))
        }
    }
}

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
    /// The input rows and columns of window `(oy, ox)`, padding excluded.
    pub fn window(&self, oy: usize, ox: usize) -> (Range<usize>, Range<usize>) {
        let span = |o: usize, axis: usize| {
            let start = (o * self.strides[axis]) as isize - self.pad_begin[axis] as isize;
            let end = (start + self.kernel[axis] as isize).min(self.in_hw[axis] as isize);
            (start.max(0) as usize)..(end.max(0) as usize)
        };
        (span(oy, 0), span(ox, 1))
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
            && (0..self.out_hw[0]).all(|oy| !self.window(oy, 0).0.is_empty())
            && (0..self.out_hw[1]).all(|ox| !self.window(0, ox).1.is_empty())
    }
}
