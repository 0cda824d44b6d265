// Unit tests of the page's other pure modules (no browser): www/plot.js (the insertion and deletion
// plots as drawing operations), www/downloads.js (file names and the CSV), www/raster.js (display
// sizes, the colour bar, number formatting), www/protocol.js (the worker side of the envelope),
// www/methods.js (how the page names the engine's methods), www/settings.js (the settings in the
// address), www/zip.js (the "Download all" archive, read back with Python's zipfile).
//
//   node --test tests/e2e/modules.test.mjs

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { resolveNames, resolveResize } from '../../www/catalog.js';
import { csvField, evaluationCsv, explanationFiles, explanationStem } from '../../www/downloads.js';
import { baselineOptions, baselines, baselineText, isLrp } from '../../www/methods.js';
import { colormapColor } from '../../www/overlay.js';
import { curvePlot, curveSeries, dotPoints, MARGIN, plotLabel, plotSize } from '../../www/plot.js';
import { answerRequests, isTrap, STATUS, transferring } from '../../www/protocol.js';
import { colorbarRgba, displaySize, fmt, legendLabels, percentOf } from '../../www/raster.js';
import { parseSettings, writeSettings } from '../../www/settings.js';
import { crc32 } from '../../www/crc32.js';
import { zip } from '../../www/zip.js';

const COLORS = { text: '#000', muted: '#555', grid: '#ccc' };

const curve = (kept, probabilities, auc) => ({ kept, probabilities, auc });
const row = (key, current, extra = {}) => ({
  key,
  label: key,
  color: `#${key.length}${key.length}${key.length}`,
  current,
  options: { method: 'lrp', composite: 'conserving', variant: key, start: 'prob', quantize: 8, step: 500 },
  evaluation: {
    probability: 0.8,
    insertion: curve([0, 0.5, 1], [0.1, 0.6, 0.8], 0.5),
    deletion: curve([1, 0.5, 0], [0.8, 0.3, 0.05], 0.35),
  },
  ...extra,
});

test('plot: the deletion curve runs over the share of pixels deleted', () => {
  const [s] = curveSeries([row('latest', true)], 'deletion');
  assert.deepEqual(s.x, [0, 0.5, 1]);
  assert.deepEqual(s.y, [0.8, 0.3, 0.05]);
  const [i] = curveSeries([row('latest', true)], 'insertion');
  assert.deepEqual(i.x, [0, 0.5, 1]);
});

test('plot: axes map 0..1 into the margins; the reference line is at the full photo’s probability', () => {
  const { width, height } = plotSize(420);
  assert.deepEqual([width, height], [420, 294]);
  assert.deepEqual(plotSize(0), { width: 420, height: 294 });
  assert.equal(plotSize(100).width, 240);
  const series = curveSeries([row('latest', false), row('flows_skip', true)], 'insertion');
  const ops = curvePlot({ width, height, curve: 'insertion', series, reference: 0.8, colors: COLORS });
  const ph = height - MARGIN.top - MARGIN.bottom;
  const pw = width - MARGIN.left - MARGIN.right;
  const Y = (v) => MARGIN.top + (1 - v) * ph;
  const ref = ops.find((o) => o.op === 'line' && o.dash?.[0] === 2);
  assert.deepEqual(ref.points, [[MARGIN.left, Y(0.8)], [MARGIN.left + pw, Y(0.8)]]);
  const frame = ops.find((o) => o.op === 'rect');
  assert.deepEqual([frame.x, frame.y, frame.w, frame.h], [MARGIN.left, MARGIN.top, pw, ph]);
  assert.ok(ops.some((o) => o.op === 'text' && o.text === 'pixels inserted, most relevant first'));
  assert.equal(ops.filter((o) => o.op === 'text' && o.text.endsWith(' %')).length, 5);
  // the current method is drawn last, thicker
  const curves = ops.filter((o) => o.op === 'line' && o.width > 1);
  assert.deepEqual(curves.map((o) => o.color), [series[0].color, series[1].color]);
  assert.deepEqual(curves.map((o) => o.width), [1.5, 2.5]);
  assert.deepEqual(curves[1].points[2], [MARGIN.left + pw, Y(0.8)]);
  assert.ok(Math.abs(Y(0.8) - (MARGIN.top + 0.2 * ph)) < 1e-9);
  const dots = ops.filter((o) => o.op === 'dot');
  assert.equal(dots.length, 6);
  assert.deepEqual(dots.map((d) => d.r), [2, 2, 2, 3, 3, 3]);
});

