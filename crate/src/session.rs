//! The application: one model plus the current input → predictions, explanations with their
//! maps, and evaluations with progress and cancel. The CLI and the wasm boundary are thin
//! adapters over a [`Session`]: they parse, call it, and print or serialise what it returns, so
//! the page and the command line run the same steps in the same order.

use std::sync::atomic::AtomicBool;

use ndarray::{Array2, Array3, ArrayD};
use serde::Serialize;

use crate::composite::Composite;
use crate::error::{Error, Result};
use crate::lrp::{Activations, Explainer, Explanation, Method, Target};
use crate::metrics::{self, InsDel, InsDelConfig, Masker, Progress, Runner};
use crate::model::{BatchPlan, Model};
use crate::preprocess::Preprocess;
use crate::request::ExplainRequest;

/// Classes listed in a [`Prediction`].
pub const TOP_K: usize = 5;

/// One class and its probability.
#[derive(Debug, Clone, Serialize)]
pub struct TopClass {
    /// Class index.
    pub class: usize,
    /// Softmax probability.
    pub probability: f32,
}

/// The model's answer for the current input.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// The output the explanations start from.
    pub logits: Vec<f32>,
    /// Their softmax.
    pub probabilities: Vec<f32>,
    /// The [`TOP_K`] most probable classes, best first.
    pub top: Vec<TopClass>,
}

/// An explanation and its `[H, W]` map ([`crate::heatmap::map_in_cells`] with the request's levels and cells).
#[derive(Debug, Clone)]
pub struct Explained {
    /// The explanation.
    pub explanation: Explanation,
    /// Relevance summed over the channels, averaged over cells and heat-quantized as asked.
    pub map: Array2<f32>,
    /// For LRP: what the composite did with the model's BatchNorm ([`batchnorm_note`]).
    pub batchnorm: Option<String>,
}

/// What `composite` does with `model`'s BatchNorm, in one sentence: whether the file keeps
/// `BatchNormalization` nodes (so that the authors' rule on the raw convolution weights can be
/// applied) or not (BatchNorm, if the network had it, was folded at export).
pub fn batchnorm_note(model: &Model, composite: &Composite) -> String {
    let kept = model.raw_batchnorm_graph().map_or(0, |g| g.batchnorms());
    match (kept, composite.raw_batchnorm) {
        (0, true) => "No BatchNorm nodes in the file: if the network had BatchNorm, it was folded into the \
                      convolutions at export, and z⁺ acts on the folded weights (where a BatchNorm scale is \
                      negative that is not the authors' rule; export with BatchNorm kept to get it)."
            .into(),
        (0, false) => "No BatchNorm nodes in the file.".into(),
        (n, true) => format!(
            "BatchNorm kept in the file ({n} layers): z⁺ acts on the raw convolution weights and BatchNorm \
             passes relevance, as in the authors' code."
        ),
        (n, false) => format!(
            "BatchNorm kept in the file ({n} layers), folded into the convolutions first: the same map as \
             from an export with BatchNorm folded."
        ),
    }
}

/// Insertion and deletion curves of one ranking of the current photo.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The class the curves follow.
    pub target: usize,
    /// Its probability on the full photo.
    pub probability: f32,
    /// Both curves.
    pub curves: InsDel,
    /// Pixels of the model input (to turn the curves' kept counts into fractions).
    pub pixels: usize,
    /// Time spent ranking (explaining), natively; `None` in the browser.
    pub explain_time: Option<std::time::Duration>,
    /// Time spent on the curves' forward passes, natively; `None` in the browser.
    pub curves_time: Option<std::time::Duration>,
}

/// The input the session holds: the pixels it came from (photos only) and the activations of its
/// forward pass (whose node 0 is the input tensor itself).
struct Current {
    pixels: Option<Array3<f32>>,
    acts: Activations,
}

/// A model with its explainer, preprocessing and current input.
pub struct Session {
    model: Model,
    explainer: Explainer,
    preprocess: Preprocess,
    current: Option<Current>,
    threads: usize,
    batch: Option<BatchPlan>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("model", &self.model).field("has_input", &self.current.is_some()).finish()
    }
}

fn no_input() -> Error {
    Error::param("input", "no image: set an image or an input first")
}

/// Wall-clock time of `f`, natively (the browser build has no clock here).
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Option<std::time::Duration>)> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let t = std::time::Instant::now();
        let out = f()?;
        Ok((out, Some(t.elapsed())))
    }
    #[cfg(target_arch = "wasm32")]
    Ok((f()?, None))
}

