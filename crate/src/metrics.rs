//! Insertion, Deletion and their difference (ID): how faithful a heatmap is to the model,
//! measured the way Otsuki et al. (ECCV 2024) measure it.
//!
//! The map is cut into square patches of `block_size` pixels (default 1), each scored by the
//! **maximum** of the map inside it, and the patches are ranked by score, best first. Step `i`
//! (of `ceil(N / step)`, `step` default 500, `N` patches) takes the score at rank
//! `min(step · (i + 1), N − 1)` as a threshold `t`: the insertion image keeps every patch whose
//! score is `≥ t` (ties included, so a heat-quantized map enters level by level) and blacks out
//! the rest; the deletion image blacks out exactly those patches. "Black" is in pixel space: the
//! model-size RGB image (0–255) times the 0/1 mask, then normalised as the model expects. Each
//! image is scored by the softmax probability of the target class, and each curve by
//! `AUC = (Σ p − p₀/2 − p_last/2) / (n − 1)`. Insertion ↑, Deletion ↓, ID = Insertion − Deletion ↑.
//!
//! Note that the first point of a curve already has `step + 1` patches inserted (deleted): the
//! protocol has no point for the empty (full) image. The last insertion image is the full image,
//! the last deletion image is all black.
//!
//! Every image of a curve is only a forward pass; [`Runner`] runs them with tract's optimised
//! plan, optionally in fixed-size batches ([`BatchPlan`]) and on several threads. Masks that
//! repeat (equal thresholds, frequent after heat quantization) are run once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ndarray::{Array2, Array3, ArrayD};

use crate::error::{Error, Result};
use crate::lrp::softmax;
use crate::model::{BatchPlan, Model};
use crate::preprocess::{InputSpec, Layout, Preprocess};

/// The authors' default patch size (pixels).
pub const DEFAULT_BLOCK: usize = 1;
/// The authors' default number of patches added or removed per step.
pub const DEFAULT_STEP: usize = 500;

/// Patch size and step of the curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsDelConfig {
    /// Side of a square patch, in pixels.
    pub block_size: usize,
    /// Patches added (insertion) or removed (deletion) per step.
    pub step: usize,
}

impl Default for InsDelConfig {
    fn default() -> Self {
        InsDelConfig { block_size: DEFAULT_BLOCK, step: DEFAULT_STEP }
    }
}

impl InsDelConfig {
    /// Checks that the patch size and step are at least 1.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming `block` or `step`.
    pub fn validate(&self) -> Result<()> {
        if self.block_size == 0 {
            return Err(Error::param("block", "the patch size must be at least 1"));
        }
        if self.step == 0 {
            return Err(Error::param("step", "the step must be at least 1"));
        }
        Ok(())
    }
}

/// Which curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Start from black, insert the best patches first.
    Insertion,
    /// Start from the image, delete the best patches first.
    Deletion,
}

/// The ranking map of an explanation: [`crate::heatmap::map`] (relevance summed over the colour
/// channels, heat-quantized to `quantize` levels; the paper uses 8, 0 or 1 = raw).
pub use crate::heatmap::map as ranking_map;

/// The random-ranking baseline: an `[h, w]` map whose values are a random permutation of
/// `1..=h·w` (no ties), reproducible from `seed`.
pub fn random_map(height: usize, width: usize, seed: u64) -> Array2<f32> {
    let n = height * width;
    let mut values: Vec<f32> = (1..=n).map(|v| v as f32).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        values.swap(i, j);
    }
    Array2::from_shape_vec((height, width), values).expect("h·w values")
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, well-mixed 64-bit generator.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Score of every patch: the maximum of `map` inside it. Patches are `block × block` pixels,
/// row-major, `[ceil(h / block), ceil(w / block)]`; patches at the right and bottom edges are
/// cut to the image (for a block that divides the size — the authors' settings — they are all full).
///
/// # Errors
/// [`Error::InvalidParam`] for `block == 0`, or a map that is empty or not finite.
pub fn patch_scores(map: &Array2<f32>, block: usize) -> Result<Array2<f32>> {
    if block == 0 {
        return Err(Error::param("block", "the patch size must be at least 1"));
    }
    let (h, w) = map.dim();
    if h == 0 || w == 0 {
        return Err(Error::param("map", "the map is empty"));
    }
    if map.iter().any(|v| !v.is_finite()) {
        return Err(Error::param("map", "the map contains NaN or infinite values"));
    }
    let (ph, pw) = (h.div_ceil(block), w.div_ceil(block));
    let mut scores = Array2::from_elem((ph, pw), f32::NEG_INFINITY);
    for ((y, x), &v) in map.indexed_iter() {
        let s = &mut scores[(y / block, x / block)];
        if v > *s {
            *s = v;
        }
    }
    Ok(scores)
}

