// The side-by-side comparison: one cell per Relevance Splitting variant and per baseline, filled
// as the engine answers.

import { $, canvasOf } from '../dom.js';
import { baselineText } from '../methods.js';
import { fmt } from '../raster.js';

const grid = () => $('compare-grid');
const cellOf = (key) => grid().querySelector(`[data-variant="${key}"]`);

export function reset() {
  grid().replaceChildren();
}

export function enable(on) {
  $('compare-button').disabled = !on;
}

/** Empty cells for `list` ([{key, options}]) on a `width`×`height` photo; onPick(options) on a click. */
export function start(list, width, height, onPick) {
  reset();
  for (const { key, options } of list) {
    const cell = document.createElement('button');
    cell.type = 'button';
    cell.className = 'cell pending';
    cell.dataset.variant = key;
    cell.dataset.testid = `compare-${key}`;
    const t = document.createElement('span');
    t.className = 'title';
    t.textContent = options.method === 'lrp' ? key : baselineText(key).label;
    const sub = document.createElement('span');
    sub.className = 'sub';
    sub.textContent = 'computing…';
    cell.append(canvasOf(width, height), t, sub);
    cell.onclick = () => onPick(options);
    grid().append(cell);
  }
}

/** The canvas of a cell, to draw its map on (null when the cell is gone). */
export const canvas = (key) => cellOf(key)?.querySelector('canvas') ?? null;

/** A cell's explanation arrived (its map is drawn by the caller on `canvas(key)`). */
export function fill(key, summary) {
  const cell = cellOf(key);
  if (!cell) return;
  cell.classList.remove('pending');
  // only LRP conserves: the engine gives no error for the baselines
  const err = summary.conservationError == null ? 'n/a' : summary.conservationError.toExponential(1);
  cell.querySelector('.sub').textContent = `Σ R ${fmt(summary.inputRelevanceSum)} · rel. error ${err}`;
}

/** onCompare(): the Compare button. */
export function bind({ onCompare }) {
  $('compare-button').onclick = onCompare;
}
