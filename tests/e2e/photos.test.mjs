// The user's photos explained in the background (www/photobatch.js): every photo dropped joins the
// list and is explained in turn on a worker of its own, with visible progress; a file that is not an
// image gets its error in its row and the list goes on; "Download all" saves one ZIP whose CSV and
// overlay PNGs are read back here with Python's zipfile (an independent reader: it checks every
// CRC-32) and compared with what the page's own engine showed for the same photo; Cancel stops the
// rest and keeps what was explained; a finished row opens its photo in the viewer.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertContained, dismissNotices, dropFiles, explained, idle, notices, openPage, read, seq, WWW } from './harness.mjs';

const T = { load: 120_000, batch: 120_000 };
const photo = (name, file = name) => ({ name, type: 'image/png', bytes: read(WWW, 'photos', file) });
const ENGINE_WASM = /\/pkg(-relaxed|-threads)?\/resnet_lrp_bg\.wasm$/;

let h;
let page;

before(async () => {
  h = await openPage('photos');
  page = h.page;
});

after(async () => {
  await h?.close();
});

/** The rows of the list: [{name, status, class, probability, conservation}]. */
const rows = () =>
  page.$$eval('[data-testid="photobatch-row"]', (trs) =>
    trs.map((tr) => ({
      name: tr.querySelector('th').textContent,
      status: tr.dataset.status,
      text: tr.querySelector('[data-field="status"]').textContent,
      class: tr.querySelector('[data-field="class"]').textContent,
    })),
  );

/** Waits until no row waits or runs. */
async function settled() {
  await page.waitForFunction(
    () => document.body.dataset.photobatch === 'idle' && ![...document.querySelectorAll('[data-testid="photobatch-row"]')].some((r) => r.dataset.status === 'waiting' || r.dataset.status === 'running'),
    null,
    { timeout: T.batch, polling: 100 },
  );
}

