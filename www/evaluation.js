// The insertion/deletion run (the paper's faithfulness metrics, computed by the engine): which
// methods are shown, which curves still match the photo, class and settings, one request per method,
// and stopping a run by replacing the worker. Its view is views/evaluation.js.

import { save } from './dom.js';
import { evaluationCsv } from './downloads.js';
import * as hooks from './hooks.js';
import { isLrp } from './methods.js';
import { errorText } from './raster.js';
import { isStop } from './engine.js';
import * as options from './views/options.js';
import * as view from './views/evaluation.js';

// the curves of the current photo, class and settings (`context`); `token` ends a run's loop
const ev = { context: null, results: new Map(), running: null, checked: new Set(), token: 0, rows: null };
let app = null;
let state = null;

/**
 * `page`: {state, imageKey(), className(c), notify(text, kind, testid), busy(text, fn), restart(),
 * explain()}: what the run needs of the page.
 */
export function init(page) {
  app = page;
  state = page.state;
  state.evaluation = ev;
  view.bind({ onEvaluate: run, onStop: stop, onSettings: sync, onCsv: downloadCsv });
}

/** Every method the evaluation knows, in its order, with its label and colours: [{key, label, color, dash}]. */
export const methods = () => [...view.METHODS].map(([key, look]) => ({ key, ...look }));

/** A model's pixels per step (`step`: its display default; undefined: the engine's), unless the user set one. */
export function applyStep(step) {
  view.applyStep(step);
  sync();
}

/** Everything the curves depend on besides the method; null when there is nothing to evaluate. */
function context() {
  if (!state.model || !state.image || state.target === null) return null;
  const { quantize, step } = view.settings();
  return JSON.stringify([app.imageKey(), state.target, options.composite(), options.start(), quantize, step]);
}

/** The engine's `evaluate` options of method `key` for class `target` with the form's settings. */
export function requestOptions(key, target = state.target) {
  const { quantize, step } = view.settings();
  const o = { target, quantize, step };
  if (key === 'random') return { ...o, method: 'random', seed: 0 };
  if (!isLrp(key, state.capabilities.variants)) return { ...o, method: key, start: options.start() };
  return { ...o, method: 'lrp', composite: options.composite(), variant: key, start: options.start() };
}

/** The current method first, then the ticked ones. */
export function shown() {
  const cur = options.methodKey();
  return [cur, ...[...view.METHODS.keys()].filter((k) => k !== cur && ev.checked.has(k))];
}

const missing = () => shown().filter((k) => !ev.results.has(k));

function renderProgress() {
  view.renderProgress(ev.running, ev.running ? ev.running.finished + missing().length : 0);
}

function summaryText(quantize, step) {
  if (!ev.context) {
    return state.image?.kind === 'tensor'
      ? 'Insertion and deletion need a photo (not a preprocessed tensor).'
      : 'Pick a photo and a class, then press Evaluate.';
  }
  const first = ev.results.values().next().value?.evaluation;
  const cls = state.model.names ? `“${app.className(state.target)}” (class ${state.target})` : `class ${state.target}`;
  const ranking = quantize ? `${quantize}-level heat quantization` : 'raw relevance';
  const p = first ? ` · probability on the full photo ${first.probability.toFixed(4)}` : '';
  const todo = missing().length && !ev.running ? ` · press Evaluate for ${missing().map(view.label).join(', ')}` : '';
  return `${state.image.item.name}, ${cls}${p} · ranking: ${ranking}, ${step} pixels per step${todo}`;
}

function stepHint(quantize, step, stepOk) {
  if (!state.model || !stepOk) return '';
  const { height, width } = state.model.info.input;
  const images = Math.ceil((height * width) / step);
  return `${images} images per curve, up to ${2 * images} forward passes per method` + (quantize ? ' (fewer: repeated masks run once)' : '');
}

export function render() {
  const current = options.methodKey();
  view.renderMethods(current, ev.checked, toggle);
  renderProgress();
  const { quantize, step, stepOk } = view.settings();
  const running = Boolean(ev.running);
  view.renderStatus({ enabled: Boolean(state.model), running, hint: stepHint(quantize, step, stepOk), summary: summaryText(quantize, step) });
  const keys = shown().filter((k) => ev.results.has(k));
  ev.rows = keys.map((key) => ({ key, ...view.METHODS.get(key), ...ev.results.get(key), current: key === current }));
  view.renderResults(ev.rows);
  if (!ev.rows.length) return hooks.evaluated(null);
  hooks.evaluated(() => ({
    context: ev.context,
    target: state.target,
    model: state.model.key,
    image: state.image.item.name,
    rows: ev.rows.map((r) => ({ key: r.key, options: r.options, ms: r.ms, ...r.evaluation })),
  }));
}

