// The page: DOM, state and the conversation with the engine's worker. All computation on
// relevance happens in the worker (WebAssembly); all pixels are made by overlay.js.

import {
  COLORMAPS,
  colormapLut,
  cropRegion,
  cropRgba,
  decodeNpy,
  encodeNpy,
  encodePng,
  renderOverlay,
  tensorToRgba,
} from './overlay.js';

const $ = (id) => document.getElementById(id);

const VARIANTS = ['flows_skip', 'flows_skip_simple', 'latest', 'simple', 'conventional'];
const DEFAULT_MODEL = 'efficientnet_lite0';
const FIXTURES = [
  ['basic_bn', 'BasicBlock ResNet, BatchNorm nodes'],
  ['basic_folded', 'BasicBlock ResNet, BatchNorm folded'],
  ['basic_opset18', 'BasicBlock ResNet, opset 18'],
  ['bottleneck_bn', 'Bottleneck ResNet'],
  ['bottleneck_nhwc', 'Bottleneck ResNet, NHWC input (Caffe style)'],
];
// Preprocessing for models that come without a manifest entry: torchvision's ImageNet
// normalisation, resize the shorter side (to 256/224 of the model size) and centre-crop.
const TORCHVISION = { scale: 1, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], bgr: false };
const DISPLAY_MAX = 512;
const MODEL_CACHE = 'resnet-lrp-models-v1';

// ---------------------------------------------------------------------------------------
// The engine: a module worker behind promises, restarted if it dies

class EngineError extends Error {
  constructor(message, trap = false) {
    super(message);
    this.name = 'EngineError';
    this.trap = trap;
  }
}

/** The worker's script, with the page's `?threads=N` (the size of the threaded engine's pool) passed on. */
function workerUrl() {
  const url = new URL('./worker.js', import.meta.url);
  const threads = new URLSearchParams(location.search).get('threads');
  if (threads !== null) url.searchParams.set('threads', threads);
  return url;
}

class Engine {
  constructor(onCrash) {
    this.onCrash = onCrash;
    this.pending = new Map();
    this.nextId = 1;
    this.started = false;
    this.spawn();
  }

  spawn() {
    this.dead = false;
    this.worker = new Worker(workerUrl(), { type: 'module' });
    this.worker.onmessage = (e) => this.receive(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.crash(e.message || 'the engine’s worker failed');
    };
    this.worker.onmessageerror = () => this.crash('a message from the engine could not be read');
  }

  /**
   * Replaces the worker with a fresh one and brings it back to where the page was: `restore(direct)`
   * sends its requests with `direct.request`; every other request waits until it is done, so that
   * it finds the model (and the photo) loaded again.
   */
  async respawn(restore) {
    this.spawn();
    let open;
    const gate = new Promise((resolve) => (open = resolve));
    this.gate = gate;
    try {
      return await restore({ request: (...args) => this.send(...args) });
    } finally {
      if (this.gate === gate) this.gate = null;
      open();
    }
  }

  request(type, payload = {}, options = {}) {
    if (this.gate) return this.gate.then(() => this.request(type, payload, options));
    return this.send(type, payload, options);
  }

  send(type, payload = {}, { transfer = [], onProgress } = {}) {
    if (this.dead) return Promise.reject(new EngineError('the engine is restarting', true));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }

  receive(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.status === 'progress') {
      p.onProgress?.(msg);
    } else if (msg.status === 'complete') {
      this.pending.delete(msg.id);
      p.resolve(msg);
    } else {
      this.pending.delete(msg.id);
      const trap = msg.trap || /unreachable|RuntimeError/.test(msg.error);
      p.reject(new EngineError(msg.error, trap));
      if (trap) this.crash(msg.error);
    }
  }

  crash(reason) {
    if (this.dead) return;
    this.stop(`the engine stopped: ${reason}`);
    this.onCrash(reason);
  }

  /** Ends the worker now, even in the middle of a request; `spawn()` starts a fresh one. */
  stop(reason) {
    if (this.dead) return;
    this.dead = true;
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new EngineError(reason, true));
    this.pending.clear();
  }
}

// ---------------------------------------------------------------------------------------
// State

const state = {
  engine: null,
  manifest: null,
  imagenet: null,
  photos: [],
  candidates: [], // models that can be picked
  engineInfo: null, // the engine's answer to `init`: {simd, relaxed, engine, threads, relaxedSupported, isolated}
  model: null, // {key, label, source, entry, bytes, preprocess, resize, info, names, note}
  items: [], // photos and tensors the user added: {key, name, kind, file|data, url, credit}
  image: null, // the current item, prepared for the current model
  prediction: null,
  target: null,
  explanation: null, // {summary, map, relevance, options, key}
  cache: new Map(),
  compare: new Map(), // variant key → {summary, map}
  // insertion/deletion curves of the current photo, class and settings (`context`)
  evaluation: { context: null, results: new Map(), running: null, checked: new Set(), drawn: 0 },
  seq: { image: 0, explain: 0, compare: 0, model: 0, render: 0, evaluate: 0 },
  busy: 0,
  crashes: [],
  rendered: null, // {overlay, heat, width, height, mapWidth, mapHeight}
};

// ---------------------------------------------------------------------------------------
// Status, progress, notices

function setStatus(text, fraction) {
  $('status-text').textContent = text;
  const p = $('progress');
  if (fraction === undefined || fraction === null) {
    p.hidden = true;
  } else {
    p.hidden = false;
    if (Number.isFinite(fraction)) p.value = fraction;
    else p.removeAttribute('value');
  }
}

/** Work that waits until the page has started and is not busy (e.g. storing a model in the cache). */
const idleQueue = [];
let started = false;

function whenIdle(fn) {
  idleQueue.push(fn);
  flushIdle();
}

function flushIdle() {
  while (started && state.busy === 0 && idleQueue.length) idleQueue.shift()();
}

async function busy(text, fn) {
  state.busy++;
  document.body.dataset.busy = 'true';
  $('spinner').hidden = false;
  $('stage-busy').hidden = !state.image;
  setStatus(text);
  try {
    return await fn((t, f) => setStatus(t ?? text, f));
  } finally {
    state.busy--;
    if (state.busy === 0) {
      document.body.dataset.busy = 'false';
      $('spinner').hidden = true;
      $('stage-busy').hidden = true;
      setStatus(readyText());
      flushIdle();
    }
  }
}

/** Which build of the engine the worker loaded (its answer to `init`), in small print next to the status. */
function showEngine(answer) {
  const { simd, relaxed, engine, threads, relaxedSupported, isolated } = answer;
  state.engineInfo = { simd, relaxed, engine, threads, relaxedSupported, isolated };
  const el = $('engine-info');
  el.textContent = engine === 'pkg-threads' ? `wasm relaxed SIMD · ${threads} threads` : relaxed ? 'wasm relaxed SIMD' : 'wasm SIMD128';
  el.dataset.engine = engine ?? 'pkg';
  el.dataset.threads = String(threads ?? 1);
  const why =
    engine === 'pkg-threads'
      ? ''
      : !isolated
        ? ' One thread: the page is not cross-origin isolated (its server sends no COOP/COEP headers), so it cannot share memory with a worker pool.'
        : relaxedSupported
          ? ' One thread: the threaded build is missing on this server, could not start, or was turned off with ?threads=1.'
          : '';
  el.title =
    (engine === 'pkg-threads'
      ? `The engine runs the threaded WebAssembly build with relaxed SIMD (pkg-threads/) on a pool of ${threads} workers: an explanation computes the denominators of its layers on the pool while its relevance sweep runs`
      : relaxed
        ? 'The engine runs the WebAssembly build with relaxed SIMD (pkg-relaxed/): faster; its fused multiply-add may round differently from one CPU to another'
        : relaxedSupported
          ? 'The engine runs the WebAssembly build with SIMD128 (pkg/): this server has no relaxed-SIMD build'
          : 'The engine runs the WebAssembly build with SIMD128 (pkg/): this browser has no relaxed SIMD') + why;
  el.hidden = false;
}

function readyText() {
  if (!state.model) return 'No model loaded';
  return state.image ? `Ready — ${state.model.label}` : `Ready — drop a photo or pick a sample`;
}

