// Which build of the engine the page's worker loads: pkg-threads/ (relaxed SIMD and a worker pool) on a
// cross-origin isolated page, pkg-relaxed/ (+simd128,+relaxed-simd) where the browser validates relaxed
// SIMD and the server has that build, pkg/ (+simd128) otherwise, and a build that does not load falls
// back to the next one. The page shows the choice next to its status
// and every choice explains a photo. The first model and photo download while the engine compiles.
//
//   node tests/e2e/engine.test.mjs          or          node --test tests/e2e/
//
// Needs what page.test.mjs needs (www/pkg, ./build.sh assets, Chromium, playwright-core). Which
// pkg-relaxed/ the server has is set by each test (www/pkg-relaxed, if a release build left one, is
// never used): none, www/pkg standing in for it, or one without its wasm.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { explained, openPage, ROOT, WWW } from './harness.mjs';

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
async function run(name, { relaxedDir = NOWHERE, threadsDir = NOWHERE, isolated = false, query = '', noRelaxedSimd = false, after } = {}) {
  const h = await openPage(name, { mounts: { '/pkg-relaxed/': relaxedDir, '/pkg-threads/': threadsDir }, isolated });
  try {
    if (noRelaxedSimd) await withoutRelaxedSimd(h.context);
    await h.page.goto(`${h.server.url}?model=basic_bn&photo=chelsea.png${query}`);
    const ex = await explained(h.page, 0, 120_000);
    const info = await h.page.evaluate(() => window.__lrp.state.engineInfo);
    const badge = await h.page.$eval('[data-testid="engine"]', (el) => ({ text: el.textContent, hidden: el.hidden, engine: el.dataset.engine, title: el.title }));
    const wasm = h.server.log.filter((l) => /^GET \/pkg(-relaxed|-threads)?\/resnet_lrp_bg\.wasm 200$/.test(l));
    const errors = await h.page.$$eval('[data-testid="notices"] .notice.error', (els) => els.map((e) => e.textContent));
    const more = after ? await after(h) : undefined;
    return { ex, info, badge, wasm, errors, more, pageErrors: [...h.pageErrors] };
  } finally {
    await h.close();
  }
}

/** The size of the page engine's wasm memory (the worker's `memory` request, which the benchmark reads). */
const engineMemory = (h) => h.page.evaluate(async () => (await window.__lrp.state.engine.request('memory')).bytes);

/** A wasm memory is whole 64 KiB pages, and after explaining a photo it holds at least the model's weights. */
function plausibleMemory(bytes, modelFile) {
  assert.ok(Number.isInteger(bytes) && bytes % 65536 === 0, `memory ${bytes} is not whole wasm pages`);
  const weights = fs.statSync(path.join(ROOT, 'tests', 'fixtures', modelFile)).size;
  assert.ok(bytes > weights, `memory ${bytes} B is less than the model's ${weights} B`);
}

function explainedPhoto(r) {
  assert.deepEqual(r.pageErrors, []);
  assert.deepEqual(r.errors, []);
  assert.equal(r.ex.image, 'chelsea.png');
  assert.equal(r.ex.model, 'fixtures/basic_bn');
  assert.ok(r.ex.summary.conservationError < 1e-4, `conservation ${r.ex.summary.conservationError}`);
}