/// The threshold of every image of a curve: with the patch scores sorted in descending order,
/// image `i` of `ceil(N / step)` uses the score at rank `min(step · (i + 1), N − 1)`.
/// Thresholds never increase.
///
/// # Errors
/// [`Error::InvalidParam`] for `step == 0` or no scores.
pub fn thresholds(scores: &[f32], step: usize) -> Result<Vec<f32>> {
    if step == 0 {
        return Err(Error::param("step", "the step must be at least 1"));
    }
    if scores.is_empty() {
        return Err(Error::param("map", "the map is empty"));
    }
    let mut sorted = scores.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let n = sorted.len();
    Ok((0..n.div_ceil(step)).map(|i| sorted[(step * (i + 1)).min(n - 1)]).collect())
}

/// The pixel mask of one image: `true` where the pixel is kept. Insertion keeps the pixels of
/// every patch scoring `≥ threshold`, deletion keeps all the others.
pub fn mask(scores: &Array2<f32>, block: usize, size: (usize, usize), threshold: f32, mode: Mode) -> Array2<bool> {
    Array2::from_shape_fn(size, |(y, x)| {
        let inserted = scores[(y / block, x / block)] >= threshold;
        match mode {
            Mode::Insertion => inserted,
            Mode::Deletion => !inserted,
        }
    })
}

/// All the masks of one curve, in order.
///
/// # Errors
/// As [`patch_scores`] and [`thresholds`].
pub fn masks(map: &Array2<f32>, cfg: &InsDelConfig, mode: Mode) -> Result<Vec<Array2<bool>>> {
    cfg.validate()?;
    let scores = patch_scores(map, cfg.block_size)?;
    let ts = thresholds(scores.as_slice().expect("standard layout"), cfg.step)?;
    Ok(ts.into_iter().map(|t| mask(&scores, cfg.block_size, map.dim(), t, mode)).collect())
}

/// Normalised area under a curve sampled at equally spaced points:
/// `(Σ p − p₀/2 − p_last/2) / (n − 1)` (the trapezoid rule over `[0, 1]`). A single point is its
/// own area; an empty curve has area 0.
pub fn auc(curve: &[f32]) -> f64 {
    match curve {
        [] => 0.0,
        [p] => *p as f64,
        [first, .., last] => {
            let sum: f64 = curve.iter().map(|&p| p as f64).sum();
            (sum - *first as f64 / 2.0 - *last as f64 / 2.0) / (curve.len() - 1) as f64
        }
    }
}

/// The image under evaluation, at the model's input size: its normalised input and the
/// normalised value of a black pixel, so that any mask becomes a model input cheaply.
#[derive(Debug, Clone)]
pub struct Masker {
    full: ArrayD<f32>,
    black: ArrayD<f32>,
    input: InputSpec,
}

impl Masker {
    /// From model-size pixels (`[H, W, 3]` RGB, 0–255, see [`Model::resize_rgba`]).
    ///
    /// # Errors
    /// As [`Model::normalize`].
    pub fn new(model: &Model, pixels: &Array3<f32>, pre: &Preprocess) -> Result<Masker> {
        let full = model.normalize(pixels, pre)?;
        let black = model.normalize(&Array3::zeros(pixels.raw_dim()), pre)?;
        Ok(Masker { full, black, input: model.input().clone() })
    }

    /// The unmasked input.
    pub fn full(&self) -> &ArrayD<f32> {
        &self.full
    }

    /// The input with the pixels where `keep` is false set to black (in pixel space), i.e.
    /// exactly `normalize(pixels × keep)`.
    ///
    /// # Panics
    /// If `keep` is not `[H, W]` of the model input.
    pub fn masked(&self, keep: &Array2<bool>) -> ArrayD<f32> {
        let (h, w, c) = (self.input.height, self.input.width, self.input.channels);
        assert_eq!(keep.dim(), (h, w), "mask size");
        let mut out = self.black.clone();
        let dst = out.as_slice_mut().expect("standard layout");
        let src = self.full.as_slice().expect("standard layout");
        for ((y, x), &k) in keep.indexed_iter() {
            if !k {
                continue;
            }
            let p = y * w + x;
            match self.input.layout {
                Layout::NCHW => (0..c).for_each(|ch| dst[ch * h * w + p] = src[ch * h * w + p]),
                Layout::NHWC => dst[p * c..(p + 1) * c].copy_from_slice(&src[p * c..(p + 1) * c]),
            }
        }
        out
    }
}

