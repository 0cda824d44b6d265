//! Convolution and transposed convolution on tract's optimised kernels.
//!
//! Every weighted layer of the layer graph (convolutions, and dense layers seen as 1×1
//! convolutions) is described by a [`ConvGeometry`]. A [`ConvKernel`] is a compiled tract
//! plan for one geometry and one weight tensor, either forward (`conv`) or adjoint
//! (`conv_transpose`). Plans are built once and reused for every explanation.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::deconv::adjustments;
use tract_onnx::tract_core::ops::cnn::{Conv, Deconv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::error::{Error, Result};
pub use crate::geometry::ConvGeometry;
use crate::glue::tensor;

/// tract's pool spec for the forward convolution; `transposed` swaps the channel counts
/// (a deconvolution's "input channels" are the forward output channels).
fn pool_spec(g: &ConvGeometry, transposed: bool) -> PoolSpec {
    let (c_in, c_out) = if transposed { (g.c_out, g.c_in) } else { (g.c_in, g.c_out) };
    PoolSpec::new(
        DataFormat::NCHW,
        tvec![g.kernel[0], g.kernel[1]],
        PaddingSpec::Explicit(tvec![g.pad_begin[0], g.pad_begin[1]], tvec![g.pad_end[0], g.pad_end[1]]),
        Some(tvec![g.dilations[0], g.dilations[1]]),
        Some(tvec![g.strides[0], g.strides[1]]),
        c_in,
        c_out,
    )
}

/// tract's deconvolution takes the forward kernel `[c_out, c_in/g, kh, kw]` regrouped as
/// `[c_in, c_out/g, kh, kw]` (the same taps); with `flip`, every `kh × kw` plane is also
/// reversed along both spatial axes (the kernel of the transpose as a forward convolution).
fn deconv_kernel(w: &ArrayD<f32>, g: &ConvGeometry, flip: bool) -> Result<ArrayD<f32>> {
    let [o, i, kh, kw] = g.kernel_shape();
    let (groups, og, k) = (g.group, o / g.group, kh * kw);
    let w = w.as_standard_layout();
    let src = w.as_slice().ok_or_else(|| Error::Internal("kernel is not contiguous".into()))?;
    // [groups · og, i, kh, kw] → [groups · i, og, kh, kw]: per group a transpose of whole kh × kw
    // planes (reversing a row-major plane reverses both of its axes), in tiles so that reads
    // and writes both stay in cache
    const TILE: usize = 32;
    let mut out = vec![0.0f32; src.len()];
    for gi in 0..groups {
        for o0 in (0..og).step_by(TILE) {
            for i0 in (0..i).step_by(TILE) {
                for oo in o0..(o0 + TILE).min(og) {
                    if k == 1 {
                        // single taps (1 × 1 convolutions, most of a ResNet's weights)
                        let row = &src[(gi * og + oo) * i..(gi * og + oo + 1) * i];
                        for ii in i0..(i0 + TILE).min(i) {
                            out[(gi * i + ii) * og + oo] = row[ii];
                        }
                        continue;
                    }
                    for ii in i0..(i0 + TILE).min(i) {
                        let from = ((gi * og + oo) * i + ii) * k;
                        let to = ((gi * i + ii) * og + oo) * k;
                        let plane = &src[from..from + k];
                        let dst = &mut out[to..to + k];
                        if flip {
                            for (d, s) in dst.iter_mut().zip(plane.iter().rev()) {
                                *d = *s;
                            }
                        } else {
                            // not copy_from_slice: a call per single-tap plane
                            for (d, s) in dst.iter_mut().zip(plane) {
                                *d = *s;
                            }
                        }
                    }
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[groups * i, og, kh, kw]), out).map_err(|e| Error::Internal(e.to_string()))
}

/// The forward convolution that computes this geometry's transpose, where there is one: with
/// stride 1, `convᵀ(y, W)` is `conv(y, W')` where `W'` swaps the channel roles of `W`
/// (regrouped as for a deconvolution) and flips it spatially, with padding `d·(k − 1) − p`
/// on each side. `None` for strided convolutions (they need a deconvolution) and for padding
/// wider than the kernel's extent.
fn transpose_as_conv(g: &ConvGeometry) -> Option<ConvGeometry> {
    if g.strides != [1, 1] {
        return None;
    }
    let mut pad_begin = [0; 2];
    let mut pad_end = [0; 2];
    for a in 0..2 {
        let extent = g.dilations[a] * (g.kernel[a] - 1);
        pad_begin[a] = extent.checked_sub(g.pad_begin[a])?;
        pad_end[a] = extent.checked_sub(g.pad_end[a])?;
    }
    Some(ConvGeometry {
        c_in: g.c_out,
        c_out: g.c_in,
        in_hw: g.out_hw,
        out_hw: g.in_hw,
        kernel: g.kernel,
        strides: [1, 1],
        dilations: g.dilations,
        pad_begin,
        pad_end,
        group: g.group,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `y = conv(x, W) + b`: input shape → output shape.
    Forward,
    /// `x = convᵀ(y, W)`: output shape → input shape (the adjoint of the forward map).
    Transpose,
}

/// A compiled convolution (or its transpose) for one geometry and one weight tensor.
#[derive(Debug, Clone)]
pub struct ConvKernel {
    plan: Arc<TypedRunnableModel>,
    out_shape: [usize; 4],
}

impl ConvKernel {
    /// Compiles `conv(x, weights) + bias` (forward) or `convᵀ(y, weights)` (transpose).
    ///
    /// # Errors
    /// Fails if the weights do not match the geometry or tract cannot build the plan.
    pub fn new(
        geometry: &ConvGeometry,
        direction: Direction,
        weights: ArrayD<f32>,
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        geometry.validate()?;
        if weights.shape() != geometry.kernel_shape() {
            return Err(Error::Internal(format!(
                "kernel shape {:?}, expected {:?}",
                weights.shape(),
                geometry.kernel_shape()
            )));
        }
        if direction == Direction::Transpose {
            if let Some(t) = transpose_as_conv(geometry) {
                // a forward convolution needs no separate summation pass after its matrix
                // product, unlike tract's deconvolution
                return Self::new(&t, Direction::Forward, deconv_kernel(&weights, geometry, true)?, None);
            }
        }
        let spec = pool_spec(geometry, direction == Direction::Transpose);
        let (in_shape, out_shape) = match direction {
            Direction::Forward => (geometry.input_shape(), geometry.output_shape()),
            Direction::Transpose => (geometry.output_shape(), geometry.input_shape()),
        };
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(in_shape))?;
        let kernel = match direction {
            Direction::Forward => weights,
            Direction::Transpose => deconv_kernel(&weights, geometry, false)?,
        };
        let k = model.add_const("kernel", Tensor::from(kernel))?;
        let plan = match direction {
            Direction::Forward => {
                let b = match bias {
                    Some(b) => Tensor::from_shape(&[geometry.c_out], b)?,
                    None => Tensor::zero::<f32>(&[geometry.c_out])?,
                };
                let b = model.add_const("bias", b)?;
                let op = Conv::new(spec, KernelFormat::OIHW, geometry.group, None);
                let y = model.wire_node("conv", op, &[x, k, b])?;
                model.select_output_outlets(&y)?;
                model
            }
            Direction::Transpose => {
                let adj = adjustments(&spec, &geometry.out_hw, &geometry.in_hw)?;
                let b = model.add_const("bias", Tensor::zero_scalar::<f32>()?)?;
                let op = Deconv::new(spec, KernelFormat::OIHW, adj, geometry.group);
                let y = model.wire_node("deconv", op, &[x, k, b])?;
                model.select_output_outlets(&y)?;
                model
            }
        };
        let mut plan = plan;
        if geometry.group == 1 {
            // without `ChangeAxes`: it only matters around depthwise convolutions, and for a
            // single convolution it copies the weights once more (a seventh of the build time)
            crate::glue::declutter(&mut plan)?;
        } else {
            plan.declutter()?;
        }
        plan.optimize()?;
        let plan = plan.into_runnable()?;
        Ok(ConvKernel { plan, out_shape })
    }

    /// Applies the kernel to a `[1, c, h, w]` tensor.
    ///
    /// # Errors
    /// Fails on a shape mismatch or inside tract.
    pub fn run(&self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let out = self.plan.run(tvec![tensor(x)?.into_tvalue()])?;
        let out =
            out.into_iter().next().ok_or_else(|| Error::Internal("the convolution plan returned nothing".into()))?;
        let arr = out.into_tensor().into_plain_array::<f32>()?;
        if arr.shape() != self.out_shape {
            return Err(Error::Internal(format!(
                "convolution produced {:?}, expected {:?}",
                arr.shape(),
                self.out_shape
            )));
        }
        arr.into_shape_with_order(IxDyn(&self.out_shape)).map_err(|e| Error::Internal(e.to_string()))
    }
}
