// The models the page can offer and their bytes: the bundled ones (models/models.json), the test
// models (models/fixtures/), the user's own files; downloads through the Cache API, verified by sha256.
// No DOM.

export const DEFAULT_MODEL = 'fashion_resnet';
const MODEL_CACHE = 'resnet-lrp-models-v1';

const FIXTURES = [
  ['basic_bn', 'BasicBlock ResNet, BatchNorm nodes'],
  ['basic_folded', 'BasicBlock ResNet, BatchNorm folded'],
  ['basic_opset18', 'BasicBlock ResNet, opset 18'],
  ['bottleneck_bn', 'Bottleneck ResNet'],
  ['bottleneck_nhwc', 'Bottleneck ResNet, NHWC input (Caffe style)'],
];

// Models without a manifest entry get the engine's default normalisation (`capabilities().preprocess`:
// torchvision's ImageNet mean/std, filled in when they are loaded: `preprocess: null`), and their
// photos have the shorter side resized (to 256/224 of the model size) and are centre-cropped.
const SHORTER_SIDE = { mode: 'shorter_side', size: null };

export async function fetchJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

async function exists(url) {
  try {
    const res = await fetch(url, { method: 'HEAD' });
    return res.ok;
  } catch {
    return false;
  }
}

async function sha256Hex(bytes) {
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function readAll(res, report, name) {
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    report(`Downloading ${name} — ${(got / 1e6).toFixed(1)} MB`, total ? got / total : NaN);
  }
  const bytes = new Uint8Array(got);
  let o = 0;
  for (const c of chunks) {
    bytes.set(c, o);
    o += c.length;
  }
  return bytes;
}

/**
 * Model bytes from the server, through the Cache API when the manifest gives a sha256. `later(fn)`
 * runs the cache write once the page is idle: writing tens of MB would compete with the engine.
 */
