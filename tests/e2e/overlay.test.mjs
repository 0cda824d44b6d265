// Unit tests of www/overlay.js (pure helpers; no browser): colormaps against their sources,
// normalisation, .npy and PNG encoding.
//
//   node --test tests/e2e/overlay.test.mjs

import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { test } from 'node:test';

import {
  COLORMAPS,
  blend,
  colormapColor,
  colormapLut,
  cropRegion,
  decodeNpy,
  encodeNpy,
  encodePng,
  lutIndex,
  normalize,
  percentile,
  resizeBilinear,
} from '../../www/overlay.js';

// The 256 colours of each map as RGB bytes. matplotlib 3.11.2: `cmap(i / 256, bytes=True)` for
// i = 0..255; zennit: `CMAPS['coldnhot'].palette()` (the colour at index i of its 0..255 scale).
const REFERENCE = {
  jet:
    'AAB/AACEAACIAACNAACRAACWAACaAACfAACjAACoAACsAACxAAC2AAC6AAC/AADDAADIAADMAADRAADVAADaAADeAADjAADoAADsAADxAAD1AAD6AAD+AAD/AAD/AAD/AAD/AAT/AAj/AAz/ABD/ABT/ABj/ABz/ACD/ACT/ACj/ACz/ADD/ADT/ADj/ADz/AED/AET/AEj/AEz/AFD/AFT/AFj/AFz/AGD/AGT/AGj/AGz/AHD/AHT/AHj/AHz/AID/AIT/AIj/AIz/AJD/AJT/AJj/AJz/AKD/AKT/AKj/AKz/ALD/ALT/ALj/ALz/AMD/AMT/AMj/AMz/AND/ANT/ANj/ANz+AOD6AOT3Auj0BezxCPDtDPTqD/jnEvzkFf/hGP/dHP/aH//XIv/UJf/QKf/NLP/KL//HMv/DNv/AOf+9PP+6P/+3Qv+zRv+wSf+tTP+qT/+mU/+jVv+gWf+dXP+aX/+WY/+TZv+Qaf+NbP+JcP+Gc/+Ddv+Aef99fP95gP92g/9zhv9wif9sjf9pkP9mk/9jlv9fmv9cnf9ZoP9Wo/9Tpv9Pqv9Mrf9JsP9Gs/9Ct/8/uv88vf85wP82w/8yx/8vyv8szf8p0P8l1P8i1/8f2v8c3f8Y4P8V5P8S5/8P6v8M7f8I8fwF9PgC9/QA+vAA/u0A/+kA/+UA/+IA/94A/9oA/9cA/9MA/88A/8sA/8gA/8QA/8AA/70A/7kA/7UA/7EA/64A/6oA/6YA/6MA/58A/5sA/5gA/5QA/5AA/4wA/4kA/4UA/4EA/34A/3oA/3YA/3MA/28A/2sA/2cA/2QA/2AA/1wA/1kA/1UA/1EA/00A/0oA/0YA/0IA/z8A/zsA/zcA/zQA/zAA/ywA/ygA/yUA/yEA/x0A/xoA/xYA/hIA+g8A9QsA8QcA7AMA6AAA4wAA3gAA2gAA1QAA0QAAzAAAyAAAwwAAvwAAugAAtgAAsQAArAAAqAAAowAAnwAAmgAAlgAAkQAAjQAAiAAAhAAAfwAA',
  bwr:
    'AAD/AgL/BAT/Bgb/CAj/Cgr/DAz/Dg7/EBD/EhL/FBT/Fhb/GBj/Ghr/HBz/Hh7/ICD/IiL/JCT/Jib/KCj/Kir/LCz/Li7/MDD/MjL/NDT/Njb/ODj/Ojr/PDz/Pj7/QED/QUH/RET/Rkb/SEj/SUn/TEz/Tk7/UFD/UVH/VFT/Vlb/WFj/WVn/XFz/Xl7/YGD/YWH/ZGT/Zmb/aGj/aWn/bGz/bm7/cHD/cXH/dHT/dnb/eHj/eXn/fHz/fn7/gID/goL/g4P/hob/iIj/ior/jIz/jo7/kJD/kpL/k5P/lpb/mJj/mpr/nJz/np7/oKD/oqL/o6P/pqb/qKj/qqr/rKz/rq7/sLD/srL/s7P/trb/uLj/urr/vLz/vr7/wMD/wsL/w8P/xsb/yMj/ysr/zMz/zs7/0ND/0tL/09P/1tb/2Nj/2tr/3Nz/3t7/4OD/4uL/4+P/5ub/6Oj/6ur/7Oz/7u7/8PD/8vL/8/P/9vb/+Pj/+vr//Pz//v7///7+//z8//r6//j4//b2//T0//Ly//Dw/+7u/+zs/+rq/+jo/+bm/+Tk/+Li/+Dg/97e/9zc/9ra/9jY/9bW/9PT/9LS/9DQ/87O/8zM/8rK/8jI/8bG/8PD/8LC/8DA/76+/7y8/7q6/7i4/7a2/7Oz/7Ky/7Cw/66u/6ys/6qq/6io/6am/6Oj/6Ki/6Cg/56e/5yc/5qa/5iY/5aW/5OT/5KS/5CQ/46O/4yM/4qK/4iI/4aG/4OD/4KC/4CA/35+/3x8/3l5/3h4/3Z2/3R0/3Fx/3Bw/25u/2xs/2lp/2ho/2Zm/2Rk/2Fh/2Bg/15e/1xc/1lZ/1hY/1ZW/1RU/1FR/1BQ/05O/0xM/0lJ/0hI/0ZG/0RE/0FB/0BA/z4+/zw8/zk5/zg4/zY2/zQ0/zEx/zAw/y4u/yws/ykp/ygo/yYm/yQk/yEh/yAg/x4e/xwc/xkZ/xgY/xYW/xQU/xER/xAQ/w4O/wwM/wkJ/wgI/wYG/wQE/wEB/wAA',
  seismic:
    'AABMAABPAABSAABUAABXAABaAABdAABgAABiAABlAABoAABrAABuAABwAABzAAB2AAB5AAB8AAB+AACBAACEAACHAACKAACMAACPAACSAACVAACYAACaAACdAACgAACjAACmAACoAACrAACuAACxAAC0AAC2AAC5AAC8AAC/AADCAADEAADHAADKAADNAADQAADSAADVAADYAADbAADeAADgAADjAADmAADpAADsAADuAADxAAD0AAD3AAD6AAD8AQH/BQX/CAj/DQ3/ERH/FRX/GRn/HR3/ISH/JSX/KCj/LS3/MTH/NTX/OTn/PT3/QUH/RUX/SEj/TU3/UVH/VVX/WVn/XV3/YWH/ZWX/aGj/bW3/cXH/dXX/eXn/fX3/gYH/hYX/iIj/jY3/kZH/lZX/mZn/nZ3/oaH/paX/qKj/ra3/sbH/tbX/ubn/vb3/wcH/xcX/yMj/zc3/0dH/1dX/2dn/3d3/4eH/5eX/6Oj/7e3/8fH/9fX/+fn//f3///39//n5//X1//Hx/+3t/+np/+Xl/+Hh/93d/9nZ/9XV/9HR/83N/8nJ/8XF/8HB/729/7m5/7S0/7Gx/62t/6mp/6Sk/6Gh/52d/5mZ/5SU/5GR/42N/4mJ/4SE/4GB/319/3l5/3V1/3Fx/21t/2lp/2Vl/2Fh/11d/1lZ/1VV/1FR/01N/0lJ/0VF/0FB/z09/zg4/zU1/zAw/y0t/ygo/yUl/yAg/x0d/xgY/xUV/xAQ/w0N/wgI/wUF/wAA/QAA+wAA+QAA9wAA9QAA8wAA8QAA7wAA7QAA6wAA6QAA5wAA5QAA4wAA4QAA3wAA3QAA2wAA2QAA1wAA1QAA0wAA0QAAzwAAzQAAywAAyQAAxwAAxQAAwwAAwQAAvwAAvQAAuwAAuQAAtwAAtQAAswAAsQAArwAArQAAqwAAqQAApwAApQAAowAAoQAAnwAAnQAAmwAAmQAAlwAAlQAAkwAAkQAAjwAAjQAAiwAAiQAAhwAAhQAAgwAAgQAAfwAA',
  coldnhot:
    'AP//APv/APf/APP/AO//AOv/AOf/AOP/AN//ANv/ANf/ANP/AM//AMv/AMf/AMP/AL//ALv/ALf/ALP/AK//AKv/AKf/AKP/AJ//AJv/AJf/AJP/AI//AIv/AIf/AIP/AH//AHv/AHf/AHP/AG//AGv/AGf/AGP/AF//AFv/AFf/AFP/AE//AEv/AEf/AEP/AD//ADv/ADf/ADP/AC//ACv/ACf/ACP/AB//ABv/ABf/ABP/AA//AAv/AAf/AAP/AAD/AAD7AAD3AADzAADvAADrAADnAADjAADfAADbAADXAADTAADPAADLAADHAADDAAC/AAC7AAC3AACzAACvAACrAACnAACjAACfAACbAACXAACTAACPAACLAACHAACDAAB/AAB7AAB3AABzAABvAABrAABnAABjAABfAABbAABXAABTAABPAABLAABHAABDAAA/AAA7AAA3AAAzAAAvAAArAAAnAAAjAAAfAAAbAAAXAAATAAAPAAALAAAHAAADAAAABgAADAAAEgAAGAAAHgAAJAAAKgAAMAAANgAAPAAAQgAASAAATgAAVQAAWwAAYQAAZwAAbQAAcwAAeQAAfwAAhQAAiwAAkQAAlwAAnQAAowAAqgAAsAAAtgAAvAAAwgAAyAAAzgAA1AAA2gAA4AAA5gAA7AAA8gAA+AAA/wAA/wYA/wwA/xIA/xgA/x4A/yQA/yoA/zAA/zYA/zwA/0IA/0gA/04A/1UA/1sA/2EA/2cA/20A/3MA/3kA/38A/4UA/4sA/5EA/5cA/50A/6MA/6oA/7AA/7YA/7wA/8IA/8gA/84A/9QA/9oA/+AA/+YA/+wA//IA//gA//8A//8F//8L//8R//8X//8d//8j//8p//8v//81//87//9B//9H//9N//9T//9Y//9e//9k//9q//9w//92//98//+C//+I//+O//+U//+a//+g//+m//+r//+x//+3//+9///D///J///P///V///b///h///n///t///z///5////',
};

