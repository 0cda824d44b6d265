//! Loading: ONNX bytes → tract's typed, decluttered model → our [`LayerGraph`] (through
//! [`crate::import`]) and tract's optimised plan. Every load, the explainer's and the batched
//! plan of the evaluation, goes through the same guarded pipeline (`typed_model`).

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{Array3, ArrayD, IxDyn};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Error, Result};
use crate::external::{self, SideFiles};
use crate::glue::{self, declutter, guarded, load_err};
use crate::graph::LayerGraph;
use crate::import::{batchnorm, canonize};
use crate::lrp::{Explainer, ForwardPlan};
use crate::metadata::ModelMetadata;
pub use crate::preprocess::{InputSpec, Layout, Preprocess, DEFAULT_SIDE};

/// A loaded model: tract's plan for plain inference plus our layer graph.
pub struct Model {
    plan: ForwardPlan,
    input: InputSpec,
    /// The layer graph, BatchNorm folded into the convolutions.
    graph: Arc<LayerGraph>,
    /// For a file that keeps `BatchNormalization` nodes after its convolutions: the same graph
    /// with those BatchNorms as layers of their own, for composites that use the raw weights.
    raw_batchnorm: Option<Arc<LayerGraph>>,
    metadata: ModelMetadata,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("input", &self.input).field("layers", &self.graph.nodes.len()).finish()
    }
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
        return Err(Error::load("the file is empty"));
    }
    if len > MAX_MODEL_BYTES {
        return Err(Error::load(format!(
            "the file is {} MB; models above {} MB are refused",
            len.div_ceil(1_000_000),
            MAX_MODEL_BYTES / 1_000_000
        )));
    }
    Ok(())
}

/// Every graph output must be written by a node or be an input or initializer: tract assumes it.
fn check_graph_names(proto: &tract_onnx::pb::ModelProto) -> Result<()> {
    let graph = proto.graph.as_ref().ok_or_else(|| Error::load("the model has no graph"))?;
    let known: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)))
        .collect();
    if graph.output.is_empty() {
        return Err(Error::load("the graph has no outputs"));
    }
    for out in &graph.output {
        if !known.contains(out.name.as_str()) {
            return Err(Error::load(format!("graph output `{}` is not produced by any node", out.name)));
        }
    }
    Ok(())
}

/// Leaves every symbolic dimension of the graph's outputs and intermediate values unknown, for
/// tract to infer from the pinned input. torch's dynamo exporter writes the shape of every value,
/// the batch as a symbol (`s0`); tract takes those as facts, and a symbol it has seen nowhere but
/// there cannot be unified with the batch of 1 the input is pinned to ("Impossible to unify
/// Sym(s0) with Val(1)"). Unknown dimensions lose nothing: tract derives every shape from the
/// input's. The input's own dimensions are left for [`pin_input`].
fn forget_symbolic_dims(proto: &mut tract_onnx::pb::ModelProto) {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value;
    let Some(graph) = proto.graph.as_mut() else { return };
    for info in graph.value_info.iter_mut().chain(graph.output.iter_mut()) {
        let Some(Value::TensorType(t)) = info.r#type.as_mut().and_then(|t| t.value.as_mut()) else { continue };
        for d in t.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
            if matches!(d.value, Some(Dim::DimParam(_))) {
                d.value = None;
            }
        }
    }
}

/// The input's shape with its open dimensions pinned: a symbolic batch axis to 1, symbolic height
/// and width of an image input to [`DEFAULT_SIDE`]. Returns the spec (batch 1).
fn pin_input(inference: &InferenceModel) -> Result<InputSpec> {
    if inference.inputs.len() != 1 {
        return Err(Error::UnsupportedInput(format!("the model has {} inputs, expected 1", inference.inputs.len())));
    }
    let name = inference.node(inference.inputs[0].node).name.clone();
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
    Ok(InputSpec { size_pinned, ..InputSpec::from_shape(name, &shape)? })
}

/// A file's `metadata_props`, as `(key, value)` pairs.
pub(crate) type MetadataProps = Vec<(String, String)>;

