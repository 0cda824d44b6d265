// End-to-end test of the page's insertion/deletion evaluation (the "Evaluate" action) in headless
// Chromium, driven by playwright-core.
//
//   node tests/e2e/evaluate.test.mjs          or          node --test tests/e2e/
//
// Needs: www/pkg (./build.sh wasm), www/models + www/photos (./build.sh assets), Debian's
// /usr/bin/chromium (CHROMIUM overrides) and `npm ci` for playwright-core; the native CLI
// (target/debug/resnet-lrp, RESNET_LRP_CLI overrides) for the parity check of step 8, which is
// skipped without it. Set E2E_SKIP_REAL=1 to skip the run on EfficientNet-Lite0.
//
// What it checks, in order, on one browser profile (a test ResNet unless said otherwise):
//  1. Evaluate with no photo gives a readable error, and the page goes on to explain a photo;
//  2. Evaluate draws the insertion and deletion curves of the current photo, class and method,
//     reports progress, fills the table (AUCs in [0, 1], ID = Insertion − Deletion), and the last
//     insertion point is the model's probability of the class on the full photo (the top-classes
//     readout); the explanation on screen is untouched;
//  3. ticking random (then gradient × input and conventional LRP) adds a row and a line each; the
//     CSV holds every point;
//  4. another class, another ranking or another method clears or keeps the curves as it should;
//  5. gradient × input shows "n/a" for the conservation error;
//  6. a bad step and a preprocessed tensor give readable errors, and the page keeps working;
//  7. Stop ends a long evaluation; the model and the photo stay;
//  8. EfficientNet-Lite0 on chelsea.png with its display defaults (8-level heat quantization, the paper's setting; the map in 2×2 cells), and
//     the native CLI's `evaluate` on exactly the pixels the page fed the engine gives the same curves;
//  9. every request went to 127.0.0.1 and the page raised no uncaught errors.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertContained, CLI, dismissNotices, dropFiles, explained, FIXTURES, idle, notices, openPage, OUT, read, ROOT, saveFedImage, seq, stopwatch, WWW } from './harness.mjs';

const T = { load: 120_000, evaluate: 120_000 }; // explanations: the harness's 90 s
const COLOURS = { flows_skip: [0x00, 0x72, 0xb2], random: [0x8c, 0x8c, 0x8c], gradient: [0xe6, 0x9f, 0x00] };

let h;
let page;
const { timed, summary } = stopwatch();

before(async () => {
  h = await openPage('evaluate');
  page = h.page;
});

after(async () => {
  await h?.close();
});

// ---------------------------------------------------------------------------------------
// helpers

const evalSeq = () => page.evaluate(() => window.__lastEvaluation?.seq ?? 0);

/** Waits until curves newer than `since` with `rows` methods are drawn and the evaluation is over. */
async function evaluated(since, rows, timeout = T.evaluate) {
  try {
    await page.waitForFunction(
      ([s, n]) => (window.__lastEvaluation?.seq ?? 0) > s && window.__lastEvaluation.rows.length === n && document.body.dataset.evaluating !== 'true',
      [since, rows],
      { timeout, polling: 100 },
    );
  } catch (e) {
    const now = await page.evaluate(() => ({
      seq: window.__lastEvaluation?.seq,
      rows: window.__lastEvaluation?.rows.map((r) => r.key),
      evaluating: document.body.dataset.evaluating,
      progress: document.getElementById('eval-progress-text').textContent,
      summary: document.getElementById('eval-summary').textContent,
    }));
    e.message += `\nwaiting for ${rows} rows after evaluation ${since}; now: ${JSON.stringify(now)}; notices: ${JSON.stringify(await notices(page))}`;
    throw e;
  }
  return page.evaluate(() => window.__lastEvaluation);
}

async function evaluateError() {
  await page.waitForSelector('[data-testid="evaluate-error"]', { timeout: T.evaluate });
  return (await notices(page)).find((n) => n.testid === 'evaluate-error').text;
}

/** Pixels of a canvas within ±`tol` of an RGB colour. */
function countColour(testid, rgb, tol = 24) {
  return page.evaluate(
    ([id, [r, g, b], tol]) => {
      const c = document.querySelector(`[data-testid="${id}"]`);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 200 && Math.abs(d[i] - r) <= tol && Math.abs(d[i + 1] - g) <= tol && Math.abs(d[i + 2] - b) <= tol) n++;
      }
      return n;
    },
    [testid, rgb, tol],
  );
}

