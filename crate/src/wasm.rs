//! The wasm boundary: the only file that knows about JavaScript.
//!
//! One opaque handle, [`WasmExplainer`], owns a [`Session`]; JavaScript gets small records (via
//! serde-wasm-bindgen) and relevance as `Float32Array`s. Everything the page can ask is parsed by
//! [`crate::request`] and answered by [`Session`]: nothing here decides what is computed. Every
//! error is a JavaScript `Error` with the same text as the native one; nothing here panics on
//! user input.

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::external::SideFiles;
use crate::lrp::{BlockEntry, LedgerEntry};
use crate::metrics::Curve;
use crate::request::{self, ExplainOptions, ProtocolOptions, EVAL_QUANTIZE};
use crate::session::Session;
use crate::{Error, Preprocess};

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

/// What this engine offers (`request::capabilities`): `{version, methods, variants, composites,
/// defaults, preprocess, limits: {maxModelBytes}, threads}`. The page builds its lists and
/// limits from it instead of repeating them.
#[wasm_bindgen(unchecked_return_type = "Capabilities")]
pub fn capabilities() -> Result<JsValue, JsError> {
    to_js(&request::capabilities())
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

// The types of the options and results below, for the generated `.d.ts` (the methods name them
// instead of `any`). They follow the serde records of this file and of `request`; the package's
// end-to-end test checks what the engine returns against them.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = include_str!("wasm/types.d.ts");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo<'a> {
    input: &'a crate::InputSpec,
    num_classes: usize,
    /// BatchNorm layers the file keeps apart from its convolutions (0: none, or folded at export).
    batchnorm_kept: usize,
    layers: Vec<LayerInfo<'a>>,
    /// The preprocessing in use (the file's own until `setPreprocess`, else ImageNet's).
    preprocess: &'a Preprocess,
    /// What the file says about itself: `{preprocess, resize, classes}`, each null when absent.
    metadata: &'a crate::metadata::ModelMetadata,
    /// Each residual addition: how its shortcut was identified and the split of every variant.
    residuals: Vec<crate::lrp::ResidualInfo>,
    /// Each squeeze-excitation gate (a constant scale of its branch for LRP).
    gates: Vec<crate::lrp::GateInfo>,
}

#[derive(Serialize)]
struct LayerInfo<'a> {
    name: &'a str,
    kind: &'static str,
    shape: &'a [usize],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExplainSummary<'a> {
    target: usize,
    start_relevance: f32,
    input_relevance_sum: f64,
    /// `null` for the baselines (only LRP is meant to conserve).
    conservation_error: Option<f64>,
    ledger: &'a [LedgerEntry],
    blocks: &'a [BlockEntry],
    width: usize,
    height: usize,
    /// What the composite did with the model's BatchNorm (LRP only).
    batchnorm: Option<&'a str>,
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
struct CurveOut<'a> {
    auc: f64,
    probabilities: &'a [f32],
    /// Fraction of the pixels shown in every image.
    kept: Vec<f32>,
}

