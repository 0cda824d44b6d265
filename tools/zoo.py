#!/usr/bin/env python3
"""Export real torchvision ResNets (random initialisation) with torch's legacy ONNX exporter and check each file
through the resnet-lrp command line: it loads, its logits match torch's, and `conserving` conserves relevance.

Needs Debian's python3-torch and python3-torchvision (run with /usr/bin/python3, not the venv); `./build.sh zoo`
builds the release binary and runs this. Not part of `./build.sh test`.

Usage: zoo.py --cli PATH [--out DIR] [--archs resnet18,...] [--opsets 11,13] [--forms bn,folded]
              [--variants flows_skip,...]
Every export has a dynamic batch axis (dynamic_axes), which the engine pins to 1. Forms: `bn` keeps the
BatchNormalization nodes (training=PRESERVE, do_constant_folding=False), `folded` is the exporter's default
(BatchNorm folded into the convolutions). Prints one line per check and exits non-zero if any fails.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision

ARCHS = ["resnet18", "resnet50", "wide_resnet50_2", "resnext50_32x4d"]
VARIANTS = ["flows_skip", "flows_skip_simple", "latest", "simple", "conventional"]
LOGIT_TOL = 1e-4  # of max |logit|: float32 through ~50 layers in two engines agree to ~1e-6 here
CONSERVATION_TOL = 1e-4  # the README's promise for `conserving`


def export(arch, form, opset, path):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    kwargs = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) if form == "bn" else {}
    torch.onnx.export(model, x, str(path), opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
    with torch.no_grad():
        return x.numpy(), model(x).numpy()[0]


def cli(binary, *args):
    run = subprocess.run([binary, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip() or run.stdout.strip())
    return run.stdout


def check(binary, arch, form, opset, variants, out):
    path = out / f"{arch}_{form}_opset{opset}.onnx"
    x, logits = export(arch, form, opset, path)
    npy = path.with_suffix(".input.npy")
    np.save(npy, x)
    info = cli(binary, "info", "--model", str(path))
    adds = next((line for line in info.splitlines() if line.startswith("residual additions:")), "?")
    failures = []
    for variant in variants:
        got = json.loads(cli(binary, "explain", "--model", str(path), "--input-npy", str(npy), "--variant", variant,
                             "--composite", "conserving", "--start", "logit", "--json"))
        err = np.abs(np.array(got["logits"]) - logits).max() / np.abs(logits).max()
        cons = got["conservation_error"]
        ok = err <= LOGIT_TOL and cons <= CONSERVATION_TOL
        print(f"{path.name:36} {variant:18} logits vs torch {err:.1e}  conservation {cons:.1e}  {adds}"
              f"  {'ok' if ok else 'FAIL'}", flush=True)
        if not ok:
            failures.append(variant)
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True, help="the resnet-lrp binary")
    p.add_argument("--out", help="where the exports go (default: a temporary directory)")
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--opsets", default="11,13")
    p.add_argument("--forms", default="bn,folded")
    p.add_argument("--variants", default=",".join(VARIANTS))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        failed = []
        for arch in a.archs.split(","):
            for form in a.forms.split(","):
                for opset in map(int, a.opsets.split(",")):
                    try:
                        bad = check(a.cli, arch, form, opset, a.variants.split(","), out)
                    except Exception as e:  # noqa: BLE001  (report every export, then fail)
                        print(f"{arch} {form} opset {opset}: {e}", flush=True)
                        bad = ["load"]
                    failed += [f"{arch}/{form}/opset{opset}/{v}" for v in bad]
    if failed:
        sys.exit(f"{len(failed)} checks failed: {', '.join(failed)}")
    print("all checks passed")


if __name__ == "__main__":
    main()