async function tableRows() {
  return page.$$eval('[data-testid="eval-table"] tbody tr', (trs) =>
    trs.map((tr) => {
      const v = (f) => Number(tr.querySelector(`[data-field="${f}"]`).dataset.value);
      const t = (f) => tr.querySelector(`[data-field="${f}"]`).textContent;
      return {
        key: tr.dataset.method,
        name: tr.querySelector('th').textContent,
        insertion: v('insertion'),
        deletion: v('deletion'),
        id: v('id'),
        passes: v('passes'),
        text: { insertion: t('insertion'), deletion: t('deletion'), id: t('id'), passes: t('passes') },
      };
    }),
  );
}

/** The probability of the class as the top-classes readout shows it (percent, one decimal). */
async function readoutPercent(cls) {
  const text = await page.textContent(`[data-testid="predictions"] button[data-class="${cls}"] .prob`);
  const m = /([\d.]+) %/.exec(text);
  assert.ok(m, `readout of class ${cls}: ${text}`);
  return { value: Number(m[1]), decimals: m[1].split('.')[1]?.length ?? 0 };
}

/** What every evaluation must satisfy. */
function checkCurves(row, { pixels, step }) {
  const n = Math.ceil(pixels / step);
  for (const curve of ['insertion', 'deletion']) {
    const c = row[curve];
    assert.equal(c.probabilities.length, n, `${row.key} ${curve}: ${n} images of ${step} pixels`);
    assert.equal(c.kept.length, n);
    assert.ok(c.auc >= 0 && c.auc <= 1, `${row.key} ${curve} AUC ${c.auc} in [0, 1]`);
    for (const p of c.probabilities) assert.ok(p >= 0 && p <= 1, `${row.key} ${curve}: probability ${p}`);
    // AUC = trapezoid over equally spaced images
    const sum = c.probabilities.reduce((a, b) => a + b, 0);
    const auc = n > 1 ? (sum - c.probabilities[0] / 2 - c.probabilities[n - 1] / 2) / (n - 1) : c.probabilities[0];
    assert.ok(Math.abs(auc - c.auc) < 1e-5, `${row.key} ${curve}: AUC ${c.auc} vs trapezoid ${auc}`);
  }
  assert.ok(Math.abs(row.id - (row.insertion.auc - row.deletion.auc)) < 1e-9, `${row.key}: ID = Insertion − Deletion`);
  // insertion grows to the full photo, deletion shrinks to a black image
  for (let i = 1; i < n; i++) {
    assert.ok(row.insertion.kept[i] >= row.insertion.kept[i - 1], 'insertion shows more pixels at every step');
    assert.ok(row.deletion.kept[i] <= row.deletion.kept[i - 1], 'deletion shows fewer pixels at every step');
  }
  assert.equal(row.insertion.kept[n - 1], 1, 'the last insertion image is the full photo');
  assert.equal(row.deletion.kept[n - 1], 0, 'the last deletion image is black');
  assert.ok(row.forwardPasses >= 1 && row.forwardPasses <= 2 * n, `${row.forwardPasses} forward passes for ${n} images per curve`);
}

/** The table shows what the engine returned, rounded to 3 decimals. */
async function checkTable(data) {
  const rows = await tableRows();
  assert.deepEqual(rows.map((r) => r.key), data.rows.map((r) => r.key));
  for (const [i, r] of rows.entries()) {
    const e = data.rows[i];
    assert.equal(r.insertion, e.insertion.auc);
    assert.equal(r.deletion, e.deletion.auc);
    assert.equal(r.id, e.id);
    assert.equal(r.passes, e.forwardPasses);
    assert.equal(r.text.insertion, e.insertion.auc.toFixed(3));
    assert.equal(r.text.id, e.id.toFixed(3));
  }
  return rows;
}

