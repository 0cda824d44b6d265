//! The relevance sweep: from the start relevance at the logits back to the input, node by node
//! in reverse order, with the ledger of what every node received and passed on.

use super::*;

impl Explainer {
    /// The class `target` names for `acts`.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a class out of range.
    pub fn resolve_target(&self, acts: &Activations, target: Target) -> Result<usize> {
        let n = acts.logits.len();
        match target {
            Target::Top1 => Ok(acts.top_k(1).first().map(|t| t.0).unwrap_or(0)),
            Target::Class(c) if c < n => Ok(c),
            Target::Class(c) => Err(Error::param(
                "target",
                format!("class {c} is out of range: the model has {n} classes (0..{})", n - 1),
            )),
        }
    }

    /// Explains one class.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an out-of-range class; [`Error::Tract`] from the kernels;
    /// [`Error::Numeric`] if the relevance is not finite.
    pub fn explain(
        &mut self,
        acts: &Activations,
        target: Target,
        start: Start,
        method: &Method,
    ) -> Result<Explanation> {
        if acts.values.len() != self.graph.nodes.len() {
            return Err(Error::param("activations", "they belong to another model"));
        }
        if let (Method::Lrp { composite, .. }, Some(raw)) = (method, &mut self.raw_batchnorm) {
            if composite.raw_batchnorm {
                return raw.explain(acts, target, start, method);
            }
        }
        let target = self.resolve_target(acts, target)?;
        self.shared.scope_denominators(acts.id);
        self.scope = Some(acts.id);
        let result = match method {
            #[cfg(feature = "threads")]
            Method::Lrp { composite, .. } if self.parallel => {
                let stop = self.spawn_denominator_helper(acts, composite);
                let result = self.explain_scoped(acts, target, start, method);
                stop.store(true, Ordering::Relaxed);
                result
            }
            Method::Lrp { .. } | Method::GradientTimesInput => self.explain_scoped(acts, target, start, method),
            _ => self.explain_baseline(acts, target, method),
        };
        self.scope = None;
        result
    }

    pub(super) fn explain_scoped(
        &mut self,
        acts: &Activations,
        target: usize,
        start: Start,
        method: &Method,
    ) -> Result<Explanation> {
        let start_relevance = match (start, method) {
            (_, Method::GradientTimesInput) | (Start::Logit, _) => acts.logits[target],
            (Start::Probability, _) => acts.probabilities[target],
        };
        let n = self.graph.nodes.len();
        let mut rel: Vec<Option<ArrayD<f32>>> = vec![None; n];
        let logits = self.graph.logits;
        let mut r0 = ArrayD::<f32>::zeros(IxDyn(&self.graph.nodes[logits].shape));
        if let Some(v) = r0.iter_mut().nth(target) {
            *v = match method {
                Method::Lrp { .. } => start_relevance,
                _ => 1.0,
            };
        }
        rel[logits] = Some(r0);
        let mut ledger = Vec::new();
        let mut blocks: Vec<(usize, BlockEntry)> = Vec::new();
        for i in (0..=logits).rev() {
            let Some(r) = rel[i].take() else { continue };
            let (name, kind, is_input) = {
                let node = &self.graph.nodes[i];
                (node.name.clone(), node.layer.kind(), matches!(node.layer, Layer::Input))
            };
            let total = sum(&r);
            ledger.push(LedgerEntry { node: name.clone(), kind: kind.into(), relevance: total });
            if is_input {
                rel[i] = Some(r);
                continue;
            }
            // LRP passes nothing to a gate (the gradient methods differentiate through it)
            let inputs = match method {
                Method::Lrp { .. } => self.graph.relevance_inputs(i),
                _ => self.graph.nodes[i].inputs.clone(),
            };
            let parts = match method {
                Method::Lrp { composite, variant } => {
                    let parts = self.lrp_node(i, acts, r, composite, *variant)?;
                    if let Some(entry) = self.block_entry(i, name, total, &parts) {
                        blocks.push((i, entry));
                    }
                    parts
                }
                Method::GradientTimesInput => self.gradient_node(i, acts, r, Backprop::Plain)?,
                _ => return Err(Error::Internal("not a sweep method".into())),
            };
            for (inp, part) in inputs.iter().zip(parts) {
                match &mut rel[*inp] {
                    Some(acc) => *acc += &part,
                    slot @ None => *slot = Some(part),
                }
            }
        }
        self.finish(acts, target, start_relevance, rel[0].take(), ledger, blocks, method)
    }

