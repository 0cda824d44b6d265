// The engine's worker: owns the WebAssembly module and the one Explainer handle.
//
// It answers the requests documented in protocol.js (the envelope `{id, type, ...}` →
// `{id, status: progress|complete|error, ...}`), with the handlers below, one per request type.
// `init` also hands the page the engine's `capabilities()`: the variants, composites, defaults and
// limits the page builds its controls from.

// The engine comes in three builds (./build.sh wasm): pkg/ with SIMD128, pkg-relaxed/ with SIMD128 and
// relaxed SIMD (faster matrix kernels: f32x4.relaxed_madd), and pkg-threads/: relaxed SIMD plus shared
// memory and a pool of Web Workers, on which an explanation computes the denominators of its layers
// while its relevance sweep runs. The first one this browser, this page and this server allow is
// loaded: pkg-threads/ needs relaxed SIMD and a cross-origin isolated page (the server sends COOP and
// COEP headers) on a machine with more than one core; pkg-relaxed/ needs relaxed SIMD; pkg/ runs
// everywhere with SIMD128.

import { readBuilds } from './builds.js';
import { answerRequests, errorMessage as message, transferring } from './protocol.js';

let Explainer = null;
let loaded = null; // the answer to `init`

let explainer = null;
let ready = null;
let memory = null; // the engine's WebAssembly.Memory

// A module using one SIMD128 instruction: the engine is built with +simd128.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

// A module using one relaxed-SIMD instruction (validates only where relaxed SIMD is supported):
//   (module (func (result v128)
//     (f32x4.relaxed_madd (i8x16.splat (i32.const 0)) (i8x16.splat (i32.const 0)) (i8x16.splat (i32.const 0)))))
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, // magic, version 1
  1, 5, 1, 96, 0, 1, 123, // type section: one type, func [] → [v128]
  3, 2, 1, 0, // function section: one function of type 0
  10, 19, 1, 17, 0, // code section: one body of 17 bytes, no locals
  65, 0, 253, 15, // i32.const 0, i8x16.splat
  65, 0, 253, 15,
  65, 0, 253, 15,
  253, 133, 2, // f32x4.relaxed_madd (0xfd, LEB128 0x105)
  11, // end
]);

/** Whether the server has `url` (HEAD; a server that refuses HEAD counts as not having it). */
async function exists(url) {
  try {
    const res = await fetch(url, { method: 'HEAD', cache: 'no-store' });
    return res.ok;
  } catch {
    return false;
  }
}

/** Imports one build of the engine and instantiates its wasm (and, for pkg-threads, starts its pool). */
async function load(engine) {
  const mod =
    engine === 'pkg-threads'
      ? await import('./pkg-threads/resnet_lrp.js')
      : engine === 'pkg-relaxed'
        ? await import('./pkg-relaxed/resnet_lrp.js')
        : await import('./pkg/resnet_lrp.js');
  memory = (await mod.default()).memory;
  // the page builds its controls from these: a build without them is older than the page
  if (typeof mod.capabilities !== 'function') throw new Error(`${engine}/ has no capabilities(): rebuild it with ./build.sh wasm`);
  const capabilities = mod.capabilities();
  let threads = 1;
  if (engine === 'pkg-threads') {
    await mod.initThreadPool(poolSize());
    threads = mod.useThreadPool();
  }
  Explainer = mod.Explainer;
  loaded = {
    simd: true,
    relaxed: engine !== 'pkg',
    engine,
    threads,
    relaxedSupported: WebAssembly.validate(RELAXED_PROBE),
    isolated: self.crossOriginIsolated === true,
    capabilities,
  };
}

/**
 * Workers in the pool of the threaded engine: two (an explanation computes its denominators on the pool
 * while its relevance sweep runs in this worker), or one where the machine has one core (and then no
 * pool: see threadsPossible). `?threads=N` on the page's address asks for N, at most 16 (1: no pool).
 */
function poolSize() {
  const asked = Number(new URL(self.location.href).searchParams.get('threads'));
  if (Number.isInteger(asked) && asked > 0) return Math.min(asked, 16);
  return Math.min(navigator.hardwareConcurrency || 1, 2);
}

/** Whether the threaded engine can run here: shared memory needs a cross-origin isolated page. */
function threadsPossible() {
  return self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' && poolSize() > 1;
}

