// Browser benchmark: our engine against onnxruntime-web, in headless Chromium, one model at a time.
//
//   ./build.sh bench [--relaxed] [--threads] [options]    builds the release wasm, then runs this
//   node tests/bench/browser/bench.mjs --pkg DIR [--pkg-relaxed DIR] [--pkg-threads DIR] [options]
//
// Options: --runs N (10) timed runs after --warmup N (2); --loads N (3) model loads;
//   --models resnet18,resnet50,open_nsfw (also: resnet101, wide_resnet50_2, from `gen_fixtures.py --large`);
//   --cold-runs N (3) fresh-profile loads of the real page, timed per stage
//   (www/?model=open_nsfw&photo=chelsea.png) until its first heatmap, 0 to skip; --page-models a,b: then, that
//   many times each, the real page with each of these models picked in its file input, timed from the pick to
//   the model's first heatmap, with the engine's memory; --no-ort;
//   --profile NAME (recorded only); --out FILE (tests/bench/browser/out/results.json); --threads N: the pool
//   of the threaded build (default: the number of cores); --ort-threads N: with the threaded build, also
//   onnxruntime-web on N threads (default: --threads; 0 skips it).
//
// Every model gets a fresh Chromium profile and one page (bench.html) that loads every engine: our wasm
// (`--pkg`, and `--pkg-relaxed` when given) and onnxruntime-web's wasm execution provider with one thread,
// served from node_modules, on the main thread; the threaded build (`--pkg-threads`) in a worker with its
// pool. With a threaded build the pages are served cross-origin isolated (COOP/COEP), as
// `./build.sh serve` serves the demo, and onnxruntime-web also runs with `--ort-threads` threads in a
// worker of its own (ort-worker.js). One run times, in turn, our
// setInput (forward pass keeping activations) and explain (LRP of the top-1 class, `conserving`,
// `flows_skip`) for each of our builds, then onnxruntime's session.run (each configuration), on the same
// input tensor.
// Prints a table (median and min–max) and writes every raw time to the JSON file.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

import { CHROMIUM_ARGS } from '../../e2e/harness.mjs';
import { serve } from '../../e2e/serve.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..', '..');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ORT_DIST = path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');

const MODELS = {
  resnet18: { name: 'ResNet-18 (224², random weights)', file: 'tests/fixtures/big/resnet18.onnx', url: '/models/big/resnet18.onnx' },
  resnet50: { name: 'ResNet-50 (224², random weights)', file: 'tests/fixtures/big/resnet50.onnx', url: '/models/big/resnet50.onnx' },
  open_nsfw: { name: 'open_nsfw ResNet-50-1by2 (NHWC)', file: 'www/models/open_nsfw.onnx', url: '/models/www/open_nsfw.onnx' },
  // not in the default list: 178 and 275 MB, written by `gen_fixtures.py --large`
  resnet101: { name: 'ResNet-101 (224², random weights)', file: 'tests/fixtures/big/resnet101.onnx', url: '/models/big/resnet101.onnx', large: true },
  wide_resnet50_2: { name: 'wide_resnet50_2 (224², random weights)', file: 'tests/fixtures/big/wide_resnet50_2.onnx', url: '/models/big/wide_resnet50_2.onnx', large: true },
};

