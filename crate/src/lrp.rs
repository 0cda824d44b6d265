//! The explainer: one forward pass that keeps the activations LRP reads, then any number of
//! LRP passes (different classes, rules, splitting variants) over those activations.

use std::borrow::Cow;
use std::collections::HashMap;
#[cfg(feature = "threads")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{Array4, ArrayD, Axis, IxDyn, Slice, Zip};
use serde::Serialize;
use tract_onnx::prelude::{IntoTValue, IntoTensor, TValue, TypedRunnableModel};

use crate::composite::{Composite, MaxPoolRule};
use crate::error::{Error, Result};
use crate::graph::{ConstOp, Layer, LayerGraph};
use crate::kernels::{ConvKernel, Direction};
use crate::pool::PoolGeometry;
use crate::rules::{InputMod, Propagation, Rule, Stabilizer, WeightMod};
use crate::split::Variant;

/// Denominators at or below this magnitude count as zero (their relevance would be lost).
const ZERO_Z: f32 = 1e-25;

/// Activations of one forward pass: the output of every node.
#[derive(Debug, Clone)]
pub struct Activations {
    /// Unique per forward pass: keys the cache of class-independent denominators.
    id: u64,
    /// Shared (not copied) with the thread that computes denominators ahead of the sweep.
    values: Arc<Vec<ArrayD<f32>>>,
    logits: Vec<f32>,
    probabilities: Vec<f32>,
}

impl Activations {
    /// The logits (input of a final softmax, or the model output).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Softmax of the logits.
    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// The output of node `i`.
    pub fn value(&self, i: usize) -> &ArrayD<f32> {
        &self.values[i]
    }

    /// The `k` most probable classes, best first, as `(class, probability)`.
    pub fn top_k(&self, k: usize) -> Vec<(usize, f32)> {
        let mut idx: Vec<usize> = (0..self.probabilities.len()).collect();
        idx.sort_by(|&a, &b| self.probabilities[b].total_cmp(&self.probabilities[a]));
        idx.into_iter().take(k).map(|i| (i, self.probabilities[i])).collect()
    }
}

/// What the explanation starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The softmax probability of the target (the paper).
    Probability,
    /// The target's logit (zennit's convention).
    Logit,
}

/// Which class to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The most probable class.
    Top1,
    /// A class index.
    Class(usize),
}

/// The method of one explanation.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// LRP with a composite and a splitting variant.
    Lrp {
        /// Rules per layer.
        composite: Composite,
        /// Splitting at residual additions.
        variant: Variant,
    },
    /// Gradient of the target logit times the input.
    GradientTimesInput,
}

/// Σ relevance at one node, in the order relevance reached it.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerEntry {
    /// Node name.
    pub node: String,
    /// Layer kind.
    pub kind: String,
    /// Σ R at the node's output.
    pub relevance: f64,
}

/// What happened at one residual addition.
#[derive(Debug, Clone, Serialize)]
pub struct BlockEntry {
    /// Name of the addition node.
    pub node: String,
    /// Whether the shortcut is a projection (else identity).
    pub projection: bool,
    /// Σ R arriving at the addition.
    pub relevance: f64,
    /// Σ R sent down the shortcut.
    pub shortcut: f64,
    /// Σ R sent down the main branch.
    pub main: f64,
    /// Σ R at the block's input once both paths are back (the next block's starting point).
    pub block_input: Option<f64>,
}

/// One explanation.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Explained class.
    pub target: usize,
    /// Relevance put on the target at the start.
    pub start_relevance: f32,
    /// Relevance of the model input, in the input's own shape and layout.
    pub relevance: ArrayD<f32>,
    /// Σ R per node, from the logits down to the input.
    pub ledger: Vec<LedgerEntry>,
    /// Per residual block.
    pub blocks: Vec<BlockEntry>,
}

impl Explanation {
    /// Σ of the input relevance.
    pub fn input_relevance_sum(&self) -> f64 {
        self.relevance.iter().map(|&v| v as f64).sum()
    }

    /// |Σ R_input − R_start| / |R_start|.
    pub fn conservation_error(&self) -> f64 {
        let s = self.start_relevance as f64;
        (self.input_relevance_sum() - s).abs() / s.abs().max(f64::MIN_POSITIVE)
    }
}

