// What every end-to-end test file needs: the page served on 127.0.0.1, Debian's Chromium driven by
// playwright-core with a fresh profile, and helpers to drop files, wait for the page and read its notices.
//
//   const h = await openPage('robustness');       // in before()
//   await h.page.goto(`${h.server.url}?model=basic_bn`);
//   ...
//   await h.close();                              // in after()

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { serve } from './serve.mjs';
import { encodePng } from '../../www/overlay.js';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const WWW = path.join(ROOT, 'www');
export const FIXTURES = path.join(ROOT, 'tests', 'fixtures');
export const OUT = path.join(HERE, 'out');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CLI = process.env.RESNET_LRP_CLI ?? path.join(ROOT, 'target', 'debug', 'resnet-lrp');

/** Chromium's flags for a headless run as root on a machine without network access. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless=new',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // belt and braces: no host name resolves, so nothing could leave the machine anyway
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

export const read = (...p) => fs.readFileSync(path.join(...p));

export function need(file, how) {
  if (!fs.existsSync(file)) throw new Error(`missing ${path.relative(ROOT, file)}: ${how}`);
}

/**
 * Serves www/ (test models from tests/fixtures) and opens a page in a fresh Chromium profile.
 * `mounts` adds URL prefixes served from other directories and `files` single paths served from a file
 * (see serve.mjs), `args` Chromium flags;
 * `isolated` serves with COOP/COEP headers (a cross-origin isolated page: the threaded engine).
 * Returns `{page, context, server, requests, pageErrors, profile, close}`; `requests` collects every
 * URL the browser asked for, `pageErrors` every uncaught error of the page.
 */
export async function openPage(name, { mounts = {}, files = {}, args = [], isolated = false } = {}) {
  need(path.join(WWW, 'pkg', 'resnet_lrp.js'), 'build the wasm with ./build.sh wasm');
  need(path.join(WWW, 'photos', 'photos.json'), 'prepare the photos with ./build.sh assets');
  need(CHROMIUM, 'install Debian’s chromium (apt-get install chromium)');
  const { chromium } = await import('playwright-core');
  fs.mkdirSync(OUT, { recursive: true });
  const server = await serve({ root: WWW, mounts: { '/models/fixtures/': FIXTURES, ...mounts }, files, isolated });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `resnet-lrp-e2e-${name}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    viewport: { width: 1400, height: 1000 },
    acceptDownloads: true,
  });
  const requests = [];
  const pageErrors = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (process.env.E2E_VERBOSE) console.log(`[console.${m.type()}] ${m.text()}`);
  });
  return {
    page,
    context,
    server,
    requests,
    pageErrors,
    profile,
    async close() {
      await context.close();
      await server.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Drops files (`{name, type, bytes}`) on the page's drop zone, as a person dragging them would. */
export async function dropFiles(page, files) {
  const payload = files.map((f) => ({ name: f.name, type: f.type ?? '', b64: Buffer.from(f.bytes).toString('base64') }));
  await page.evaluate((payload) => {
    const dt = new DataTransfer();
    for (const f of payload) {
      const bin = atob(f.b64);
      const u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
      dt.items.add(new File([u8], f.name, { type: f.type }));
    }
    const zone = document.querySelector('[data-testid="dropzone"]');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }
  }, payload);
}

/** The number of the last explanation on screen (0 before the first). */
export const seq = (page) => page.evaluate(() => window.__lastExplain?.seq ?? 0);

/** Waits until the page is not busy: neither explaining nor evaluating. */
export async function idle(page, timeout = 120_000) {
  await page.waitForFunction(
    () => document.body.dataset.busy !== 'true' && document.body.dataset.evaluating !== 'true',
    null,
    { timeout, polling: 100 },
  );
}

/** Waits until an explanation newer than `since` is on screen and the page is idle; returns it. */
export async function explained(page, since, timeout = 90_000) {
  await page.waitForFunction(
    (s) => (window.__lastExplain?.seq ?? 0) > s && document.body.dataset.busy !== 'true',
    since,
    { timeout, polling: 100 },
  );
  return page.evaluate(() => {
    const e = window.__lastExplain;
    return { ...e, map: Array.from(e.map) };
  });
}

/** The notices on the page: `[{testid, text}]`. */
export async function notices(page) {
  return page.$$eval('[data-testid="notices"] .notice', (els) =>
    els.map((e) => ({ testid: e.dataset.testid, text: e.querySelector('.text').textContent })),
  );
}

export async function dismissNotices(page) {
  await page.$$eval('[data-testid="notices"] .notice', (els) => els.forEach((e) => e.remove()));
}

/** Requests that went anywhere but the test server. */
export function foreignRequests(h) {
  const origin = h.server.url.replace(/\/$/, '');
  return h.requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('data:') && !u.startsWith('blob:'));
}

/** Asserts that no request went anywhere but the test server and that the page raised no uncaught errors. */
export function assertContained(h) {
  assert.deepEqual(foreignRequests(h), [], 'requests to other hosts');
  assert.deepEqual(h.pageErrors, []);
}

/** Writes the pixels the page last fed the engine (`window.__lrp.fedImage()`) to `file` as a PNG. */
export async function saveFedImage(page, file) {
  const fed = await page.evaluate(() => window.__lrp.fedImage());
  fs.writeFileSync(file, await encodePng(Uint8ClampedArray.from(fed.rgba), fed.width, fed.height));
}

/**
 * Times steps of a test: `const { timed, summary } = stopwatch(); await timed('load', () => ...);`,
 * then `summary()` lists every step's milliseconds (`timings` holds them by name).
 */
export function stopwatch() {
  const timings = {};
  return {
    timings,
    async timed(name, fn) {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        timings[name] = Math.round(performance.now() - t0);
      }
    },
    summary: () => Object.entries(timings).map(([k, v]) => `${k} ${v}`).join('; '),
  };
}
