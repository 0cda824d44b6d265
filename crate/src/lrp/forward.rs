//! The forward pass that keeps what LRP reads.

use super::*;

/// tract's optimised plan of the whole model, with the activations explanations read as
/// extra outputs: `outputs[j]` is the plan output holding node `j`'s value (for the nodes of
/// [`LayerGraph::kept_activations`]).
#[derive(Clone)]
pub struct ForwardPlan {
    /// The runnable plan.
    pub plan: Arc<TypedRunnableModel>,
    /// `(node, plan output)` pairs.
    pub outputs: Vec<(usize, usize)>,
}

impl std::fmt::Debug for ForwardPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardPlan").field("outputs", &self.outputs.len()).finish()
    }
}

/// Softmax, in f64 inside so that large logits neither overflow nor lose small probabilities.
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = x.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

impl Explainer {
    /// Runs the model, keeping the activations explanations read: through the whole-model
    /// plan when there is one, else one layer at a time (keeping every activation).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `input` does not have the model's input shape or is not finite;
    /// [`Error::Numeric`] if the model's output is not finite.
    pub fn forward(&mut self, input: ArrayD<f32>) -> Result<Activations> {
        self.check_input(&input)?;
        let values = match &self.plan {
            Some(plan) => self.forward_plan(plan, input)?,
            None => self.forward_values(input)?,
        };
        self.finish_forward(values)
    }

    /// Runs the model one layer at a time on our own kernels, keeping every activation: the
    /// reference the fused plan of [`Self::forward`] is tested against.
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub fn forward_layer_by_layer(&mut self, input: ArrayD<f32>) -> Result<Activations> {
        self.check_input(&input)?;
        let values = self.forward_values(input)?;
        self.finish_forward(values)
    }

