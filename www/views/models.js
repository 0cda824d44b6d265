// The model section: the list of models, what the loaded model is, its preprocessing form, and the
// credits at the foot of the page.

import { $ } from '../dom.js';

const GROUPS = [
  ['Models', 'manifest'],
  ['Test models', 'fixture'],
  ['Your models', 'file'],
];

/** The model list, grouped by where the models come from, with `currentKey` selected. */
export function renderList(candidates, currentKey) {
  const sel = $('model-select');
  sel.replaceChildren();
  for (const [label, source] of GROUPS) {
    const list = candidates.filter((c) => c.source === source);
    if (!list.length) continue;
    const g = document.createElement('optgroup');
    g.label = label;
    for (const c of list) g.append(new Option(c.label, c.key));
    sel.append(g);
  }
  if (currentKey) sel.value = currentKey;
}

/** The loaded model: its input, classes and layers, its class names for the target box, its form. */
export function render(model) {
  const { input, numClasses, layers } = model.info;
  const count = (k) => layers.filter((l) => l.kind === k).length;
  const convs = count('conv') + count('dense');
  $('model-info').textContent =
    `Input ${input.name} [${input.shape.join('×')}] ${input.layout}; ${numClasses} classes; ` +
    `${convs} weighted layers, ${count('add')} residual additions` +
    (count('gate') ? `, ${count('gate')} squeeze-excitation gates (constant scales of their branches for LRP). ` : '. ') +
    (input.size_pinned ? `The model leaves the image size open: explained at ${input.height}×${input.width}. ` : '') +
    model.note;
  renderStructure(model.info);
  renderCredits(model, null);
  const list = $('class-list');
  list.replaceChildren();
  if (model.names) for (let i = 0; i < model.names.length; i++) list.append(new Option(`${i}: ${model.names[i]}`));
  renderPreprocess(model);
}

/**
 * Each residual addition (how its shortcut was identified, what each splitting variant gives it) and each
 * squeeze-excitation gate, as the engine read them.
 */
function renderStructure({ residuals = [], gates = [] }) {
  const items = residuals.map((r) => {
    const kind = r.projection ? 'projection' : 'identity';
    const splits = r.splits.map(([v, s]) => `${v}: ${s}`).join('; ');
    if (r.shortcut_input === null) return `${r.node}: no shortcut (both inputs pass through as many weighted layers). ${splits}.`;
    return `${r.node}: ${kind} shortcut = input ${r.shortcut_input} (${r.shortcut}), main branch = ${r.main}. ${splits}.`;
  });
  for (const g of gates) {
    items.push(`${g.node}: squeeze-excitation gate ${g.gate} on branch ${g.branch}, treated as a constant scale ` +
      'of the branch: the branch gets all the relevance, the gate’s own path none.');
  }
  if (!items.length) items.push('No residual additions.');
  $('model-structure').replaceChildren(...items.map((t) => Object.assign(document.createElement('li'), { textContent: t })));
}

/** The credits of the model and of the photo (an item with a `credit`, or none). */
export function renderCredits(model, item) {
  const photo = item?.credit ? `Photo — ${item.credit}` : '';
  $('credits').textContent = [`Model — ${model.credit}`, photo].filter(Boolean).join('  ·  ');
}

/** A float32 from the engine as the user wrote it (0.485, not 0.48500001430511475): 7 significant digits. */
const f32 = (v) => Number(v.toPrecision(7));

/** The preprocessing form, showing the model's current settings. */
export function renderPreprocess(model) {
  $('pre-resize').value = model.resize.mode;
  $('pre-size').value = model.resize.size;
  $('pre-scale').value = f32(model.preprocess.scale);
  $('pre-mean').value = model.preprocess.mean.map(f32).join(', ');
  $('pre-std').value = model.preprocess.std.map(f32).join(', ');
  $('pre-bgr').checked = model.preprocess.bgr;
}

/** The form's settings: {preprocess, resize}; throws with the field's name when one is not valid. */
export function readPreprocess() {
  const triple = (id) => {
    const v = $(id).value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (v.length === 1) return [v[0], v[0], v[0]];
    if (v.length !== 3 || v.some((x) => !Number.isFinite(x))) throw new Error(`${id.slice(4)}: give one or three numbers`);
    return v;
  };
  const preprocess = { scale: Number($('pre-scale').value), mean: triple('pre-mean'), std: triple('pre-std'), bgr: $('pre-bgr').checked };
  const size = Math.round(Number($('pre-size').value));
  if (!(size > 0)) throw new Error('resize: give a positive size');
  return { preprocess, resize: { mode: $('pre-resize').value, size } };
}

/** onPick(key): a model chosen in the list; onFiles(files): opened; onPreprocess(): the form applied. */
export function bind({ onPick, onFiles, onPreprocess }) {
  const sel = $('model-select');
  sel.onchange = () => onPick(sel.value);
  $('model-file').onchange = (e) => {
    onFiles([...e.target.files]);
    e.target.value = '';
  };
  $('preprocess-form').onsubmit = (e) => {
    e.preventDefault();
    onPreprocess();
  };
}
