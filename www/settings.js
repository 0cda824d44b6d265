// Pure: the page's settings in its address (`?model=…&method=…`), both ways. The address holds the
// model, method, splitting variant, composite, target class, colormap, sign, heat quantization and the
// cells the map is shown in,
// never the photo the user opened. A value the page does not know is reported (naming its
// parameter) and left out, so that the setting keeps its default. address.js applies them.

/** The cells the page can show a map in (pixels per side; 1: single pixels), as in its `cell` control. */
const CELLS = ['1', '2', '4'];

/** The parameters this module reads and writes, in the order they are written. */
export const SETTINGS = ['model', 'method', 'variant', 'composite', 'target', 'colormap', 'sign', 'quantize', 'cell'];

/**
 * What each parameter may be, given the page's `choices`: {models: [key], methods, variants,
 * composites, colormaps, signs: [name], levels: the heat quantization levels when it is on}.
 * Each check returns the value to apply, or undefined when it is not one of them.
 */
function checks(choices) {
  const among = (list) => (v) => (list.includes(v) ? v : undefined);
  return {
    // a test model may be named without its folder (`?model=basic_bn`)
    model: (v) => choices.models.find((k) => k === v || k === `fixtures/${v}`),
    method: among(choices.methods),
    variant: among(choices.variants),
    composite: among(choices.composites),
    target: (v) => (/^\d{1,7}$/.test(v) ? Number(v) : undefined),
    colormap: among(choices.colormaps),
    sign: among(choices.signs),
    quantize: (v) => (v === '0' ? 0 : v === String(choices.levels) ? choices.levels : undefined),
    cell: (v) => (CELLS.includes(v) ? Number(v) : undefined),
  };
}

/** What a bad value should have been, for the notice. */
function expected(param, choices) {
  const list = { model: choices.models, method: choices.methods, variant: choices.variants, composite: choices.composites, colormap: choices.colormaps, sign: choices.signs }[param];
  if (list) return `one of ${list.join(', ')}`;
  if (param === 'target') return 'a class index (0, 1, 2, …)';
  if (param === 'cell') return `one of ${CELLS.join(', ')} (pixels per side of a cell)`;
  return `0 (off) or ${choices.levels} (levels)`;
}

/**
 * The settings of an address's query (`params`: URLSearchParams). Returns {values: {param: value}
 * for the good ones, problems: [{param, value, text}] for the others}.
 */
export function parseSettings(params, choices) {
  const values = {};
  const problems = [];
  const check = checks(choices);
  for (const param of SETTINGS) {
    const raw = params.get(param);
    if (raw === null) continue;
    const v = check[param](raw);
    if (v === undefined) problems.push({ param, value: raw, text: `${param}=“${raw}” is not ${expected(param, choices)}` });
    else values[param] = v;
  }
  return { values, problems };
}

/**
 * The query of an address with the settings `values` ({param: value}; null or undefined leaves a
 * parameter out) in place of those in `search`; every other parameter of `search` is kept.
 */
export function writeSettings(search, values) {
  const params = new URLSearchParams(search);
  for (const param of SETTINGS) {
    const v = values[param];
    if (v === null || v === undefined) params.delete(param);
    else params.set(param, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}