test('colormaps equal matplotlib’s and zennit’s tables byte for byte', () => {
  assert.deepEqual(Object.keys(COLORMAPS).sort(), Object.keys(REFERENCE).sort());
  for (const [name, b64] of Object.entries(REFERENCE)) {
    const want = Buffer.from(b64, 'base64');
    assert.equal(want.length, 768);
    assert.deepEqual(Buffer.from(colormapLut(name)), want, name);
  }
});

test('values map to table entries the way each library does it', () => {
  // matplotlib: floor(v · 256), 1.0 → 255
  assert.deepEqual(colormapColor('jet', 0), [0, 0, 127]);
  assert.deepEqual(colormapColor('jet', 0.5), [124, 255, 121]);
  assert.deepEqual(colormapColor('jet', 1), [127, 0, 0]);
  assert.deepEqual(colormapColor('jet', 0.3), [0, 176, 255]);
  assert.deepEqual(colormapColor('seismic', 0.25), [1, 1, 255]);
  assert.deepEqual(colormapColor('seismic', 0.5), [255, 253, 253]);
  assert.equal(lutIndex('bwr', 0.999), 255);
  // zennit: floor(v · 255)
  assert.equal(lutIndex('coldnhot', 0.5), 127);
  assert.deepEqual(colormapColor('coldnhot', 1), [255, 255, 255]);
  assert.deepEqual(colormapColor('coldnhot', 0), [0, 255, 255]);
  // out of range and NaN clamp
  assert.equal(lutIndex('jet', -3), 0);
  assert.equal(lutIndex('jet', 7), 255);
  assert.equal(lutIndex('jet', NaN), 0);
});

