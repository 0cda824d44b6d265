//! The wasm boundary: the only file that knows about JavaScript.
//!
//! One opaque handle, [`WasmExplainer`], owns the model, the explainer and the activations
//! of the last forward pass; JavaScript gets small records (via serde-wasm-bindgen) and
//! relevance as `Float32Array`s. Every error is a JavaScript `Error` with the same text as
//! the native one; nothing here panics on user input.

use ndarray::{Array3, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::metrics::{self, Masker, Runner};
use crate::options::{ExplainOptions, ProtocolOptions};
use crate::{heatmap, Activations, Error, Explainer, Method, Model, Preprocess, Start, Target};

fn js(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

/// Installs the panic hook so that a bug shows its message in the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Starts a pool of `n` Web Workers sharing this module's memory (threaded build only). JavaScript
/// awaits the returned promise, then calls [`use_thread_pool`].
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Set once the pool started by `initThreadPool` is up: explainers made after that use it.
static POOL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets explanations use the pool started by `initThreadPool` (their denominators are then
/// computed on a second thread, ahead of the relevance sweep) and returns its size. Fails on a
/// build without threads; until it is called, everything runs on the calling thread.
#[wasm_bindgen(js_name = useThreadPool)]
pub fn use_thread_pool() -> Result<usize, JsError> {
    #[cfg(feature = "threads")]
    {
        POOL.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(rayon::current_num_threads())
    }
    #[cfg(not(feature = "threads"))]
    Err(JsError::new("this build of the engine has no thread pool"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo<'a> {
    input: &'a crate::InputSpec,
    num_classes: usize,
    layers: Vec<LayerInfo<'a>>,
}

#[derive(Serialize)]
struct LayerInfo<'a> {
    name: &'a str,
    kind: &'static str,
    shape: &'a [usize],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Prediction {
    logits: Vec<f32>,
    probabilities: Vec<f32>,
    top: Vec<TopClass>,
}

#[derive(Serialize)]
struct TopClass {
    class: usize,
    probability: f32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExplainSummary {
    target: usize,
    start_relevance: f32,
    input_relevance_sum: f64,
    conservation_error: f64,
    ledger: Vec<crate::lrp::LedgerEntry>,
    blocks: Vec<crate::lrp::BlockEntry>,
    width: usize,
    height: usize,
}

fn options<T: Default + for<'de> Deserialize<'de>>(v: &JsValue) -> Result<T, JsError> {
    if v.is_undefined() || v.is_null() {
        Ok(T::default())
    } else {
        serde_wasm_bindgen::from_value(v.clone()).map_err(|e| JsError::new(&format!("invalid options: {e}")))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CurveOut {
    auc: f64,
    probabilities: Vec<f32>,
    /// Fraction of the pixels shown in every image.
    kept: Vec<f32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Evaluation {
    target: usize,
    probability: f32,
    insertion: CurveOut,
    deletion: CurveOut,
    id: f64,
    forward_passes: usize,
}

/// A loaded model plus the activations of the last image.
#[wasm_bindgen(js_name = Explainer)]
pub struct WasmExplainer {
    model: Model,
    explainer: Explainer,
    acts: Option<Activations>,
    preprocess: Preprocess,
    pixels: Option<Array3<f32>>,
    input: Option<Vec<f32>>,
    relevance: Option<ArrayD<f32>>,
    map: Option<Vec<f32>>,
}

#[wasm_bindgen(js_class = Explainer)]
impl WasmExplainer {
    /// Loads an ONNX model from its bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(onnx: &[u8]) -> Result<WasmExplainer, JsError> {
        let model = Model::from_onnx_bytes(onnx).map_err(js)?;
        let mut explainer = model.explainer();
        explainer.set_parallel(POOL.load(std::sync::atomic::Ordering::Relaxed));
        Ok(WasmExplainer {
            model,
            explainer,
            acts: None,
            preprocess: Preprocess::default(),
            pixels: None,
            input: None,
            relevance: None,
            map: None,
        })
    }

    /// Whether explanations compute their denominators on a second thread of the pool (on by
    /// default once `useThreadPool` has been called; without a pool this does nothing).
    #[wasm_bindgen(js_name = setParallel)]
    pub fn set_parallel(&mut self, on: bool) {
        self.explainer.set_parallel(on && POOL.load(std::sync::atomic::Ordering::Relaxed));
    }

    /// `{input: {name, shape, layout, channels, height, width}, numClasses, layers: [{name, kind, shape}]}`.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let g = self.model.graph();
        to_js(&ModelInfo {
            input: self.model.input(),
            num_classes: g.num_classes(),
            layers: g
                .nodes
                .iter()
                .map(|n| LayerInfo { name: &n.name, kind: n.layer.kind(), shape: &n.shape })
                .collect(),
        })
    }

    /// Sets the preprocessing `{scale, mean: [3], std: [3], bgr}` used by [`Self::set_image`].
    #[wasm_bindgen(js_name = setPreprocess)]
    pub fn set_preprocess(&mut self, p: JsValue) -> Result<(), JsError> {
        let p: Preprocess =
            serde_wasm_bindgen::from_value(p).map_err(|e| JsError::new(&format!("invalid preprocessing: {e}")))?;
        p.validate().map_err(js)?;
        self.preprocess = p;
        Ok(())
    }

    /// Runs the model on an RGBA image (`width × height × 4` bytes); returns
    /// `{logits, probabilities, top: [{class, probability}] (5)}`.
    #[wasm_bindgen(js_name = setImage)]
    pub fn set_image(&mut self, rgba: &[u8], width: usize, height: usize) -> Result<JsValue, JsError> {
        let pixels = self.model.resize_rgba(rgba, width, height).map_err(js)?;
        let x = self.model.normalize(&pixels, &self.preprocess).map_err(js)?;
        let prediction = self.forward(x)?;
        self.pixels = Some(pixels);
        Ok(prediction)
    }

    /// Runs the model on an already preprocessed tensor in the model's own input layout.
    #[wasm_bindgen(js_name = setInput)]
    pub fn set_input(&mut self, data: &[f32]) -> Result<JsValue, JsError> {
        let shape = self.model.input().shape.clone();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), data.to_vec())
            .map_err(|_| js(Error::Shape(format!("{} values for an input of shape {shape:?}", data.len()))))?;
        self.forward(x)
    }

    fn forward(&mut self, x: ArrayD<f32>) -> Result<JsValue, JsError> {
        self.acts = None;
        self.pixels = None;
        self.input = Some(x.iter().copied().collect());
        let acts = self.explainer.forward(x).map_err(js)?;
        let p = Prediction {
            logits: acts.logits().to_vec(),
            probabilities: acts.probabilities().to_vec(),
            top: acts.top_k(5).into_iter().map(|(class, probability)| TopClass { class, probability }).collect(),
        };
        self.acts = Some(acts);
        to_js(&p)
    }

    /// Explains one class of the last image. Returns the summary
    /// `{target, startRelevance, inputRelevanceSum, conservationError, ledger, blocks, width, height}`;
    /// the maps are then read with [`Self::relevance`] and [`Self::map`].
    pub fn explain(&mut self, opts: JsValue) -> Result<JsValue, JsError> {
        let o: ExplainOptions = options(&opts)?;
        let acts = self.acts.as_ref().ok_or_else(|| JsError::new("no image: call setImage or setInput first"))?;
        let (target, start, method) = self.parse(&o)?;
        let e = self.explainer.explain(acts, target, start, &method).map_err(js)?;
        let mut map = heatmap::channel_sum(&e.relevance, self.model.input()).map_err(js)?;
        if let Some(levels) = o.quantize.filter(|&l| l > 1) {
            map = heatmap::heat_quantize(&map, levels);
        }
        let (height, width) = map.dim();
        let summary = ExplainSummary {
            target: e.target,
            start_relevance: e.start_relevance,
            input_relevance_sum: e.input_relevance_sum(),
            conservation_error: e.conservation_error(),
            ledger: e.ledger,
            blocks: e.blocks,
            width,
            height,
        };
        self.map = Some(map.iter().copied().collect());
        self.relevance = Some(e.relevance);
        to_js(&summary)
    }

    fn parse(&self, o: &ExplainOptions) -> Result<(Target, Start, Method), JsError> {
        Ok((o.target().map_err(js)?, o.start().map_err(js)?, o.method(self.preprocess.bounds()).map_err(js)?))
    }

    /// Insertion and deletion curves of one explanation of the last image (the paper's
    /// protocol, see [`crate::metrics`]): options as [`Self::explain`] plus `method: "random"`,
    /// `quantize` (default 8), `block` (1), `step` (500) and `seed` (random ranking).
    /// `progress(done, total)` is called after every forward pass. Returns
    /// `{target, probability, insertion: {auc, probabilities, kept}, deletion, id, forwardPasses}`,
    /// `kept` being the fraction of pixels shown. Leaves the last explanation untouched.
    pub fn evaluate(&mut self, opts: JsValue, progress: Option<js_sys::Function>) -> Result<JsValue, JsError> {
        let o: ExplainOptions = options(&opts)?;
        let protocol: ProtocolOptions = options(&opts)?;
        let acts = self.acts.as_ref().ok_or_else(|| JsError::new("no image: call setImage first"))?;
        let pixels = self
            .pixels
            .as_ref()
            .ok_or_else(|| JsError::new("evaluation masks the image's pixels: call setImage (not setInput) first"))?;
        let cfg = protocol.config();
        cfg.validate().map_err(js)?;
        let n = acts.probabilities().len();
        let target = match o.target().map_err(js)? {
            Target::Class(c) if c >= n => return Err(js(Error::param("target", format!("class {c} of {n}")))),
            Target::Class(c) => c,
            Target::Top1 => acts.top_k(1)[0].0,
        };
        let quantize = o.quantize.unwrap_or(8);
        let map = if o.is_random() {
            let inp = self.model.input();
            metrics::random_map(inp.height, inp.width, protocol.seed)
        } else {
            let (_, start, method) = self.parse(&o)?;
            let e = self.explainer.explain(acts, Target::Class(target), start, &method).map_err(js)?;
            metrics::ranking_map(&e.relevance, self.model.input(), quantize).map_err(js)?
        };
        let masker = Masker::new(&self.model, pixels, &self.preprocess).map_err(js)?;
        let report = |done: usize, total: usize| {
            if let Some(f) = &progress {
                // a throwing progress callback must not stop the evaluation
                let _ = f.call2(&JsValue::NULL, &JsValue::from(done as u32), &JsValue::from(total as u32));
            }
        };
        let runner = Runner::new(&self.model).with_progress(&report);
        let r = metrics::insertion_deletion(&masker, &runner, &map, target, &cfg).map_err(js)?;
        let pixels_total = (self.model.input().height * self.model.input().width) as f32;
        let curve = |c: metrics::Curve| CurveOut {
            auc: c.auc,
            probabilities: c.probabilities,
            kept: c.kept.iter().map(|&k| k as f32 / pixels_total).collect(),
        };
        let out = Evaluation {
            target,
            probability: acts.probabilities()[target],
            id: r.id(),
            forward_passes: r.forward_passes(),
            insertion: curve(r.insertion),
            deletion: curve(r.deletion),
        };
        to_js(&out)
    }

    /// The last preprocessed input tensor, flattened in the model input's layout.
    pub fn input(&self) -> Result<Vec<f32>, JsError> {
        self.input.clone().ok_or_else(|| JsError::new("no image yet"))
    }

    /// The last explanation's input relevance, flattened in the model input's layout.
    pub fn relevance(&self) -> Result<Vec<f32>, JsError> {
        self.relevance.as_ref().map(|r| r.iter().copied().collect()).ok_or_else(|| JsError::new("no explanation yet"))
    }

    /// The last explanation's channel-summed `height × width` map (row-major).
    pub fn map(&self) -> Result<Vec<f32>, JsError> {
        self.map.clone().ok_or_else(|| JsError::new("no explanation yet"))
    }
}
