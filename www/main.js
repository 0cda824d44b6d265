// The page: wires the modules together and runs its state transitions, model → input → target →
// options. All computation on relevance happens in the engine's worker (engine.js, worker.js); all
// pixels are made by overlay.js; the DOM is the views' (views/*.js), which know nothing of each other.
//
//   protocol.js  the worker protocol (also the benchmark's)   engine.js   the worker behind promises
//   worker.js    the page's worker                            hooks.js    test hooks (off in normal use)
//   catalog.js   models and their bytes                       images.js   photos and tensors → model input
//   evaluation.js  the insertion/deletion run                 dom.js      small DOM helpers
//   batch.js     the evaluation over every sample of the model
//   photobatch.js  the user's photos explained in the background   address.js  the settings in the address
//   recovery.js  restarting the engine when it dies
//   pure, tested in Node: overlay.js, raster.js, plot.js, downloads.js, settings.js, zip.js
//   views/: status, models, inputs, options, explanation, conservation, comparison, evaluation, batch, photobatch

import * as address from './address.js';
import * as batch from './batch.js';
import { watchBuilds } from './builds.js';
import * as catalog from './catalog.js';
import { save } from './dom.js';
import { explanationFiles, explanationStem } from './downloads.js';
import { EngineClient, isStop, pageWorkerUrl } from './engine.js';
import * as evaluation from './evaluation.js';
import * as hooks from './hooks.js';
import { baselineOptions, baselines } from './methods.js';
import { describeImage, feedRequest, isModelFile, isSideFile, photoHint, prepare, readItems, sampleItem } from './images.js';
import { encodeNpy, encodePng } from './overlay.js';
import { recover } from './recovery.js';
import * as photobatch from './photobatch.js';
import { errorText } from './raster.js';
import * as comparison from './views/comparison.js';
import * as conservation from './views/conservation.js';
import * as explanationView from './views/explanation.js';
import * as inputs from './views/inputs.js';
import * as models from './views/models.js';
import * as options from './views/options.js';
import { busy, configureStatus, markStarted, notify, setStatus, showEngine, stage, whenIdle } from './views/status.js';

const state = {
  engine: null,
  capabilities: null, // the engine's constants: variants, composites, defaults, limits, preprocessing
  engineInfo: null, // the engine's answer to `init`: {simd, relaxed, engine, threads, relaxedSupported, isolated}
  imagenet: null,
  photos: [],
  candidates: [], // models that can be picked
  model: null, // {key, label, source, entry, bytes, preprocess, resize, info, names, note}
  items: [], // photos and tensors the user added: {key, name, kind, file|data, url, credit}
  pending: null, // {item, notice}: chosen before any model was ready, run once one has loaded
  image: null, // the current item, prepared for the current model
  prediction: null,
  target: null,
  explanation: null, // {summary, map, relevance, options, key, ms}
  cache: new Map(), // explanations by photo, model settings and options
  compare: new Map(), // variant key → {summary, map}
  seq: { image: 0, explain: 0, compare: 0, model: 0 }, // a later request makes an earlier answer stale
  rendered: null, // {overlay, heat, scale, width, height, mapWidth, mapHeight}
};

const className = (c) => state.model?.names?.[c] ?? `class ${c}`;
const imageKey = () => `${state.model.key}|${state.image.item.key}|${JSON.stringify(state.model.preprocess)}|${JSON.stringify(state.model.resize)}`;

function readyText() {
  if (!state.model) return 'No model loaded';
  return state.image ? `Ready — ${state.model.label}` : `Ready — drop a photo or pick a sample`;
}
configureStatus({ readyText, hasImage: () => Boolean(state.image) });

evaluation.init({ state, imageKey, className, notify, busy, restart: (withImage) => restart(withImage), explain: () => explain() });
const modelBytes = (m) => catalog.modelBytes(m, () => {}, whenIdle);
batch.init({ state, notify, modelBytes });
photobatch.init({ state, notify, modelBytes, options: (t) => options.read(t), display: explanationView.display, onView: (item) => selectItem(item) });
address.init({ current: () => ({ model: state.model, target: state.target, image: state.image }) });

// ---------------------------------------------------------------------------------------
// Model