test('normalisation: signed is symmetric, positive drops negatives, absolute folds', () => {
  const map = Float32Array.from([-2, -1, 0, 1, 4]);
  const s = normalize(map, { sign: 'signed', clip: 100 });
  assert.equal(s.scale, 4);
  assert.deepEqual(Array.from(s.values), [0.25, 0.375, 0.5, 0.625, 1]);
  const p = normalize(map, { sign: 'positive', clip: 100 });
  assert.deepEqual(Array.from(p.values), [0, 0, 0, 0.25, 1]);
  const a = normalize(map, { sign: 'absolute', clip: 100 });
  assert.deepEqual(Array.from(a.values), [0.5, 0.25, 0, 0.25, 1]);
  // clipping at a percentile saturates the outlier
  const c = normalize(map, { sign: 'absolute', clip: 75 });
  assert.equal(c.scale, 2);
  assert.deepEqual(Array.from(c.values), [1, 0.5, 0, 0.5, 1]);
  // an all-zero map is neutral, not NaN
  assert.deepEqual(Array.from(normalize(new Float32Array(3), { sign: 'signed' }).values), [0.5, 0.5, 0.5]);
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
});

test('.npy files are byte-identical to numpy.save', () => {
  // numpy 2.4: np.save(f, (np.arange(n, dtype=np.float32) * 0.5 - 1).reshape(shape))
  const numpy = {
    '1,2,3': 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIC/AAAAvwAAAAAAAAA/AACAPwAAwD8=',
    4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDQsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIC/AAAAvwAAAAAAAAA/',
  };
  for (const [dims, b64] of Object.entries(numpy)) {
    const shape = dims.split(',').map(Number);
    const n = shape.reduce((x, y) => x * y, 1);
    const data = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 1);
    assert.deepEqual(Buffer.from(encodeNpy(data, shape)), Buffer.from(b64, 'base64'), `shape ${dims}`);
    const back = decodeNpy(Buffer.from(b64, 'base64'));
    assert.deepEqual(back.shape, shape);
    assert.deepEqual(Array.from(back.data), Array.from(data));
  }
  assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), /do not fill/);
  assert.throws(() => decodeNpy(new Uint8Array([1, 2, 3])), /not a \.npy/);
});

