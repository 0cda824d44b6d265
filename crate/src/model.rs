//! ONNX bytes → tract typed/decluttered model → [`LayerGraph`] → [`Explainer`]; input
//! layout and image preprocessing.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Error, Result};
use crate::graph::LayerGraph;
use crate::lrp::Explainer;

/// Where the channel axis of the model input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[1, C, H, W]`
    NCHW,
    /// `[1, H, W, C]`
    NHWC,
}

/// The model input, as read from the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// Input name.
    pub name: String,
    /// Full shape (batch 1).
    pub shape: Vec<usize>,
    /// Channel layout.
    pub layout: Layout,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

impl InputSpec {
    fn from_shape(name: String, shape: &[usize]) -> Result<InputSpec> {
        let is_c = |d: usize| d == 1 || d == 3;
        let layout = match shape {
            [1, c, _, _] if is_c(*c) => Layout::NCHW,
            [1, _, _, c] if is_c(*c) => Layout::NHWC,
            _ => {
                return Err(Error::UnsupportedInput(format!(
                    "expected an image input [1, 3, H, W] or [1, H, W, 3], got {shape:?}"
                )))
            }
        };
        let (channels, height, width) = match layout {
            Layout::NCHW => (shape[1], shape[2], shape[3]),
            Layout::NHWC => (shape[3], shape[1], shape[2]),
        };
        Ok(InputSpec { name, shape: shape.to_vec(), layout, channels, height, width })
    }

    /// Index of the channel axis.
    pub fn channel_axis(&self) -> usize {
        match self.layout {
            Layout::NCHW => 1,
            Layout::NHWC => 3,
        }
    }
}

/// How an RGBA image becomes the model's input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Pixel values are `byte / 255 * scale` before mean/std (1 for [0,1], 255 for [0,255]).
    pub scale: f32,
    /// Per-channel mean, in the model's channel order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in the model's channel order.
    pub std: [f32; 3],
    /// Feed channels as B, G, R instead of R, G, B.
    pub bgr: bool,
}

impl Default for Preprocess {
    /// ImageNet normalisation: RGB in [0, 1], torchvision mean and std.
    fn default() -> Self {
        Preprocess { scale: 1.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], bgr: false }
    }
}

impl Preprocess {
    /// Checks the values make sense.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a non-positive std or scale, or non-finite numbers.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::param("scale", "must be a positive number"));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::param("std", "every std must be a positive number"));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::param("mean", "every mean must be a finite number"));
        }
        Ok(())
    }

    /// Per-channel `(low, high)` of the normalised input (the zB bounds).
    pub fn bounds(&self) -> (Vec<f32>, Vec<f32>) {
        let low = (0..3).map(|c| (0.0 - self.mean[c]) / self.std[c]).collect();
        let high = (0..3).map(|c| (self.scale - self.mean[c]) / self.std[c]).collect();
        (low, high)
    }
}

/// A loaded model: tract's plan for plain inference plus our layer graph.
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    input: InputSpec,
    graph: LayerGraph,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("input", &self.input).field("layers", &self.graph.nodes.len()).finish()
    }
}

fn load_err(e: impl std::fmt::Display) -> Error {
    Error::Load(format!("{e:#}"))
}

impl Model {
    /// Loads an ONNX model from bytes.
    ///
    /// # Errors
    /// [`Error::Load`] for bytes that are not a readable ONNX model,
    /// [`Error::UnsupportedInput`] for a dynamic or non-image input,
    /// [`Error::UnsupportedOp`] naming the first node the explainer cannot handle.
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Model> {
        let mut reader = bytes;
        let mut inference = tract_onnx::onnx().model_for_read(&mut reader).map_err(load_err)?;
        if inference.inputs.len() != 1 {
            return Err(Error::UnsupportedInput(format!(
                "the model has {} inputs, expected 1",
                inference.inputs.len()
            )));
        }
        let name = inference.node(inference.inputs[0].node).name.clone();
        // pin a symbolic batch axis to 1; other dimensions must be fixed in the graph
        let fact = inference.input_fact(0).map_err(load_err)?.clone();
        let dims: Option<Vec<_>> = fact.shape.dims().map(|d| d.concretize()).collect();
        let dims = dims.ok_or_else(|| Error::UnsupportedInput("the input rank is unknown".into()))?;
        let mut shape = Vec::with_capacity(dims.len());
        for (ax, d) in dims.iter().enumerate() {
            match d.to_usize() {
                Ok(v) => shape.push(v),
                Err(_) if ax == 0 => shape.push(1),
                Err(_) => {
                    return Err(Error::UnsupportedInput(format!(
                    "input `{name}` has a dynamic dimension {d} on axis {ax}; export the model with a fixed image size"
                )))
                }
            }
        }
        let input = InputSpec::from_shape(name, &shape)?;
        inference.set_input_fact(0, f32::fact(&shape).into()).map_err(load_err)?;
        let typed = inference.into_typed().map_err(load_err)?.into_decluttered().map_err(load_err)?;
        let graph = LayerGraph::from_typed(&typed)?;
        let plan = typed.into_optimized().map_err(load_err)?.into_runnable().map_err(load_err)?;
        Ok(Model { plan, input, graph })
    }

