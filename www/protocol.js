// The one protocol between a page and an engine worker, documented here once. The page's worker
// (worker.js) and the benchmark's workers (tests/bench/browser/engine-worker.js, ort-worker.js) answer with
// `answerRequests`; the page and the benchmark ask with EngineClient (engine.js).
//
// Envelope: the page posts `{id, type, ...payload}`; the worker answers with any number of
// `{id, status: "progress", ...}` and then exactly one `{id, status: "complete", ...result}` or
// `{id, status: "error", error, trap}`. `trap: true` means the WebAssembly instance hit a trap (a Rust
// panic or `unreachable`): its state can no longer be trusted, and the page replaces the worker.
//
// Requests of the page's worker (worker.js):
//   init                                     → {simd, relaxed, engine, threads, relaxedSupported, isolated,
//                                              capabilities}: the build that was loaded (`engine`:
//                                              "pkg-threads" or "pkg-relaxed" with relaxed: true, else
//                                              "pkg"), the size of its worker pool (1: none), whether this
//                                              browser validates relaxed SIMD, whether the page is
//                                              cross-origin isolated, and the engine's `capabilities()`:
//                                              {version, methods, variants, composites, defaults,
//                                              preprocess, limits: {maxModelBytes}, threads}
//   load     {bytes, side?, preprocess}      → {info}            (keeps the previous model on error; preprocess
//                                                                 null: the file's metadata, else ImageNet's;
//                                                                 side: [{name, bytes}], external data files)
//   preprocess {preprocess}                  → {}                (the current model's normalisation)
//   image    {rgba, width, height}           → {prediction}
//   input    {data}                          → {prediction}      (a preprocessed tensor)
//   explain  {options}                       → {summary, map, relevance}
//   explainMany {list: [{key, options}]}     → progress {key, index, total, summary, map} per item, then {count}
//   evaluate {options}                       → progress {done, total} after every forward pass, then
//                                              {evaluation}: the insertion and deletion curves of the
//                                              current photo (`Explainer.evaluate`); needs a photo
//                                              (`image`), not a tensor (`input`); leaves the last
//                                              explanation as it was
//   memory                                   → {bytes}: the size of the engine's wasm memory (it never
//                                              shrinks: the peak so far; read by the benchmark)
//   crash                                    → the worker throws outside any request (used by the
//                                              page's tests to exercise recovery)
// Progress of load, image, input and explain: {stage} (a few words for the status line).
//
// Requests of the benchmark's worker (engine-worker.js), every answer timed inside the worker (`ms`):
//   init     {url, threads}                  → {ms, threads}: import that build, start a pool of `threads`
//                                              workers (0: none)
//   load     {bytes}                         → {ms, info}        (a new Explainer; the previous one is freed)
//   forward  {x}                             → {ms, prediction}  (setInput)
//   explain  {options}                       → {ms, summary}
//   memory                                   → {bytes}: the engine's memory (it never shrinks: the peak)
// and of its onnxruntime-web worker (ort-worker.js), timed the same way:
//   init     {url, wasmPaths, threads}       → {ms, version}: import onnxruntime-web with numThreads = threads
//   load     {bytes}                         → {ms, inputNames, outputNames, threads} (a new session; threads:
//                                              numThreads as onnxruntime applied it)
//   forward  {x, shape}                      → {ms, output}      (session.run; output: the first output's data)
//   memory                                   → {bytes}: onnxruntime's wasm memory

/** Request names of the page's worker. */
export const REQUESTS = Object.freeze({
  init: 'init',
  load: 'load',
  preprocess: 'preprocess',
  image: 'image',
  input: 'input',
  explain: 'explain',
  explainMany: 'explainMany',
  evaluate: 'evaluate',
  memory: 'memory',
  crash: 'crash',
});

export const STATUS = Object.freeze({ progress: 'progress', complete: 'complete', error: 'error' });

/** The text of anything thrown (wasm-bindgen throws strings as well as Errors). */
export function errorMessage(e) {
  if (e instanceof Error) return e.message || String(e);
  return String(e);
}

/** Whether an error means the WebAssembly instance trapped (and cannot be trusted any more). */
export function isTrap(e) {
  if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) return true;
  const m = `${e?.name ?? ''} ${errorMessage(e)}`;
  return /unreachable|RuntimeError|memory access out of bounds/i.test(m);
}

/** Whether an error answer reports a trap (older workers only said so in the text). */
export function isTrapAnswer(msg) {
  return Boolean(msg.trap) || /unreachable|RuntimeError/.test(msg.error);
}

/**
 * A handler's answer that hands buffers over instead of copying them: `{result, transfer}`. A handler
 * may also return a plain object, which is posted as it is.
 */
const TRANSFER = Symbol('transferring');
export function transferring(result, transfer) {
  return { [TRANSFER]: true, result, transfer };
}

/**
 * Makes `scope` (a worker's global) answer requests with `handlers[type](payload, progress)`.
 * `before()` runs ahead of every handler (e.g. loading the engine once); a failure there is that
 * request's error. `progress(data, transfer)` posts a progress message of the request.
 */
export function answerRequests(scope, handlers, { before } = {}) {
  scope.onmessage = async (event) => {
    const { id, type, ...payload } = event.data;
    const post = (msg, transfer = []) => scope.postMessage({ id, ...msg }, transfer);
    const progress = (data, transfer = []) => post({ status: STATUS.progress, ...data }, transfer);
    try {
      if (before) await before(type);
      const handler = Object.hasOwn(handlers, type) ? handlers[type] : null;
      if (!handler) throw new Error(`unknown request \`${type}\``);
      const out = await handler(payload, progress);
      if (out?.[TRANSFER]) post({ status: STATUS.complete, ...out.result }, out.transfer);
      else post({ status: STATUS.complete, ...out });
    } catch (e) {
      post({ status: STATUS.error, error: errorMessage(e), trap: isTrap(e) });
    }
  };
}
