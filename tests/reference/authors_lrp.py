#!/usr/bin/env python3
"""Independent numpy re-implementation of the LRP rules of Otsuki et al.,
"Layer-Wise Relevance Propagation with Conservation Property for ResNet" (ECCV 2024).

This is the oracle for the engine's `reference` composite (see design/METHOD.md) and, with --composite
conserving, for its `conserving` composite (see "Conserving" below). It contains a tiny float64
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

Conserving (--composite conserving): the same rules on the BN-folded graph, with nothing lost:
  BatchNormalization after a Conv is folded into it first (W k, b k + beta - mean k, k = gamma / sqrt(var + eps));
  Conv / Gemm / MatMul  z+ = a+ W+ + a- W- (zennit's ZPlus; ones W+ on the first conv), bias left out, no eps;
                  outputs with z = 0 take the flat fallback: spread over the receptive field in proportion to W+
                  (padding excluded), and where W+ is zero there, evenly (weights replaced by ones);
  MaxPool         winner-take-all over the true window, ties to the first maximum in row-major order;
  (Global)AvgPool z-rule over each window with no eps; windows summing to 0 spread their relevance evenly;
  residual Add    as above, with 1/2 for 0/0 ratios.

Usage:
  python authors_lrp.py --model M.onnx --input-npy X.npy [--target N|top1] [--variant flows_skip]
                        [--start prob|logit] [--composite reference|conserving] --out R.npy [--json] [--ledger]
  --variant all computes every variant over one forward pass and writes --out with {variant} replaced.
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
        self._index()

    def _index(self):
        """Producer, fan-out and conv depth of every tensor (after any change of self.nodes)."""
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

    def fold_batchnorm(self):
        """Fold every BatchNormalization whose input is a Conv read by nothing else into that conv (as zennit's
        canonizer does): W' = W k, b' = b k + beta - mean k with k = gamma / sqrt(var + eps), in float64.
        The conv takes over the BN's output name; the BN node disappears."""
        nodes = []
        for n in self.nodes:
            src = self.producer.get(n.input[0]) if n.input else None
            if n.op_type != "BatchNormalization" or src is None or src.op_type != "Conv" \
                    or self.fanout.get(n.input[0], 0) != 1:
                nodes.append(n)
                continue
            gamma, beta, mean, var = (self.consts[i].astype(np.float64) for i in n.input[1:5])
            k = gamma / np.sqrt(var + self.attrs(n).get("epsilon", 1e-5))
            w = self.consts[src.input[1]].astype(np.float64)
            b = self.consts[src.input[2]].astype(np.float64) if len(src.input) > 2 and src.input[2] else 0.0
            folded = onnx.NodeProto()
            folded.CopyFrom(src)
            del folded.input[:]
            del folded.output[:]
            wn, bn = n.output[0] + "::folded_weight", n.output[0] + "::folded_bias"
            self.consts[wn], self.consts[bn] = w * k.reshape(-1, 1, 1, 1), b * k + beta - mean * k
            folded.input.extend([src.input[0], wn, bn])
            folded.output.append(n.output[0])
            nodes[nodes.index(src)] = folded
        self.nodes = nodes
        self._index()
        return self

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


def _residual_inputs(g, n):
    """(main branch, shortcut) of a residual Add: the main branch is the input reached through more convs."""
    main, short = sorted((i for i in n.input if i not in g.consts), key=lambda t: g.depth[t], reverse=True)
    if g.depth[main] == g.depth[short]:
        raise NotImplementedError(f"{n.name}: cannot tell main branch from shortcut")
    return main, short


def _dense_weight(n, at, act):
    """The weight of a Gemm / MatMul as (in, out)."""
    w = act[n.input[1]]
    if n.op_type == "Gemm":
        if at.get("transA", 0):
            raise NotImplementedError(f"{n.name}: Gemm transA")
        w = w.T if at.get("transB", 0) else w
    return w


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
        w = np.maximum(_dense_weight(n, at, act), 0.0)
        z = a @ w + EPS  # bias dropped (the authors zero the Linear bias)
        return {x: a * ((r / z) @ w.T)}
    if op == "Add":
        ins = [i for i in n.input if i not in g.consts]
        if len(ins) == 1:  # bias add (e.g. MatMul + Add head): the bias is dropped, relevance passes
            return {ins[0]: r.reshape(act[ins[0]].shape)}
        main, short = _residual_inputs(g, n)
        identity = g.fanout.get(short, 0) > 1  # the block input itself, also consumed by the main branch
        ratio = split_ratio(variant, act[short], act[main], identity)
        return {main: ratio * r, short: (1.0 - ratio) * r}
    raise NotImplementedError(f"LRP: unsupported op {op} (node {n.name or n.output[0]})")