/** The last insertion point is the full photo: the model's own probability of the class. */
async function checkFullPhoto(row, cls) {
  const pred = await page.evaluate((c) => window.__lrp.state.prediction.probabilities[c], cls);
  const last = row.insertion.probabilities.at(-1);
  assert.ok(Math.abs(last - pred) <= 1e-4, `last insertion point ${last} vs the page's prediction ${pred}`);
  assert.ok(Math.abs(row.probability - pred) <= 1e-4, `evaluation probability ${row.probability} vs ${pred}`);
  const shown = await readoutPercent(cls);
  const tol = 0.5 * 10 ** -shown.decimals + 1e-3;
  assert.ok(Math.abs(last * 100 - shown.value) <= tol, `last insertion point ${(last * 100).toFixed(3)} % vs the readout ${shown.value} %`);
}

async function pixelsPerImage() {
  return page.evaluate(() => {
    const { height, width } = window.__lrp.state.model.info.input;
    return height * width;
  });
}

// ---------------------------------------------------------------------------------------
// the tests (they run in order and share the page)

test('Evaluate without a photo gives a readable error; the page keeps working', async () => {
  await page.goto(`${h.server.url}?model=basic_bn`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  assert.equal(await page.inputValue('[data-testid="model-select"]'), 'fixtures/basic_bn');
  assert.equal(await page.isEnabled('[data-testid="evaluate"]'), true, 'Evaluate is offered once a model is loaded');
  assert.equal(await page.inputValue('[data-testid="eval-quantize"]'), '8', 'the paper’s heat quantization by default');
  assert.equal(await page.inputValue('[data-testid="eval-step"]'), '500');
  await page.click('[data-testid="evaluate"]');
  assert.match(await evaluateError(), /need a photo/);
  assert.equal(await page.isHidden('#eval-results'), true, 'no curves');
  await dismissNotices(page);
  const s = await seq(page);
  await page.click('[data-testid="sample-chelsea.png"]');
  const e = await explained(page, s);
  assert.equal(e.image, 'chelsea.png');
  assert.equal(e.model, 'fixtures/basic_bn');
});

test('Evaluate draws both curves for the current photo, class and method', async (t) => {
  const before = await page.evaluate(() => ({ seq: window.__lastExplain.seq, map: Array.from(window.__lastExplain.map) }));
  // every progress line the page shows, as it shows it
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => window.__progress.push(document.getElementById('eval-progress-text').textContent)).observe(
      document.getElementById('eval-progress-text'),
      { childList: true, characterData: true, subtree: true },
    );
  });
  const s = await evalSeq();
  const data = await timed('evaluate flows_skip (test model)', async () => {
    await page.click('[data-testid="evaluate"]');
    return evaluated(s, 1);
  });
  const row = data.rows[0];
  assert.equal(row.key, 'flows_skip');
  assert.equal(row.options.method, 'lrp');
  assert.equal(row.options.variant, 'flows_skip');
  assert.equal(row.options.composite, 'conserving');
  assert.equal(row.options.quantize, 8);
  const cls = await page.evaluate(() => window.__lrp.state.target);
  assert.equal(row.target, cls);
  assert.equal(cls, Number(await page.getAttribute('[data-testid="top-class"]', 'data-class')), 'the explained class is the top class');
  checkCurves(row, { pixels: await pixelsPerImage(), step: 500 });
  await checkFullPhoto(row, cls);
  await checkTable(data);
  assert.match(await page.textContent('[data-testid="eval-row-flows_skip"] th'), /flows_skip \(current\)/);

  // progress: forward passes done / total, as the engine reports them
  const progress = await page.evaluate(() => window.__progress);
  const passes = progress.map((p) => /(\d+) \/ (\d+) forward passes/.exec(p)).filter(Boolean);
  assert.ok(passes.length >= 1, `progress was shown: ${JSON.stringify(progress)}`);
  assert.ok(passes.every((m) => Number(m[2]) === row.forwardPasses), 'the total is the number of forward passes');
  assert.equal(await page.isHidden('[data-testid="eval-progress"]'), true, 'the progress line goes away');

  // both curves are drawn in the method's colour, over axes and a legend
  for (const id of ['insertion-plot', 'deletion-plot']) {
    const n = await countColour(id, COLOURS.flows_skip);
    assert.ok(n > 50, `${id}: ${n} pixels of the flows_skip line`);
  }
  assert.match(await page.textContent('[data-testid="eval-legend"]'), /flows_skip \(current\).*full photo/);
  assert.match(await page.getAttribute('[data-testid="insertion-plot"]', 'aria-label'), /Insertion curves.*flows_skip \d\.\d{3}/);
  assert.match(await page.textContent('[data-testid="eval-summary"]'), /chelsea\.png.*8-level heat quantization, 500 pixels per step/);

  // the explanation on screen is the one from before
  const after = await page.evaluate(() => ({ seq: window.__lastExplain.seq, map: Array.from(window.__lastExplain.map) }));
  assert.deepEqual(after, before);
  assert.deepEqual(await notices(page), []);
  await page.locator('[data-testid="evaluate-section"]').screenshot({ path: path.join(OUT, 'evaluate-test-model.png') });
  t.diagnostic(`flows_skip: insertion ${row.insertion.auc.toFixed(4)}, deletion ${row.deletion.auc.toFixed(4)}, ID ${row.id.toFixed(4)}, ${row.forwardPasses} forward passes, ${Math.round(row.ms)} ms`);
});