test('plot: dots mark distinct points, or only the last one when there are many', () => {
  assert.deepEqual(dotPoints([0, 0, 0.5, 0.5, 1], [0.1, 0.1, 0.4, 0.4, 0.9]), [[0, 0.1], [0.5, 0.4], [1, 0.9]]);
  const x = Array.from({ length: 50 }, (_, i) => i / 49);
  assert.deepEqual(dotPoints(x, x), [[1, 1]]);
  assert.equal(dotPoints(x.slice(0, 40), x.slice(0, 40)).length, 40);
});

test('plot: the accessible name lists the areas', () => {
  assert.equal(
    plotLabel('deletion', [row('latest', true)]),
    'Deletion curves, probability of the class against the fraction of pixels deleted; areas: latest 0.350',
  );
});

test('downloads: an explanation’s files are named after photo, class and method', () => {
  const lrp = { method: 'lrp', composite: 'conserving', variant: 'flows_skip' };
  assert.equal(explanationStem('chelsea.png', 'tabby, tabby cat', lrp), 'chelsea.tabby_tabby_cat.conserving.flows_skip');
  assert.equal(explanationStem('a.b.jpg', 'class 3', { method: 'gradient' }), 'a.b.class_3.gradient_x_input');
  assert.equal(explanationStem('a.png', 'cat', { method: 'scorecam' }), 'a.cat.scorecam');
  const files = explanationFiles('x');
  assert.deepEqual(files.overlay, { name: 'x.overlay.png', type: 'image/png' });
  assert.equal(files.heatmap.name, 'x.heatmap.png');
  assert.equal(files.npy.name, 'x.relevance.npy');
});

test('downloads: CSV fields are quoted when they must be', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField(0.5), '0.5');
});

test('downloads: the evaluation CSV has one line per image of each curve', () => {
  const r = row('latest', true);
  const random = row('random', false, { options: { method: 'random', seed: 0, quantize: 0, step: 100 } });
  const data = { model: 'm', image: 'cat.photo.png', target: 281, rows: [r, random].map((x) => ({ key: x.key, options: x.options, ...x.evaluation })) };
  const { name, text } = evaluationCsv(data, 'tabby, cat');
  assert.equal(name, 'cat.photo.tabby_cat.insertion_deletion.csv');
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 1 + 2 * 2 * 3);
  assert.equal(lines[0].split(',').length, 14);
  assert.equal(lines[1], 'm,cat.photo.png,281,"tabby, cat",latest,conserving,prob,8,500,insertion,0.5,0,0,0.1');
  // deletion: the share of pixels deleted, 1 − kept
  assert.equal(lines[4], 'm,cat.photo.png,281,"tabby, cat",latest,conserving,prob,8,500,deletion,0.35,0,0,0.8');
  assert.equal(lines[12], 'm,cat.photo.png,281,"tabby, cat",random,,,0,100,deletion,0.35,2,1,0.05');
  assert.ok(text.endsWith('\n'));
});

test('raster: display sizes keep the aspect, cap at 512 and enlarge small crops up to twice', () => {
  assert.deepEqual(displaySize(1024, 768), [512, 384]);
  assert.deepEqual(displaySize(300, 200), [300, 200]);
  assert.deepEqual(displaySize(64, 64), [128, 128]);
  assert.deepEqual(displaySize(200, 100), [256, 128]);
  assert.deepEqual(displaySize(1, 1000), [1, 512]);
});

test('raster: the colour bar is the colormap, column by column', () => {
  const rgba = colorbarRgba('jet', 256, 2);
  assert.equal(rgba.length, 256 * 2 * 4);
  for (const x of [0, 100, 255]) {
    const [r, g, b] = colormapColor('jet', x / 256);
    assert.deepEqual([...rgba.subarray(x * 4, x * 4 + 4)], [r, g, b, 255]);
    assert.deepEqual([...rgba.subarray((256 + x) * 4, (256 + x) * 4 + 4)], [r, g, b, 255]);
  }
  const narrow = colorbarRgba('bwr', 128, 1);
  assert.deepEqual([...narrow.subarray(127 * 4, 128 * 4)], [...colormapColor('bwr', 254 / 256), 255]);
});

test('raster: legend labels and number formats', () => {
  assert.deepEqual(legendLabels(0.0123, 'signed'), { min: '−1.2e-2', max: '+1.2e-2' });
  assert.deepEqual(legendLabels(0.0123, 'positive'), { min: '0', max: '+1.2e-2' });
  assert.deepEqual(legendLabels(2, 'absolute'), { min: '0', max: '|R| 2.0e+0' });
  assert.deepEqual(legendLabels(undefined, 'signed'), { min: '−0', max: '+0' });
  assert.equal(fmt(0), '0');
  assert.equal(fmt(0.5), '0.500000');
  assert.equal(fmt(-1234.5678), '-1234.57');
  assert.equal(fmt(1e-5), '1.000e-5');
  assert.equal(fmt(12340), '1.234e+4');
  assert.equal(percentOf(1, 4), '25.0 %');
  assert.equal(percentOf(1, 0), '—');
});

