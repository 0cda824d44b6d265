//! Import: tract's typed, decluttered model → our [`LayerGraph`].
//!
//! tract has already folded BatchNorm into convolutions where it could, turned ReLU into
//! `Max(x, 0)`, 1×1 convolutions and dense layers into `EinSum`, and global average pooling
//! into `Reduce<Sum>` followed by a scalar `Mul`. Each supported op kind has one small
//! builder (a `ToLayer` impl) registered in the `OPS` table, much as tract's own ONNX
//! importer registers one builder per op name; every weight is read out of tract's constant
//! facts. Anything no builder recognises is an [`Error::UnsupportedOp`] that names the node
//! and the op.
//!
//! The graph is then put in canonical form by the passes of [`canonize`].

use ndarray::ArrayD;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer, Softmax};
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_core::ops::Op;

use crate::error::{Error, Result};
use crate::geometry::ConvGeometry;
use crate::geometry::PoolGeometry;
use crate::graph::{ConstOp, ConvWeights, Layer, LayerGraph, Node};

pub mod batchnorm;
pub mod canonize;
mod einsum;

use batchnorm::KeptBatchNorm;

/// A builder: the layer for the node if its op is of the builder's kind, else `None`.
type Builder = fn(&Ctx) -> Option<Result<Layer>>;

/// The supported op kinds. Their types are distinct, so at most one builder answers a node.
const OPS: &[Builder] = &[
    via::<TypedSource>,
    via::<Conv>,
    via::<EinSum>,
    via::<TypedBinOp>,
    via::<MaxPool>,
    via::<SumPool>,
    via::<Reduce>,
    via::<AxisOp>,
    via::<Downsample>,
    via::<Softmax>,
    via::<KeptBatchNorm>,
    via::<ElementWiseOp>,
];

/// A tract op kind that maps to one [`Layer`].
trait ToLayer: Op {
    /// The layer computing what `self` computes at the node `cx` describes.
    fn to_layer(&self, cx: &Ctx) -> Result<Layer>;
}

/// The builder for op kind `O`.
fn via<O: ToLayer>(cx: &Ctx) -> Option<Result<Layer>> {
    cx.node.op_as::<O>().map(|op| op.to_layer(cx))
}

impl LayerGraph {
    /// Extracts the layer graph from a typed, decluttered tract model with one input and
    /// one output, batch size 1, and puts it in canonical form ([`canonize`]).
    ///
    /// # Errors
    /// [`Error::UnsupportedOp`] for anything outside the supported set, naming node and op;
    /// [`Error::UnsupportedInput`] for a model of the wrong shape (inputs, outputs, batch).
    pub fn from_typed(model: &TypedModel) -> Result<LayerGraph> {
        if model.inputs.len() != 1 || model.outputs.len() != 1 {
            return Err(Error::UnsupportedInput(format!(
                "the model must have one input and one output, it has {} and {}",
                model.inputs.len(),
                model.outputs.len()
            )));
        }
        let mut nodes: Vec<Node> = Vec::new();
        // tract node id → our node id (only for nodes producing activations)
        let mut map: std::collections::HashMap<usize, usize> = Default::default();
        for id in model.eval_order()? {
            let Some(cx) = Ctx::new(model, id, &nodes, &map)? else { continue };
            let layer = OPS
                .iter()
                .find_map(|build| build(&cx))
                .unwrap_or_else(|| Err(cx.unsupported("this operation cannot be explained by LRP here")))?;
            let inputs = cx.acts.iter().map(|a| a.0).collect();
            let node = Node { name: cx.node.name.clone(), layer, inputs, shape: cx.shape, source: Some(id) };
            map.insert(id, nodes.len());
            nodes.push(node);
        }
        let output = *map
            .get(&model.outputs[0].node)
            .ok_or_else(|| Error::UnsupportedInput("the model output is a constant".into()))?;
        let mut graph = LayerGraph { nodes, logits: output, output };
        canonize::fold_biases(&mut graph);
        graph.logits = canonize::find_logits(&graph);
        Ok(graph)
    }
}

/// What a builder knows about one tract node, gathered once per node.
struct Ctx<'a> {
    /// The tract node.
    node: &'a TypedNode,
    /// Its output shape.
    shape: Vec<usize>,
    /// Its activation inputs: (our node id, input slot).
    acts: Vec<(usize, usize)>,
    /// Its constant inputs: (tensor, input slot).
    consts: Vec<(Arc<Tensor>, usize)>,
    /// The layers built so far, which the activation inputs index.
    nodes: &'a [Node],
}