/// The one load pipeline: checks the bytes, reads them with tract (guarded), pins the input to
/// `batch` images of the model's own size, types and declutters. With `keep_batchnorm`, each
/// BatchNorm after a convolution is held apart from it ([`batchnorm::keep`]; release it with
/// [`batchnorm::release`] before optimising). Returns the typed model, the input spec of one
/// image and the file's `metadata_props`.
///
/// Owned `bytes` are freed as soon as they are decoded: the file is then no longer held while
/// the weights are copied into the layer graph and packed for tract's plan, which is when a load
/// needs the most memory.
///
/// # Errors
/// [`Error::Load`] for bytes that are not a readable ONNX model, [`Error::UnsupportedInput`] for
/// an input that is not an image.
pub(crate) fn typed_model(
    bytes: Cow<'_, [u8]>,
    side: &mut SideFiles,
    batch: usize,
    keep_batchnorm: bool,
) -> Result<(TypedModel, InputSpec, MetadataProps)> {
    let len = bytes.len() as u64;
    check_model_size(len)?;
    let onnx = tract_onnx::onnx();
    // decoded straight from the bytes (tract's reader would copy them first)
    let mut proto = guarded(|| Ok(<tract_onnx::pb::ModelProto as prost::Message>::decode(&*bytes)?))?;
    drop(bytes);
    let props = proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
    external::inline(&mut proto, side)?;
    // the limit is on what is held: the model and its side files together
    check_model_size(len + side.len_bytes())?;
    check_graph_names(&proto)?;
    forget_symbolic_dims(&mut proto);
    let mut inference = guarded(|| onnx.model_for_proto_model(&proto))?;
    drop(proto); // its copy of the weights is no longer needed: lowers the peak while loading
    let input = pin_input(&inference)?;
    let mut shape = input.shape.clone();
    shape[0] = batch;
    inference.set_input_fact(0, f32::fact(&shape).into()).map_err(load_err)?;
    let batchnorms = if keep_batchnorm { batchnorm::after_conv(&inference) } else { Vec::new() };
    let mut typed = guarded(|| inference.into_typed())?;
    if !batchnorms.is_empty() {
        guarded(|| batchnorm::keep(&mut typed, &batchnorms))?;
    }
    guarded(|| declutter(&mut typed))?;
    Ok((typed, input, props))
}

/// The first output of a plan's run, flattened.
fn first_output(out: TVec<TValue>) -> Result<Vec<f32>> {
    let t = out.into_iter().next().ok_or_else(|| Error::Internal("the plan returned no output".into()))?;
    Ok(glue::array(t)?.iter().copied().collect())
}

impl Model {
    /// Loads an ONNX model from bytes.
    ///
    /// # Errors
    /// [`Error::Load`] for bytes that are not a readable ONNX model (or are empty, or larger
    /// than [`MAX_MODEL_BYTES`]), weights that are not finite, or metadata of ours that is
    /// invalid ([`crate::metadata`]),
    /// [`Error::UnsupportedInput`] for a non-image input or dynamic channels (a dynamic batch
    /// is pinned to 1, a dynamic height and width to [`DEFAULT_SIDE`]),
    /// [`Error::UnsupportedOp`] naming the first node the explainer cannot handle.
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Model> {
        Self::from_onnx(bytes, &mut SideFiles::none())
    }

    /// Loads an ONNX model from its bytes and the side files holding its external data, if it has
    /// any ([`crate::external`]).
    ///
    /// # Errors
    /// As [`Model::from_onnx_bytes`]; [`Error::Load`] naming a side file that is missing, cannot be
    /// read or is too short, and for a model and side files above [`MAX_MODEL_BYTES`] together.
    pub fn from_onnx(bytes: &[u8], side: &mut SideFiles) -> Result<Model> {
        Self::load(Cow::Borrowed(bytes), side)
    }

    /// As [`Model::from_onnx`], taking the bytes, which are freed as soon as they are decoded:
    /// the load then needs one copy of the file less at its peak.
    ///
    /// # Errors
    /// As [`Model::from_onnx`].
    pub fn from_onnx_owned(bytes: Vec<u8>, side: &mut SideFiles) -> Result<Model> {
        Self::load(Cow::Owned(bytes), side)
    }

    fn load(bytes: Cow<'_, [u8]>, side: &mut SideFiles) -> Result<Model> {
        let (mut typed, input, props) = typed_model(bytes, side, 1, true)?;
        let kept = LayerGraph::from_typed(&typed)?;
        // the activations are those of the folded graph: folding leaves node numbers alone
        let (graph, raw_batchnorm) = match canonize::fold_batchnorm(&kept) {
            Some(folded) => (folded, Some(Arc::new(kept))),
            None => (kept, None),
        };
        let metadata = ModelMetadata::from_props(
            props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &input,
            graph.num_classes(),
        )?;
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
        // the forward pass folds BatchNorm as usual (the selected outputs follow the rewrite)
        guarded(|| batchnorm::release(&mut typed))?;
        let plan = guarded(|| typed.into_optimized()?.into_runnable())?;
        Ok(Model { plan: ForwardPlan { plan, outputs }, input, graph: Arc::new(graph), raw_batchnorm, metadata })
    }

    /// The input description.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The preprocessing and class names the file carries ([`crate::metadata`]).
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The layer graph.
    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// The layer graph with the file's BatchNorm layers kept apart from their convolutions, if
    /// the file has `BatchNormalization` nodes after convolutions (see
    /// [`crate::Composite::raw_batchnorm`]).
    pub fn raw_batchnorm_graph(&self) -> Option<&LayerGraph> {
        self.raw_batchnorm.as_deref()
    }

