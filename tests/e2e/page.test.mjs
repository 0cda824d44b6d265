// End-to-end test of the page (www/) in headless Chromium, driven by playwright-core.
//
//   node tests/e2e/page.test.mjs          or          node --test tests/e2e/
//
// Needs: www/pkg (./build.sh wasm), www/models + www/photos (./build.sh assets), the native CLI
// (cargo build -p resnet-lrp --bin resnet-lrp; RESNET_LRP_CLI overrides its path), Debian's
// /usr/bin/chromium (CHROMIUM overrides) and `npm ci` for playwright-core.
//
// What it checks, in order, on one browser profile:
//  1. the page starts with a test ResNet, lists the test models, and fetches nothing but 127.0.0.1;
//  2. a dropped photo is classified, the top class explained, the overlay drawn, and relevance is
//     conserved (relative error < 1e-4 with the `conserving` composite);
//  3. changing the splitting variant or the colormap changes the picture; the comparison grid fills;
//  4. a corrupt image and an unsupported model give readable errors (the latter naming `Erf`) and
//     the page keeps explaining with the previous model;
//  5. parity: the page's relevance for the fixture's own input tensor equals the native CLI's
//     (tolerance 1e-5 of max|R|), for LRP and gradient × input;
//  6. downloads (.npy with the model input's shape, PNG) and recovery after the engine dies;
//  7. real models: EfficientNet-Lite0 calls chelsea.png a cat, conserves relevance and matches the
//     CLI run on exactly the pixels the page fed the engine; open_nsfw (NHWC, BGR) likewise;
//  8. every request the browser made went to the test server on 127.0.0.1.
// Screenshots go to tests/e2e/out/ (docs/gallery/ is made by tools/gallery.mjs).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertContained, CLI, dismissNotices, dropFiles, explained, FIXTURES, idle, need, notices, openPage, OUT, read, ROOT, saveFedImage, seq, stopwatch, WWW } from './harness.mjs';
import { decodeNpy } from '../../www/overlay.js';

const TOLERANCE = 1e-5; // of max|R|: the wasm and x86 kernels sum f32 in different orders
const CAT_CLASSES = [281, 282, 283, 284, 285]; // tabby, tiger cat, Persian, Siamese, Egyptian cat
// grid: the 11 explanations of a real model's comparison grid (integrated gradients alone takes a minute
// in a dev build of the engine on a busy machine)
const T = { load: 120_000, explain: 90_000, grid: 360_000 };

let h;
let page;
const { timed, summary } = stopwatch();

/** Parity compares two builds of the engine: warn if either is older than the sources. */
function staleness() {
  const src = path.join(ROOT, 'crate', 'src');
  const newest = Math.max(...fs.readdirSync(src).map((f) => fs.statSync(path.join(src, f)).mtimeMs));
  for (const [what, file, how] of [
    ['www/pkg', path.join(WWW, 'pkg', 'resnet_lrp_bg.wasm'), './build.sh wasm --profile dev'],
    ['the CLI', CLI, 'cargo build -p resnet-lrp --bin resnet-lrp'],
  ]) {
    if (fs.statSync(file).mtimeMs < newest) console.warn(`warning: ${what} is older than crate/src; rebuild it (${how}) or parity may fail`);
  }
}

before(async () => {
  need(path.join(WWW, 'models', 'models.json'), 'prepare the models with ./build.sh assets');
  need(CLI, 'build the CLI with cargo build -p resnet-lrp --bin resnet-lrp');
  h = await openPage('page');
  page = h.page;
  staleness();
});

after(async () => {
  await h?.close();
});

// ---------------------------------------------------------------------------------------
// helpers

/** A hash and the number of distinct colours of the overlay canvas. */
function canvasStats() {
  return page.evaluate(() => {
    const c = document.querySelector('[data-testid="overlay"]');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      const v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
      colours.add(v);
      h = Math.imul(h ^ v, 16777619) >>> 0;
    }
    return { hash: h, colours: colours.size, width: c.width, height: c.height };
  });
}