/** A method ticked or unticked; once curves are on screen, a ticked one is added right away. */
function toggle(key, on) {
  if (on) ev.checked.add(key);
  else ev.checked.delete(key);
  render();
  if (on && !ev.running && ev.results.size && !ev.results.has(key)) run();
}

/** Drops curves that no longer match the photo, class or settings, and redraws. */
export function sync() {
  const now = context();
  if (now !== ev.context) {
    ev.context = now;
    ev.results.clear();
    if (ev.running) {
      // the run's remaining methods are not requested; its last answer is dropped
      ev.token++;
      ev.running = null;
    }
  }
  render();
}

/** Why nothing can be evaluated now, or null. */
function refusal() {
  if (!state.model) return 'Load a model first.';
  if (!state.image) return 'Insertion and deletion need a photo: drop one or pick a sample first.';
  if (state.image.kind !== 'photo') {
    return `Insertion and deletion black out pixels of a photo; ${state.image.item.name} is a preprocessed tensor. Drop or pick a photo to evaluate.`;
  }
  if (state.target === null) return 'Pick a class to evaluate first.';
  if (!view.settings().stepOk) return `Pixels per step: “${view.focusStep()}” is not a whole number of at least 1.`;
  return null;
}

/** Evaluates every shown method that has no curves yet, one request at a time. */
export async function run() {
  if (ev.running) return;
  const fail = (text) => app.notify(text, 'error', 'evaluate-error');
  const why = refusal();
  if (why) return fail(why);
  sync();
  const token = ++ev.token;
  ev.running = { token, finished: 0, key: null, done: 0, total: 0 };
  render();
  try {
    for (;;) {
      const key = missing()[0]; // a box ticked meanwhile joins the run
      if (!key || token !== ev.token) break;
      Object.assign(ev.running, { key, done: 0, total: 0 });
      renderProgress();
      const request = requestOptions(key);
      const context = ev.context;
      const t0 = performance.now();
      const res = await state.engine.request('evaluate', { options: request }, {
        onProgress: (msg) => {
          if (token !== ev.token || !msg.total) return;
          Object.assign(ev.running, { done: msg.done, total: msg.total });
          renderProgress();
        },
      });
      if (token !== ev.token || context !== ev.context) break;
      ev.results.set(key, { key, options: request, evaluation: res.evaluation, ms: performance.now() - t0 });
      ev.running.finished++;
      render();
    }
  } catch (e) {
    // a trap is reported by the page's recovery; a stop by stop()
    if (!isStop(e)) fail(`Could not evaluate: ${errorText(e)}`);
  } finally {
    if (ev.running?.token === token) ev.running = null;
    render();
  }
}

/** Ends a running evaluation by replacing the worker (the engine cannot be interrupted otherwise). */
export async function stop() {
  if (!ev.running) return;
  ev.token++;
  ev.running = null;
  render();
  state.engine.stop('the evaluation was stopped');
  try {
    await app.busy('Stopping the evaluation…', () => app.restart(true));
  } catch (e) {
    app.notify(`The engine could not be restarted: ${errorText(e)}`, 'error', 'engine-error');
    return;
  }
  app.notify('Evaluation stopped; the curves finished before are kept.', 'info', 'evaluate-stopped');
  await app.explain(); // an explanation asked for meanwhile went with the old worker
}

export function downloadCsv() {
  if (!ev.rows?.length) return;
  const data = {
    model: state.model.key,
    image: state.image.item.name,
    target: state.target,
    rows: ev.rows.map((r) => ({ key: r.key, options: r.options, ...r.evaluation })),
  };
  const { name, text } = evaluationCsv(data, app.className(state.target));
  save(new TextEncoder().encode(text), name, 'text/csv');
}

/** The methods and default settings from the engine's capabilities. */
export function setup(capabilities) {
  view.setup(capabilities);
  sync();
}