async function loadModel(cand) {
  const prev = state.model;
  const token = ++state.seq.model;
  try {
    await busy(`Loading ${cand.label}…`, async (report) => {
      const bytes = await catalog.modelBytes(cand, report, whenIdle);
      report(`Compiling ${cand.label}…`);
      const wanted = cand.preprocess ? { ...cand.preprocess } : null; // null: the file's own or ImageNet's
      const side = cand.side ?? [];
      const { info } = await state.engine.request('load', { bytes, side, preprocess: wanted }, { onProgress: stage(report) });
      if (token !== state.seq.model) return;
      const preprocess = wanted ?? { ...info.preprocess };
      const { names, note } = catalog.resolveNames(cand, info, state.imagenet);
      const resize = catalog.resolveResize(cand, info);
      state.model = { ...cand, bytes, info, names, note, resize, preprocess };
      if (!state.candidates.includes(cand)) state.candidates.push(cand);
      cand.bytes = cand.source === 'file' ? bytes : undefined; // manifest models stay in the Cache API
    });
  } catch (e) {
    const still = prev ? ` Still using ${prev.label}.` : '';
    notify(`Could not load ${cand.label}: ${errorText(e)}${still}`, 'error', 'model-error');
    models.renderList(state.candidates, state.model?.key);
    return false;
  }
  if (token !== state.seq.model) return false;
  models.renderList(state.candidates, state.model.key);
  models.render(state.model);
  modelChosen();
  if (!state.image && state.pending) {
    const { item, notice } = state.pending;
    state.pending = null;
    notice.remove();
    await selectItem(item);
  } else await reloadImage();
  return true;
}

/**
 * A model was loaded: its display defaults (models.json `display`; the page's own for other models) set
 * every setting the user has not changed, and its own samples come first.
 */
function modelChosen() {
  const d = state.model.display ?? {};
  explanationView.applyDefaults(d);
  explanationView.renderLegend(0);
  options.applyDefaults(d);
  evaluation.applyStep(d.eval_step);
  inputs.renderSamples(catalog.sampleOrder(state.photos, state.model.key), pickSample);
  batch.sync();
  photobatch.sync();
  address.save();
}

/** The model's settings changed: forget what was computed and run the current item again. */
async function reloadImage() {
  state.cache.clear();
  const item = state.image?.item;
  clearImage();
  if (item) await selectItem(item);
}

async function applyPreprocess() {
  if (!state.model) return;
  try {
    const { preprocess, resize } = models.readPreprocess();
    await state.engine.request('preprocess', { preprocess });
    Object.assign(state.model, { preprocess, resize });
    await reloadImage();
  } catch (err) {
    notify(`Preprocessing not applied: ${errorText(err)}`);
    models.renderPreprocess(state.model);
  }
}

/** Opens the first of the dropped models, unless it is larger than the engine takes. */
/** Opens a dropped or picked model with the side files of its external data (`model.onnx.data`). */
async function openModelFile(models_, sideFiles, limit) {
  const still = state.model ? ` Still using ${state.model.label}.` : '';
  if (!models_.length) {
    const names = sideFiles.map((f) => f.name).join(', ');
    notify(`${names}: the external data of a model, not a model. Drop or pick it together with its .onnx file.${still}`, 'error', 'model-error');
    return;
  }
  if (models_.length > 1) notify(`Only one model at a time: opening ${models_[0].name}.`, 'info');
  const f = models_[0];
  // the limit is on what the engine holds: the model and its side files together
  const size = [f, ...sideFiles].reduce((s, x) => s + x.size, 0);
  if (size > limit) {
    const mb = Math.ceil(size / 1e6);
    const what = sideFiles.length ? 'the model and its external data are' : 'the file is';
    notify(`Could not load ${f.name}: ${what} ${mb} MB; models above ${limit / 1e6} MB are refused.${still}`, 'error', 'model-error');
    return;
  }
  let bytes;
  const side = [];
  try {
    bytes = new Uint8Array(await f.arrayBuffer());
    for (const s of sideFiles) side.push({ name: s.name, bytes: new Uint8Array(await s.arrayBuffer()) });
  } catch (e) {
    notify(`Could not load ${f.name}: the file could not be read (${errorText(e)}).${still}`, 'error', 'model-error');
    return;
  }
  await loadModel(catalog.candidateFromFile(f, bytes, side));
}

// ---------------------------------------------------------------------------------------
// Input