/** A fake worker global: what answerRequests posts, in order. */
function fakeScope() {
  const posted = [];
  return { posted, postMessage: (msg, transfer = []) => posted.push({ msg, transfer }) };
}

test('protocol: progress, then one complete answer, in the envelope', async () => {
  const scope = fakeScope();
  const buf = new Float32Array(2);
  answerRequests(scope, {
    async twice({ n }, progress) {
      progress({ step: 1 });
      return transferring({ value: 2 * n, buf }, [buf.buffer]);
    },
    async plain() {
      return { ok: true };
    },
  });
  await scope.onmessage({ data: { id: 7, type: 'twice', n: 21 } });
  await scope.onmessage({ data: { id: 8, type: 'plain' } });
  assert.deepEqual(scope.posted.map((p) => p.msg), [
    { id: 7, status: STATUS.progress, step: 1 },
    { id: 7, status: STATUS.complete, value: 42, buf },
    { id: 8, status: STATUS.complete, ok: true },
  ]);
  assert.deepEqual(scope.posted[1].transfer, [buf.buffer]);
});

test('protocol: errors name the request, traps say so, `before` runs first', async () => {
  const scope = fakeScope();
  const order = [];
  answerRequests(
    scope,
    {
      async boom() {
        order.push('boom');
        throw new Error('RuntimeError: unreachable');
      },
      async refuse() {
        throw 'no model loaded'; // wasm-bindgen throws strings too
      },
    },
    { before: async () => order.push('before') },
  );
  await scope.onmessage({ data: { id: 1, type: 'boom' } });
  await scope.onmessage({ data: { id: 2, type: 'refuse' } });
  await scope.onmessage({ data: { id: 3, type: 'toString' } });
  assert.deepEqual(order, ['before', 'boom', 'before', 'before']);
  const msgs = scope.posted.map((p) => p.msg);
  assert.deepEqual(msgs[0], { id: 1, status: 'error', error: 'RuntimeError: unreachable', trap: true });
  assert.deepEqual(msgs[1], { id: 2, status: 'error', error: 'no model loaded', trap: false });
  assert.deepEqual(msgs[2], { id: 3, status: 'error', error: 'unknown request `toString`', trap: false });
  assert.equal(isTrap(new WebAssembly.RuntimeError('x')), true);
});

test('methods: the baselines are the engine’s methods that are not splitting variants, in its order', () => {
  const variants = ['flows_skip', 'flows_skip_simple', 'latest', 'simple', 'conventional'];
  const methods = [...variants, 'gradient', 'ig', 'guided_backprop', 'gradcam', 'scorecam', 'random'];
  assert.deepEqual(baselines(methods, variants), ['gradient', 'ig', 'guided_backprop', 'gradcam', 'scorecam', 'random']);
  assert.ok(isLrp('lrp', variants) && isLrp('latest', variants) && !isLrp('gradcam', variants));
  // the cost the page states comes from the engine's defaults
  assert.match(baselineText('scorecam', { scoreCamChannels: 12 }).description, /12 channels/);
  assert.match(baselineText('ig', { igSteps: 7 }).description, /7 Gauss/);
  assert.equal(baselineText('unknown_method').label, 'unknown_method');
  const base = { target: 3, start: 'logit', quantize: 8, method: 'lrp', composite: 'conserving', variant: 'latest' };
  assert.deepEqual(baselineOptions('ig', base), { target: 3, start: 'logit', quantize: 8, method: 'ig' });
  assert.deepEqual(baselineOptions('gradcam', { ...base, cell: 2 }), { target: 3, start: 'logit', quantize: 8, cell: 2, method: 'gradcam' });
});

test('catalog: class names from the manifest, else from the model file, else ImageNet for 1000 outputs', () => {
  const info = (numClasses, classes = null) => ({ numClasses, metadata: { classes, preprocess: null, resize: null } });
  const own = ['a', 'b'];
  const manifest = { source: 'manifest', entry: { classes: ['x', 'y'] } };
  assert.deepEqual(resolveNames(manifest, info(2, own), null).names, ['x', 'y']);
  const fromFile = { source: 'manifest', entry: { classes: 'metadata' } };
  assert.deepEqual(resolveNames(fromFile, info(2, own), null).names, own);
  assert.equal(resolveNames(fromFile, info(3, own), null).names, null, 'names that do not fit the outputs are not used');
  const imagenet = Array.from({ length: 1000 }, (_, i) => `n${i}`);
  const file = { source: 'file' };
  assert.equal(resolveNames(file, info(1000), imagenet).names, imagenet);
  assert.deepEqual(resolveNames(file, info(2, own), imagenet).names, own);
});

