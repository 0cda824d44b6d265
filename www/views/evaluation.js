// Insertion and deletion: the methods to compare, the run's progress, the plots, legend and table.
// Which methods exist comes from the engine (`capabilities()`: its variants and baselines); their
// labels and colours are the page's.

import { $, el, swatch } from '../dom.js';
import { baselineText, isLrp } from '../methods.js';
import { curvePlot, curveSeries, plotLabel, plotSize } from '../plot.js';

// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies
const LOOK = {
  flows_skip: { color: '#0072b2' },
  flows_skip_simple: { color: '#56b4e9' },
  latest: { color: '#009e73' },
  simple: { color: '#cc79a7' },
  conventional: { label: 'conventional LRP', color: '#d55e00' },
  gradient: { color: '#e69f00' },
  ig: { color: '#f0e442', dash: [8, 3] },
  guided_backprop: { color: '#000000', dash: [2, 3] },
  gradcam: { color: '#882255', dash: [8, 3] },
  scorecam: { color: '#44aa99', dash: [8, 3] },
  random: { color: '#8c8c8c', dash: [5, 4] },
};

/** key → {label, color, dash}: the variants, then the engine's other methods. */
export const METHODS = new Map();

/** The methods and the default settings from the engine's capabilities. */
export function setup({ variants, methods, defaults }) {
  METHODS.clear();
  for (const key of [...variants, ...methods.filter((m) => !isLrp(m, variants))]) {
    const label = isLrp(key, variants) ? key : baselineText(key, defaults).label;
    METHODS.set(key, { label, color: '#5d6778', ...LOOK[key] });
  }
  $('eval-quantize').value = String(defaults.evalQuantize);
  $('eval-step').value = String(defaults.step);
  engineStep = defaults.step;
}

let engineStep = 500;
let stepTouched = false; // the user typed a step: a model's default no longer applies

/** A model's pixels per step (models.json `display.eval_step`; missing: the engine's), unless the user set one. */
export function applyStep(step) {
  if (!stepTouched) $('eval-step').value = String(step ?? engineStep);
}

export const label = (key) => METHODS.get(key)?.label ?? key;

export function settings() {
  const quantize = Number($('eval-quantize').value);
  const step = Number($('eval-step').value);
  return { quantize, step, stepOk: Number.isInteger(step) && step >= 1 };
}

export function focusStep() {
  $('eval-step').focus();
  return $('eval-step').value;
}

/** The checkboxes: `current` (the method shown above) ticked and fixed, `checked` ticked; onToggle(key, on). */
export function renderMethods(current, checked, onToggle) {
  const box = $('eval-methods');
  if (box.querySelectorAll('input').length !== METHODS.size) {
    box.querySelectorAll('label').forEach((l) => l.remove());
    for (const [key, { label: text, color }] of METHODS) {
      const l = el('label', 'check');
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.value = key;
      input.dataset.testid = `eval-method-${key}`;
      input.onchange = () => onToggle(key, input.checked);
      l.append(input, swatch(color), el('span', 'name'));
      l.dataset.label = text;
      box.append(l);
    }
  }
  for (const l of box.querySelectorAll('label')) {
    const input = l.querySelector('input');
    const isCurrent = input.value === current;
    input.checked = isCurrent || checked.has(input.value);
    input.disabled = isCurrent;
    l.querySelector('.name').textContent = isCurrent ? `${l.dataset.label} (current)` : l.dataset.label;
    l.title = isCurrent ? 'the method shown above is always evaluated' : '';
  }
}

/** The run's progress: `run` ({key, finished, done, total}) of `count` methods, or null. */
export function renderProgress(run, count) {
  $('eval-progress').hidden = !run;
  if (!run) {
    $('eval-progress-text').textContent = '';
    return;
  }
  const passes = run.total ? `${run.done} / ${run.total} forward passes` : 'explaining…';
  const name = run.key ? label(run.key) : '…';
  $('eval-progress-text').textContent = `Evaluating ${name} (${Math.min(run.finished + 1, count)} of ${count}): ${passes}`;
  $('eval-progress-bar').value = Math.min(1, (run.finished + (run.total ? run.done / run.total : 0)) / Math.max(1, count));
}

/** The buttons, the hint under the settings and the summary line. */
export function renderStatus({ enabled, running, hint, summary }) {
  for (const id of ['evaluate-button', 'evaluate-shortcut']) $(id).disabled = !enabled || running;
  $('evaluate-stop').hidden = !running;
  $('evaluate-section').setAttribute('aria-busy', String(running));
  document.body.dataset.evaluating = String(running);
  $('eval-step-hint').textContent = hint;
  $('eval-summary').textContent = summary;
}

function colors() {
  const css = getComputedStyle(document.documentElement);
  const colour = (name, dflt) => css.getPropertyValue(name).trim() || dflt;
  return { text: colour('--text', '#1d2330'), muted: colour('--muted', '#5d6778'), grid: colour('--line', '#dde1e8') };
}