async function addFiles(fileList, origin = 'drop') {
  const files = [...fileList];
  if (!files.length) return;
  const modelFiles = files.filter(isModelFile);
  const sideFiles = files.filter(isSideFile);
  if (modelFiles.length || sideFiles.length) {
    await openModelFile(modelFiles, sideFiles, (await started).limits.maxModelBytes);
  }
  const { items, errors } = await readItems(files);
  for (const { file, kind, text } of errors) {
    if (kind === 'tensor') notify(`Could not read ${file.name}: ${text}`, 'error', 'photo-error');
    else {
      const keep = state.image ? ' The current photo stays.' : '';
      notify(`Could not read “${file.name || 'the pasted data'}” as an image (${text}).${keep}`, 'error', 'photo-error');
    }
  }
  photobatch.add(items, errors);
  if (!items.length) return;
  state.items.push(...items);
  renderQueue();
  if (origin !== 'silent') await selectItem(items[0]);
}

const renderQueue = () => inputs.renderQueue(state.items, state.image?.item ?? null, selectItem);

async function pickSample(photo) {
  try {
    await selectItem(await sampleItem(photo, state.items));
  } catch (e) {
    notify(`Could not open the sample ${photo.file}: ${errorText(e)}`);
  }
}

/** Forgets the current input and its results (e.g. when the model changes). */
function clearImage() {
  Object.assign(state, { image: null, prediction: null, explanation: null, rendered: null, target: null });
  clearCompare();
  renderQueue();
  explanationView.reset();
  conservation.reset();
  comparison.enable(false);
  explanationView.setHint(null);
  explanationView.renderTruth(null);
  evaluation.sync();
}

const feed = (prepared, onProgress, engine = state.engine) => engine.request(...feedRequest(prepared), { onProgress });

async function selectItem(item) {
  if (!state.model) {
    // a photo chosen before any model is ready waits for one: it runs as soon as a model loads
    const starting = !document.body.dataset.ready;
    state.pending?.notice.remove();
    const notice = notify(starting ? `${item.name} will be explained once the model has loaded.` : 'Load a model first: the photo will be explained then.', 'info', 'photo-waiting');
    state.pending = { item, notice };
    return;
  }
  const token = ++state.seq.image;
  let prepared;
  let prediction;
  try {
    await busy(`Running ${state.model.label} on ${item.name}…`, async (report) => {
      prepared = await prepare(item, state.model);
      if (token !== state.seq.image) return;
      prediction = (await feed(prepared, stage(report))).prediction;
    });
  } catch (e) {
    if (token === state.seq.image && !isStop(e)) {
      const other = state.image && state.image.item !== item;
      notify(`Could not use ${item.name}: ${errorText(e)}.${other ? ' The current photo stays.' : ''}`, 'error', 'photo-error');
      // the engine dropped the previous activations when it tried this input: give them back
      if (prepared && other) feed(state.image).catch((err) => notify(`Could not restore ${state.image?.item.name}: ${errorText(err)}`));
    }
    return;
  }
  if (token !== state.seq.image) return;
  Object.assign(state, { image: prepared, prediction, explanation: null });
  clearCompare();
  renderQueue();
  explanationView.setCaption(describeImage(state.image));
  explanationView.setHint(photoHint(prepared, state.model));
  explanationView.renderTruth(item.truth, className(prediction.top[0].class));
  models.renderCredits(state.model, item);
  await selectTarget(address.takeTarget(prediction.logits.length, notify) ?? prediction.top[0].class);
}

// ---------------------------------------------------------------------------------------
// Target and options

const renderPredictions = () => explanationView.renderPredictions(state.prediction, state.target, className, selectTarget);

async function selectTarget(c) {
  state.target = c;
  clearCompare();
  renderPredictions();
  evaluation.sync();
  await explain();
}

/** A class typed in the target box: its index or its name. */
function targetFromText(v) {
  if (!state.prediction) return;
  const n = state.prediction.logits.length;
  const c = /^\d+/.test(v) ? parseInt(v, 10) : (state.model.names?.findIndex((name) => name.toLowerCase() === v.toLowerCase()) ?? -1);
  if (!(c >= 0 && c < n)) {
    notify(`No class “${v}” (this model has classes 0–${n - 1}).`);
    return;
  }
  selectTarget(c);
}

function optionsChanged(what) {
  if (what !== 'method' && what !== 'variant') clearCompare();
  evaluation.sync();
  address.save();
  explain();
}