impl<'a> Ctx<'a> {
    /// The context of node `id`, or `None` for a constant (read where it is used).
    fn new(
        model: &'a TypedModel,
        id: usize,
        nodes: &'a [Node],
        map: &std::collections::HashMap<usize, usize>,
    ) -> Result<Option<Ctx<'a>>> {
        let node = model.node(id);
        // MaxPool may have a second output (the argmax indices), which nothing reads here
        if node.outputs.len() != 1 && !node.op_is::<MaxPool>() {
            return Err(unsupported(node, "more than one output"));
        }
        let fact = &node.outputs[0].fact;
        if fact.konst.is_some() {
            return Ok(None);
        }
        if fact.datum_type != f32::datum_type() {
            return Err(unsupported(node, format!("tensor type {:?} (only f32 is supported)", fact.datum_type)));
        }
        let shape = concrete(&fact.shape, node)?;
        let mut acts = Vec::new();
        let mut consts = Vec::new();
        for (slot, i) in node.inputs.iter().enumerate() {
            let f = model.outlet_fact(*i)?;
            if let Some(k) = &f.konst {
                consts.push((k.clone(), slot));
            } else {
                let ours =
                    map.get(&i.node).copied().ok_or_else(|| unsupported(node, "input from an unsupported node"))?;
                acts.push((ours, slot));
            }
        }
        Ok(Some(Ctx { node, shape, acts, consts, nodes }))
    }

    /// [`Error::UnsupportedOp`] naming this node and its op.
    fn unsupported(&self, reason: impl Into<String>) -> Error {
        unsupported(self.node, reason)
    }

    /// The shape of the single activation input; an error if there is not exactly one.
    fn single(&self) -> Result<&'a [usize]> {
        match self.acts.as_slice() {
            [(ours, _)] => Ok(&self.nodes[*ours].shape),
            acts => Err(self.unsupported(format!("expects one activation input, has {}", acts.len()))),
        }
    }

    /// The constant at input `slot`, if that input is a constant.
    fn konst(&self, slot: usize) -> Option<&Tensor> {
        self.consts.iter().find(|(_, s)| *s == slot).map(|(t, _)| &**t)
    }

    /// A constant as finite `f32`s.
    fn f32(&self, t: &Tensor) -> Result<ArrayD<f32>> {
        let t = t.cast_to::<f32>().map_err(|e| self.unsupported(format!("constant: {e}")))?;
        let a = t
            .to_plain_array_view::<f32>()
            .map(|v| v.to_owned())
            .map_err(|e| self.unsupported(format!("constant: {e}")))?;
        if let Some(bad) = a.iter().find(|v| !v.is_finite()) {
            return Err(Error::load(format!("the weights of node `{}` contain {bad}", self.node.name)));
        }
        Ok(a)
    }
}

fn unsupported(node: &TypedNode, reason: impl Into<String>) -> Error {
    Error::UnsupportedOp { node: node.name.clone(), op: node.op.name().to_string(), reason: reason.into() }
}

fn concrete(shape: &ShapeFact, node: &TypedNode) -> Result<Vec<usize>> {
    shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| unsupported(node, format!("symbolic shape {shape:?}")))
}

impl ToLayer for TypedSource {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        if !cx.nodes.is_empty() {
            return Err(cx.unsupported("second input"));
        }
        if cx.shape.first() != Some(&1) {
            return Err(Error::UnsupportedInput(format!("batch size must be 1, input shape is {:?}", cx.shape)));
        }
        Ok(Layer::Input)
    }
}

impl ToLayer for Conv {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let x = cx.single()?;
        if self.q_params.is_some() {
            return Err(cx.unsupported("quantized convolution"));
        }
        if self.kernel_fmt != KernelFormat::OIHW {
            return Err(cx.unsupported(format!("kernel format {:?}", self.kernel_fmt)));
        }
        let spec = &self.pool_spec;
        let x = as_nchw(spec, x, cx)?;
        let y = as_nchw(spec, &cx.shape, cx)?;
        let weights = cx.f32(cx.konst(1).ok_or_else(|| cx.unsupported("kernel is not a constant"))?)?;
        let bias = match cx.konst(2) {
            Some(b) => channel_vector(&cx.f32(b)?, y[1], cx)?,
            None => vec![0.0; y[1]],
        };
        let (pad_begin, pad_end) = spatial_pads(spec, hw(&x), hw(&y), cx)?;
        let d = spec.dilations();
        let s = spec.strides();
        let geometry = ConvGeometry {
            c_in: x[1],
            c_out: y[1],
            in_hw: hw(&x),
            out_hw: hw(&y),
            kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
            strides: [s[0], s[1]],
            dilations: [d[0], d[1]],
            pad_begin,
            pad_end,
            group: self.group,
        };
        geometry.validate().map_err(|e| cx.unsupported(e.to_string()))?;
        if weights.shape() != geometry.kernel_shape() {
            return Err(cx.unsupported(format!("kernel shape {:?}", weights.shape())));
        }
        Ok(Layer::Conv { geometry, weights: ConvWeights::new(weights), bias, dense: false })
    }
}

