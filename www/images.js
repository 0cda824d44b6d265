// What the model is fed and what the page shows, from a photo or a .npy tensor; and sorting dropped
// files into a model, tensors and photos. Uses the browser's image decoder and canvases; no view.

import { cropRegion, cropRgba, decodeNpy, tensorToRgba } from './overlay.js';
import { canvasOf } from './dom.js';
import { displaySize, errorText } from './raster.js';

/** The longest side a dropped photo is decoded at (larger ones are scaled down while decoding). */
const DECODE_MAX = 4096;

async function decodeBitmap(blob) {
  const opts = { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
  let bmp = await createImageBitmap(blob, opts);
  if (Math.max(bmp.width, bmp.height) > DECODE_MAX) {
    const f = DECODE_MAX / Math.max(bmp.width, bmp.height);
    const [w, h] = [Math.round(bmp.width * f), Math.round(bmp.height * f)];
    bmp.close();
    bmp = await createImageBitmap(blob, { ...opts, resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
  }
  return bmp;
}

function pixels(source, sx, sy, sw, sh, dw, dh) {
  const c = canvasOf(dw, dh);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, sx, sy, sw, sh, 0, 0, dw, dh);
  return ctx.getImageData(0, 0, dw, dh).data;
}

function prepareTensor(item, { info, preprocess }) {
  const { height: H, width: W } = info.input;
  const need = info.input.shape.reduce((a, b) => a * b, 1);
  if (item.data.length !== need) {
    throw new Error(`${item.name} has shape (${item.shape.join(', ')}) but the model input is (${info.input.shape.join(', ')})`);
  }
  const rgba = tensorToRgba(item.data, info.input, preprocess);
  const [dw, dh] = displaySize(W, H);
  const small = canvasOf(W, H);
  small.getContext('2d').putImageData(new ImageData(rgba, W, H), 0, 0);
  return { item, kind: 'tensor', tensor: item.data, base: { rgba: pixels(small, 0, 0, W, H, dw, dh), width: dw, height: dh }, region: null };
}

/**
 * An item prepared for `model`: a photo is cropped per the model's resize mode (in photo pixels); the
 * crop goes to the engine, which resizes it bilinearly to the model size. Crops more than twice the
 * model size are first downscaled by the browser (smoothly) to the model size, to avoid aliasing.
 * Returns {item, kind, fed|tensor, base (what is shown), region, photo}.
 */
export async function prepare(item, model) {
  if (item.kind === 'tensor') return prepareTensor(item, model);
  const { height: H, width: W } = model.info.input;
  const bmp = await decodeBitmap(item.file);
  try {
    const region = cropRegion(bmp.width, bmp.height, { mode: model.resize.mode, resize: model.resize.size, crop: [H, W] });
    let fed;
    if (region.w > 2 * W || region.h > 2 * H) {
      fed = { rgba: pixels(bmp, region.x, region.y, region.w, region.h, W, H), width: W, height: H };
    } else {
      const full = pixels(bmp, 0, 0, bmp.width, bmp.height, bmp.width, bmp.height);
      fed = { rgba: cropRgba(full, bmp.width, region.x, region.y, region.w, region.h), width: region.w, height: region.h };
    }
    const [dw, dh] = displaySize(region.w, region.h);
    const base = { rgba: pixels(bmp, region.x, region.y, region.w, region.h, dw, dh), width: dw, height: dh };
    return { item, kind: 'photo', fed, base, region, photo: { width: bmp.width, height: bmp.height } };
  } finally {
    bmp.close();
  }
}

/** The engine request that feeds a prepared item: [type, payload]. The photo's pixels are copied. */
export function feedRequest(prepared) {
  if (prepared.kind === 'tensor') return ['input', { data: prepared.tensor }];
  const { rgba, width, height } = prepared.fed;
  return ['image', { rgba: new Uint8Array(rgba.buffer.slice(0)), width, height }];
}

/** One line about the item: its name and size, and the crop the model sees. */
export function describeImage(im) {
  if (!im) return '';
  if (im.kind === 'tensor') return `${im.item.name}: preprocessed tensor`;
  const { region, photo } = im;
  const cropped = region.w !== photo.width || region.h !== photo.height;
  return `${im.item.name} (${photo.width}×${photo.height})` + (cropped ? `, model’s view: ${region.w}×${region.h} centre crop` : '');
}

/** Whether RGBA pixels are a colour picture: more than 1 % of them with channels 16 or more apart. */
export function isColour(rgba) {
  let coloured = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    const [r, g, b] = [rgba[i], rgba[i + 1], rgba[i + 2]];
    if (Math.max(r, g, b) - Math.min(r, g, b) >= 16) coloured++;
  }
  return coloured > rgba.length / 4 / 100;
}

/**
 * A one-line hint when a photo does not suit a small greyscale model (`model`: {label, info}): a colour
 * photo, or one more than four times the model's input size. Null when it suits, or for other models.
 */
export function photoHint(prepared, { label, info }) {
  const { channels, width: W, height: H } = info.input;
  if (prepared.kind !== 'photo' || channels !== 1) return null;
  const large = prepared.photo.width > 4 * W || prepared.photo.height > 4 * H;
  const colour = isColour(prepared.fed.rgba);
  if (!large && !colour) return null;
  const what = colour ? `a ${large ? 'large ' : ''}colour photo` : 'a large photo';
  return `${label} was made for ${W}×${H} greyscale images: for ${what} like this one, pick EfficientNet-Lite0 or drop an ImageNet ResNet (.onnx).`;
}

let itemCounter = 0;

export const isModelFile = (f) => /\.onnx$/i.test(f.name);
/** A side file of a model's external data (torch writes `model.onnx.data`). */
export const isSideFile = (f) => /\.(data|bin)$/i.test(f.name);

/**
 * The photos and tensors among `files` (models are left out): {items, errors: [{file, kind, text}]}.
 * Photos are decoded once here to refuse what is not an image.
 */
export async function readItems(files) {
  const tensors = files.filter((f) => /\.npy$/i.test(f.name));
  const photos = files.filter((f) => !isModelFile(f) && !isSideFile(f) && !tensors.includes(f));
  const items = [];
  const errors = [];
  for (const f of tensors) {
    try {
      const { data, shape } = decodeNpy(await f.arrayBuffer());
      items.push({ key: `t${++itemCounter}`, name: f.name, kind: 'tensor', data, shape });
    } catch (e) {
      errors.push({ file: f, kind: 'tensor', text: errorText(e) });
    }
  }
  for (const f of photos) {
    try {
      const bmp = await createImageBitmap(f);
      bmp.close();
      items.push({ key: `p${++itemCounter}`, name: f.name || `pasted image ${itemCounter}`, kind: 'photo', file: f, url: URL.createObjectURL(f) });
    } catch (e) {
      errors.push({ file: f, kind: 'photo', text: errorText(e).replace(/^[A-Za-z]*Error:\s*/, '') });
    }
  }
  return { items, errors };
}

/** A sample photo (photos/photos.json) as an item; `items` are the ones added so far. */
export async function sampleItem(photo, items) {
  const known = items.find((i) => i.sample === photo.file);
  if (known) return known;
  const res = await fetch(`photos/${photo.file}`);
  if (!res.ok) throw new Error(`photos/${photo.file}: HTTP ${res.status}`);
  return {
    key: `s:${photo.file}`,
    name: photo.file,
    kind: 'photo',
    file: await res.blob(),
    sample: photo.file,
    truth: photo.class ?? null, // the true class of a labelled sample (Fashion-MNIST)
    credit: `${photo.title} — ${photo.attribution}; ${photo.licence}; from ${photo.source?.package ?? 'a package'} ${photo.source?.version ?? ''}.`,
  };
}
