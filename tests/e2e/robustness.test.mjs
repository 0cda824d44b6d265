// Robustness of the page: a sample of the corpus in tests/robustness/corpus (gen_corpus.py) dropped
// on the page, as a person would. Every bad file must end in a readable notice that names it, good
// files must be explained, and after all of it the page must still explain a photo with the model
// it had: nothing the person loaded is lost.
//
//   node tests/e2e/robustness.test.mjs          or          node --test tests/e2e/
//
// Needs what page.test.mjs needs (www/pkg, ./build.sh assets, Chromium, playwright-core).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { dismissNotices, dropFiles, explained, foreignRequests, idle, notices, openPage, read, ROOT, seq, WWW } from './harness.mjs';

const CORPUS = path.join(ROOT, 'tests', 'robustness', 'corpus');
const manifest = JSON.parse(fs.readFileSync(path.join(CORPUS, 'manifest.json'), 'utf8')).cases;
const T = 60_000;

let h;
let page;
const outcomes = { ok: 0, error: 0 };

before(async () => {
  h = await openPage('robustness');
  page = h.page;
  await page.goto(`${h.server.url}?model=basic_bn`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
});

after(async () => {
  await h?.close();
});

/** Every `k`-th case of a kind and expectation, so that the sample covers the whole corpus. */
function sample(kind, expect, every) {
  return manifest.filter((c) => c.kind === kind && c.expect.startsWith(expect)).filter((_, i) => i % every === 0);
}

const base = (c) => path.basename(c.file);

/** Drops one file and waits for its outcome: `{error: text}` or `{ok: explanation}`. */
async function dropOne(file, bytes, testid) {
  await dismissNotices(page);
  const s = await seq(page);
  await dropFiles(page, [{ name: file, type: '', bytes }]);
  await page.waitForFunction(
    ([s, testid]) =>
      document.querySelector(`[data-testid="${testid}"]`) ||
      ((window.__lastExplain?.seq ?? 0) > s && document.body.dataset.busy !== 'true'),
    [s, testid],
    { timeout: T, polling: 100 },
  );
  await idle(page);
  const err = (await notices(page)).find((n) => n.testid === testid);
  return err ? { error: err.text } : { ok: await page.evaluate(() => window.__lastExplain) };
}

test('bad images end in a notice naming the file; good ones are explained', async (t) => {
  const cases = [
    ...sample('image', 'error', 2),
    ...manifest.filter((c) => c.kind === 'image' && c.expect === 'ok' && /exif|cmyk|16|animated|gray|alpha|size_1x1|webp/.test(c.file)),
    ...sample('image', 'any', 6),
  ];
  for (const c of cases) {
    const name = base(c);
    const r = await dropOne(name, read(CORPUS, c.file), 'photo-error');
    if (r.error) {
      outcomes.error++;
      assert.notEqual(c.expect, 'ok', `${name} (${c.why}) is a valid image, the page said: ${r.error}`);
      assert.ok(r.error.includes(name), `the notice names ${name}: ${r.error}`);
    } else {
      outcomes.ok++;
      // images the native decoder refuses for their content must not be explained either; damaged
      // data ("any") and lying headers may be read by the browser's more lenient decoders
      if (c.expect.startsWith('error') && !/header|cut/.test(name)) assert.fail(`${name} (${c.why}) was explained`);
      assert.equal(r.ok.image, name);
      if (c.expect === 'ok') assert.ok(r.ok.summary.conservationError < 1e-4, `${name}: conservation ${r.ok.summary.conservationError}`);
    }
  }
  t.diagnostic(`${cases.length} images: ${outcomes.ok} explained, ${outcomes.error} refused with a notice`);
});

test('a 20000 × 20000 PNG is read downscaled and explained', async () => {
  const r = await dropOne('huge_20000x20000.png', read(CORPUS, 'images', 'huge_20000x20000.png'), 'photo-error');
  assert.equal(r.error, undefined, r.error);
  assert.ok(r.ok.summary.conservationError < 1e-4);
});

test('bad models end in a notice naming the problem and the page keeps its model', async (t) => {
  const cases = [
    ...sample('model', 'error', 2),
    ...sample('model', 'any', 5),
    ...manifest.filter((c) => c.kind === 'model' && /no_nodes|dangling|nonfinite_bn_0|dynamic_hw/.test(c.file)),
  ];
  const seen = new Set();
  let refused = 0;
  for (const c of cases) {
    if (seen.has(c.file)) continue;
    seen.add(c.file);
    const name = base(c);
    await dismissNotices(page);
    await dropFiles(page, [{ name, type: '', bytes: read(CORPUS, c.file) }]);
    await page.waitForFunction(
      (n) => document.querySelector('[data-testid="model-error"]') || window.__lrp.state.model?.label === n,
      name,
      { timeout: T, polling: 100 },
    );
    await idle(page);
    const err = (await notices(page)).find((n) => n.testid === 'model-error');
    if (err) {
      refused++;
      assert.match(err.text, new RegExp(`Could not load ${name.replace(/\./g, '\\.')}`));
      assert.match(err.text, /Still using basic_bn/);
      if (c.message) assert.ok(err.text.includes(c.message), `${name}: the notice says "${c.message}": ${err.text}`);
      assert.equal(await page.inputValue('[data-testid="model-select"]'), 'fixtures/basic_bn');
    } else {
      assert.notEqual(c.expect.startsWith('error') ? 'error' : 'ok', 'error', `${name} (${c.why}) was loaded`);
      if (name === 'dynamic_hw.onnx') {
        assert.match(await page.textContent('[data-testid="model-info"]'), /leaves the image size open: explained at 224×224/);
      }
      await page.selectOption('[data-testid="model-select"]', 'fixtures/basic_bn');
      await page.waitForFunction(() => window.__lrp.state.model?.key === 'fixtures/basic_bn', null, { timeout: T });
      await idle(page);
    }
  }
  t.diagnostic(`${seen.size} models: ${refused} refused with a notice`);
});

test('a model with external data loads from its two files; one of them alone is refused naming the other', async () => {
  const FIX = path.join(ROOT, 'tests', 'fixtures');
  const onnx = { name: 'external_data.onnx', bytes: read(FIX, 'external_data.onnx') };
  const data = { name: 'external_data.onnx.data', bytes: read(FIX, 'external_data.onnx.data') };
  const refused = async (files, pattern) => {
    await dismissNotices(page);
    await dropFiles(page, files);
    await page.waitForSelector('[data-testid="model-error"]', { timeout: T });
    const err = (await notices(page)).find((n) => n.testid === 'model-error');
    assert.match(err.text, pattern);
    assert.match(err.text, /Still using basic_bn/);
    assert.equal(await page.inputValue('[data-testid="model-select"]'), 'fixtures/basic_bn');
  };
  // the .onnx alone: the engine names the side file it needs
  await refused([onnx], /external_data\.onnx\.data`, which was not given/);
  // the .data alone: the page says it is no model and needs its .onnx
  await refused([data], /external_data\.onnx\.data: the external data of a model, not a model\. Drop or pick it together with its \.onnx file/);
  // both together: loaded and explained
  await dismissNotices(page);
  await dropFiles(page, [onnx, data]);
  await page.waitForFunction(() => window.__lrp.state.model?.label === 'external_data.onnx', null, { timeout: T });
  await idle(page);
  assert.equal((await notices(page)).find((n) => n.testid === 'model-error'), undefined);
  assert.match(await page.textContent('[data-testid="model-structure"]'), /layer2\.0\.add: projection shortcut = input 1/);
  await page.selectOption('[data-testid="model-select"]', 'fixtures/basic_bn');
  await page.waitForFunction(() => window.__lrp.state.model?.key === 'fixtures/basic_bn', null, { timeout: T });
  await idle(page);
});

test('a model over 500 MB is refused before it is read', async () => {
  await dismissNotices(page);
  const read = await page.evaluate(() => {
    const file = new File([new Uint8Array(16)], 'huge.onnx');
    let touched = false;
    Object.defineProperty(file, 'size', { value: 600_000_000 });
    file.arrayBuffer = async () => {
      touched = true;
      return new ArrayBuffer(16);
    };
    // a DataTransfer would copy the File: hand the page this very object
    return window.__lrp.addFiles([file]).then(() => touched);
  });
  assert.equal(read, false, 'the bytes were not read');
  const err = (await notices(page)).find((n) => n.testid === 'model-error');
  assert.ok(err, 'a notice');
  assert.match(err.text, /huge\.onnx/);
  assert.match(err.text, /600 MB/);
  assert.match(err.text, /500 MB/);
});

test('bad parameters are refused by the engine with their name', async () => {
  for (const [options, name] of [
    [{ target: 10 }, 'target'],
    [{ target: -1 }, 'target'],
    [{ epsilon: -1 }, 'epsilon'],
    [{ composite: 'epsilon_alpha2_beta1', alpha: 2, beta: 2 }, 'alpha'],
    [{ composite: 'nope' }, 'composite'],
    [{ variant: 'nope' }, 'variant'],
    [{ gamma: 0.5 }, 'gamma'],
    [{ start: 'softmax' }, 'start'],
  ]) {
    const msg = await page.evaluate((o) => window.__lrp.state.engine.request('explain', { options: o }).then(() => null, (e) => String(e.message ?? e)), options);
    assert.ok(msg, `${JSON.stringify(options)} is refused`);
    assert.ok(msg.includes(name), `${JSON.stringify(options)}: ${msg}`);
  }
});

test('after all of it the page still explains a photo with its model', async () => {
  await dismissNotices(page);
  const s = await seq(page);
  await dropFiles(page, [{ name: 'chelsea.png', type: 'image/png', bytes: read(WWW, 'photos', 'chelsea.png') }]);
  const e = await explained(page, s);
  assert.equal(e.image, 'chelsea.png');
  assert.equal(e.model, 'fixtures/basic_bn');
  assert.ok(e.summary.conservationError < 1e-4);
  assert.deepEqual(foreignRequests(h), []);
  assert.deepEqual(h.pageErrors, []);
});
