// Browser benchmark: our engine against onnxruntime-web, in headless Chromium, one model at a time.
//
//   ./build.sh bench [--relaxed] [--threads] [options]    builds the release wasm, then runs this
//   node tests/bench/browser/bench.mjs --pkg DIR [--pkg-relaxed DIR] [--pkg-threads DIR] [options]
//
// Options: --runs N (10) timed runs after --warmup N (2); --loads N (3) model loads;
//   --models resnet18,resnet50,open_nsfw; --cold-runs N (3) fresh-profile loads of the real page, timed per stage
//   (www/?model=open_nsfw&photo=chelsea.png) until its first heatmap, 0 to skip; --no-ort;
//   --profile NAME (recorded only); --out FILE (tests/bench/browser/out/results.json); --threads N: the pool
//   of the threaded build (default: the number of cores).
//
// Every model gets a fresh Chromium profile and one page (bench.html) that loads every engine: our wasm
// (`--pkg`, and `--pkg-relaxed` when given) and onnxruntime-web's wasm execution provider with one thread,
// served from node_modules, on the main thread; the threaded build (`--pkg-threads`) in a worker with its
// pool. With a threaded build the pages are served cross-origin isolated (COOP/COEP), as
// `./build.sh serve` serves the demo. One run times, in turn, our
// setInput (forward pass keeping activations) and explain (LRP of the top-1 class, `conserving`,
// `flows_skip`) for each of our builds, then onnxruntime's session.run, on the same input tensor.
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
};

function parseArgs(argv) {
  const o = { runs: 10, warmup: 2, loads: 3, coldRuns: 3, models: Object.keys(MODELS), ort: true, profile: 'release', threads: os.cpus().length };
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
    else if (a === '--runs') o.runs = Number(val());
    else if (a === '--warmup') o.warmup = Number(val());
    else if (a === '--loads') o.loads = Number(val());
    else if (a === '--cold-runs') o.coldRuns = Number(val());
    else if (a === '--models') o.models = val().split(',').filter(Boolean);
    else if (a === '--profile') o.profile = val();
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--no-ort') o.ort = false;
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.pkg) throw new Error('--pkg DIR (a wasm-bindgen --target web output) is required');
  for (const m of o.models) if (!MODELS[m]) throw new Error(`unknown model ${m}: use ${Object.keys(MODELS).join(', ')}`);
  if (!(o.runs >= 1 && o.warmup >= 0 && o.loads >= 1 && o.coldRuns >= 0)) throw new Error('bad --runs/--warmup/--loads/--cold-runs');
  if (!(Number.isInteger(o.threads) && o.threads >= 1)) throw new Error('bad --threads');
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

/**
 * Cold start of the real page: fresh profile, navigation start → first heatmap drawn. The page gets
 * the benchmark's builds as pkg/, pkg-relaxed/ and pkg-threads/ (none where not given: www/pkg-relaxed
 * and www/pkg-threads are not used), served cross-origin isolated when there is a threaded build, and
 * loads the one it picks, as it would when shipped.
 */
