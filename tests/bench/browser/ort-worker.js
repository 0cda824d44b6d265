// onnxruntime-web with a thread pool, for bench.js: its wasm is initialised once per JS realm with the
// number of threads it first sees, so the multi-threaded configuration gets a realm of its own, this
// dedicated worker, next to the one-thread onnxruntime on the page's main thread. Its threads need shared
// memory (a cross-origin isolated page, as for our threaded build). Timed here, inside the worker, as
// engine-worker.js times our threaded build.
//
// It speaks the page's protocol (www/protocol.js, served under /www/ by bench.mjs), where its requests
// are documented: init {url, wasmPaths, threads}, load {bytes}, forward {x, shape}, memory.

import { answerRequests } from '/www/protocol.js';
import { loadingEngine, memoryOf } from './wasm-memories.js';

let ort = null;
let session = null;

const handlers = {
  async init({ url, wasmPaths, threads }) {
    // onnxruntime silently falls back to one thread without shared memory: refuse instead
    if (threads > 1 && !self.crossOriginIsolated) throw new Error('not cross-origin isolated: no shared memory for threads');
    loadingEngine('ort');
    const t0 = performance.now();
    ort = await import(url);
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = wasmPaths;
    return { ms: performance.now() - t0, version: ort.env.versions?.web ?? null };
  },
  async load({ bytes }) {
    if (session) await session.release();
    session = null;
    const t0 = performance.now();
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    // numThreads as onnxruntime applied it
    return { ms: performance.now() - t0, inputNames: session.inputNames, outputNames: session.outputNames, threads: ort.env.wasm.numThreads };
  },
  async forward({ x, shape }) {
    const tensor = new ort.Tensor('float32', x, shape);
    const t0 = performance.now();
    const result = await session.run({ [session.inputNames[0]]: tensor });
    const ms = performance.now() - t0;
    return { ms, output: result[session.outputNames[0]].data };
  },
  memory() {
    return { bytes: memoryOf('ort') };
  },
};

answerRequests(self, handlers);
