#!/usr/bin/env python3
"""Generate the robustness corpus: images, models and parameter sets that people may hand the explainer,
good and bad, each with the outcome the engine must give. Deterministic: every run writes the same bytes.
Needs numpy, onnx and Pillow (tools/requirements.txt).

Usage: python gen_corpus.py [--out DIR]     (default: corpus/ next to this script)

DIR/manifest.json lists every case as {"file" | "params", "kind": "image" | "model" | "params", "expect", "why"}:
  expect "ok"            must decode / load / explain, with finite relevance
  expect "error:<Kind>"  must fail with that error kind (Image, Load, UnsupportedOp, UnsupportedInput,
                         InvalidParam, Shape), and "message" (if given) must occur in the error text
  expect "any"           damaged data: either outcome, but a named error, never a crash or a hang
"""
import argparse
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from PIL import Image

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
sys.dont_write_bytecode = True


class Corpus:
    def __init__(self, out):
        self.out = out
        self.cases = []
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "models").mkdir(parents=True, exist_ok=True)

    def add(self, kind, name, data, expect, why, message=None):
        sub = "images" if kind == "image" else "models"
        path = self.out / sub / name
        path.write_bytes(data)
        case = {"file": f"{sub}/{name}", "kind": kind, "expect": expect, "why": why}
        if message:
            case["message"] = message
        self.cases.append(case)

    def params(self, params, expect, why, message=None):
        case = {"params": params, "kind": "params", "expect": expect, "why": why}
        if message:
            case["message"] = message
        self.cases.append(case)


# ---------------------------------------------------------------- images