/// Shortcut analysis of one residual addition.
#[derive(Debug, Clone, Copy)]
struct Residual {
    /// Input slot (0 or 1) of the shortcut.
    shortcut: usize,
    projection: bool,
    /// The fan-out node where shortcut and main branch meet again going backwards.
    block_input: Option<usize>,
}

type KernelKey = (usize, (u8, u32), Direction, bool);

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

/// The LRP engine for one model.
pub struct Explainer {
    graph: Arc<LayerGraph>,
    /// The fused forward pass; without it (graphs built by hand) layers run one at a time.
    plan: Option<ForwardPlan>,
    residuals: HashMap<usize, Residual>,
    first_weighted: Option<usize>,
    /// Compiled kernels and cached denominators, shared with the thread that computes the
    /// denominators ahead of the relevance sweep.
    shared: Arc<Shared>,
    /// The activations the current explanation runs on (None outside `explain`).
    scope: Option<u64>,
    /// Whether an explanation computes its denominators on a second thread (see
    /// [`Explainer::set_parallel`]).
    parallel: bool,
}

/// A denominator: (weighted node, the propagation it belongs to).
type DenominatorKey = (usize, String);
/// A denominator to compute: its node, key and propagation.
#[cfg(feature = "threads")]
type DenominatorJob = (usize, DenominatorKey, Propagation);

/// What an explanation shares between its relevance sweep and the thread that computes the
/// denominators ahead of it.
#[derive(Default)]
struct Shared {
    /// Compiled kernels per (layer, weight modifier, direction, bias), built on first use.
    kernels: Mutex<HashMap<KernelKey, Arc<ConvKernel>>>,
    /// Denominators `z` of the weighted layers for the activations with this id: they do not
    /// depend on the explained class, so every class after the first skips them.
    denominators: Mutex<(u64, HashMap<DenominatorKey, Slot>)>,
}

/// A denominator the helper is computing, or done.
enum Slot {
    Busy,
    Done(Arc<ArrayD<f32>>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // a panic while holding the lock leaves plain data behind: the caches stay usable
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The kernel of `node` for weight modifier `wm`, direction `dir` and `bias`, compiled on
    /// first use (outside the lock, so that two threads can compile different kernels at once).
    fn kernel(
        &self,
        graph: &LayerGraph,
        node: usize,
        wm: WeightMod,
        dir: Direction,
        bias: bool,
    ) -> Result<Arc<ConvKernel>> {
        let key = (node, wm.key(), dir, bias);
        if let Some(k) = lock(&self.kernels).get(&key) {
            return Ok(Arc::clone(k));
        }
        let Layer::Conv { geometry, weights, bias: b, .. } = &graph.nodes[node].layer else {
            return Err(Error::Shape("kernel requested for a layer without weights".into()));
        };
        let w = if wm == WeightMod::Identity { weights.clone() } else { weights.mapv(|v| wm.apply(v)) };
        let built = Arc::new(ConvKernel::new(geometry, dir, w, bias.then_some(b.as_slice()))?);
        Ok(Arc::clone(lock(&self.kernels).entry(key).or_insert(built)))
    }

    /// Starts a cache of denominators for the activations `id` (keeps it if it is theirs).
    fn scope_denominators(&self, id: u64) {
        let mut d = lock(&self.denominators);
        if d.0 != id {
            *d = (id, HashMap::new());
        }
    }

    /// The denominator `key` of the activations `id`: the cached one, or computed with `compute`
    /// and cached. With `claim`, only if no thread has started it (None if one has: the helper
    /// moves on); without, the caller never waits for the other thread: if that one is still
    /// computing it, it is computed again (the same bits). So the sweep cannot hang on a helper
    /// that has stopped.
    fn denominator(
        &self,
        id: u64,
        key: &DenominatorKey,
        claim: bool,
        compute: impl FnOnce() -> Result<ArrayD<f32>>,
    ) -> Result<Option<Arc<ArrayD<f32>>>> {
        let mut d = lock(&self.denominators);
        match d.1.get(key) {
            Some(Slot::Done(z)) if d.0 == id => return Ok(Some(Arc::clone(z))),
            Some(Slot::Busy) if claim && d.0 == id => return Ok(None),
            _ => {}
        }
        if claim && d.0 == id {
            d.1.insert(key.clone(), Slot::Busy);
        }
        drop(d);
        let result = compute();
        let mut d = lock(&self.denominators);
        if d.0 != id {
            // the cache has moved on to other activations meanwhile: keep nothing
            return result.map(|z| Some(Arc::new(z)));
        }
        match result {
            Ok(z) => {
                let z = Arc::new(z);
                if !matches!(d.1.get(key), Some(Slot::Done(_))) {
                    d.1.insert(key.clone(), Slot::Done(Arc::clone(&z)));
                }
                Ok(Some(z))
            }
            Err(e) => {
                if matches!(d.1.get(key), Some(Slot::Busy)) && claim {
                    d.1.remove(key);
                }
                Err(e)
            }
        }
    }
}

/// The input of weighted node `i` in its layer's shape, and the shape of its output.
fn layer_io<'a>(graph: &LayerGraph, values: &'a [ArrayD<f32>], i: usize) -> Result<(Cow<'a, ArrayD<f32>>, IxDyn)> {
    let node = &graph.nodes[i];
    let Layer::Conv { geometry, .. } = &node.layer else {
        return Err(Error::Shape("denominator of a layer without weights".into()));
    };
    let k = node.inputs[0];
    let a = kept_value(values, k, &graph.nodes[k].shape)?;
    let x = if a.shape() == geometry.input_shape() {
        Cow::Borrowed(a)
    } else {
        Cow::Owned(reshape(a.clone(), &geometry.input_shape())?)
    };
    Ok((x, IxDyn(&geometry.output_shape())))
}