function parseArgs(argv) {
  const o = { runs: 10, warmup: 2, loads: 3, coldRuns: 3, pageModels: [], ort: true, profile: 'release', threads: os.cpus().length };
  o.models = Object.keys(MODELS).filter((k) => !MODELS[k].large);
  o.out = path.join(HERE, 'out', 'results.json');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--pkg') o.pkg = path.resolve(val());
    else if (a === '--pkg-relaxed') o.pkgRelaxed = path.resolve(val());
    else if (a === '--pkg-threads') o.pkgThreads = path.resolve(val());
    else if (a === '--threads') o.threads = Number(val());
    else if (a === '--ort-threads') o.ortThreads = Number(val());
    else if (a === '--runs') o.runs = Number(val());
    else if (a === '--warmup') o.warmup = Number(val());
    else if (a === '--loads') o.loads = Number(val());
    else if (a === '--cold-runs') o.coldRuns = Number(val());
    else if (a === '--models') o.models = val().split(',').filter(Boolean);
    else if (a === '--page-models') o.pageModels = val().split(',').filter(Boolean);
    else if (a === '--profile') o.profile = val();
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--no-ort') o.ort = false;
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.pkg) throw new Error('--pkg DIR (a wasm-bindgen --target web output) is required');
  for (const m of [...o.models, ...o.pageModels]) if (!MODELS[m]) throw new Error(`unknown model ${m}: use ${Object.keys(MODELS).join(', ')}`);
  if (!(o.runs >= 1 && o.warmup >= 0 && o.loads >= 1 && o.coldRuns >= 0)) throw new Error('bad --runs/--warmup/--loads/--cold-runs');
  if (!(Number.isInteger(o.threads) && o.threads >= 1)) throw new Error('bad --threads');
  o.ortThreads ??= o.threads;
  if (!(Number.isInteger(o.ortThreads) && o.ortThreads >= 0)) throw new Error('bad --ort-threads');
  // its threads need the isolated page, which is served for the threaded build only
  if (!o.pkgThreads || !o.ort) o.ortThreads = 0;
  return o;
}

