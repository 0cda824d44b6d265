// A build of our engine in a dedicated worker, for bench.js: the threaded build must run off the page's
// main thread (its calling thread waits for the pool, as in the page's own worker), so it is timed here,
// inside the worker, with the same calls bench.js makes on the main thread for the other builds.
//
// It speaks the page's protocol (www/protocol.js, served under /www/ by bench.mjs), where its requests
// are documented: init {url, threads}, load {bytes}, forward {x}, explain {options}, memory.

import { answerRequests } from '/www/protocol.js';

let mod = null;
let wasm = null;
let ex = null;

const handlers = {
  async init({ url, threads }) {
    const t0 = performance.now();
    mod = await import(url);
    wasm = await mod.default();
    let pool = 1;
    if (threads > 0) {
      await mod.initThreadPool(threads);
      pool = mod.useThreadPool();
    }
    return { ms: performance.now() - t0, threads: pool };
  },
  load({ bytes }) {
    ex?.free();
    ex = null;
    const t0 = performance.now();
    ex = new mod.Explainer(bytes);
    return { ms: performance.now() - t0, info: ex.info() };
  },
  forward({ x }) {
    const t0 = performance.now();
    const prediction = ex.setInput(x);
    return { ms: performance.now() - t0, prediction };
  },
  explain({ options }) {
    const t0 = performance.now();
    const summary = ex.explain(options);
    return { ms: performance.now() - t0, summary };
  },
  memory() {
    return { bytes: wasm.memory.buffer.byteLength };
  },
};

answerRequests(self, handlers);
