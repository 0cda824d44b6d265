//! Our own layer graph, extracted from tract's typed and decluttered model.
//!
//! tract has already folded BatchNorm into convolutions where it could, turned ReLU into
//! `Max(x, 0)`, 1×1 convolutions and dense layers into `EinSum`, and global average pooling
//! into `Reduce<Sum>` followed by a scalar `Mul`. [`LayerGraph::from_typed`] recognises these
//! patterns and produces a small list of [`Layer`]s in topological order, with every weight
//! read out of tract's constant facts. Anything it does not recognise is an
//! [`Error::UnsupportedOp`] that names the node and the op.

use ndarray::{ArrayD, IxDyn};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer, Softmax};
use tract_onnx::tract_core::ops::source::TypedSource;

use crate::error::{Error, Result};
use crate::geometry::ConvGeometry;
use crate::geometry::PoolGeometry;

/// Element-wise operation with a constant operand (broadcast to the activation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstOp {
    /// `x + c` (a bias)
    Add,
    /// `x − c`
    Sub,
    /// `x · c` (a scale)
    Mul,
    /// `x / c`
    Div,
    /// `max(x, c)` (ReLU when `c = 0`)
    Max,
    /// `min(x, c)`
    Min,
}

/// One layer of the graph.
#[derive(Debug, Clone)]
pub enum Layer {
    /// The model input.
    Input,
    /// A convolution, or a matrix product (dense layer or 1×1 convolution rewritten by tract)
    /// seen as a 1×1 convolution on a `[1, K, P, 1]` view.
    Conv {
        /// Geometry (NCHW, OIHW).
        geometry: ConvGeometry,
        /// Kernel `[c_out, c_in / group, kh, kw]`.
        weights: ArrayD<f32>,
        /// Bias `[c_out]`.
        bias: Vec<f32>,
        /// True for dense layers (`Gemm`, `MatMul`: no spatial axes), which composites treat apart.
        dense: bool,
    },
    /// Element-wise operation with a constant; relevance passes through.
    Const {
        /// The operation.
        op: ConstOp,
        /// The constant, broadcastable to the activation.
        value: ArrayD<f32>,
    },
    /// Max pooling.
    MaxPool(PoolGeometry),
    /// Average pooling.
    AvgPool {
        /// Window geometry.
        geometry: PoolGeometry,
        /// Divide by the full window even where it overlaps padding.
        count_include_pad: bool,
    },
    /// Sum over the two spatial axes of an NCHW (or CHW) tensor, keeping them as size 1
    /// (global average pooling is this followed by a `Const` multiplication).
    GlobalSum,
    /// Element-wise sum of two activations (a residual connection).
    Add,
    /// A change of shape that keeps the element order (reshape, flatten, squeeze).
    Reshape,
    /// An axis permutation: output axis `i` is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// Every `stride`-th element along `axis`, from `offset` (a strided 1×1 convolution's
    /// subsampling, split out by tract).
    Subsample {
        /// Axis.
        axis: usize,
        /// Step, > 0.
        stride: usize,
        /// First index kept.
        offset: usize,
    },
    /// Softmax over the last axis: explanations start at its input (the logits).
    Softmax,
}

impl Layer {
    /// Short name of the layer kind, as shown in ledgers and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Input => "input",
            Layer::Conv { dense: false, .. } => "conv",
            Layer::Conv { dense: true, .. } => "dense",
            Layer::Const { op: ConstOp::Max, .. } => "relu/max",
            Layer::Const { .. } => "elementwise",
            Layer::MaxPool(_) => "maxpool",
            Layer::AvgPool { .. } => "avgpool",
            Layer::GlobalSum => "global_sum",
            Layer::Add => "add",
            Layer::Reshape => "reshape",
            Layer::Permute(_) => "permute",
            Layer::Subsample { .. } => "subsample",
            Layer::Softmax => "softmax",
        }
    }
}

/// A node of the layer graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name of the tract node it came from.
    pub name: String,
    /// What it computes.
    pub layer: Layer,
    /// Indices of the nodes it reads (earlier in the list).
    pub inputs: Vec<usize>,
    /// Output shape.
    pub shape: Vec<usize>,
    /// The node of tract's decluttered model whose first output holds this node's value
    /// (`None` for graphs built by hand); the forward plan keeps these values.
    pub source: Option<usize>,
}