export async function fetchModelBytes(url, sha256, report, later = (fn) => fn()) {
  const key = sha256 ? new URL(`${url}?sha256=${sha256}`, location.href).href : null;
  let cache = null;
  if (key && 'caches' in self) {
    try {
      cache = await caches.open(MODEL_CACHE);
      const hit = await cache.match(key);
      if (hit) return new Uint8Array(await hit.arrayBuffer());
    } catch {
      cache = null; // e.g. storage disabled: just download
    }
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}${res.status === 404 ? ' (run ./build.sh assets)' : ''}`);
  const bytes = await readAll(res, report, url.split('/').pop());
  if (sha256) {
    const actual = await sha256Hex(bytes);
    if (actual !== sha256) throw new Error(`${url} does not match its sha256 in models.json (got ${actual.slice(0, 12)}…); run ./build.sh assets`);
    if (cache) {
      later(() =>
        cache.put(key, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } })).catch(() => {
          // quota: fine, next time it is downloaded again
        }),
      );
    }
  }
  return bytes;
}

function fromManifest(m) {
  return {
    key: m.id,
    label: m.name,
    source: 'manifest',
    entry: m,
    url: `models/${m.file}`,
    sha256: m.sha256,
    // `"preprocess": "metadata"`: the model file carries its own (resnet_lrp.preprocess)
    preprocess: m.preprocess === 'metadata' ? null : { scale: m.scale, mean: m.mean, std: m.std, bgr: m.channel_order === 'BGR' },
    resize: { mode: m.resize?.mode ?? 'full', size: m.resize?.size ?? m.size },
    credit: `${m.name}: ${m.licence}. ${m.source}.`,
    display: m.display ?? null, // the page's first display settings for this model
  };
}

function fromFixture([name, what]) {
  return {
    key: `fixtures/${name}`,
    label: `${name} (random weights, for testing)`,
    source: 'fixture',
    url: `models/fixtures/${name}.onnx`,
    preprocess: null,
    resize: { ...SHORTER_SIDE },
    credit: `${name}: ${what}, generated with seeded random weights (tests/fixtures/gen_fixtures.py).`,
  };
}

/** A model the user opened. */
export function candidateFromFile(file, bytes, side = []) {
  return {
    key: `file:${file.name}:${file.size}:${file.lastModified}`,
    label: file.name,
    source: 'file',
    bytes,
    side, // [{name, bytes}]: the files of its external data
    preprocess: null,
    resize: { ...SHORTER_SIDE },
    credit: `${file.name}: your model (opened from this computer).`,
  };
}

/**
 * The manifests: {manifest, imagenet, photos, candidates}, and notices for what is missing.
 * `notice(text)` reports a missing part the page can do without.
 */
export async function loadCatalog(notice) {
  const out = { manifest: null, imagenet: null, photos: [], candidates: [] };
  try {
    out.manifest = await fetchJson('models/models.json');
  } catch (e) {
    notice(`No bundled models (${e.message}). Run ./build.sh assets, or open your own .onnx model.`);
  }
  const wantsImagenet = out.manifest?.models?.some((m) => m.classes === 'imagenet');
  try {
    out.imagenet = await fetchJson(`models/${out.manifest?.imagenet_classes?.file ?? 'imagenet_classes.json'}`);
  } catch (e) {
    if (wantsImagenet) notice(`ImageNet class names unavailable (${e.message}); classes are shown by number.`);
  }
  out.photos = await fetchJson('photos/photos.json').catch(() => []);
  // `./build.sh assets` lists the test models in models/fixtures/index.json; without the list, probe them
  const listed = await fetchJson('models/fixtures/index.json').catch(() => null);
  const fixtures = Array.isArray(listed)
    ? FIXTURES.filter((f) => listed.includes(`${f[0]}.onnx`))
    : await Promise.all(FIXTURES.map(async (f) => ((await exists(`models/fixtures/${f[0]}.onnx`)) ? f : null)));
  out.candidates = [...(out.manifest?.models ?? []).map(fromManifest), ...fixtures.filter(Boolean).map(fromFixture)];
  return out;
}

/**
 * The class names of a loaded model: its manifest's, those its file carries (metadata
 * resnet_lrp.classes), or ImageNet's for a user's 1000-class model.
 */
export function resolveNames(cand, info, imagenet) {
  const classes = cand.entry?.classes;
  if (Array.isArray(classes) && classes.length === info.numClasses) return { names: classes, note: '' };
  const own = info.metadata?.classes;
  if (Array.isArray(own) && own.length === info.numClasses) return { names: own, note: '' };
  if (classes === 'imagenet' && imagenet) return { names: imagenet, note: '' };
  if (cand.source === 'file' && info.numClasses === 1000 && imagenet) {
    return { names: imagenet, note: 'ImageNet class names assumed (1000 outputs).' };
  }
  return { names: null, note: '' };
}

/**
 * How photos are cropped for a loaded model: the manifest's resize, else the one its file carries
 * (metadata resnet_lrp.preprocess `resize`), else the shorter side to 256/224 of the input size.
 */
export function resolveResize(cand, info) {
  const own = cand.source === 'manifest' ? null : info.metadata?.resize;
  const mode = own ?? cand.resize.mode;
  return { mode, size: cand.resize.size ?? Math.round((info.input.height * (mode === 'shorter_side' ? 256 : 224)) / 224) };
}

/** The models to try at start, best first: the requested one, the default, then the rest. */
export function startOrder(candidates, want) {
  return [
    candidates.find((c) => c.key === want || c.key === `fixtures/${want}`),
    candidates.find((c) => c.key === DEFAULT_MODEL),
    ...candidates,
  ].filter((c, i, all) => c && all.indexOf(c) === i);
}

/**
 * Starts downloading a model's bytes ahead of its load (at start, while the engine compiles).
 * Progress goes to whoever later takes them.
 */
export function prefetchModel(cand, later) {
  if (cand.bytes || cand.prefetched) return;
  const pending = { report: null };
  pending.bytes = fetchModelBytes(cand.url, cand.sha256, (t, f) => pending.report?.(t, f), later);
  pending.bytes.catch(() => {}); // the error is reported by whoever awaits it
  cand.prefetched = pending;
}

/** The bytes of a model: its own (a file), prefetched (once), from the cache or downloaded. */
export function modelBytes(cand, report, later) {
  if (cand.bytes) return Promise.resolve(cand.bytes);
  const pending = cand.prefetched;
  if (pending) {
    delete cand.prefetched;
    pending.report = report;
    return pending.bytes;
  }
  return fetchModelBytes(cand.url, cand.sha256, report, later);
}

/**
 * The bundled samples made for the model `key` (photos.json entries with its `model`); for a model
 * without its own, the photos made for no model in particular.
 */
export function samplesFor(photos, key) {
  const own = photos.filter((p) => p.model === key);
  return own.length ? own : photos.filter((p) => !p.model);
}

/** The samples in the order they are offered for model `key`: its own first, then the others. */
export function sampleOrder(photos, key) {
  const own = photos.filter((p) => p.model && p.model === key);
  return [...own, ...photos.filter((p) => !own.includes(p))];
}