function stats(values) {
  if (!values?.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const q = (p) => {
    const i = (s.length - 1) * p;
    const lo = Math.floor(i);
    return s[lo] + (s[Math.ceil(i)] - s[lo]) * (i - lo);
  };
  return { n: s.length, median: q(0.5), min: s[0], max: s.at(-1), q1: q(0.25), q3: q(0.75) };
}

function size(file) {
  const bytes = fs.readFileSync(file);
  return { file: path.relative(ROOT, file), raw: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length };
}

function chromiumVersion() {
  try {
    return execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function cpuModel() {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? null;
  } catch {
    return null;
  }
}

function gitRevision() {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

async function launch(chromium) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnet-lrp-bench-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs in the page before its scripts: when each request to the engine's worker was posted and answered
 * (the page's stages), and when the first heatmap was drawn (`__firstHeatmap`). */
function recordStages() {
  window.__stages = [];
  const Worker = window.Worker;
  window.Worker = class extends Worker {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        const s = window.__stages.find((x) => x.id === e.data?.id);
        if (s && e.data.status !== 'progress') s.done = performance.now();
      });
    }
    postMessage(msg, transfer) {
      if (msg && msg.id !== undefined) window.__stages.push({ id: msg.id, type: msg.type, posted: performance.now() });
      super.postMessage(msg, transfer);
    }
  };
  let value;
  Object.defineProperty(window, '__lastExplain', {
    configurable: true,
    get: () => value,
    set: (v) => {
      window.__firstHeatmap ??= performance.now();
      value = v;
    },
  });
}

/** Serves www/ with the benchmark's builds as pkg/, pkg-relaxed/ and pkg-threads/ (none where not given:
 * www/pkg-relaxed and www/pkg-threads are not used), cross-origin isolated when there is a threaded build,
 * so that the page loads the one it picks, as it would when shipped. Null when the page's assets are missing. */
async function pageServer({ pkg, pkgRelaxed, pkgThreads }) {
  const www = path.join(ROOT, 'www');
  if (!fs.existsSync(path.join(www, 'models', 'open_nsfw.onnx')) || !fs.existsSync(path.join(www, 'photos', 'chelsea.png'))) return null;
  const none = path.join(os.tmpdir(), 'resnet-lrp-bench-no-such-build'); // never created: 404
  return serve({
    root: www,
    mounts: { '/pkg/': pkg, '/pkg-relaxed/': pkgRelaxed ?? none, '/pkg-threads/': pkgThreads ?? none, '/models/fixtures/': path.join(ROOT, 'tests', 'fixtures') },
    isolated: Boolean(pkgThreads),
  });
}

const pageInfo = ({ pkg, pkgRelaxed, pkgThreads, threads }) => ({
  url: `?model=open_nsfw&photo=chelsea.png${pkgThreads ? `&threads=${threads}` : ''}`,
  pkg: path.relative(ROOT, pkg),
  pkgRelaxed: pkgRelaxed ? path.relative(ROOT, pkgRelaxed) : null,
  pkgThreads: pkgThreads ? path.relative(ROOT, pkgThreads) : null,
});

/** Opens the real page in a fresh profile and waits until it is ready (the page's own errors are collected). */
async function openPage(chromium, server, url) {
  const b = await launch(chromium);
  b.errors = [];
  b.page.on('pageerror', (e) => b.errors.push(e.message));
  await b.page.addInitScript(recordStages);
  await b.page.goto(`${server.url}${url}`);
  await b.page.waitForFunction(() => window.__firstHeatmap !== undefined || document.body.dataset.ready === 'true', null, {
    timeout: 600_000,
    polling: 50,
  });
  return b;
}

/** The page engine's wasm memory in bytes (its peak so far). */
const pageMemory = (page) => page.evaluate(async () => (await window.__lrp.state.engine.request('memory')).bytes);

/** Per load: stats of each engine request's time from posted to answered, and of the first request's start. */
function stageStats(stages, types) {
  const per = (type) => stats(stages.map((l) => l.find((x) => x.type === type)).filter(Boolean).map((x) => x.done - x.posted));
  const out = { start: stats(stages.map((l) => l[0]?.posted).filter((v) => v !== undefined)) };
  for (const type of types) out[type] = per(type);
  return out;
}

/**
 * Cold start of the real page: fresh profile, navigation start → first heatmap drawn, open_nsfw and chelsea.png.
 */
async function coldPage(chromium, o, runs) {
  const server = await pageServer(o);
  if (!server) return { error: 'www/models or www/photos missing (./build.sh assets)' };
  const times = [];
  const stages = [];
  const out = pageInfo(o);
  try {
    for (let i = 0; i < runs; i++) {
      const b = await openPage(chromium, server, out.url);
      try {
        const ms = await b.page.evaluate(() => window.__firstHeatmap);
        stages.push(await b.page.evaluate(() => window.__stages.filter((x) => x.done !== undefined)));
        out.engine ??= await b.page.evaluate(() => window.__lrp?.state?.engineInfo?.engine ?? null);
        if (ms === undefined) throw new Error(`the page became ready without a heatmap ${b.errors.join('; ')}`);
        times.push(ms);
        console.log(`cold page run ${i + 1}: first heatmap after ${ms.toFixed(0)} ms`);
      } finally {
        await b.close();
      }
    }
  } catch (e) {
    out.error = e.message;
  } finally {
    await server.close();
  }
  out.times = times;
  out.stats = stats(times);
  out.stages = stages;
  out.stageStats = stageStats(stages, ['init', 'load', 'image', 'explain']);
  return out;
}

/**
 * A large model opened on the real page as a user opens a model of their own: the page starts as the cold
 * page does (open_nsfw, chelsea.png), then the model file is picked in its file input. Timed from the pick
 * (the input's change event) to the new model's first heatmap of the photo, with the page's requests to
 * its engine after the pick (load: the model; image: the first forward pass; explain: the first LRP) and
 * the engine's wasm memory before the pick and after the heatmap (its peak).
 */
async function pickedModel(chromium, o, key, runs) {
  const server = await pageServer(o);
  const file = path.join(ROOT, MODELS[key].file);
  const out = { ...pageInfo(o), model: key, file: MODELS[key].file, bytes: fs.existsSync(file) ? fs.statSync(file).size : null };
  if (!server) return { ...out, error: 'www/models or www/photos missing (./build.sh assets)' };
  const times = [];
  const stages = [];
  out.memory = [];
  try {
    if (out.bytes === null) throw new Error(`missing ${MODELS[key].file}`);
    for (let i = 0; i < runs; i++) {
      const b = await openPage(chromium, server, out.url);
      try {
        out.engine ??= await b.page.evaluate(() => window.__lrp?.state?.engineInfo?.engine ?? null);
        const before = await pageMemory(b.page);
        await b.page.evaluate(() => {
          window.__seqBefore = window.__lastExplain?.seq ?? 0;
          document.getElementById('model-file').addEventListener('change', () => (window.__picked = performance.now()), { capture: true });
        });
        await b.page.setInputFiles('[data-testid=model-file]', file);
        // the new model's heatmap, or the page's error (an alert in its notices)
        await b.page.waitForFunction(
          () =>
            (window.__lastExplain?.seq > window.__seqBefore && window.__lastExplain.model.startsWith('file:')) ||
            document.querySelector('#notices [role=alert]') !== null,
          null,
          { timeout: 600_000, polling: 50 },
        );
        const alert = await b.page.evaluate(() => document.querySelector('#notices [role=alert] .text')?.textContent ?? null);
        if (alert) throw new Error(`the page refused ${path.basename(file)}: ${alert} ${b.errors.join('; ')}`);
        const r = await b.page.evaluate(() => ({
          ms: performance.now() - window.__picked,
          stages: window.__stages.filter((x) => x.done !== undefined && x.posted >= window.__picked).map((x) => ({ ...x, posted: x.posted - window.__picked, done: x.done - window.__picked })),
          conservationError: window.__lastExplain.summary.conservationError ?? null,
        }));
        const after = await pageMemory(b.page);
        times.push(r.ms);
        stages.push(r.stages);
        out.memory.push({ beforePick: before, afterHeatmap: after });
        out.conservationError = r.conservationError;
        console.log(`${key} picked on the page, run ${i + 1}: heatmap after ${r.ms.toFixed(0)} ms; engine memory ${mb(before)} → ${mb(after)} MiB`);
      } finally {
        await b.close();
      }
    }
  } catch (e) {
    out.error = e.message;
    console.log(`${key} on the page: ${e.message}`);
  } finally {
    await server.close();
  }
  out.times = times;
  out.stats = stats(times);
  out.stages = stages;
  out.stageStats = stageStats(stages, ['load', 'image', 'explain']);
  return out;
}

const fmt = (s, digits = 0) => (s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : '–');
const mb = (b) => (b ? `${(b / 2 ** 20).toFixed(0)}` : '–');
const ratio = (a, b) => (a && b ? `${(a.median / b.median).toFixed(2)}×` : '–');

/** An engine's name in the tables: the threaded build with the size of its pool. */
const label = (name, e) => (e.threads > 1 ? `${name} ×${e.threads}` : name);

/** A row's engine: ours with the build's name, onnxruntime with its version and, in its worker, its threads. */
function engineName(name, e, version = true) {
  if (e.kind !== 'ort') return `ours (${label(name, e)})`;
  const ort = `onnxruntime-web${version && e.version ? ` ${e.version}` : ''}`;
  return name === 'ort' ? ort : `${ort} ×${e.threads ?? '?'}`;
}

function table(results) {
  // with onnxruntime on threads (the threaded build's run), one more column: every forward pass against it
  const withThreads = results.models.some((m) => m.engines['ort-threads']);
  const head = ['model', 'engine', 'load ms', 'forward ms', 'LRP ms', 'explain ms', 'explain / forward', 'forward / ort', 'explain / ort forward'];
  if (withThreads) head.push(`forward / ort ×${results.ortThreads}`);
  head.push('wasm memory MiB');
  const lines = [`| ${head.join(' | ')} |`, `|${'---|'.repeat(head.length)}`];
  for (const m of results.models) {
    const ort = m.engines.ort;
    const ortThreads = m.engines['ort-threads'];
    for (const [name, e] of Object.entries(m.engines)) {
      const s = e.stats ?? {};
      lines.push(
        `| ${m.name} | ${engineName(name, e)} | ${fmt(s.load)} | ${fmt(s.forward)} | ` +
          `${fmt(s.lrp)} | ${fmt(s.explain)} | ${ratio(s.explain, s.forward)} | ` +
          `${name === 'ort' ? '1.00×' : ratio(s.forward, ort?.stats?.forward)} | ${ratio(s.explain, ort?.stats?.forward)} | ` +
          `${withThreads ? `${ratio(s.forward, ortThreads?.stats?.forward)} | ` : ''}${mb(e.memory)} |`,
      );
    }
    for (const [name, err] of Object.entries(m.errors ?? {})) lines.push(`| ${m.name} | ${name} | failed: ${err} |${' |'.repeat(head.length - 3)}`);
  }
  return lines.join('\n');
}

/** Start-up costs: engine init (ours: wasm compile + instantiate; ort: its first session, which
 * includes that), the first run after loading, and memory after loading. */
function coldTable(results) {
  const lines = [
    '| model | engine | init ms | first forward ms | first LRP ms | memory after load MiB | memory after first explanation MiB |',
    '|---|---|---|---|---|---|---|',
  ];
  const n = (v) => (v === undefined || v === null ? '–' : v.toFixed(0));
  for (const m of results.models) {
    for (const [name, e] of Object.entries(m.engines)) {
      const init = e.kind === 'ort' ? `${n(e.firstLoad)} (first session)` : n(e.init);
      lines.push(`| ${m.name} | ${engineName(name, e, false)} | ${init} | ${n(e.first?.forward)} | ${n(e.first?.lrp)} | ${mb(e.memoryAfterLoad)} | ${mb(e.memoryAfterFirst)} |`);
    }
  }
  return lines.join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
  if (o.ort && !fs.existsSync(path.join(ORT_DIST, 'ort.wasm.min.mjs'))) throw new Error('onnxruntime-web missing: npm ci');
  const { chromium } = await import('playwright-core');
  const ours = [{ name: 'simd128', dir: o.pkg }];
  if (o.pkgRelaxed) ours.push({ name: 'relaxed-simd', dir: o.pkgRelaxed });
  if (o.pkgThreads) ours.push({ name: 'threads', dir: o.pkgThreads, threads: o.threads });
  for (const b of ours) if (!fs.existsSync(path.join(b.dir, 'resnet_lrp.js'))) throw new Error(`no resnet_lrp.js in ${b.dir}`);

  const mounts = { '/models/big/': path.join(ROOT, 'tests', 'fixtures', 'big'), '/models/www/': path.join(ROOT, 'www', 'models'), '/ort/': ORT_DIST, '/www/': path.join(ROOT, 'www') };
  for (const b of ours) mounts[`/pkg/${b.name}/`] = b.dir;
  const server = await serve({ root: HERE, mounts, isolated: Boolean(o.pkgThreads) });

  const results = {
    date: new Date().toISOString(),
    chromium: chromiumVersion(),
    cpu: cpuModel(),
    cores: os.cpus().length,
    node: process.version,
    loadAverage: { start: os.loadavg() },
    revision: gitRevision(),
    profile: o.profile,
    isolated: Boolean(o.pkgThreads),
    threads: o.pkgThreads ? o.threads : 1,
    ortThreads: o.ortThreads,
    runs: o.runs,
    warmup: o.warmup,
    loads: o.loads,
    explainOptions: { composite: 'conserving', variant: 'flows_skip' },
    wasm: {},
    models: [],
  };
  console.log(`${results.chromium ?? 'chromium ?'} · ${results.cpu} × ${results.cores} · profile ${o.profile} · ${o.runs} runs after ${o.warmup} warm-up`);
  for (const b of ours) results.wasm[b.name] = size(path.join(b.dir, 'resnet_lrp_bg.wasm'));

  try {
    for (const key of o.models) {
      const m = MODELS[key];
      const file = path.join(ROOT, m.file);
      if (!fs.existsSync(file)) {
        console.log(`skip ${key}: no ${m.file}`);
        results.models.push({ key, name: m.name, file: m.file, errors: { all: `missing ${m.file}` }, engines: {} });
        continue;
      }
      console.log(`\n== ${m.name}`);
      const b = await launch(chromium);
      const pageErrors = [];
      b.page.on('pageerror', (e) => pageErrors.push(e.message));
      b.page.on('console', (msg) => console.log(`  ${msg.text()}`));
      let r;
      try {
        await b.page.goto(`${server.url}bench.html`);
        await b.page.waitForFunction(() => window.bench !== undefined, null, { timeout: 60_000 });
        r = await b.page.evaluate((cfg) => window.bench.run(cfg), {
          model: m.url,
          ours: ours.map((x) => ({ name: x.name, url: `/pkg/${x.name}/resnet_lrp.js`, threads: x.threads ?? 0 })),
          ort: o.ort ? { url: '/ort/ort.wasm.min.mjs', wasmPaths: '/ort/' } : null,
          ortThreads: o.ortThreads,
          runs: o.runs,
          warmup: o.warmup,
          loads: o.loads,
          explainOptions: results.explainOptions,
        });
      } catch (e) {
        r = { engines: {}, errors: { page: e.message } };
      } finally {
        await b.close();
      }
      for (const e of Object.values(r.engines)) {
        e.stats = { load: stats(e.load), forward: stats(e.forward), lrp: stats(e.lrp), explain: stats(e.explain) };
      }
      if (pageErrors.length) r.pageErrors = pageErrors;
      results.models.push({ key, name: m.name, file: m.file, ...r });
    }
    // onnxruntime's wasm: whichever file the page fetched
    const ortWasm = [...new Set(server.log.filter((l) => /^GET \/ort\/\S+\.wasm /.test(l)).map((l) => l.split(' ')[1]))];
    for (const u of ortWasm) results.wasm[`ort:${path.basename(u)}`] = size(path.join(ORT_DIST, path.basename(u)));
  } finally {
    await server.close();
  }

  if (o.coldRuns > 0) {
    console.log('\n== cold page load → first heatmap (www/, open_nsfw, chelsea.png)');
    results.coldPage = await coldPage(chromium, o, o.coldRuns);
    if (results.coldPage.error) console.log(`cold page: ${results.coldPage.error}`);
  }
  if (o.pageModels.length) {
    console.log(`\n== models picked on the real page (www/${pageInfo(o).url}, then the model's file)`);
    results.pickedModels = [];
    for (const key of o.pageModels) results.pickedModels.push(await pickedModel(chromium, o, key, Math.max(1, o.coldRuns)));
  }

  results.loadAverage.end = os.loadavg();
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, `${JSON.stringify(results, null, 1)}\n`);

  const load = (l) => l.map((v) => v.toFixed(1)).join(' ');
  console.log(`\n${results.date} · ${results.chromium} · ${results.cpu} × ${results.cores} · ${o.profile} build · median (min–max) of ${o.runs} runs`);
  console.log(`load average at start ${load(results.loadAverage.start)}, at end ${load(results.loadAverage.end)}\n`);
  console.log(table(results));
  console.log(`\n${coldTable(results)}`);
  console.log('\n| wasm | raw bytes | gzip -9 bytes |\n|---|---|---|');
  for (const [name, s] of Object.entries(results.wasm)) console.log(`| ${name} (${s.file}) | ${s.raw} | ${s.gzip} |`);
  if (results.coldPage?.stats) {
    const c = results.coldPage;
    console.log(`\ncold page load → first heatmap (open_nsfw, chelsea.png, ${c.engine ?? 'pkg'}/): ${fmt(c.stats)} ms over ${c.stats.n} fresh profiles`);
    const st = c.stageStats ?? {};
    console.log(
      `  stages, ms: worker's first request at ${fmt(st.start)}; init (engine compile) ${fmt(st.init)}; ` +
        `load (model) ${fmt(st.load)}; image (first forward) ${fmt(st.image)}; explain (first LRP) ${fmt(st.explain)}`,
    );
  }
  for (const p of results.pickedModels ?? []) {
    const st = p.stageStats ?? {};
    const mem = p.memory.map((m) => `${mb(m.beforePick)} → ${mb(m.afterHeatmap)}`).join(', ');
    console.log(
      `\n${p.model} picked on the page (${p.engine ?? 'pkg'}/): ${p.error ? `failed: ${p.error}` : `pick → heatmap ${fmt(p.stats)} ms`}; ` +
        `load ${fmt(st.load)}, first forward ${fmt(st.image)}, first LRP ${fmt(st.explain)} ms; engine memory ${mem || '–'} MiB`,
    );
  }
  for (const m of results.models) {
    const ortThreads = m.engines['ort-threads'];
    const against = [['ort', m.agreement], [`ort ×${ortThreads?.threads}`, ortThreads?.agreement]];
    for (const [ort, agreement] of against) {
      for (const [name, a] of Object.entries(agreement ?? {})) {
        console.log(`${m.key}: ${name} vs ${ort}: max |Δ ${a.compared}| = ${a.maxAbsDiff?.toExponential(2)}, top-1 ${a.top1} vs ${a.ortTop1}`);
      }
    }
  }
  console.log(`\nwrote ${path.relative(process.cwd(), o.out)}`);
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
