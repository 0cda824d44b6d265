// Pure raster helpers of the page (no DOM), like overlay.js: how big a photo is shown, the pixels of
// the colour bar under the heatmap and its end labels, number formatting for the readouts.

import { colormapLut } from './overlay.js';

/** The longest side a photo is shown at (the heatmap canvas). */
export const DISPLAY_MAX = 512;

/**
 * The size a `w`×`h` image is shown at: at most DISPLAY_MAX on its longer side; small crops are shown
 * larger (up to twice, to about 256 pixels) so that a 64×64 test input is not a speck.
 */
export function displaySize(w, h, max = DISPLAY_MAX) {
  const f = Math.min(1, max / Math.max(w, h));
  const g = Math.max(f, Math.min(2, 256 / Math.max(w, h)));
  return [Math.max(1, Math.round(w * g)), Math.max(1, Math.round(h * g))];
}

/** The colour bar: RGBA of `width`×`height`, column x in the colour of table entry x·256/width. */
export function colorbarRgba(cmap, width = 256, height = 12) {
  const lut = colormapLut(cmap);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let x = 0; x < width; x++) {
    const i = Math.min(255, Math.floor((x * 256) / width)) * 3;
    for (let y = 0; y < height; y++) rgba.set([lut[i], lut[i + 1], lut[i + 2], 255], (y * width + x) * 4);
  }
  return rgba;
}

/** The labels at both ends of the colour bar for a map normalised by `scale` (see overlay.normalize). */
export function legendLabels(scale, sign) {
  const s = scale ? scale.toExponential(1) : '0';
  return { min: sign === 'signed' ? `−${s}` : '0', max: sign === 'absolute' ? `|R| ${s}` : `+${s}` };
}

/** A relevance for the readouts: six significant digits, exponent notation far from 1. */
export function fmt(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(6) : v.toExponential(3);
}

/** A share of a total in percent, or — when the total is 0. */
export const percentOf = (v, of) => (of !== 0 ? `${((v / of) * 100).toFixed(1)} %` : '—');

/** The text of anything thrown. */
export const errorText = (e) => (e instanceof Error ? e.message : String(e));
