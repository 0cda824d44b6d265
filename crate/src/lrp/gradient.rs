//! The backward pass of the gradient methods: gradient × input, Guided Backprop and Integrated
//! Gradients all run this one sweep over the layer graph, node by node from the logits back.

use super::*;

/// How gradients cross a ReLU (`max(x, 0)`, and any `max(x, c)` / `min(x, c)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backprop {
    /// The true gradient: zero where the ReLU was inactive.
    Plain,
    /// Guided Backprop: also zero where the incoming gradient is negative (at `max` only, the
    /// ReLUs; a `min(x, c)` clip keeps its plain gradient).
    Guided,
}

/// Gauss–Legendre quadrature on [0, 1] with `n` points: `(nodes, weights)`, nodes ascending,
/// weights summing to 1. The nodes are the roots of the Legendre polynomial `P_n` on [−1, 1]
/// found by Newton's method from Chebyshev guesses, mapped by `α = (1 + t) / 2`, `w = w_t / 2`
/// (what captum's `gausslegendre` takes from numpy's `leggauss`).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for k in 0..n {
        let mut t = (std::f64::consts::PI * (k as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            // P_n(t) and P_{n-1}(t) by the three-term recurrence; P_n'(t) from them
            let (mut p0, mut p1) = (1.0, t);
            for j in 2..=n {
                let p2 = ((2 * j - 1) as f64 * t * p1 - (j - 1) as f64 * p0) / j as f64;
                (p0, p1) = (p1, p2);
            }
            let pn = if n == 1 { t } else { p1 };
            let pm = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (t * pn - pm) / (t * t - 1.0);
            let dt = pn / dp;
            t -= dt;
            if dt.abs() < 1e-15 {
                break;
            }
        }
        // t descends with k: store ascending
        nodes[n - 1 - k] = (1.0 + t) / 2.0;
        weights[n - 1 - k] = 1.0 / ((1.0 - t * t) * dp * dp);
    }
    (nodes, weights)
}

impl Explainer {
    /// The gradient of logit `target` with respect to node `stop`'s output, for the forward pass
    /// `acts`: the backward sweep from the logits down to `stop` (every node after `stop` has
    /// passed its gradient on by then, since inputs come before their readers).
    pub(super) fn backward(
        &mut self,
        acts: &Activations,
        target: usize,
        stop: usize,
        mode: Backprop,
    ) -> Result<ArrayD<f32>> {
        let logits = self.graph.logits;
        let mut grad: Vec<Option<ArrayD<f32>>> = vec![None; self.graph.nodes.len()];
        let mut seed = ArrayD::<f32>::zeros(IxDyn(&self.graph.nodes[logits].shape));
        if let Some(v) = seed.iter_mut().nth(target) {
            *v = 1.0;
        }
        grad[logits] = Some(seed);
        for i in (stop + 1..=logits).rev() {
            let Some(g) = grad[i].take() else { continue };
            let inputs = self.graph.nodes[i].inputs.clone();
            for (inp, part) in inputs.iter().zip(self.gradient_node(i, acts, g, mode)?) {
                match &mut grad[*inp] {
                    Some(acc) => *acc += &part,
                    slot @ None => *slot = Some(part),
                }
            }
        }
        Ok(grad[stop].take().unwrap_or_else(|| ArrayD::zeros(IxDyn(&self.graph.nodes[stop].shape))))
    }

    /// Integrated Gradients from the zero input ([`Method::IntegratedGradients`]): one forward
    /// and one backward pass per quadrature point.
    pub(super) fn integrated_gradients(&mut self, x: &ArrayD<f32>, target: usize, steps: usize) -> Result<ArrayD<f32>> {
        if steps == 0 {
            return Err(Error::param("steps", "Integrated Gradients needs at least 1 step"));
        }
        let (alphas, weights) = gauss_legendre(steps);
        let mut total = ArrayD::<f32>::zeros(x.raw_dim());
        for (&a, &w) in alphas.iter().zip(&weights) {
            let point = x.mapv(|v| v * a as f32);
            let acts = self.forward(point)?;
            let g = self.backward(&acts, target, 0, Backprop::Plain)?;
            total.scaled_add(w as f32, &g);
        }
        Ok(total * x)
    }

    /// Gradient through node `i` (for the gradient methods).
    pub(super) fn gradient_node(
        &mut self,
        i: usize,
        acts: &Activations,
        g: ArrayD<f32>,
        mode: Backprop,
    ) -> Result<Vec<ArrayD<f32>>> {
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
                        let guided = max && mode == Backprop::Guided;
                        Zip::from(&mut out).and(y).and(&c).for_each(|g, &y, &c| {
                            if (max && y <= c) || (!max && y >= c) || (guided && *g < 0.0) {
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
