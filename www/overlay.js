// Pure helpers for turning relevance into pictures and files: colormaps, normalisation,
// bilinear resizing, RGBA compositing, PNG and .npy encoding. No DOM; runs in the page,
// in a worker and in Node alike.
//
// This module is the example the page's other pure modules follow (plot.js, downloads.js,
// raster.js): data in, data out, no DOM and no page state, tested in Node (tests/e2e/*.test.mjs).

import { crc32 } from './crc32.js';

// ---------------------------------------------------------------------------------------
// Colormaps, written out as data.
//
// matplotlib builds a 256-entry lookup table from segment data (x, y_left, y_right) per
// channel, sampling x = i/255, and maps a value v in [0, 1] to entry floor(v * 256) (v = 1
// maps to 255); colours become bytes by truncation, floor(c * 255). `jet` is
// matplotlib's `_jet_data`; `bwr` and `seismic` are `LinearSegmentedColormap.from_list`
// of evenly spaced colours (`_bwr_data`, `_seismic_data`).
//
// zennit compiles `coldnhot` from its colour-map language source '0ff,00f,80:000,f00,ff0,fff':
// nodes at indices 0, 64, 128, 170, 212, 255 (+ a copy at 256) on a 0..255 scale, linear
// in between; the palette entry i is the colour at index i, and a value v in [0, 1] maps to
// entry floor(v * 255).

const evenly = (colors) => {
  const n = colors.length - 1;
  const seg = (c) => colors.map((rgb, i) => [i / n, rgb[c], rgb[c]]);
  return { red: seg(0), green: seg(1), blue: seg(2) };
};

export const COLORMAPS = {
  jet: {
    label: 'jet (matplotlib)',
    family: 'matplotlib',
    segments: {
      red: [[0, 0, 0], [0.35, 0, 0], [0.66, 1, 1], [0.89, 1, 1], [1, 0.5, 0.5]],
      green: [[0, 0, 0], [0.125, 0, 0], [0.375, 1, 1], [0.64, 1, 1], [0.91, 0, 0], [1, 0, 0]],
      blue: [[0, 0.5, 0.5], [0.11, 1, 1], [0.34, 1, 1], [0.65, 0, 0], [1, 0, 0]],
    },
  },
  bwr: {
    label: 'bwr (matplotlib)',
    family: 'matplotlib',
    segments: evenly([[0, 0, 1], [1, 1, 1], [1, 0, 0]]),
  },
  seismic: {
    label: 'seismic (matplotlib)',
    family: 'matplotlib',
    segments: evenly([[0, 0, 0.3], [0, 0, 1], [1, 1, 1], [1, 0, 0], [0.5, 0, 0]]),
  },
  coldnhot: {
    label: 'coldnhot (zennit)',
    family: 'zennit',
    nodes: [
      [0, 0x00, 0xff, 0xff],
      [64, 0x00, 0x00, 0xff],
      [128, 0x00, 0x00, 0x00],
      [170, 0xff, 0x00, 0x00],
      [212, 0xff, 0xff, 0x00],
      [255, 0xff, 0xff, 0xff],
      [256, 0xff, 0xff, 0xff],
    ],
  },
};

/** matplotlib's `_create_lookup_table` for one channel (gamma 1), with its float arithmetic. */
function matplotlibChannel(seg, n) {
  const lut = new Float64Array(n);
  const xs = seg.map((s) => s[0] * (n - 1));
  const step = 1 / (n - 1); // numpy.linspace(0, 1, n) is i * step
  lut[0] = seg[0][2];
  lut[n - 1] = seg[seg.length - 1][1];
  for (let i = 1; i < n - 1; i++) {
    const x = (n - 1) * (i * step);
    let k = 1; // first segment point with xs[k] >= x (searchsorted, side left)
    while (k < seg.length - 1 && xs[k] < x) k++;
    const d = (x - xs[k - 1]) / (xs[k] - xs[k - 1]);
    lut[i] = Math.min(1, Math.max(0, d * (seg[k][1] - seg[k - 1][2]) + seg[k - 1][2]));
  }
  return lut;
}

