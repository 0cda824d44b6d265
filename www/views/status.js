// The status line, the notices and the engine badge; and the page's "busy" bookkeeping: while any
// work runs the page says so (spinner, body[data-busy]), and work queued with `whenIdle` waits.

import { $ } from '../dom.js';

let busyCount = 0;
let started = false;
let readyText = () => '';
let hasImage = () => false;
const idleQueue = [];

/** What the status line says when nothing runs, and whether a photo is shown (dimmed while busy). */
export function configureStatus(fns) {
  ({ readyText, hasImage } = fns);
}

export function setStatus(text, fraction) {
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

export const isBusy = () => busyCount > 0;

/** Work that waits until the page has started and is not busy (e.g. storing a model in the cache). */
export function whenIdle(fn) {
  idleQueue.push(fn);
  flushIdle();
}

function flushIdle() {
  while (started && busyCount === 0 && idleQueue.length) idleQueue.shift()();
}

/** The page has started: queued idle work may run. */
export function markStarted() {
  started = true;
  flushIdle();
}

/** Runs `fn(report)` with the page marked busy; `report(text, fraction)` updates the status line. */
export async function busy(text, fn) {
  busyCount++;
  document.body.dataset.busy = 'true';
  $('spinner').hidden = false;
  $('stage-busy').hidden = !hasImage();
  setStatus(text);
  try {
    return await fn((t, f) => setStatus(t ?? text, f));
  } finally {
    busyCount--;
    if (busyCount === 0) {
      document.body.dataset.busy = 'false';
      $('spinner').hidden = true;
      $('stage-busy').hidden = true;
      setStatus(readyText());
      flushIdle();
    }
  }
}

/** Shows the worker's progress stages (`{stage}` answers) in the status line. */
export function stage(report) {
  return (msg) => {
    if (msg.stage) report(`${msg.stage[0].toUpperCase()}${msg.stage.slice(1)}…`);
  };
}

/** A notice above the page; errors stay until dismissed, others go after 15 s. Returns its element. */
export function notify(text, kind = 'error', testid) {
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

/** Which build of the engine the worker loaded (its answer to `init`), in small print next to the status. */
export function showEngine({ relaxed, engine, threads, relaxedSupported, isolated }) {
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