/** Reads a ZIP with Python's zipfile: {names, bad (first file with a wrong CRC, or null), csv rows, png sizes}. */
function unzip(file) {
  const script = `
import csv, io, json, struct, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
out = {"names": z.namelist(), "bad": z.testzip(), "rows": [], "png": {}}
out["rows"] = list(csv.DictReader(io.StringIO(z.read("explanations.csv").decode("utf-8"))))
for n in z.namelist():
    if n.endswith(".png"):
        b = z.read(n)
        out["png"][n] = {"signature": b[:8] == b"\\x89PNG\\r\\n\\x1a\\n", "size": list(struct.unpack(">II", b[16:24])), "b64": __import__("base64").b64encode(b).decode()}
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('python3', ['-c', script, file], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

test('dropped photos are explained one after the other; a bad one gets its error and the rest go on', async () => {
  await page.goto(`${h.server.url}?model=basic_bn`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  assert.equal(await page.isHidden('[data-testid="photobatch"]'), true, 'no list before any photo');
  // every progress line the list shows, kept by the page as it changes
  await page.evaluate(() => {
    window.__progress = [];
    const el = document.querySelector('[data-testid="photobatch-progress-text"]');
    new MutationObserver(() => window.__progress.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  });
  const junk = Buffer.alloc(2048, 7);
  const s = await seq(page);
  await dropFiles(page, [photo('chelsea.png'), { name: 'broken.png', type: 'image/png', bytes: junk }, photo('coffee.png')]);
  await explained(page, s); // the viewer shows the first photo meanwhile
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="photobatch-row"]').length === 3);
  await settled();
  const list = await rows();
  assert.deepEqual(list.map((r) => [r.name, r.status]), [['chelsea.png', 'done'], ['coffee.png', 'done'], ['broken.png', 'error']]);
  assert.match(list[2].text, /could not be read/);
  const progress = await page.evaluate(() => window.__progress);
  assert.ok(progress.includes('Explaining 1 of 3: chelsea.png'), `progress: ${progress}`);
  assert.ok(progress.includes('Explaining 2 of 3: coffee.png'), `progress: ${progress}`);
  assert.match(await page.textContent('[data-testid="photobatch-summary"]'), /^2 of 3 explained, 1 with an error\.$/);
  // the read error is also a notice, as before
  assert.ok((await notices(page)).some((n) => n.testid === 'photo-error' && /broken\.png/.test(n.text)));
});

test('Download all saves one ZIP: a CSV row per photo and the overlays, as the viewer shows them', async () => {
  await idle(page);
  const main = await page.evaluate(() => ({ ...window.__lastExplain, map: null }));
  assert.equal(main.image, 'chelsea.png');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="photobatch-download"]')]);
  assert.match(download.suggestedFilename(), /^resnet-lrp\.2-explanations\.zip$/);
  const file = path.join(h.profile, 'all.zip');
  await download.saveAs(file);
  const z = unzip(file);
  assert.equal(z.bad, null, 'every CRC-32 is right');
  assert.equal(z.names[0], 'explanations.csv');
  assert.equal(z.names.length, 3);
  assert.deepEqual(z.rows.map((r) => [r.file, r.status]), [['chelsea.png', 'done'], ['coffee.png', 'done'], ['broken.png', 'error']]);
  const [chelsea, coffee, broken] = z.rows;
  assert.match(broken.error, /could not be read/);
  assert.equal(broken.overlay, '');
  for (const r of [chelsea, coffee]) {
    assert.ok(z.names.includes(r.overlay), `${r.overlay} is in the archive`);
    assert.ok(z.png[r.overlay].signature, 'a PNG');
    assert.equal(r.model, 'fixtures/basic_bn');
    assert.equal(r.method, 'lrp');
    assert.equal(r.composite, 'conserving');
    assert.ok(Number(r.conservation_error) < 1e-4, `${r.file} conserves: ${r.conservation_error}`);
  }
  // the background worker's explanation of chelsea.png is the viewer's: same class, probability, sums
  assert.equal(Number(chelsea.class), main.summary.target);
  const top = await page.evaluate(() => window.__lrp.state.prediction.top[0]);
  assert.equal(Number(chelsea.probability), top.probability);
  assert.equal(Number(chelsea.start_relevance), main.summary.startRelevance);
  assert.equal(Number(chelsea.input_relevance_sum), main.summary.inputRelevanceSum);
  assert.equal(chelsea.class_name, await page.textContent('[data-testid="top-class"] .name'));
  // and its overlay PNG has exactly the viewer's pixels (same photo, map and display settings)
  const same = await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    c.getContext('2d').drawImage(bmp, 0, 0);
    const png = c.getContext('2d').getImageData(0, 0, bmp.width, bmp.height).data;
    const view = document.querySelector('[data-testid="overlay"]');
    const shown = view.getContext('2d').getImageData(0, 0, view.width, view.height).data;
    let differ = 0;
    for (let i = 0; i < shown.length; i++) differ += png[i] !== shown[i];
    return { size: [bmp.width, bmp.height], view: [view.width, view.height], differ };
  }, z.png[chelsea.overlay].b64);
  assert.deepEqual(same.size, same.view);
  assert.equal(same.differ, 0, 'the overlay in the archive is the one in the viewer');
});

test('Cancel stops the rest; what was explained stays, and later photos are explained again', async () => {
  await dismissNotices(page);
  // hold the engine of the list's next worker, so that the run is surely going on when Cancel is pressed
  let release;
  const held = new Promise((resolve) => (release = resolve));
  await h.context.route(ENGINE_WASM, async (route) => {
    await held;
    await route.continue().catch(() => {}); // the cancelled worker is gone, and its request with it
  });
  try {
    await dropFiles(page, [photo('a.png', 'chelsea.png'), photo('b.png', 'coffee.png'), photo('c.png', 'chelsea.png')]);
    await page.waitForSelector('[data-testid="photobatch-cancel"]:not([hidden])');
    assert.equal(await page.textContent('[data-testid="photobatch-progress-text"]'), 'Explaining 4 of 6: a.png');
    await page.click('[data-testid="photobatch-cancel"]');
    await settled();
  } finally {
    release();
    await h.context.unroute(ENGINE_WASM);
  }
  const list = await rows();
  assert.deepEqual(list.map((r) => r.status), ['done', 'done', 'error', 'cancelled', 'cancelled', 'cancelled']);
  assert.ok((await notices(page)).some((n) => n.testid === 'photobatch-cancelled' && /2 explained so far are kept/.test(n.text)));
  assert.equal(await page.isHidden('[data-testid="photobatch-cancel"]'), true);
  assert.equal(await page.isHidden('[data-testid="photobatch-progress"]'), true);
  // a photo dropped after the cancel is explained
  await idle(page);
  await dropFiles(page, [photo('d.png', 'coffee.png')]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="photobatch-row"]').length === 7);
  await settled();
  assert.deepEqual((await rows()).map((r) => r.status), ['done', 'done', 'error', 'cancelled', 'cancelled', 'cancelled', 'done']);
});

test('a finished row opens its photo in the viewer', async () => {
  await idle(page);
  const s = await seq(page);
  await page.locator('[data-testid="photobatch-view"]').nth(1).click();
  const e = await explained(page, s);
  assert.equal(e.image, 'coffee.png');
  assertContained(h);
});