test('ticking random, gradient × input and conventional LRP adds their rows and lines', async (t) => {
  let s = await evalSeq();
  await page.check('[data-testid="eval-method-random"]');
  let data = await evaluated(s, 2);
  assert.deepEqual(data.rows.map((r) => r.key), ['flows_skip', 'random']);
  const pixels = await pixelsPerImage();
  const random = data.rows[1];
  assert.equal(random.options.method, 'random');
  checkCurves(random, { pixels, step: 500 });
  assert.equal(random.forwardPasses, 2 * Math.ceil(pixels / 500), 'a random ranking has no ties: every image is its own pass');
  let rows = await checkTable(data);
  assert.equal(rows.length, 2);
  for (const id of ['insertion-plot', 'deletion-plot']) {
    assert.ok((await countColour(id, COLOURS.random, 6)) > 20, `${id}: the random line is drawn`);
    assert.ok((await countColour(id, COLOURS.flows_skip)) > 50, `${id}: the flows_skip line is still there`);
  }

  s = await evalSeq();
  await page.check('[data-testid="eval-method-gradient"]');
  await page.check('[data-testid="eval-method-conventional"]');
  data = await evaluated(s, 4);
  // in the order of the list, the current method first
  assert.deepEqual(data.rows.map((r) => r.key), ['flows_skip', 'conventional', 'gradient', 'random']);
  for (const r of data.rows) checkCurves(r, { pixels, step: 500 });
  rows = await checkTable(data);
  assert.ok((await countColour('insertion-plot', COLOURS.gradient)) > 20, 'the gradient × input line is drawn');
  t.diagnostic(rows.map((r) => `${r.key}: ins ${r.text.insertion} del ${r.text.deletion} ID ${r.text.id} (${r.passes} passes)`).join('; '));

  // unticking hides a method; the current one cannot be unticked
  await page.uncheck('[data-testid="eval-method-conventional"]');
  assert.deepEqual((await tableRows()).map((r) => r.key), ['flows_skip', 'gradient', 'random']);
  assert.equal(await page.isDisabled('[data-testid="eval-method-flows_skip"]'), true);
  assert.equal(await page.isChecked('[data-testid="eval-method-flows_skip"]'), true);

  // the CSV has every point of every curve shown
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="eval-csv"]')]);
  assert.match(download.suggestedFilename(), /^chelsea\..*\.insertion_deletion\.csv$/);
  const file = path.join(h.profile, 'curves.csv');
  await download.saveAs(file);
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  const n = Math.ceil(pixels / 500);
  assert.equal(lines.length, 1 + 3 * 2 * n);
  assert.match(lines[0], /^model,photo,class,class_name,method,composite,start,quantize,step,curve,auc,image,fraction_of_pixels,probability$/);
  const last = lines.filter((l) => /,flows_skip,.*,insertion,/.test(l)).at(-1).split(',');
  const ev = await page.evaluate(() => window.__lastEvaluation.rows[0]);
  assert.equal(Number(last.at(-2)), 1, 'the last insertion image shows every pixel');
  assert.equal(Number(last.at(-1)), ev.insertion.probabilities.at(-1));
  await page.locator('[data-testid="evaluate-section"]').screenshot({ path: path.join(OUT, 'evaluate-test-model-compare.png') });
});