impl ToLayer for TypedBinOp {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let name = self.0.name();
        match (cx.acts.len(), cx.consts.as_slice()) {
            (2, []) if name == "Add" => Ok(Layer::Add),
            (2, []) if name == "Mul" => gate(cx),
            (1, [(value, slot)]) => {
                // `c − x` and `c / x` are not a constant applied to x: only x on the left
                let op = match name {
                    "Add" => ConstOp::Add,
                    "Sub" if *slot == 1 => ConstOp::Sub,
                    "Mul" => ConstOp::Mul,
                    "Div" if *slot == 1 => ConstOp::Div,
                    "Max" => ConstOp::Max,
                    "Min" => ConstOp::Min,
                    _ => return Err(cx.unsupported(format!("element-wise `{name}` with a constant"))),
                };
                Ok(Layer::Const { op, value: cx.f32(value)? })
            }
            _ => Err(cx.unsupported(format!("element-wise `{name}` between two activations"))),
        }
    }
}

/// A product of two activations read as a branch times its gate ([`Layer::Gate`]): the gate is
/// the input a sigmoid computes, else the one broadcast over the other (fewer elements).
fn gate(cx: &Ctx) -> Result<Layer> {
    let [(a, _), (b, _)] = cx.acts[..] else { return Err(cx.unsupported("expects two activation inputs")) };
    let (na, nb) = (&cx.nodes[a], &cx.nodes[b]);
    let sigmoid = |n: &Node| matches!(n.layer, Layer::Sigmoid);
    let size = |n: &Node| n.shape.iter().product::<usize>();
    let gate = match (sigmoid(na), sigmoid(nb)) {
        (true, false) => 0,
        (false, true) => 1,
        _ if size(na) < size(nb) => 0,
        _ if size(nb) < size(na) => 1,
        _ => {
            return Err(cx.unsupported(
                "product of two activations that is not a branch times a sigmoid gate (squeeze-excitation)",
            ))
        }
    };
    let branch = if gate == 0 { nb } else { na };
    if branch.shape != cx.shape {
        return Err(
            cx.unsupported(format!("gated branch of shape {:?}, product of shape {:?}", branch.shape, cx.shape))
        );
    }
    Ok(Layer::Gate { gate })
}

impl ToLayer for ElementWiseOp {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        cx.single()?;
        match self.0.name().as_str() {
            "Sigmoid" => Ok(Layer::Sigmoid),
            other => Err(cx.unsupported(format!("element-wise `{other}`"))),
        }
    }
}

impl ToLayer for MaxPool {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        Ok(Layer::MaxPool(pool(&self.pool_spec, cx.single()?, cx)?))
    }
}

impl ToLayer for SumPool {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let x = cx.single()?;
        if !self.normalize {
            return Err(cx.unsupported("un-normalised sum pooling"));
        }
        Ok(Layer::AvgPool { geometry: pool(&self.pool_spec, x, cx)?, count_include_pad: self.count_include_pad })
    }
}

impl ToLayer for Reduce {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let r = cx.single()?.len();
        let spatial = (r == 3 || r == 4) && self.axes.iter().copied().collect::<Vec<_>>() == [r - 2, r - 1];
        if !matches!(self.reducer, Reducer::Sum) || !spatial {
            return Err(cx.unsupported(format!("reduction {:?} over axes {:?}", self.reducer, self.axes)));
        }
        Ok(Layer::GlobalSum)
    }
}

impl ToLayer for AxisOp {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let rank = cx.single()?.len();
        Ok(match self {
            AxisOp::Move(from, to) => {
                let mut perm: Vec<usize> = (0..rank).collect();
                let ax = perm.remove(*from);
                perm.insert(*to, ax);
                Layer::Permute(perm)
            }
            // adding, removing and reshaping axes keeps the element order
            _ => Layer::Reshape,
        })
    }
}