# ----------------------------------------------------------------------------------------------------------
# The `conserving` composite (design/METHOD.md): the same rules on the BN-folded graph, with nothing lost.
# ----------------------------------------------------------------------------------------------------------
ZERO = 1e-25  # a denominator of magnitude <= ZERO counts as zero: its relevance takes the flat fallback


def _zplus_terms(a, w, first):
    """The (input, weight) pairs of z+ : a+ W+ and a- W- (zennit's ZPlus); the first layer uses ones for a."""
    if first:
        return [(np.ones_like(a), np.maximum(w, 0.0))]
    return [(np.maximum(a, 0.0), np.maximum(w, 0.0)), (np.minimum(a, 0.0), np.minimum(w, 0.0))]


def _weighted_conserving(a, w, r, fwd, bwd, first):
    """z+ through one weighted layer with no stabiliser; outputs whose z is zero go to the flat fallback.
    fwd(x, w) is the layer's linear map without bias, bwd(g, w) its adjoint (both for x shaped like a)."""
    terms = _zplus_terms(a, w, first)
    z = sum(fwd(x, wt) for x, wt in terms)
    zero = np.abs(z) <= ZERO
    s = np.where(zero, 0.0, r / np.where(zero, 1.0, z))
    r_in = sum(x * bwd(s, wt) for x, wt in terms)
    lost = np.where(zero, r, 0.0)
    if np.any(lost != 0.0):
        r_in = r_in + _flat_fallback(a, w, lost, fwd, bwd)
    return r_in


def _flat_fallback(a, w, lost, fwd, bwd):
    """Relevance of outputs with z = 0, spread over the receptive field in proportion to W+ (padding excluded),
    and where W+ is zero over the whole field, evenly over its inputs (weights replaced by ones)."""
    ones, r_in, rest = np.ones_like(a), np.zeros_like(a), lost
    for wt in (np.maximum(w, 0.0), np.ones_like(w)):
        z = fwd(ones, wt)
        ok = z > ZERO
        r_in = r_in + bwd(np.where(ok, rest / np.where(ok, z, 1.0), 0.0), wt)
        rest = np.where(ok, 0.0, rest)
    if np.any(rest != 0.0):
        raise ValueError("flat fallback: relevance at outputs that read no input (window wholly in padding)")
    return r_in


def _proportional(a, r, window, window_t):
    """z-rule through a window sum with no stabiliser: R_in = a * window_t(R / window(a)); windows whose sum is
    zero spread their relevance evenly over their (in-bounds) inputs."""
    z = window(a)
    zero = np.abs(z) <= ZERO
    r_in = a * window_t(np.where(zero, 0.0, r / np.where(zero, 1.0, z)))
    if np.any(zero & (r != 0.0)):
        n = window(np.ones_like(a))
        r_in = r_in + window_t(np.where(zero, r / n, 0.0))
    return r_in


def _maxpool_winner(a, r, k, s, pads):
    """Winner-take-all: each window's relevance to the first input (row-major over the window, padding
    excluded) that attains its maximum; strict '>' keeps the first of equal values."""
    ap = _pad(a, pads, -np.inf)
    best = winner = None
    offsets = list(_windows(a.shape, k, s, pads))
    for idx, (_, _, sh, sw) in enumerate(offsets):
        v = ap[:, :, sh, sw]
        if best is None:
            best, winner = v.copy(), np.zeros(v.shape, dtype=int)
        else:
            better = v > best
            best, winner = np.where(better, v, best), np.where(better, idx, winner)
    rp = np.zeros_like(ap)
    for idx, (_, _, sh, sw) in enumerate(offsets):
        rp[:, :, sh, sw] += np.where(winner == idx, r, 0.0)
    return _crop(rp, pads, a.shape)


def _backward_conserving(g, n, act, r, variant):
    """Relevance of node n's inputs under `conserving`; ops it does not change go to _backward."""
    op, at = n.op_type, g.attrs(n)
    x = n.input[0]
    s, pads = at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])
    if op == "Conv":
        a = act[x]
        fwd = lambda xx, wt: conv2d(xx, wt, s, pads)  # noqa: E731
        bwd = lambda gg, wt: conv2d_t(gg, wt, s, pads, a.shape)  # noqa: E731
        return {x: _weighted_conserving(a, act[n.input[1]], r, fwd, bwd, g.depth[x] == 0)}
    if op in ("Gemm", "MatMul"):
        w = _dense_weight(n, at, act)
        return {x: _weighted_conserving(act[x], w, r, lambda xx, wt: xx @ wt, lambda gg, wt: gg @ wt.T, False)}
    if op == "MaxPool":
        return {x: _maxpool_winner(act[x], r, at["kernel_shape"], s, pads)}
    if op == "GlobalAveragePool":
        return {x: _proportional(act[x], r, lambda v: v.sum(axis=(2, 3), keepdims=True),
                                 lambda v: np.broadcast_to(v, act[x].shape))}
    if op == "AveragePool":
        k, shape = at["kernel_shape"], act[x].shape
        return {x: _proportional(act[x], r, lambda v: window_sum(v, k, s, pads),
                                 lambda v: window_sum_t(v, k, s, pads, shape))}
    if op == "BatchNormalization":
        raise NotImplementedError(f"{n.name}: a BatchNormalization that does not follow a conv cannot be folded")
    return _backward(g, n, act, r, variant)


