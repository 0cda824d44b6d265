// Screenshots for docs/gallery/ (README, "What `serve` shows"): the first map a visitor sees, before
// and after the per-model display defaults, and the Fashion-MNIST ResNet's first map.
//
//   node tools/gallery.mjs        (needs what the page tests need: www/pkg, ./build.sh assets, Chromium)
//
// before-chelsea.png  EfficientNet-Lite0 on chelsea.png with the old first settings: raw relevance
//                     (no heat quantization), signed, jet, opacity 0.4, clip 99.5, per pixel
// after-chelsea.png   the same with EfficientNet-Lite0's defaults from models.json (positive, 8 levels,
//                     the map in 2×2-pixel cells)
// fashion.png         the page as it opens: the Fashion-MNIST ResNet and its first sample
// page.png            the whole page with EfficientNet-Lite0 on chelsea.png, new defaults

import fs from 'node:fs';
import path from 'node:path';

import { explained, idle, openPage, ROOT, seq } from '../tests/e2e/harness.mjs';

const DIR = path.join(ROOT, 'docs', 'gallery');
const T = 180_000;

async function shoot(page, name, selector) {
  await page.evaluate(() => window.scrollTo(0, 0));
  const file = path.join(DIR, name);
  await (selector ? page.locator(selector).screenshot({ path: file }) : page.screenshot({ path: file }));
  console.log(`gallery: docs/gallery/${name}`);
}

/** EfficientNet-Lite0 chosen and chelsea.png explained with the display defaults the page has. */
async function chelsea(page) {
  await page.selectOption('[data-testid="model-select"]', 'efficientnet_lite0');
  await page.waitForFunction(() => window.__lrp.state.model?.key === 'efficientnet_lite0' && document.body.dataset.busy !== 'true', null, { timeout: T });
  await idle(page);
  // counted only now: the new model explains the photo that was on screen first
  const s = await seq(page);
  await page.click('[data-testid="sample-chelsea.png"]');
  await explained(page, s, T);
  await idle(page);
}

/** The page loaded and explained its first sample. */
async function opened(page) {
  await page.waitForSelector('body[data-ready="true"]', { timeout: T });
  await explained(page, 0, T);
}

const h = await openPage('gallery');
try {
  const { page } = h;
  fs.mkdirSync(DIR, { recursive: true });
  await page.goto(h.server.url);
  await opened(page);
  await shoot(page, 'fashion.png', '.layout');

  await chelsea(page);
  await shoot(page, 'after-chelsea.png', '.viewer');
  await shoot(page, 'page.png');

  // the old first settings, as a user would set them; the map per pixel, as before models.json had `cell`
  await page.route('**/models/models.json', async (route) => {
    const json = await (await route.fetch()).json();
    for (const m of json.models) delete m.display?.cell;
    await route.fulfill({ json });
  });
  await page.reload();
  await opened(page);
  await chelsea(page);
  const s = await seq(page);
  await page.click('[data-testid="quantize"]');
  await explained(page, s, T);
  await page.selectOption('[data-testid="sign"]', 'signed');
  await page.evaluate(() => window.__lrp.setRelevanceDisplay({ opacity: 0.4, clip: 99.5 }));
  await shoot(page, 'before-chelsea.png', '.viewer');
} finally {
  await h.close();
}
