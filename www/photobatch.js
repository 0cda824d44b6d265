// "Your photos, explained": every photo or tensor the user drops or chooses joins a list that is
// explained in the background, one after the other, each for its top class with the model, method
// and options current when its turn comes. It runs on a worker of its own (as batch.js does), so the
// photo on screen stays loaded in the page's engine; Cancel ends that worker and marks the rest
// cancelled. A file that cannot be read, or fails in the engine, gets its error in its row and the
// list goes on. "Download all" saves one ZIP: the overlay PNG of every explained photo and a CSV of
// what each row shows. Its view is views/photobatch.js.

import { save } from './dom.js';
import { csvField, explanationStem } from './downloads.js';
import { EngineClient, isStop, pageWorkerUrl } from './engine.js';
import { feedRequest, prepare } from './images.js';
import { encodePng, renderOverlay } from './overlay.js';
import { errorText } from './raster.js';
import * as view from './views/photobatch.js';
import { zip } from './zip.js';

let app = null;
const jobs = []; // {n, name, item|null, status: waiting|running|done|error|cancelled, error, result}
let running = null; // {engine, loaded, cancelled}

/**
 * `page`: {state, notify(text, kind, testid), modelBytes(model), options(target): the explanation's
 * options for a class, display(): the display settings, onView(item): show an item in the viewer}.
 */
export function init(page) {
  app = page;
  view.bind({ onCancel: cancel, onDownload: download, onView: (n) => app.onView(jobs[n - 1].item) });
}

const className = (model, c) => model.names?.[c] ?? `class ${c}`;

/** Items to explain and files that could not be read ({file, text}): every one gets a row. */
export function add(items, errors = []) {
  for (const item of items) jobs.push({ n: jobs.length + 1, name: item.name, item, status: 'waiting' });
  for (const { file, text } of errors) jobs.push({ n: jobs.length + 1, name: file.name || 'pasted data', item: null, status: 'error', error: `could not be read: ${text}` });
  render();
  pump();
}

/** A model is ready: photos that waited for one are explained now. */
export function sync() {
  pump();
}

function render() {
  const counted = jobs.filter((j) => j.status !== 'cancelled');
  const current = jobs.find((j) => j.status === 'running');
  const progress = current ? { at: counted.indexOf(current) + 1, total: counted.length, name: current.name } : null;
  view.render(jobs, { progress, running: Boolean(running) });
}

/** Explains the waiting jobs in order until none is left or the run is cancelled. */
async function pump() {
  if (running || !app.state.model || !jobs.some((j) => j.status === 'waiting')) return;
  const me = { engine: null, loaded: null, cancelled: false };
  running = me;
  try {
    for (let job = next(); job && !me.cancelled; job = next()) await runJob(me, job);
  } finally {
    me.engine?.stop('the photos are explained');
    if (running === me) running = null;
    render();
  }
  pump(); // photos added after a cancel
}

const next = () => jobs.find((j) => j.status === 'waiting');

/** The queue's worker with `model` loaded: a fresh one after a crash, the model loaded again when it changed. */
async function engineFor(me, model) {
  if (!me.engine || me.engine.dead) {
    me.engine = new EngineClient(pageWorkerUrl());
    me.loaded = null;
    await me.engine.request('init');
  }
  const id = `${model.key}|${JSON.stringify(model.preprocess)}`;
  if (me.loaded !== id) {
    await me.engine.loadModel(await app.modelBytes(model), model);
    me.loaded = id;
  }
  return me.engine;
}

async function runJob(me, job) {
  job.status = 'running';
  render();
  try {
    const model = app.state.model;
    const engine = await engineFor(me, model);
    const prepared = await prepare(job.item, model);
    const { prediction } = await engine.request(...feedRequest(prepared));
    const { class: target, probability } = prediction.top[0];
    const options = app.options(target);
    const { summary, map } = await engine.request('explain', { options });
    const { base } = prepared;
    const r = renderOverlay({ base: base.rgba, width: base.width, height: base.height, map, mapWidth: summary.width, mapHeight: summary.height, ...app.display() });
    const png = await encodePng(r.overlay, base.width, base.height);
    const name = className(model, target);
    const file = `${String(job.n).padStart(3, '0')}.${explanationStem(job.name, name, options)}.overlay.png`;
    job.result = { model: model.key, options, target, name, probability, summary, png, file, url: URL.createObjectURL(new Blob([png], { type: 'image/png' })) };
    job.status = 'done';
  } catch (e) {
    if (me.cancelled) {
      job.status = 'cancelled';
      return;
    }
    Object.assign(job, { status: 'error', error: errorText(e) });
    if (isStop(e)) me.engine = null; // the worker died on this photo: a fresh one takes the next
  } finally {
    render();
  }
}

/** Stops the run: its worker ends now; the photos not yet explained are marked cancelled. */
export function cancel() {
  if (!running) return;
  running.cancelled = true;
  running.engine?.stop('cancelled');
  for (const j of jobs) if (j.status === 'waiting') j.status = 'cancelled';
  const done = jobs.filter((j) => j.status === 'done').length;
  app.notify(`Explaining your photos was cancelled; the ${done} explained so far are kept.`, 'info', 'photobatch-cancelled');
  render();
}

const CSV_HEAD = [
  'file', 'overlay', 'model', 'method', 'composite', 'variant', 'start', 'quantize',
  'class', 'class_name', 'probability', 'start_relevance', 'input_relevance_sum', 'conservation_error', 'status', 'error',
];

/** One CSV line per row: what the row shows; explained rows name their PNG in the archive. */
function csv(rows) {
  const lines = [CSV_HEAD.join(',')];
  for (const j of rows) {
    const r = j.result;
    const o = r?.options ?? {};
    const s = r?.summary ?? {};
    const fields = [
      j.name, r?.file, r?.model, o.method, o.composite, o.variant, o.start, o.quantize,
      r?.target, r?.name, r?.probability, s.startRelevance, s.inputRelevanceSum, s.conservationError, j.status, j.error,
    ];
    lines.push(fields.map((v) => csvField(v ?? '')).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** Saves one ZIP: every explained photo's overlay PNG and explanations.csv (every row, errors included). */
export function download() {
  const done = jobs.filter((j) => j.status === 'done');
  if (!done.length) return;
  const files = [{ name: 'explanations.csv', data: csv(jobs) }, ...done.map((j) => ({ name: j.result.file, data: j.result.png }))];
  save(zip(files), `resnet-lrp.${done.length}-explanations.zip`, 'application/zip');
}
