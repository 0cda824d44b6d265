// Times wasm_f32_8x8 against wasm_f32_4x16 (tract-linalg's wasm matrix-product kernels) in headless
// Chromium, on the matrix products of ResNet-18/50 and open_nsfw (m = output channels, k = input
// channels × kernel area, n = output pixels), the two kernels interleaved round by round.
//   node run.mjs OUT.json LABEL=FILE.wasm [LABEL=FILE.wasm ...]
import fs from 'node:fs';
import os from 'node:os';
import { chromium } from 'playwright-core';

// playwright starts Chromium with a fresh profile of its own

const [out, ...builds] = process.argv.slice(2);
if (!out || builds.length === 0) {
  console.error('usage: node run.mjs OUT.json LABEL=FILE.wasm [LABEL=FILE.wasm ...]');
  process.exit(2);
}
const SHAPES = [
  [64, 147, 12544], [64, 64, 3136], [64, 576, 3136], [256, 64, 3136], [128, 1152, 784], [512, 128, 784],
  [128, 512, 784], [256, 2304, 196], [1024, 256, 196], [256, 1024, 196], [512, 4608, 49], [2048, 512, 49],
  [512, 2048, 49], [32, 27, 12544], [96, 864, 784],
];
const ROUNDS = 7;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
const result = { date: new Date().toISOString(), chromium: browser.version(), cpu: os.cpus()[0]?.model, loadavg: os.loadavg(), rounds: ROUNDS, builds: {} };
const page = await browser.newPage();
for (const b of builds) {
  const [label, file] = b.split('=');
  const rows = await page.evaluate(async ([b64, shapes, rounds]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const { instance } = await WebAssembly.instantiate(bytes, {});
    const w = instance.exports;
    const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
    const rows = [];
    for (const [m, k, n] of shapes) {
      const t = { 1: [], 2: [] };
      const tile = w.setup(0, m, k, n);
      for (let round = 0; round < rounds; round++) {
        for (const kern of [1, 2]) {
          w.setup(kern, m, k, n);
          w.run();
          const reps = Math.max(1, Math.round(3e8 / (m * k * n)));
          const t0 = performance.now();
          for (let r = 0; r < reps; r++) w.run();
          t[kern].push((performance.now() - t0) / reps);
        }
      }
      rows.push({ m, k, n, picked: `${Math.floor(tile / 1000)}x${tile % 1000}`, ms8x8: med(t[1]), ms4x16: med(t[2]) });
    }
    return rows;
  }, [fs.readFileSync(file).toString('base64'), SHAPES, ROUNDS]);
  result.builds[label] = rows;
  const sum = (key) => rows.reduce((s, r) => s + r[key], 0);
  console.log(`\n${label} (${file})\n| m×k×n | tract picks | 8x8 ms | 4x16 ms | 8x8 / 4x16 |\n|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.m}×${r.k}×${r.n} | ${r.picked} | ${r.ms8x8.toFixed(3)} | ${r.ms4x16.toFixed(3)} | ${(r.ms8x8 / r.ms4x16).toFixed(2)} |`);
  console.log(`| all | | ${sum('ms8x8').toFixed(1)} | ${sum('ms4x16').toFixed(1)} | ${(sum('ms8x8') / sum('ms4x16')).toFixed(2)} |`);
}
await browser.close();
fs.writeFileSync(out, JSON.stringify(result, null, 1));