    /// An explainer for this model.
    pub fn explainer(&self) -> Explainer {
        let ex = Explainer::with_plan(Arc::clone(&self.graph), self.plan.clone())
            .with_channel_axis(self.input.channel_axis());
        match &self.raw_batchnorm {
            Some(raw) => ex.with_raw_batchnorm(Arc::clone(raw)),
            None => ex,
        }
    }

    /// Plain inference with tract's optimised plan: the model's own output, flattened.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a wrong input shape; [`Error::Tract`] from tract.
    pub fn run(&self, input: &ArrayD<f32>) -> Result<Vec<f32>> {
        if input.shape() != self.input.shape.as_slice() {
            return Err(Error::InvalidInput(format!(
                "input has shape {:?}, the model needs {:?}",
                input.shape(),
                self.input.shape
            )));
        }
        first_output(self.plan.plan.run(tvec![glue::tensor(input)?.into_tvalue()])?)
    }

    /// Turns an RGBA image into the model's input: [`InputSpec::preprocess`].
    ///
    /// # Errors
    /// As [`InputSpec::preprocess`].
    pub fn preprocess(&self, rgba: &[u8], width: usize, height: usize, p: &Preprocess) -> Result<ArrayD<f32>> {
        self.input.preprocess(rgba, width, height, p)
    }

    /// Bilinear resize to the model's input size: [`InputSpec::resize_rgba`].
    ///
    /// # Errors
    /// As [`InputSpec::resize_rgba`].
    pub fn resize_rgba(&self, rgba: &[u8], width: usize, height: usize) -> Result<Array3<f32>> {
        self.input.resize_rgba(rgba, width, height)
    }

    /// Pixels at the model's size → its input tensor: [`InputSpec::normalize`].
    ///
    /// # Errors
    /// As [`InputSpec::normalize`].
    pub fn normalize(&self, pixels: &Array3<f32>, p: &Preprocess) -> Result<ArrayD<f32>> {
        self.input.normalize(pixels, p)
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
        Self::from_onnx(model, bytes, &mut SideFiles::none(), batch)
    }

    /// [`BatchPlan::from_onnx_bytes`] for a model with external data in `side`.
    ///
    /// # Errors
    /// As [`BatchPlan::from_onnx_bytes`] and [`Model::from_onnx`].
    pub fn from_onnx(model: &Model, bytes: &[u8], side: &mut SideFiles, batch: usize) -> Result<BatchPlan> {
        if batch == 0 {
            return Err(Error::param("batch", "must be at least 1"));
        }
        let (typed, input, _) = typed_model(Cow::Borrowed(bytes), side, batch, false)?;
        if input.shape != model.input.shape {
            return Err(Error::load(format!(
                "these bytes are another model: input {:?}, the loaded model's is {:?}",
                input.shape, model.input.shape
            )));
        }
        let image_shape = input.shape;
        let out_shape = typed.output_fact(0).map_err(load_err)?.shape.as_concrete().map(|s| s.to_vec());
        let outputs: usize = model.graph.nodes[model.graph.output].shape.iter().product();
        match out_shape {
            Some(s) if s.first() == Some(&batch) && s.iter().product::<usize>() == batch * outputs => {}
            s => {
                return Err(Error::load(format!(
                    "with a batch of {batch} the output has shape {s:?}, expected [{batch}, …] with {outputs} values per image"
                )))
            }
        }
        let plan = guarded(|| typed.into_optimized()?.into_runnable())?;
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
    /// [`Error::InvalidInput`] for no images, too many, or a wrong shape; [`Error::Tract`] from tract.
    pub fn run(&self, images: &[ArrayD<f32>]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() || images.len() > self.batch {
            return Err(Error::InvalidInput(format!("{} images for a batch of {}", images.len(), self.batch)));
        }
        let per: usize = self.image_shape.iter().product();
        let mut data = Vec::with_capacity(per * self.batch);
        for k in 0..self.batch {
            let img = &images[k.min(images.len() - 1)];
            if img.shape() != self.image_shape.as_slice() {
                return Err(Error::InvalidInput(format!(
                    "input has shape {:?}, the model needs {:?}",
                    img.shape(),
                    self.image_shape
                )));
            }
            data.extend(img.iter().copied());
        }
        let mut shape = self.image_shape.clone();
        shape[0] = self.batch;
        let x = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::Internal(e.to_string()))?;
        let flat = first_output(self.plan.run(tvec![Tensor::from(x).into_tvalue()])?)?;
        Ok(flat.chunks(self.outputs).take(images.len()).map(<[f32]>::to_vec).collect())
    }
}