COMPOSITES = ("reference", "conserving")


def explain(model_path, x, target="top1", variant="flows_skip", start="prob", composite="reference"):
    """LRP of one image. x is in the model's own input layout (batch 1).

    Returns (relevance as float32 with x's shape, info dict with target, start_relevance,
    input_relevance_sum, logits, ledger)."""
    return explain_variants(model_path, x, target, [variant], start, composite)[variant]


def explain_variants(model_path, x, target="top1", variants=VARIANTS, start="prob", composite="reference"):
    """explain() for several splitting variants over one forward pass: {variant: (relevance, info)}."""
    if composite not in COMPOSITES:
        raise ValueError(f"composite must be one of {COMPOSITES}")
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
    g = Graph(model_path)
    if composite == "conserving":
        g.fold_batchnorm()
    act = g.forward(x)
    last = g.producer[g.output]
    logits_name = last.input[0] if last.op_type == "Softmax" else g.output  # skip a final Softmax
    logits = act[logits_name].reshape(-1)
    tgt = int(np.argmax(logits)) if target in (None, "top1") else int(target)
    r0 = float(_softmax(logits)[tgt]) if start == "prob" else float(logits[tgt])
    r_start = np.zeros(logits.size)
    r_start[tgt] = r0
    backward = _backward_conserving if composite == "conserving" else _backward
    out = {}
    for v in variants:
        r_in, ledger = _sweep(g, act, {logits_name: r_start.reshape(act[logits_name].shape)}, backward, v)
        r_in = r_in.reshape(np.shape(x))
        info = {"target": tgt, "start_relevance": r0, "input_relevance_sum": float(r_in.sum()),
                "logits": [float(v) for v in logits], "ledger": ledger}
        out[v] = (r_in.astype(np.float32), info)
    return out


def _sweep(g, act, rel, backward, variant):
    """Relevance from the logits back to the graph input, node by node in reverse order; relevance reaching a
    tensor from several consumers is summed. Returns (input relevance, ledger)."""
    ledger = []
    for n in reversed(g.nodes):
        if n.output[0] not in rel:  # nodes after the logits (final Softmax) or without relevance
            continue
        r = rel.pop(n.output[0])
        parts = backward(g, n, act, r, variant)
        for k, v in parts.items():
            rel[k] = rel.get(k, 0.0) + v
        entry = {"node": n.name or n.output[0], "op": n.op_type, "r_out": float(r.sum()),
                 "r_in": float(sum(v.sum() for v in parts.values()))}
        if n.op_type == "Add" and len(parts) == 2:  # a residual Add: its split
            main, short = _residual_inputs(g, n)
            entry.update(main=float(parts[main].sum()), shortcut=float(parts[short].sum()))
        ledger.append(entry)
    return rel[g.input], ledger


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input-npy", required=True)
    p.add_argument("--target", default="top1", help="class index or top1")
    p.add_argument("--variant", default="flows_skip", choices=VARIANTS + ("all",),
                   help="splitting variant; 'all' writes one file per variant (--out must contain {variant})")
    p.add_argument("--composite", default="reference", choices=COMPOSITES)
    p.add_argument("--start", default="prob", choices=("prob", "logit"))
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true", help="print a JSON summary (one line per variant)")
    p.add_argument("--ledger", action="store_true", help="include the per-node relevance ledger in the JSON")
    args = p.parse_args(argv)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    if len(variants) > 1 and "{variant}" not in args.out:
        p.error("--variant all needs {variant} in --out")
    x = np.load(args.input_npy)
    results = explain_variants(args.model, x, args.target, variants, args.start, args.composite)
    for v, (r, info) in results.items():
        np.save(args.out.replace("{variant}", v), r)
        if args.json:
            if not args.ledger:
                info.pop("ledger")
            json.dump(dict(info, variant=v), sys.stdout)
            print()


if __name__ == "__main__":
    main()