impl<'a> CurveOut<'a> {
    fn new(c: &'a Curve, pixels: usize) -> Self {
        CurveOut {
            auc: c.auc,
            probabilities: &c.probabilities,
            kept: c.kept.iter().map(|&k| k as f32 / pixels as f32).collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EvaluationOut<'a> {
    target: usize,
    probability: f32,
    insertion: CurveOut<'a>,
    deletion: CurveOut<'a>,
    id: f64,
    forward_passes: usize,
}

/// A loaded model plus the current image and the last explanation.
#[wasm_bindgen(js_name = Explainer)]
pub struct WasmExplainer {
    session: Session,
    relevance: Option<ArrayD<f32>>,
    map: Option<Vec<f32>>,
}

#[wasm_bindgen(js_class = Explainer)]
impl WasmExplainer {
    /// Loads an ONNX model from its bytes (copied into the engine's memory, and freed there as
    /// soon as they are decoded).
    #[wasm_bindgen(constructor)]
    pub fn new(onnx: Vec<u8>) -> Result<WasmExplainer, JsError> {
        let mut session = Session::from_onnx_owned(onnx, &mut SideFiles::none()).map_err(js)?;
        session.set_parallel(POOL.load(std::sync::atomic::Ordering::Relaxed));
        Ok(WasmExplainer { session, relevance: None, map: None })
    }

    /// Loads an ONNX model whose weights are (partly) in side files (`model.onnx.data`, as torch's
    /// dynamo exporter writes them): `names[k]` is the file name of `files[k]` (a `Uint8Array`),
    /// as the model's tensors name it. A file the model needs and that is not given is an error
    /// naming it; the size limit applies to the model and its side files together.
    #[wasm_bindgen(js_name = withExternalData)]
    pub fn with_external_data(
        onnx: Vec<u8>,
        names: Vec<String>,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] files: js_sys::Array,
    ) -> Result<WasmExplainer, JsError> {
        if names.len() as u32 != files.length() {
            return Err(JsError::new(&format!("{} names for {} side files", names.len(), files.length())));
        }
        let bytes = files.iter().map(|f| js_sys::Uint8Array::new(&f).to_vec());
        let mut side = SideFiles::from_files(names.into_iter().zip(bytes));
        let mut session = Session::from_onnx_owned(onnx, &mut side).map_err(js)?;
        session.set_parallel(POOL.load(std::sync::atomic::Ordering::Relaxed));
        Ok(WasmExplainer { session, relevance: None, map: None })
    }

    /// Whether explanations compute their denominators on a second thread of the pool (on by
    /// default once `useThreadPool` has been called; without a pool this does nothing).
    #[wasm_bindgen(js_name = setParallel)]
    pub fn set_parallel(&mut self, on: bool) {
        self.session.set_parallel(on && POOL.load(std::sync::atomic::Ordering::Relaxed));
    }

    /// `{input: {name, shape, layout, channels, height, width}, numClasses, batchnormKept, layers: [{name, kind,
    /// shape}], residuals: [{node, shortcut_input, shortcut, main, projection, splits: [[variant, split]]}],
    /// gates: [{node, branch, gate}], preprocess: {scale, mean, std, bgr}, metadata: {preprocess, resize,
    /// classes}}` (`metadata`: what the file carries, see [`crate::metadata`]; `preprocess`: what photos
    /// go through now).
    #[wasm_bindgen(unchecked_return_type = "ModelInfo")]
    pub fn info(&self) -> Result<JsValue, JsError> {
        let model = self.session.model();
        let g = model.graph();
        to_js(&ModelInfo {
            input: model.input(),
            num_classes: g.num_classes(),
            batchnorm_kept: model.raw_batchnorm_graph().map_or(0, |g| g.batchnorms()),
            preprocess: self.session.preprocess(),
            metadata: model.metadata(),
            layers: g
                .nodes
                .iter()
                .map(|n| LayerInfo { name: &n.name, kind: n.layer.kind(), shape: &n.shape })
                .collect(),
            residuals: crate::lrp::residuals(g),
            gates: crate::lrp::gates(g),
        })
    }

    /// Sets the preprocessing `{scale, mean: [3], std: [3], bgr}` used by [`Self::set_image`].
    #[wasm_bindgen(js_name = setPreprocess)]
    pub fn set_preprocess(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Preprocess")] p: JsValue,
    ) -> Result<(), JsError> {
        let p: Preprocess =
            serde_wasm_bindgen::from_value(p).map_err(|e| JsError::new(&format!("invalid preprocessing: {e}")))?;
        self.session.set_preprocess(p).map_err(js)
    }

    /// Runs the model on an RGBA image (`width × height × 4` bytes); returns
    /// `{logits, probabilities, top: [{class, probability}] (5)}`.
    #[wasm_bindgen(js_name = setImage)]
    #[wasm_bindgen(unchecked_return_type = "Prediction")]
    pub fn set_image(&mut self, rgba: &[u8], width: usize, height: usize) -> Result<JsValue, JsError> {
        to_js(&self.session.set_image(rgba, width, height).map_err(js)?)
    }

    /// Runs the model on an already preprocessed tensor in the model's own input layout.
    #[wasm_bindgen(js_name = setInput)]
    #[wasm_bindgen(unchecked_return_type = "Prediction")]
    pub fn set_input(&mut self, data: &[f32]) -> Result<JsValue, JsError> {
        let shape = &self.session.model().input().shape;
        let x = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec())
            .map_err(|_| js(Error::InvalidInput(format!("{} values for an input of shape {shape:?}", data.len()))))?;
        to_js(&self.session.set_input(x).map_err(js)?)
    }

