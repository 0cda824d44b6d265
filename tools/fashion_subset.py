#!/usr/bin/env python3
"""Writes a fixed, seeded subset of the Fashion-MNIST test set as PNGs, for `resnet-lrp evaluate`.

    .venv/bin/python tools/fashion_subset.py OUT_DIR [--count 1000] [--seed 0]

Reads Debian's `dataset-fashion-mnist` idx files (/usr/share/datasets/fashion-mnist/t10k-*.gz) and writes
into OUT_DIR:
  t10k_NNNNN.png   28×28 8-bit greyscale, NNNNN the image's index in t10k (so file-name order, which
                   `evaluate` follows, is test-set order)
  labels.csv       `file,class,name`: the class index (what `evaluate --labels` reads) and its name

The subset is the first COUNT indices of numpy's `default_rng(SEED).permutation(10000)`, sorted: the same
files on every machine with the same numpy (PCG64 and `permutation` are stable across numpy versions).
The first K files in name order are therefore not the first K of the permutation; `evaluate --limit K`
(or a shard) takes a subset of the subset, which is still fixed.
Needs numpy and pillow only.
"""
import argparse
import gzip
import os

import numpy as np
from PIL import Image

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    """An idx file (gzip) as a numpy array: magic 0x0000 0x08 ndim, big-endian dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="directory to write (created if missing)")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=DATA, help="directory of the t10k idx files")
    args = ap.parse_args()

    images = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"unexpected idx shapes {images.shape} and {labels.shape}")
    if not 0 < args.count <= images.shape[0]:
        raise ValueError(f"--count must be in 1..{images.shape[0]}")

    chosen = np.sort(np.random.default_rng(args.seed).permutation(images.shape[0])[:args.count])
    os.makedirs(args.out, exist_ok=True)
    rows = ["file,class,name"]
    for i in chosen:
        name = f"t10k_{i:05d}.png"
        Image.fromarray(images[i], mode="L").save(os.path.join(args.out, name))
        rows.append(f"{name},{labels[i]},{CLASSES[labels[i]]}")
    with open(os.path.join(args.out, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    counts = np.bincount(labels[chosen], minlength=len(CLASSES))
    print(f"{args.count} images (seed {args.seed}) -> {args.out}; per class: {counts.tolist()}")


if __name__ == "__main__":
    main()
