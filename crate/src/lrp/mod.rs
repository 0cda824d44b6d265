//! The explainer: one forward pass that keeps the activations LRP reads, then any number of
//! LRP passes (different classes, rules, splitting variants) over those activations.
//!
//! One job a file: `api` the types an explanation is asked with and answered in; `forward`
//! the forward pass (tract's fused plan, or a layer-by-layer interpreter for graphs built by
//! hand); `sweep` the relevance sweep and its ledger (residual splits, pooling, routing);
//! `weighted` the one routine every weighted-layer [`Rule`] configures; `cache` the compiled
//! kernels, the class-independent denominators and the helper thread that computes them ahead of
//! the sweep; `gradient` the backward pass of the gradient methods (gradient × input, Guided
//! Backprop, Integrated Gradients); `cam` the baselines that are not one sweep (Integrated
//! Gradients, Guided Backprop, Grad-CAM, Score-CAM) and their pure helpers.

use std::borrow::Cow;
use std::collections::HashMap;
#[cfg(feature = "threads")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{Array4, ArrayD, Axis, IxDyn, Slice, Zip};
use serde::Serialize;
use tract_onnx::prelude::{IntoTValue, IntoTensor, TValue, TypedRunnableModel};

use crate::composite::{Composite, MaxPoolRule};
use crate::conv::{ConvKernel, Direction};
use crate::error::{Error, Result};
use crate::graph::{ConstOp, Layer, LayerGraph};
use crate::pool::PoolGeometry;
use crate::rules::{InputMod, Propagation, Rule, Stabilizer, WeightMod, ZERO_DENOMINATOR};
use crate::split::{Split, Variant};

mod api;
mod cache;
pub mod cam;
mod forward;
mod gradient;
mod sweep;
mod weighted;

pub use api::{Activations, BlockEntry, Explanation, LedgerEntry, Method, Start, Target};
use cache::{denominator, layer_io, Shared};
pub use cam::{IG_STEPS, SCORE_CAM_CHANNELS};
pub use forward::{softmax, ForwardPlan};
pub use gradient::gauss_legendre;
use gradient::Backprop;
use weighted::modify_input;

/// Shortcut analysis of one residual addition.
#[derive(Debug, Clone, Copy)]
struct Residual {
    /// Input slot (0 or 1) of the shortcut: the input reached through fewer weighted layers;
    /// `None` when both are reached through as many, so that neither can be called the shortcut.
    shortcut: Option<usize>,
    projection: bool,
    /// The fan-out node where shortcut and main branch meet again going backwards.
    block_input: Option<usize>,
}

/// How a residual addition was read, for `resnet-lrp info` and the page's model info.
#[derive(Debug, Clone, Serialize)]
pub struct ResidualInfo {
    /// The addition's node name.
    pub node: String,
    /// Input slot (0 or 1) of the shortcut; `None` when both inputs pass through as many
    /// weighted layers, so that neither is the shortcut.
    pub shortcut_input: Option<usize>,
    /// The node the shortcut reads (`None` as above).
    pub shortcut: Option<String>,
    /// The node the main branch reads (`None` as above).
    pub main: Option<String>,
    /// A projection shortcut (weighted layers on it), else identity: the shortcut is the path with
    /// fewer weighted layers back to where the two paths meet.
    pub projection: bool,
    /// The split each variant applies here: `(variant, what the shortcut gets)`.
    pub splits: Vec<(&'static str, &'static str)>,
}

/// A squeeze-excitation gate, for `info` and the page.
#[derive(Debug, Clone, Serialize)]
pub struct GateInfo {
    /// The product's node name.
    pub node: String,
    /// The gated branch (gets all the relevance).
    pub branch: String,
    /// The node computing the gate (a constant scale for LRP: its path gets none).
    pub gate: String,
}

/// The residual additions of `graph`, in order, with their shortcut analysis.
pub fn residuals(graph: &LayerGraph) -> Vec<ResidualInfo> {
    let found = Explainer::find_residuals(graph);
    let mut adds: Vec<usize> = found.keys().copied().collect();
    adds.sort_unstable();
    adds.into_iter()
        .map(|i| {
            let (r, n) = (found[&i], &graph.nodes[i]);
            let name = |slot: usize| graph.nodes[n.inputs[slot]].name.clone();
            let split = |v: &Variant| {
                let s = v.split(r.projection);
                if r.shortcut.is_none() && !s.is_symmetric() {
                    "an error: neither input is the shortcut"
                } else {
                    s.describe()
                }
            };
            ResidualInfo {
                node: n.name.clone(),
                shortcut_input: r.shortcut,
                shortcut: r.shortcut.map(name),
                main: r.shortcut.map(|k| name(1 - k)),
                projection: r.projection,
                splits: crate::split::VARIANTS.iter().map(|v| (v.name(), split(v))).collect(),
            }
        })
        .collect()
}