/** Whether `engine` is built and ready on this server; the ones still pending are noted in `coming`. */
async function available(engine, status, coming) {
  if (status.pending.includes(engine)) {
    coming.push(engine);
    return false;
  }
  return exists(new URL(`./${engine}/resnet_lrp.js`, import.meta.url));
}

async function start() {
  if (!WebAssembly.validate(SIMD_PROBE)) {
    throw new Error(
      'this browser does not support WebAssembly SIMD (Chrome/Edge ≥ 91, Firefox ≥ 89, Safari ≥ 16.4 do)',
    );
  }
  // the builds `./build.sh serve` has not finished must not be loaded, even if an earlier one is there
  const status = (await readBuilds()) ?? { state: 'done', pending: [] };
  const coming = []; // faster builds this browser would use, still being built
  await pick(status, coming);
  loaded.coming = coming;
  loaded.buildState = status.state;
}

/** Loads the first build this browser, this page and this server allow (see the top of this file). */
async function pick(status, coming) {
  const relaxed = WebAssembly.validate(RELAXED_PROBE);
  if (relaxed && threadsPossible() && (await available('pkg-threads', status, coming))) {
    try {
      await load('pkg-threads');
      return;
    } catch (e) {
      console.warn(`the threaded engine (pkg-threads/) could not be started, using one thread: ${message(e)}`);
    }
  }
  if (relaxed && (await available('pkg-relaxed', status, coming))) {
    try {
      await load('pkg-relaxed');
      return;
    } catch (e) {
      console.warn(`the relaxed-SIMD engine (pkg-relaxed/) could not be loaded, using pkg/: ${message(e)}`);
    }
  }
  try {
    await load('pkg');
  } catch (e) {
    throw new Error(`could not load the engine (pkg/resnet_lrp_bg.wasm): ${message(e)}`);
  }
}

function bytesOf(a) {
  return a instanceof ArrayBuffer ? new Uint8Array(a) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function need() {
  if (!explainer) throw new Error('no model loaded');
  return explainer;
}

const handlers = {
  async init() {
    return { ...loaded };
  },

  async load({ bytes, side = [], preprocess }, progress) {
    progress({ stage: 'compiling the model' });
    // side: the files of its external data ({name, bytes}), dropped or picked with the model
    const next = side.length
      ? Explainer.withExternalData(bytesOf(bytes), side.map((f) => f.name), side.map((f) => bytesOf(f.bytes)))
      : new Explainer(bytesOf(bytes));
    try {
      if (preprocess) next.setPreprocess(preprocess); // none: the file's own, else ImageNet's
    } catch (e) {
      next.free();
      throw e;
    }
    if (explainer) explainer.free();
    explainer = next;
    return { info: explainer.info() };
  },

  async preprocess({ preprocess }) {
    need().setPreprocess(preprocess);
    return {};
  },

  async image({ rgba, width, height }, progress) {
    progress({ stage: 'running the model' });
    return { prediction: need().setImage(bytesOf(rgba), width, height) };
  },

  async input({ data }, progress) {
    progress({ stage: 'running the model' });
    return { prediction: need().setInput(data instanceof Float32Array ? data : new Float32Array(data)) };
  },

  async explain({ options }, progress) {
    progress({ stage: 'propagating relevance' });
    const ex = need();
    const summary = ex.explain(options);
    const map = ex.map();
    const relevance = ex.relevance();
    return transferring({ summary, map, relevance }, [map.buffer, relevance.buffer]);
  },

  async explainMany({ list }, progress) {
    const ex = need();
    list.forEach(({ key, options }, i) => {
      const summary = ex.explain(options);
      const map = ex.map();
      progress({ key, index: i, total: list.length, summary, map }, [map.buffer]);
    });
    return { count: list.length };
  },

  async evaluate({ options }, progress) {
    const ex = need();
    // called synchronously from inside the engine after every forward pass: the page gets these
    // messages while the evaluation is still running
    const evaluation = ex.evaluate(options, (done, total) => progress({ done, total }));
    return { evaluation };
  },

  async memory() {
    return { bytes: memory.buffer.byteLength };
  },

  async crash() {
    setTimeout(() => {
      throw new Error('RuntimeError: unreachable (deliberate crash for testing recovery)');
    });
    return {};
  },
};

answerRequests(self, handlers, {
  // the first request loads the engine; a failure is that request's error, and a later one retries
  before() {
    ready ??= start().catch((e) => {
      ready = null;
      throw e;
    });
    return ready;
  },
});