function cli(args) {
  return JSON.parse(execFileSync(CLI, ['explain', ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

function channelSum(relevance, shape) {
  const [, a, b, c] = shape;
  const nhwc = c === 3 || c === 1;
  const [C, H, W] = nhwc ? [c, a, b] : [a, b, c];
  const out = new Float64Array(H * W);
  for (let ch = 0; ch < C; ch++) {
    for (let p = 0; p < H * W; p++) out[p] += nhwc ? relevance[p * C + ch] : relevance[ch * H * W + p];
  }
  return out;
}

/** How far `a` is from `b`: max |a − b| / max |b|, ‖a − b‖₂ / ‖b‖₂ and the share of elements off by more than 1e-5 · max |b|. */
function diff(a, b) {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]));
  let d = 0;
  let num = 0;
  let den = 0;
  let off = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    d = Math.max(d, e);
    num += e * e;
    den += b[i] * b[i];
    if (e > 1e-5 * m) off++;
  }
  return { max: d / Math.max(m, 1e-30), l2: Math.sqrt(num / Math.max(den, 1e-60)), off: off / b.length };
}

function tmp(name) {
  return path.join(h.profile, name);
}

const show = (d) => `max ${d.max.toExponential(2)} of max|R|, L2 ${d.l2.toExponential(2)}, ${(d.off * 100).toFixed(3)} % of elements off by > 1e-5·max|R|`;

/**
 * Runs the CLI on the same input and settings and compares the page's map, relevance and sums.
 *
 * `strict`: every element within TOLERANCE · max|R|. Otherwise (explanations that route
 * relevance by an argmax: winner-take-all max pooling, gradients through max pooling) a few
 * near-ties in the forward activations, which the wasm and x86 kernels round differently, may
 * send relevance to the neighbouring pixel: then at most 0.5 % of the elements may differ, the
 * relative L2 distance must stay under 1e-2, and the sums must still agree to 1e-5.
 */
async function assertParity(t, label, cliArgs, { target, inputShape, strict = true }) {
  const npy = tmp(`${label.replace(/\W+/g, '_')}.npy`);
  const native = cli([...cliArgs, '--target', String(target), '--npy', npy]);
  const { data: R } = decodeNpy(fs.readFileSync(npy));
  const web = await page.evaluate(() => ({
    relevance: Array.from(window.__lrp.state.explanation.relevance),
    map: Array.from(window.__lastExplain.map),
    summary: window.__lastExplain.summary,
  }));
  assert.equal(web.summary.target, native.target, `${label}: same target`);
  const dMap = diff(web.map, channelSum(R, inputShape));
  const dRel = diff(web.relevance, R);
  if (strict) {
    assert.ok(dMap.max <= TOLERANCE, `${label}: map differs from the CLI: ${show(dMap)}`);
    assert.ok(dRel.max <= TOLERANCE, `${label}: relevance differs from the CLI: ${show(dRel)}`);
  } else {
    for (const [what, d] of [['map', dMap], ['relevance', dRel]]) {
      assert.ok(d.off <= 5e-3 && d.l2 <= 1e-2, `${label}: ${what} differs from the CLI: ${show(d)}`);
    }
  }
  const dStart = Math.abs(web.summary.startRelevance - native.start_relevance) / Math.abs(native.start_relevance);
  assert.ok(dStart <= 1e-5, `${label}: start relevance ${web.summary.startRelevance} vs ${native.start_relevance}`);
  const dSum = Math.abs(web.summary.inputRelevanceSum - native.input_relevance_sum) / Math.abs(native.start_relevance);
  assert.ok(dSum <= 1e-5, `${label}: Σ R ${web.summary.inputRelevanceSum} vs ${native.input_relevance_sum}`);
  t.diagnostic(`parity ${label}: map ${show(dMap)}; relevance ${show(dRel)}`);
  return { dMap, dRel };
}

async function selectModel(key) {
  await page.selectOption('[data-testid="model-select"]', key);
  await page.waitForFunction(
    (k) => window.__lrp.state.model?.key === k || document.querySelector('[data-testid="model-error"]'),
    key,
    { timeout: T.load, polling: 100 },
  );
  await idle(page);
  const failed = (await notices(page)).find((n) => n.testid === 'model-error');
  assert.equal(failed, undefined, `${key} loads: ${failed?.text}`);
}


async function screenshot(name, locator = null) {
  const file = path.join(OUT, name);
  if (locator) await locator.screenshot({ path: file });
  else await page.screenshot({ path: file });
}

// ---------------------------------------------------------------------------------------
// the tests (they run in order and share the page)

