// Hooks for the end-to-end tests (tests/e2e) and the browser benchmark: `window.__lrp` (the page's
// state and a few actions), `window.__lastExplain`, `window.__lastEvaluation` and `window.__lastBatch`
// (what is on screen, with its numbers). Off in normal use. On when the page is driven by a browser under automation
// (`navigator.webdriver`: playwright's Chromium), when its address has `?hooks`, or when a script set
// `window.__lrpHooks = true` before the page loaded. Only this module writes them.

export const enabled =
  typeof window !== 'undefined' &&
  (window.__lrpHooks === true || navigator.webdriver === true || new URLSearchParams(location.search).has('hooks'));

let explainedCount = 0;
let evaluatedCount = 0;

/** `window.__lrp`: {state, addFiles, fedImage, crash, setRelevanceDisplay}. */
export function install(api) {
  if (enabled) window.__lrp = api;
}

/** An explanation was drawn: `describe()` gives {map, width, height, summary, options, model, image}. */
export function explained(describe) {
  if (!enabled) return;
  window.__lastExplain = { seq: ++explainedCount, ...describe() };
  document.body.dataset.explained = String(explainedCount);
}

/** Curves were drawn (`describe()` gives {context, target, model, image, rows}), or none are shown. */
export function evaluated(describe) {
  if (!enabled) return;
  if (!describe) {
    window.__lastEvaluation = null;
    return;
  }
  window.__lastEvaluation = { seq: ++evaluatedCount, ...describe() };
  document.body.dataset.evaluated = String(evaluatedCount);
}

let batchCount = 0;

/** A run over every sample ended (`describe()` gives {model, stopped, samples, rows}). */
export function batchEvaluated(describe) {
  if (!enabled) return;
  window.__lastBatch = { seq: ++batchCount, ...describe() };
  document.body.dataset.batched = String(batchCount);
}
