#!/usr/bin/env python3
"""Independent numpy re-implementation of the LRP rules of Otsuki et al.,
"Layer-Wise Relevance Propagation with Conservation Property for ResNet" (ECCV 2024).

This is the oracle for the engine's `reference` composite (see design/METHOD.md). It contains a tiny float64
ONNX interpreter for the ops used by the test fixtures and a backward pass that applies, node by node:

  Conv            z+ : z = conv(a, W+) + eps (bias left out), R_in = a * convT(R / z, W+)
  first Conv      the same, with a replaced by ones (zero padding still applies)
  MaxPool         replaced by a 2x2 / stride-2 average pool over the MaxPool input (see _maxpool_substitute)
  (Global)AvgPool z = pool(a) + eps, R_in = a * poolT(R / z)
  Gemm / MatMul   z+ with the bias dropped
  residual Add    Relevance Splitting, see split_ratio()
  BN, Relu, Flatten, Reshape, Transpose, bias Add: pass-through; a final Softmax is skipped.

Start relevance: softmax probability of the target class at its logit (or the raw logit, --start logit).
Relevance reaching a tensor from several consumers (fan-out) is summed.

Details as in the authors' code (src/lrp.py, src/lrp_layers.py, src/utils.py of their repository):
  * start = softmax(logits) with only the top-1 entry kept (visualize.py calls basic_lrp with topk=1);
  * the image is replaced by ones before the first conv; BN, ReLU (including the ReLU after each Add) pass;
  * every MaxPool becomes AvgPool2d(kernel 2) (stride 2, no padding) for the backward pass;
  * Linear: weights clamped at 0 and bias zeroed. torchvision convs have no bias; a BN-folded conv's bias is
    left out of z here so that folded and unfolded graphs give the same map (their code would keep a bias);
  * split ratio |m| / (|s| + |m|) per element, identity blocks under `latest`/`simple` send everything to the
    main branch.

Usage:
  python authors_lrp.py --model M.onnx --input-npy X.npy [--target N|top1] [--variant flows_skip]
                        [--start prob|logit] --out R.npy [--json] [--ledger]
Needs only numpy and onnx.
"""
import argparse
import json
import math
import sys

import numpy as np
import onnx
from onnx import numpy_helper

EPS = 1e-5            # the authors' stabiliser, always added as z + eps (z >= 0 under z+)
CONV_EPS = 1e-6       # zennit's default stabiliser of the Norm rule, used by the `conventional` split
VARIANTS = ("flows_skip", "flows_skip_simple", "latest", "simple", "conventional")
PASS_THROUGH = {"BatchNormalization", "Relu", "Flatten", "Reshape", "Identity", "Dropout"}