/// `z = Σ_t sign_t · (W_t x_t)` (+ the modified bias) of weighted node `i` for one
/// propagation of its rule; `x` is the node's input, `out_dim` the shape of its output.
fn denominator(
    shared: &Shared,
    graph: &LayerGraph,
    i: usize,
    prop: &Propagation,
    x: &ArrayD<f32>,
    out_dim: IxDyn,
) -> Result<ArrayD<f32>> {
    let mut z = ArrayD::<f32>::zeros(out_dim);
    for t in &prop.terms {
        if let Some(xt) = modify_input(x, &t.input)? {
            let zt = shared.kernel(graph, i, t.weight, Direction::Forward, false)?.run(&xt)?;
            z.scaled_add(t.sign, &zt);
        }
    }
    if let Some(bm) = prop.bias {
        let Layer::Conv { bias, .. } = &graph.nodes[i].layer else { unreachable!() };
        for (c, mut plane) in z.axis_iter_mut(Axis(1)).enumerate() {
            let b = bm.apply(bias[c]);
            plane.mapv_inplace(|v| v + b);
        }
    }
    Ok(z)
}

/// Σ of a tensor in f64, over eight running sums so that the loop vectorises.
fn sum(a: &ArrayD<f32>) -> f64 {
    let Some(s) = a.as_slice_memory_order() else { return a.iter().map(|&v| v as f64).sum() };
    let mut acc = [0f64; 8];
    let chunks = s.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn reshape(a: ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>> {
    let a = if a.is_standard_layout() { a } else { a.as_standard_layout().to_owned() };
    a.into_shape_with_order(IxDyn(shape)).map_err(|e| Error::Shape(e.to_string()))
}

/// An NCHW (or CHW, seen with a batch axis) view.
fn to4(a: &ArrayD<f32>) -> Result<ndarray::ArrayView4<'_, f32>> {
    let v = if a.ndim() == 3 { a.view().insert_axis(Axis(0)) } else { a.view() };
    v.into_dimensionality().map_err(|e| Error::Shape(e.to_string()))
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = x.iter().map(|&v| ((v - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

impl Explainer {
    /// Wraps a layer graph; its forward pass runs one layer at a time.
    pub fn new(graph: LayerGraph) -> Self {
        Self::build(Arc::new(graph), None)
    }

    /// Wraps a layer graph (shared, not copied) whose forward pass runs through `plan` (see
    /// [`crate::Model::explainer`]).
    pub fn with_plan(graph: Arc<LayerGraph>, plan: ForwardPlan) -> Self {
        Self::build(graph, Some(plan))
    }

    fn build(graph: Arc<LayerGraph>, plan: Option<ForwardPlan>) -> Self {
        let residuals = Self::find_residuals(&graph);
        let first_weighted = graph.nodes.iter().position(|n| matches!(n.layer, Layer::Conv { .. }));
        Explainer { graph, plan, residuals, first_weighted, shared: Arc::default(), scope: None, parallel: false }
    }

    /// With `true`, an LRP explanation computes the denominators of its weighted layers on a
    /// thread of rayon's pool, ahead of the relevance sweep on the calling thread that needs
    /// them (builds with the `threads` feature; elsewhere this does nothing). The sweep never
    /// waits for that thread: it computes a denominator itself where the helper has not
    /// finished it. The results are the same bits either way: each denominator is computed
    /// exactly as on one thread, only elsewhere.
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on && cfg!(feature = "threads");
    }

    /// The layer graph.
    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// For every addition of two activations: which input is the shortcut.
    fn find_residuals(g: &LayerGraph) -> HashMap<usize, Residual> {
        let consumers = g.consumers();
        // walk back from `u` through single-reader nodes, counting weighted layers
        let walk = |mut u: usize| -> (usize, Option<usize>) {
            let mut convs = 0;
            loop {
                let n = &g.nodes[u];
                if consumers[u] > 1 {
                    return (convs, Some(u));
                }
                if matches!(n.layer, Layer::Conv { .. }) {
                    convs += 1;
                }
                match n.inputs.as_slice() {
                    [one] => u = *one,
                    _ => return (convs, None),
                }
            }
        };
        let mut out = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            if let (Layer::Add, [a, b]) = (&n.layer, n.inputs.as_slice()) {
                let (ca, fa) = walk(*a);
                let (cb, fb) = walk(*b);
                let shortcut = if ca <= cb { 0 } else { 1 };
                let convs = ca.min(cb);
                let block_input = if fa == fb { fa } else { None };
                out.insert(i, Residual { shortcut, projection: convs > 0, block_input });
            }
        }
        out
    }

    /// Runs the model, keeping the activations explanations read: through the whole-model
    /// plan when there is one, else one layer at a time (keeping every activation).
    ///
    /// # Errors
    /// [`Error::Shape`] if `input` does not have the model's input shape or is not finite;
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

    fn check_input(&self, input: &ArrayD<f32>) -> Result<()> {
        let expected = self.graph.input_shape();
        if input.shape() != expected {
            return Err(Error::Shape(format!("input has shape {:?}, the model needs {:?}", input.shape(), expected)));
        }
        if input.iter().any(|v| !v.is_finite()) {
            return Err(Error::Shape("the input contains NaN or infinite values".into()));
        }
        Ok(())
    }

    /// The kept activations from one run of the plan; the others are left empty.
    fn forward_plan(&self, plan: &ForwardPlan, input: ArrayD<f32>) -> Result<Vec<ArrayD<f32>>> {
        let out = plan.plan.run(std::iter::once(crate::kernels::tensor(&input)?.into_tvalue()).collect())?;
        let mut out: Vec<Option<TValue>> = out.into_iter().map(Some).collect();
        let mut values: Vec<ArrayD<f32>> = vec![ArrayD::zeros(IxDyn(&[0])); self.graph.nodes.len()];
        values[0] = input;
        for (n, &(node, k)) in plan.outputs.iter().enumerate() {
            let slot = out.get_mut(k).ok_or_else(|| Error::Tract(format!("the plan has no output {k}")))?;
            // the last reader of an output takes it, earlier ones copy it
            let t = if plan.outputs[n + 1..].iter().any(|o| o.1 == k) { slot.clone() } else { slot.take() };
            let t = t.ok_or_else(|| Error::Tract(format!("output {k} of the plan was read twice")))?;
            let a = t.into_tensor().into_plain_array::<f32>()?;
            let shape = &self.graph.nodes[node].shape;
            if a.len() != shape.iter().product::<usize>() {
                return Err(Error::Shape(format!(
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

    fn forward_values(&mut self, input: ArrayD<f32>) -> Result<Vec<ArrayD<f32>>> {
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
                        Error::Shape(format!("constant {:?} does not broadcast to {:?}", value.shape(), y.shape()))
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
                        return Err(Error::Shape(format!("addition of {:?} and {:?}", x(0).shape(), x(1).shape())));
                    }
                    x(0) + x(1)
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
                            .map_err(|e| Error::Shape(e.to_string()))?,
                        &shape,
                    )?
                }
            };
            if out.shape() != shape.as_slice() {
                return Err(Error::Shape(format!(
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

    fn finish_forward(&self, values: Vec<ArrayD<f32>>) -> Result<Activations> {
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

    fn resolve_target(&self, acts: &Activations, target: Target) -> Result<usize> {
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
            return Err(Error::Shape("activations belong to another model".into()));
        }
        let target = self.resolve_target(acts, target)?;
        self.shared.scope_denominators(acts.id);
        self.scope = Some(acts.id);
        let result = match method {
            #[cfg(feature = "threads")]
            Method::Lrp { composite, .. } if self.parallel => {
                // the denominators on a thread of the pool, in the order the sweep needs them; the
                // sweep runs here and never waits for it
                let jobs = self.denominator_jobs(composite);
                let (shared, graph, values) =
                    (Arc::clone(&self.shared), Arc::clone(&self.graph), Arc::clone(&acts.values));
                let (id, stop) = (acts.id, Arc::new(AtomicBool::new(false)));
                let helper_stop = Arc::clone(&stop);
                rayon::spawn(move || {
                    for (i, key, prop) in jobs {
                        if helper_stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // errors are left to the sweep, which computes it again and reports them
                        let _ = shared.denominator(id, &key, true, || {
                            let (x, dim) = layer_io(&graph, &values, i)?;
                            denominator(&shared, &graph, i, &prop, &x, dim)
                        });
                    }
                });
                let result = self.explain_scoped(acts, target, start, method);
                stop.store(true, Ordering::Relaxed);
                result
            }
            _ => self.explain_scoped(acts, target, start, method),
        };
        self.scope = None;
        result
    }

    fn explain_scoped(
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
                Method::GradientTimesInput => 1.0,
                Method::Lrp { .. } => start_relevance,
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
            let inputs = self.graph.nodes[i].inputs.clone();
            let parts = match method {
                Method::Lrp { composite, variant } => {
                    let parts = self.lrp_node(i, acts, r, composite, *variant)?;
                    if let (Some(res), [rs, rm]) = (self.residuals.get(&i), parts.as_slice()) {
                        let (rs, rm) = if res.shortcut == 0 { (rs, rm) } else { (rm, rs) };
                        blocks.push((
                            i,
                            BlockEntry {
                                node: name,
                                projection: res.projection,
                                relevance: total,
                                shortcut: sum(rs),
                                main: sum(rm),
                                block_input: None,
                            },
                        ));
                    }
                    parts
                }
                Method::GradientTimesInput => self.gradient_node(i, acts, r)?,
            };
            for (inp, part) in inputs.iter().zip(parts) {
                match &mut rel[*inp] {
                    Some(acc) => *acc += &part,
                    slot @ None => *slot = Some(part),
                }
            }
        }
        // the block input's total, read from the ledger once both paths have arrived
        for (add, entry) in blocks.iter_mut() {
            if let Some(b) = self.residuals.get(add).and_then(|r| r.block_input) {
                let name = &self.graph.nodes[b].name;
                entry.block_input = ledger.iter().find(|l| &l.node == name).map(|l| l.relevance);
            }
        }
        let mut relevance = rel[0].take().unwrap_or_else(|| ArrayD::zeros(IxDyn(self.graph.input_shape())));
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
        })
    }

    /// The rule of `composite` for weighted node `i`.
    fn rule_for<'c>(&self, i: usize, dense: bool, composite: &'c Composite) -> &'c Rule {
        if Some(i) == self.first_weighted {
            &composite.first
        } else if dense {
            &composite.dense
        } else {
            &composite.conv
        }
    }

    /// Every denominator an LRP sweep with `composite` needs (the helper skips those already
    /// cached), in the order the sweep needs them: (node, key, propagation).
    #[cfg(feature = "threads")]
    fn denominator_jobs(&self, composite: &Composite) -> Vec<DenominatorJob> {
        let mut jobs = Vec::new();
        for (i, node) in self.graph.nodes.iter().enumerate().rev() {
            let Layer::Conv { dense, .. } = &node.layer else { continue };
            let rule = self.rule_for(i, *dense, composite);
            if let Rule::Pass = rule {
                continue;
            }
            for (_, prop) in rule.propagations() {
                jobs.push((i, (i, format!("{prop:?}")), prop));
            }
        }
        jobs
    }

    /// LRP through node `i`: relevance for each of its inputs.
    fn lrp_node(
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
            Layer::Const { .. } | Layer::Softmax | Layer::Reshape | Layer::Permute(_) | Layer::Subsample { .. } => {
                vec![self.route_back(i, r)?]
            }
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
                let res =
                    self.residuals.get(&i).copied().ok_or_else(|| Error::Shape("addition without analysis".into()))?;
                let split = variant.split(res.projection);
                let s = a(res.shortcut)?;
                let m = a(1 - res.shortcut)?;
                let mut rs = ArrayD::zeros(r.raw_dim());
                let mut rm = ArrayD::zeros(r.raw_dim());
                Zip::from(&mut rs).and(&mut rm).and(s).and(m).and(&r).for_each(|rs, rm, &s, &m, &r| {
                    (*rs, *rm) = split.split_one(s, m, r);
                });
                if res.shortcut == 0 {
                    vec![rs, rm]
                } else {
                    vec![rm, rs]
                }
            }
        })
    }

    /// Takes a tensor at node `i`'s output back to its input's shape through a reshape or
    /// permutation (or unchanged through element-wise layers).
    fn route_back(&self, i: usize, r: ArrayD<f32>) -> Result<ArrayD<f32>> {
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
    fn avg_substitute(
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
            return Err(Error::Shape(format!(
                "the reference max-pool substitute needs an even input size, got {:?} → {:?}",
                g.in_hw, g.out_hw
            )));
        }
        Ok(sub.proportional(x, r, 4.0 * eps, false))
    }

    /// The generic weighted-layer routine: every [`Rule`] is a configuration of it.
    /// `a` is node `i`'s input as `[1, c_in, h, w]`, `r` the relevance of its output as
    /// `[1, c_out, h', w']`; returns the relevance of the input.
    ///
    /// # Errors
    /// [`Error::Shape`] if node `i` has no weights or the shapes do not fit.
    pub fn propagate_weighted(
        &mut self,
        i: usize,
        a: &ArrayD<f32>,
        r: &ArrayD<f32>,
        rule: &Rule,
        stab: Stabilizer,
        conserve: bool,
    ) -> Result<ArrayD<f32>> {
        if let Rule::Pass = rule {
            return if a.len() == r.len() {
                reshape(r.clone(), a.shape())
            } else {
                Err(Error::param(
                    "rule",
                    format!("`pass` needs equal input and output sizes, got {:?} → {:?}", a.shape(), r.shape()),
                ))
            };
        }
        let mut out = ArrayD::<f32>::zeros(a.raw_dim());
        let mut lost = ArrayD::<f32>::zeros(r.raw_dim());
        let mut any_lost = false;
        for (coef, prop) in rule.propagations() {
            let mut inputs = Vec::new();
            for t in &prop.terms {
                if let Some(x) = modify_input(a, &t.input)? {
                    inputs.push((t.clone(), x));
                }
            }
            let (shared, graph) = (&*self.shared, &*self.graph);
            let compute = || denominator(shared, graph, i, &prop, a, r.raw_dim());
            let cached;
            let computed;
            let z = if let Some(id) = self.scope {
                let key = (i, format!("{prop:?}"));
                cached = shared
                    .denominator(id, &key, false, compute)?
                    .ok_or_else(|| Error::Shape("a denominator was neither cached nor computed".into()))?;
                &*cached
            } else {
                computed = compute()?;
                &computed
            };
            let mut s = ArrayD::<f32>::zeros(r.raw_dim());
            Zip::from(&mut s).and(z).and(r).and(&mut lost).for_each(|s, &z, &r, lost| {
                if conserve && z.abs() <= ZERO_Z {
                    if r != 0.0 {
                        *lost += coef * r;
                        any_lost = true;
                    }
                } else {
                    *s = r / stab.apply(z);
                }
            });
            for (t, x) in inputs {
                let back = self.shared.kernel(&self.graph, i, t.weight, Direction::Transpose, false)?.run(&s)?;
                let f = coef * t.sign;
                Zip::from(&mut out).and(&*x).and(&back).for_each(|o, &x, &b| *o += f * x * b);
            }
        }
        if any_lost {
            out += &self.flat_fallback(i, a, lost)?;
        }
        Ok(out)
    }

    /// Relevance whose denominator was zero goes back flat over the positive weights of the
    /// receptive field, or over all of it where those are zero too. Nothing is dropped.
    fn flat_fallback(&mut self, i: usize, a: &ArrayD<f32>, lost: ArrayD<f32>) -> Result<ArrayD<f32>> {
        let ones = ArrayD::<f32>::ones(a.raw_dim());
        let mut out = ArrayD::<f32>::zeros(a.raw_dim());
        let mut rest = lost;
        for wm in [WeightMod::Positive, WeightMod::Ones] {
            let z = self.shared.kernel(&self.graph, i, wm, Direction::Forward, false)?.run(&ones)?;
            let mut s = ArrayD::<f32>::zeros(rest.raw_dim());
            let mut remaining = false;
            Zip::from(&mut s).and(&z).and(&mut rest).for_each(|s, &z, r| {
                if z > ZERO_Z {
                    *s = *r / z;
                    *r = 0.0;
                } else if *r != 0.0 {
                    remaining = true;
                }
            });
            out += &self.shared.kernel(&self.graph, i, wm, Direction::Transpose, false)?.run(&s)?;
            if !remaining {
                break;
            }
        }
        Ok(out)
    }

    /// Gradient through node `i` (for gradient × input).
    fn gradient_node(&mut self, i: usize, acts: &Activations, g: ArrayD<f32>) -> Result<Vec<ArrayD<f32>>> {
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
                let c = value.broadcast(g.raw_dim()).ok_or_else(|| Error::Shape("constant broadcast".into()))?;
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
                vec![g.broadcast(IxDyn(&shape)).ok_or_else(|| Error::Shape("global sum broadcast".into()))?.to_owned()]
            }
            Layer::Add => vec![g.clone(), g],
            Layer::Softmax => {
                return Err(Error::Shape(
                    "gradient through softmax is not needed: explanations start at the logits".into(),
                ))
            }
            Layer::Reshape | Layer::Permute(_) | Layer::Subsample { .. } => vec![self.route_back(i, g)?],
            Layer::Input => vec![],
        })
    }
}

