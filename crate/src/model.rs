//! ONNX bytes → tract typed/decluttered model → [`LayerGraph`] → [`Explainer`]; input
//! layout and image preprocessing.

use std::sync::Arc;

use ndarray::{Array3, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::optim::Optimizer;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Error, Result};
use crate::graph::LayerGraph;
use crate::lrp::{Explainer, ForwardPlan};

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
    /// The model leaves height and width open; they were set to [`DEFAULT_SIDE`].
    pub size_pinned: bool,
}

/// Height and width given to a model whose input leaves them open (ImageNet's 224).
pub const DEFAULT_SIDE: usize = 224;

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
        Ok(InputSpec { name, shape: shape.to_vec(), layout, channels, height, width, size_pinned: false })
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
    plan: ForwardPlan,
    input: InputSpec,
    graph: Arc<LayerGraph>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("input", &self.input).field("layers", &self.graph.nodes.len()).finish()
    }
}

/// tract's declutter passes without `ChangeAxes`: that pass moves channels last around
/// depthwise convolutions only on hosts with a channel-last depthwise kernel (wasm SIMD, not
/// x86), so leaving it out gives the same NCHW layer graph natively and in the browser.
pub(crate) fn declutter(model: &mut TypedModel) -> TractResult<()> {
    let mut optimizer = Optimizer::declutter();
    optimizer.passes.retain(|pass| !format!("{pass:?}").contains("ChangeAxes"));
    optimizer.optimize(model)
}

/// Models larger than this are refused (500 MB): the explainer keeps many activations and
/// several copies of the weights, which would not fit a browser tab.
pub const MAX_MODEL_BYTES: u64 = 500 * 1000 * 1000;

/// Refuses a model file of `len` bytes before it is read: empty, or above [`MAX_MODEL_BYTES`].
///
/// # Errors
/// [`Error::Load`] saying why.
pub fn check_model_size(len: u64) -> Result<()> {
    if len == 0 {
        return Err(Error::Load("the file is empty".into()));
    }
    if len > MAX_MODEL_BYTES {
        return Err(Error::Load(format!(
            "the file is {} MB; models above {} MB are refused",
            len.div_ceil(1_000_000),
            MAX_MODEL_BYTES / 1_000_000
        )));
    }
    Ok(())
}

/// Every graph output must be written by a node or be an input or initializer: tract assumes it.
fn check_graph_names(proto: &tract_onnx::pb::ModelProto) -> Result<()> {
    let graph = proto.graph.as_ref().ok_or_else(|| Error::Load("the model has no graph".into()))?;
    let known: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)))
        .collect();
    if graph.output.is_empty() {
        return Err(Error::Load("the graph has no outputs".into()));
    }
    for out in &graph.output {
        if !known.contains(out.name.as_str()) {
            return Err(Error::Load(format!("graph output `{}` is not produced by any node", out.name)));
        }
    }
    Ok(())
}

/// Runs tract on untrusted input; natively, a panic inside it becomes an [`Error::Load`]
/// (in the browser a panic traps, and the page replaces its worker).
fn guard<T>(f: impl FnOnce() -> T) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|_| Error::Load("tract failed on this model (an internal error on malformed data)".into()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        Ok(f())
    }
}

fn load_err(e: impl std::fmt::Display) -> Error {
    Error::Load(format!("{e:#}"))
}

