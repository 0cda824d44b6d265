// "Evaluate all samples": the insertion/deletion evaluation of evaluation.js (the engine's `evaluate`
// with the form's settings) over every bundled sample of the current model, for every method or the
// chosen ones, and the mean Insertion / Deletion / ID per method. It runs on a worker of its own, so
// that the photo on screen stays loaded in the page's engine; Stop ends that worker. Its view is
// views/batch.js.

import { samplesFor } from './catalog.js';
import { EngineClient, isStop, pageWorkerUrl } from './engine.js';
import * as evaluation from './evaluation.js';
import * as hooks from './hooks.js';
import { feedRequest, prepare, sampleItem } from './images.js';
import { errorText } from './raster.js';
import * as view from './views/batch.js';

let app = null;
let running = null; // {engine, stopped}
let last = null; // the table on screen: {model, rows}

/** `page`: {state, notify(text, kind, testid), modelBytes(model)}: what the run needs of the page. */
export function init(page) {
  app = page;
  view.bind({ onRun: run, onStop: stop });
}

const samples = () => (app.state.model ? samplesFor(app.state.photos, app.state.model.key) : []);

/** The buttons and the summary line; a table of another model is dropped. */
export function sync() {
  const model = app.state.model;
  if (last && last.model !== model?.key) {
    last = null;
    view.renderTable([]);
  }
  const n = samples().length;
  const summary = !model
    ? ''
    : n
      ? `${n} bundled samples of ${model.label}, each explained for its top class; means per method.` +
        (last ? ` Done: n = ${last.rows[0]?.n ?? 0}.` : '')
      : `${model.label} has no bundled samples.`;
  view.renderStatus({ enabled: Boolean(model && n && app.state.capabilities), running: Boolean(running), summary });
}

/** The methods to run: every one, or the evaluation's current and ticked ones. */
function methodList() {
  const all = evaluation.methods();
  if (view.allMethods()) return all;
  const chosen = evaluation.shown();
  return all.filter((m) => chosen.includes(m.key));
}

/** A fresh worker with the current model loaded. */
async function startEngine(model) {
  const engine = new EngineClient(pageWorkerUrl());
  await engine.request('init');
  await engine.loadModel(await app.modelBytes(model), model);
  return engine;
}

function meanRows(list, sums) {
  return list
    .map((m) => ({ ...m, ...sums.get(m.key) }))
    .filter((r) => r.n > 0)
    .map((r) => ({ ...r, insertion: r.ins / r.n, deletion: r.del / r.n, id: r.idSum / r.n }));
}

/** One sample: fed to `engine`, explained for its top class and evaluated with every method of `list`. */
async function evaluateSample(engine, photo, list, sums, progress) {
  const { state } = app;
  const prepared = await prepare(await sampleItem(photo, state.items), state.model);
  const { prediction } = await engine.request(...feedRequest(prepared));
  const target = prediction.top[0].class;
  for (const m of list) {
    if (running?.stopped) return;
    progress(m);
    const { evaluation: e } = await engine.request('evaluate', { options: evaluation.requestOptions(m.key, target) });
    const s = sums.get(m.key);
    Object.assign(s, { n: s.n + 1, ins: s.ins + e.insertion.auc, del: s.del + e.deletion.auc, idSum: s.idSum + e.id });
  }
}

/** Evaluates every sample of the current model with every chosen method. */
export async function run() {
  if (running || !app.state.model) return;
  const model = app.state.model;
  const photos = samples();
  const list = methodList();
  const sums = new Map(list.map((m) => [m.key, { n: 0, ins: 0, del: 0, idSum: 0 }]));
  const total = photos.length * list.length;
  const me = { engine: null, stopped: false };
  running = me;
  last = null;
  view.renderTable([]);
  sync();
  let done = 0;
  try {
    view.renderProgress({ sample: 1, samples: photos.length, name: photos[0]?.file ?? '', label: 'starting the engine', done, total });
    me.engine = await startEngine(model);
    for (const [i, photo] of photos.entries()) {
      if (me.stopped) break;
      const progress = (m) => {
        view.renderProgress({ sample: i + 1, samples: photos.length, name: photo.file, label: m.label, done, total });
        done++;
      };
      await evaluateSample(me.engine, photo, list, sums, progress);
      if (me.stopped) break;
      last = { model: model.key, rows: meanRows(list, sums) };
      view.renderTable(last.rows);
    }
  } catch (e) {
    if (!me.stopped && !isStop(e)) app.notify(`Could not evaluate the samples: ${errorText(e)}`, 'error', 'batch-error');
  } finally {
    me.engine?.stop('the evaluation of the samples is over');
    if (running === me) running = null;
    view.renderProgress(null);
    sync();
    if (last) hooks.batchEvaluated(() => ({ model: last.model, stopped: me.stopped, samples: photos.length, rows: last.rows.map(({ key, n, insertion, deletion, id }) => ({ key, n, insertion, deletion, id })) }));
  }
}

/** Ends the run: its worker is terminated; the means of the samples finished so far stay. */
export function stop() {
  if (!running) return;
  running.stopped = true;
  running.engine?.stop('the evaluation of the samples was stopped');
  app.notify('Evaluation of the samples stopped; the means of the samples finished before are kept.', 'info', 'batch-stopped');
}
