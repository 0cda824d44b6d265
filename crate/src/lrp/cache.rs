//! Compiled kernels and class-independent denominators, shared between an explanation's
//! relevance sweep and the helper thread that computes the denominators ahead of it.

use super::*;

/// A denominator: (weighted node, the propagation it belongs to).
pub(super) type DenominatorKey = (usize, String);
/// A denominator to compute: its node, key and propagation.
#[cfg(feature = "threads")]
pub(super) type DenominatorJob = (usize, DenominatorKey, Propagation);

/// What an explanation shares between its relevance sweep and the thread that computes the
/// denominators ahead of it.
#[derive(Default)]
pub(super) struct Shared {
    /// Compiled kernels per (layer, weight modifier, direction, bias), built on first use.
    kernels: Mutex<HashMap<KernelKey, Arc<ConvKernel>>>,
    /// Denominators `z` of the weighted layers for the activations with this id: they do not
    /// depend on the explained class, so every class after the first skips them.
    denominators: Mutex<(u64, HashMap<DenominatorKey, Slot>)>,
}

/// A denominator the helper is computing, or done.
pub(super) enum Slot {
    Busy,
    Done(Arc<ArrayD<f32>>),
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // a panic while holding the lock leaves plain data behind: the caches stay usable
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The kernel of `node` for weight modifier `wm`, direction `dir` and `bias`, compiled on
    /// first use (outside the lock, so that two threads can compile different kernels at once).
    pub(super) fn kernel(
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
            return Err(Error::Internal("kernel requested for a layer without weights".into()));
        };
        let w = if wm == WeightMod::Identity { weights.to_array() } else { weights.map(|v| wm.apply(v)) };
        let built = Arc::new(ConvKernel::new(geometry, dir, w, bias.then_some(b.as_slice()))?);
        Ok(Arc::clone(lock(&self.kernels).entry(key).or_insert(built)))
    }

    /// Starts a cache of denominators for the activations `id` (keeps it if it is theirs).
    pub(super) fn scope_denominators(&self, id: u64) {
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
    pub(super) fn denominator(
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
pub(super) fn layer_io<'a>(
    graph: &LayerGraph,
    values: &'a [ArrayD<f32>],
    i: usize,
) -> Result<(Cow<'a, ArrayD<f32>>, IxDyn)> {
    let node = &graph.nodes[i];
    let Layer::Conv { geometry, .. } = &node.layer else {
        return Err(Error::Internal("denominator of a layer without weights".into()));
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
pub(super) fn denominator(
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

impl Explainer {
    /// Every denominator an LRP sweep with `composite` needs (the helper skips those already
    /// cached), in the order the sweep needs them: (node, key, propagation).
    #[cfg(feature = "threads")]
    pub(super) fn denominator_jobs(&self, composite: &Composite) -> Vec<DenominatorJob> {
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

    /// Starts the helper that computes the sweep's denominators on a thread of the pool, in the
    /// order the sweep needs them; the sweep never waits for it. Returns the flag that stops it.
    #[cfg(feature = "threads")]
    pub(super) fn spawn_denominator_helper(&self, acts: &Activations, composite: &Composite) -> Arc<AtomicBool> {
        let jobs = self.denominator_jobs(composite);
        let (shared, graph, values) = (Arc::clone(&self.shared), Arc::clone(&self.graph), Arc::clone(&acts.values));
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
        stop
    }
}