impl Model {
    /// Loads an ONNX model from bytes.
    ///
    /// # Errors
    /// [`Error::Load`] for bytes that are not a readable ONNX model (or are empty, or larger
    /// than [`MAX_MODEL_BYTES`]), or weights that are not finite,
    /// [`Error::UnsupportedInput`] for a non-image input or dynamic channels (a dynamic batch
    /// is pinned to 1, a dynamic height and width to [`DEFAULT_SIDE`]),
    /// [`Error::UnsupportedOp`] naming the first node the explainer cannot handle.
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Model> {
        check_model_size(bytes.len() as u64)?;
        let onnx = tract_onnx::onnx();
        let mut reader = bytes;
        let proto = onnx.proto_model_for_read(&mut reader).map_err(load_err)?;
        check_graph_names(&proto)?;
        let mut inference = guard(|| onnx.model_for_proto_model(&proto))?.map_err(load_err)?;
        drop(proto); // its copy of the weights is no longer needed: lowers the peak while loading
        if inference.inputs.len() != 1 {
            return Err(Error::UnsupportedInput(format!(
                "the model has {} inputs, expected 1",
                inference.inputs.len()
            )));
        }
        let name = inference.node(inference.inputs[0].node).name.clone();
        // pin a symbolic batch axis to 1, and symbolic height and width of an image input to 224
        let fact = inference.input_fact(0).map_err(load_err)?.clone();
        let dims: Option<Vec<_>> = fact.shape.dims().map(|d| d.concretize()).collect();
        let dims = dims.ok_or_else(|| Error::UnsupportedInput(format!("the rank of input `{name}` is unknown")))?;
        let mut fixed: Vec<Option<usize>> = dims.iter().map(|d| d.to_usize().ok()).collect();
        if let Some(b) = fixed.first_mut().filter(|b| b.is_none()) {
            *b = Some(1);
        }
        let is_c = |d: Option<usize>| matches!(d, Some(1) | Some(3));
        let spatial = match fixed.as_slice() {
            [_, c, _, _] if is_c(*c) => Some([2, 3]),
            [_, _, _, c] if is_c(*c) => Some([1, 2]),
            _ => None,
        };
        let mut size_pinned = false;
        for ax in spatial.into_iter().flatten() {
            if fixed[ax].is_none() {
                fixed[ax] = Some(DEFAULT_SIDE);
                size_pinned = true;
            }
        }
        if let Some(ax) = fixed.iter().position(Option::is_none) {
            return Err(Error::UnsupportedInput(format!(
                "input `{name}` has a dynamic dimension {} on axis {ax} (shape {:?}); export the model with a \
                 fixed number of channels",
                dims[ax],
                dims.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            )));
        }
        let shape: Vec<usize> = fixed.into_iter().map(|d| d.unwrap_or(1)).collect();
        let input = InputSpec { size_pinned, ..InputSpec::from_shape(name, &shape)? };
        inference.set_input_fact(0, f32::fact(&shape).into()).map_err(load_err)?;
        let mut typed = guard(|| inference.into_typed())?.map_err(load_err)?;
        guard(|| declutter(&mut typed))?.map_err(load_err)?;
        let graph = LayerGraph::from_typed(&typed)?;
        // one plan for plain inference (its first output) and for the explainer's forward pass
        // (the activations explanations read, as further outputs)
        let mut outlets = typed.output_outlets().map_err(load_err)?.to_vec();
        let mut outputs = Vec::new();
        for k in graph.kept_activations() {
            let Some(src) = graph.nodes[k].source else { continue };
            let outlet = OutletId::new(src, 0);
            let j = outlets.iter().position(|o| *o == outlet).unwrap_or_else(|| {
                outlets.push(outlet);
                outlets.len() - 1
            });
            outputs.push((k, j));
        }
        typed.select_output_outlets(&outlets).map_err(load_err)?;
        let plan = guard(|| typed.into_optimized())?.map_err(load_err)?.into_runnable().map_err(load_err)?;
        Ok(Model { plan: ForwardPlan { plan, outputs }, input, graph: Arc::new(graph) })
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
        Explainer::with_plan(Arc::clone(&self.graph), self.plan.clone())
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
        let out = self.plan.plan.run(tvec![Tensor::from(input.clone()).into_tvalue()])?;
        let t = out.into_iter().next().ok_or_else(|| Error::Tract("no output".into()))?;
        Ok(t.into_tensor().into_plain_array::<f32>()?.iter().copied().collect())
    }

    /// Turns an RGBA image (row-major, 4 bytes per pixel) into the model's input: bilinear
    /// resize to the input size, then scale, channel order, mean/std, layout.
    /// The same as [`Model::resize_rgba`] followed by [`Model::normalize`].
    ///
    /// # Errors
    /// [`Error::Image`] for an empty image or a buffer of the wrong size.
    pub fn preprocess(&self, rgba: &[u8], width: usize, height: usize, p: &Preprocess) -> Result<ArrayD<f32>> {
        p.validate()?;
        let pixels = self.resize_rgba(rgba, width, height)?;
        self.normalize(&pixels, p)
    }

    /// The first half of [`Model::preprocess`]: bilinear resize of an RGBA image to the model's
    /// input size, in pixel space — `[H, W, 3]`, R, G, B, values 0–255 (alpha dropped).
    ///
    /// # Errors
    /// [`Error::Image`] for an empty image or a buffer of the wrong size.
    pub fn resize_rgba(&self, rgba: &[u8], width: usize, height: usize) -> Result<Array3<f32>> {
        if width == 0 || height == 0 {
            return Err(Error::Image(format!("the image is empty ({width}×{height})")));
        }
        if rgba.len() != width * height * 4 {
            return Err(Error::Image(format!("{} bytes for a {width}×{height} RGBA image", rgba.len())));
        }
        let (h, w) = (self.input.height, self.input.width);
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
        let mut out = Array3::<f32>::zeros((h, w, 3));
        for yy in 0..h {
            let fy = (yy as f32 + 0.5) * sy - 0.5;
            for xx in 0..w {
                let fx = (xx as f32 + 0.5) * sx - 0.5;
                for ch in 0..3 {
                    out[[yy, xx, ch]] = sample(ch, fy, fx);
                }
            }
        }
        Ok(out)
    }