/// The whole model as a list of layers in topological order.
#[derive(Debug, Clone)]
pub struct LayerGraph {
    /// Nodes; node 0 is the input.
    pub nodes: Vec<Node>,
    /// The node whose output is explained (the logits: the input of a final softmax).
    pub logits: usize,
    /// The node whose output the model returns.
    pub output: usize,
}

fn unsupported(node: &TypedNode, reason: impl Into<String>) -> Error {
    Error::UnsupportedOp { node: node.name.clone(), op: node.op.name().to_string(), reason: reason.into() }
}

fn concrete(shape: &ShapeFact, node: &TypedNode) -> Result<Vec<usize>> {
    shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| unsupported(node, format!("symbolic shape {shape:?}")))
}

fn const_f32(t: &Tensor, node: &TypedNode) -> Result<ArrayD<f32>> {
    let t = t.cast_to::<f32>().map_err(|e| unsupported(node, format!("constant: {e}")))?;
    let a = t
        .to_plain_array_view::<f32>()
        .map(|v| v.to_owned())
        .map_err(|e| unsupported(node, format!("constant: {e}")))?;
    if let Some(bad) = a.iter().find(|v| !v.is_finite()) {
        return Err(Error::load(format!("the weights of node `{}` contain {bad}", node.name)));
    }
    Ok(a)
}

/// Per-channel vector from a constant of shape `[]`, `[c]` or broadcastable `[1, c, 1, 1]`.
fn channel_vector(a: &ArrayD<f32>, c: usize, node: &TypedNode) -> Result<Vec<f32>> {
    if a.len() == 1 {
        return Ok(vec![a.iter().next().copied().unwrap_or(0.0); c]);
    }
    if a.len() == c && a.shape().iter().filter(|&&d| d != 1).count() == 1 {
        return Ok(a.iter().copied().collect());
    }
    Err(unsupported(node, format!("bias of shape {:?} for {c} channels", a.shape())))
}

/// The activation's shape as `[1, C, H, W]` for NCHW (rank 4, batch 1) or CHW (rank 3) data.
fn as_nchw(spec: &PoolSpec, shape: &[usize], node: &TypedNode) -> Result<[usize; 4]> {
    match (spec.data_format, shape) {
        (DataFormat::NCHW, [1, c, h, w]) | (DataFormat::CHW, [c, h, w]) => Ok([1, *c, *h, *w]),
        (f, s) => Err(unsupported(node, format!("{f:?} data of shape {s:?} (expects [1, C, H, W])"))),
    }
}

