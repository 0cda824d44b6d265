//! Canonizers, in zennit's sense: passes that rewrite an imported graph into an equivalent
//! one whose layers the rules can be attached to, without changing what it computes.

use crate::graph::{ConstOp, Layer, LayerGraph};

/// Folds `x + b` that directly follows a dense or conv layer (and is its only reader)
/// into that layer's bias, so the bias belongs to the layer whose rule decides about it.
/// The addition stays in place as an identity ([`Layer::Reshape`]).
pub fn fold_biases(graph: &mut LayerGraph) {
    let consumers = graph.consumers();
    let nodes = &mut graph.nodes;
    for i in 0..nodes.len() {
        let Layer::Const { op: ConstOp::Add, value } = &nodes[i].layer else { continue };
        let src = nodes[i].inputs[0];
        if consumers[src] != 1 {
            continue;
        }
        let c_out = match &nodes[src].layer {
            Layer::Conv { geometry, .. } => geometry.c_out,
            _ => continue,
        };
        let shape = &nodes[i].shape;
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
        if let Layer::Conv { bias, .. } = &mut nodes[src].layer {
            for (b, a) in bias.iter_mut().zip(add) {
                *b += a;
            }
        }
        // the convolution's value now includes the bias: tract computes it at the addition
        nodes[src].source = nodes[i].source;
        nodes[i].layer = Layer::Reshape; // now an identity
    }
}

/// The node explanations start from: the input of a final softmax (possibly behind
/// reshapes and permutations), else the output.
pub fn find_logits(graph: &LayerGraph) -> usize {
    let mut i = graph.output;
    loop {
        let node = &graph.nodes[i];
        match node.layer {
            Layer::Softmax => return node.inputs[0],
            Layer::Reshape | Layer::Permute(_) if !node.inputs.is_empty() => i = node.inputs[0],
            _ => return graph.output,
        }
    }
}

/// The graph with every BatchNorm that directly follows a convolution (its only reader) folded
/// into that convolution — weights `W · k` and bias `b · k + shift` per output channel, as
/// tract and zennit's canonizer fold them — and left in place as an identity, so that node
/// numbers and the forward pass's activations stay those of `graph`. A BatchNorm that cannot be
/// folded (after anything else) stays, and passes relevance. `None` if `graph` has none.
pub fn fold_batchnorm(graph: &LayerGraph) -> Option<LayerGraph> {
    if graph.batchnorms() == 0 {
        return None;
    }
    let consumers = graph.consumers();
    let mut folded = graph.clone();
    let nodes = &mut folded.nodes;
    for i in 0..nodes.len() {
        let Layer::BatchNorm { scale, shift } = &nodes[i].layer else { continue };
        let src = nodes[i].inputs[0];
        let fits = matches!(&nodes[src].layer, Layer::Conv { geometry, .. } if geometry.c_out == scale.len());
        if consumers[src] != 1 || !fits {
            continue;
        }
        let (scale, shift) = (scale.clone(), shift.clone());
        if let Layer::Conv { weights, bias, .. } = &mut nodes[src].layer {
            // shares the kept graph's weights: the factors are applied where a kernel is built
            *weights = weights.scaled(&scale);
            for ((b, k), s) in bias.iter_mut().zip(&scale).zip(&shift) {
                *b = *b * k + s;
            }
        }
        // the convolution's value is now the BatchNorm's
        nodes[src].source = nodes[i].source;
        nodes[i].layer = Layer::Reshape;
    }
    Some(folded)
}
