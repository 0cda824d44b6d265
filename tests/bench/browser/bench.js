// The benchmark page's module. Loads one or more builds of our engine and onnxruntime-web and times
// them on the same ONNX bytes and the same input tensor, interleaved run by run. The single-thread
// builds and onnxruntime (one thread) run on the page's main thread; the threaded build runs in
// engine-worker.js with its pool, and onnxruntime with `ortThreads` threads in ort-worker.js: both are
// timed in their workers. Driven by bench.mjs through `window.bench.run(config)`.

import { EngineClient } from '/www/engine.js';
import { loadingEngine, memories, memoryOf } from './wasm-memories.js';

const now = () => performance.now();
const log = (...a) => console.log('[bench]', ...a);
const pause = () => new Promise((r) => setTimeout(r, 0));
const message = (e) => (e instanceof Error ? e.message : String(e));

/** The input of tests/bench/explain.rs: deterministic values in [-1, 1). */
function input(shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = ((i * 7919) % 255) / 128 - 1;
  return x;
}

function maxDiff(a, b) {
  if (!a || !b || a.length !== b.length) return null;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const argmax = (a) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

/** One of our builds on this page's main thread. Every call answers `{ms, ...}` like engine-worker.js. */
function mainThreadEngine(url) {
  let mod = null;
  let wasm = null;
  let ex = null;
  const timed = (f) => {
    const t0 = now();
    const value = f();
    return [now() - t0, value];
  };
  return {
    async init() {
      const t0 = now();
      mod = await import(url);
      wasm = await mod.default();
      return { ms: now() - t0, threads: 1 };
    },
    async load(bytes) {
      ex?.free();
      ex = null;
      const [ms, made] = timed(() => new mod.Explainer(bytes));
      ex = made;
      return { ms, info: ex.info() };
    },
    async forward(x) {
      const [ms, prediction] = timed(() => ex.setInput(x));
      return { ms, prediction };
    },
    async explain(options) {
      const [ms, summary] = timed(() => ex.explain(options));
      return { ms, summary };
    },
    async memory() {
      return wasm.memory.buffer.byteLength;
    },
    async free() {
      ex?.free();
      ex = null;
    },
  };
}

/** One of our builds in engine-worker.js, with a pool of `threads` workers: the threaded build. */
function workerEngine(url, threads) {
  const client = new EngineClient(new URL('./engine-worker.js', import.meta.url));
  const call = (type, args = {}) => client.request(type, args);
  return {
    init: () => call('init', { url: new URL(url, location.href).href, threads }),
    load: (bytes) => call('load', { bytes }),
    forward: (x) => call('forward', { x }),
    explain: (options) => call('explain', { options }),
    memory: async () => (await call('memory')).bytes,
    free: async () => client.stop('the benchmark is done'),
  };
}

/** Max |Δ| between one of our predictions and onnxruntime's output (logits or probabilities, whichever is closer). */
function agreement(p, output) {
  const dLogits = maxDiff(p.logits, output);
  const dProb = maxDiff(p.probabilities, output);
  const useProb = dProb !== null && (dLogits === null || dProb < dLogits);
  return {
    compared: useProb ? 'probabilities' : 'logits',
    maxAbsDiff: useProb ? dProb : dLogits,
    top1: argmax(useProb ? p.probabilities : p.logits),
    ortTop1: argmax(output),
  };
}

/**
 * config: {model: URL, ours: [{name, url, threads}], ort: {url, wasmPaths} | null, ortThreads (0: no
 * onnxruntime in a worker), runs, warmup, loads, explainOptions}. Returns raw times in ms per engine,
 * memory sizes in bytes, and errors.
 */
async function run(config) {
  const { model, runs, warmup, loads, explainOptions } = config;
  const t = now();
  const bytes = new Uint8Array(await (await fetch(model)).arrayBuffer());
  log(`${model}: ${bytes.length} bytes fetched in ${(now() - t).toFixed(0)} ms`);
  const out = { modelBytes: bytes.length, engines: {}, errors: {} };

  const ours = [];
  for (const { name, url, threads } of config.ours) {
    const res = { kind: 'ours', load: [], forward: [], lrp: [], explain: [] };
    try {
      loadingEngine(name);
      const engine = threads ? workerEngine(url, threads) : mainThreadEngine(url);
      const init = await engine.init();
      res.init = init.ms;
      res.threads = init.threads;
      let info = null;
      for (let i = 0; i < loads; i++) {
        const loaded = await engine.load(bytes);
        res.load.push(loaded.ms);
        info = loaded.info;
        await pause();
      }
      res.input = info.input;
      res.layers = info.layers.length;
      res.memoryAfterLoad = await engine.memory();
      log(`${name}: init ${res.init.toFixed(0)} ms (${res.threads} thread${res.threads > 1 ? 's' : ''}), load ${res.load.map((v) => v.toFixed(0)).join(', ')} ms`);
      ours.push({ name, engine, res });
    } catch (e) {
      out.errors[name] = `load: ${message(e)}`;
      log(`${name} failed to load: ${message(e)}`);
    }
    out.engines[name] = res;
  }

  let shape = ours[0]?.res.input.shape;
  let ort = null;
  let session = null;
  const ortRes = { kind: 'ort', load: [], forward: [] };
  if (config.ort) {
    try {
      loadingEngine('ort');
      let t0 = now();
      ort = await import(config.ort.url);
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.proxy = false;
      ort.env.wasm.wasmPaths = config.ort.wasmPaths;
      ortRes.version = ort.env.versions?.web ?? null;
      ortRes.import = now() - t0;
      const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
      // the first session also compiles and instantiates onnxruntime's wasm: timed separately
      for (let i = 0; i <= loads; i++) {
        if (session) await session.release();
        t0 = now();
        session = await ort.InferenceSession.create(bytes, options);
        if (i === 0) ortRes.firstLoad = now() - t0;
        else ortRes.load.push(now() - t0);
        await pause();
      }
      ortRes.inputNames = session.inputNames;
      ortRes.outputNames = session.outputNames;
      ortRes.memoryAfterLoad = memoryOf('ort');
      if (!shape) {
        const meta = session.inputMetadata?.[0];
        shape = meta?.shape?.map((d) => (typeof d === 'number' ? d : 1));
      }
      log(`ort ${ortRes.version}: first session ${ortRes.firstLoad.toFixed(0)} ms, then ${ortRes.load.map((v) => v.toFixed(0)).join(', ')} ms`);
    } catch (e) {
      out.errors.ort = `load: ${message(e)}`;
      log(`ort failed to load: ${message(e)}`);
      session = null;
    }
    out.engines.ort = ortRes;
  }

  // onnxruntime with a thread pool, in a worker: a realm of its own (see ort-worker.js)
  let ortWorker = null;
  const ortThreadsRes = { kind: 'ort', load: [], forward: [] };
  if (config.ort && config.ortThreads) {
    try {
      ortWorker = new EngineClient(new URL('./ort-worker.js', import.meta.url));
      const call = (type, args = {}) => ortWorker.request(type, args);
      const href = (u) => new URL(u, location.href).href;
      const init = await call('init', { url: href(config.ort.url), wasmPaths: href(config.ort.wasmPaths), threads: config.ortThreads });
      ortThreadsRes.version = init.version;
      ortThreadsRes.import = init.ms;
      // the first session also compiles and instantiates onnxruntime's wasm and starts its threads
      for (let i = 0; i <= loads; i++) {
        const loaded = await call('load', { bytes });
        if (i === 0) ortThreadsRes.firstLoad = loaded.ms;
        else ortThreadsRes.load.push(loaded.ms);
        ortThreadsRes.threads = loaded.threads;
        ortThreadsRes.inputNames = loaded.inputNames;
        ortThreadsRes.outputNames = loaded.outputNames;
        await pause();
      }
      ortThreadsRes.memoryAfterLoad = (await call('memory')).bytes;
      const loadsMs = ortThreadsRes.load.map((v) => v.toFixed(0)).join(', ');
      log(`ort ×${ortThreadsRes.threads} (worker): first session ${ortThreadsRes.firstLoad.toFixed(0)} ms, then ${loadsMs} ms`);
    } catch (e) {
      out.errors['ort-threads'] = `load: ${message(e)}`;
      log(`ort in a worker failed to load: ${message(e)}`);
      ortWorker?.stop('failed to load');
      ortWorker = null;
    }
    out.engines['ort-threads'] = ortThreadsRes;
  }
  if (!shape) return out;

  const x = input(shape);
  const tensor = session ? new ort.Tensor('float32', x, shape) : null;
  const failed = new Set();
  for (let it = 0; it < warmup + runs; it++) {
    const keep = it >= warmup;
    const line = [];
    for (const o of ours) {
      if (failed.has(o.name)) continue;
      try {
        const forward = await o.engine.forward(x);
        const explained = await o.engine.explain(explainOptions);
        const [prediction, summary] = [forward.prediction, explained.summary];
        // as if timed t0 → t1 → t2 around the two calls (the worker build times them in its worker)
        const [t0, t1, t2] = [0, forward.ms, forward.ms + explained.ms];
        if (it === 0) {
          o.res.first = { forward: t1 - t0, lrp: t2 - t1 };
          o.res.memoryAfterFirst = await o.engine.memory(); // after one forward pass and one explanation
          o.res.prediction = prediction;
          o.res.summary = {
            target: summary.target,
            startRelevance: summary.startRelevance,
            inputRelevanceSum: summary.inputRelevanceSum,
            conservationError: summary.conservationError,
          };
        }
        if (keep) {
          o.res.forward.push(t1 - t0);
          o.res.lrp.push(t2 - t1);
          o.res.explain.push(t2 - t0);
        }
        line.push(`${o.name} ${(t1 - t0).toFixed(0)}+${(t2 - t1).toFixed(0)}`);
      } catch (e) {
        failed.add(o.name);
        out.errors[o.name] = `run: ${message(e)}`;
        log(`${o.name} failed: ${message(e)}`);
      }
      await pause();
    }
    if (session && !failed.has('ort')) {
      try {
        const t0 = now();
        const result = await session.run({ [session.inputNames[0]]: tensor });
        const t1 = now();
        if (it === 0) {
          ortRes.first = { forward: t1 - t0 };
          ortRes.output = Array.from(result[session.outputNames[0]].data);
        }
        if (keep) ortRes.forward.push(t1 - t0);
        line.push(`ort ${(t1 - t0).toFixed(0)}`);
      } catch (e) {
        failed.add('ort');
        out.errors.ort = `run: ${message(e)}`;
        log(`ort failed: ${message(e)}`);
      }
      await pause();
    }
    if (ortWorker && !failed.has('ort-threads')) {
      try {
        const r = await ortWorker.request('forward', { x, shape });
        if (it === 0) {
          ortThreadsRes.first = { forward: r.ms };
          ortThreadsRes.output = Array.from(r.output);
        }
        if (keep) ortThreadsRes.forward.push(r.ms);
        line.push(`ort×${ortThreadsRes.threads} ${r.ms.toFixed(0)}`);
      } catch (e) {
        failed.add('ort-threads');
        out.errors['ort-threads'] = `run: ${message(e)}`;
        log(`ort in a worker failed: ${message(e)}`);
      }
      await pause();
    }
    log(`${keep ? 'run' : 'warm-up'} ${keep ? it - warmup + 1 : it + 1}: ${line.join(', ')} ms`);
  }

  // wasm memory never shrinks: its size now is the peak of the whole run
  for (const o of ours) o.res.memory = await o.engine.memory();
  if (session) ortRes.memory = memoryOf('ort');
  if (ortWorker) ortThreadsRes.memory = (await ortWorker.request('memory')).bytes;
  out.memories = memories.map((m) => ({ engine: m.engine, bytes: m.memory.buffer.byteLength }));

  // do the engines compute the same thing?
  if (ortRes.output) {
    out.agreement = {};
    for (const o of ours) if (o.res.prediction) out.agreement[o.name] = agreement(o.res.prediction, ortRes.output);
    ortRes.outputHead = ortRes.output.slice(0, 5);
    delete ortRes.output;
  }
  // and with onnxruntime on threads: kept with that engine, so that `agreement` stays the one-thread comparison
  if (ortThreadsRes.output) {
    ortThreadsRes.agreement = {};
    for (const o of ours) {
      if (o.res.prediction) ortThreadsRes.agreement[o.name] = agreement(o.res.prediction, ortThreadsRes.output);
    }
    ortThreadsRes.outputHead = ortThreadsRes.output.slice(0, 5);
    delete ortThreadsRes.output;
  }
  for (const o of ours) {
    if (o.res.prediction) o.res.prediction = { top: o.res.prediction.top };
    await o.engine.free();
  }
  if (session) await session.release();
  ortWorker?.stop('the benchmark is done');
  return out;
}

window.bench = { run };
document.getElementById('log').textContent = 'ready';