/// The squeeze-excitation gates of `graph`, in order.
pub fn gates(graph: &LayerGraph) -> Vec<GateInfo> {
    graph
        .gates()
        .into_iter()
        .filter_map(|i| {
            let n = &graph.nodes[i];
            let Layer::Gate { gate } = n.layer else { return None };
            let name = |slot: usize| graph.nodes[n.inputs[slot]].name.clone();
            Some(GateInfo { node: n.name.clone(), branch: name(1 - gate), gate: name(gate) })
        })
        .collect()
}

type KernelKey = (usize, (u8, u32), Direction, bool);

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
    /// The explainer over the same model with its BatchNorm layers kept apart from the
    /// convolutions, for composites with [`Composite::raw_batchnorm`]. It reads the same
    /// activations: the two graphs number their nodes alike.
    raw_batchnorm: Option<Box<Explainer>>,
    /// The input's channel axis (1 for NCHW, 3 for NHWC): where the CAMs' `[H, W]` maps spread.
    channel_axis: usize,
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
    a.into_shape_with_order(IxDyn(shape)).map_err(|e| Error::Internal(e.to_string()))
}

/// An NCHW (or CHW, seen with a batch axis) view.
fn to4(a: &ArrayD<f32>) -> Result<ndarray::ArrayView4<'_, f32>> {
    let v = if a.ndim() == 3 { a.view().insert_axis(Axis(0)) } else { a.view() };
    v.into_dimensionality().map_err(|e| Error::Internal(e.to_string()))
}

/// Applies `f(value, channel)` to every element of `a`, the channel being its index on axis 1.
fn per_channel(a: &mut ArrayD<f32>, f: impl Fn(f32, usize) -> f32) -> Result<()> {
    if a.ndim() < 2 {
        return Err(Error::Internal(format!("per-channel operation on shape {:?}", a.shape())));
    }
    for (c, mut lane) in a.axis_iter_mut(Axis(1)).enumerate() {
        lane.mapv_inplace(|v| f(v, c));
    }
    Ok(())
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
        Err(Error::Internal(format!("the activation of node {k} was not kept by the forward pass")))
    }
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
        Explainer {
            graph,
            plan,
            residuals,
            first_weighted,
            shared: Arc::default(),
            scope: None,
            parallel: false,
            raw_batchnorm: None,
            channel_axis: 1,
        }
    }

    /// The same explainer, with `raw` (this graph with its BatchNorm layers kept apart, node for
    /// node) used by composites with [`Composite::raw_batchnorm`]. A `raw` graph with another
    /// node count cannot be that, and is ignored.
    pub fn with_raw_batchnorm(mut self, raw: Arc<LayerGraph>) -> Self {
        if raw.nodes.len() == self.graph.nodes.len() {
            let axis = self.channel_axis;
            self.raw_batchnorm = Some(Box::new(Self::build(raw, None).with_channel_axis(axis)));
        }
        self
    }

    /// With `true`, an LRP explanation computes the denominators of its weighted layers on a
    /// thread of rayon's pool, ahead of the relevance sweep on the calling thread that needs
    /// them (builds with the `threads` feature; elsewhere this does nothing). The sweep never
    /// waits for that thread: it computes a denominator itself where the helper has not
    /// finished it. The results are the same bits either way: each denominator is computed
    /// exactly as on one thread, only elsewhere.
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on && cfg!(feature = "threads");
        if let Some(raw) = &mut self.raw_batchnorm {
            raw.set_parallel(on);
        }
    }

    /// Sets the input's channel axis (1 for NCHW, the default; 3 for NHWC), which the class
    /// activation maps need to know where the input's height and width are.
    pub fn with_channel_axis(mut self, axis: usize) -> Self {
        self.channel_axis = axis;
        self
    }

    /// The layer graph.
    pub fn graph(&self) -> &LayerGraph {
        &self.graph
    }

    /// For every addition of two activations: which input is the shortcut.
    fn find_residuals(g: &LayerGraph) -> HashMap<usize, Residual> {
        // readers that pass relevance: a squeeze-excitation gate's path reads its branch but is
        // no second path of relevance
        let consumers = g.relevance_readers();
        // walk back from `u` through single-reader nodes (through a gate, along its branch),
        // counting weighted layers
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
                match g.relevance_inputs(u).as_slice() {
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
                let shortcut = match ca.cmp(&cb) {
                    std::cmp::Ordering::Less => Some(0),
                    std::cmp::Ordering::Greater => Some(1),
                    std::cmp::Ordering::Equal => None,
                };
                let convs = ca.min(cb);
                let block_input = if fa == fb { fa } else { None };
                out.insert(i, Residual { shortcut, projection: convs > 0, block_input });
            }
        }
        out
    }
}