    /// Explains one class of the last image. Returns the summary
    /// `{target, startRelevance, inputRelevanceSum, conservationError, ledger, blocks, width, height}`;
    /// the maps are then read with [`Self::relevance`] and [`Self::map`].
    #[wasm_bindgen(unchecked_return_type = "ExplainSummary")]
    pub fn explain(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "ExplainOptions | undefined")] opts: JsValue,
    ) -> Result<JsValue, JsError> {
        let o: ExplainOptions = options(&opts)?;
        let request = o.request(self.session.preprocess().bounds(), 0, 0).map_err(js)?;
        let out = self.session.explain(&request).map_err(js)?;
        let e = &out.explanation;
        let (height, width) = out.map.dim();
        let summary = to_js(&ExplainSummary {
            target: e.target,
            start_relevance: e.start_relevance,
            input_relevance_sum: e.input_relevance_sum(),
            conservation_error: e.conservation(),
            ledger: &e.ledger,
            blocks: &e.blocks,
            width,
            height,
            batchnorm: out.batchnorm.as_deref(),
        })?;
        self.map = Some(out.map.iter().copied().collect());
        self.relevance = Some(out.explanation.relevance);
        Ok(summary)
    }

    /// Insertion and deletion curves of one explanation of the last image (the paper's
    /// protocol, see [`crate::metrics`]): options as [`Self::explain`] plus `method: "random"`,
    /// `quantize` (default 8), `block` (1), `step` (500) and `seed` (random ranking).
    /// `progress(done, total)` is called after every forward pass; if it returns `false` the
    /// evaluation stops with an error "cancelled". Returns
    /// `{target, probability, insertion: {auc, probabilities, kept}, deletion, id, forwardPasses}`,
    /// `kept` being the fraction of pixels shown. Leaves the last explanation untouched.
    #[wasm_bindgen(unchecked_return_type = "Evaluation")]
    pub fn evaluate(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "EvaluateOptions | undefined")] opts: JsValue,
        #[wasm_bindgen(unchecked_param_type = "((done: number, total: number) => boolean | void) | null")]
        progress: Option<js_sys::Function>,
    ) -> Result<JsValue, JsError> {
        let o: ExplainOptions = options(&opts)?;
        let protocol: ProtocolOptions = options(&opts)?;
        let request = o.request(self.session.preprocess().bounds(), protocol.seed, EVAL_QUANTIZE).map_err(js)?;
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let report = |done: usize, total: usize| {
            if let Some(f) = &progress {
                // a throwing progress callback must not stop the evaluation; `false` does
                let answer = f.call2(&JsValue::NULL, &JsValue::from(done as u32), &JsValue::from(total as u32));
                if answer.is_ok_and(|v| v == JsValue::FALSE) {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        };
        let r = self.session.evaluate(&request, &protocol.config(), Some(&report), Some(&cancel)).map_err(js)?;
        to_js(&EvaluationOut {
            target: r.target,
            probability: r.probability,
            id: r.curves.id(),
            forward_passes: r.curves.forward_passes(),
            insertion: CurveOut::new(&r.curves.insertion, r.pixels),
            deletion: CurveOut::new(&r.curves.deletion, r.pixels),
        })
    }

    /// The last preprocessed input tensor, flattened in the model input's layout.
    pub fn input(&self) -> Result<Vec<f32>, JsError> {
        self.session.input().map(|x| x.iter().copied().collect()).ok_or_else(|| JsError::new("no image yet"))
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