test('another class clears the curves; another method keeps the others and asks to evaluate it', async () => {
  // the variant: flows_skip loses "current" (its box stays unticked) and latest becomes current
  const s0 = await seq(page);
  await page.selectOption('[data-testid="variant"]', 'latest');
  await explained(page, s0);
  assert.deepEqual((await tableRows()).map((r) => r.key), ['gradient', 'random'], 'flows_skip is not ticked: hidden');
  assert.match(await page.textContent('[data-testid="eval-summary"]'), /press Evaluate for latest/);
  let s = await evalSeq();
  await page.click('[data-testid="evaluate-shortcut"]'); // the button next to the explanation controls
  let data = await evaluated(s, 3);
  assert.deepEqual(data.rows.map((r) => r.key), ['latest', 'gradient', 'random']);
  const s1 = await seq(page);
  await page.selectOption('[data-testid="variant"]', 'flows_skip');
  await explained(page, s1);
  assert.deepEqual((await tableRows()).map((r) => r.key), ['flows_skip', 'gradient', 'random'], 'the earlier curves come back');

  // another class: nothing of the previous class stays on screen
  const s2 = await seq(page);
  const second = page.locator('[data-testid="predictions"] button').nth(1);
  const cls = Number(await second.getAttribute('data-class'));
  await second.click();
  await explained(page, s2);
  assert.equal(await page.isHidden('#eval-results'), true, 'the stale curves are gone');
  assert.equal(await page.evaluate(() => window.__lastEvaluation), null);
  assert.match(await page.textContent('[data-testid="eval-summary"]'), new RegExp(`class ${cls}\\b`));
  s = await evalSeq();
  await page.click('[data-testid="evaluate"]');
  data = await evaluated(s, 3);
  assert.ok(data.rows.every((r) => r.target === cls));
  await checkFullPhoto(data.rows[0], cls);

  // another ranking (raw relevance) also clears them
  await page.selectOption('[data-testid="eval-quantize"]', '0');
  assert.equal(await page.isHidden('#eval-results'), true);
  s = await evalSeq();
  await page.click('[data-testid="evaluate"]');
  data = await evaluated(s, 3);
  assert.equal(data.rows[0].options.quantize, 0);
  for (const r of data.rows) checkCurves(r, { pixels: await pixelsPerImage(), step: 500 });
  await page.selectOption('[data-testid="eval-quantize"]', '8');
  await page.uncheck('[data-testid="eval-method-gradient"]');
});

test('gradient × input shows n/a for the conservation error', async () => {
  const s = await seq(page);
  await page.check('input[name="method"][value="gradient"]');
  await explained(page, s);
  assert.equal(await page.textContent('[data-testid="relative-error"]'), 'n/a');
  assert.equal(await page.getAttribute('[data-testid="relative-error"]', 'data-value'), null);
  assert.match(await page.textContent('#conservation-note'), /not meant to conserve/);
  assert.equal(await page.isDisabled('[data-testid="eval-method-gradient"]'), true, 'gradient × input is now the current method');
  const s2 = await seq(page);
  await page.check('input[name="method"][value="lrp"]');
  await explained(page, s2);
  const rel = await page.textContent('[data-testid="relative-error"]');
  assert.match(rel, /^\d\.\d\de[-+]\d+$/, `LRP shows a number: ${rel}`);
});

