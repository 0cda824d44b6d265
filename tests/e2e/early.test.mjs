// Nothing the user does early is lost: a photo dropped right after navigation, while the engine
// starts and the default model loads, is explained as soon as the model is there, and the notice
// that said it would be goes away.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { dropFiles, explained, notices, openPage, read, WWW } from './harness.mjs';

let h;

before(async () => {
  h = await openPage('early');
});

after(async () => {
  await h?.close();
});

test('a photo dropped while the page starts is explained once the model has loaded', async () => {
  const { page } = h;
  await page.goto(`${h.server.url}?model=basic_bn`);
  await page.waitForSelector('[data-testid="dropzone"]');
  const readyAtDrop = await page.evaluate(() => document.body.dataset.ready === 'true');
  await dropFiles(page, [{ name: 'chelsea.png', type: 'image/png', bytes: read(WWW, 'photos', 'chelsea.png') }]);
  assert.equal(readyAtDrop, false, 'the photo was dropped before the page was ready');
  const e = await explained(page, 0, 120_000);
  assert.match(e.image, /chelsea/);
  assert.equal(e.width, 64, 'explained with the test model');
  await page.waitForSelector('body[data-ready="true"]');
  const left = (await notices(page)).map((n) => n.testid);
  assert.ok(!left.includes('photo-waiting'), `the waiting notice is gone: ${left}`);
  assert.ok(!left.includes('error') && !left.includes('photo-error'), `no errors: ${left}`);
  assert.deepEqual(h.pageErrors, []);
});
