// Pure: the insertion and deletion plots as a list of drawing operations (no DOM), which the
// evaluation view paints on a canvas. Probability of the class against the fraction of pixels
// inserted (deleted), both axes 0..1.
//
// Operations, in CSS pixels of a `width`×`height` plot:
//   {op: 'line', points: [[x, y], ...], color, width, dash}    a polyline
//   {op: 'rect', x, y, w, h, color}                            an outline
//   {op: 'text', text, x, y, align, baseline, color, rotate}   `rotate` in radians about (x, y)
//   {op: 'dot', x, y, r, color}                                a filled circle

export const MARGIN = { left: 48, right: 20, top: 10, bottom: 40 };

/** A plot's size for a canvas `clientWidth` CSS pixels wide: at least 240, 0.7 as high as wide. */
export function plotSize(clientWidth) {
  const width = Math.max(240, Math.round(clientWidth || 420));
  return { width, height: Math.round(width * 0.7) };
}

/** The series of one curve: x the fraction of pixels inserted (deleted), y the probabilities. */
export function curveSeries(rows, curve) {
  return rows.map((r) => {
    const c = r.evaluation[curve];
    const x = c.kept.map((k) => (curve === 'insertion' ? k : 1 - k));
    return { ...r, x, y: c.probabilities };
  });
}

/**
 * Where a series gets dots: its first point and every point that differs from the one before (a
 * quantized ranking makes few distinct images); if that is more than 40, only the last point (the
 * full photo for insertion, black for deletion).
 */
export function dotPoints(x, y) {
  const dots = x.map((v, i) => [v, y[i]]).filter(([v, w], i) => i === 0 || v !== x[i - 1] || w !== y[i - 1]);
  return dots.length <= 40 ? dots : dots.slice(-1);
}

/**
 * The operations that draw one plot. `series`: [{x, y, color, dash, current}], `reference`: the full
 * photo's probability (a dotted line), `colors`: {text, muted, grid}.
 */
export function curvePlot({ width, height, curve, series, reference, colors }) {
  const m = MARGIN;
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const X = (v) => m.left + v * pw;
  const Y = (v) => m.top + (1 - v) * ph;
  const ops = [];
  for (let i = 0; i <= 4; i++) {
    const v = i / 4;
    ops.push({ op: 'line', points: [[X(v), Y(0)], [X(v), Y(1)]], color: colors.grid, width: 1 });
    ops.push({ op: 'line', points: [[X(0), Y(v)], [X(1), Y(v)]], color: colors.grid, width: 1 });
    ops.push({ op: 'text', text: `${i * 25} %`, x: X(v), y: Y(0) + 4, align: 'center', baseline: 'top', color: colors.muted });
    ops.push({ op: 'text', text: v.toFixed(2), x: X(0) - 5, y: Y(v), align: 'right', baseline: 'middle', color: colors.muted });
  }
  ops.push({ op: 'rect', x: X(0), y: Y(1), w: pw, h: ph, color: colors.muted });
  const what = curve === 'insertion' ? 'inserted' : 'deleted';
  ops.push({ op: 'text', text: `pixels ${what}, most relevant first`, x: X(0.5), y: height - 2, align: 'center', baseline: 'bottom', color: colors.text });
  ops.push({ op: 'text', text: 'probability of the class', x: 11, y: Y(0.5), align: 'center', baseline: 'middle', color: colors.text, rotate: -Math.PI / 2 });
  // the full photo's probability, for reference
  ops.push({ op: 'line', points: [[X(0), Y(reference)], [X(1), Y(reference)]], color: colors.muted, width: 1, dash: [2, 3] });
  // the current method last, on top
  const order = [...series.filter((s) => !s.current), ...series.filter((s) => s.current)];
  for (const s of order) {
    ops.push({ op: 'line', points: s.x.map((x, i) => [X(x), Y(s.y[i])]), color: s.color, width: s.current ? 2.5 : 1.5, dash: s.dash });
    for (const [x, y] of dotPoints(s.x, s.y)) ops.push({ op: 'dot', x: X(x), y: Y(y), r: s.current ? 3 : 2, color: s.color });
  }
  return ops;
}

/** The plot's accessible name: what it shows and the area under each curve. */
export function plotLabel(curve, rows) {
  const areas = rows.map((r) => `${r.label} ${r.evaluation[curve].auc.toFixed(3)}`).join(', ');
  const what = curve === 'insertion' ? 'inserted' : 'deleted';
  return `${curve === 'insertion' ? 'Insertion' : 'Deletion'} curves, probability of the class against the fraction of pixels ${what}; areas: ${areas}`;
}