fn spatial_pads(
    spec: &PoolSpec,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    node: &TypedNode,
) -> Result<([usize; 2], [usize; 2])> {
    if spec.rank() != 2 {
        return Err(unsupported(
            node,
            format!("only 2-D convolution and pooling are supported, got rank {}", spec.rank()),
        ));
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

/// Interpretation of an `EinSum` that is a matrix product with a constant.
struct Linear {
    weights: ArrayD<f32>,
    k: usize,
    o: usize,
    positions: usize,
}

fn parse_einsum(
    op: &EinSum,
    x_shape: &[usize],
    w: &ArrayD<f32>,
    x_first: bool,
    out_shape: &[usize],
    node: &TypedNode,
) -> Result<Linear> {
    let (ins, outs) = op.axes.to_strs();
    let bad = |why: &str| unsupported(node, format!("{} ({why})", op.axes));
    if ins.len() != 2 || outs.len() != 1 || w.ndim() != 2 {
        return Err(bad("not a product with a 2-D constant"));
    }
    let (xs, ws): (Vec<char>, Vec<char>) = if x_first {
        (ins[0].chars().collect(), ins[1].chars().collect())
    } else {
        (ins[1].chars().collect(), ins[0].chars().collect())
    };
    let os: Vec<char> = outs[0].chars().collect();
    // the contracted axis: in x and w, not in the output
    let k_axis = ws.iter().position(|c| xs.contains(c) && !os.contains(c)).ok_or_else(|| bad("no contracted axis"))?;
    let o_axis = 1 - k_axis;
    let (kc, oc) = (ws[k_axis], ws[o_axis]);
    if xs.contains(&oc) || !os.contains(&oc) {
        return Err(bad("output channel axis"));
    }
    // dropping size-1 axes, x must be [K, rest...] and the output [O, rest...], so that in
    // memory x is a K×P matrix and the output an O×P matrix
    let kept_x: Vec<char> = xs.iter().zip(x_shape).filter(|(c, &d)| **c == kc || d != 1).map(|(c, _)| *c).collect();
    let kept_o: Vec<char> = os.iter().zip(out_shape).filter(|(c, &d)| **c == oc || d != 1).map(|(c, _)| *c).collect();
    let ok = kept_x.first() == Some(&kc)
        && kept_o.first() == Some(&oc)
        && kept_x[1..] == kept_o[1..]
        && kept_x.iter().all(|c| *c == kc || os.contains(c));
    if !ok {
        return Err(bad("layout is not [N, C, spatial...]"));
    }
    let k = w.shape()[k_axis];
    let o = w.shape()[o_axis];
    let positions: usize = out_shape.iter().product::<usize>() / o.max(1);
    let weights = if k_axis == 1 { w.clone() } else { w.t().to_owned() };
    let weights = weights
        .as_standard_layout()
        .to_owned()
        .into_shape_with_order(IxDyn(&[o, k, 1, 1]))
        .map_err(|e| bad(&e.to_string()))?;
    Ok(Linear { weights, k, o, positions })
}

fn axis_op_layer(op: &AxisOp, rank: usize) -> Layer {
    match op {
        AxisOp::Move(from, to) => {
            let mut perm: Vec<usize> = (0..rank).collect();
            let ax = perm.remove(*from);
            perm.insert(*to, ax);
            Layer::Permute(perm)
        }
        _ => Layer::Reshape,
    }
}

impl LayerGraph {
    /// Extracts the layer graph from a typed, decluttered tract model with one input and
    /// one output, batch size 1.
    ///
    /// # Errors
    /// [`Error::UnsupportedOp`] for anything outside the supported set, naming node and op.
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
        let order = model.eval_order()?;
        for &id in &order {
            let node = model.node(id);
            if node.outputs.len() != 1 && !node.op_is::<MaxPool>() {
                return Err(unsupported(node, "more than one output"));
            }
            let fact = &node.outputs[0].fact;
            if fact.konst.is_some() {
                continue; // constants are read where they are used
            }
            if fact.datum_type != f32::datum_type() {
                return Err(unsupported(node, format!("tensor type {:?} (only f32 is supported)", fact.datum_type)));
            }
            let shape = concrete(&fact.shape, node)?;
            let mut acts = Vec::new(); // (our id, input slot)
            let mut consts = Vec::new(); // (tensor, input slot)
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
            let in_shape = |k: usize| -> Vec<usize> { nodes[acts[k].0].shape.clone() };
            let single = |acts: &Vec<(usize, usize)>| -> Result<()> {
                if acts.len() == 1 {
                    Ok(())
                } else {
                    Err(unsupported(node, format!("expects one activation input, has {}", acts.len())))
                }
            };
            let layer = if node.op_is::<TypedSource>() {
                if !nodes.is_empty() {
                    return Err(unsupported(node, "second input"));
                }
                Layer::Input
            } else if let Some(conv) = node.op_as::<Conv>() {
                single(&acts)?;
                if conv.q_params.is_some() {
                    return Err(unsupported(node, "quantized convolution"));
                }
                if conv.kernel_fmt != KernelFormat::OIHW {
                    return Err(unsupported(node, format!("kernel format {:?}", conv.kernel_fmt)));
                }
                let x = as_nchw(&conv.pool_spec, &in_shape(0), node)?;
                let y = as_nchw(&conv.pool_spec, &shape, node)?;
                let kernel = consts
                    .iter()
                    .find(|(_, s)| *s == 1)
                    .ok_or_else(|| unsupported(node, "kernel is not a constant"))?;
                let weights = const_f32(&kernel.0, node)?;
                let bias = match consts.iter().find(|(_, s)| *s == 2) {
                    Some((b, _)) => channel_vector(&const_f32(b, node)?, y[1], node)?,
                    None => vec![0.0; y[1]],
                };
                let spec = &conv.pool_spec;
                let (pad_begin, pad_end) = spatial_pads(spec, hw(&x), hw(&y), node)?;
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
                    group: conv.group,
                };
                geometry.validate().map_err(|e| unsupported(node, e.to_string()))?;
                if weights.shape() != geometry.kernel_shape() {
                    return Err(unsupported(node, format!("kernel shape {:?}", weights.shape())));
                }
                Layer::Conv { geometry, weights, bias, dense: false }
            } else if let Some(op) = node.op_as::<EinSum>() {
                single(&acts)?;
                if consts.len() != 1 || op.q_params.is_some() {
                    return Err(unsupported(
                        node,
                        "only products of an activation with a constant matrix are supported",
                    ));
                }
                let w = const_f32(&consts[0].0, node)?;
                let lin = parse_einsum(op, &in_shape(0), &w, acts[0].1 == 0, &shape, node)?;
                let geometry = ConvGeometry {
                    c_in: lin.k,
                    c_out: lin.o,
                    in_hw: [lin.positions, 1],
                    out_hw: [lin.positions, 1],
                    kernel: [1, 1],
                    strides: [1, 1],
                    dilations: [1, 1],
                    pad_begin: [0, 0],
                    pad_end: [0, 0],
                    group: 1,
                };
                // a matrix product with a [1, N] result is a dense layer (Gemm, MatMul); with
                // spatial axes left it is a 1×1 convolution that tract rewrote
                let dense = shape.iter().filter(|&&d| d != 1).count() <= 1;
                Layer::Conv { geometry, weights: lin.weights, bias: vec![0.0; lin.o], dense }
            } else if let Some(bin) = node.op_as::<TypedBinOp>() {
                let name = bin.0.name();
                match (acts.len(), consts.len()) {
                    (2, 0) if name == "Add" => Layer::Add,
                    (1, 1) => {
                        let op = match name {
                            "Add" => ConstOp::Add,
                            "Sub" if consts[0].1 == 1 => ConstOp::Sub,
                            "Mul" => ConstOp::Mul,
                            "Div" if consts[0].1 == 1 => ConstOp::Div,
                            "Max" => ConstOp::Max,
                            "Min" => ConstOp::Min,
                            _ => return Err(unsupported(node, format!("element-wise `{name}` with a constant"))),
                        };
                        Layer::Const { op, value: const_f32(&consts[0].0, node)? }
                    }
                    _ => return Err(unsupported(node, format!("element-wise `{name}` between two activations"))),
                }
            } else if let Some(mp) = node.op_as::<MaxPool>() {
                single(&acts)?;
                Layer::MaxPool(Self::pool(&mp.pool_spec, &in_shape(0), &shape, node)?)
            } else if let Some(sp) = node.op_as::<SumPool>() {
                single(&acts)?;
                if !sp.normalize {
                    return Err(unsupported(node, "un-normalised sum pooling"));
                }
                let geometry = Self::pool(&sp.pool_spec, &in_shape(0), &shape, node)?;
                Layer::AvgPool { geometry, count_include_pad: sp.count_include_pad }
            } else if let Some(red) = node.op_as::<Reduce>() {
                single(&acts)?;
                let r = in_shape(0).len();
                let spatial = (r == 3 || r == 4) && red.axes.iter().copied().collect::<Vec<_>>() == [r - 2, r - 1];
                if !matches!(red.reducer, Reducer::Sum) || !spatial {
                    return Err(unsupported(node, format!("reduction {:?} over axes {:?}", red.reducer, red.axes)));
                }
                Layer::GlobalSum
            } else if let Some(op) = node.op_as::<AxisOp>() {
                single(&acts)?;
                axis_op_layer(op, in_shape(0).len())
            } else if let Some(op) = node.op_as::<Downsample>() {
                single(&acts)?;
                if op.stride <= 0 {
                    return Err(unsupported(node, "reversed subsampling"));
                }
                Layer::Subsample { axis: op.axis, stride: op.stride as usize, offset: op.modulo }
            } else if let Some(sm) = node.op_as::<Softmax>() {
                single(&acts)?;
                let last = in_shape(0).len().saturating_sub(1);
                if sm.axes.as_slice() != [last] {
                    return Err(unsupported(node, "softmax over a non-final axis"));
                }
                Layer::Softmax
            } else {
                return Err(unsupported(node, "this operation cannot be explained by LRP here"));
            };
            let inputs: Vec<usize> = acts.iter().map(|a| a.0).collect();
            if let Layer::Input = layer {
                if shape.first() != Some(&1) {
                    return Err(Error::UnsupportedInput(format!("batch size must be 1, input shape is {shape:?}")));
                }
            }
            map.insert(id, nodes.len());
            nodes.push(Node { name: node.name.clone(), layer, inputs, shape, source: Some(id) });
        }
        let output = *map
            .get(&model.outputs[0].node)
            .ok_or_else(|| Error::UnsupportedInput("the model output is a constant".into()))?;
        let mut graph = LayerGraph { nodes, logits: output, output };
        graph.fold_biases();
        graph.logits = graph.find_logits();
        Ok(graph)
    }

    fn pool(spec: &PoolSpec, x: &[usize], shape: &[usize], node: &TypedNode) -> Result<PoolGeometry> {
        let x = &as_nchw(spec, x, node)?;
        let shape = &as_nchw(spec, shape, node)?;
        if spec.dilations().iter().any(|&d| d != 1) {
            return Err(unsupported(node, "dilated pooling"));
        }
        let (pad_begin, pad_end) = spatial_pads(spec, hw(x), hw(shape), node)?;
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
            Err(unsupported(node, format!("pooling geometry {g:?}")))
        }
    }

    /// Number of nodes reading each node's output.
    pub fn consumers(&self) -> Vec<usize> {
        let mut c = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                c[i] += 1;
            }
        }
        c
    }

    /// Folds `x + b` that directly follows a dense or conv layer (and is its only reader)
    /// into that layer's bias, so the bias belongs to the layer whose rule decides about it.
    fn fold_biases(&mut self) {
        let consumers = self.consumers();
        for i in 0..self.nodes.len() {
            let Layer::Const { op: ConstOp::Add, value } = &self.nodes[i].layer else { continue };
            let src = self.nodes[i].inputs[0];
            if consumers[src] != 1 {
                continue;
            }
            let c_out = match &self.nodes[src].layer {
                Layer::Conv { geometry, .. } => geometry.c_out,
                _ => continue,
            };
            let shape = &self.nodes[i].shape;
            // the constant must vary along the channel axis only (axis 1)
            let fits = value.len() == 1
                || (value.ndim() <= shape.len()
                    && value
                        .shape()
                        .iter()
                        .enumerate()
                        .all(|(ax, &d)| d == 1 || (shape.len() + ax - value.ndim() == 1 && d == c_out)));
            if !fits {
                continue;
            }
            let add: Vec<f32> = if value.len() == 1 {
                vec![value.iter().next().copied().unwrap_or(0.0); c_out]
            } else {
                value.iter().copied().collect()
            };
            if let Layer::Conv { bias, .. } = &mut self.nodes[src].layer {
                for (b, a) in bias.iter_mut().zip(add) {
                    *b += a;
                }
            }
            // the convolution's value now includes the bias: tract computes it at the addition
            self.nodes[src].source = self.nodes[i].source;
            self.nodes[i].layer = Layer::Reshape; // now an identity
        }
    }

    /// The logits: the input of a final softmax (possibly behind reshapes), else the output.
    fn find_logits(&self) -> usize {
        let mut i = self.output;
        loop {
            match self.nodes[i].layer {
                Layer::Softmax => return self.nodes[i].inputs[0],
                Layer::Reshape | Layer::Permute(_) if !self.nodes[i].inputs.is_empty() => i = self.nodes[i].inputs[0],
                _ => return self.output,
            }
        }
    }

    /// The nodes whose values explanations read, in order: the inputs of weighted layers,
    /// poolings and additions, the outputs of `max`/`min` with a constant (their gradient
    /// mask), the logits and the output. Every other activation is dropped after the forward
    /// pass. The input node is not listed: the caller holds it.
    pub fn kept_activations(&self) -> Vec<usize> {
        let mut keep = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            match n.layer {
                Layer::Conv { .. } | Layer::MaxPool(_) | Layer::AvgPool { .. } | Layer::GlobalSum | Layer::Add => {
                    for &k in &n.inputs {
                        keep[k] = true;
                    }
                }
                Layer::Const { op: ConstOp::Max | ConstOp::Min, .. } => keep[i] = true,
                _ => {}
            }
        }
        keep[self.logits] = true;
        keep[self.output] = true;
        keep[0] = false;
        (0..self.nodes.len()).filter(|&i| keep[i]).collect()
    }

    /// The input node's shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }

    /// Number of classes at the logits.
    pub fn num_classes(&self) -> usize {
        self.nodes[self.logits].shape.iter().product()
    }
}