    /// The input description.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The layer graph.
    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// An explainer for this model.
    pub fn explainer(&self) -> Explainer {
        Explainer::new(self.graph.clone())
    }

    /// Plain inference with tract's optimised plan: the model's own output, flattened.
    ///
    /// # Errors
    /// [`Error::Shape`] for a wrong input shape; [`Error::Tract`] from tract.
    pub fn run(&self, input: &ArrayD<f32>) -> Result<Vec<f32>> {
        if input.shape() != self.input.shape.as_slice() {
            return Err(Error::Shape(format!(
                "input has shape {:?}, the model needs {:?}",
                input.shape(),
                self.input.shape
            )));
        }
        let out = self.plan.run(tvec![Tensor::from(input.clone()).into_tvalue()])?;
        let t = out.into_iter().next().ok_or_else(|| Error::Tract("no output".into()))?;
        Ok(t.into_tensor().into_plain_array::<f32>()?.iter().copied().collect())
    }

    /// Turns an RGBA image (row-major, 4 bytes per pixel) into the model's input: bilinear
    /// resize to the input size, then scale, channel order, mean/std, layout.
    ///
    /// # Errors
    /// [`Error::Image`] for an empty image or a buffer of the wrong size.
    pub fn preprocess(&self, rgba: &[u8], width: usize, height: usize, p: &Preprocess) -> Result<ArrayD<f32>> {
        p.validate()?;
        if width == 0 || height == 0 {
            return Err(Error::Image(format!("the image is empty ({width}×{height})")));
        }
        if rgba.len() != width * height * 4 {
            return Err(Error::Image(format!("{} bytes for a {width}×{height} RGBA image", rgba.len())));
        }
        let (h, w, c) = (self.input.height, self.input.width, self.input.channels);
        let mut x = ArrayD::<f32>::zeros(IxDyn(&self.input.shape));
        let sample = |ch: usize, fy: f32, fx: f32| -> f32 {
            let y0 = fy.floor().clamp(0.0, (height - 1) as f32) as usize;
            let x0 = fx.floor().clamp(0.0, (width - 1) as f32) as usize;
            let y1 = (y0 + 1).min(height - 1);
            let x1 = (x0 + 1).min(width - 1);
            let (ty, tx) = ((fy - y0 as f32).clamp(0.0, 1.0), (fx - x0 as f32).clamp(0.0, 1.0));
            let px = |y: usize, x: usize| rgba[(y * width + x) * 4 + ch] as f32;
            let top = px(y0, x0) * (1.0 - tx) + px(y0, x1) * tx;
            let bottom = px(y1, x0) * (1.0 - tx) + px(y1, x1) * tx;
            top * (1.0 - ty) + bottom * ty
        };
        let sy = height as f32 / h as f32;
        let sx = width as f32 / w as f32;
        for yy in 0..h {
            let fy = (yy as f32 + 0.5) * sy - 0.5;
            for xx in 0..w {
                let fx = (xx as f32 + 0.5) * sx - 0.5;
                for ch in 0..c {
                    let src = if c == 1 {
                        // grey models get the luma
                        return_luma(&sample, fy, fx)
                    } else {
                        sample(if p.bgr { 2 - ch } else { ch }, fy, fx)
                    };
                    let v = (src / 255.0 * p.scale - p.mean[ch.min(2)]) / p.std[ch.min(2)];
                    match self.input.layout {
                        Layout::NCHW => x[[0, ch, yy, xx]] = v,
                        Layout::NHWC => x[[0, yy, xx, ch]] = v,
                    }
                }
            }
        }
        Ok(x)
    }
}

fn return_luma(sample: &impl Fn(usize, f32, f32) -> f32, fy: f32, fx: f32) -> f32 {
    0.299 * sample(0, fy, fx) + 0.587 * sample(1, fy, fx) + 0.114 * sample(2, fy, fx)
}
