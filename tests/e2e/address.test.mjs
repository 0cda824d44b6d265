// The settings in the page's address (www/address.js, www/settings.js): an address with settings
// opens with those controls set and the photo explained with them (the target class included);
// changing a control rewrites the address in place; values the page does not know give one notice
// naming each parameter, and those settings keep their defaults.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { assertContained, explained, notices, openPage, seq } from './harness.mjs';

const T = { load: 120_000 };

let h;
let page;

before(async () => {
  h = await openPage('address');
  page = h.page;
});

after(async () => {
  await h?.close();
});

const controls = () =>
  page.evaluate(() => ({
    model: document.querySelector('[data-testid="model-select"]').value,
    method: document.querySelector('input[name="method"]:checked').value,
    variant: document.querySelector('[data-testid="variant"]').value,
    composite: document.querySelector('[data-testid="composite"]').value,
    colormap: document.querySelector('[data-testid="colormap"]').value,
    sign: document.querySelector('[data-testid="sign"]').value,
    quantize: document.querySelector('[data-testid="quantize"]').checked,
    cell: document.querySelector('[data-testid="cell"]').value,
  }));

const query = () => page.evaluate(() => Object.fromEntries(new URLSearchParams(location.search)));

test('an address with settings opens with them, and explains its target class with them', async () => {
  const settings = 'model=basic_bn&photo=coffee.png&method=lrp&variant=latest&composite=reference&target=3&colormap=seismic&sign=signed&quantize=8&cell=2';
  await page.goto(`${h.server.url}?${settings}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  const e = await explained(page, 0);
  assert.deepEqual(await controls(), { model: 'fixtures/basic_bn', method: 'lrp', variant: 'latest', composite: 'reference', colormap: 'seismic', sign: 'signed', quantize: true, cell: '2' });
  assert.equal(e.image, 'coffee.png');
  assert.equal(e.summary.target, 3, 'the address’s class, not the top one');
  assert.deepEqual([e.options.variant, e.options.composite, e.options.quantize, e.options.cell], ['latest', 'reference', 8, 2]);
  assert.equal(await page.evaluate(() => window.__lrp.state.target), 3);
  assert.deepEqual(await notices(page), []);
  // the address keeps them (the model by its full key)
  assert.deepEqual(await query(), { model: 'fixtures/basic_bn', photo: 'coffee.png', method: 'lrp', variant: 'latest', composite: 'reference', target: '3', colormap: 'seismic', sign: 'signed', quantize: '8', cell: '2' });
});

test('changing a control rewrites the address in place', async () => {
  const length = await page.evaluate(() => history.length);
  let s = await seq(page);
  await page.selectOption('[data-testid="variant"]', 'flows_skip');
  await explained(page, s);
  assert.equal((await query()).variant, 'flows_skip');
  await page.selectOption('[data-testid="colormap"]', 'jet');
  assert.equal((await query()).colormap, 'jet', 'a display setting is written without a new explanation');
  s = await seq(page);
  await page.check('input[name="method"][value="gradcam"]');
  await explained(page, s);
  assert.equal((await query()).method, 'gradcam');
  s = await seq(page);
  await page.locator('[data-testid="top-class"]').click();
  const e = await explained(page, s);
  assert.equal((await query()).target, String(e.summary.target));
  s = await seq(page);
  await page.uncheck('[data-testid="quantize"]');
  await explained(page, s);
  assert.equal((await query()).quantize, '0');
  s = await seq(page);
  await page.selectOption('[data-testid="cell"]', '1');
  const single = await explained(page, s);
  assert.equal((await query()).cell, '1');
  assert.equal(single.options.cell, undefined, 'single pixels: no cells asked of the engine');
  assert.equal(await page.evaluate(() => history.length), length, 'no new history entries');
  // the rewritten address opens the same view
  const url = page.url();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  const again = await explained(page, 0);
  assert.equal(again.options.method, 'gradcam');
  assert.equal(again.summary.target, e.summary.target);
  assert.deepEqual(await controls(), { model: 'fixtures/basic_bn', method: 'gradcam', variant: 'flows_skip', composite: 'reference', colormap: 'jet', sign: 'signed', quantize: false, cell: '1' });
});

test('unknown values get a notice naming the parameter and fall back to the defaults', async () => {
  await page.goto(`${h.server.url}?model=no_such_model&method=magic&variant=zz&colormap=rainbow&sign=both&quantize=5&target=abc&photo=nope.png`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  const found = (await notices(page)).filter((n) => n.testid === 'address-notice');
  assert.equal(found.length, 1, 'one notice');
  for (const param of ['model=“no_such_model”', 'method=“magic”', 'variant=“zz”', 'colormap=“rainbow”', 'sign=“both”', 'quantize=“5”', 'target=“abc”', 'photo=“nope.png”']) {
    assert.ok(found[0].text.includes(param), `the notice names ${param}: ${found[0].text}`);
  }
  const c = await controls();
  assert.equal(c.model, 'fashion_resnet', 'the default model');
  assert.deepEqual([c.method, c.variant, c.sign], ['lrp', 'flows_skip', 'positive']);
  // the address now holds what is shown
  const q = await query();
  assert.deepEqual([q.model, q.method, q.variant, q.sign], ['fashion_resnet', 'lrp', 'flows_skip', 'positive']);
  assert.ok(!('target' in q) || /^\d+$/.test(q.target));
});

test('a target the model does not have is reported and the top class explained', async () => {
  await page.goto(`${h.server.url}?model=basic_bn&photo=chelsea.png&target=99`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: T.load });
  const e = await explained(page, 0);
  const top = await page.evaluate(() => window.__lrp.state.prediction.top[0].class);
  assert.equal(e.summary.target, top);
  const n = (await notices(page)).find((x) => x.testid === 'address-notice');
  assert.match(n.text, /target=99.*classes 0–9/);
  assertContained(h);
});
