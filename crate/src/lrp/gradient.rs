//! The backward pass of gradient × input.

use super::*;

impl Explainer {
    /// Gradient through node `i` (for gradient × input).
    pub(super) fn gradient_node(&mut self, i: usize, acts: &Activations, g: ArrayD<f32>) -> Result<Vec<ArrayD<f32>>> {
        let graph = Arc::clone(&self.graph); // the node borrowed while `self` compiles kernels
        let node = &graph.nodes[i];
        let in_shapes: Vec<Vec<usize>> = node.inputs.iter().map(|&k| self.graph.nodes[k].shape.clone()).collect();
        let input_shape = |k: usize| in_shapes[k].clone();
        let a = |k: usize| kept(acts, node.inputs[k], &in_shapes[k]);
        Ok(match &node.layer {
            Layer::Conv { geometry, .. } => {
                let gg = reshape(g, &geometry.output_shape())?;
                let back =
                    self.shared.kernel(&self.graph, i, WeightMod::Identity, Direction::Transpose, false)?.run(&gg)?;
                vec![reshape(back, &input_shape(0))?]
            }
            Layer::Const { op, value } => {
                let c = value.broadcast(g.raw_dim()).ok_or_else(|| Error::Internal("constant broadcast".into()))?;
                let mut out = g;
                match op {
                    // the mask from the output: max(x, c) > c exactly where x > c (min likewise)
                    ConstOp::Max | ConstOp::Min => {
                        let y = kept(acts, i, &node.shape)?;
                        let max = *op == ConstOp::Max;
                        Zip::from(&mut out).and(y).and(&c).for_each(|g, &y, &c| {
                            if (max && y <= c) || (!max && y >= c) {
                                *g = 0.0;
                            }
                        });
                    }
                    ConstOp::Mul => Zip::from(&mut out).and(&c).for_each(|g, &c| *g *= c),
                    ConstOp::Div => Zip::from(&mut out).and(&c).for_each(|g, &c| *g /= c),
                    ConstOp::Add | ConstOp::Sub => {}
                }
                vec![out]
            }
            Layer::BatchNorm { scale, .. } => {
                let mut out = g;
                per_channel(&mut out, |v, c| v * scale[c])?;
                vec![out]
            }
            Layer::MaxPool(geom) => {
                vec![reshape(geom.max_winner_take_all(to4(a(0)?)?, to4(&g)?).into_dyn(), &input_shape(0))?]
            }
            Layer::AvgPool { geometry, count_include_pad } => {
                let x = to4(a(0)?)?;
                let shape = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
                let out = geometry.avg_backward(shape, to4(&g)?, *count_include_pad);
                vec![reshape(out.into_dyn(), &input_shape(0))?]
            }
            Layer::GlobalSum => {
                let shape = input_shape(0);
                vec![g
                    .broadcast(IxDyn(&shape))
                    .ok_or_else(|| Error::Internal("global sum broadcast".into()))?
                    .to_owned()]
            }
            Layer::Add => vec![g.clone(), g],
            Layer::Sigmoid => {
                let y = kept(acts, i, &node.shape)?;
                let mut out = g;
                Zip::from(&mut out).and(y).for_each(|g, &y| *g *= y * (1.0 - y));
                vec![out]
            }
            Layer::Gate { gate } => {
                let (gate_first, gate) = (*gate == 0, *gate);
                let (b, s) = (a(1 - gate)?, a(gate)?);
                let bad = || Error::Internal(format!("gate {:?} against branch {:?}", s.shape(), b.shape()));
                // ∂(b·s)/∂b = s (broadcast); ∂/∂s = b, summed over the axes s is broadcast along
                let to_branch = &g * &s.broadcast(g.raw_dim()).ok_or_else(bad)?;
                let mut to_gate = &g * b;
                for ax in 0..s.ndim() {
                    if s.shape()[ax] == 1 && to_gate.shape()[ax] != 1 {
                        to_gate = to_gate.sum_axis(Axis(ax)).insert_axis(Axis(ax));
                    }
                }
                if to_gate.shape() != s.shape() {
                    return Err(bad());
                }
                if gate_first {
                    vec![to_gate, to_branch]
                } else {
                    vec![to_branch, to_gate]
                }
            }
            Layer::Softmax => {
                return Err(Error::Internal(
                    "gradient through softmax is not needed: explanations start at the logits".into(),
                ))
            }
            Layer::Reshape | Layer::Permute(_) | Layer::Subsample { .. } => vec![self.route_back(i, g)?],
            Layer::Input => vec![],
        })
    }
}