/// The value of node `k` (of shape `shape`), or an error if the forward pass did not keep it.
fn kept<'a>(acts: &'a Activations, k: usize, shape: &[usize]) -> Result<&'a ArrayD<f32>> {
    kept_value(&acts.values, k, shape)
}

fn kept_value<'a>(values: &'a [ArrayD<f32>], k: usize, shape: &[usize]) -> Result<&'a ArrayD<f32>> {
    let v = &values[k];
    if v.shape() == shape {
        Ok(v)
    } else {
        Err(Error::Shape(format!("the activation of node {k} was not kept by the forward pass")))
    }
}

/// Applies an input modifier (borrowing `a` where it is unchanged); `None` when the result is
/// all zeros (the term can be skipped).
fn modify_input<'a>(a: &'a ArrayD<f32>, m: &InputMod) -> Result<Option<Cow<'a, ArrayD<f32>>>> {
    let x = match m {
        InputMod::Identity => return Ok(Some(Cow::Borrowed(a))),
        InputMod::Ones => ArrayD::ones(a.raw_dim()),
        InputMod::Positive => {
            if a.iter().all(|&v| v >= 0.0) {
                return Ok(Some(Cow::Borrowed(a)));
            }
            a.mapv(|v| v.max(0.0))
        }
        InputMod::Negative => {
            if a.iter().all(|&v| v >= 0.0) {
                return Ok(None);
            }
            a.mapv(|v| v.min(0.0))
        }
        InputMod::Channel(values) => {
            let c = a.shape()[1];
            let mut x = ArrayD::zeros(a.raw_dim());
            for (ch, mut plane) in x.axis_iter_mut(Axis(1)).enumerate() {
                let v = if values.len() == 1 { values[0] } else { *values.get(ch).unwrap_or(&0.0) };
                plane.fill(v);
            }
            if values.len() != 1 && values.len() != c {
                return Err(Error::param("low", format!("{} bounds for {c} input channels", values.len())));
            }
            x
        }
    };
    Ok(Some(Cow::Owned(x)))
}
