// Small DOM helpers shared by the views (not a view itself).

export const $ = (id) => document.getElementById(id);

export function canvasOf(w, h) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

/** Puts RGBA pixels on a canvas, resizing it to them. */
export function paint(canvas, rgba, w, h) {
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d', { willReadFrequently: true }).putImageData(new ImageData(rgba, w, h), 0, 0);
}

/** An element with a class and text. */
export function el(tag, className = '', text = '') {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

/** The coloured square before a method's name (dashed for a dashed curve). */
export function swatch(color, dash) {
  const sw = el('span', dash ? 'swatch dashed' : 'swatch');
  if (color) sw.style.borderColor = color;
  sw.setAttribute('aria-hidden', 'true');
  return sw;
}

/** Offers bytes as a download named `name`. */
export function save(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = $('download-link');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