async function explain() {
  if (!state.image || state.target === null) return;
  const request = options.read(state.target);
  const key = `${imageKey()}|${JSON.stringify(request)}`;
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
      state.engine.request('explain', { options: request }, { onProgress: stage(report) }),
    );
    const result = { summary: res.summary, map: res.map, relevance: res.relevance, options: request, key, ms: performance.now() - t0 };
    state.cache.set(key, result);
    while (state.cache.size > 40) state.cache.delete(state.cache.keys().next().value);
    if (token !== state.seq.explain) return;
    state.explanation = result;
    showExplanation();
  } catch (e) {
    if (!isStop(e)) notify(`Could not explain: ${errorText(e)}`, 'error', 'explain-error');
  }
}

function showExplanation() {
  const ex = state.explanation;
  if (!ex || !state.image) return;
  state.rendered = explanationView.render(ex, state.image, describeImage(state.image), className(ex.summary.target));
  conservation.render(ex.summary, ex.options);
  comparison.enable(true);
  address.save();
  hooks.explained(() => ({
    map: ex.map,
    width: ex.summary.width,
    height: ex.summary.height,
    summary: ex.summary,
    options: ex.options,
    model: state.model.key,
    image: state.image.item.name,
  }));
}

/** The display settings changed: everything on screen is drawn again. */
function redraw() {
  explanationView.renderLegend(state.rendered?.scale);
  address.save();
  if (state.explanation) showExplanation();
  for (const [key, r] of state.compare) {
    const canvas = comparison.canvas(key);
    if (canvas && r.map) explanationView.draw(state.image.base, r.map, r.summary.width, r.summary.height, canvas);
  }
}

async function download(which) {
  const ex = state.explanation;
  const r = state.rendered;
  const files = explanationFiles(explanationStem(state.image.item.name, className(ex.summary.target), ex.options));
  const { name, type } = files[which];
  if (which === 'overlay') save(await encodePng(r.overlay, r.width, r.height), name, type);
  else if (which === 'heatmap') save(await encodePng(r.heat, r.mapWidth, r.mapHeight), name, type);
  else save(encodeNpy(ex.relevance, state.model.info.input.shape), name, type);
}

// ---------------------------------------------------------------------------------------
// Comparison

function clearCompare() {
  state.seq.compare++;
  state.compare.clear();
  comparison.reset();
}