const lutCache = new Map();

/**
 * The 256 × RGB byte lookup table of a colormap.
 * @param {string} name one of `Object.keys(COLORMAPS)`
 * @returns {Uint8Array} 768 bytes
 */
export function colormapLut(name) {
  if (lutCache.has(name)) return lutCache.get(name);
  const cm = COLORMAPS[name];
  if (!cm) throw new Error(`unknown colormap \`${name}\``);
  const lut = new Uint8Array(256 * 3);
  if (cm.family === 'matplotlib') {
    const chans = ['red', 'green', 'blue'].map((c) => matplotlibChannel(cm.segments[c], 256));
    for (let i = 0; i < 256; i++) {
      for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.floor(chans[c][i] * 255);
    }
  } else {
    const nodes = cm.nodes;
    for (let i = 0; i < 256; i++) {
      let k = 1;
      while (nodes[k][0] <= i) k++; // searchsorted(indices[:-1], i, side='right')
      const [a, ...ca] = nodes[k - 1];
      const [b, ...cb] = nodes[k];
      const t = (i - a) / (b - a);
      for (let c = 0; c < 3; c++) {
        const v = (ca[c] * (1 - t) + cb[c] * t) / 255;
        lut[i * 3 + c] = Math.floor(Math.round(v * 255 * 1e12) / 1e12);
      }
    }
  }
  lutCache.set(name, lut);
  return lut;
}

/** Index into the 256-entry table for v in [0, 1], the way the colormap's library does it. */
export function lutIndex(name, v) {
  if (!(v > 0)) return 0; // also NaN
  if (COLORMAPS[name].family === 'matplotlib') return v >= 1 ? 255 : Math.floor(v * 256);
  return Math.min(255, Math.floor(v * 255));
}

