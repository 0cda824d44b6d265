// The evaluation over every sample of the model: its buttons, progress and the table of mean
// Insertion / Deletion / ID per method. The run itself is batch.js's.

import { $, el, swatch } from '../dom.js';

/** Whether every method is run ("all") or the current and ticked ones of the evaluation form. */
export const allMethods = () => $('batch-methods').value === 'all';

/** The buttons and the line under them: `count` samples, `running` or not, `summary` text. */
export function renderStatus({ enabled, running, summary }) {
  $('batch-button').disabled = !enabled || running;
  $('batch-stop').hidden = !running;
  $('batch').setAttribute('aria-busy', String(running));
  document.body.dataset.batch = String(running);
  $('batch-summary').textContent = summary;
}

/** Progress ({sample, samples, name, label, done, total}): `done` of `total` evaluations, the current sample and method; null hides it. */
export function renderProgress(p) {
  $('batch-progress').hidden = !p;
  if (!p) return;
  $('batch-progress-text').textContent = `Sample ${p.sample} of ${p.samples} (${p.name}), ${p.label}: ${p.done} of ${p.total} evaluations`;
  $('batch-progress-bar').value = p.total ? p.done / p.total : 0;
}

/** The table: rows [{key, label, color, dash, n, insertion, deletion, id}] (means over n samples); none hides it. */
export function renderTable(rows) {
  const table = $('batch-table');
  table.hidden = rows.length === 0;
  const tb = table.querySelector('tbody');
  tb.replaceChildren();
  for (const r of rows) {
    const tr = el('tr');
    tr.dataset.testid = `batch-row-${r.key}`;
    tr.dataset.method = r.key;
    const name = el('th');
    name.scope = 'row';
    name.append(swatch(r.color, r.dash), r.label);
    tr.append(name);
    for (const [field, v, text] of [
      ['n', r.n, String(r.n)],
      ['insertion', r.insertion, r.insertion.toFixed(3)],
      ['deletion', r.deletion, r.deletion.toFixed(3)],
      ['id', r.id, r.id.toFixed(3)],
    ]) {
      const td = el('td', '', text);
      td.dataset.field = field;
      td.dataset.value = String(v);
      tr.append(td);
    }
    tb.append(tr);
  }
}

/** onRun(), onStop(): the buttons. */
export function bind({ onRun, onStop }) {
  $('batch-button').onclick = onRun;
  $('batch-stop').onclick = onStop;
}
