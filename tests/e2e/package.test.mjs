// The engine as an npm package: `./build.sh package` packs dist/npm/resnet-lrp-<version>.tgz; this test
// installs the tarball into a scratch directory (npm, offline: the package has no dependencies), serves
// a page that imports it as its README shows — once on the page's own thread, once in a module worker —
// and explains a test ResNet through it. What the engine returns must have exactly the fields the
// package's TypeScript types declare (the .d.ts is checked against reality, not against itself).
//
// Needs: dist/npm/resnet-lrp-*.tgz (./build.sh package [--profile dev]), /usr/bin/chromium, npm.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertContained, FIXTURES, need, openPage, ROOT } from './harness.mjs';

const DIST = path.join(ROOT, 'dist', 'npm');
let h;
let scratch;
let types;

const PAGE = `<!doctype html><meta charset="utf-8"><title>scratch</title>
<script type="module">
  import init, { Explainer, capabilities } from './node_modules/resnet-lrp/resnet_lrp.js';
  window.run = async (modelUrl) => {
    await init();
    const onnx = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
    const ex = new Explainer(onnx);
    const info = ex.info();
    const [h, w] = [info.input.height, info.input.width];
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 37) % 251));
    const prediction = ex.setImage(rgba, w, h);
    const summary = ex.explain({ method: 'flows_skip', composite: 'conserving', quantize: 8 });
    const map = Array.from(ex.map());
    let bad = null;
    try { ex.explain({ target: 1e6 }); } catch (e) { bad = String(e.message ?? e); }
    const evaluation = ex.evaluate({ method: 'random', step: 512 }, null);
    ex.free();
    return { capabilities: capabilities(), info, prediction, summary, mapLength: map.length, bad, evaluation };
  };
  window.runInWorker = (modelUrl) => new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = ({ data }) => resolve(data);
    worker.onerror = (e) => reject(new Error(e.message));
    fetch(modelUrl).then((r) => r.arrayBuffer()).then((b) => worker.postMessage({ model: new Uint8Array(b) }));
  });
</script>`;

const WORKER = `import init, { Explainer } from './node_modules/resnet-lrp/resnet_lrp.js';
const ready = init();
onmessage = async ({ data }) => {
  await ready;
  const ex = new Explainer(data.model);
  const { height: h, width: w } = ex.info().input;
  const prediction = ex.setImage(new Uint8Array(w * h * 4).fill(128), w, h);
  const summary = ex.explain({ target: prediction.top[0].class, method: 'gradcam' });
  postMessage({ prediction, summary, map: ex.map() });
};`;

/** The field names of `interface NAME` in the .d.ts (optional ones marked with `?`). */
function fields(name) {
  const body = types.match(new RegExp(`export interface ${name}(?: extends \\w+)? \\{([\\s\\S]*?)\\n\\}`))?.[1];
  assert.ok(body, `interface ${name} is in resnet_lrp.d.ts`);
  // the interface's own fields are the least indented ones (nested object types are deeper)
  const lines = [...body.matchAll(/^( +)(\w+)(\??):/gm)];
  const indent = Math.min(...lines.map((m) => m[1].length));
  return new Map(lines.filter((m) => m[1].length === indent).map((m) => [m[2], m[3] === '?']));
}

/** `obj` has every required field of interface `name` and no field it does not declare. */
function conforms(obj, name) {
  const declared = fields(name);
  for (const k of Object.keys(obj)) assert.ok(declared.has(k), `${name}: the engine returns \`${k}\`, which the types do not declare`);
  for (const [k, optional] of declared) if (!optional) assert.ok(k in obj, `${name}: the types declare \`${k}\`, which the engine does not return`);
}

before(async () => {
  const tgz = fs.existsSync(DIST) && fs.readdirSync(DIST).find((f) => /^resnet-lrp-.*\.tgz$/.test(f));
  need(tgz ? path.join(DIST, tgz) : path.join(DIST, 'resnet-lrp-<version>.tgz'), 'pack it with ./build.sh package');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'resnet-lrp-package-'));
  fs.writeFileSync(path.join(scratch, 'package.json'), '{"name": "scratch", "private": true}\n');
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(DIST, tgz)], { cwd: scratch });
  const installed = path.join(scratch, 'node_modules', 'resnet-lrp');
  const pkg = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'resnet-lrp');
  assert.equal(pkg.types, './resnet_lrp.d.ts');
  assert.equal(pkg.exports['.'].default, './resnet_lrp.js');
  assert.match(pkg.license, /MIT/);
  for (const f of ['resnet_lrp.js', 'resnet_lrp_bg.wasm', 'resnet_lrp.d.ts', 'README.md', 'LICENSE-MIT']) {
    assert.ok(fs.existsSync(path.join(installed, f)), `the package holds ${f}`);
  }
  types = fs.readFileSync(path.join(installed, 'resnet_lrp.d.ts'), 'utf8');
  fs.writeFileSync(path.join(scratch, 'index.html'), PAGE);
  fs.writeFileSync(path.join(scratch, 'worker.js'), WORKER);
  h = await openPage('package', { mounts: { '/scratch/': scratch, '/fixtures/': FIXTURES } });
  await h.page.goto(`${h.server.url}scratch/index.html`);
});

after(async () => {
  await h?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

test('the .d.ts types the options and results, not `any`', () => {
  assert.match(types, /explain\(opts: ExplainOptions \| undefined\): ExplainSummary;/);
  assert.match(types, /evaluate\(opts: EvaluateOptions \| undefined, .*\): Evaluation;/);
  assert.match(types, /info\(\): ModelInfo;/);
  assert.match(types, /setImage\(.*\): Prediction;/);
  assert.match(types, /export function capabilities\(\): Capabilities;/);
  assert.doesNotMatch(types.split('export class Explainer')[1].split('export type InitInput')[0], /: any\b/);
});

test('a plain page imports the installed package and explains a test ResNet', async () => {
  const r = await h.page.evaluate(() => window.run('/fixtures/basic_bn.onnx'));
  conforms(r.summary, 'ExplainSummary');
  conforms(r.prediction, 'Prediction');
  conforms(r.info, 'ModelInfo');
  conforms(r.capabilities, 'Capabilities');
  conforms(r.evaluation, 'Evaluation');
  conforms(r.evaluation.insertion, 'Curve');
  for (const b of r.summary.blocks) conforms(b, 'BlockEntry');
  assert.ok(r.summary.conservationError < 1e-4, `conserves: ${r.summary.conservationError}`);
  assert.equal(r.mapLength, r.summary.width * r.summary.height);
  assert.equal(r.info.numClasses, 10);
  assert.match(r.bad, /class 1000000 is out of range/);
  // the names the types list are the engine's own
  const union = (name) => [...types.match(new RegExp(`export type ${name} =([^;]*);`))[1].matchAll(/"(\w+)"/g)].map((m) => m[1]);
  assert.deepEqual(union('MethodName'), r.capabilities.methods);
  assert.deepEqual(union('VariantName'), r.capabilities.variants);
  assert.deepEqual(union('CompositeName'), r.capabilities.composites);
});

test('a module worker imports it as the README shows', async () => {
  const r = await h.page.evaluate(() => window.runInWorker('/fixtures/bottleneck_bn.onnx'));
  conforms(r.summary, 'ExplainSummary');
  assert.equal(r.summary.conservationError, null, 'Grad-CAM is not meant to conserve');
  assert.equal(r.map.length ?? Object.keys(r.map).length, r.summary.width * r.summary.height);
});

test('no request left 127.0.0.1, and the page raised no uncaught errors', () => assertContained(h));