# ----------------------------------------------------------------------------------------------------------
# Kernels (NCHW, float64). Convolution is a sum over kernel offsets of (C_out x C_in) matmuls; its transpose is
# the same loop scattering back, so the pair is an exact adjoint.
# ----------------------------------------------------------------------------------------------------------
def _out_size(n, k, s, p0, p1, ceil=False):
    span = n + p0 + p1 - k
    return (-(-span // s) if ceil else span // s) + 1


def _windows(shape, k, s, pads):
    """Yield (i, j, slice_h, slice_w) of every kernel offset into the padded input."""
    ho = _out_size(shape[2], k[0], s[0], pads[0], pads[2])
    wo = _out_size(shape[3], k[1], s[1], pads[1], pads[3])
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, slice(i, i + s[0] * (ho - 1) + 1, s[0]), slice(j, j + s[1] * (wo - 1) + 1, s[1])


def _pad(x, pads, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=value)


def _crop(xp, pads, shape):
    return xp[:, :, pads[0]:pads[0] + shape[2], pads[1]:pads[1] + shape[3]]


def conv2d(x, w, s, pads):
    xp, out = _pad(x, pads), None
    for i, j, sh, sw in _windows(x.shape, w.shape[2:], s, pads):
        t = np.einsum("oc,nchw->nohw", w[:, :, i, j], xp[:, :, sh, sw], optimize=True)
        out = t if out is None else out + t
    return out


def conv2d_t(g, w, s, pads, in_shape):
    """Adjoint of conv2d: <conv2d(x), g> == <x, conv2d_t(g)>."""
    xp = np.zeros((in_shape[0], in_shape[1], in_shape[2] + pads[0] + pads[2], in_shape[3] + pads[1] + pads[3]))
    for i, j, sh, sw in _windows(in_shape, w.shape[2:], s, pads):
        xp[:, :, sh, sw] += np.einsum("oc,nohw->nchw", w[:, :, i, j], g, optimize=True)
    return _crop(xp, pads, in_shape)


def window_sum(x, k, s, pads, reduce=np.add, pad_value=0.0):
    xp, out = _pad(x, pads, pad_value), None
    for _, _, sh, sw in _windows(x.shape, k, s, pads):
        out = xp[:, :, sh, sw].copy() if out is None else reduce(out, xp[:, :, sh, sw])
    return out


def window_sum_t(g, k, s, pads, in_shape):
    xp = np.zeros(in_shape[:2] + (in_shape[2] + pads[0] + pads[2], in_shape[3] + pads[1] + pads[3]))
    for _, _, sh, sw in _windows(in_shape, k, s, pads):
        xp[:, :, sh, sw] += g
    return _crop(xp, pads, in_shape)


# ----------------------------------------------------------------------------------------------------------
# Graph + forward
# ----------------------------------------------------------------------------------------------------------
class Graph:
    def __init__(self, model_path):
        model = onnx.load(model_path)
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.nodes = []
        for n in g.node:  # ONNX requires topological order
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            else:
                self.nodes.append(n)
        self.input = next(i.name for i in g.input if i.name not in self.consts)
        self.output = g.output[0].name
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.fanout = {}
        for n in self.nodes:
            for i in n.input:
                self.fanout[i] = self.fanout.get(i, 0) + 1
        # conv depth of each tensor: the largest number of Conv nodes on a path from the graph input
        self.depth = {self.input: 0}
        for n in self.nodes:
            d = max((self.depth.get(i, 0) for i in n.input), default=0) + (n.op_type == "Conv")
            for o in n.output:
                self.depth[o] = d

    @staticmethod
    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def forward(self, x):
        """Run the graph in float64; returns every tensor by name."""
        t = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in self.consts.items()}
        t[self.input] = np.asarray(x, dtype=np.float64)
        for n in self.nodes:
            t[n.output[0]] = self._run(n, [t[i] for i in n.input if i], self.attrs(n))
        return t

    def _run(self, n, x, at):
        op = n.op_type
        if op in ("Conv", "MaxPool", "AveragePool"):
            if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise NotImplementedError(f"{n.name}: auto_pad")
            if any(d != 1 for d in at.get("dilations", [1, 1])):
                raise NotImplementedError(f"{n.name}: dilations")
            s, pads = at.get("strides", [1, 1]), list(at.get("pads", [0, 0, 0, 0]))
            if at.get("ceil_mode", 0):  # the last, partial window: padding at the end that no average counts
                for a in range(2):
                    size, k = x[0].shape[2 + a], at["kernel_shape"][a]
                    out = _out_size(size, k, s[a], pads[a], pads[a + 2], ceil=True)
                    pads[a + 2] = max(pads[a + 2], (out - 1) * s[a] + k - size - pads[a])
        if op == "Conv":
            if at.get("group", 1) != 1:
                raise NotImplementedError(f"{n.name}: grouped conv")
            y = conv2d(x[0], x[1], s, pads)
            return y + x[2].reshape(1, -1, 1, 1) if len(x) > 2 else y
        if op == "BatchNormalization":
            xx, g, b, m, v = x[:5]
            k = g / np.sqrt(v + at.get("epsilon", 1e-5))
            return xx * k.reshape(1, -1, 1, 1) + (b - m * k).reshape(1, -1, 1, 1)
        if op == "Relu":
            return np.maximum(x[0], 0.0)
        if op == "Tanh":
            return np.tanh(x[0])
        if op == "Erf":
            return np.vectorize(math.erf)(x[0])
        if op in ("Identity", "Dropout"):
            return x[0]
        if op == "MaxPool":
            return window_sum(x[0], at["kernel_shape"], s, pads, np.maximum, -np.inf)
        if op == "AveragePool":
            k = at["kernel_shape"]
            if at.get("count_include_pad", 0) or not any(pads):
                return window_sum(x[0], k, s, pads) / (k[0] * k[1])
            return window_sum(x[0], k, s, pads) / window_sum(np.ones_like(x[0]), k, s, pads)
        if op == "GlobalAveragePool":
            return x[0].mean(axis=(2, 3), keepdims=True)
        if op == "ReduceMean":  # axes an attribute up to opset 17, an input from opset 18 on
            axes = at["axes"] if "axes" in at else x[1].astype(int)
            return x[0].mean(axis=tuple(int(a) for a in axes), keepdims=bool(at.get("keepdims", 1)))
        if op == "Sigmoid":
            return 1.0 / (1.0 + np.exp(-x[0]))
        if op == "Mul":
            return x[0] * x[1]
        if op == "Add":
            return x[0] + x[1]
        if op == "Flatten":
            ax = at.get("axis", 1)
            return x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
        if op == "Reshape":
            shape = [d if d != 0 else x[0].shape[i] for i, d in enumerate(x[1].astype(int))]
            return x[0].reshape(shape)
        if op == "Transpose":
            return x[0].transpose(at.get("perm", None))
        if op == "Gemm":
            a = x[0].T if at.get("transA", 0) else x[0]
            b = x[1].T if at.get("transB", 0) else x[1]
            y = at.get("alpha", 1.0) * (a @ b)
            return y + at.get("beta", 1.0) * x[2] if len(x) > 2 else y
        if op == "MatMul":
            return x[0] @ x[1]
        if op == "Softmax":
            ax = at.get("axis", -1 if self.opset >= 13 else 1)
            v = x[0] if self.opset >= 13 else x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
            ax = ax if self.opset >= 13 else 1
            e = np.exp(v - v.max(axis=ax, keepdims=True))
            return (e / e.sum(axis=ax, keepdims=True)).reshape(x[0].shape)
        raise NotImplementedError(f"forward: op {op} (node {n.name})")


# ----------------------------------------------------------------------------------------------------------
# LRP rules
# ----------------------------------------------------------------------------------------------------------
def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _maxpool_substitute(a, r):
    """The authors' MaxPool rule: AvgPool2d(kernel 2, stride 2, no padding, floor mode) over the MaxPool input a,
    z = avgpool(a) + eps, R_in = a * upsample(R / z) / 4.

    Their code needs the 2x2 pool's output to have the MaxPool's output shape (true for torchvision ResNets at
    224x224: 112 -> 56). With an odd MaxPool input and pad 1 the MaxPool gives ceil(H/2) rows but the floor-mode
    2x2 pool gives floor(H/2), and their code stops with a shape error. We extend the rule: output row i always
    covers input rows 2i, 2i+1; rows past the input edge count as zeros (still divided by 4), and input rows
    no window covers (MaxPool output of floor(H/2) for odd H, as in floor mode) receive no relevance.
    """
    n, c, h, w = a.shape
    ho, wo = r.shape[2:]
    if ho not in (h // 2, (h + 1) // 2) or wo not in (w // 2, (w + 1) // 2):
        raise NotImplementedError(f"MaxPool substitute: output {ho}x{wo} does not fit 2x2 pooling of {h}x{w}")
    hh, ww = min(h, 2 * ho), min(w, 2 * wo)
    ap = np.zeros((n, c, 2 * ho, 2 * wo))
    ap[:, :, :hh, :ww] = a[:, :, :hh, :ww]
    z = ap.reshape(n, c, ho, 2, wo, 2).mean(axis=(3, 5)) + EPS
    up = np.repeat(np.repeat(r / z / 4.0, 2, axis=2), 2, axis=3)
    r_in = np.zeros_like(a)
    r_in[:, :, :hh, :ww] = (ap * up)[:, :, :hh, :ww]
    return r_in


def split_ratio(variant, s, m, identity):
    """Fraction of R_y that goes down the main branch (the rest takes the shortcut).

    Authors' code (src/lrp_layers.py, _calc_mainstream_flow_ratio): ratio = |m| / (|s| + |m|) with no guard;
    where |s| + |m| == 0 (0/0, never met on real-valued activations) we use 1/2 instead of their NaN.
    """
    if variant == "conventional":  # zennit Norm on the Sum: signed, sign-aware stabiliser
        y = s + m
        return m / (y + ((y == 0) + np.sign(y)) * CONV_EPS)
    half, one = np.full_like(m, 0.5), np.ones_like(m)
    den = np.abs(s) + np.abs(m)
    prop = np.where(den > 0, np.abs(m) / np.where(den > 0, den, 1.0), 0.5)
    if variant == "flows_skip":
        return prop
    if variant == "flows_skip_simple":
        return half
    if variant == "latest":
        return one if identity else prop
    if variant == "simple":
        return one if identity else half
    raise ValueError(f"unknown variant {variant}")


def _backward(g, n, act, r, variant):
    """Relevance of the inputs of node n given the relevance r of its output. Returns {input name: R}."""
    op, at = n.op_type, g.attrs(n)
    x = n.input[0]
    if op in PASS_THROUGH:
        return {x: r.reshape(act[x].shape)}
    if op == "Transpose":
        return {x: r.transpose(np.argsort(at["perm"]))}
    if op == "Conv":
        # first conv (nothing but layout ops between it and the image): the authors feed ones instead of a
        a = np.ones_like(act[x]) if g.depth[x] == 0 else act[x]
        w = np.maximum(act[n.input[1]], 0.0)
        s, pads = at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])
        z = conv2d(a, w, s, pads) + EPS
        return {x: a * conv2d_t(r / z, w, s, pads, a.shape)}
    if op == "MaxPool":
        return {x: _maxpool_substitute(act[x], r)}
    if op == "GlobalAveragePool":
        a = act[x]
        hw = a.shape[2] * a.shape[3]
        return {x: a * (r / (a.mean(axis=(2, 3), keepdims=True) + EPS)) / hw}
    if op == "AveragePool":
        a, k = act[x], at["kernel_shape"]
        s, pads = at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])
        z = act[n.output[0]] + EPS
        if at.get("count_include_pad", 0) or not any(pads):
            div = k[0] * k[1]
        else:
            div = window_sum(np.ones_like(a), k, s, pads)
        return {x: a * window_sum_t(r / z / div, k, s, pads, a.shape)}
    if op in ("Gemm", "MatMul"):
        a = act[x]
        w = act[n.input[1]]  # as (in, out)
        if op == "Gemm":
            if at.get("transA", 0):
                raise NotImplementedError(f"{n.name}: Gemm transA")
            w = w.T if at.get("transB", 0) else w
        w = np.maximum(w, 0.0)
        z = a @ w + EPS  # bias dropped (the authors zero the Linear bias)
        return {x: a * ((r / z) @ w.T)}
    if op == "Add":
        ins = [i for i in n.input if i not in g.consts]
        if len(ins) == 1:  # bias add (e.g. MatMul + Add head): the bias is dropped, relevance passes
            return {ins[0]: r.reshape(act[ins[0]].shape)}
        # residual Add: the main branch is the input reached through more convs
        main, short = sorted(ins, key=lambda t: g.depth[t], reverse=True)
        if g.depth[main] == g.depth[short]:
            raise NotImplementedError(f"{n.name}: cannot tell main branch from shortcut")
        identity = g.fanout.get(short, 0) > 1  # the block input itself, also consumed by the main branch
        ratio = split_ratio(variant, act[short], act[main], identity)
        return {main: ratio * r, short: (1.0 - ratio) * r}
    raise NotImplementedError(f"LRP: unsupported op {op} (node {n.name or n.output[0]})")