/// A progress callback `(images done, images in the call)`; shared between threads natively.
#[cfg(not(target_arch = "wasm32"))]
pub type Progress<'a> = dyn Fn(usize, usize) + Sync + 'a;
/// A progress callback `(images done, images in the call)`.
#[cfg(target_arch = "wasm32")]
pub type Progress<'a> = dyn Fn(usize, usize) + 'a;

/// The model's outputs for a group of images, one flattened vector per image.
type Outputs = Vec<Vec<f32>>;

/// Runs forward passes for the curves: tract's optimised plan one image at a time, or a
/// [`BatchPlan`], on one or more threads. Counts the images it ran.
pub struct Runner<'m> {
    model: &'m Model,
    batch: Option<&'m BatchPlan>,
    threads: usize,
    passes: AtomicUsize,
    progress: Option<&'m Progress<'m>>,
    cancel: Option<&'m AtomicBool>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("batch", &self.batch.map(BatchPlan::batch))
            .field("threads", &self.threads)
            .field("forward_passes", &self.forward_passes())
            .finish()
    }
}

impl<'m> Runner<'m> {
    /// One image at a time, on one thread.
    pub fn new(model: &'m Model) -> Self {
        Runner { model, batch: None, threads: 1, passes: AtomicUsize::new(0), progress: None, cancel: None }
    }

    /// Calls `progress(done, total)` after every group of images of a
    /// [`Self::probabilities`] call (from the worker thread that ran it).
    pub fn with_progress(mut self, progress: &'m Progress<'m>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Stops with [`Error::Cancelled`] before the next group of images once `cancel` is set
    /// (e.g. by a progress callback or another thread).
    pub fn with_cancel(mut self, cancel: &'m AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Runs images in batches with `plan` (loaded from the same model).
    pub fn with_batch(mut self, plan: &'m BatchPlan) -> Self {
        self.batch = Some(plan);
        self
    }

    /// Spreads the work over `threads` threads (native only; the browser build runs on one).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Images run so far (padding of short batches not counted).
    pub fn forward_passes(&self) -> usize {
        self.passes.load(Ordering::Relaxed)
    }

    /// The softmax probability of `target` for every input (the model's own output when it ends
    /// in a softmax, else the softmax of its output).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for inputs of the wrong shape, [`Error::InvalidParam`] for a target out of
    /// range, [`Error::Tract`] from tract.
    pub fn probabilities(&self, inputs: &[ArrayD<f32>], target: usize) -> Result<Vec<f32>> {
        let chunk = self.batch.map_or(1, BatchPlan::batch);
        let jobs: Vec<&[ArrayD<f32>]> = inputs.chunks(chunk).collect();
        let done = AtomicUsize::new(0);
        let outputs = self.run_jobs(&jobs, &done, inputs.len())?;
        let already_softmax = self.model.graph().logits != self.model.graph().output;
        let mut probs = Vec::with_capacity(inputs.len());
        for out in outputs.into_iter().flatten() {
            if target >= out.len() {
                return Err(Error::param("target", format!("class {target} of {}", out.len())));
            }
            probs.push(if already_softmax { out[target] } else { softmax(&out)[target] });
        }
        Ok(probs)
    }

    fn run_job(&self, job: &[ArrayD<f32>], done: &AtomicUsize, total: usize) -> Result<Outputs> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Cancelled);
        }
        let out = match self.batch {
            Some(plan) => plan.run(job)?,
            None => job.iter().map(|x| self.model.run(x)).collect::<Result<Vec<_>>>()?,
        };
        self.passes.fetch_add(job.len(), Ordering::Relaxed);
        let now = done.fetch_add(job.len(), Ordering::Relaxed) + job.len();
        if let Some(progress) = self.progress {
            progress(now, total);
        }
        Ok(out)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn run_jobs(&self, jobs: &[&[ArrayD<f32>]], done: &AtomicUsize, total: usize) -> Result<Vec<Outputs>> {
        let threads = self.threads.min(jobs.len());
        if threads <= 1 {
            return jobs.iter().map(|j| self.run_job(j, done, total)).collect();
        }
        let next = AtomicUsize::new(0);
        let results: Vec<Vec<(usize, Result<Outputs>)>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut finished = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= jobs.len() {
                                break finished;
                            }
                            finished.push((i, self.run_job(jobs[i], done, total)));
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("forward-pass worker panicked")).collect()
        });
        let mut ordered: Vec<Option<Outputs>> = vec![None; jobs.len()];
        for (i, r) in results.into_iter().flatten() {
            ordered[i] = Some(r?);
        }
        Ok(ordered.into_iter().map(|o| o.expect("every job ran")).collect())
    }

    #[cfg(target_arch = "wasm32")]
    fn run_jobs(&self, jobs: &[&[ArrayD<f32>]], done: &AtomicUsize, total: usize) -> Result<Vec<Outputs>> {
        jobs.iter().map(|j| self.run_job(j, done, total)).collect()
    }
}

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Insertion or deletion.
    pub mode: Mode,
    /// The threshold of every image.
    pub thresholds: Vec<f32>,
    /// The target's probability for every image.
    pub probabilities: Vec<f32>,
    /// [`auc`] of the probabilities.
    pub auc: f64,
    /// Pixels kept (not blacked out) in every image.
    pub kept: Vec<usize>,
    /// Distinct masks, i.e. forward passes this curve needed.
    pub distinct_masks: usize,
}