test('without pkg-relaxed/ the page falls back to pkg/, says so and explains a photo', async () => {
  const r = await run('engine-fallback', { after: engineMemory });
  plausibleMemory(r.more, 'basic_bn.onnx');
  assert.deepEqual(r.info, { simd: true, relaxed: false, engine: 'pkg', threads: 1, relaxedSupported: true, isolated: false });
  assert.equal(r.badge.hidden, false);
  assert.equal(r.badge.text, 'wasm SIMD128');
  assert.equal(r.badge.engine, 'pkg');
  assert.deepEqual(r.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
});

test('with pkg-relaxed/ on the server and relaxed SIMD in the browser, the page loads pkg-relaxed/', async () => {
  // the dev build of www/pkg stands in for the relaxed build: what is tested is the choice
  const r = await run('engine-relaxed', { relaxedDir: path.join(WWW, 'pkg') });
  assert.deepEqual(r.info, { simd: true, relaxed: true, engine: 'pkg-relaxed', threads: 1, relaxedSupported: true, isolated: false });
  assert.equal(r.badge.text, 'wasm relaxed SIMD');
  assert.equal(r.badge.engine, 'pkg-relaxed');
  assert.deepEqual(r.wasm, ['GET /pkg-relaxed/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
});

test('a browser without relaxed SIMD loads pkg/ even where pkg-relaxed/ exists', async () => {
  const r = await run('engine-no-relaxed', { relaxedDir: path.join(WWW, 'pkg'), noRelaxedSimd: true });
  assert.deepEqual(r.info, { simd: true, relaxed: false, engine: 'pkg', threads: 1, relaxedSupported: false, isolated: false });
  assert.equal(r.badge.text, 'wasm SIMD128');
  assert.deepEqual(r.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
});

test('a pkg-relaxed/ that does not load (its wasm missing) falls back to pkg/', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnet-lrp-e2e-pkg-relaxed-'));
  try {
    fs.copyFileSync(path.join(WWW, 'pkg', 'resnet_lrp.js'), path.join(dir, 'resnet_lrp.js'));
    const r = await run('engine-broken-relaxed', { relaxedDir: dir });
    assert.deepEqual(r.info, { simd: true, relaxed: false, engine: 'pkg', threads: 1, relaxedSupported: true, isolated: false });
    assert.deepEqual(r.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
    explainedPhoto(r);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const THREADS = path.join(WWW, 'pkg-threads');

test('on a cross-origin isolated page the threaded engine runs on a worker pool and explains as one thread does', async () => {
  // the threaded build needs no stand-in: ./build.sh wasm builds www/pkg-threads for every profile
  const one = await run('engine-one-thread', { threadsDir: THREADS });
  assert.equal(one.info.engine, 'pkg', 'a page that is not isolated never loads pkg-threads/');
  assert.match(one.badge.title, /not cross-origin isolated/);
  const r = await run('engine-threads', {
    threadsDir: THREADS,
    isolated: true,
    query: '&threads=2',
    // after the worker dies, the restarted one starts its pool again and explains
    after: async (h) => {
      const memory = await engineMemory(h); // the shared memory the pool works in
      const s = await h.page.evaluate(() => window.__lastExplain.seq);
      await h.page.evaluate(() => window.__lrp.crash());
      await h.page.waitForFunction(
        () => [...document.querySelectorAll('[data-testid="restart-notice"] .text')].some((e) => /restarted/.test(e.textContent)),
        null,
        { timeout: 120_000 },
      );
      await h.page.locator('[data-testid="predictions"] button').nth(1).click();
      const again = await explained(h.page, s, 120_000);
      const info = await h.page.evaluate(() => window.__lrp.state.engineInfo);
      return { again, info, memory };
    },
  });
  assert.deepEqual(r.info, { simd: true, relaxed: true, engine: 'pkg-threads', threads: 2, relaxedSupported: true, isolated: true });
  assert.equal(r.badge.text, 'wasm relaxed SIMD · 2 threads');
  assert.equal(r.badge.engine, 'pkg-threads');
  assert.deepEqual(r.wasm.slice(0, 1), ['GET /pkg-threads/resnet_lrp_bg.wasm 200']);
  explainedPhoto(r);
  // the same heatmap as one thread (pkg/, without relaxed SIMD's fused multiply-add: rounding only)
  assert.equal(r.ex.summary.target, one.ex.summary.target);
  assert.equal(r.ex.map.length, one.ex.map.length);
  const scale = Math.max(...one.ex.map.map(Math.abs));
  const worst = Math.max(...r.ex.map.map((v, i) => Math.abs(v - one.ex.map[i])));
  assert.ok(scale > 0 && worst <= 1e-4 * scale, `threaded vs one thread: max difference ${worst} of ${scale}`);
  assert.equal(r.more.info.engine, 'pkg-threads');
  assert.equal(r.more.info.threads, 2);
  plausibleMemory(r.more.memory, 'basic_bn.onnx');
  assert.ok(r.more.again.summary.conservationError < 1e-4);
  assert.notEqual(r.more.again.summary.target, r.ex.summary.target);
});

test('on an isolated page, ?threads=1 or a pkg-threads/ that cannot start leaves the engine on one thread', async () => {
  const asked = await run('engine-threads-off', { threadsDir: THREADS, isolated: true, query: '&threads=1' });
  assert.deepEqual(asked.info, { simd: true, relaxed: false, engine: 'pkg', threads: 1, relaxedSupported: true, isolated: true });
  assert.match(asked.badge.title, /\?threads=1/);
  assert.deepEqual(asked.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
  explainedPhoto(asked);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnet-lrp-e2e-pkg-threads-'));
  try {
    fs.copyFileSync(path.join(THREADS, 'resnet_lrp.js'), path.join(dir, 'resnet_lrp.js'));
    const broken = await run('engine-threads-broken', { threadsDir: dir, isolated: true, query: '&threads=2' });
    assert.deepEqual(broken.info, { simd: true, relaxed: false, engine: 'pkg', threads: 1, relaxedSupported: true, isolated: true });
    assert.deepEqual(broken.wasm, ['GET /pkg/resnet_lrp_bg.wasm 200']);
    explainedPhoto(broken);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the demo server of ./build.sh serve (tools/serve.py) makes the page cross-origin isolated: the threaded engine runs', async () => {
  const python = path.join(ROOT, '.venv', 'bin', 'python');
  const server = spawn(python, [path.join(ROOT, 'tools', 'serve.py'), '--port', '0', '--directory', WWW], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+\/)/);
        if (m) resolve(m[1]);
      });
      server.on('exit', (code) => reject(new Error(`tools/serve.py exited with ${code}: ${out}`)));
    });
    const h = await openPage('engine-demo-server');
    try {
      await h.page.goto(`${url}?model=basic_bn&photo=chelsea.png&threads=2`);
      const ex = await explained(h.page, 0, 120_000);
      const info = await h.page.evaluate(() => ({ ...window.__lrp.state.engineInfo, isolated: window.crossOriginIsolated }));
      assert.equal(info.isolated, true);
      assert.equal(info.engine, 'pkg-threads');
      assert.equal(info.threads, 2);
      assert.ok(ex.summary.conservationError < 1e-4);
      assert.deepEqual(h.pageErrors, []);
    } finally {
      await h.close();
    }
  } finally {
    server.kill();
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