impl ToLayer for Downsample {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        cx.single()?;
        if self.stride <= 0 {
            return Err(cx.unsupported("reversed subsampling"));
        }
        Ok(Layer::Subsample { axis: self.axis, stride: self.stride as usize, offset: self.modulo })
    }
}

impl ToLayer for Softmax {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let last = cx.single()?.len().saturating_sub(1);
        if self.axes.as_slice() != [last] {
            return Err(cx.unsupported("softmax over a non-final axis"));
        }
        Ok(Layer::Softmax)
    }
}

impl ToLayer for KeptBatchNorm {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let x = cx.single()?;
        let c = *x.get(1).ok_or_else(|| cx.unsupported(format!("BatchNorm of shape {x:?}")))?;
        let vector = |slot| -> Result<Vec<f32>> {
            let t = cx.konst(slot).ok_or_else(|| cx.unsupported("BatchNorm parameter is not a constant"))?;
            channel_vector(&cx.f32(t)?, c, cx)
        };
        Ok(Layer::BatchNorm { scale: vector(1)?, shift: vector(2)? })
    }
}

/// Per-channel vector from a constant of shape `[]`, `[c]` or broadcastable `[1, c, 1, 1]`.
fn channel_vector(a: &ArrayD<f32>, c: usize, cx: &Ctx) -> Result<Vec<f32>> {
    if a.len() == 1 {
        return Ok(vec![a.iter().next().copied().unwrap_or(0.0); c]);
    }
    if a.len() == c && a.shape().iter().filter(|&&d| d != 1).count() == 1 {
        return Ok(a.iter().copied().collect());
    }
    Err(cx.unsupported(format!("bias of shape {:?} for {c} channels", a.shape())))
}

/// The activation's shape as `[1, C, H, W]` for NCHW (rank 4, batch 1) or CHW (rank 3) data.
fn as_nchw(spec: &PoolSpec, shape: &[usize], cx: &Ctx) -> Result<[usize; 4]> {
    match (spec.data_format, shape) {
        (DataFormat::NCHW, [1, c, h, w]) | (DataFormat::CHW, [c, h, w]) => Ok([1, *c, *h, *w]),
        (f, s) => Err(cx.unsupported(format!("{f:?} data of shape {s:?} (expects [1, C, H, W])"))),
    }
}

/// Explicit `(begin, end)` padding of a 2-D window op that reproduces tract's output size.
fn spatial_pads(spec: &PoolSpec, in_hw: [usize; 2], out_hw: [usize; 2], cx: &Ctx) -> Result<([usize; 2], [usize; 2])> {
    if spec.rank() != 2 {
        return Err(cx.unsupported(format!("only 2-D convolution and pooling are supported, got rank {}", spec.rank())));
    }
    let padded = spec.computed_padding(&in_hw);
    let strides = spec.strides();
    let dil = spec.dilations();
    let mut begin = [0; 2];
    let mut end = [0; 2];
    for a in 0..2 {
        begin[a] = padded[a].pad_before;
        // ceil-mode pools need a little more padding at the end to reach tract's output size
        let extent = dil[a] * (spec.kernel_shape[a] - 1) + 1;
        let needed = ((out_hw[a] - 1) * strides[a] + extent).saturating_sub(in_hw[a] + begin[a]);
        end[a] = padded[a].pad_after.max(needed);
    }
    Ok((begin, end))
}

fn hw(shape: &[usize]) -> [usize; 2] {
    [shape[2], shape[3]]
}

/// The window geometry of a max or average pooling from input shape `x` to the node's shape.
fn pool(spec: &PoolSpec, x: &[usize], cx: &Ctx) -> Result<PoolGeometry> {
    let x = &as_nchw(spec, x, cx)?;
    let shape = &as_nchw(spec, &cx.shape, cx)?;
    if spec.dilations().iter().any(|&d| d != 1) {
        return Err(cx.unsupported("dilated pooling"));
    }
    let (pad_begin, pad_end) = spatial_pads(spec, hw(x), hw(shape), cx)?;
    let s = spec.strides();
    let g = PoolGeometry {
        kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
        strides: [s[0], s[1]],
        pad_begin,
        pad_end,
        in_hw: hw(x),
        out_hw: hw(shape),
    };
    if g.is_valid() {
        Ok(g)
    } else {
        Err(cx.unsupported(format!("pooling geometry {g:?}")))
    }
}