/** One colour as `[r, g, b]` bytes. */
export function colormapColor(name, v) {
  const lut = colormapLut(name);
  const i = lutIndex(name, v) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

// ---------------------------------------------------------------------------------------
// Normalisation

/**
 * The p-th percentile (0..100) of the values, linear interpolation between order
 * statistics (numpy's default).
 */
export function percentile(values, p) {
  const n = values.length;
  if (n === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  const pos = (Math.min(100, Math.max(0, p)) / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Maps relevance to [0, 1] for a colormap.
 *
 * - `signed`: symmetric around zero, 0 → 0.5 (the neutral colour of a diverging map);
 *   values are divided by the clip level of |R|.
 * - `positive`: negative relevance becomes 0; positive values divided by the clip level
 *   of the positive values.
 * - `absolute`: |R| divided by the clip level of |R|.
 *
 * The clip level is the `clip`-th percentile (100 = the maximum); larger values saturate.
 * @returns {{values: Float32Array, scale: number}}
 */
export function normalize(map, { sign = 'signed', clip = 100 } = {}) {
  const n = map.length;
  const out = new Float32Array(n);
  let source;
  if (sign === 'positive') {
    source = [];
    for (let i = 0; i < n; i++) if (map[i] > 0) source.push(map[i]);
  } else {
    source = new Float64Array(n);
    for (let i = 0; i < n; i++) source[i] = Math.abs(map[i]);
  }
  let scale = clip >= 100 ? source.reduce((m, v) => (v > m ? v : m), 0) : percentile(source, clip);
  if (!(scale > 0) || !Number.isFinite(scale)) scale = 0;
  for (let i = 0; i < n; i++) {
    const v = map[i];
    if (scale === 0) {
      out[i] = sign === 'signed' ? 0.5 : 0;
    } else if (sign === 'signed') {
      out[i] = 0.5 + 0.5 * Math.max(-1, Math.min(1, v / scale));
    } else if (sign === 'positive') {
      out[i] = Math.max(0, Math.min(1, v / scale));
    } else {
      out[i] = Math.min(1, Math.abs(v) / scale);
    }
  }
  return { values: out, scale };
}

/** Colours normalised values (in [0, 1]) with a colormap: opaque RGBA bytes. */
export function colorize(values, cmap) {
  const lut = colormapLut(cmap);
  const out = new Uint8ClampedArray(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    const k = lutIndex(cmap, values[i]) * 3;
    out[i * 4] = lut[k];
    out[i * 4 + 1] = lut[k + 1];
    out[i * 4 + 2] = lut[k + 2];
    out[i * 4 + 3] = 255;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Images

/**
 * Bilinear resize of interleaved 8-bit pixels with half-pixel centres and edge clamping
 * (the same sampling as the engine's own preprocessing).
 */
export function resizeBilinear(src, sw, sh, dw, dh, channels = 4) {
  const out = new Uint8ClampedArray(dw * dh * channels);
  const sy = sh / dh;
  const sx = sw / dw;
  for (let y = 0; y < dh; y++) {
    const fy = (y + 0.5) * sy - 0.5;
    const y0 = Math.min(sh - 1, Math.max(0, Math.floor(fy)));
    const y1 = Math.min(sh - 1, y0 + 1);
    const ty = Math.min(1, Math.max(0, fy - y0));
    for (let x = 0; x < dw; x++) {
      const fx = (x + 0.5) * sx - 0.5;
      const x0 = Math.min(sw - 1, Math.max(0, Math.floor(fx)));
      const x1 = Math.min(sw - 1, x0 + 1);
      const tx = Math.min(1, Math.max(0, fx - x0));
      for (let c = 0; c < channels; c++) {
        const p = (yy, xx) => src[(yy * sw + xx) * channels + c];
        const top = p(y0, x0) * (1 - tx) + p(y0, x1) * tx;
        const bottom = p(y1, x0) * (1 - tx) + p(y1, x1) * tx;
        out[(y * dw + x) * channels + c] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return out;
}

/** Crops an RGBA image to the rectangle (x, y, w, h). */
export function cropRgba(rgba, width, x, y, w, h) {
  const out = new Uint8ClampedArray(w * h * 4);
  for (let r = 0; r < h; r++) {
    const start = ((y + r) * width + x) * 4;
    out.set(rgba.subarray(start, start + w * 4), r * w * 4);
  }
  return out;
}

/**
 * The part of a `width × height` photo that the model sees, in photo pixels.
 *
 * - `shorter_side`: resize the shorter side to `resize` and centre-crop `crop` (torchvision's
 *   Resize(256) + CenterCrop(224)); the aspect ratio is kept.
 * - `stretch`: resize both sides to `resize` and centre-crop `crop` (Caffe style, open_nsfw).
 * - `full`: the whole photo, stretched to the model's size.
 * `crop` is `[height, width]` of the model input.
 * @returns {{x: number, y: number, w: number, h: number}}
 */
export function cropRegion(width, height, { mode = 'full', resize = 256, crop = [224, 224] } = {}) {
  let w = width;
  let h = height;
  if (mode === 'shorter_side') {
    const f = resize / Math.min(width, height);
    w = Math.round(crop[1] / f);
    h = Math.round(crop[0] / f);
  } else if (mode === 'stretch') {
    w = Math.round((width * crop[1]) / resize);
    h = Math.round((height * crop[0]) / resize);
  }
  w = Math.max(1, Math.min(width, w));
  h = Math.max(1, Math.min(height, h));
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), w, h };
}

/** `base * (1 - alpha) + heat * alpha` per pixel; opaque result. */
export function blend(base, heat, alpha) {
  const out = new Uint8ClampedArray(base.length);
  const a = Math.min(1, Math.max(0, alpha));
  for (let i = 0; i < base.length; i += 4) {
    out[i] = base[i] * (1 - a) + heat[i] * a;
    out[i + 1] = base[i + 1] * (1 - a) + heat[i + 1] * a;
    out[i + 2] = base[i + 2] * (1 - a) + heat[i + 2] * a;
    out[i + 3] = 255;
  }
  return out;
}

/**
 * Renders relevance over a photo: normalise, colour, upsample to the photo's size and blend.
 * `base` is the RGBA photo crop at `width × height`; `map` is `mapWidth × mapHeight`.
 * @returns {{overlay: Uint8ClampedArray, heat: Uint8ClampedArray, scale: number}} `heat` at map size
 */
export function renderOverlay({ base, width, height, map, mapWidth, mapHeight, cmap = 'jet', sign = 'signed', clip = 100, alpha = 0.4 }) {
  const { values, scale } = normalize(map, { sign, clip });
  const heat = colorize(values, cmap);
  const up = mapWidth === width && mapHeight === height ? heat : resizeBilinear(heat, mapWidth, mapHeight, width, height);
  return { overlay: blend(base, up, alpha), heat, scale };
}

/**
 * Turns a preprocessed tensor back into a viewable RGBA picture (undoing mean/std/scale and
 * the channel order), for inputs given as tensors rather than photos.
 */
export function tensorToRgba(data, { layout, channels, height, width }, { scale = 1, mean = [0, 0, 0], std = [1, 1, 1], bgr = false } = {}) {
  const out = new Uint8ClampedArray(width * height * 4);
  const plane = width * height;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      for (let c = 0; c < 3; c++) {
        const ch = channels === 1 ? 0 : bgr ? 2 - c : c;
        const v = layout === 'NHWC' ? data[p * channels + ch] : data[ch * plane + p];
        const m = channels === 1 ? 0 : ch;
        out[p * 4 + c] = ((v * std[m] + mean[m]) / scale) * 255;
      }
      out[p * 4 + 3] = 255;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Files

/**
 * A NumPy .npy file (format 1.0): float32 little-endian ('<f4'), C order.
 * @param {Float32Array} data
 * @param {number[]} shape
 * @returns {Uint8Array}
 */
export function encodeNpy(data, shape) {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`${data.length} values do not fill the shape (${shape.join(', ')})`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.length * 4);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]); // \x93NUMPY 1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const view = new DataView(out.buffer, total);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  return out;
}

/**
 * Reads a float32 (or float64, converted) C-order .npy file.
 * @param {ArrayBuffer|Uint8Array} bytes
 * @returns {{data: Float32Array, shape: number[]}}
 */
export function decodeNpy(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (u8.length < 10 || magic.some((b, i) => u8[i] !== b)) throw new Error('not a .npy file');
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const major = u8[6];
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(u8.subarray(start, start + hlen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*True/.test(header);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error('malformed .npy header');
  if (fortran) throw new Error('.npy in Fortran order is not supported; save it in C order');
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const off = start + hlen;
  const data = new Float32Array(count);
  if (descr === '<f4') {
    for (let i = 0; i < count; i++) data[i] = dv.getFloat32(off + i * 4, true);
  } else if (descr === '<f8') {
    for (let i = 0; i < count; i++) data[i] = dv.getFloat64(off + i * 8, true);
  } else {
    throw new Error(`.npy dtype ${descr} is not supported (float32 or float64 expected)`);
  }
  return { data, shape };
}


async function zlibDeflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * An 8-bit RGBA PNG of exactly these pixels (no colour profile, no gamma chunk).
 * @returns {Promise<Uint8Array>}
 */
export async function encodePng(rgba, width, height) {
  const raw = new Uint8Array((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    raw.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1);
  }
  const idat = await zlibDeflate(raw);
  const chunk = (type, data) => {
    const out = new Uint8Array(12 + data.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA, deflate, filter 0, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Sum of the values, in float64. */
export function sum(values) {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s;
}
