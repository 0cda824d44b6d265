//! Our own layer graph: a small list of [`Layer`]s in topological order, each holding its
//! weights, and the queries the explainer makes of it. Data only: [`crate::import`] builds it
//! from a tract model.

use std::sync::Arc;

use ndarray::ArrayD;

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

/// The kernel of a convolution: the file's weights, shared (not copied) between the graphs made
/// from one file, and an optional factor per output channel that a folded BatchNorm contributes.
///
/// The graph with BatchNorm folded and the graph with BatchNorm kept apart
/// ([`crate::import::canonize::fold_batchnorm`]) differ only by those factors, so one copy of
/// the weights serves both; the product is formed where a kernel is built from them, at the cost
/// of the copy that building makes anyway.
#[derive(Debug, Clone)]
pub struct ConvWeights {
    raw: Arc<ArrayD<f32>>,
    scale: Option<Arc<[f32]>>,
}

impl ConvWeights {
    /// The weights `w` `[c_out, …]`, unscaled.
    pub fn new(w: ArrayD<f32>) -> ConvWeights {
        ConvWeights { raw: Arc::new(w), scale: None }
    }

    /// The shape, `[c_out, c_in / group, kh, kw]`.
    pub fn shape(&self) -> &[usize] {
        self.raw.shape()
    }

    /// The same weights with output channel `o` multiplied by `scale[o]` (on top of any factor
    /// they have): shares the weights.
    ///
    /// # Panics
    /// If `scale` does not have one factor per output channel (the callers check it).
    pub fn scaled(&self, scale: &[f32]) -> ConvWeights {
        assert_eq!(scale.len(), self.raw.shape()[0], "one factor per output channel");
        let scale: Arc<[f32]> = match &self.scale {
            Some(s) => s.iter().zip(scale).map(|(a, b)| a * b).collect(),
            None => scale.into(),
        };
        ConvWeights { raw: Arc::clone(&self.raw), scale: Some(scale) }
    }

    /// The weights as one array, each value `w · scale[o]` (in `f32`, as folding them in place
    /// would give) passed through `f`.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> ArrayD<f32> {
        let Some(scale) = &self.scale else { return self.raw.mapv(f) };
        let mut w = (*self.raw).clone();
        for (mut out, &k) in w.outer_iter_mut().zip(scale.iter()) {
            out.mapv_inplace(|v| f(v * k));
        }
        w
    }

    /// The weights as one array ([`ConvWeights::map`] with the identity).
    pub fn to_array(&self) -> ArrayD<f32> {
        match &self.scale {
            None => (*self.raw).clone(),
            Some(_) => self.map(|v| v),
        }
    }
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
        weights: ConvWeights,
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
    /// A BatchNorm kept apart from the convolution before it: `x · scale + shift` per channel
    /// (axis 1). Only the graph of a file with `BatchNormalization` nodes has it, for the composites
    /// that use the raw convolution weights (see [`crate::import::batchnorm`]); relevance passes.
    BatchNorm {
        /// γ / √(σ² + ε) per channel.
        scale: Vec<f32>,
        /// β − μ · scale per channel.
        shift: Vec<f32>,
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
    /// The logistic sigmoid, element-wise (the last step of a squeeze-excitation gate).
    Sigmoid,
    /// A branch times a gate computed from it (squeeze-excitation: the gate is `[1, C, 1, 1]`,
    /// broadcast over the branch). LRP treats the gate as a constant scale of the branch, as LXT
    /// does for attention weights and zennit for multiplicative gates: the branch gets all the
    /// relevance, the gate's own path none.
    Gate {
        /// Input slot (0 or 1) of the gate; the other is the branch.
        gate: usize,
    },
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
            Layer::BatchNorm { .. } => "batchnorm",
            Layer::MaxPool(_) => "maxpool",
            Layer::AvgPool { .. } => "avgpool",
            Layer::GlobalSum => "global_sum",
            Layer::Add => "add",
            Layer::Sigmoid => "sigmoid",
            Layer::Gate { .. } => "gate",
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

impl LayerGraph {
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
                // gradient × input: the gate's derivative reads both inputs, the sigmoid's its output
                Layer::Gate { .. } => n.inputs.iter().for_each(|&k| keep[k] = true),
                Layer::Sigmoid => keep[i] = true,
                _ => {}
            }
        }
        keep[self.logits] = true;
        keep[self.output] = true;
        keep[0] = false;
        (0..self.nodes.len()).filter(|&i| keep[i]).collect()
    }

    /// The inputs of node `i` that LRP passes relevance to: all of them, except the gate of a
    /// [`Layer::Gate`].
    pub fn relevance_inputs(&self, i: usize) -> Vec<usize> {
        let n = &self.nodes[i];
        match n.layer {
            Layer::Gate { gate } => n.inputs.iter().enumerate().filter(|(s, _)| *s != gate).map(|(_, &k)| k).collect(),
            _ => n.inputs.clone(),
        }
    }

    /// Number of nodes passing relevance to each node: the readers of [`Self::consumers`] that
    /// relevance reaches from the logits, through their relevance inputs. A gate's own path
    /// (pooling, convolutions, sigmoid) counts for nothing.
    pub fn relevance_readers(&self) -> Vec<usize> {
        let mut live = vec![false; self.nodes.len()];
        live[self.logits] = true;
        let mut readers = vec![0; self.nodes.len()];
        for i in (0..=self.logits).rev() {
            if !live[i] {
                continue;
            }
            for k in self.relevance_inputs(i) {
                live[k] = true;
                readers[k] += 1;
            }
        }
        readers
    }

    /// The node ids of the squeeze-excitation gates.
    pub fn gates(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| matches!(self.nodes[i].layer, Layer::Gate { .. })).collect()
    }

    /// The input node's shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }

    /// Number of BatchNorm layers kept apart from their convolutions.
    pub fn batchnorms(&self) -> usize {
        self.nodes.iter().filter(|n| matches!(n.layer, Layer::BatchNorm { .. })).count()
    }

    /// Number of classes at the logits.
    pub fn num_classes(&self) -> usize {
        self.nodes[self.logits].shape.iter().product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    /// A folded BatchNorm's factors against their naive twin: each weight of output channel `o`
    /// multiplied by `scale[o]` in place, then modified; the folded and the raw graph share one
    /// array.
    #[test]
    fn scaled_weights_equal_weights_folded_in_place() {
        let w = ArrayD::from_shape_fn(IxDyn(&[3, 2, 3, 3]), |i| {
            (i[0] * 31 + i[1] * 7 + i[2] * 3 + i[3]) as f32 * 0.37 - 5.0
        });
        let scale = [0.5f32, -1.7, 3.0e-3];
        let raw = ConvWeights::new(w.clone());
        let folded = raw.scaled(&scale);
        let mut naive = w.clone();
        for (o, mut out) in naive.outer_iter_mut().enumerate() {
            out.mapv_inplace(|v| v * scale[o]);
        }
        assert_eq!(folded.to_array(), naive);
        assert_eq!(folded.map(|v| v.max(0.0)), naive.mapv(|v| v.max(0.0)));
        assert_eq!(raw.to_array(), w, "the raw weights are left as they were");
        assert_eq!(raw.map(|v| -v), w.mapv(|v| -v));
        assert_eq!(folded.shape(), &[3, 2, 3, 3]);
    }
}
