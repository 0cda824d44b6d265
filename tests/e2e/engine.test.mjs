// Which build of the engine the page's worker loads: pkg-relaxed/ (+simd128,+relaxed-simd) where the
// browser validates relaxed SIMD and the server has that build, pkg/ (+simd128) otherwise, and a
// pkg-relaxed/ that does not load falls back to pkg/. The page shows the choice next to its status
// and every choice explains a photo. The first model and photo download while the engine compiles.
//
//   node tests/e2e/engine.test.mjs          or          node --test tests/e2e/
//
// Needs what page.test.mjs needs (www/pkg, ./build.sh assets, Chromium, playwright-core). Which
// pkg-relaxed/ the server has is set by each test (www/pkg-relaxed, if a release build left one, is
// never used): none, www/pkg standing in for it, or one without its wasm.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { explained, openPage, WWW } from './harness.mjs';

const NOWHERE = path.join(os.tmpdir(), 'resnet-lrp-e2e-no-pkg-relaxed'); // never created: every file 404

/**
 * Makes the worker see a browser without relaxed SIMD: its WebAssembly.validate refuses modules with
 * f32x4.relaxed_madd (0xfd 0x85 0x02). Chromium has no switch to turn relaxed SIMD off.
 */
async function withoutRelaxedSimd(context) {
  const shim = `{
    const validate = WebAssembly.validate;
    WebAssembly.validate = (bytes) => {
      const b = ArrayBuffer.isView(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new Uint8Array(bytes);
      for (let i = 0; i + 2 < b.length; i++) if (b[i] === 0xfd && b[i + 1] === 0x85 && b[i + 2] === 0x02) return false;
      return validate(bytes);
    };
  }
`;
  await context.route(/\/worker\.js$/, async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, body: shim + (await res.text()) });
  });
}

/** Opens the page with a photo, waits for its explanation; returns what the page and the server saw. */
async function run(name, { relaxedDir = NOWHERE, noRelaxedSimd = false } = {}) {
  const h = await openPage(name, { mounts: { '/pkg-relaxed/': relaxedDir } });
  try {
    if (noRelaxedSimd) await withoutRelaxedSimd(h.context);
    await h.page.goto(`${h.server.url}?model=basic_bn&photo=chelsea.png`);
    const ex = await explained(h.page, 0, 120_000);
    const info = await h.page.evaluate(() => window.__lrp.state.engineInfo);
    const badge = await h.page.$eval('[data-testid="engine"]', (el) => ({ text: el.textContent, hidden: el.hidden, engine: el.dataset.engine }));
    const wasm = h.server.log.filter((l) => /^GET \/pkg(-relaxed)?\/resnet_lrp_bg\.wasm 200$/.test(l));
    const errors = await h.page.$$eval('[data-testid="notices"] .notice.error', (els) => els.map((e) => e.textContent));
    return { ex, info, badge, wasm, errors, pageErrors: [...h.pageErrors] };
  } finally {
    await h.close();
  }
}

function explainedPhoto(r) {
  assert.deepEqual(r.pageErrors, []);
  assert.deepEqual(r.errors, []);
  assert.equal(r.ex.image, 'chelsea.png');
  assert.equal(r.ex.model, 'fixtures/basic_bn');
  assert.ok(r.ex.summary.conservationError < 1e-4, `conservation ${r.ex.summary.conservationError}`);
}

test('without pkg-relaxed/ the page falls back to pkg/, says so and explains a photo', async () => {
  const r = await run('engine-fallback');
  assert.deepEqual(r.info, { simd: true, relaxed: false, engine: 'pkg', relaxedSupported: true });
  assert.equal(r.badge.hidden, false);
  assert.equal(r.badge.text, 'wasm SIMD128');
  assert.equal(r.badge.engine, 'pkg');
  assert.deepEqual(r.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
});

test('with pkg-relaxed/ on the server and relaxed SIMD in the browser, the page loads pkg-relaxed/', async () => {
  // the dev build of www/pkg stands in for the relaxed build: what is tested is the choice
  const r = await run('engine-relaxed', { relaxedDir: path.join(WWW, 'pkg') });
  assert.deepEqual(r.info, { simd: true, relaxed: true, engine: 'pkg-relaxed', relaxedSupported: true });
  assert.equal(r.badge.text, 'wasm relaxed SIMD');
  assert.equal(r.badge.engine, 'pkg-relaxed');
  assert.deepEqual(r.wasm, ['GET /pkg-relaxed/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
});

test('a browser without relaxed SIMD loads pkg/ even where pkg-relaxed/ exists', async () => {
  const r = await run('engine-no-relaxed', { relaxedDir: path.join(WWW, 'pkg'), noRelaxedSimd: true });
  assert.deepEqual(r.info, { simd: true, relaxed: false, engine: 'pkg', relaxedSupported: false });
  assert.equal(r.badge.text, 'wasm SIMD128');
  assert.deepEqual(r.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
});

test('a pkg-relaxed/ that does not load (its wasm missing) falls back to pkg/', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnet-lrp-e2e-pkg-relaxed-'));
  try {
    fs.copyFileSync(path.join(WWW, 'pkg', 'resnet_lrp.js'), path.join(dir, 'resnet_lrp.js'));
    const r = await run('engine-broken-relaxed', { relaxedDir: dir });
    assert.deepEqual(r.info, { simd: true, relaxed: false, engine: 'pkg', relaxedSupported: true });
    assert.deepEqual(r.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
    explainedPhoto(r);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the first model and the requested photo download while the engine is still compiling', async () => {
  const h = await openPage('engine-prefetch', { mounts: { '/pkg-relaxed/': NOWHERE } });
  try {
    // the engine's wasm is held back until both downloads have started (or 20 s have passed)
    let release;
    const held = new Promise((resolve) => (release = resolve));
    let releasedBy = null;
    let before = [];
    const timer = setTimeout(() => {
      releasedBy ??= 'timeout';
      before = [...started];
      release();
    }, 20_000);
    const started = new Set();
    h.context.on('request', (r) => {
      const u = new URL(r.url()).pathname;
      if (u === '/models/fixtures/basic_bn.onnx' || u === '/photos/chelsea.png') started.add(u);
      if (started.size === 2) {
        releasedBy ??= 'downloads';
        release();
      }
    });
    await h.context.route(/\/pkg\/resnet_lrp_bg\.wasm$/, async (route) => {
      await held;
      await route.continue();
    });
    await h.page.goto(`${h.server.url}?model=basic_bn&photo=chelsea.png`);
    const ex = await explained(h.page, 0, 120_000);
    clearTimeout(timer);
    assert.equal(releasedBy, 'downloads', `downloads started while the engine compiled: ${before.join(', ') || 'none'}`);
    assert.equal(ex.model, 'fixtures/basic_bn');
    assert.equal(ex.image, 'chelsea.png');
    assert.deepEqual(h.pageErrors, []);
  } finally {
    await h.close();
  }
});