async function coldPage(chromium, { pkg, pkgRelaxed, pkgThreads, threads }, runs) {
  const www = path.join(ROOT, 'www');
  if (!fs.existsSync(path.join(www, 'models', 'open_nsfw.onnx')) || !fs.existsSync(path.join(www, 'photos', 'chelsea.png'))) {
    return { error: 'www/models or www/photos missing (./build.sh assets)' };
  }
  const none = path.join(os.tmpdir(), 'resnet-lrp-bench-no-such-build'); // never created: 404
  const server = await serve({
    root: www,
    mounts: { '/pkg/': pkg, '/pkg-relaxed/': pkgRelaxed ?? none, '/pkg-threads/': pkgThreads ?? none, '/models/fixtures/': path.join(ROOT, 'tests', 'fixtures') },
    isolated: Boolean(pkgThreads),
  });
  const times = [];
  const stages = [];
  const out = {
    url: `?model=open_nsfw&photo=chelsea.png${pkgThreads ? `&threads=${threads}` : ''}`,
    pkg: path.relative(ROOT, pkg),
    pkgRelaxed: pkgRelaxed ? path.relative(ROOT, pkgRelaxed) : null,
    pkgThreads: pkgThreads ? path.relative(ROOT, pkgThreads) : null,
  };
  try {
    for (let i = 0; i < runs; i++) {
      const b = await launch(chromium);
      try {
        const errors = [];
        b.page.on('pageerror', (e) => errors.push(e.message));
        await b.page.addInitScript(() => {
          // when each request to the engine's worker was posted and answered (the page's stages)
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
        });
        await b.page.goto(`${server.url}${out.url}`);
        await b.page.waitForFunction(() => window.__firstHeatmap !== undefined || document.body.dataset.ready === 'true', null, {
          timeout: 600_000,
          polling: 50,
        });
        const ms = await b.page.evaluate(() => window.__firstHeatmap);
        stages.push(await b.page.evaluate(() => window.__stages.filter((x) => x.done !== undefined)));
        out.engine ??= await b.page.evaluate(() => window.__lrp?.state?.engineInfo?.engine ?? null);
        if (ms === undefined) throw new Error(`the page became ready without a heatmap ${errors.join('; ')}`);
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
  // per load: each engine request's time from posted to answered, and the first request's start
  out.stages = stages;
  const per = (type) => stats(stages.map((l) => l.find((x) => x.type === type)).filter(Boolean).map((x) => x.done - x.posted));
  out.stageStats = { start: stats(stages.map((l) => l[0]?.posted).filter((v) => v !== undefined)) };
  for (const type of ['init', 'load', 'image', 'explain']) out.stageStats[type] = per(type);
  return out;
}

const fmt = (s, digits = 0) => (s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : '–');
const mb = (b) => (b ? `${(b / 2 ** 20).toFixed(0)}` : '–');
const ratio = (a, b) => (a && b ? `${(a.median / b.median).toFixed(2)}×` : '–');

/** An engine's name in the tables: the threaded build with the size of its pool. */
const label = (name, e) => (e.threads > 1 ? `${name} ×${e.threads}` : name);

function table(results) {
  const lines = [
    '| model | engine | load ms | forward ms | LRP ms | explain ms | explain / forward | forward / ort | explain / ort forward | wasm memory MiB |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const m of results.models) {
    const ort = m.engines.ort;
    for (const [name, e] of Object.entries(m.engines)) {
      const s = e.stats ?? {};
      lines.push(
        `| ${m.name} | ${name === 'ort' ? `onnxruntime-web ${e.version ?? ''}`.trim() : `ours (${label(name, e)})`} | ${fmt(s.load)} | ${fmt(s.forward)} | ` +
          `${fmt(s.lrp)} | ${fmt(s.explain)} | ${ratio(s.explain, s.forward)} | ` +
          `${name === 'ort' ? '1.00×' : ratio(s.forward, ort?.stats?.forward)} | ${ratio(s.explain, ort?.stats?.forward)} | ${mb(e.memory)} |`,
      );
    }
    for (const [name, err] of Object.entries(m.errors ?? {})) lines.push(`| ${m.name} | ${name} | failed: ${err} | | | | | | | |`);
  }
  return lines.join('\n');
}

/** Start-up costs: engine init (ours: wasm compile + instantiate; ort: its first session, which
 * includes that), the first run after loading, and memory after loading. */
function coldTable(results) {
  const lines = [
    '| model | engine | init ms | first forward ms | first LRP ms | memory after load MiB |',
    '|---|---|---|---|---|---|',
  ];
  const n = (v) => (v === undefined || v === null ? '–' : v.toFixed(0));
  for (const m of results.models) {
    for (const [name, e] of Object.entries(m.engines)) {
      const init = name === 'ort' ? `${n(e.firstLoad)} (first session)` : n(e.init);
      lines.push(`| ${m.name} | ${name === 'ort' ? 'onnxruntime-web' : `ours (${label(name, e)})`} | ${init} | ${n(e.first?.forward)} | ${n(e.first?.lrp)} | ${mb(e.memoryAfterLoad)} |`);
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
  for (const m of results.models) {
    for (const [name, a] of Object.entries(m.agreement ?? {})) {
      console.log(`${m.key}: ${name} vs ort: max |Δ ${a.compared}| = ${a.maxAbsDiff?.toExponential(2)}, top-1 ${a.top1} vs ${a.ortTop1}`);
    }
  }
  console.log(`\nwrote ${path.relative(process.cwd(), o.out)}`);
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