/** Paints plot.js's operations on a canvas at the screen's pixel density. */
function paintPlot(canvas, width, height, ops) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, sans-serif';
  for (const o of ops) {
    ctx.strokeStyle = o.color;
    ctx.fillStyle = o.color;
    if (o.op === 'line') {
      ctx.lineWidth = o.width;
      ctx.setLineDash(o.dash ?? []);
      ctx.beginPath();
      o.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.setLineDash([]);
    } else if (o.op === 'rect') {
      ctx.lineWidth = 1;
      ctx.strokeRect(o.x, o.y, o.w, o.h);
    } else if (o.op === 'dot') {
      ctx.beginPath();
      ctx.arc(o.x, o.y, o.r, 0, 2 * Math.PI);
      ctx.fill();
    } else if (o.op === 'text') {
      ctx.save();
      ctx.translate(o.x, o.y);
      if (o.rotate) ctx.rotate(o.rotate);
      ctx.textAlign = o.align;
      ctx.textBaseline = o.baseline;
      ctx.fillText(o.text, 0, 0);
      ctx.restore();
    }
  }
}

let shownRows = null; // redrawn when the plots change size or the colour scheme changes

function renderPlots(rows) {
  const reference = rows[0].evaluation.probability;
  for (const curve of ['insertion', 'deletion']) {
    const canvas = $(`${curve}-plot`);
    const { width, height } = plotSize(canvas.clientWidth);
    const ops = curvePlot({ width, height, curve, series: curveSeries(rows, curve), reference, colors: colors() });
    paintPlot(canvas, width, height, ops);
    canvas.setAttribute('aria-label', plotLabel(curve, rows));
  }
}

function renderLegend(rows) {
  const ul = $('eval-legend');
  ul.replaceChildren();
  for (const r of rows) {
    const li = el('li');
    li.append(swatch(r.color, r.dash), `${r.label}${r.current ? ' (current)' : ''}`);
    ul.append(li);
  }
  const li = el('li');
  const sw = swatch(null);
  sw.className = 'swatch dotted';
  li.append(sw, 'full photo');
  ul.append(li);
}

function methodTitle(r) {
  return r.options.method === 'lrp' ? `LRP, ${r.options.composite}, ${r.options.variant}` : baselineText(r.key).description;
}

function renderTable(rows) {
  const tb = $('eval-table').querySelector('tbody');
  tb.replaceChildren();
  for (const r of rows) {
    const e = r.evaluation;
    const tr = el('tr', r.current ? 'current' : '');
    tr.dataset.method = r.key;
    tr.dataset.testid = `eval-row-${r.key}`;
    const name = el('th');
    name.scope = 'row';
    name.append(swatch(r.color, r.dash), `${r.label}${r.current ? ' (current)' : ''}`);
    name.title = methodTitle(r);
    tr.append(name);
    for (const [field, v, text] of [
      ['insertion', e.insertion.auc, e.insertion.auc.toFixed(3)],
      ['deletion', e.deletion.auc, e.deletion.auc.toFixed(3)],
      ['id', e.id, e.id.toFixed(3)],
      ['passes', e.forwardPasses, String(e.forwardPasses)],
      ['time', r.ms, `${(r.ms / 1000).toFixed(1)} s`],
    ]) {
      const td = el('td', '', text);
      td.dataset.field = field;
      td.dataset.value = String(v);
      tr.append(td);
    }
    tb.append(tr);
  }
}

/** The results: rows [{key, label, color, dash, current, options, evaluation, ms}], none to hide them. */
export function renderResults(rows) {
  $('eval-results').hidden = rows.length === 0;
  shownRows = rows.length ? rows : null;
  if (!rows.length) return;
  renderPlots(rows);
  renderLegend(rows);
  renderTable(rows);
}

/** onEvaluate(), onStop(), onSettings(): the buttons and the settings; onCsv(): Download CSV. */
export function bind({ onEvaluate, onStop, onSettings, onCsv }) {
  $('evaluate-button').onclick = onEvaluate;
  $('evaluate-shortcut').onclick = () => {
    $('evaluate-section').scrollIntoView({ behavior: 'smooth', block: 'start' });
    onEvaluate();
  };
  $('evaluate-stop').onclick = onStop;
  $('evaluate-form').onsubmit = (e) => {
    e.preventDefault();
    onEvaluate();
  };
  $('eval-quantize').onchange = onSettings;
  $('eval-step').onchange = () => {
    stepTouched = true;
    onSettings();
  };
  $('eval-csv').onclick = onCsv;
  const redraw = () => {
    if (shownRows && !$('eval-results').hidden) renderPlots(shownRows);
  };
  new ResizeObserver(redraw).observe($('eval-results'));
  matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', redraw);
}
