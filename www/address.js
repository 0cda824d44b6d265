// The page's settings and its address: opening an address with settings (settings.js) restores them,
// and every change of a setting rewrites the address in place (history.replaceState), so that it can
// be bookmarked or shared. A value the page does not know gets one notice naming the parameter, and
// the setting keeps its default. The target class waits for the first photo that has it.

import { COLORMAPS } from './overlay.js';
import { baselines } from './methods.js';
import { parseSettings, writeSettings } from './settings.js';
import * as explanationView from './views/explanation.js';
import * as options from './views/options.js';

let current = () => ({});
let restored = false; // nothing is written before the address's own settings were applied
let pendingTarget = null;

/** `current()`: {model, target, image} of the page's state. */
export function init(fns) {
  current = fns.current;
}

/** What each setting may be: the engine's methods, variants and composites, the page's models and colormaps. */
function choices(capabilities, candidates) {
  const { methods, variants, composites, defaults } = capabilities;
  const signs = [...document.getElementById('sign').options].map((o) => o.value);
  return {
    models: candidates.filter((c) => c.source !== 'file').map((c) => c.key),
    methods: ['lrp', ...baselines(methods, variants)],
    variants,
    composites,
    colormaps: Object.keys(COLORMAPS),
    signs,
    levels: defaults.evalQuantize,
  };
}

/**
 * Applies the settings of the page's address to the controls (once the engine's capabilities and
 * the models are known); `notify(text, kind, testid)` reports the values it does not know.
 */
export function restore({ capabilities, candidates, photos, notify }) {
  const params = new URLSearchParams(location.search);
  const { values, problems } = parseSettings(params, choices(capabilities, candidates));
  const photo = params.get('photo');
  if (photo !== null && !photos.some((p) => p.file === photo)) problems.push({ text: `photo=“${photo}” is not one of the sample photos` });
  options.apply(values);
  explanationView.applyUser(values);
  pendingTarget = values.target ?? null;
  if (problems.length) {
    const lines = problems.map((p) => `• ${p.text}; the default is used.`);
    notify(`The address has settings this page does not know:\n${lines.join('\n')}`, 'info', 'address-notice');
  }
  restored = true;
  save();
}

/**
 * The class to explain first on a photo of a model with `n` classes: the address's target once (if
 * the model has it), else null (the top class).
 */
export function takeTarget(n, notify) {
  const t = pendingTarget;
  pendingTarget = null;
  if (t === null || t < n) return t;
  notify(`The address asks for class ${t} (target=${t}), but this model has classes 0–${n - 1}: the top class is explained.`, 'info', 'address-notice');
  return null;
}

/** Writes the current settings into the address (the photo is not one of them). */
export function save() {
  if (!restored) return;
  const { model, target, image } = current();
  const params = new URLSearchParams(location.search);
  // the address's sample photo is no longer what is shown (or none of the samples)
  if (image && params.has('photo') && params.get('photo') !== image.item.sample) params.delete('photo');
  const { cmap, sign } = explanationView.display();
  const search = writeSettings(params, {
    // until a model has loaded, the address keeps the one it asks for
    model: model ? (model.source === 'file' ? null : model.key) : params.get('model'),
    method: options.method(),
    variant: options.variant(),
    composite: options.composite(),
    target: target ?? pendingTarget,
    colormap: cmap,
    sign,
    quantize: options.quantizeLevels(),
    cell: options.cell(),
  });
  if (search !== location.search) history.replaceState(history.state, '', `${location.pathname}${search}${location.hash}`);
}