test('catalog: the crop from the manifest, else from the model file, else the shorter side', () => {
  const info = (resize) => ({ input: { height: 28 }, metadata: { resize } });
  const file = { source: 'file', resize: { mode: 'shorter_side', size: null } };
  assert.deepEqual(resolveResize(file, info('full')), { mode: 'full', size: 28 });
  assert.deepEqual(resolveResize(file, info(null)), { mode: 'shorter_side', size: 32 });
  const manifest = { source: 'manifest', resize: { mode: 'stretch', size: 40 } };
  assert.deepEqual(resolveResize(manifest, info('full')), { mode: 'stretch', size: 40 });
});

test('zip: CRC-32 has its check value; Python reads the archive back, names, bytes and dates', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926); // the CRC-32/ISO-HDLC check value
  assert.equal(crc32(new Uint8Array(0)), 0);
  const bin = Uint8Array.from({ length: 70000 }, (_, i) => (i * 7919) & 0xff);
  const bytes = zip([{ name: 'a.csv', data: 'x,y\n1,2\n' }, { name: 'überall/b.bin', data: bin }, { name: 'empty', data: '' }], new Date(2024, 5, 7, 8, 9, 10));
  const script = `
import hashlib, json, sys, zipfile, io
z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))
print(json.dumps({"bad": z.testzip(), "names": z.namelist(), "csv": z.read("a.csv").decode(), "sha": hashlib.sha256(z.read("überall/b.bin")).hexdigest(),
  "dates": [i.date_time for i in z.infolist()], "methods": [i.compress_type for i in z.infolist()], "empty": len(z.read("empty"))}))
`;
  const out = JSON.parse(execFileSync('python3', ['-c', script], { input: Buffer.from(bytes), encoding: 'utf8' }));
  assert.equal(out.bad, null);
  assert.deepEqual(out.names, ['a.csv', 'überall/b.bin', 'empty']);
  assert.equal(out.csv, 'x,y\n1,2\n');
  assert.equal(out.sha, createHash('sha256').update(bin).digest('hex'));
  assert.deepEqual(out.dates[0], [2024, 6, 7, 8, 9, 10]);
  assert.deepEqual(out.methods, [0, 0, 0], 'stored');
  assert.equal(out.empty, 0);
});

const CHOICES = {
  models: ['fashion_resnet', 'fixtures/basic_bn'],
  methods: ['lrp', 'gradient', 'gradcam'],
  variants: ['flows_skip', 'latest'],
  composites: ['conserving', 'reference'],
  colormaps: ['jet', 'seismic'],
  signs: ['positive', 'signed', 'absolute'],
  levels: 8,
};

test('settings: good values are read, bad ones are named and left out', () => {
  const good = parseSettings(new URLSearchParams('model=basic_bn&method=gradcam&variant=latest&composite=reference&target=281&colormap=seismic&sign=signed&quantize=8&cell=4&photo=x.png'), CHOICES);
  assert.deepEqual(good.values, { model: 'fixtures/basic_bn', method: 'gradcam', variant: 'latest', composite: 'reference', target: 281, colormap: 'seismic', sign: 'signed', quantize: 8, cell: 4 });
  assert.deepEqual(good.problems, []);
  assert.deepEqual(parseSettings(new URLSearchParams('quantize=0'), CHOICES).values, { quantize: 0 });
  const bad = parseSettings(new URLSearchParams('model=x&method=lrp2&target=-1&quantize=4&sign=&cell=3'), CHOICES);
  assert.deepEqual(bad.values, {});
  assert.deepEqual(bad.problems.map((p) => p.param), ['model', 'method', 'target', 'sign', 'quantize', 'cell']);
  assert.match(bad.problems[5].text, /^cell=“3” is not one of 1, 2, 4/);
  assert.match(bad.problems[0].text, /^model=“x” is not one of fashion_resnet, fixtures\/basic_bn$/);
  assert.match(bad.problems[4].text, /quantize=“4” is not 0 \(off\) or 8 \(levels\)/);
});

test('settings: writing replaces the settings and keeps every other parameter', () => {
  assert.equal(writeSettings('?photo=a.png&model=x&threads=2', { model: 'fixtures/basic_bn', method: 'lrp', target: null, quantize: 0 }), '?photo=a.png&model=fixtures%2Fbasic_bn&threads=2&method=lrp&quantize=0');
  assert.equal(writeSettings('?target=3', {}), '');
  const back = parseSettings(new URLSearchParams(writeSettings('', { model: 'fashion_resnet', sign: 'absolute', target: 0 })), CHOICES);
  assert.deepEqual(back.values, { model: 'fashion_resnet', target: 0, sign: 'absolute' });
});
