#!/usr/bin/env python3
"""Independent numpy implementation of the baselines of Otsuki et al. (ECCV 2024), Table 1, on the test fixtures:
Integrated Gradients, Guided Backprop, Grad-CAM and Score-CAM. The oracle of tests/native/baselines.rs.

It runs the fixtures with the float64 ONNX interpreter of authors_lrp.py and differentiates them with its own
small reverse-mode pass (below), node by node on the ONNX graph (not on the engine's layer graph):

  Conv      dX = conv_transpose(dY, W)              BatchNormalization  dX = dY * gamma / sqrt(var + eps)
  Relu      dX = dY * [y > 0]  (guided: also * [dY > 0])
  MaxPool   dY goes to the first maximum of each window     AveragePool / GlobalAveragePool: spread evenly
  Gemm / MatMul  dX = dY @ W^T       Add   dY to both inputs (a bias add: to the activation)
  Flatten / Reshape / Transpose: reshaped / transposed back; a final Softmax is skipped (f = the logit).

Definitions (as captum and pytorch-grad-cam define them):
  ig               x * sum_k w_k grad f(a_k x), (a_k, w_k) = numpy's leggauss(50) mapped to [0, 1]; baseline 0
  guided_backprop  the guided gradient of the logit w.r.t. the input
  gradcam          stage = input of the global pooling; w_c = mean(dlogit/dA_c); relu(sum w_c A_c); min-max
                   scaled ((c - min) / (max + 1e-7)); resized to the input with half-pixel centres (OpenCV)
  scorecam         the `channels` channels of largest mean activation; each resized with aligned corners
                   (torch UpsamplingBilinear2d), min-max scaled (+1e-8), times the input; logit of each masked
                   input, softmax over those channels = weights; then as gradcam.

Resizing here is a separable interpolation matrix built with np.interp (not a per-pixel formula).

Usage: python baselines.py --model M.onnx --input-npy X.npy --out DIR [--target N] [--channels 32] [--steps 50]
Writes DIR/{ig,guided_backprop}.npy (input shape) and DIR/{gradcam,scorecam}.npy ([H, W]) and DIR/info.json.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authors_lrp import Graph, conv2d_t, window_sum, window_sum_t  # noqa: E402


def _pool_args(g, n):
    at = g.attrs(n)
    return at["kernel_shape"], at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])


def _maxpool_grad(x, dy, k, s, pads):
    """dY to the first maximum (row-major within the window) of each window."""
    y = window_sum(x, k, s, pads, np.maximum, -np.inf)
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=-np.inf)
    dxp = np.zeros_like(xp)
    taken = np.zeros_like(y, dtype=bool)
    ho, wo = y.shape[2:]
    for i in range(k[0]):
        for j in range(k[1]):
            sh = slice(i, i + s[0] * (ho - 1) + 1, s[0])
            sw = slice(j, j + s[1] * (wo - 1) + 1, s[1])
            hit = (xp[:, :, sh, sw] == y) & ~taken
            dxp[:, :, sh, sw] += np.where(hit, dy, 0.0)
            taken |= hit
    return dxp[:, :, pads[0]:pads[0] + x.shape[2], pads[1]:pads[1] + x.shape[3]]


def _node_grad(g, n, act, dy, guided):
    """{input name: gradient} of node n given the gradient dy of its output."""
    op, at, x = n.op_type, g.attrs(n), n.input[0]
    if op in ("Flatten", "Reshape", "Identity", "Dropout"):
        return {x: dy.reshape(act[x].shape)}
    if op == "Transpose":
        return {x: dy.transpose(np.argsort(at["perm"]))}
    if op == "Relu":
        keep = act[n.output[0]] > 0
        if guided:
            keep = keep & (dy > 0)
        return {x: dy * keep}
    if op == "BatchNormalization":
        k = act[n.input[1]] / np.sqrt(act[n.input[4]] + at.get("epsilon", 1e-5))
        return {x: dy * k.reshape(1, -1, 1, 1)}
    if op == "Conv":
        return {x: conv2d_t(dy, act[n.input[1]], at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0]),
                            act[x].shape)}
    if op == "MaxPool":
        return {x: _maxpool_grad(act[x], dy, *_pool_args(g, n))}
    if op == "AveragePool":
        k, s, pads = _pool_args(g, n)
        div = k[0] * k[1] if (at.get("count_include_pad", 0) or not any(pads)) else \
            window_sum(np.ones_like(act[x]), k, s, pads)
        return {x: window_sum_t(dy / div, k, s, pads, act[x].shape)}
    if op == "GlobalAveragePool":
        a = act[x]
        return {x: np.broadcast_to(dy / (a.shape[2] * a.shape[3]), a.shape).copy()}
    if op == "Gemm":
        w = act[n.input[1]]
        w = w.T if at.get("transB", 0) else w
        return {x: at.get("alpha", 1.0) * dy @ w.T}
    if op == "MatMul":
        return {x: dy @ act[n.input[1]].T}
    if op == "Add":
        return {i: dy.reshape(act[i].shape) for i in n.input if i not in g.consts}
    raise NotImplementedError(f"gradient: op {op} (node {n.name})")


def logits_name(g):
    last = g.producer[g.output]
    return last.input[0] if last.op_type == "Softmax" else g.output


def gradient(g, x, target, wrt=None, guided=False):
    """(d logit_target / d tensor `wrt` (default: the input), the forward's tensors)."""
    act = g.forward(x)
    name = logits_name(g)
    seed = np.zeros(act[name].size)
    seed[target] = 1.0
    grads = {name: seed.reshape(act[name].shape)}
    wrt = wrt or g.input
    for n in reversed(g.nodes):
        if n.output[0] not in grads or n.output[0] == wrt:
            continue
        for k, v in _node_grad(g, n, act, grads.pop(n.output[0]), guided).items():
            grads[k] = grads.get(k, 0.0) + v
    return grads[wrt], act


def integrated_gradients(g, x, target, steps):
    t, w = np.polynomial.legendre.leggauss(steps)
    total = np.zeros_like(x, dtype=np.float64)
    for a, wk in zip(0.5 * (1.0 + t), 0.5 * w):
        total += wk * gradient(g, a * x, target)[0]
    return x * total


def interp_matrix(n_out, n_in, align_corners):
    """[n_out, n_in] linear interpolation weights: row i holds the weights of output i."""
    if align_corners:
        src = np.linspace(0.0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
    else:
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    eye = np.eye(n_in)
    return np.stack([np.interp(src, np.arange(n_in), eye[:, j]) for j in range(n_in)], axis=1)


def resize(m, hw, align_corners):
    return interp_matrix(hw[0], m.shape[0], align_corners) @ m @ interp_matrix(hw[1], m.shape[1], align_corners).T


def min_max(m, eps):
    m = m - m.min()
    return m / (m.max() + eps)


def stage_name(g):
    pools = [n for n in g.nodes if n.op_type in ("GlobalAveragePool", "AveragePool")]
    return pools[-1].input[0]


def input_layout(x):
    """(H axis, W axis, channel axis) of a [1, C, H, W] or [1, H, W, C] input."""
    return (2, 3, 1) if x.shape[1] in (1, 3) else (1, 2, 3)


def grad_cam(g, x, target):
    stage = stage_name(g)
    d, act = gradient(g, x, target, wrt=stage)
    w = d[0].mean(axis=(1, 2))
    cam = np.maximum(np.tensordot(w, act[stage][0], axes=1), 0.0)
    h, wd, _ = input_layout(x)
    return resize(min_max(cam, 1e-7), (x.shape[h], x.shape[wd]), False)


def score_cam(g, x, target, channels):
    stage = stage_name(g)
    act = g.forward(x)
    a = act[stage][0]
    order = sorted(range(a.shape[0]), key=lambda c: (-a[c].mean(), c))[:channels]
    h, wd, ch = input_layout(x)
    scores = []
    for c in order:
        mask = min_max(resize(a[c], (x.shape[h], x.shape[wd]), True), 1e-8)
        mask = mask[None, None] if ch == 1 else mask[None, :, :, None]
        scores.append(g.forward(x * mask)[logits_name(g)].reshape(-1)[target])
    e = np.exp(np.array(scores) - max(scores))
    w = np.zeros(a.shape[0])
    w[order] = e / e.sum()
    cam = np.maximum(np.tensordot(w, a, axes=1), 0.0)
    return resize(min_max(cam, 1e-7), (x.shape[h], x.shape[wd]), False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input-npy", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--target", default="top1")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args(argv)
    g = Graph(a.model)
    x = np.load(a.input_npy).astype(np.float64)
    logits = g.forward(x)[logits_name(g)].reshape(-1)
    zero = g.forward(np.zeros_like(x))[logits_name(g)].reshape(-1)
    target = int(np.argmax(logits)) if a.target == "top1" else int(a.target)
    os.makedirs(a.out, exist_ok=True)
    out = {
        "ig": integrated_gradients(g, x, target, a.steps),
        "guided_backprop": gradient(g, x, target, guided=True)[0],
        "gradcam": grad_cam(g, x, target),
        "scorecam": score_cam(g, x, target, a.channels),
    }
    for k, v in out.items():
        np.save(os.path.join(a.out, f"{k}.npy"), v.astype(np.float32))
    info = {"target": target, "logit": float(logits[target]), "logit_at_zero": float(zero[target])}
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
