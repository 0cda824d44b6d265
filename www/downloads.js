// Pure: the names and contents of the files the page offers (no DOM). The PNGs and the .npy are
// encoded by overlay.js; here are their names and the insertion/deletion CSV.

/** A photo's name without its extension. */
const stemOf = (name) => name.replace(/\.[^.]+$/, '');

/** A class name made safe for a file name. */
const safe = (text) => text.replace(/[^\w-]+/g, '_');

/** `photo.class.method`: what an explanation's files are called. */
export function explanationStem(imageName, className, options) {
  const how = options.method === 'gradient' ? 'gradient_x_input' : options.method === 'lrp' ? `${options.composite}.${options.variant}` : options.method;
  return `${stemOf(imageName)}.${safe(className)}.${how}`;
}

/** The three files of an explanation, by button. */
export function explanationFiles(stem) {
  return {
    overlay: { name: `${stem}.overlay.png`, type: 'image/png' },
    heatmap: { name: `${stem}.heatmap.png`, type: 'image/png' },
    npy: { name: `${stem}.relevance.npy`, type: 'application/octet-stream' },
  };
}

/** One CSV field, quoted when it has a comma, a quote or a line break. */
export function csvField(v) {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const CSV_HEAD = ['model', 'photo', 'class', 'class_name', 'method', 'composite', 'start', 'quantize', 'step', 'curve', 'auc', 'image', 'fraction_of_pixels', 'probability'];

/**
 * The insertion and deletion curves as CSV: one line per image of each curve of each method.
 * `data`: {model, image, target, rows: [{key, options, insertion, deletion}]}, a curve being
 * {kept, probabilities, auc}; the fraction of pixels is the share inserted (deleted).
 * Returns {name, text}.
 */
export function evaluationCsv(data, className) {
  const lines = [CSV_HEAD.join(',')];
  for (const r of data.rows) {
    const o = r.options;
    for (const curve of ['insertion', 'deletion']) {
      const c = r[curve];
      c.probabilities.forEach((p, i) => {
        const fraction = curve === 'insertion' ? c.kept[i] : 1 - c.kept[i];
        const row = [data.model, data.image, data.target, className, r.key, o.composite ?? '', o.start ?? '', o.quantize, o.step, curve, c.auc, i, fraction, p];
        lines.push(row.map(csvField).join(','));
      });
    }
  }
  return { name: `${stemOf(data.image)}.${safe(className)}.insertion_deletion.csv`, text: `${lines.join('\n')}\n` };
}
