// The explanation's settings: method, Relevance Splitting variant, composite, start, heat
// quantization. The lists of variants and composites and the defaults come from the engine
// (`capabilities()`); the descriptions next to the names are the page's.

import { $ } from '../dom.js';
import { baselineText, baselines } from '../methods.js';

const VARIANT_TEXT = {
  flows_skip: 'ratio (the paper)',
  flows_skip_simple: 'half / half',
  latest: 'identity: all to main',
  simple: 'all to main, projection half',
  conventional: 'signed s/(s+m)',
};

const COMPOSITE_TEXT = {
  conserving: 'z⁺, exact conservation',
  reference: "the authors' code",
};

let levels = 8; // heat quantization when ticked: the engine's default for the evaluation
let quantizeTouched = false; // the user ticked or unticked heat quantization: a model's default no longer applies
let quantizeInitial = false;
let cellTouched = false; // the user picked the cells: a model's default no longer applies

function fill(select, names, texts, selected) {
  select.replaceChildren();
  for (const name of names) {
    const text = texts[name] ? `${name} — ${texts[name]}` : name;
    select.append(new Option(text, name, name === selected, name === selected));
  }
}

/** One radio button per baseline after "LRP" (the engine's methods that are not splitting variants). */
function fillMethods(methods, variants, defaults) {
  const box = $('method');
  box.querySelectorAll('label:not(:first-of-type)').forEach((l) => l.remove());
  for (const key of baselines(methods, variants)) {
    const { label, description } = baselineText(key, defaults);
    const l = document.createElement('label');
    const input = document.createElement('input');
    Object.assign(input, { type: 'radio', name: 'method', value: key });
    l.title = description;
    l.append(input, ` ${label}`);
    box.append(l);
  }
}

/** Builds the lists from the engine's capabilities and selects its defaults. */
export function setup({ methods, variants, composites, defaults }) {
  fillMethods(methods, variants, defaults);
  fill($('variant'), variants, VARIANT_TEXT, defaults.variant);
  fill($('composite'), composites, COMPOSITE_TEXT, defaults.composite);
  const method = document.querySelector(`input[name="method"][value="${defaults.method}"]`);
  if (method) method.checked = true;
  $('start').value = defaults.start;
  levels = defaults.evalQuantize;
  $('quantize-levels').textContent = String(levels);
  quantizeInitial = $('quantize').checked;
}

/**
 * A model's default heat quantization (`quantize`: levels, 0 for none; missing: the page's own), unless
 * the user has set it. The levels stay the engine's (the paper's 8). `cell` (missing: 1, per pixel): the
 * shown map is averaged over cell × cell pixels before quantization (display only; the `.npy` stays per pixel).
 */
export function applyDefaults({ quantize, cell } = {}) {
  if (!quantizeTouched) $('quantize').checked = quantize === undefined ? quantizeInitial : quantize > 1;
  if (!cellTouched) $('cell').value = [2, 4].includes(cell) ? String(cell) : '1';
}

/** The cells the map is shown in (1: per pixel). */
export const cell = () => Number($('cell').value) || 1;

/**
 * Settings the user asked for (the page's address: {method, variant, composite, quantize, cell}, any may
 * be missing); quantize is in levels, 0 for none; quantize and cell stay over a model's default.
 */
export function apply(values) {
  if (values.method !== undefined) document.querySelector(`input[name="method"][value="${values.method}"]`).checked = true;
  if (values.variant !== undefined) $('variant').value = values.variant;
  if (values.composite !== undefined) $('composite').value = values.composite;
  if (values.quantize !== undefined) {
    $('quantize').checked = values.quantize > 1;
    quantizeTouched = true;
  }
  if (values.cell !== undefined) {
    $('cell').value = String(values.cell);
    cellTouched = true;
  }
}

export const method = () => document.querySelector('input[name="method"]:checked').value;
export const composite = () => $('composite').value;
export const start = () => $('start').value;
export const variant = () => $('variant').value;
/** Heat quantization: its levels when ticked, else 0. */
export const quantizeLevels = () => ($('quantize').checked ? levels : 0);

/** The method shown, as a key of the evaluation's methods: a variant, or a baseline's name. */
export const methodKey = () => (method() === 'lrp' ? $('variant').value : method());

/** The options of an explanation of class `target` with these settings. */
export function read(target) {
  const m = method();
  const o = { target, method: m, start: start(), quantize: quantizeLevels() };
  if (cell() > 1) o.cell = cell();
  if (m === 'lrp') {
    o.composite = composite();
    o.variant = $('variant').value;
  }
  return o;
}

/** Shows the settings of `options` (e.g. a comparison cell that was clicked). */
export function show(options) {
  document.querySelector(`input[name="method"][value="${options.method}"]`).checked = true;
  if (options.variant) $('variant').value = options.variant;
}

/** onChange(what): "method", "variant" or another setting ("composite", "start", "quantize", "cell") changed. */
export function bind({ onChange }) {
  // on the fieldset: setup() adds the baselines' radio buttons after bind(), and change events bubble
  $('method').onchange = (e) => {
    if (e.target.name === 'method') onChange('method');
  };
  for (const id of ['variant', 'composite', 'start', 'quantize', 'cell']) $(id).onchange = () => onChange(id);
  // code sets .checked and .value without an event: only the user's changes count as touched
  $('quantize').addEventListener('change', () => (quantizeTouched = true));
  $('cell').addEventListener('change', () => (cellTouched = true));
}
