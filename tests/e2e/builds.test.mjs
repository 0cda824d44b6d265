// The first minutes of `./build.sh serve`: the page comes up on the build that runs everywhere while
// the faster builds are still being made (www/builds.json lists them as pending). The worker must not
// load a pending build even though an earlier one is on disk, the page says a faster one is coming,
// and once builds.json says it is made, the page says a reload will use it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { notices, openPage, WWW } from './harness.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnet-lrp-builds-'));
const status = path.join(dir, 'builds.json');
const write = (state, pending) => fs.writeFileSync(status, JSON.stringify({ state, pending }));
const opened = [];

after(async () => {
  for (const h of opened) await h.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens the page cross-origin isolated (the threaded build would be picked) with builds.json served. */
async function open(name) {
  const h = await openPage(name, { isolated: true, files: { '/builds.json': status } });
  opened.push(h);
  await h.page.goto(`${h.server.url}?model=basic_bn`);
  await h.page.waitForSelector('[data-testid="engine"]:not([hidden])');
  return h;
}

const engineOf = (page) => page.$eval('[data-testid="engine"]', (el) => el.dataset.engine);
const buildNote = (page) =>
  page.$eval('[data-testid="engine-build"]', (el) => ({ kind: el.dataset.build ?? null, hidden: el.hidden, text: el.textContent }));

test('with no builds.json the isolated page runs the threaded build (the control for the tests below)', async () => {
  assert.ok(fs.existsSync(path.join(WWW, 'pkg-threads', 'resnet_lrp.js')), 'www/pkg-threads is built');
  fs.rmSync(status, { force: true });
  const h = await open('builds-none');
  assert.equal(await engineOf(h.page), 'pkg-threads');
  assert.equal((await buildNote(h.page)).hidden, true);
});

test('a pending build is not loaded; the page says it is coming, then that a reload uses it', async () => {
  write('building', ['pkg-relaxed', 'pkg-threads']);
  const h = await open('builds-coming');
  assert.equal(await engineOf(h.page), 'pkg', 'the pending threaded build on disk is skipped');
  const coming = await buildNote(h.page);
  assert.equal(coming.kind, 'coming');
  assert.match(coming.text, /threaded/);
  write('building', ['pkg-relaxed']); // the threaded build is done, the relaxed one not yet
  await h.page.waitForSelector('[data-testid="engine-build"][data-build="ready"]', { timeout: 20_000 });
  assert.match((await buildNote(h.page)).text, /threaded.*reload/);
  assert.ok((await notices(h.page)).some((n) => n.testid === 'build-ready'));
  await h.page.reload();
  await h.page.waitForSelector('[data-testid="engine"]:not([hidden])');
  assert.equal(await engineOf(h.page), 'pkg-threads', 'after the reload the page runs the faster build');
  assert.deepEqual(h.pageErrors, []);
});

test('a build that stops is reported, and the page keeps the build it runs', async () => {
  write('building', ['pkg-threads']);
  const h = await open('builds-stopped');
  assert.equal(await engineOf(h.page), 'pkg');
  write('stopped', ['pkg-threads']);
  await h.page.waitForSelector('[data-testid="engine-build"][data-build="failed"]', { timeout: 20_000 });
  assert.ok((await notices(h.page)).some((n) => n.testid === 'build-failed'));
  assert.equal(await engineOf(h.page), 'pkg');
  assert.deepEqual(h.pageErrors, []);
});