test('the page starts with a test ResNet and lists the test models', async () => {
  await timed('start', async () => {
    await page.goto(`${h.server.url}?model=basic_bn`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  });
  const options = await page.$$eval('[data-testid="model-select"] option', (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  assert.ok(options.some((o) => o.value === 'efficientnet_lite0'), 'EfficientNet-Lite0 is offered');
  assert.ok(options.some((o) => o.value === 'open_nsfw'), 'open_nsfw is offered');
  const fixture = options.find((o) => o.value === 'fixtures/basic_bn');
  assert.ok(fixture, 'the test models are offered');
  assert.match(fixture.text, /\(random weights, for testing\)/);
  assert.equal(await page.inputValue('[data-testid="model-select"]'), 'fixtures/basic_bn');
  assert.match(await page.textContent('[data-testid="model-info"]'), /\[1×3×64×64\] NCHW; 10 classes/);
  assert.ok((await page.$$('[data-testid^="sample-"]')).length >= 9, 'sample photos are shown');
  assert.deepEqual(await notices(page), []);
});

test('a dropped photo is classified and explained, and relevance is conserved', async () => {
  const s0 = await seq(page);
  await timed('drop photo → explanation (test model)', async () => {
    await dropFiles(page, [{ name: 'chelsea.png', type: 'image/png', bytes: read(WWW, 'photos', 'chelsea.png') }]);
    await explained(page, s0);
  });
  const top = page.locator('[data-testid="top-class"]');
  await top.waitFor();
  assert.equal(await page.locator('[data-testid="predictions"] button').count(), 5);
  const s1 = await seq(page);
  await top.click();
  const e = await explained(page, s1);
  assert.equal(e.summary.target, Number(await top.getAttribute('data-class')));
  assert.equal(await top.getAttribute('aria-pressed'), 'true');
  assert.equal(e.options.composite, 'conserving');
  assert.equal(e.map.length, e.width * e.height);
  assert.equal(e.width, 64);
  assert.ok(e.map.some((v) => v !== 0), 'the map is not all zero');
  const stats = await canvasStats();
  assert.ok(stats.colours > 200, `the overlay is drawn (${stats.colours} colours)`);
  const rel = Number(await page.getAttribute('[data-testid="relative-error"]', 'data-value'));
  assert.ok(rel < 1e-4, `relative conservation error ${rel}`);
  assert.ok(Math.abs(e.summary.conservationError - rel) < 1e-12);
  await page.click('[data-testid="blocks-details"] summary');
  assert.equal(await page.locator('[data-testid="blocks-table"] tbody tr').count(), e.summary.blocks.length);
  assert.ok(e.summary.blocks.length >= 4, 'the fixture has four residual blocks');
  await screenshot('test-model-chelsea.png');
});

test('changing the splitting variant or the colormap changes the picture', async () => {
  const before = await canvasStats();
  let s = await seq(page);
  await page.selectOption('[data-testid="variant"]', 'conventional');
  const e = await explained(page, s);
  assert.equal(e.options.variant, 'conventional');
  const afterVariant = await canvasStats();
  assert.notEqual(afterVariant.hash, before.hash, 'a new variant draws a new picture');
  s = await seq(page);
  await page.selectOption('[data-testid="colormap"]', 'seismic');
  await explained(page, s);
  const afterColormap = await canvasStats();
  assert.notEqual(afterColormap.hash, afterVariant.hash, 'a new colormap draws a new picture');
  // back to the paper's settings
  s = await seq(page);
  await page.selectOption('[data-testid="variant"]', 'flows_skip');
  await page.selectOption('[data-testid="colormap"]', 'jet');
  await explained(page, s);
  assert.equal((await canvasStats()).hash, before.hash, 'the same settings draw the same picture');
  // heat quantization: the engine snaps the map to 8 levels
  s = await seq(page);
  await page.check('[data-testid="quantize"]');
  const q = await explained(page, s);
  assert.equal(q.options.quantize, 8);
  assert.ok(new Set(q.map).size <= 8, `${new Set(q.map).size} distinct values`);
  s = await seq(page);
  await page.uncheck('[data-testid="quantize"]');
  await explained(page, s);
});

test('the comparison grid shows every variant and every baseline', async () => {
  await timed('comparison grid (11 explanations, test model)', async () => {
    await page.click('[data-testid="compare"]');
    await page.waitForFunction(
      () => document.querySelectorAll('[data-testid="compare-grid"] .cell').length === 11 && !document.querySelector('[data-testid="compare-grid"] .cell.pending'),
      null,
      { timeout: T.explain },
    );
  });
  const cells = await page.$$eval('[data-testid="compare-grid"] .cell', (els) => els.map((e) => ({ key: e.dataset.variant, sub: e.querySelector('.sub').textContent })));
  const baselines = ['gradient', 'ig', 'guided_backprop', 'gradcam', 'scorecam', 'random'];
  assert.deepEqual(cells.map((c) => c.key), ['flows_skip', 'flows_skip_simple', 'latest', 'simple', 'conventional', ...baselines]);
  for (const c of cells.slice(0, 5)) {
    const err = Number(/rel\. error (\S+)/.exec(c.sub)[1]);
    assert.ok(err < 1e-4, `${c.key} conserves with the conserving composite (${c.sub})`);
  }
  // the baselines are not meant to conserve: the engine gives no error and the page says so
  for (const c of cells.slice(5)) assert.match(c.sub, /rel\. error n\/a/, c.key);
  await screenshot('test-model-compare.png', page.locator('.compare'));
});

test('a corrupt image and an unsupported model give readable errors; the page keeps working', async () => {
  await dismissNotices(page);
  const junk = Buffer.alloc(4096);
  for (let i = 0; i < junk.length; i++) junk[i] = (i * 2654435761) >>> 24;
  await dropFiles(page, [{ name: 'x.png', type: 'image/png', bytes: junk }]);
  await page.waitForSelector('[data-testid="photo-error"]', { timeout: T.load });
  const photoError = (await notices(page)).find((n) => n.testid === 'photo-error');
  assert.match(photoError.text, /x\.png/);
  assert.match(photoError.text, /could not|decode/i);

  await dropFiles(page, [{ name: 'unsupported_op.onnx', type: 'application/octet-stream', bytes: read(FIXTURES, 'unsupported_op.onnx') }]);
  await page.waitForSelector('[data-testid="model-error"]', { timeout: T.load });
  await idle(page);
  const modelError = (await notices(page)).find((n) => n.testid === 'model-error');
  assert.match(modelError.text, /Erf/);
  assert.match(modelError.text, /stem_erf/);
  assert.match(modelError.text, /Still using basic_bn/);
  assert.equal(await page.inputValue('[data-testid="model-select"]'), 'fixtures/basic_bn');
  await screenshot('errors.png');

  // the next photo is explained with the previous model
  const s = await seq(page);
  await dropFiles(page, [{ name: 'coffee.png', type: 'image/png', bytes: read(WWW, 'photos', 'coffee.png') }]);
  const e = await explained(page, s);
  assert.equal(e.image, 'coffee.png');
  assert.equal(e.model, 'fixtures/basic_bn');
  assert.ok(e.summary.conservationError < 1e-4);
  // dropped photos stay in the queue; picking one explains it again
  const queue = page.locator('[data-testid="queue-item"]');
  assert.equal(await queue.count(), 2);
  const s2 = await seq(page);
  await queue.first().click();
  assert.equal((await explained(page, s2)).image, 'chelsea.png');
});

test('parity: the page and the native CLI give the same relevance for the same tensor', async (t) => {
  const s = await seq(page);
  await dropFiles(page, [{ name: 'basic_bn.input.npy', type: '', bytes: read(FIXTURES, 'basic_bn.input.npy') }]);
  const e = await explained(page, s);
  assert.equal(e.image, 'basic_bn.input.npy');
  const model = path.join(FIXTURES, 'basic_bn.onnx');
  const input = ['--model', model, '--input-npy', path.join(FIXTURES, 'basic_bn.input.npy')];
  await assertParity(t, 'basic_bn conserving flows_skip', input, { target: e.summary.target, inputShape: [1, 3, 64, 64] });

  const s2 = await seq(page);
  await page.check('input[name="method"][value="gradient"]');
  const g = await explained(page, s2);
  assert.equal(g.options.method, 'gradient');
  await assertParity(t, 'basic_bn gradient', [...input, '--composite', 'gradient'], { target: g.summary.target, inputShape: [1, 3, 64, 64] });
  const s3 = await seq(page);
  await page.check('input[name="method"][value="lrp"]');
  await explained(page, s3);
});

test('downloads: relevance .npy with the model input shape, overlay and heatmap PNGs', async () => {
  const [npy] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="download-npy"]')]);
  assert.match(npy.suggestedFilename(), /\.relevance\.npy$/);
  const file = tmp('download.npy');
  await npy.saveAs(file);
  const { data, shape } = decodeNpy(fs.readFileSync(file));
  assert.deepEqual(shape, [1, 3, 64, 64]);
  const header = fs.readFileSync(file).subarray(0, 128).toString('latin1');
  assert.match(header, /'descr': '<f4', 'fortran_order': False, 'shape': \(1, 3, 64, 64\)/);
  assert.equal((10 + fs.readFileSync(file).readUInt16LE(8)) % 64, 0, 'the header is 64-byte aligned');
  const sum = data.reduce((a, b) => a + b, 0);
  const expected = await page.evaluate(() => window.__lastExplain.summary.inputRelevanceSum);
  assert.ok(Math.abs(sum - expected) < 1e-5, `Σ of the downloaded relevance ${sum} vs ${expected}`);
  for (const [id, suffix] of [['download-overlay', '.overlay.png'], ['download-heatmap', '.heatmap.png']]) {
    const [png] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid="${id}"]`)]);
    assert.ok(png.suggestedFilename().endsWith(suffix));
    const out = tmp(`download${suffix}`);
    await png.saveAs(out);
    const bytes = fs.readFileSync(out);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    if (suffix === '.heatmap.png') assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], [64, 64]);
  }
});

test('when the engine dies it is restarted with the model and the photo', async () => {
  await dismissNotices(page);
  await timed('engine restart', async () => {
    await page.evaluate(() => window.__lrp.crash());
    await page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid="restart-notice"] .text')].some((e) => /restarted/.test(e.textContent)),
      null,
      { timeout: T.load },
    );
  });
  await idle(page);
  const text = (await notices(page)).find((n) => n.testid === 'restart-notice').text;
  assert.match(text, /model and the photo were reloaded/);
  // the restarted engine explains another class of the same input
  const s = await seq(page);
  await page.locator('[data-testid="predictions"] button').nth(1).click();
  const e = await explained(page, s);
  assert.equal(e.image, 'basic_bn.input.npy');
  assert.ok(e.summary.conservationError < 1e-4);
});

test('a class clicked while the engine restarts is explained once the model and the photo are back', async () => {
  await idle(page);
  await dismissNotices(page);
  // hold the restarted worker's engine download, click a class meanwhile, then let it through
  const model = /\/pkg(-relaxed)?\/resnet_lrp_bg\.wasm$/;
  let release;
  const held = new Promise((resolve) => (release = resolve));
  let asked = false;
  await h.context.route(model, async (route) => {
    asked = true;
    await held;
    await route.continue();
  });
  try {
    const s = await seq(page);
    await page.evaluate(() => window.__lrp.crash());
    for (let waited = 0; !asked; waited += 50) {
      assert.ok(waited < 30_000, 'the restarted worker never asked for the engine');
      await new Promise((r) => setTimeout(r, 50));
    }
    await page.locator('[data-testid="predictions"] button').nth(2).click();
    release();
    // an explanation, or the error that says why not
    const outcome = await page.waitForFunction(
      (s) =>
        (window.__lastExplain?.seq ?? 0) > s
          ? 'explained'
          : [...document.querySelectorAll('[data-testid="notices"] .notice.error .text')].map((n) => n.textContent).join('; ') || false,
      s,
      { timeout: 90_000, polling: 100 },
    );
    assert.equal(await outcome.jsonValue(), 'explained');
    const e = await explained(page, s);
    assert.equal(e.image, 'basic_bn.input.npy');
    assert.ok(e.summary.conservationError < 1e-4);
    await idle(page);
    const errors = (await notices(page)).filter((n) => n.testid !== 'restart-notice' && n.testid !== 'info');
    assert.deepEqual(errors, [], 'no error while the engine restarted');
  } finally {
    release();
    await h.context.unroute(model);
  }
});

async function realModel(t, { key, photo, cliArgs, check, shot }) {
  await dismissNotices(page);
  await timed(`${key}: load`, () => selectModel(key));
  await dismissNotices(page); // the previous input (a 64×64 tensor) does not fit this model
  // the model's display defaults tick heat quantization; parity compares the raw map with the CLI's
  if (await page.isChecked('[data-testid="quantize"]')) await page.click('[data-testid="quantize"]');
  // per pixel, whatever the model's display default: the parity below compares the map with the CLI's
  // channel sum (the cells have their own tests: evaluate.test.mjs, tests/native/session.rs)
  await page.selectOption('[data-testid="cell"]', '1');
  const s = await seq(page);
  const e = await timed(`${key}: ${photo} → explanation`, async () => {
    await page.click(`[data-testid="sample-${photo}"]`);
    return explained(page, s);
  });
  assert.equal(e.model, key);
  assert.equal(e.image, photo);
  const top = await page.evaluate(() => window.__lrp.state.prediction.top);
  check(top, await page.textContent('[data-testid="top-class"] .name'));
  assert.ok(e.summary.conservationError < 1e-4, `${key}: relative conservation error ${e.summary.conservationError}`);
  const stats = await canvasStats();
  assert.ok(stats.colours > 1000, `${key}: the overlay is drawn`);
  // the same pixels through the CLI: the default composite (winner-take-all max pooling), then
  // `reference` (no argmax anywhere), which must agree element by element
  const png = tmp(`${key}.fed.png`);
  await saveFedImage(page, png);
  const shape = await page.evaluate(() => window.__lrp.state.model.info.input.shape);
  const args = ['--model', path.join(WWW, 'models', `${key}.onnx`), '--image', png, ...cliArgs];
  await timed(`${key}: CLI parity`, async () => {
    await assertParity(t, `${key} ${photo} conserving`, args, { target: e.summary.target, inputShape: shape, strict: false });
    const s2 = await seq(page);
    await page.selectOption('[data-testid="composite"]', 'reference');
    await explained(page, s2);
    await assertParity(t, `${key} ${photo} reference`, [...args, '--composite', 'reference'], { target: e.summary.target, inputShape: shape });
    const s3 = await seq(page);
    await page.selectOption('[data-testid="composite"]', 'conserving');
    await explained(page, s3);
  });
  await page.evaluate(() => {
    document.getElementById('blocks-details').open = true;
    window.scrollTo(0, 0);
  });
  await screenshot(`${shot}.png`);
  await screenshot(`${shot}.stage.png`, page.locator('#stage'));
  await timed(`${key}: comparison grid`, async () => {
    await page.click('[data-testid="compare"]');
    await page.waitForFunction(
      // every variant and every baseline, as for the test model
      () => document.querySelectorAll('[data-testid="compare-grid"] .cell').length === 11 && !document.querySelector('[data-testid="compare-grid"] .cell.pending'),
      null,
      { timeout: T.grid },
    );
  });
  await screenshot(`${shot}.compare.png`, page.locator('.compare'));
  return e;
}

test('EfficientNet-Lite0 calls chelsea.png a cat, conserves relevance and matches the CLI', async (t) => {
  await realModel(t, {
    key: 'efficientnet_lite0',
    photo: 'chelsea.png',
    cliArgs: ['--scale', '255', '--mean', '127,127,127', '--std', '128,128,128'],
    check: (top, name) => {
      assert.ok(CAT_CLASSES.includes(top[0].class), `top-1 is a cat: got class ${top[0].class} (${name})`);
      assert.match(name, /cat|tabby/i);
    },
    shot: 'efficientnet-chelsea',
  });
});

test('open_nsfw (NHWC, BGR, Caffe means) explains chelsea.png as SFW and matches the CLI', async (t) => {
  await realModel(t, {
    key: 'open_nsfw',
    photo: 'chelsea.png',
    cliArgs: ['--scale', '255', '--mean', '104,117,123', '--std', '1,1,1', '--bgr'],
    check: (top, name) => assert.equal(name, 'SFW'),
    shot: 'open_nsfw-chelsea',
  });
});

test('bundled models are stored in the Cache API once the page is idle', async () => {
  // written after the model has loaded (not while the engine needs the CPU), and then kept
  const cached = await h.page.waitForFunction(
    async () => {
      const keys = await (await caches.open('resnet-lrp-models-v1')).keys();
      const urls = keys.map((r) => new URL(r.url).pathname);
      return urls.includes('/models/open_nsfw.onnx') && urls.includes('/models/efficientnet_lite0.onnx') ? urls : false;
    },
    null,
    { timeout: 30_000, polling: 200 },
  );
  assert.equal((await cached.jsonValue()).length, 2);
});

test('no request left 127.0.0.1, and the page raised no uncaught errors', (t) => {
  const { requests, server } = h;
  assertContained(h);
  assert.ok(requests.some((u) => /\/pkg(-relaxed)?\/resnet_lrp_bg\.wasm$/.test(u)), 'requests from the worker are recorded too');
  assert.ok(requests.length >= server.log.length - 1, `the browser saw ${requests.length} requests, the server ${server.log.length}`);
  t.diagnostic(`${requests.length} requests, all to ${server.url.replace(/\/$/, '')}`);
  t.diagnostic(`timings (ms): ${summary()}`);
});