    /// What a residual addition did with relevance `total`: its split between shortcut and
    /// main branch (`parts` in input order); `None` for other nodes.
    fn block_entry(&self, i: usize, node: String, total: f64, parts: &[ArrayD<f32>]) -> Option<BlockEntry> {
        let (Some(res), [a, b]) = (self.residuals.get(&i), parts) else { return None };
        // an addition whose inputs cannot be told apart has no shortcut to report
        let (rs, rm) = if res.shortcut? == 0 { (a, b) } else { (b, a) };
        Some(BlockEntry {
            node,
            projection: res.projection,
            relevance: total,
            shortcut: sum(rs),
            main: sum(rm),
            block_input: None,
        })
    }

    /// The explanation from the sweep's results: block inputs read from the ledger, gradient ×
    /// input formed, the relevance checked for overflow.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        acts: &Activations,
        target: usize,
        start_relevance: f32,
        input_relevance: Option<ArrayD<f32>>,
        ledger: Vec<LedgerEntry>,
        mut blocks: Vec<(usize, BlockEntry)>,
        method: &Method,
    ) -> Result<Explanation> {
        // the block input's total, read from the ledger once both paths have arrived
        for (add, entry) in blocks.iter_mut() {
            if let Some(b) = self.residuals.get(add).and_then(|r| r.block_input) {
                let name = &self.graph.nodes[b].name;
                entry.block_input = ledger.iter().find(|l| &l.node == name).map(|l| l.relevance);
            }
        }
        let mut relevance = input_relevance.unwrap_or_else(|| ArrayD::zeros(IxDyn(self.graph.input_shape())));
        if let Method::GradientTimesInput = method {
            relevance *= &acts.values[0];
        }
        if relevance.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "the relevance overflowed float32 (the model's weights or activations are too large for this method)"
                    .into(),
            ));
        }
        Ok(Explanation {
            target,
            start_relevance,
            relevance,
            ledger,
            blocks: blocks.into_iter().map(|b| b.1).collect(),
            conserves: method.conserves(),
        })
    }

    /// The rule of `composite` for weighted node `i`.
    pub(super) fn rule_for<'c>(&self, i: usize, dense: bool, composite: &'c Composite) -> &'c Rule {
        if Some(i) == self.first_weighted {
            &composite.first
        } else if dense {
            &composite.dense
        } else {
            &composite.conv
        }
    }
    /// LRP through node `i`: relevance for each of its inputs.
    pub(super) fn lrp_node(
        &mut self,
        i: usize,
        acts: &Activations,
        r: ArrayD<f32>,
        composite: &Composite,
        variant: Variant,
    ) -> Result<Vec<ArrayD<f32>>> {
        let graph = Arc::clone(&self.graph); // the node borrowed while `self` compiles kernels
        let node = &graph.nodes[i];
        let in_shapes: Vec<Vec<usize>> = node.inputs.iter().map(|&k| self.graph.nodes[k].shape.clone()).collect();
        let input_shape = |k: usize| in_shapes[k].clone();
        let a = |k: usize| kept(acts, node.inputs[k], &in_shapes[k]);
        let eps = composite.stabilizer.epsilon;
        Ok(match &node.layer {
            Layer::Input => vec![],
            Layer::Conv { dense, geometry, .. } => {
                let rule = self.rule_for(i, *dense, composite);
                let stab = composite.stabilizer_for(rule);
                let (x, _) = layer_io(&graph, &acts.values, i)?;
                let rr = reshape(r, &geometry.output_shape())?;
                let out = self.propagate_weighted(i, &x, &rr, rule, stab, composite.conserve)?;
                vec![reshape(out, &input_shape(0))?]
            }
            Layer::Const { .. }
            | Layer::BatchNorm { .. }
            | Layer::Softmax
            | Layer::Reshape
            | Layer::Permute(_)
            | Layer::Subsample { .. }
            // a sigmoid gets relevance only outside a gate's path: it passes it, as other activations do
            | Layer::Sigmoid => {
                vec![self.route_back(i, r)?]
            }
            // the gate is a constant scale of its branch: all the relevance to the branch, unchanged
            Layer::Gate { .. } => vec![r],
            Layer::MaxPool(g) => {
                let x = to4(a(0)?)?;
                let rr = to4(&r)?;
                let out = match composite.maxpool {
                    MaxPoolRule::WinnerTakeAll => g.max_winner_take_all(x, rr),
                    MaxPoolRule::AvgSubstitute => Self::avg_substitute(g, x, rr, eps)?,
                };
                vec![reshape(out.into_dyn(), &input_shape(0))?]
            }
            Layer::AvgPool { geometry, .. } => {
                let n = (geometry.kernel[0] * geometry.kernel[1]) as f32;
                let out = geometry.proportional(to4(a(0)?)?, to4(&r)?, n * eps, composite.conserve);
                vec![reshape(out.into_dyn(), &input_shape(0))?]
            }
            Layer::GlobalSum => {
                let x = to4(a(0)?)?;
                let (h, w) = (x.shape()[2], x.shape()[3]);
                let g = PoolGeometry {
                    kernel: [h, w],
                    strides: [1, 1],
                    pad_begin: [0, 0],
                    pad_end: [0, 0],
                    in_hw: [h, w],
                    out_hw: [1, 1],
                };
                let out = g.proportional(x, to4(&r)?, (h * w) as f32 * eps, composite.conserve);
                vec![reshape(out.into_dyn(), &input_shape(0))?]
            }
            Layer::Add => {
                let res = self
                    .residuals
                    .get(&i)
                    .copied()
                    .ok_or_else(|| Error::Internal("addition without analysis".into()))?;
                let split = variant.split(res.projection);
                let shortcut = Self::shortcut_slot(node, res, split)?;
                let s = a(shortcut)?;
                let m = a(1 - shortcut)?;
                let mut rs = ArrayD::zeros(r.raw_dim());
                let mut rm = ArrayD::zeros(r.raw_dim());
                Zip::from(&mut rs).and(&mut rm).and(s).and(m).and(&r).for_each(|rs, rm, &s, &m, &r| {
                    (*rs, *rm) = split.split_one(s, m, r);
                });
                if shortcut == 0 {
                    vec![rs, rm]
                } else {
                    vec![rm, rs]
                }
            }
        })
    }

    /// The input slot `split` treats as the shortcut at addition `node`. Where both inputs pass
    /// through as many weighted layers, neither is the shortcut: a split that treats its two
    /// inputs alike does not need to know (slot 0 will do), one that does not is refused.
    ///
    /// # Errors
    /// [`Error::UnsupportedOp`] naming the addition for an asymmetric split (everything to the
    /// main branch: `latest` and `simple` at identity shortcuts) where the shortcut is unknown.
    fn shortcut_slot(node: &crate::graph::Node, res: Residual, split: Split) -> Result<usize> {
        match res.shortcut {
            Some(slot) => Ok(slot),
            None if split.is_symmetric() => Ok(0),
            None => Err(Error::UnsupportedOp {
                node: node.name.clone(),
                op: node.layer.kind().into(),
                reason: format!(
                    "both inputs of this residual addition pass through the same number of weighted layers, so \
                     neither is the shortcut, and the {split:?} split needs to know which is; choose flows_skip, \
                     flows_skip_simple or conventional"
                ),
            }),
        }
    }

    /// Takes a tensor at node `i`'s output back to its input's shape through a reshape or
    /// permutation (or unchanged through element-wise layers).
    pub(super) fn route_back(&self, i: usize, r: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let node = &self.graph.nodes[i];
        let shape = &self.graph.nodes[node.inputs[0]].shape;
        match &node.layer {
            Layer::Permute(p) => {
                let mut inv = vec![0; p.len()];
                for (o, &src) in p.iter().enumerate() {
                    inv[src] = o;
                }
                Ok(r.permuted_axes(IxDyn(&inv)).as_standard_layout().to_owned())
            }
            Layer::Subsample { axis, stride, offset } => {
                let mut out = ArrayD::zeros(IxDyn(shape));
                out.slice_axis_mut(Axis(*axis), Slice::new(*offset as isize, None, *stride as isize)).assign(&r);
                Ok(out)
            }
            _ => reshape(r, shape),
        }
    }

    /// The authors' max-pool substitute: 2×2 stride-2 average pooling over the pool's input.
    pub(super) fn avg_substitute(
        g: &PoolGeometry,
        x: ndarray::ArrayView4<f32>,
        r: ndarray::ArrayView4<f32>,
        eps: f32,
    ) -> Result<Array4<f32>> {
        let sub = PoolGeometry {
            kernel: [2, 2],
            strides: [2, 2],
            pad_begin: [0, 0],
            pad_end: [0, 0],
            in_hw: g.in_hw,
            out_hw: [g.in_hw[0] / 2, g.in_hw[1] / 2],
        };
        if sub.out_hw != g.out_hw {
            return Err(Error::Internal(format!(
                "the reference max-pool substitute needs an even input size, got {:?} → {:?}",
                g.in_hw, g.out_hw
            )));
        }
        Ok(sub.proportional(x, r, 4.0 * eps, false))
    }
}