def pil_bytes(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, rows, interlace=0, level=9):
    """A PNG written by hand, for what Pillow will not write (16-bit RGB, 0×0, lying headers)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows, level))
            + png_chunk(b"IEND", b""))


def big_gray_png(side):
    """A side × side grey PNG, streamed through zlib so that it never exists whole in memory."""
    comp = zlib.compressobj(9)
    row = b"\x00" + bytes([128]) * side
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def photo(rng, w, h):
    """A smooth colour picture with some structure (gradients plus blobs)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.0)
    g = 127 + 120 * np.cos(y / max(h, 1) * 5.0)
    b = 127 + 100 * np.sin((x + 2 * y) / 9.0) + 20 * rng.random((h, w), dtype=np.float32)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def jpeg_header_only(width, height):
    """SOI + a baseline SOF0 frame header claiming width × height, and nothing else."""
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 17, 8, height, width, 3) + bytes(
        [1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    return b"\xff\xd8" + sof + b"\xff\xd9"


def jpeg_claiming(jpeg, width, height):
    """A real JPEG whose frame header (SOF0) is rewritten to claim width × height."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]


def images(c, rng):
    base = photo(rng, 64, 48)
    rgb = Image.fromarray(base, "RGB")
    valid = {}

    # colour types and bit depths
    valid["rgb.png"] = pil_bytes(rgb, "PNG")
    valid["rgba.png"] = pil_bytes(rgb.convert("RGBA"), "PNG")
    valid["gray.png"] = pil_bytes(rgb.convert("L"), "PNG")
    valid["gray_alpha.png"] = pil_bytes(rgb.convert("LA"), "PNG")
    valid["palette.png"] = pil_bytes(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")
    pal_t = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_t.info["transparency"] = 0
    valid["palette_transparent.png"] = pil_bytes(pal_t, "PNG", transparency=0)
    valid["bilevel.png"] = pil_bytes(rgb.convert("1"), "PNG")
    g16 = (base[..., 0].astype(np.uint16) * 257)
    valid["gray16.png"] = raw_png(64, 48, 16, 0, b"".join(b"\x00" + r.astype(">u2").tobytes() for r in g16))
    rgb16 = base.astype(np.uint16) * 257
    valid["rgb16.png"] = raw_png(64, 48, 16, 2, b"".join(b"\x00" + r.astype(">u2").tobytes() for r in rgb16))
    rgba16 = np.concatenate([rgb16, np.full((48, 64, 1), 40000, np.uint16)], -1)
    valid["rgba16.png"] = raw_png(64, 48, 16, 6, b"".join(b"\x00" + r.astype(">u2").tobytes() for r in rgba16))
    valid["optimized.png"] = pil_bytes(rgb, "PNG", optimize=True)
    valid["transparent_everywhere.png"] = pil_bytes(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG")

    # JPEG: baseline, progressive, grey, CMYK, tiny quality, 4:4:4
    valid["rgb.jpg"] = pil_bytes(rgb, "JPEG", quality=90)
    valid["progressive.jpg"] = pil_bytes(rgb, "JPEG", quality=85, progressive=True)
    valid["gray.jpg"] = pil_bytes(rgb.convert("L"), "JPEG")
    valid["cmyk.jpg"] = pil_bytes(rgb.convert("CMYK"), "JPEG")
    valid["quality1.jpg"] = pil_bytes(rgb, "JPEG", quality=1)
    valid["subsampling444.jpg"] = pil_bytes(rgb, "JPEG", subsampling=0)
    # EXIF orientations 1–8 on a non-square picture
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        valid[f"exif_orientation_{o}.jpg"] = pil_bytes(rgb, "JPEG", exif=exif.tobytes())

    # GIF: still, animated, transparent
    valid["still.gif"] = pil_bytes(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")
    frames = [Image.fromarray(np.roll(base, 8 * k, axis=1)).convert("P", palette=Image.Palette.ADAPTIVE)
              for k in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    valid["animated.gif"] = buf.getvalue()

    # BMP and WebP
    valid["rgb.bmp"] = pil_bytes(rgb, "BMP")
    valid["rgba.bmp"] = pil_bytes(rgb.convert("RGBA"), "BMP")
    valid["palette.bmp"] = pil_bytes(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "BMP")
    valid["bilevel.bmp"] = pil_bytes(rgb.convert("1"), "BMP")
    valid["lossless.webp"] = pil_bytes(rgb, "WEBP", lossless=True)
    valid["lossy.webp"] = pil_bytes(rgb, "WEBP", quality=70)
    valid["alpha.webp"] = pil_bytes(rgb.convert("RGBA"), "WEBP", lossless=True)

    # sizes: the smallest, very thin, odd, larger than the model
    for w, h in [(1, 1), (2, 2), (1, 500), (500, 1), (3, 7), (7, 3), (1000, 20), (640, 480)]:
        valid[f"size_{w}x{h}.png"] = pil_bytes(Image.fromarray(photo(rng, w, h)), "PNG")
    valid["size_1x1.jpg"] = pil_bytes(Image.fromarray(photo(rng, 1, 1)), "JPEG")
    valid["size_1x1.gif"] = pil_bytes(Image.fromarray(photo(rng, 1, 1)).convert("P"), "GIF")

    for name, data in valid.items():
        c.add("image", name, data, "ok", "a valid image")

    # wrong extension, right content: decided by content
    c.add("image", "png_named.jpg", valid["rgb.png"], "ok", "a PNG with a .jpg extension")
    c.add("image", "jpeg_named.png", valid["rgb.jpg"], "ok", "a JPEG with a .png extension")

    # huge: 20000 × 20000 PNG (streamed, downscaled); lying headers
    c.add("image", "huge_20000x20000.png", big_gray_png(20000), "ok", "400 megapixels, read downscaled")
    c.add("image", "header_100000x100000.png", raw_png(100000, 100000, 8, 0, b"\x00" * 1000), "error:Image",
          "a header claiming 10 gigapixels with almost no data")
    c.add("image", "header_20000x20000_interlaced.png", raw_png(20000, 20000, 8, 0, b"\x00" * 1000, interlace=1),
          "error:Image", "interlaced and huge", message="interlaced")
    c.add("image", "header_20000x20000.jpg", jpeg_claiming(valid["rgb.jpg"], 20000, 20000), "error:Image",
          "a small JPEG whose header claims 400 megapixels", message="megapixels")
    c.add("image", "header_only_20000x20000.jpg", jpeg_header_only(20000, 20000), "error:Image",
          "a JPEG frame header and nothing else")
    c.add("image", "header_30000x30000.gif",
          b"GIF89a" + struct.pack("<HH", 30000, 30000) + b"\x00\x00\x00" + b";", "error:Image",
          "a GIF screen of 900 megapixels and no frames")

    # empty and zero-sized
    c.add("image", "empty.png", b"", "error:Image", "an empty file", message="empty")
    c.add("image", "zero_0x0.png", raw_png(0, 0, 8, 2, b""), "error:Image", "a PNG header with 0 × 0 pixels")
    c.add("image", "zero_0x10.png", raw_png(0, 10, 8, 2, b"\x00" * 10), "error:Image", "0 × 10 pixels")
    c.add("image", "zero_10x0.png", raw_png(10, 0, 8, 2, b""), "error:Image", "10 × 0 pixels")

    # not images at all, with image extensions
    not_images = {
        "text.png": b"This is not an image, it is a sentence.\n",
        "html.jpg": b"<!doctype html><title>x</title><p>hello",
        "json.gif": b'{"width": 10, "height": 10}',
        "zeros.png": bytes(4096),
        "onnx.jpg": (FIXTURES / "basic_bn.onnx").read_bytes()[:4096],
        "pdf.png": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        "svg.png": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "tiff.png": b"II*\x00\x08\x00\x00\x00\x00\x00",
        "magic_only.png": b"\x89PNG\r\n\x1a\n",
        "magic_only.jpg": b"\xff\xd8\xff",
        "magic_only.gif": b"GIF89a",
        "magic_only.bmp": b"BM",
        "magic_only.webp": b"RIFF\x00\x00\x00\x00WEBP",
    }
    for i in range(6):
        not_images[f"random_{i}.png"] = rng.integers(0, 256, 64 << i, dtype=np.uint8).tobytes()
    for name, data in not_images.items():
        c.add("image", name, data, "error:Image", "not an image")

    # damaged copies of the valid files: truncated and bit-flipped
    damaged_from = ["rgb.png", "rgba16.png", "rgb.jpg", "progressive.jpg", "cmyk.jpg", "animated.gif", "rgb.bmp",
                    "lossless.webp", "lossy.webp", "exif_orientation_6.jpg", "palette.png", "gray.jpg"]
    for name in damaged_from:
        data = valid[name]
        stem, ext = name.rsplit(".", 1)
        for frac in (0.1, 0.5, 0.9):
            c.add("image", f"truncated_{int(frac * 100)}_{stem}.{ext}", data[: int(len(data) * frac)], "any",
                  f"{name} cut at {int(frac * 100)} %")
        for k in range(3):
            flipped = bytearray(data)
            for pos in rng.integers(8, len(data), 4 + 4 * k):
                flipped[pos] ^= 1 << int(rng.integers(0, 8))
            c.add("image", f"flipped_{k}_{stem}.{ext}", bytes(flipped), "any", f"{name} with flipped bits")
    # truncated headers: certainly unreadable
    for name in ["rgb.png", "rgb.jpg", "still.gif", "rgb.bmp", "lossless.webp"]:
        stem, ext = name.rsplit(".", 1)
        c.add("image", f"header_cut_{stem}.{ext}", valid[name][:20], "error:Image", f"{name} cut inside its header")


# ---------------------------------------------------------------- models

def model_bytes(m):
    return m.SerializeToString()


# the fixtures the corpus is built from: a fixed list, so that a new fixture does not change the corpus
# (new fixtures have their own tests; `external_data.onnx` could not load without its side file anyway)
CORPUS_FIXTURES = ("basic_bn", "basic_folded", "basic_opset18", "bottleneck_bn", "bottleneck_nhwc", "not_a_cnn",
                   "unsupported_op")


def models(c, rng):
    fixtures = [FIXTURES / f"{name}.onnx" for name in CORPUS_FIXTURES]
    for p in fixtures:
        expect = {"unsupported_op.onnx": "error:UnsupportedOp", "not_a_cnn.onnx": "error:UnsupportedInput"}.get(
            p.name, "ok")
        msg = {"unsupported_op.onnx": "Erf"}.get(p.name)
        c.add("model", p.name, p.read_bytes(), expect, "a test fixture", message=msg)

    basic = onnx.load(FIXTURES / "basic_bn.onnx")
    data = basic.SerializeToString()
    # truncated copies at many cut points
    for p in fixtures[:4]:
        raw = p.read_bytes()
        for frac in (0.0005, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            c.add("model", f"truncated_{int(frac * 10000):04d}_{p.name}", raw[: max(1, int(len(raw) * frac))],
                  "any", f"{p.name} cut at {frac * 100:g} %")
    for k in range(12):
        flipped = bytearray(data)
        for pos in rng.integers(0, len(data), 1 + 2 * k):
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
        c.add("model", f"flipped_{k:02d}_basic_bn.onnx", bytes(flipped), "any", "basic_bn with flipped bits")
    for k in range(10):
        c.add("model", f"random_{k}.onnx", rng.integers(0, 256, 16 << k, dtype=np.uint8).tobytes(), "error:Load",
              "random bytes")
    c.add("model", "empty.onnx", b"", "error:Load", "an empty file", message="empty")
    c.add("model", "text.onnx", b"ir_version: 8\ngraph { name: 'x' }\n", "error:Load", "ONNX text format")
    c.add("model", "png.onnx", pil_bytes(Image.fromarray(photo(rng, 16, 16)), "PNG"), "error:Load", "a PNG image")

    def variant(name, edit, expect, why, message=None):
        m = onnx.load(FIXTURES / "basic_bn.onnx")
        edit(m)
        c.add("model", name, model_bytes(m), expect, why, message=message)

    def dyn_hw(m):
        dims = m.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param = "height"
        dims[3].dim_param = "width"

    def dyn_batch(m):
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"

    def dyn_all(m):
        for i, d in enumerate(m.graph.input[0].type.tensor_type.shape.dim):
            d.dim_param = f"d{i}"

    def no_shape(m):
        m.graph.input[0].type.tensor_type.ClearField("shape")

    def set_init(value, which=0):
        def edit(m):
            inits = [i for i in m.graph.initializer if len(i.dims) == 4]
            arr = numpy_helper.to_array(inits[which]).copy()
            arr.flat[arr.size // 2] = value
            inits[which].CopyFrom(numpy_helper.from_array(arr, inits[which].name))
        return edit

    def set_bn(value):
        def edit(m):
            inits = [i for i in m.graph.initializer if len(i.dims) == 1]
            arr = numpy_helper.to_array(inits[0]).copy()
            arr[0] = value
            inits[0].CopyFrom(numpy_helper.from_array(arr, inits[0].name))
        return edit

    def two_inputs(m):
        extra = onnx.helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 3])
        m.graph.input.append(extra)

    def int_input(m):
        m.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64

    def rank2(m):
        dims = m.graph.input[0].type.tensor_type.shape.dim
        while len(dims) > 2:
            del dims[-1]

    def no_nodes(m):
        del m.graph.node[:]

    def dangling(m):
        m.graph.node[1].input[0] = "does_not_exist"

    def huge_weights(m):
        for i in m.graph.initializer:
            if len(i.dims) == 4:
                arr = numpy_helper.to_array(i) * np.float32(1e30)
                i.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), i.name))

    def opset_future(m):
        m.opset_import[0].version = 99

    variant("dynamic_hw.onnx", dyn_hw, "ok", "symbolic height and width (explained at 224 × 224)")
    variant("dynamic_batch.onnx", dyn_batch, "ok", "a symbolic batch axis (pinned to 1)")
    variant("dynamic_all.onnx", dyn_all, "error:UnsupportedInput", "every axis symbolic", message="dynamic")
    variant("no_input_shape.onnx", no_shape, "error:UnsupportedInput", "the input has no shape")
    for k, v in enumerate([np.nan, np.inf, -np.inf]):
        variant(f"nonfinite_conv_{k}.onnx", set_init(v), "error:Load", f"a conv weight is {v}", message="weights")
        variant(f"nonfinite_bn_{k}.onnx", set_bn(v), "error:Load", f"a BatchNorm parameter is {v}",
                message="weights")
    variant("two_inputs.onnx", two_inputs, "error:UnsupportedInput", "two graph inputs", message="inputs")
    variant("int_input.onnx", int_input, "any", "an integer input")
    variant("rank2_input.onnx", rank2, "any", "a rank-2 input for a CNN")
    variant("no_nodes.onnx", no_nodes, "any", "a graph without nodes")
    variant("dangling_input.onnx", dangling, "error:Load", "a node reads a tensor nobody writes")
    variant("huge_weights.onnx", huge_weights, "any", "weights of 1e30 overflow float32 in the forward pass")
    variant("opset_99.onnx", opset_future, "any", "an opset from the future")


# ---------------------------------------------------------------- parameters

def params(c):
    ok = [
        {}, {"composite": "reference"}, {"composite": "epsilon_plus", "epsilon": 0.1},
        {"composite": "epsilon_gamma_box", "gamma": 0.5}, {"composite": "epsilon_alpha2_beta1", "alpha": 1},
        {"composite": "epsilon_alpha2_beta1", "beta": 0}, {"composite": "epsilon_alpha2_beta1", "alpha": 3, "beta": 2},
        {"variant": "latest"}, {"variant": "simple"}, {"variant": "conventional"}, {"variant": "flows_skip_simple"},
        {"target": 0}, {"target": 9}, {"start": "logit"}, {"method": "gradient"}, {"quantize": 8},
        {"composite": "conserving", "epsilon": 0},
    ]
    for p in ok:
        c.params(p, "ok", "valid parameters")
    bad = [
        ({"target": 10}, "target"), ({"target": 1000000}, "target"), ({"target": -1}, "target"),
        ({"epsilon": -1}, "epsilon"), ({"epsilon": "nan"}, "epsilon"), ({"epsilon": "inf"}, "epsilon"),
        ({"composite": "epsilon_gamma_box", "gamma": -0.5}, "gamma"), ({"gamma": 0.5}, "gamma"),
        ({"composite": "epsilon_alpha2_beta1", "alpha": 2, "beta": 2}, "alpha"),
        ({"composite": "epsilon_alpha2_beta1", "alpha": 0.5}, "alpha"),
        ({"composite": "epsilon_alpha2_beta1", "beta": -1}, "alpha"), ({"alpha": 2}, "alpha"),
        ({"composite": "nope"}, "composite"), ({"composite": ""}, "composite"), ({"composite": "Conserving"}, "composite"),
        ({"variant": "flows-skip"}, "variant"), ({"variant": ""}, "variant"), ({"start": "softmax"}, "start"),
        ({"method": "integrated_gradients"}, "method"), ({"block": 0}, "block"), ({"step": 0}, "step"),
    ]
    for p, name in bad:
        c.params(p, "error:InvalidParam", f"invalid `{name}`", message=name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "corpus")
    args = ap.parse_args()
    rng = np.random.default_rng(20241001)
    c = Corpus(args.out)
    images(c, rng)
    models(c, rng)
    params(c)
    (args.out / "manifest.json").write_text(json.dumps({"cases": c.cases}, indent=1) + "\n")
    kinds = {k: sum(1 for x in c.cases if x["kind"] == k) for k in ("image", "model", "params")}
    print(f"{len(c.cases)} cases: {kinds} → {args.out}")


if __name__ == "__main__":
    main()