impl Session {
    /// A session over `model`, with the preprocessing its file carries (ImageNet's when it carries
    /// none, see [`crate::metadata`]) and no input yet.
    pub fn new(model: Model) -> Session {
        let explainer = model.explainer();
        let preprocess = model.metadata().preprocess.clone().unwrap_or_default();
        Session { model, explainer, preprocess, current: None, threads: 1, batch: None }
    }

    /// Loads a model from its ONNX bytes.
    ///
    /// # Errors
    /// As [`Model::from_onnx_bytes`].
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Session> {
        Ok(Session::new(Model::from_onnx_bytes(bytes)?))
    }

    /// Loads a model from its ONNX bytes and the side files of its external data.
    ///
    /// # Errors
    /// As [`Model::from_onnx`].
    pub fn from_onnx(bytes: &[u8], side: &mut crate::external::SideFiles) -> Result<Session> {
        Ok(Session::new(Model::from_onnx(bytes, side)?))
    }

    /// As [`Session::from_onnx`], taking the bytes ([`Model::from_onnx_owned`]: they are freed as
    /// soon as they are decoded).
    ///
    /// # Errors
    /// As [`Model::from_onnx`].
    pub fn from_onnx_owned(bytes: Vec<u8>, side: &mut crate::external::SideFiles) -> Result<Session> {
        Ok(Session::new(Model::from_onnx_owned(bytes, side)?))
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The preprocessing photos go through.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Sets the preprocessing of the next photos.
    ///
    /// # Errors
    /// As [`Preprocess::validate`].
    pub fn set_preprocess(&mut self, p: Preprocess) -> Result<()> {
        p.validate()?;
        self.preprocess = p;
        Ok(())
    }

    /// Whether explanations compute their denominators on a second thread
    /// ([`Explainer::set_parallel`]).
    pub fn set_parallel(&mut self, on: bool) {
        self.explainer.set_parallel(on);
    }

    /// Threads for the forward passes of an evaluation's curves (native only).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Runs the curves of evaluations in batches with `plan` (loaded from the same model).
    pub fn set_batch_plan(&mut self, plan: Option<BatchPlan>) {
        self.batch = plan;
    }

    /// The batched plan of the curves, if any.
    pub fn batch_plan(&self) -> Option<&BatchPlan> {
        self.batch.as_ref()
    }

    /// Makes an RGBA photo (`width × height × 4` bytes) the current input and runs the model.
    ///
    /// # Errors
    /// [`Error::Image`] for an empty image or a buffer of the wrong size; as
    /// [`Explainer::forward`].
    pub fn set_image(&mut self, rgba: &[u8], width: usize, height: usize) -> Result<Prediction> {
        let pixels = self.model.resize_rgba(rgba, width, height)?;
        let input = self.model.normalize(&pixels, &self.preprocess)?;
        self.set(input, Some(pixels))
    }

    /// Makes a preprocessed tensor in the model's own input layout the current input.
    ///
    /// # Errors
    /// As [`Explainer::forward`].
    pub fn set_input(&mut self, input: ArrayD<f32>) -> Result<Prediction> {
        self.set(input, None)
    }

    fn set(&mut self, input: ArrayD<f32>, pixels: Option<Array3<f32>>) -> Result<Prediction> {
        self.current = None; // a failed forward pass leaves no stale input behind
        let acts = self.explainer.forward(input)?;
        let p = acts.probabilities().to_vec();
        let top = acts.top_k(TOP_K).into_iter().map(|(class, probability)| TopClass { class, probability }).collect();
        let prediction = Prediction { logits: acts.logits().to_vec(), probabilities: p, top };
        self.current = Some(Current { pixels, acts });
        Ok(prediction)
    }

    fn current(&self) -> Result<&Current> {
        self.current.as_ref().ok_or_else(no_input)
    }

    /// The current input tensor.
    pub fn input(&self) -> Option<&ArrayD<f32>> {
        self.current.as_ref().map(|c| c.acts.value(0))
    }

    /// The current photo at the model's input size (`[H, W, 3]` RGB, 0–255); `None` for a
    /// preprocessed tensor.
    pub fn pixels(&self) -> Option<&Array3<f32>> {
        self.current.as_ref().and_then(|c| c.pixels.as_ref())
    }

    /// The activations of the current input's forward pass.
    pub fn activations(&self) -> Option<&Activations> {
        self.current.as_ref().map(|c| &c.acts)
    }

    /// The class `target` names for the current input.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] with no input yet or a class out of range.
    pub fn resolve_target(&self, target: Target) -> Result<usize> {
        self.explainer.resolve_target(&self.current()?.acts, target)
    }

    /// Explains the current input. The random ranking (`request.method` `None`) is explained by
    /// its seeded random map ([`metrics::random_map`], seed `request.seed`), spread over the
    /// channels like the class activation maps, so that it shows and evaluates like the others.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] with no input or a class out of range; as [`Explainer::explain`].
    pub fn explain(&mut self, request: &ExplainRequest) -> Result<Explained> {
        let current = self.current.as_ref().ok_or_else(no_input)?;
        let explanation = match &request.method {
            Some(method) => self.explainer.explain(&current.acts, request.target, request.start, method)?,
            None => self.random_explanation(request)?,
        };
        let map =
            crate::heatmap::map_in_cells(&explanation.relevance, self.model.input(), request.quantize, request.cell)?;
        let batchnorm = match &request.method {
            Some(Method::Lrp { composite, .. }) => Some(batchnorm_note(&self.model, composite)),
            _ => None,
        };
        Ok(Explained { explanation, map, batchnorm })
    }

    /// The random ranking as an explanation: no start relevance, not conserving.
    fn random_explanation(&self, request: &ExplainRequest) -> Result<Explanation> {
        let input = self.model.input();
        let map = metrics::random_map(input.height, input.width, request.seed);
        let relevance = crate::lrp::cam::spread_over_channels(&map, &input.shape, input.channel_axis())?;
        Ok(Explanation {
            target: self.resolve_target(request.target)?,
            start_relevance: 0.0,
            relevance,
            ledger: vec![],
            blocks: vec![],
            conserves: false,
        })
    }

    /// The insertion and deletion curves of the current photo for `request`'s ranking (the
    /// paper's protocol, [`crate::metrics`]). `progress(done, total)` is called after every
    /// group of forward passes; setting `cancel` stops at the next group with
    /// [`Error::Cancelled`].
    ///
    /// # Errors
    /// [`Error::InvalidParam`] with no photo (a tensor set with [`Self::set_input`] has no pixels
    /// to mask) or a class out of range; as [`Self::explain`] and
    /// [`metrics::insertion_deletion`].
    pub fn evaluate(
        &mut self,
        request: &ExplainRequest,
        cfg: &InsDelConfig,
        progress: Option<&Progress>,
        cancel: Option<&AtomicBool>,
    ) -> Result<Evaluation> {
        cfg.validate()?;
        let current = self.current()?;
        let pixels = current.pixels.as_ref().ok_or_else(|| {
            Error::param("input", "evaluation masks the image's pixels: set an image, not a preprocessed tensor")
        })?;
        let masker = Masker::new(&self.model, pixels, &self.preprocess)?;
        let target = self.resolve_target(request.target)?;
        let probability = current.acts.probabilities()[target];
        // cells are a display choice: the ranking stays per pixel, as in the paper's protocol
        let ranking = ExplainRequest { target: Target::Class(target), cell: 1, ..request.clone() };
        let (map, explain_time) = timed(|| self.ranking(&ranking))?;
        let mut runner = Runner::new(&self.model).with_threads(self.threads);
        if let Some(plan) = &self.batch {
            runner = runner.with_batch(plan);
        }
        if let Some(p) = progress {
            runner = runner.with_progress(p);
        }
        if let Some(c) = cancel {
            runner = runner.with_cancel(c);
        }
        let (curves, curves_time) = timed(|| metrics::insertion_deletion(&masker, &runner, &map, target, cfg))?;
        let input = self.model.input();
        Ok(Evaluation { target, probability, curves, pixels: input.height * input.width, explain_time, curves_time })
    }

    /// The ranking map of an evaluation: the explanation's map (for the random ranking, the
    /// seeded random map itself, not its sum over channels of thirds, which could tie).
    fn ranking(&mut self, request: &ExplainRequest) -> Result<Array2<f32>> {
        match request.method {
            None => {
                let input = self.model.input();
                Ok(metrics::random_map(input.height, input.width, request.seed))
            }
            Some(_) => Ok(self.explain(request)?.map),
        }
    }
}