test('a bad step or a preprocessed tensor gives a readable error; the page keeps working', async () => {
  await idle(page);
  await dismissNotices(page);
  await page.fill('[data-testid="eval-step"]', '0');
  await page.click('[data-testid="evaluate"]');
  assert.match(await evaluateError(), /Pixels per step: “0” is not a whole number of at least 1/);
  await dismissNotices(page);
  await page.fill('[data-testid="eval-step"]', '2.5');
  await page.press('[data-testid="eval-step"]', 'Enter');
  assert.match(await evaluateError(), /“2\.5”/);
  await dismissNotices(page);
  await page.fill('[data-testid="eval-step"]', '1000');
  const e0 = await evalSeq();
  await page.press('[data-testid="eval-step"]', 'Enter'); // Enter in the form evaluates
  let data = await evaluated(e0, 2);
  const pixels = await pixelsPerImage();
  for (const r of data.rows) checkCurves(r, { pixels, step: 1000 });
  await page.fill('[data-testid="eval-step"]', '500');
  await page.dispatchEvent('[data-testid="eval-step"]', 'change');

  // a preprocessed tensor has no pixels to black out
  const s = await seq(page);
  await dropFiles(page, [{ name: 'basic_bn.input.npy', type: '', bytes: read(FIXTURES, 'basic_bn.input.npy') }]);
  assert.equal((await explained(page, s)).image, 'basic_bn.input.npy');
  await page.click('[data-testid="evaluate"]');
  assert.match(await evaluateError(), /preprocessed tensor/);
  await dismissNotices(page);
  // the page still explains the tensor, and evaluates once a photo is back
  const s2 = await seq(page);
  await page.locator('[data-testid="predictions"] button').nth(2).click();
  assert.equal((await explained(page, s2)).image, 'basic_bn.input.npy');
  const s3 = await seq(page);
  await page.click('[data-testid="sample-coffee.png"]');
  assert.equal((await explained(page, s3)).image, 'coffee.png');
  const e = await evalSeq();
  await page.click('[data-testid="evaluate"]');
  data = await evaluated(e, 2);
  assert.equal(data.image, 'coffee.png');
  await checkFullPhoto(data.rows[0], data.target);
  assert.deepEqual(await notices(page), []);
});

test('Stop ends a long evaluation; the model and the photo stay', async () => {
  await idle(page);
  await page.fill('[data-testid="eval-step"]', '1'); // 4096 images per curve
  await page.dispatchEvent('[data-testid="eval-step"]', 'change');
  await page.selectOption('[data-testid="eval-quantize"]', '0');
  await page.click('[data-testid="evaluate"]');
  await page.waitForFunction(
    () => !document.getElementById('eval-progress').hidden && /[1-9]\d* \/ \d+ forward passes/.test(document.getElementById('eval-progress-text').textContent),
    null,
    { timeout: T.evaluate, polling: 50 },
  );
  assert.equal(await page.isVisible('[data-testid="evaluate-stop"]'), true);
  assert.equal(await page.isDisabled('[data-testid="evaluate"]'), true, 'one evaluation at a time');
  await timed('stop and restart the engine', async () => {
    await page.click('[data-testid="evaluate-stop"]');
    await page.waitForSelector('[data-testid="evaluate-stopped"]', { timeout: T.load });
    await idle(page);
  });
  assert.equal(await page.isHidden('[data-testid="evaluate-stop"]'), true);
  assert.equal(await page.isHidden('[data-testid="eval-progress"]'), true);
  assert.equal(await page.isEnabled('[data-testid="evaluate"]'), true);
  assert.equal((await notices(page)).filter((n) => n.testid.endsWith('error')).length, 0);
  // the same model and photo: explain another class, then evaluate with a sensible step
  const s = await seq(page);
  await page.locator('[data-testid="predictions"] button').nth(1).click();
  const e = await explained(page, s);
  assert.equal(e.image, 'coffee.png');
  assert.equal(e.model, 'fixtures/basic_bn');
  await page.fill('[data-testid="eval-step"]', '500');
  await page.dispatchEvent('[data-testid="eval-step"]', 'change');
  await page.selectOption('[data-testid="eval-quantize"]', '8');
  const es = await evalSeq();
  await page.click('[data-testid="evaluate"]');
  const data = await evaluated(es, 2);
  await checkFullPhoto(data.rows[0], data.target);
  await dismissNotices(page);
});