test('PNG encoding keeps every pixel', async () => {
  const w = 3;
  const h = 2;
  const rgba = Uint8ClampedArray.from({ length: w * h * 4 }, (_, i) => (i * 37) % 256);
  const png = Buffer.from(await encodePng(rgba, w, h));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]], [w, h, 8, 6]);
  const idatLen = png.readUInt32BE(33);
  assert.equal(png.toString('latin1', 37, 41), 'IDAT');
  const raw = inflateSync(png.subarray(41, 41 + idatLen));
  for (let y = 0; y < h; y++) {
    assert.equal(raw[y * (w * 4 + 1)], 0);
    assert.deepEqual([...raw.subarray(y * (w * 4 + 1) + 1, (y + 1) * (w * 4 + 1))], [...rgba.subarray(y * w * 4, (y + 1) * w * 4)]);
  }
  assert.equal(png.toString('latin1', png.length - 8, png.length - 4), 'IEND');
});

test('crops, resizing and blending', () => {
  // torchvision Resize(256) + CenterCrop(224) on a 451×300 photo: a 263×263 square, centred
  assert.deepEqual(cropRegion(451, 300, { mode: 'shorter_side', resize: 256, crop: [224, 224] }), { x: 94, y: 18, w: 263, h: 263 });
  // Caffe style: 256×256 ignoring the aspect, centre 224×224
  assert.deepEqual(cropRegion(451, 300, { mode: 'stretch', resize: 256, crop: [224, 224] }), { x: 28, y: 18, w: 395, h: 263 });
  assert.deepEqual(cropRegion(451, 300, { mode: 'full' }), { x: 0, y: 0, w: 451, h: 300 });
  // bilinear upsampling of a 2×1 ramp with half-pixel centres
  const up = resizeBilinear(Uint8ClampedArray.from([0, 200]), 2, 1, 4, 1, 1);
  assert.deepEqual(Array.from(up), [0, 50, 150, 200]);
  const b = blend(Uint8ClampedArray.from([100, 100, 100, 255]), Uint8ClampedArray.from([200, 0, 100, 255]), 0.4);
  assert.deepEqual(Array.from(b), [140, 60, 100, 255]);
});