def explain(model_path, x, target="top1", variant="flows_skip", start="prob"):
    """LRP of one image. x is in the model's own input layout (batch 1).

    Returns (relevance as float32 with x's shape, info dict with target, start_relevance,
    input_relevance_sum, logits, ledger)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    g = Graph(model_path)
    act = g.forward(x)
    last = g.producer[g.output]
    logits_name = last.input[0] if last.op_type == "Softmax" else g.output  # skip a final Softmax
    logits = act[logits_name].reshape(-1)
    tgt = int(np.argmax(logits)) if target in (None, "top1") else int(target)
    r0 = float(_softmax(logits)[tgt]) if start == "prob" else float(logits[tgt])

    r_start = np.zeros(logits.size)
    r_start[tgt] = r0
    rel = {logits_name: r_start.reshape(act[logits_name].shape)}  # relevance per tensor, summed over consumers
    ledger = []
    for n in reversed(g.nodes):
        if n.output[0] not in rel:  # nodes after the logits (final Softmax) or without relevance
            continue
        r = rel.pop(n.output[0])
        parts = _backward(g, n, act, r, variant)
        for k, v in parts.items():
            rel[k] = rel.get(k, 0.0) + v
        ledger.append({"node": n.name or n.output[0], "op": n.op_type, "r_out": float(r.sum()),
                       "r_in": float(sum(v.sum() for v in parts.values()))})
    r_in = rel[g.input].reshape(np.shape(x))
    info = {"target": tgt, "start_relevance": r0, "input_relevance_sum": float(r_in.sum()),
            "logits": [float(v) for v in logits], "ledger": ledger}
    return r_in.astype(np.float32), info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input-npy", required=True)
    p.add_argument("--target", default="top1", help="class index or top1")
    p.add_argument("--variant", default="flows_skip", choices=VARIANTS)
    p.add_argument("--start", default="prob", choices=("prob", "logit"))
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--ledger", action="store_true", help="include the per-node relevance ledger in the JSON")
    args = p.parse_args(argv)
    x = np.load(args.input_npy)
    r, info = explain(args.model, x, args.target, args.variant, args.start)
    np.save(args.out, r)
    if args.json:
        if not args.ledger:
            info.pop("ledger")
        json.dump(info, sys.stdout)
        print()


if __name__ == "__main__":
    main()