function notify(text, kind = 'error', testid) {
  const box = $('notices');
  const el = document.createElement('div');
  el.className = `notice ${kind}`;
  el.dataset.testid = testid ?? (kind === 'error' ? 'error' : 'info');
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const span = document.createElement('span');
  span.className = 'text';
  span.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.onclick = () => el.remove();
  el.append(span, close);
  box.prepend(el);
  while (box.children.length > 4) box.lastElementChild.remove();
  if (kind !== 'error') setTimeout(() => el.remove(), 15000);
  return el;
}

/** Models larger than this are refused before they are read (the engine's own limit too). */
const MAX_MODEL_BYTES = 500e6;

const errorText = (e) => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------
// Fetching

async function fetchJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

async function sha256Hex(bytes) {
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Model bytes from the server, through the Cache API when the manifest gives a sha256. */
async function fetchModelBytes(url, sha256, report) {
  const key = sha256 ? new URL(`${url}?sha256=${sha256}`, location.href).href : null;
  let cache = null;
  if (key && 'caches' in self) {
    try {
      cache = await caches.open(MODEL_CACHE);
      const hit = await cache.match(key);
      if (hit) return new Uint8Array(await hit.arrayBuffer());
    } catch {
      cache = null; // e.g. storage disabled: just download
    }
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}${res.status === 404 ? ' (run ./build.sh assets)' : ''}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    report(`Downloading ${url.split('/').pop()} — ${(got / 1e6).toFixed(1)} MB`, total ? got / total : NaN);
  }
  const bytes = new Uint8Array(got);
  let o = 0;
  for (const c of chunks) {
    bytes.set(c, o);
    o += c.length;
  }
  if (sha256) {
    const actual = await sha256Hex(bytes);
    if (actual !== sha256) throw new Error(`${url} does not match its sha256 in models.json (got ${actual.slice(0, 12)}…); run ./build.sh assets`);
    if (cache) {
      // stored once the page is idle: writing tens of MB would compete with the engine for the CPU
      whenIdle(() =>
        cache.put(key, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } })).catch(() => {
          // quota: fine, next time it is downloaded again
        }),
      );
    }
  }
  return bytes;
}