/// Both curves of one map.
#[derive(Debug, Clone, PartialEq)]
pub struct InsDel {
    /// The insertion curve.
    pub insertion: Curve,
    /// The deletion curve.
    pub deletion: Curve,
}

impl InsDel {
    /// Insertion AUC − deletion AUC (↑).
    pub fn id(&self) -> f64 {
        self.insertion.auc - self.deletion.auc
    }

    /// Forward passes both curves needed.
    pub fn forward_passes(&self) -> usize {
        self.insertion.distinct_masks + self.deletion.distinct_masks
    }
}

/// Insertion and deletion curves of `map` (at the model's input size) for `target`: one forward
/// pass per distinct mask, all of them handed to `runner` at once.
///
/// # Errors
/// [`Error::InvalidInput`] for a map that is not the input's `[H, W]`; as [`patch_scores`],
/// [`thresholds`] and [`Runner::probabilities`].
pub fn insertion_deletion(
    masker: &Masker,
    runner: &Runner,
    map: &Array2<f32>,
    target: usize,
    cfg: &InsDelConfig,
) -> Result<InsDel> {
    cfg.validate()?;
    let size = (masker.input.height, masker.input.width);
    if map.dim() != size {
        return Err(Error::InvalidInput(format!("map {:?}, the model input is {size:?}", map.dim())));
    }
    let scores = patch_scores(map, cfg.block_size)?;
    let ts = thresholds(scores.as_slice().expect("standard layout"), cfg.step)?;
    // equal thresholds give equal masks: run each once
    let mut distinct: Vec<f32> = ts.clone();
    distinct.dedup_by(|a, b| a.to_bits() == b.to_bits());
    let mut inputs = Vec::with_capacity(2 * distinct.len());
    let mut kept = Vec::with_capacity(2 * distinct.len());
    for mode in [Mode::Insertion, Mode::Deletion] {
        for &t in &distinct {
            let m = mask(&scores, cfg.block_size, size, t, mode);
            kept.push(m.iter().filter(|&&k| k).count());
            inputs.push(masker.masked(&m));
        }
    }
    let probs = runner.probabilities(&inputs, target)?;
    let n = distinct.len();
    // image i of a curve uses distinct mask index[i]
    let mut k = 0;
    let index: Vec<usize> = ts
        .iter()
        .map(|t| {
            while distinct[k].to_bits() != t.to_bits() {
                k += 1;
            }
            k
        })
        .collect();
    let curve = |mode: Mode, offset: usize| {
        let probabilities: Vec<f32> = index.iter().map(|&k| probs[offset + k]).collect();
        Curve {
            mode,
            thresholds: ts.clone(),
            auc: auc(&probabilities),
            probabilities,
            kept: index.iter().map(|&k| kept[offset + k]).collect(),
            distinct_masks: n,
        }
    };
    Ok(InsDel { insertion: curve(Mode::Insertion, 0), deletion: curve(Mode::Deletion, n) })
}