    /// The second half of [`Model::preprocess`]: pixel-space RGB `[H, W, 3]` (0–255, the
    /// model's input size) → the model's input tensor (scale, channel order, mean/std, layout;
    /// grey models get the luma).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for invalid preprocessing, [`Error::Shape`] for pixels that are
    /// not `[H, W, 3]` at the model's input size.
    pub fn normalize(&self, pixels: &Array3<f32>, p: &Preprocess) -> Result<ArrayD<f32>> {
        p.validate()?;
        let (h, w, c) = (self.input.height, self.input.width, self.input.channels);
        if pixels.dim() != (h, w, 3) {
            return Err(Error::Shape(format!("pixels {:?}, the model needs [{h}, {w}, 3]", pixels.shape())));
        }
        let mut x = ArrayD::<f32>::zeros(IxDyn(&self.input.shape));
        for yy in 0..h {
            for xx in 0..w {
                let px = |ch: usize| pixels[[yy, xx, ch]];
                for ch in 0..c {
                    let src = if c == 1 {
                        // grey models get the luma
                        0.299 * px(0) + 0.587 * px(1) + 0.114 * px(2)
                    } else {
                        px(if p.bgr { 2 - ch } else { ch })
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

/// tract's optimised plan for a fixed batch of images, for workloads that are only forward passes
/// (the insertion/deletion curves of [`crate::metrics`]).
pub struct BatchPlan {
    plan: Arc<TypedRunnableModel>,
    batch: usize,
    /// Shape of one image (batch axis 1).
    image_shape: Vec<usize>,
    /// Output values per image.
    outputs: usize,
}

impl std::fmt::Debug for BatchPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPlan").field("batch", &self.batch).field("image_shape", &self.image_shape).finish()
    }
}

impl BatchPlan {
    /// Loads `bytes` (the ONNX model `model` was loaded from) again with the batch axis fixed to
    /// `batch`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for `batch == 0`; [`Error::Load`] if the graph cannot run with that
    /// batch (e.g. a reshape with a hard-coded batch of 1) or does not give one output per image.
    pub fn from_onnx_bytes(model: &Model, bytes: &[u8], batch: usize) -> Result<BatchPlan> {
        if batch == 0 {
            return Err(Error::param("batch", "must be at least 1"));
        }
        let mut reader = bytes;
        let mut inference = tract_onnx::onnx().model_for_read(&mut reader).map_err(load_err)?;
        let image_shape = model.input.shape.clone();
        let mut shape = image_shape.clone();
        shape[0] = batch;
        inference.set_input_fact(0, f32::fact(&shape).into()).map_err(load_err)?;
        let typed = inference.into_typed().map_err(load_err)?.into_decluttered().map_err(load_err)?;
        let out_shape = typed.output_fact(0).map_err(load_err)?.shape.as_concrete().map(|s| s.to_vec());
        let outputs: usize = model.graph.nodes[model.graph.output].shape.iter().product();
        match out_shape {
            Some(s) if s.first() == Some(&batch) && s.iter().product::<usize>() == batch * outputs => {}
            s => {
                return Err(Error::Load(format!(
                    "with a batch of {batch} the output has shape {s:?}, expected [{batch}, …] with {outputs} values per image"
                )))
            }
        }
        let plan = typed.into_optimized().map_err(load_err)?.into_runnable().map_err(load_err)?;
        Ok(BatchPlan { plan, batch, image_shape, outputs })
    }

    /// The fixed batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs up to [`BatchPlan::batch`] images (each in the model's input shape) in one pass; a
    /// short batch is padded with copies of its last image. Returns the model's own output per
    /// image, flattened.
    ///
    /// # Errors
    /// [`Error::Shape`] for no images, too many, or a wrong shape; [`Error::Tract`] from tract.
    pub fn run(&self, images: &[ArrayD<f32>]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() || images.len() > self.batch {
            return Err(Error::Shape(format!("{} images for a batch of {}", images.len(), self.batch)));
        }
        let per: usize = self.image_shape.iter().product();
        let mut data = Vec::with_capacity(per * self.batch);
        for k in 0..self.batch {
            let img = &images[k.min(images.len() - 1)];
            if img.shape() != self.image_shape.as_slice() {
                return Err(Error::Shape(format!(
                    "input has shape {:?}, the model needs {:?}",
                    img.shape(),
                    self.image_shape
                )));
            }
            data.extend(img.iter().copied());
        }
        let mut shape = self.image_shape.clone();
        shape[0] = self.batch;
        let x = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::Shape(e.to_string()))?;
        let out = self.plan.run(tvec![Tensor::from(x).into_tvalue()])?;
        let t = out.into_iter().next().ok_or_else(|| Error::Tract("no output".into()))?;
        let flat: Vec<f32> = t.into_tensor().into_plain_array::<f32>()?.iter().copied().collect();
        Ok(flat.chunks(self.outputs).take(images.len()).map(<[f32]>::to_vec).collect())
    }
}