async function exists(url) {
  try {
    const res = await fetch(url, { method: 'HEAD' });
    return res.ok;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Models

function candidateFromManifest(m) {
  return {
    key: m.id,
    label: m.name,
    source: 'manifest',
    entry: m,
    url: `models/${m.file}`,
    sha256: m.sha256,
    preprocess: { scale: m.scale, mean: m.mean, std: m.std, bgr: m.channel_order === 'BGR' },
    resize: { mode: m.resize?.mode ?? 'full', size: m.resize?.size ?? m.size },
    credit: `${m.name}: ${m.licence}. ${m.source}.`,
  };
}

function candidateFromFixture([name, what]) {
  return {
    key: `fixtures/${name}`,
    label: `${name} (random weights, for testing)`,
    source: 'fixture',
    url: `models/fixtures/${name}.onnx`,
    preprocess: { ...TORCHVISION },
    resize: { mode: 'shorter_side', size: null },
    credit: `${name}: ${what}, generated with seeded random weights (tests/fixtures/gen_fixtures.py).`,
  };
}

function candidateFromFile(file, bytes) {
  return {
    key: `file:${file.name}:${file.size}:${file.lastModified}`,
    label: file.name,
    source: 'file',
    bytes,
    preprocess: { ...TORCHVISION },
    resize: { mode: 'shorter_side', size: null },
    credit: `${file.name}: your model (opened from this computer).`,
  };
}

function resolveNames(cand, info) {
  const classes = cand.entry?.classes;
  if (Array.isArray(classes) && classes.length === info.numClasses) return { names: classes, note: '' };
  if (classes === 'imagenet' && state.imagenet) return { names: state.imagenet, note: '' };
  if (cand.source === 'file' && info.numClasses === 1000 && state.imagenet) {
    return { names: state.imagenet, note: 'ImageNet class names assumed (1000 outputs).' };
  }
  return { names: null, note: '' };
}

function className(c) {
  return state.model?.names?.[c] ?? `class ${c}`;
}

function fillModelSelect() {
  const sel = $('model-select');
  sel.replaceChildren();
  const groups = [
    ['Models', state.candidates.filter((c) => c.source === 'manifest')],
    ['Test models', state.candidates.filter((c) => c.source === 'fixture')],
    ['Your models', state.candidates.filter((c) => c.source === 'file')],
  ];
  for (const [label, list] of groups) {
    if (!list.length) continue;
    const g = document.createElement('optgroup');
    g.label = label;
    for (const c of list) g.append(new Option(c.label, c.key));
    sel.append(g);
  }
  if (state.model) sel.value = state.model.key;
}

async function loadModel(cand) {
  const prev = state.model;
  const token = ++state.seq.model;
  try {
    await busy(`Loading ${cand.label}…`, async (report) => {
      const bytes = cand.bytes ?? (await (takePrefetched(cand, report) ?? fetchModelBytes(cand.url, cand.sha256, report)));
      report(`Compiling ${cand.label}…`);
      const size = cand.resize.size;
      const { info } = await state.engine.request('load', { bytes, preprocess: cand.preprocess }, { onProgress: stage(report) });
      if (token !== state.seq.model) return;
      const { names, note } = resolveNames(cand, info);
      const resize = { ...cand.resize, size: size ?? Math.round((info.input.height * 256) / 224) };
      state.model = { ...cand, bytes, info, names, note, resize, preprocess: { ...cand.preprocess } };
      if (!state.candidates.includes(cand)) state.candidates.push(cand);
      cand.bytes = cand.source === 'file' ? bytes : undefined; // manifest models stay in the Cache API
    });
  } catch (e) {
    const still = prev ? ` Still using ${prev.label}.` : '';
    notify(`Could not load ${cand.label}: ${errorText(e)}${still}`, 'error', 'model-error');
    fillModelSelect();
    return false;
  }
  if (token !== state.seq.model) return false;
  fillModelSelect();
  showModelInfo();
  state.cache.clear();
  const item = state.image?.item;
  clearImage();
  if (item) await selectItem(item);
  return true;
}

/**
 * Starts downloading a model's bytes ahead of `loadModel` (at start, while the engine compiles).
 * Progress goes to whoever later waits for them.
 */
function prefetchModel(cand) {
  if (cand.bytes || cand.prefetched) return;
  const pending = { report: null };
  pending.bytes = fetchModelBytes(cand.url, cand.sha256, (t, f) => pending.report?.(t, f));
  pending.bytes.catch(() => {}); // the error is reported by loadModel, which awaits it
  cand.prefetched = pending;
}

/** The bytes `prefetchModel` is downloading for `cand` (once), else null. */
function takePrefetched(cand, report) {
  const pending = cand.prefetched;
  if (!pending) return null;
  delete cand.prefetched;
  pending.report = report;
  return pending.bytes;
}

/** Forgets the current input and its results (e.g. when the model changes). */
function clearImage() {
  state.image = null;
  state.prediction = null;
  state.explanation = null;
  state.rendered = null;
  state.target = null;
  clearCompare();
  renderPredictions();
  renderQueue();
  $('overlay').classList.add('empty');
  $('stage-empty').hidden = false;
  $('caption').textContent = '';
  for (const id of ['start-relevance', 'input-sum', 'relative-error']) $(id).textContent = '—';
  $('relative-error').className = '';
  delete $('relative-error').dataset.value;
  $('conservation-note').textContent = '';
  $('blocks-table').replaceChildren();
  $('ledger-table').replaceChildren();
  for (const id of ['download-overlay', 'download-heatmap', 'download-npy', 'compare-button']) $(id).disabled = true;
  syncEvaluation();
}

function showModelInfo() {
  const m = state.model;
  const { input, numClasses, layers } = m.info;
  const count = (k) => layers.filter((l) => l.kind === k).length;
  const convs = count('conv') + count('dense');
  $('model-info').textContent =
    `Input ${input.name} [${input.shape.join('×')}] ${input.layout}; ${numClasses} classes; ` +
    `${convs} weighted layers, ${count('add')} residual additions. ` +
    (input.size_pinned ? `The model leaves the image size open: explained at ${input.height}×${input.width}. ` : '') +
    m.note;
  $('credits').textContent = `Model — ${m.credit}`;
  const list = $('class-list');
  list.replaceChildren();
  if (m.names) for (let i = 0; i < m.names.length; i++) list.append(new Option(`${i}: ${m.names[i]}`));
  fillPreprocessForm();
}

function fillPreprocessForm() {
  const m = state.model;
  $('pre-resize').value = m.resize.mode;
  $('pre-size').value = m.resize.size;
  $('pre-scale').value = m.preprocess.scale;
  $('pre-mean').value = m.preprocess.mean.join(', ');
  $('pre-std').value = m.preprocess.std.join(', ');
  $('pre-bgr').checked = m.preprocess.bgr;
}

async function applyPreprocessForm(e) {
  e.preventDefault();
  if (!state.model) return;
  const triple = (id) => {
    const v = $(id).value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (v.length === 1) return [v[0], v[0], v[0]];
    if (v.length !== 3 || v.some((x) => !Number.isFinite(x))) throw new Error(`${id.slice(4)}: give one or three numbers`);
    return v;
  };
  try {
    const preprocess = { scale: Number($('pre-scale').value), mean: triple('pre-mean'), std: triple('pre-std'), bgr: $('pre-bgr').checked };
    const size = Math.round(Number($('pre-size').value));
    if (!(size > 0)) throw new Error('resize: give a positive size');
    await state.engine.request('preprocess', { preprocess });
    state.model.preprocess = preprocess;
    state.model.resize = { mode: $('pre-resize').value, size };
    state.cache.clear();
    const item = state.image?.item;
    clearImage();
    if (item) await selectItem(item);
  } catch (err) {
    notify(`Preprocessing not applied: ${errorText(err)}`);
    fillPreprocessForm();
  }
}

// ---------------------------------------------------------------------------------------
// Photos and tensors

async function decodeBitmap(blob) {
  const opts = { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
  let bmp = await createImageBitmap(blob, opts);
  const limit = 4096;
  if (Math.max(bmp.width, bmp.height) > limit) {
    const f = limit / Math.max(bmp.width, bmp.height);
    const [w, h] = [Math.round(bmp.width * f), Math.round(bmp.height * f)];
    bmp.close();
    bmp = await createImageBitmap(blob, { ...opts, resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
  }
  return bmp;
}

function canvasOf(w, h) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

function pixels(source, sx, sy, sw, sh, dw, dh) {
  const c = canvasOf(dw, dh);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, sx, sy, sw, sh, 0, 0, dw, dh);
  return ctx.getImageData(0, 0, dw, dh).data;
}

function displaySize(w, h) {
  const f = Math.min(1, DISPLAY_MAX / Math.max(w, h));
  const g = Math.max(f, Math.min(2, 256 / Math.max(w, h))); // small crops are shown larger
  return [Math.max(1, Math.round(w * g)), Math.max(1, Math.round(h * g))];
}

/**
 * What the model is fed and what the page shows, for the current model:
 * a photo is cropped per the model's resize mode (in photo pixels); the crop goes to the
 * engine, which resizes it bilinearly to the model size. Crops more than twice the model
 * size are first downscaled by the browser (smoothly) to the model size, to avoid aliasing.
 */
async function prepare(item) {
  const { info, resize, preprocess } = state.model;
  const { height: H, width: W } = info.input;
  if (item.kind === 'tensor') {
    const need = info.input.shape.reduce((a, b) => a * b, 1);
    if (item.data.length !== need) {
      throw new Error(`${item.name} has shape (${item.shape.join(', ')}) but the model input is (${info.input.shape.join(', ')})`);
    }
    const rgba = tensorToRgba(item.data, info.input, preprocess);
    const [dw, dh] = displaySize(W, H);
    const small = canvasOf(W, H);
    small.getContext('2d').putImageData(new ImageData(rgba, W, H), 0, 0);
    return { item, kind: 'tensor', tensor: item.data, base: { rgba: pixels(small, 0, 0, W, H, dw, dh), width: dw, height: dh }, region: null };
  }
  const bmp = await decodeBitmap(item.file);
  try {
    const region = cropRegion(bmp.width, bmp.height, { mode: resize.mode, resize: resize.size, crop: [H, W] });
    let fed;
    if (region.w > 2 * W || region.h > 2 * H) {
      fed = { rgba: pixels(bmp, region.x, region.y, region.w, region.h, W, H), width: W, height: H };
    } else {
      const full = pixels(bmp, 0, 0, bmp.width, bmp.height, bmp.width, bmp.height);
      fed = { rgba: cropRgba(full, bmp.width, region.x, region.y, region.w, region.h), width: region.w, height: region.h };
    }
    const [dw, dh] = displaySize(region.w, region.h);
    const base = { rgba: pixels(bmp, region.x, region.y, region.w, region.h, dw, dh), width: dw, height: dh };
    return { item, kind: 'photo', fed, base, region, photo: { width: bmp.width, height: bmp.height } };
  } finally {
    bmp.close();
  }
}

async function feed(prepared, report, engine = state.engine) {
  const onProgress = report ? stage(report) : undefined;
  if (prepared.kind === 'tensor') return engine.request('input', { data: prepared.tensor }, { onProgress });
  const { rgba, width, height } = prepared.fed;
  return engine.request('image', { rgba: new Uint8Array(rgba.buffer.slice(0)), width, height }, { onProgress });
}

/** Shows the worker's progress stages in the status line. */
function stage(report) {
  return (msg) => {
    if (msg.stage) report(`${msg.stage[0].toUpperCase()}${msg.stage.slice(1)}…`);
  };
}

let itemCounter = 0;

async function addFiles(fileList, origin = 'drop') {
  const files = [...fileList];
  if (!files.length) return;
  const models = files.filter((f) => /\.onnx$/i.test(f.name));
  const tensors = files.filter((f) => /\.npy$/i.test(f.name));
  const photos = files.filter((f) => !models.includes(f) && !tensors.includes(f));
  if (models.length) {
    if (models.length > 1) notify(`Only one model at a time: opening ${models[0].name}.`, 'info');
    const f = models[0];
    const still = state.model ? ` Still using ${state.model.label}.` : '';
    if (f.size > MAX_MODEL_BYTES) {
      const mb = Math.ceil(f.size / 1e6);
      notify(`Could not load ${f.name}: the file is ${mb} MB; models above ${MAX_MODEL_BYTES / 1e6} MB are refused.${still}`, 'error', 'model-error');
    } else {
      let bytes = null;
      try {
        bytes = new Uint8Array(await f.arrayBuffer());
      } catch (e) {
        notify(`Could not load ${f.name}: the file could not be read (${errorText(e)}).${still}`, 'error', 'model-error');
      }
      if (bytes) await loadModel(candidateFromFile(f, bytes));
    }
  }
  const added = [];
  for (const f of tensors) {
    try {
      const { data, shape } = decodeNpy(await f.arrayBuffer());
      added.push({ key: `t${++itemCounter}`, name: f.name, kind: 'tensor', data, shape });
    } catch (e) {
      notify(`Could not read ${f.name}: ${errorText(e)}`, 'error', 'photo-error');
    }
  }
  for (const f of photos) {
    try {
      const bmp = await createImageBitmap(f);
      bmp.close();
      added.push({ key: `p${++itemCounter}`, name: f.name || `pasted image ${itemCounter}`, kind: 'photo', file: f, url: URL.createObjectURL(f) });
    } catch (e) {
      const why = errorText(e).replace(/^[A-Za-z]*Error:\s*/, '');
      const keep = state.image ? ' The current photo stays.' : '';
      notify(`Could not read “${f.name || 'the pasted data'}” as an image (${why}).${keep}`, 'error', 'photo-error');
    }
  }
  if (!added.length) return;
  state.items.push(...added);
  renderQueue();
  if (origin !== 'silent') await selectItem(added[0]);
}

function renderQueue() {
  const q = $('queue');
  q.replaceChildren();
  for (const it of state.items) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'thumb';
    b.title = it.name;
    b.dataset.testid = 'queue-item';
    b.classList.toggle('tensor', it.kind === 'tensor');
    b.classList.toggle('selected', state.image?.item === it);
    if (it.kind === 'photo') {
      const img = document.createElement('img');
      img.src = it.url;
      img.alt = it.name;
      b.append(img);
    }
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = it.name;
    b.append(tag);
    b.onclick = () => selectItem(it);
    q.append(b);
  }
  for (const el of $('samples').children) el.classList.toggle('selected', state.image?.item?.sample === el.dataset.file);
}

async function sampleItem(photo) {
  let it = state.items.find((i) => i.sample === photo.file);
  if (it) return it;
  const res = await fetch(`photos/${photo.file}`);
  if (!res.ok) throw new Error(`photos/${photo.file}: HTTP ${res.status}`);
  const blob = await res.blob();
  it = {
    key: `s:${photo.file}`,
    name: photo.file,
    kind: 'photo',
    file: blob,
    sample: photo.file,
    credit: `${photo.title} — ${photo.attribution}; ${photo.licence}; from ${photo.source?.package ?? 'a package'} ${photo.source?.version ?? ''}.`,
  };
  return it;
}

function renderSamples() {
  const box = $('samples');
  box.replaceChildren();
  for (const p of state.photos) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'thumb';
    b.dataset.file = p.file;
    b.dataset.testid = `sample-${p.file}`;
    b.title = `${p.title}\n${p.attribution}\nLicence: ${p.licence}`;
    const img = document.createElement('img');
    img.src = `photos/${p.file}`;
    img.alt = p.title;
    img.loading = 'lazy';
    b.append(img);
    b.onclick = async () => {
      try {
        await selectItem(await sampleItem(p));
      } catch (e) {
        notify(`Could not open the sample ${p.file}: ${errorText(e)}`);
      }
    };
    box.append(b);
  }
}

async function selectItem(item) {
  if (!state.model) {
    notify('Load a model first.');
    return;
  }
  const token = ++state.seq.image;
  let prepared;
  let prediction;
  try {
    await busy(`Running ${state.model.label} on ${item.name}…`, async (report) => {
      prepared = await prepare(item);
      if (token !== state.seq.image) return;
      const res = await feed(prepared, report);
      prediction = res.prediction;
    });
  } catch (e) {
    if (token === state.seq.image && !(e instanceof EngineError && e.trap)) {
      const keep = state.image && state.image.item !== item ? ' The current photo stays.' : '';
      notify(`Could not use ${item.name}: ${errorText(e)}.${keep}`, 'error', 'photo-error');
      // the engine dropped the previous activations when it tried this input: give them back
      if (prepared && state.image && state.image.item !== item) {
        feed(state.image).catch((err) => notify(`Could not restore ${state.image?.item.name}: ${errorText(err)}`));
      }
    }
    return;
  }
  if (token !== state.seq.image) return;
  state.image = prepared;
  state.prediction = prediction;
  state.explanation = null;
  clearCompare();
  renderQueue();
  $('caption').textContent = describeImage();
  const credit = item.credit ? `Photo — ${item.credit}` : '';
  $('credits').textContent = [`Model — ${state.model.credit}`, credit].filter(Boolean).join('  ·  ');
  await selectTarget(prediction.top[0].class);
}

function describeImage() {
  const im = state.image;
  if (!im) return '';
  if (im.kind === 'tensor') return `${im.item.name}: preprocessed tensor`;
  const { region, photo } = im;
  const cropped = region.w !== photo.width || region.h !== photo.height;
  return `${im.item.name} (${photo.width}×${photo.height})` + (cropped ? `, model’s view: ${region.w}×${region.h} centre crop` : '');
}

// ---------------------------------------------------------------------------------------
// Prediction and explanation

function renderPredictions() {
  const ol = $('predictions');
  ol.replaceChildren();
  if (!state.prediction) return;
  for (const [rank, { class: c, probability: p }] of state.prediction.top.entries()) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testid = rank === 0 ? 'top-class' : 'class';
    b.dataset.class = c;
    b.setAttribute('aria-pressed', String(c === state.target));
    b.innerHTML = '<span class="name"></span><span class="prob"></span><span class="bar"><span></span></span>';
    b.querySelector('.name').textContent = className(c);
    b.querySelector('.prob').textContent = `${(p * 100).toFixed(p >= 0.001 ? 1 : 3)} %`;
    b.querySelector('.bar > span').style.width = `${Math.max(0.5, p * 100)}%`;
    b.title = `class ${c}; logit ${state.prediction.logits[c].toFixed(3)}`;
    b.onclick = () => selectTarget(c);
    li.append(b);
    ol.append(li);
  }
}

async function selectTarget(c) {
  state.target = c;
  clearCompare();
  renderPredictions();
  syncEvaluation();
  await explain();
}

function explainOptions() {
  const method = document.querySelector('input[name="method"]:checked').value;
  const o = { target: state.target, method, start: $('start').value, quantize: $('quantize').checked ? 8 : 0 };
  if (method === 'lrp') {
    o.composite = $('composite').value;
    o.variant = $('variant').value;
  }
  return o;
}

const imageKey = () => `${state.model.key}|${state.image.item.key}|${JSON.stringify(state.model.preprocess)}|${JSON.stringify(state.model.resize)}`;

async function explain() {
  if (!state.image || state.target === null) return;
  const options = explainOptions();
  const key = `${imageKey()}|${JSON.stringify(options)}`;
  const hit = state.cache.get(key);
  if (hit) {
    state.explanation = hit;
    showExplanation();
    return;
  }
  const token = ++state.seq.explain;
  try {
    const t0 = performance.now();
    const res = await busy(`Explaining “${className(state.target)}”…`, (report) =>
      state.engine.request('explain', { options }, { onProgress: stage(report) }),
    );
    const ms = performance.now() - t0;
    const result = { summary: res.summary, map: res.map, relevance: res.relevance, options, key, ms };
    state.cache.set(key, result);
    while (state.cache.size > 40) state.cache.delete(state.cache.keys().next().value);
    if (token !== state.seq.explain) return;
    state.explanation = result;
    showExplanation();
  } catch (e) {
    if (!(e instanceof EngineError && e.trap)) notify(`Could not explain: ${errorText(e)}`, 'error', 'explain-error');
  }
}

function display() {
  return {
    cmap: $('colormap').value,
    sign: $('sign').value,
    alpha: Number($('opacity').value),
    clip: Number($('clip').value),
  };
}

function paint(canvas, rgba, w, h) {
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d', { willReadFrequently: true }).putImageData(new ImageData(rgba, w, h), 0, 0);
}

function draw(map, width, height, canvas) {
  const { base } = state.image;
  const r = renderOverlay({ base: base.rgba, width: base.width, height: base.height, map, mapWidth: width, mapHeight: height, ...display() });
  paint(canvas, r.overlay, base.width, base.height);
  return r;
}

function showExplanation() {
  const ex = state.explanation;
  if (!ex || !state.image) return;
  const { summary, map } = ex;
  const r = draw(map, summary.width, summary.height, $('overlay'));
  state.rendered = { ...r, width: state.image.base.width, height: state.image.base.height, mapWidth: summary.width, mapHeight: summary.height };
  $('overlay').classList.remove('empty');
  $('stage-empty').hidden = true;
  drawLegend(r.scale);
  showConservation(summary, ex.options);
  for (const id of ['download-overlay', 'download-heatmap', 'download-npy']) $(id).disabled = false;
  $('compare-button').disabled = false;
  const what = ex.options.method === 'gradient' ? 'gradient × input' : `LRP, ${ex.options.composite}, ${ex.options.variant}`;
  const took = ex.ms ? ` · ${(ex.ms / 1000).toFixed(ex.ms < 1000 ? 2 : 1)} s` : '';
  $('caption').textContent = `${describeImage()} — “${className(summary.target)}” (${what})${took}`;
  window.__lastExplain = {
    seq: ++state.seq.render,
    map: ex.map,
    width: summary.width,
    height: summary.height,
    summary,
    options: ex.options,
    model: state.model.key,
    image: state.image.item.name,
  };
  document.body.dataset.explained = String(state.seq.render);
}

function fmt(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(6) : v.toExponential(3);
}

function showConservation(s, options) {
  $('start-relevance').textContent = fmt(s.startRelevance);
  $('input-sum').textContent = fmt(s.inputRelevanceSum);
  const rel = $('relative-error');
  const conserving = options.method === 'lrp';
  const ok = s.conservationError <= 1e-4;
  if (conserving) {
    rel.textContent = s.conservationError.toExponential(2);
    rel.dataset.value = String(s.conservationError);
    rel.title = '';
  } else {
    // conservation is not a property of gradient × input: there is no error to speak of
    rel.textContent = 'n/a';
    delete rel.dataset.value;
    rel.title = 'not applicable: gradient × input is not meant to conserve relevance';
  }
  rel.className = conserving ? (ok ? 'good' : 'warn') : '';
  let note;
  if (!conserving) note = 'Gradient × input is not meant to conserve relevance, so no relative error is given.';
  else if (ok) note = 'Conserved: the pixels carry the relevance the explanation started from.';
  else if (options.composite === 'reference') note = 'The authors’ rules lose some relevance (max-pool substitute, empty windows); “conserving” does not.';
  else note = 'Relevance is not conserved exactly with these rules.';
  $('conservation-note').textContent = note;

  const blocks = $('blocks-table');
  blocks.replaceChildren();
  if (s.blocks.length) {
    blocks.innerHTML =
      '<thead><tr><th>addition</th><th>shortcut</th><th title="Σ R arriving at the addition">Σ R in</th>' +
      '<th title="share sent down the shortcut">→ skip</th><th title="share sent down the residual branch">→ main</th></tr></thead><tbody></tbody>';
    const tb = blocks.querySelector('tbody');
    const pct = (v, of) => (of !== 0 ? `${((v / of) * 100).toFixed(1)} %` : '—');
    for (const b of s.blocks) {
      const tr = document.createElement('tr');
      const cells = [b.node, b.projection ? 'projection' : 'identity', fmt(b.relevance), pct(b.shortcut, b.relevance), pct(b.main, b.relevance)];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      const back = b.block_input === null || b.block_input === undefined ? '' : `; Σ R at the block input ${fmt(b.block_input)}`;
      tr.title = `${b.node}: Σ R ${fmt(b.relevance)} → shortcut ${fmt(b.shortcut)} + main ${fmt(b.main)}${back}`;
      tb.append(tr);
    }
  } else {
    blocks.innerHTML = '<tbody><tr><td>no residual additions for this method</td></tr></tbody>';
  }

  const ledger = $('ledger-table');
  ledger.innerHTML = '<thead><tr><th>layer</th><th>kind</th><th>Σ R</th></tr></thead><tbody></tbody>';
  const tb = ledger.querySelector('tbody');
  for (const l of s.ledger) {
    const tr = document.createElement('tr');
    for (const c of [l.node, l.kind, fmt(l.relevance)]) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    tr.firstChild.title = l.node;
    tb.append(tr);
  }
}

function drawLegend(scale) {
  const c = $('colorbar');
  const { cmap, sign } = display();
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(256, 12);
  const lut = colormapLut(cmap);
  for (let x = 0; x < 256; x++) {
    for (let y = 0; y < 12; y++) {
      const o = (y * 256 + x) * 4;
      img.data.set([lut[x * 3], lut[x * 3 + 1], lut[x * 3 + 2], 255], o);
    }
  }
  ctx.putImageData(img, 0, 0);
  const s = scale ? scale.toExponential(1) : '0';
  $('legend-min').textContent = sign === 'signed' ? `−${s}` : '0';
  $('legend-max').textContent = sign === 'absolute' ? `|R| ${s}` : `+${s}`;
}

function rerender() {
  $('opacity-value').textContent = $('opacity').value;
  $('clip-value').textContent = $('clip').value;
  drawLegend(state.rendered?.scale);
  if (state.explanation) showExplanation();
  for (const [key, r] of state.compare) {
    const canvas = document.querySelector(`[data-variant="${key}"] canvas`);
    if (canvas && r.map) draw(r.map, r.summary.width, r.summary.height, canvas);
  }
}

// ---------------------------------------------------------------------------------------
// Side-by-side comparison

function clearCompare() {
  state.seq.compare++;
  state.compare.clear();
  $('compare-grid').replaceChildren();
}

async function compareAll() {
  if (!state.image || state.target === null) return;
  clearCompare();
  const token = state.seq.compare;
  const base = explainOptions();
  const composite = $('composite').value;
  const list = VARIANTS.map((v) => ({ key: v, options: { ...base, method: 'lrp', composite, variant: v } }));
  list.push({ key: 'gradient', options: { target: base.target, start: base.start, quantize: base.quantize, method: 'gradient' } });
  const grid = $('compare-grid');
  for (const { key, options } of list) {
    const cell = document.createElement('button');
    cell.type = 'button';
    cell.className = 'cell pending';
    cell.dataset.variant = key;
    cell.dataset.testid = `compare-${key}`;
    const c = canvasOf(state.image.base.width, state.image.base.height);
    const t = document.createElement('span');
    t.className = 'title';
    t.textContent = key === 'gradient' ? 'gradient × input' : key;
    const sub = document.createElement('span');
    sub.className = 'sub';
    sub.textContent = 'computing…';
    cell.append(c, t, sub);
    cell.onclick = () => {
      document.querySelector(`input[name="method"][value="${options.method}"]`).checked = true;
      if (options.variant) $('variant').value = options.variant;
      syncEvaluation();
      explain();
      window.scrollTo({ top: 0, behavior: 'smooth' });
    };
    grid.append(cell);
  }
  try {
    await busy(`Comparing ${list.length} explanations…`, (report) =>
      state.engine.request('explainMany', { list }, {
        onProgress: (msg) => {
          report(`Compared ${msg.index + 1} of ${msg.total}…`, (msg.index + 1) / msg.total);
          if (token !== state.seq.compare) return;
          state.compare.set(msg.key, { summary: msg.summary, map: msg.map });
          const cell = grid.querySelector(`[data-variant="${msg.key}"]`);
          draw(msg.map, msg.summary.width, msg.summary.height, cell.querySelector('canvas'));
          cell.classList.remove('pending');
          const err = msg.key === 'gradient' ? 'n/a' : msg.summary.conservationError.toExponential(1);
          cell.querySelector('.sub').textContent = `Σ R ${fmt(msg.summary.inputRelevanceSum)} · rel. error ${err}`;
        },
      }),
    );
  } catch (e) {
    if (!(e instanceof EngineError && e.trap)) notify(`Comparison failed: ${errorText(e)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Insertion and deletion (the paper's faithfulness metrics), computed by the engine

// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies
const EVAL_METHODS = new Map([
  ['flows_skip', { label: 'flows_skip', color: '#0072b2' }],
  ['flows_skip_simple', { label: 'flows_skip_simple', color: '#56b4e9' }],
  ['latest', { label: 'latest', color: '#009e73' }],
  ['simple', { label: 'simple', color: '#cc79a7' }],
  ['conventional', { label: 'conventional LRP', color: '#d55e00' }],
  ['gradient', { label: 'gradient × input', color: '#e69f00' }],
  ['random', { label: 'random', color: '#8c8c8c', dash: [5, 4] }],
]);

/** The method shown above, as a key of EVAL_METHODS. */
function currentMethod() {
  const method = document.querySelector('input[name="method"]:checked').value;
  return method === 'gradient' ? 'gradient' : $('variant').value;
}

function evalSettings() {
  const quantize = Number($('eval-quantize').value);
  const step = Number($('eval-step').value);
  return { quantize, step, stepOk: Number.isInteger(step) && step >= 1 };
}

/** Everything the curves depend on besides the method; null when there is nothing to evaluate. */
function evalContext() {
  if (!state.model || !state.image || state.target === null) return null;
  const { quantize, step } = evalSettings();
  return JSON.stringify([imageKey(), state.target, $('composite').value, $('start').value, quantize, step]);
}

function evalOptions(key) {
  const { quantize, step } = evalSettings();
  const o = { target: state.target, quantize, step };
  if (key === 'random') return { ...o, method: 'random', seed: 0 };
  if (key === 'gradient') return { ...o, method: 'gradient', start: $('start').value };
  return { ...o, method: 'lrp', composite: $('composite').value, variant: key, start: $('start').value };
}

/** The current method first, then the ticked ones. */
function shownMethods() {
  const cur = currentMethod();
  return [cur, ...[...EVAL_METHODS.keys()].filter((k) => k !== cur && state.evaluation.checked.has(k))];
}

/** Drops curves that no longer match the photo, class or settings, and redraws. */
function syncEvaluation() {
  const ev = state.evaluation;
  const context = evalContext();
  if (context !== ev.context) {
    ev.context = context;
    ev.results.clear();
    if (ev.running) {
      // the run's remaining methods are not requested; its last answer is dropped
      state.seq.evaluate++;
      ev.running = null;
    }
  }
  renderEvaluation();
}

/** Evaluates every shown method that has no curves yet, one request at a time. */
async function evaluate() {
  const ev = state.evaluation;
  if (ev.running) return;
  const fail = (text) => notify(text, 'error', 'evaluate-error');
  if (!state.model) return fail('Load a model first.');
  if (!state.image) return fail('Insertion and deletion need a photo: drop one or pick a sample first.');
  if (state.image.kind !== 'photo') {
    return fail(
      `Insertion and deletion black out pixels of a photo; ${state.image.item.name} is a preprocessed tensor. ` +
        'Drop or pick a photo to evaluate.',
    );
  }
  if (state.target === null) return fail('Pick a class to evaluate first.');
  if (!evalSettings().stepOk) {
    $('eval-step').focus();
    return fail(`Pixels per step: “${$('eval-step').value}” is not a whole number of at least 1.`);
  }
  syncEvaluation();
  const token = ++state.seq.evaluate;
  ev.running = { token, finished: 0, key: null, done: 0, total: 0 };
  renderEvaluation();
  try {
    for (;;) {
      const key = shownMethods().find((k) => !ev.results.has(k)); // a box ticked meanwhile joins the run
      if (!key || token !== state.seq.evaluate) break;
      Object.assign(ev.running, { key, done: 0, total: 0 });
      renderProgress();
      const options = evalOptions(key);
      const context = ev.context;
      const t0 = performance.now();
      const res = await state.engine.request('evaluate', { options }, {
        onProgress: (msg) => {
          if (token !== state.seq.evaluate || !msg.total) return;
          Object.assign(ev.running, { done: msg.done, total: msg.total });
          renderProgress();
        },
      });
      if (token !== state.seq.evaluate || context !== ev.context) break;
      ev.results.set(key, { key, options, evaluation: res.evaluation, ms: performance.now() - t0 });
      ev.running.finished++;
      renderEvaluation();
    }
  } catch (e) {
    // a trap is reported by recover(); a stop by stopEvaluation()
    if (!(e instanceof EngineError && e.trap)) fail(`Could not evaluate: ${errorText(e)}`);
  } finally {
    if (ev.running?.token === token) ev.running = null;
    renderEvaluation();
  }
}

/** Ends a running evaluation by replacing the worker (the engine cannot be interrupted otherwise). */
async function stopEvaluation() {
  const ev = state.evaluation;
  if (!ev.running) return;
  state.seq.evaluate++;
  ev.running = null;
  renderEvaluation();
  state.engine.stop('the evaluation was stopped');
  try {
    await busy('Stopping the evaluation…', () => respawn(true));
  } catch (e) {
    notify(`The engine could not be restarted: ${errorText(e)}`, 'error', 'engine-error');
    return;
  }
  notify('Evaluation stopped; the curves finished before are kept.', 'info', 'evaluate-stopped');
  await explain(); // an explanation asked for meanwhile went with the old worker
}

function imagesPerCurve(step) {
  const { height, width } = state.model.info.input;
  return Math.ceil((height * width) / step);
}

function renderProgress() {
  const run = state.evaluation.running;
  const box = $('eval-progress');
  box.hidden = !run;
  if (!run) {
    $('eval-progress-text').textContent = '';
    return;
  }
  const count = run.finished + shownMethods().filter((k) => !state.evaluation.results.has(k)).length;
  const label = EVAL_METHODS.get(run.key)?.label ?? '…';
  const passes = run.total ? `${run.done} / ${run.total} forward passes` : 'explaining…';
  $('eval-progress-text').textContent = `Evaluating ${label} (${Math.min(run.finished + 1, count)} of ${count}): ${passes}`;
  const bar = $('eval-progress-bar');
  bar.value = Math.min(1, (run.finished + (run.total ? run.done / run.total : 0)) / Math.max(1, count));
}

function renderEvalMethods() {
  const box = $('eval-methods');
  const cur = currentMethod();
  const ev = state.evaluation;
  if (box.querySelectorAll('input').length !== EVAL_METHODS.size) {
    box.querySelectorAll('label').forEach((l) => l.remove());
    for (const [key, { label, color }] of EVAL_METHODS) {
      const l = document.createElement('label');
      l.className = 'check';
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.value = key;
      input.dataset.testid = `eval-method-${key}`;
      input.onchange = () => {
        if (input.checked) ev.checked.add(key);
        else ev.checked.delete(key);
        renderEvaluation();
        // once curves are on screen, a ticked method is added right away
        if (input.checked && !ev.running && ev.results.size && !ev.results.has(key)) evaluate();
      };
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.borderColor = color;
      sw.setAttribute('aria-hidden', 'true');
      const text = document.createElement('span');
      text.className = 'name';
      l.append(input, sw, text);
      l.dataset.label = label;
      box.append(l);
    }
  }
  for (const l of box.querySelectorAll('label')) {
    const input = l.querySelector('input');
    const isCurrent = input.value === cur;
    input.checked = isCurrent || ev.checked.has(input.value);
    input.disabled = isCurrent;
    l.querySelector('.name').textContent = isCurrent ? `${l.dataset.label} (current)` : l.dataset.label;
    l.title = isCurrent ? 'the method shown above is always evaluated' : '';
  }
}

function renderEvaluation() {
  const ev = state.evaluation;
  renderEvalMethods();
  renderProgress();
  const running = Boolean(ev.running);
  for (const id of ['evaluate-button', 'evaluate-shortcut']) $(id).disabled = !state.model || running;
  $('evaluate-stop').hidden = !running;
  $('evaluate-section').setAttribute('aria-busy', String(running));
  document.body.dataset.evaluating = String(running);

  const { quantize, step, stepOk } = evalSettings();
  $('eval-step-hint').textContent =
    state.model && stepOk
      ? `${imagesPerCurve(step)} images per curve, up to ${2 * imagesPerCurve(step)} forward passes per method` +
        (quantize ? ' (fewer: repeated masks run once)' : '')
      : '';

  const shown = shownMethods().filter((k) => ev.results.has(k));
  const summary = $('eval-summary');
  if (!ev.context) {
    summary.textContent = state.image?.kind === 'tensor'
      ? 'Insertion and deletion need a photo (not a preprocessed tensor).'
      : 'Pick a photo and a class, then press Evaluate.';
  } else {
    const first = ev.results.values().next().value?.evaluation;
    const cls = state.model.names ? `“${className(state.target)}” (class ${state.target})` : `class ${state.target}`;
    const ranking = quantize ? `${quantize}-level heat quantization` : 'raw relevance';
    const p = first ? ` · probability on the full photo ${first.probability.toFixed(4)}` : '';
    const missing = shownMethods().filter((k) => !ev.results.has(k)).map((k) => EVAL_METHODS.get(k).label);
    const todo = missing.length && !running ? ` · press Evaluate for ${missing.join(', ')}` : '';
    summary.textContent = `${state.image.item.name}, ${cls}${p} · ranking: ${ranking}, ${step} pixels per step${todo}`;
  }

  $('eval-results').hidden = shown.length === 0;
  if (!shown.length) {
    ev.rows = null;
    window.__lastEvaluation = null;
    return;
  }
  const rows = shown.map((key) => ({ key, ...EVAL_METHODS.get(key), ...ev.results.get(key), current: key === currentMethod() }));
  ev.rows = rows;
  drawEvaluationPlots(rows);
  renderLegend(rows);
  renderEvalTable(rows);
  window.__lastEvaluation = {
    seq: ++ev.drawn,
    context: ev.context,
    target: state.target,
    model: state.model.key,
    image: state.image.item.name,
    rows: rows.map((r) => ({ key: r.key, options: r.options, ms: r.ms, ...r.evaluation })),
  };
  document.body.dataset.evaluated = String(ev.drawn);
}

function drawEvaluationPlots(rows) {
  const reference = rows[0].evaluation.probability;
  for (const curve of ['insertion', 'deletion']) {
    const canvas = $(`${curve}-plot`);
    const series = rows.map((r) => {
      const c = r.evaluation[curve];
      const x = c.kept.map((k) => (curve === 'insertion' ? k : 1 - k));
      return { ...r, x, y: c.probabilities };
    });
    plotCurves(canvas, curve, series, reference);
    const what = rows.map((r) => `${r.label} ${r.evaluation[curve].auc.toFixed(3)}`).join(', ');
    canvas.setAttribute('aria-label', `${curve === 'insertion' ? 'Insertion' : 'Deletion'} curves, probability of the class against the fraction of pixels ${curve === 'insertion' ? 'inserted' : 'deleted'}; areas: ${what}`);
  }
}

/** Probability against the fraction of pixels inserted (deleted), both axes 0..1. */
function plotCurves(canvas, curve, series, reference) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(240, Math.round(canvas.clientWidth || 420));
  const h = Math.round(w * 0.7);
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const css = getComputedStyle(document.documentElement);
  const colour = (name, dflt) => css.getPropertyValue(name).trim() || dflt;
  const [text, muted, grid] = [colour('--text', '#1d2330'), colour('--muted', '#5d6778'), colour('--line', '#dde1e8')];
  const m = { left: 48, right: 20, top: 10, bottom: 40 };
  const pw = w - m.left - m.right;
  const ph = h - m.top - m.bottom;
  const X = (v) => m.left + v * pw;
  const Y = (v) => m.top + (1 - v) * ph;
  ctx.clearRect(0, 0, w, h);
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  ctx.setLineDash([]);
  for (let i = 0; i <= 4; i++) {
    const v = i / 4;
    ctx.strokeStyle = grid;
    ctx.beginPath();
    ctx.moveTo(X(v), Y(0));
    ctx.lineTo(X(v), Y(1));
    ctx.moveTo(X(0), Y(v));
    ctx.lineTo(X(1), Y(v));
    ctx.stroke();
    ctx.fillStyle = muted;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.fillText(`${i * 25} %`, X(v), Y(0) + 4);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(v.toFixed(2), X(0) - 5, Y(v));
  }
  ctx.strokeStyle = muted;
  ctx.strokeRect(X(0), Y(1), pw, ph);
  ctx.fillStyle = text;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'bottom';
  ctx.fillText(`pixels ${curve === 'insertion' ? 'inserted' : 'deleted'}, most relevant first`, X(0.5), h - 2);
  ctx.save();
  ctx.translate(11, Y(0.5));
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('probability of the class', 0, 0);
  ctx.restore();
  // the full photo's probability, for reference
  ctx.strokeStyle = muted;
  ctx.setLineDash([2, 3]);
  ctx.beginPath();
  ctx.moveTo(X(0), Y(reference));
  ctx.lineTo(X(1), Y(reference));
  ctx.stroke();
  // the current method last, on top
  const order = [...series.filter((s) => !s.current), ...series.filter((s) => s.current)];
  for (const s of order) {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = s.current ? 2.5 : 1.5;
    ctx.setLineDash(s.dash ?? []);
    ctx.beginPath();
    s.x.forEach((x, i) => (i ? ctx.lineTo(X(x), Y(s.y[i])) : ctx.moveTo(X(x), Y(s.y[i]))));
    ctx.stroke();
    ctx.setLineDash([]);
    // dots where a quantized ranking makes few distinct images; else only the last one (the full
    // photo for insertion, black for deletion)
    const dots = s.x.map((x, i) => [x, s.y[i]]).filter(([x, y], i) => i === 0 || x !== s.x[i - 1] || y !== s.y[i - 1]);
    for (const [x, y] of dots.length <= 40 ? dots : dots.slice(-1)) {
      ctx.beginPath();
      ctx.arc(X(x), Y(y), s.current ? 3 : 2, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

function renderLegend(rows) {
  const ul = $('eval-legend');
  ul.replaceChildren();
  for (const r of rows) {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = r.dash ? 'swatch dashed' : 'swatch';
    sw.style.borderColor = r.color;
    sw.setAttribute('aria-hidden', 'true');
    li.append(sw, `${r.label}${r.current ? ' (current)' : ''}`);
    ul.append(li);
  }
  const li = document.createElement('li');
  const sw = document.createElement('span');
  sw.className = 'swatch dotted';
  sw.setAttribute('aria-hidden', 'true');
  li.append(sw, 'full photo');
  ul.append(li);
}

function renderEvalTable(rows) {
  const tb = $('eval-table').querySelector('tbody');
  tb.replaceChildren();
  for (const r of rows) {
    const e = r.evaluation;
    const tr = document.createElement('tr');
    tr.dataset.method = r.key;
    tr.dataset.testid = `eval-row-${r.key}`;
    if (r.current) tr.className = 'current';
    const name = document.createElement('th');
    name.scope = 'row';
    const sw = document.createElement('span');
    sw.className = r.dash ? 'swatch dashed' : 'swatch';
    sw.style.borderColor = r.color;
    sw.setAttribute('aria-hidden', 'true');
    name.append(sw, `${r.label}${r.current ? ' (current)' : ''}`);
    name.title = r.key === 'random' ? 'a seeded random ranking of the pixels' : r.options.method === 'lrp' ? `LRP, ${r.options.composite}, ${r.options.variant}` : 'gradient × input';
    tr.append(name);
    for (const [field, v, text] of [
      ['insertion', e.insertion.auc, e.insertion.auc.toFixed(3)],
      ['deletion', e.deletion.auc, e.deletion.auc.toFixed(3)],
      ['id', e.id, e.id.toFixed(3)],
      ['passes', e.forwardPasses, String(e.forwardPasses)],
      ['time', r.ms, `${(r.ms / 1000).toFixed(1)} s`],
    ]) {
      const td = document.createElement('td');
      td.dataset.field = field;
      td.dataset.value = String(v);
      td.textContent = text;
      tr.append(td);
    }
    tb.append(tr);
  }
}

function csvField(v) {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function downloadEvaluationCsv() {
  const data = window.__lastEvaluation;
  if (!data) return;
  const head = ['model', 'photo', 'class', 'class_name', 'method', 'composite', 'start', 'quantize', 'step', 'curve', 'auc', 'image', 'fraction_of_pixels', 'probability'];
  const lines = [head.join(',')];
  for (const r of data.rows) {
    for (const curve of ['insertion', 'deletion']) {
      const c = r[curve];
      c.probabilities.forEach((p, i) => {
        const fraction = curve === 'insertion' ? c.kept[i] : 1 - c.kept[i];
        const o = r.options;
        const row = [data.model, data.image, data.target, className(data.target), r.key, o.composite ?? '', o.start ?? '', o.quantize, o.step, curve, c.auc, i, fraction, p];
        lines.push(row.map(csvField).join(','));
      });
    }
  }
  const stem = `${data.image.replace(/\.[^.]+$/, '')}.${className(data.target).replace(/[^\w-]+/g, '_')}`;
  save(new TextEncoder().encode(`${lines.join('\n')}\n`), `${stem}.insertion_deletion.csv`, 'text/csv');
}

// ---------------------------------------------------------------------------------------
// Downloads

function fileStem() {
  const ex = state.explanation;
  const img = state.image.item.name.replace(/\.[^.]+$/, '');
  const cls = className(ex.summary.target).replace(/[^\w-]+/g, '_');
  const how = ex.options.method === 'gradient' ? 'gradient_x_input' : `${ex.options.composite}.${ex.options.variant}`;
  return `${img}.${cls}.${how}`;
}

function save(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = $('download-link');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function downloadOverlay() {
  const r = state.rendered;
  save(await encodePng(r.overlay, r.width, r.height), `${fileStem()}.overlay.png`, 'image/png');
}

async function downloadHeatmap() {
  const r = state.rendered;
  save(await encodePng(r.heat, r.mapWidth, r.mapHeight), `${fileStem()}.heatmap.png`, 'image/png');
}

function downloadNpy() {
  const ex = state.explanation;
  save(encodeNpy(ex.relevance, state.model.info.input.shape), `${fileStem()}.relevance.npy`, 'application/octet-stream');
}

// ---------------------------------------------------------------------------------------
// Recovery when the engine dies

async function recover(reason) {
  const now = Date.now();
  state.crashes = state.crashes.filter((t) => now - t < 60000);
  state.crashes.push(now);
  if (!state.engine.started) {
    notify(`The engine could not start: ${reason}`, 'error', 'engine-error');
    setStatus('Engine unavailable');
    return;
  }
  if (state.crashes.length > 3) {
    notify(`The engine stopped again (${reason}). Reload the page to start over.`, 'error', 'engine-error');
    return;
  }
  const withImage = state.crashes.length <= 2; // a photo that crashes twice is not fed again
  const note = notify(`The engine stopped (${reason}); restarting it…`, 'info', 'restart-notice');
  try {
    await busy('Restarting the engine…', () => respawn(withImage));
    const what = state.image && withImage ? 'the model and the photo were reloaded' : 'the model was reloaded';
    note.querySelector('.text').textContent = `The engine stopped (${reason}). It was restarted and ${what}.`;
    if (state.image && !withImage) {
      state.image = null;
      state.explanation = null;
      syncEvaluation();
    }
  } catch (e) {
    note.remove();
    notify(`The engine could not be restarted: ${errorText(e)}`, 'error', 'engine-error');
  }
}

/** A fresh worker with the current model (and photo): what the page had before it stopped. */
async function respawn(withImage = true) {
  await state.engine.respawn(async (direct) => {
    showEngine(await direct.request('init'));
    if (state.model) await direct.request('load', { bytes: await modelBytes(state.model), preprocess: state.model.preprocess });
    if (state.image && withImage) await feed(state.image, undefined, direct);
  });
}

async function modelBytes(m) {
  if (m.bytes) return m.bytes;
  return fetchModelBytes(m.url, m.sha256, () => {});
}

// ---------------------------------------------------------------------------------------
// Wiring

function bind() {
  const sel = $('model-select');
  sel.onchange = () => {
    const cand = state.candidates.find((c) => c.key === sel.value);
    if (cand && cand.key !== state.model?.key) loadModel(cand);
  };
  $('model-file').onchange = (e) => {
    addFiles(e.target.files);
    e.target.value = '';
  };
  $('photo-file').onchange = (e) => {
    addFiles(e.target.files);
    e.target.value = '';
  };
  $('preprocess-form').onsubmit = applyPreprocessForm;
  const dz = $('dropzone');
  dz.onclick = (e) => {
    if (e.target.tagName !== 'LABEL') $('photo-file').click();
  };
  dz.onkeydown = (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      $('photo-file').click();
    }
  };

  const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
  let depth = 0;
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    $('drop-overlay').hidden = false;
    dz.classList.add('over');
  });
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) {
      $('drop-overlay').hidden = true;
      dz.classList.remove('over');
    }
  });
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    $('drop-overlay').hidden = true;
    dz.classList.remove('over');
    if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files);
  });
  window.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (!files.length) {
      for (const item of e.clipboardData?.items ?? []) {
        if (item.kind === 'file') {
          const f = item.getAsFile();
          if (f) files.push(f);
        }
      }
    }
    if (files.length) {
      e.preventDefault();
      addFiles(files);
    }
  });

  for (const el of document.querySelectorAll('input[name="method"]')) {
    el.onchange = () => {
      syncEvaluation();
      explain();
    };
  }
  for (const id of ['variant', 'composite', 'start', 'quantize']) {
    $(id).onchange = () => {
      if (id !== 'variant') clearCompare();
      syncEvaluation();
      explain();
    };
  }
  for (const id of ['colormap', 'sign', 'opacity', 'clip']) $(id).oninput = rerender;
  $('compare-button').onclick = compareAll;
  $('evaluate-button').onclick = evaluate;
  $('evaluate-shortcut').onclick = () => {
    $('evaluate-section').scrollIntoView({ behavior: 'smooth', block: 'start' });
    evaluate();
  };
  $('evaluate-stop').onclick = stopEvaluation;
  $('evaluate-form').onsubmit = (e) => {
    e.preventDefault();
    evaluate();
  };
  $('eval-quantize').onchange = syncEvaluation;
  $('eval-step').onchange = syncEvaluation;
  $('eval-csv').onclick = downloadEvaluationCsv;
  const redraw = () => {
    const rows = state.evaluation.rows;
    if (rows?.length && !$('eval-results').hidden) drawEvaluationPlots(rows);
  };
  new ResizeObserver(redraw).observe($('eval-results'));
  matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', redraw);
  $('download-overlay').onclick = downloadOverlay;
  $('download-heatmap').onclick = downloadHeatmap;
  $('download-npy').onclick = downloadNpy;
  const go = () => {
    const v = $('target-input').value.trim();
    if (!v || !state.prediction) return;
    const n = state.prediction.logits.length;
    let c = /^\d+/.test(v) ? parseInt(v, 10) : state.model.names?.findIndex((name) => name.toLowerCase() === v.toLowerCase()) ?? -1;
    if (!(c >= 0 && c < n)) {
      notify(`No class “${v}” (this model has classes 0–${n - 1}).`);
      return;
    }
    selectTarget(c);
  };
  $('target-go').onclick = go;
  $('target-input').onkeydown = (e) => {
    if (e.key === 'Enter') go();
  };

  const cm = $('colormap');
  for (const [name, { label }] of Object.entries(COLORMAPS)) cm.append(new Option(label, name));
  cm.value = 'jet';
}

async function loadManifests() {
  try {
    state.manifest = await fetchJson('models/models.json');
  } catch (e) {
    notify(`No bundled models (${errorText(e)}). Run ./build.sh assets, or open your own .onnx model.`, 'info');
  }
  const wantsImagenet = state.manifest?.models?.some((m) => m.classes === 'imagenet');
  try {
    state.imagenet = await fetchJson(`models/${state.manifest?.imagenet_classes?.file ?? 'imagenet_classes.json'}`);
  } catch (e) {
    if (wantsImagenet) notify(`ImageNet class names unavailable (${errorText(e)}); classes are shown by number.`, 'info');
  }
  try {
    state.photos = await fetchJson('photos/photos.json');
  } catch {
    state.photos = [];
  }
  // `./build.sh assets` lists the test models in models/fixtures/index.json; without the list, probe them
  const listed = await fetchJson('models/fixtures/index.json').catch(() => null);
  const fixtures = Array.isArray(listed)
    ? FIXTURES.filter((f) => listed.includes(`${f[0]}.onnx`))
    : await Promise.all(FIXTURES.map(async (f) => ((await exists(`models/fixtures/${f[0]}.onnx`)) ? f : null)));
  state.candidates = [
    ...(state.manifest?.models ?? []).map(candidateFromManifest),
    ...fixtures.filter(Boolean).map(candidateFromFixture),
  ];
}

/** The models to try at start, best first: the requested one, the default, then the rest. */
function startOrder(want) {
  return [
    state.candidates.find((c) => c.key === want || c.key === `fixtures/${want}`),
    state.candidates.find((c) => c.key === DEFAULT_MODEL),
    ...state.candidates,
  ].filter((c, i, all) => c && all.indexOf(c) === i);
}

async function main() {
  bind();
  renderEvaluation();
  drawLegend(0);
  $('overlay').classList.add('empty');
  const params = new URLSearchParams(location.search);
  const want = params.get('model') ?? DEFAULT_MODEL;
  state.engine = new Engine((reason) => recover(reason));
  // while the engine compiles: the manifests, then the first model's bytes and the requested photo
  let photo = null;
  const manifests = loadManifests().then(() => {
    const first = startOrder(want)[0];
    if (first) prefetchModel(first);
    const sample = state.photos.find((p) => p.file === params.get('photo'));
    if (sample) {
      photo = sampleItem(sample);
      photo.catch(() => {}); // reported below, where it is awaited
    }
  });
  try {
    await busy('Starting the engine…', async () => {
      const [answer] = await Promise.all([state.engine.request('init'), manifests]);
      showEngine(answer);
      state.engine.started = true;
    });
  } catch (e) {
    // a worker that died while starting is reported by recover()
    if (!(e instanceof EngineError && e.trap)) notify(`The engine could not start: ${errorText(e)}`, 'error', 'engine-error');
    setStatus('Engine unavailable');
    document.body.dataset.ready = 'true';
    return;
  }
  fillModelSelect();
  renderSamples();
  for (const cand of startOrder(want)) {
    if (await loadModel(cand)) break;
  }
  if (photo && state.model) {
    try {
      await selectItem(await photo);
    } catch (e) {
      notify(`Could not open the sample ${params.get('photo')}: ${errorText(e)}`);
    }
  }
  setStatus(readyText());
  document.body.dataset.ready = 'true';
  started = true;
  flushIdle();
}

// Hooks for the page's end-to-end tests (and for the curious, from the console).
window.__lrp = {
  state,
  addFiles,
  /** The pixels the engine was fed for the current photo (RGBA, before its own resize). */
  fedImage() {
    const f = state.image?.fed;
    return f ? { rgba: Array.from(f.rgba), width: f.width, height: f.height, region: state.image.region } : null;
  },
  crash: () => state.engine.request('crash'),
  setRelevanceDisplay: (opts) => {
    for (const [k, v] of Object.entries(opts)) $(k).value = v;
    rerender();
  },
};

main();