test('EfficientNet-Lite0 on chelsea.png with 8-level heat quantization', { skip: process.env.E2E_SKIP_REAL ? 'E2E_SKIP_REAL is set' : false }, async (t) => {
  await page.uncheck('[data-testid="eval-method-random"]');
  await page.selectOption('[data-testid="model-select"]', 'efficientnet_lite0');
  await page.waitForFunction(() => window.__lrp.state.model?.key === 'efficientnet_lite0', null, { timeout: T.load, polling: 100 });
  await idle(page);
  assert.equal(await page.isHidden('#eval-results'), true, 'a new model clears the curves');
  const s = await seq(page);
  await page.click('[data-testid="sample-chelsea.png"]');
  const e = await explained(page, s);
  assert.equal(e.model, 'efficientnet_lite0');
  // its display defaults (models.json): 8 levels, and the map shown in 2×2-pixel cells (the stride-2 stem's
  // grid averaged out), said in the caption; the evaluation below still ranks per pixel (checkFullPhoto)
  assert.equal(e.options.quantize, 8);
  assert.equal(e.options.cell, 2);
  assert.match(await page.textContent('#caption'), /shown in 2×2-pixel cells \(the \.npy is per pixel\)/);
  const w = e.summary.width;
  const cellsHoldOneValue = e.map.every((v, i) => v === e.map[(Math.floor(i / w) & ~1) * w + (i % w & ~1)]);
  assert.ok(cellsHoldOneValue, 'every 2×2 cell of the map holds one value');
  assert.ok(new Set(e.map).size <= 8, 'at most 8 levels');
  const es = await evalSeq();
  const data = await timed('EfficientNet-Lite0: evaluate flows_skip, quantize 8', async () => {
    await page.click('[data-testid="evaluate"]');
    return evaluated(es, 1);
  });
  const row = data.rows[0];
  assert.equal(row.options.quantize, 8);
  checkCurves(row, { pixels: 224 * 224, step: 500 });
  assert.equal(row.insertion.probabilities.length, 101);
  await checkFullPhoto(row, e.summary.target);
  await checkTable(data);
  assert.ok(row.insertion.auc > row.deletion.auc, `a cat's relevant pixels matter: ID ${row.id}`);
  for (const id of ['insertion-plot', 'deletion-plot']) assert.ok((await countColour(id, COLOURS.flows_skip)) > 50, `${id} is drawn`);
  await page.locator('[data-testid="evaluate-section"]').screenshot({ path: path.join(OUT, 'evaluate-efficientnet-chelsea.png') });

  // the same pixels through the native CLI
  if (!fs.existsSync(CLI)) {
    t.diagnostic(`no ${path.relative(ROOT, CLI)}: parity with the CLI not checked`);
  } else {
    const dir = fs.mkdtempSync(path.join(h.profile, 'fed-'));
    await saveFedImage(page, path.join(dir, 'chelsea.png'));
    const csv = path.join(h.profile, 'cli-evaluate.csv');
    await timed('EfficientNet-Lite0: CLI evaluate', () =>
      execFileSync(CLI, ['evaluate', '--model', path.join(WWW, 'models', 'efficientnet_lite0.onnx'), '--images', dir,
        '--methods', 'flows_skip', '--quantize', '8', '--step', '500', '--target', String(row.target),
        '--scale', '255', '--mean', '127,127,127', '--std', '128,128,128', '--csv', csv], { encoding: 'utf8' }),
    );
    const [head, line] = fs.readFileSync(csv, 'utf8').trim().split('\n');
    const native = Object.fromEntries(head.split(',').map((k, i) => [k, line.split(',')[i]]));
    assert.equal(Number(native.target), row.target);
    const curve = (s) => s.split(' ').map(Number);
    for (const [what, web, cli] of [
      ['probability', row.probability, Number(native.probability)],
      ['insertion', row.insertion.auc, Number(native.insertion)],
      ['deletion', row.deletion.auc, Number(native.deletion)],
      ['ID', row.id, Number(native.id)],
      ...curve(native.insertion_curve).map((p, i) => [`insertion image ${i}`, row.insertion.probabilities[i], p]),
      ...curve(native.deletion_curve).map((p, i) => [`deletion image ${i}`, row.deletion.probabilities[i], p]),
    ]) {
      assert.ok(Math.abs(web - cli) <= 1e-3, `${what}: page ${web} vs CLI ${cli}`);
    }
    assert.equal(Number(native.forward_passes), row.forwardPasses);
    t.diagnostic(`CLI on the fed pixels: insertion ${Number(native.insertion).toFixed(4)}, deletion ${Number(native.deletion).toFixed(4)}`);
  }
  t.diagnostic(`EfficientNet-Lite0 chelsea.png flows_skip q8: insertion ${row.insertion.auc.toFixed(4)}, deletion ${row.deletion.auc.toFixed(4)}, ID ${row.id.toFixed(4)}, ${row.forwardPasses} forward passes, ${Math.round(row.ms)} ms`);
});

test('no request left 127.0.0.1, and the page raised no uncaught errors', (t) => {
  assertContained(h);
  t.diagnostic(`timings (ms): ${summary()}`);
});
