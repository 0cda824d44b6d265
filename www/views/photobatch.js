// "Your photos, explained": the list of the user's photos explained in the background, its
// progress ("3 of 7"), Cancel and "Download all", and one row per photo with its overlay, class,
// probability and conservation error, or its error. The run itself is photobatch.js's.

import { $, el } from '../dom.js';

const STATUS_TEXT = { waiting: 'waiting', running: 'explaining…', done: 'explained', error: 'error', cancelled: 'cancelled' };

function overlayCell(job, onView) {
  const td = el('td', 'overlay-cell');
  if (job.status !== 'done') return td;
  const b = el('button', 'thumb small-thumb');
  b.type = 'button';
  b.dataset.testid = 'photobatch-view';
  b.setAttribute('aria-label', `Show ${job.name} in the viewer`);
  const img = el('img');
  img.src = job.result.url;
  img.alt = '';
  b.append(img);
  b.onclick = () => onView(job.n);
  td.append(b);
  return td;
}

function row(job, onView) {
  const tr = el('tr');
  tr.dataset.testid = 'photobatch-row';
  tr.dataset.status = job.status;
  const name = el('th', '', job.name);
  name.scope = 'row';
  name.title = job.name;
  const r = job.result;
  const err = r?.summary.conservationError;
  const status = el('td', `status ${job.status}`, job.status === 'error' ? `error: ${job.error}` : STATUS_TEXT[job.status]);
  status.dataset.field = 'status';
  const cells = [
    ['class', r ? r.name : ''],
    ['probability', r ? `${(r.probability * 100).toFixed(1)} %` : ''],
    ['conservation', r ? (err == null ? 'n/a' : err.toExponential(1)) : ''],
  ].map(([field, text]) => {
    const td = el('td', '', text);
    td.dataset.field = field;
    return td;
  });
  tr.append(overlayCell(job, onView), name, status, ...cells);
  return tr;
}

let handlers = null;

/**
 * The list `jobs` (see photobatch.js), `progress` ({at, total, name} of the photo being explained, or
 * null) and whether a run is going on (`running`).
 */
export function render(jobs, { progress, running }) {
  $('photobatch').hidden = jobs.length === 0;
  $('photobatch').setAttribute('aria-busy', String(running));
  document.body.dataset.photobatch = running ? 'running' : 'idle';
  $('photobatch-cancel').hidden = !running;
  const done = jobs.filter((j) => j.status === 'done').length;
  $('photobatch-download').disabled = done === 0;
  $('photobatch-progress').hidden = !progress;
  if (progress) {
    $('photobatch-progress-text').textContent = `Explaining ${progress.at} of ${progress.total}: ${progress.name}`;
    $('photobatch-progress-bar').value = (progress.at - 1) / progress.total;
  }
  const errors = jobs.filter((j) => j.status === 'error').length;
  const cancelled = jobs.filter((j) => j.status === 'cancelled').length;
  $('photobatch-summary').textContent =
    `${done} of ${jobs.length} explained` + (errors ? `, ${errors} with an error` : '') + (cancelled ? `, ${cancelled} cancelled` : '') + '.';
  $('photobatch-table').querySelector('tbody').replaceChildren(...jobs.map((j) => row(j, handlers.onView)));
}

/** onCancel(), onDownload(), onView(n): the buttons; `n` is a row's number (from 1). */
export function bind(h) {
  handlers = h;
  $('photobatch-cancel').onclick = h.onCancel;
  $('photobatch-download').onclick = h.onDownload;
}