/** Every variant (current composite) and every baseline, for the current photo and class. */
async function compareAll() {
  if (!state.image || state.target === null) return;
  clearCompare();
  const token = state.seq.compare;
  const base = options.read(state.target);
  const composite = options.composite();
  const list = state.capabilities.variants.map((v) => ({ key: v, options: { ...base, method: 'lrp', composite, variant: v } }));
  for (const key of baselines(state.capabilities.methods, state.capabilities.variants)) list.push({ key, options: baselineOptions(key, base) });
  const { width, height } = state.image.base;
  comparison.start(list, width, height, (picked) => {
    options.show(picked);
    evaluation.sync();
    explain();
    window.scrollTo({ top: 0, behavior: 'smooth' });
  });
  const onProgress = (report) => (msg) => {
    report(`Compared ${msg.index + 1} of ${msg.total}…`, (msg.index + 1) / msg.total);
    if (token !== state.seq.compare) return;
    state.compare.set(msg.key, { summary: msg.summary, map: msg.map });
    const canvas = comparison.canvas(msg.key);
    if (canvas) explanationView.draw(state.image.base, msg.map, msg.summary.width, msg.summary.height, canvas);
    comparison.fill(msg.key, msg.summary);
  };
  try {
    await busy(`Comparing ${list.length} explanations…`, (report) => state.engine.request('explainMany', { list }, { onProgress: onProgress(report) }));
  } catch (e) {
    if (!isStop(e)) notify(`Comparison failed: ${errorText(e)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Recovery when the engine dies (recovery.js)

/** A fresh worker with the current model (and photo): what the page had before it stopped. */
function restart(withImage = true) {
  return state.engine.restart(async (direct) => {
    engineStarted(await direct.request('init'));
    const m = state.model;
    if (m) {
      const bytes = await catalog.modelBytes(m, () => {}, whenIdle);
      await direct.request('load', { bytes, side: m.side ?? [], preprocess: m.preprocess });
    }
    if (state.image && withImage) await feed(state.image, undefined, direct);
  });
}

// ---------------------------------------------------------------------------------------
// Start

/** Keeps the worker's answer to `init`: which build runs (shown) and the engine's capabilities. */
function engineStarted({ simd, relaxed, engine, threads, relaxedSupported, isolated, capabilities, coming, buildState }) {
  state.engineInfo = { simd, relaxed, engine, threads, relaxedSupported, isolated };
  state.capabilities = capabilities;
  showEngine(state.engineInfo);
  watchBuilds({ coming, buildState }, notify);
}

function bind() {
  models.bind({
    onPick: (key) => {
      const cand = state.candidates.find((c) => c.key === key);
      if (cand && cand.key !== state.model?.key) loadModel(cand);
    },
    onFiles: addFiles,
    onPreprocess: applyPreprocess,
  });
  inputs.bind({ onFiles: addFiles });
  options.bind({ onChange: optionsChanged });
  explanationView.bind({ onDisplay: redraw, onTarget: targetFromText, onDownload: download });
  comparison.bind({ onCompare: compareAll });
}

let resolveStarted;
/** The engine's capabilities, once it has started (dropped files wait for its limits). */
const started = new Promise((resolve) => (resolveStarted = resolve));

/** Starts the engine and, meanwhile, reads the manifests and fetches the first model and photo. */
async function main() {
  bind();
  evaluation.render();
  explanationView.reset();
  explanationView.renderLegend(0);
  const params = new URLSearchParams(location.search);
  const want = params.get('model') ?? catalog.DEFAULT_MODEL;
  const forget = () => {
    Object.assign(state, { image: null, explanation: null });
    evaluation.sync();
  };
  state.engine = new EngineClient(pageWorkerUrl(), { onCrash: (reason) => recover(reason, { state, restart, forget }) });
  let photo = null;
  const manifests = catalog.loadCatalog((text) => notify(text, 'info')).then((found) => {
    Object.assign(state, { imagenet: found.imagenet, photos: found.photos, candidates: found.candidates });
    const first = catalog.startOrder(state.candidates, want)[0];
    if (first) catalog.prefetchModel(first, whenIdle);
    const sample = state.photos.find((p) => p.file === params.get('photo'));
    if (sample) {
      photo = sampleItem(sample, state.items);
      photo.catch(() => {}); // reported below, where it is awaited
    }
  });
  try {
    await busy('Starting the engine…', async () => {
      const [answer] = await Promise.all([state.engine.request('init'), manifests]);
      engineStarted(answer);
      state.engine.started = true;
    });
  } catch (e) {
    // a worker that died while starting is reported by recover()
    if (!isStop(e)) notify(`The engine could not start: ${errorText(e)}`, 'error', 'engine-error');
    setStatus('Engine unavailable');
    document.body.dataset.ready = 'true';
    return;
  }
  options.setup(state.capabilities);
  evaluation.setup(state.capabilities);
  address.restore({ capabilities: state.capabilities, candidates: state.candidates, photos: state.photos, notify });
  resolveStarted(state.capabilities);
  models.renderList(state.candidates, null);
  inputs.renderSamples(state.photos, pickSample);
  for (const cand of catalog.startOrder(state.candidates, want)) {
    if (await loadModel(cand)) break;
  }
  // a photo the user chose while the page started wins over the address's sample
  if (photo && state.model && !state.image) {
    try {
      await selectItem(await photo);
    } catch (e) {
      notify(`Could not open the sample ${params.get('photo')}: ${errorText(e)}`);
    }
  } else if (!params.has('photo')) await firstSample();
  setStatus(readyText());
  document.body.dataset.ready = 'true';
  markStarted();
}

/** A model with samples of its own (the Fashion-MNIST ResNet) shows its first one right away. */
async function firstSample() {
  const own = state.model && !state.image && !state.pending ? state.photos.find((p) => p.model === state.model.key) : null;
  if (own) await pickSample(own);
}

hooks.install({
  state,
  addFiles,
  /** The pixels the engine was fed for the current photo (RGBA, before its own resize). */
  fedImage() {
    const f = state.image?.fed;
    return f ? { rgba: Array.from(f.rgba), width: f.width, height: f.height, region: state.image.region } : null;
  },
  crash: () => state.engine.request('crash'),
  setRelevanceDisplay(settings) {
    for (const [id, v] of Object.entries(settings)) document.getElementById(id).value = v;
    redraw();
  },
});

main();