    pub(super) fn check_input(&self, input: &ArrayD<f32>) -> Result<()> {
        let expected = self.graph.input_shape();
        if input.shape() != expected {
            return Err(Error::InvalidInput(format!(
                "input has shape {:?}, the model needs {:?}",
                input.shape(),
                expected
            )));
        }
        if input.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput("the input contains NaN or infinite values".into()));
        }
        Ok(())
    }

    /// The kept activations from one run of the plan; the others are left empty.
    pub(super) fn forward_plan(&self, plan: &ForwardPlan, input: ArrayD<f32>) -> Result<Vec<ArrayD<f32>>> {
        let out = plan.plan.run(std::iter::once(crate::glue::tensor(&input)?.into_tvalue()).collect())?;
        let mut out: Vec<Option<TValue>> = out.into_iter().map(Some).collect();
        let mut values: Vec<ArrayD<f32>> = vec![ArrayD::zeros(IxDyn(&[0])); self.graph.nodes.len()];
        values[0] = input;
        for (n, &(node, k)) in plan.outputs.iter().enumerate() {
            let slot = out.get_mut(k).ok_or_else(|| Error::Internal(format!("the plan has no output {k}")))?;
            // the last reader of an output takes it, earlier ones copy it
            let t = if plan.outputs[n + 1..].iter().any(|o| o.1 == k) { slot.clone() } else { slot.take() };
            let t = t.ok_or_else(|| Error::Internal(format!("output {k} of the plan was read twice")))?;
            let a = t.into_tensor().into_plain_array::<f32>()?;
            let shape = &self.graph.nodes[node].shape;
            if a.len() != shape.iter().product::<usize>() {
                return Err(Error::Internal(format!(
                    "node `{}` produced {:?}, expected {:?}",
                    self.graph.nodes[node].name,
                    a.shape(),
                    shape
                )));
            }
            values[node] = reshape(a, shape)?;
        }
        Ok(values)
    }

    pub(super) fn forward_values(&mut self, input: ArrayD<f32>) -> Result<Vec<ArrayD<f32>>> {
        let mut values: Vec<ArrayD<f32>> = Vec::with_capacity(self.graph.nodes.len());
        for i in 0..self.graph.nodes.len() {
            let node = &self.graph.nodes[i];
            let x = |k: usize| &values[node.inputs[k]];
            let shape = node.shape.clone();
            let out = match &node.layer {
                Layer::Input => input.clone(),
                Layer::Conv { geometry, .. } => {
                    let xin = reshape(x(0).clone(), &geometry.input_shape())?;
                    let y =
                        self.shared.kernel(&self.graph, i, WeightMod::Identity, Direction::Forward, true)?.run(&xin)?;
                    reshape(y, &shape)?
                }
                Layer::Const { op, value } => {
                    let mut y = x(0).clone();
                    let c = value.broadcast(y.raw_dim()).ok_or_else(|| {
                        Error::Internal(format!("constant {:?} does not broadcast to {:?}", value.shape(), y.shape()))
                    })?;
                    let f: fn(f32, f32) -> f32 = match op {
                        ConstOp::Add => |a, b| a + b,
                        ConstOp::Sub => |a, b| a - b,
                        ConstOp::Mul => |a, b| a * b,
                        ConstOp::Div => |a, b| a / b,
                        ConstOp::Max => f32::max,
                        ConstOp::Min => f32::min,
                    };
                    Zip::from(&mut y).and(&c).for_each(|a, &b| *a = f(*a, b));
                    y
                }
                Layer::BatchNorm { scale, shift } => {
                    let mut y = x(0).clone();
                    per_channel(&mut y, |v, c| v * scale[c] + shift[c])?;
                    y
                }
                Layer::MaxPool(g) => reshape(g.max_forward(to4(x(0))?).into_dyn(), &shape)?,
                Layer::AvgPool { geometry, count_include_pad } => {
                    reshape(geometry.avg_forward(to4(x(0))?, *count_include_pad).into_dyn(), &shape)?
                }
                Layer::GlobalSum => {
                    let a = to4(x(0))?;
                    let s = a.sum_axis(Axis(3)).sum_axis(Axis(2));
                    reshape(s.into_dyn(), &shape)?
                }
                Layer::Add => {
                    if x(0).shape() != x(1).shape() {
                        return Err(Error::Internal(format!("addition of {:?} and {:?}", x(0).shape(), x(1).shape())));
                    }
                    x(0) + x(1)
                }
                Layer::Sigmoid => x(0).mapv(|v| 1.0 / (1.0 + (-v).exp())),
                Layer::Gate { gate } => {
                    let (b, g) = (x(1 - gate), x(*gate));
                    b * &g.broadcast(b.raw_dim()).ok_or_else(|| {
                        Error::Internal(format!("gate {:?} does not broadcast to {:?}", g.shape(), b.shape()))
                    })?
                }
                Layer::Reshape => reshape(x(0).clone(), &shape)?,
                Layer::Permute(p) => x(0).clone().permuted_axes(IxDyn(p)).as_standard_layout().to_owned(),
                Layer::Subsample { axis, stride, offset } => {
                    x(0).slice_axis(Axis(*axis), Slice::new(*offset as isize, None, *stride as isize)).to_owned()
                }
                Layer::Softmax => {
                    let a = x(0);
                    let flat: Vec<f32> = a.iter().copied().collect();
                    reshape(
                        ArrayD::from_shape_vec(IxDyn(&[flat.len()]), softmax(&flat))
                            .map_err(|e| Error::Internal(e.to_string()))?,
                        &shape,
                    )?
                }
            };
            if out.shape() != shape.as_slice() {
                return Err(Error::Internal(format!(
                    "node `{}` produced {:?}, expected {:?}",
                    node.name,
                    out.shape(),
                    shape
                )));
            }
            values.push(out);
        }
        Ok(values)
    }

    pub(super) fn finish_forward(&self, values: Vec<ArrayD<f32>>) -> Result<Activations> {
        let logits: Vec<f32> = values[self.graph.logits].iter().copied().collect();
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "the model's output contains NaN or infinite values (its weights overflow float32 for this input)"
                    .into(),
            ));
        }
        let probabilities = softmax(&logits);
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Activations { id, values: Arc::new(values), logits, probabilities })
    }
}
