// Accessibility: axe-core (node_modules/axe-core) is injected into the page and run on its main
// states: opened with the default model, after an explanation, with the comparison grid, with the
// insertion/deletion evaluation shown, and with the list of the user's photos (also in the dark
// colour scheme). No violation of impact `serious` or `critical` is allowed (they are printed when
// there are). Then the keyboard alone: Tab reaches the method, the arrow keys change it (a new
// explanation), Space on a class of the prediction explains that class and Enter in the class box
// the class typed; the focused control shows a visible outline.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { dropFiles, explained, idle, need, openPage, read, ROOT, seq, WWW } from './harness.mjs';

// served from the page's own origin: its Content-Security-Policy allows no inline script
const AXE_DIR = path.join(ROOT, 'node_modules', 'axe-core');
const T = { load: 120_000, grid: 120_000, evaluate: 180_000 };

let h;
let page;

before(async () => {
  need(path.join(AXE_DIR, 'axe.min.js'), 'npm ci (axe-core is a devDependency)');
  h = await openPage('a11y', { mounts: { '/test-only/axe/': AXE_DIR } });
  page = h.page;
});

after(async () => {
  await h?.close();
});

/** Runs axe on the page; fails on serious or critical violations, listing each with its elements. */
async function audit(state) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ url: '/test-only/axe/axe.min.js' });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`) }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const text = bad.map((v) => `[${v.impact}] ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 6).join('\n    ')}`).join('\n');
  assert.equal(bad.length, 0, `${state}: axe finds\n${text}`);
  return violations;
}

test('axe: the page opened with the default model', async (t) => {
  await page.goto(h.server.url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  await idle(page);
  const minor = await audit('default model');
  t.diagnostic(`minor or moderate: ${minor.map((v) => `${v.id} (${v.impact})`).join(', ') || 'none'}`);
});

test('axe: after an explanation, with the comparison grid', async () => {
  await page.goto(`${h.server.url}?model=basic_bn`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  const s = await seq(page);
  await page.click('[data-testid="sample-chelsea.png"]');
  await explained(page, s);
  await audit('after an explanation');
  await page.click('[data-testid="compare"]');
  await page.waitForFunction(
    () => document.querySelectorAll('[data-testid="compare-grid"] .cell').length === 11 && !document.querySelector('[data-testid="compare-grid"] .cell.pending'),
    null,
    { timeout: T.grid },
  );
  await audit('with the comparison grid');
});

test('axe: with the evaluation shown, and with the list of the user’s photos', async () => {
  await idle(page);
  await page.click('[data-testid="evaluate"]');
  await page.waitForFunction(() => (window.__lastEvaluation?.seq ?? 0) > 0 && document.body.dataset.evaluating !== 'true', null, { timeout: T.evaluate, polling: 200 });
  await audit('with the evaluation');
  await dropFiles(page, [{ name: 'coffee.png', type: 'image/png', bytes: read(WWW, 'photos', 'coffee.png') }, { name: 'broken.png', type: 'image/png', bytes: Buffer.alloc(100, 1) }]);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="photobatch-row"]')].some((r) => r.dataset.status === 'done'), null, { timeout: T.load });
  await idle(page);
  await audit('with the list of photos');
  // the dark colour scheme has colours of its own
  await page.emulateMedia({ colorScheme: 'dark' });
  try {
    await audit('with the list of photos, dark');
  } finally {
    await page.emulateMedia({ colorScheme: 'light' });
  }
});

/** Presses Tab until `test(activeElement)` holds (at most `max` times); returns the element's description. */
async function tabTo(predicate, max = 120) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const found = await page.evaluate(predicate);
    if (found) return found;
  }
  assert.fail('Tab never reached the control');
}

test('keyboard: Tab to the method, change it with the arrows, explain a class with Space', async () => {
  await page.goto(`${h.server.url}?model=basic_bn&photo=chelsea.png`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  await explained(page, 0);
  await page.evaluate(() => document.activeElement?.blur());
  await tabTo(() => document.activeElement?.name === 'method');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement.closest('label')).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused method shows an outline');
  let s = await seq(page);
  await page.keyboard.press('ArrowRight');
  const e = await explained(page, s);
  assert.equal(e.options.method, 'gradient', 'the next method is explained');
  // on to the prediction list: Space on the second class explains it
  const cls = await tabTo(() => (document.activeElement?.dataset.testid === 'class' ? document.activeElement.dataset.class : null));
  const focus = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(focus, 'none', 'the focused class shows an outline');
  s = await seq(page);
  await page.keyboard.press('Space');
  const c = await explained(page, s);
  assert.equal(c.summary.target, Number(cls));
  // and Enter in the class box explains the class typed
  await page.focus('[data-testid="target-input"]');
  await page.keyboard.type('7');
  s = await seq(page);
  await page.keyboard.press('Enter');
  assert.equal((await explained(page, s)).summary.target, 7);
});
