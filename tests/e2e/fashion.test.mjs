// The page's default model, the Fashion-MNIST ResNet this project trains: it opens with the model and its
// first sample explained, lists its samples first with their true class, applies the model's display
// defaults (models.json `display`) until the user changes a setting, hints at another model for a colour
// photo, and evaluates every sample with every method ("Evaluate all samples"), which Stop ends.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertContained, dismissNotices, dropFiles, explained, idle, notices, openPage, read, ROOT, seq, WWW } from './harness.mjs';

const LABELS = fs
  .readFileSync(path.join(ROOT, 'models', 'fashion_samples', 'labels.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(','));
const DISPLAY = JSON.parse(read(WWW, 'models', 'models.json')).models.find((m) => m.id === 'fashion_resnet').display;
const T = { load: 120_000, batch: 600_000 };

let h;
let page;

before(async () => {
  h = await openPage('fashion');
  page = h.page;
});

after(async () => {
  await h?.close();
});

const displayNow = () =>
  page.evaluate(() => ({
    sign: document.getElementById('sign').value,
    colormap: document.getElementById('colormap').value,
    opacity: Number(document.getElementById('opacity').value),
    clip: Number(document.getElementById('clip').value),
    quantize: document.getElementById('quantize').checked,
    step: Number(document.getElementById('eval-step').value),
  }));

async function selectModel(key) {
  const s = await seq(page);
  await page.selectOption('[data-testid="model-select"]', key);
  await page.waitForFunction((k) => window.__lrp.state.model?.key === k && document.body.dataset.busy !== 'true', key, { timeout: T.load });
  return s;
}

test('the page opens with the Fashion-MNIST ResNet and its first sample explained', async () => {
  await page.goto(h.server.url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  const e = await explained(page, 0);
  assert.equal(e.model, 'fashion_resnet');
  assert.equal(await page.inputValue('[data-testid="model-select"]'), 'fashion_resnet');
  assert.equal(e.image, `fashion/${LABELS[0][0]}`);
  // the model's display defaults: positive relevance, heat quantization, jet
  assert.equal(e.options.quantize, DISPLAY.quantize);
  assert.deepEqual(await displayNow(), {
    sign: DISPLAY.sign,
    colormap: DISPLAY.colormap,
    opacity: DISPLAY.opacity,
    clip: DISPLAY.clip,
    quantize: true,
    step: DISPLAY.eval_step,
  });
  assert.equal(await page.textContent('[data-testid="true-class"]'), `true: ${LABELS[0][1]} ✓`);
  assert.equal(await page.isHidden('[data-testid="photo-hint"]'), true);
});

test('the model’s samples come first, with their true class', async () => {
  const thumbs = await page.$$eval('[data-testid="samples"] .thumb', (bs) => bs.map((b) => ({ file: b.dataset.file, tag: b.querySelector('.tag')?.textContent ?? null })));
  assert.deepEqual(
    thumbs.slice(0, LABELS.length),
    LABELS.map(([file, cls]) => ({ file: `fashion/${file}`, tag: cls })),
  );
  assert.ok(thumbs.slice(LABELS.length).some((t) => t.file === 'chelsea.png' && t.tag === null), 'the other photos follow');
  // the sample the model gets wrong (models/README.md): an ankle boot taken for a sandal
  const s = await seq(page);
  await page.click('[data-testid="sample-fashion/t10k_00023.png"]');
  await explained(page, s);
  assert.equal(await page.textContent('[data-testid="true-class"]'), 'true: Ankle boot ✗ (predicted Sandal)');
});

test('a colour photo gets a one-line hint, a sample does not', async () => {
  const s = await seq(page);
  await dropFiles(page, [{ name: 'chelsea.png', type: 'image/png', bytes: read(WWW, 'photos', 'chelsea.png') }]);
  await explained(page, s);
  const hint = await page.textContent('[data-testid="photo-hint"]');
  assert.equal(await page.isVisible('[data-testid="photo-hint"]'), true);
  assert.match(hint, /28×28 greyscale/);
  assert.match(hint, /large colour photo/);
  assert.match(hint, /EfficientNet-Lite0/);
  assert.match(hint, /ImageNet ResNet/);
  assert.equal(await page.isHidden('[data-testid="true-class"]'), true, 'a dropped photo has no true class');
  const kinds = (await notices(page)).map((n) => n.testid);
  assert.ok(!kinds.some((k) => /error/.test(k ?? '')), `a hint, not an error: ${kinds}`);
  const s2 = await seq(page);
  await page.click('[data-testid="sample-fashion/t10k_00001.png"]');
  await explained(page, s2);
  assert.equal(await page.isHidden('[data-testid="photo-hint"]'), true);
});

test('a model’s display defaults apply until the user changes a setting', async () => {
  await page.selectOption('[data-testid="sign"]', 'signed');
  // a test model has no defaults: the page's own apply, except the sign the user chose
  await selectModel('fixtures/basic_bn');
  await idle(page);
  assert.deepEqual(await displayNow(), { sign: 'signed', colormap: 'jet', opacity: 0.4, clip: 99.5, quantize: false, step: 500 });
  await page.click('[data-testid="quantize"]'); // ticked by the user: stays ticked
  await selectModel('fashion_resnet');
  await idle(page);
  assert.deepEqual(await displayNow(), { sign: 'signed', colormap: DISPLAY.colormap, opacity: DISPLAY.opacity, clip: DISPLAY.clip, quantize: true, step: DISPLAY.eval_step });
  await page.selectOption('[data-testid="sign"]', DISPLAY.sign);
  await dismissNotices(page);
});

test('"Evaluate all samples" gives the mean Insertion, Deletion and ID of every method over every sample', async (t) => {
  const methods = await page.evaluate(() => window.__lrp.state.capabilities.methods.length);
  assert.equal(methods, 11);
  const before = await page.evaluate(() => window.__lastBatch?.seq ?? 0);
  const t0 = performance.now();
  await page.click('[data-testid="batch-run"]');
  await page.waitForSelector('[data-testid="batch-progress"]:not([hidden])', { timeout: 30_000 });
  await page.waitForFunction((b) => (window.__lastBatch?.seq ?? 0) > b, before, { timeout: T.batch, polling: 250 });
  const ms = performance.now() - t0;
  const result = await page.evaluate(() => window.__lastBatch);
  assert.equal(result.stopped, false);
  assert.equal(result.samples, LABELS.length);
  assert.equal(result.rows.length, methods);
  const rows = await page.$$eval('[data-testid="batch-table"] tbody tr', (trs) =>
    trs.map((tr) => Object.fromEntries([['method', tr.dataset.method], ...[...tr.querySelectorAll('td')].map((td) => [td.dataset.field, Number(td.dataset.value)])])),
  );
  assert.equal(rows.length, methods);
  for (const r of rows) {
    assert.equal(r.n, LABELS.length, `${r.method}: n`);
    assert.ok(r.insertion >= 0 && r.insertion <= 1 && r.deletion >= 0 && r.deletion <= 1, `${r.method}: AUCs in [0, 1]`);
    assert.ok(Math.abs(r.id - (r.insertion - r.deletion)) < 1e-9, `${r.method}: ID = Insertion − Deletion`);
  }
  // the photo on screen stayed loaded in the page's engine: another class is explained on it
  const s = await seq(page);
  await page.click('[data-testid="predictions"] [data-testid="class"] >> nth=0');
  await explained(page, s);
  t.diagnostic(`all samples: ${(ms / 1000).toFixed(1)} s; ${rows.map((r) => `${r.method} ${r.insertion.toFixed(3)}/${r.deletion.toFixed(3)}/${r.id.toFixed(3)}`).join('; ')}`);
});

test('Stop ends the evaluation of all samples and the page keeps working', async () => {
  const before = await page.evaluate(() => window.__lastBatch?.seq ?? 0);
  await page.click('[data-testid="batch-run"]');
  await page.waitForFunction(() => /Sample [2-9]/.test(document.getElementById('batch-progress-text').textContent), null, { timeout: 120_000, polling: 50 });
  await page.click('[data-testid="batch-stop"]');
  await page.waitForFunction((b) => (window.__lastBatch?.seq ?? 0) > b, before, { timeout: 30_000 });
  const result = await page.evaluate(() => window.__lastBatch);
  assert.equal(result.stopped, true);
  assert.ok(result.rows.every((r) => r.n >= 1 && r.n < LABELS.length), `means of the samples finished: ${result.rows.map((r) => r.n)}`);
  assert.equal(await page.isHidden('[data-testid="batch-stop"]'), true);
  assert.equal(await page.isEnabled('[data-testid="batch-run"]'), true);
  assert.ok((await notices(page)).some((n) => n.testid === 'batch-stopped'));
  const s = await seq(page);
  await page.click('[data-testid="sample-fashion/t10k_00002.png"]');
  await explained(page, s);
  assertContained(h);
});
