// The heatmap: the prediction list, the overlay on the photo with its colour bar and caption, the
// display settings (colormap, sign, opacity, clip), the target box and the explanation's downloads.

import { $, paint } from '../dom.js';
import { COLORMAPS, renderOverlay } from '../overlay.js';
import { colorbarRgba, legendLabels } from '../raster.js';

const DOWNLOADS = ['download-overlay', 'download-heatmap', 'download-npy'];

// a model's display defaults (models.json `display`) set these controls until the user changes them
const DISPLAY_CONTROLS = { colormap: 'colormap', sign: 'sign', opacity: 'opacity', clip: 'clip' };
const touched = new Set();
let initial = null; // the page's own settings (index.html), for models without defaults

function showValues() {
  $('opacity-value').textContent = $('opacity').value;
  $('clip-value').textContent = $('clip').value;
}

/**
 * Applies a model's display defaults `d` ({colormap, sign, opacity, clip}; missing ones: the page's
 * own) to every control the user has not changed.
 */
export function applyDefaults(d = {}) {
  for (const [key, id] of Object.entries(DISPLAY_CONTROLS)) {
    if (!touched.has(id)) $(id).value = String(d[key] ?? initial[id]);
  }
  showValues();
}

/** Settings the user asked for (the page's address: {colormap, sign}, either may be missing): they stay over a model's defaults. */
export function applyUser(values) {
  for (const key of ['colormap', 'sign']) {
    if (values[key] === undefined) continue;
    $(DISPLAY_CONTROLS[key]).value = values[key];
    touched.add(DISPLAY_CONTROLS[key]);
  }
}

/** The true class of a sample beside the prediction (`truth`: its name, `predicted`: the top class's), or none. */
export function renderTruth(truth, predicted) {
  const p = $('true-class');
  p.hidden = !truth;
  p.textContent = truth ? `true: ${truth}${predicted ? (predicted === truth ? ' ✓' : ` ✗ (predicted ${predicted})`) : ''}` : '';
}

/** A one-line hint about the photo and the model (not an error), or none. */
export function setHint(text) {
  $('photo-hint').hidden = !text;
  $('photo-hint').textContent = text ?? '';
}

/** The display settings: {cmap, sign, alpha, clip}. */
export function display() {
  return { cmap: $('colormap').value, sign: $('sign').value, alpha: Number($('opacity').value), clip: Number($('clip').value) };
}

/** The top classes as buttons, `target` pressed; names from `className(c)`; onPick(c). */
export function renderPredictions(prediction, target, className, onPick) {
  const ol = $('predictions');
  ol.replaceChildren();
  if (!prediction) return;
  for (const [rank, { class: c, probability: p }] of prediction.top.entries()) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testid = rank === 0 ? 'top-class' : 'class';
    b.dataset.class = c;
    b.setAttribute('aria-pressed', String(c === target));
    b.innerHTML = '<span class="name"></span><span class="prob"></span><span class="bar"><span></span></span>';
    b.querySelector('.name').textContent = className(c);
    b.querySelector('.prob').textContent = `${(p * 100).toFixed(p >= 0.001 ? 1 : 3)} %`;
    b.querySelector('.bar > span').style.width = `${Math.max(0.5, p * 100)}%`;
    b.title = `class ${c}; logit ${prediction.logits[c].toFixed(3)}`;
    b.onclick = () => onPick(c);
    li.append(b);
    ol.append(li);
  }
}

/** Draws a relevance map over the photo `base` on `canvas`; returns overlay.renderOverlay's result. */
export function draw(base, map, width, height, canvas) {
  const r = renderOverlay({ base: base.rgba, width: base.width, height: base.height, map, mapWidth: width, mapHeight: height, ...display() });
  paint(canvas, r.overlay, base.width, base.height);
  return r;
}

/** The colour bar of the current colormap, labelled for a map normalised by `scale`. */
export function renderLegend(scale) {
  const { cmap, sign } = display();
  $('colorbar').getContext('2d').putImageData(new ImageData(colorbarRgba(cmap, 256, 12), 256, 12), 0, 0);
  const { min, max } = legendLabels(scale, sign);
  $('legend-min').textContent = min;
  $('legend-max').textContent = max;
}

/**
 * Shows an explanation `ex` ({summary, map, options, ms}) of the prepared photo `image`, captioned
 * `caption` and the name of the explained class. Returns what was drawn: {overlay, heat, scale, width, height, mapWidth, mapHeight}.
 */
export function render(ex, image, caption, targetName) {
  const { summary, map } = ex;
  const r = draw(image.base, map, summary.width, summary.height, $('overlay'));
  $('overlay').classList.remove('empty');
  $('stage-empty').hidden = true;
  renderLegend(r.scale);
  for (const id of DOWNLOADS) $(id).disabled = false;
  const what = ex.options.method === 'lrp' ? `LRP, ${ex.options.composite}, ${ex.options.variant}` : ex.options.method;
  const took = ex.ms ? ` · ${(ex.ms / 1000).toFixed(ex.ms < 1000 ? 2 : 1)} s` : '';
  const cells = ex.options.cell > 1 ? ` · shown in ${ex.options.cell}×${ex.options.cell}-pixel cells (the .npy is per pixel)` : '';
  $('caption').textContent = `${caption} — “${targetName}” (${what})${cells}${took}`;
  return { ...r, width: image.base.width, height: image.base.height, mapWidth: summary.width, mapHeight: summary.height };
}

export function setCaption(text) {
  $('caption').textContent = text;
}

/** No photo: an empty stage, no predictions, nothing to download. */
export function reset() {
  $('predictions').replaceChildren();
  $('overlay').classList.add('empty');
  $('stage-empty').hidden = false;
  $('caption').textContent = '';
  for (const id of DOWNLOADS) $(id).disabled = true;
}

/**
 * onDisplay(): a display setting changed; onTarget(text): a class typed in the target box;
 * onDownload(which): "overlay", "heatmap" or "npy".
 */
export function bind({ onDisplay, onTarget, onDownload }) {
  const cm = $('colormap');
  for (const [name, { label }] of Object.entries(COLORMAPS)) cm.append(new Option(label, name));
  cm.value = 'jet';
  initial = Object.fromEntries(Object.values(DISPLAY_CONTROLS).map((id) => [id, $(id).value]));
  for (const id of Object.values(DISPLAY_CONTROLS)) {
    $(id).oninput = () => {
      touched.add(id); // setting .value from code fires no event: this is the user's choice
      showValues();
      onDisplay();
    };
  }
  const go = () => {
    const v = $('target-input').value.trim();
    if (v) onTarget(v);
  };
  $('target-go').onclick = go;
  $('target-input').onkeydown = (e) => {
    if (e.key === 'Enter') go();
  };
  for (const which of ['overlay', 'heatmap', 'npy']) $(`download-${which}`).onclick = () => onDownload(which);
}
