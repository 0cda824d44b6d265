#!/usr/bin/python3
"""Trains the bundled Fashion-MNIST ResNet and exports it to ONNX, reproducibly.

Run with Debian's Python (python3-torch, python3-torchvision, python3-onnx, dataset-fashion-mnist):

    /usr/bin/python3 tools/train_fashion.py            # train, then export (what ./build.sh train runs)
    /usr/bin/python3 tools/train_fashion.py --export-only   # re-export from models/fashion_resnet.pt

Writes, under models/:
  fashion_resnet.onnx        the network, BatchNormalization nodes kept, preprocessing and class names in
                             its metadata_props (resnet_lrp.preprocess, resnet_lrp.classes)
  fashion_resnet.train.json  seed, epochs, per-epoch loss and accuracy, test accuracy, wall time, versions,
                             dataset provenance and licence
  fashion_samples/           a few test images as 28×28 grey PNGs, labels.csv (file,class) and torch's logits
                             for them (logits.npy, rows in labels.csv order)
The weights (fashion_resnet.pt) are written too, for --export-only; they are not committed.

Architecture (input 1×28×28, no upsampling): stem 3×3 conv 16 + BN + ReLU + 2×2 max pool (28 → 14);
three stages of two BasicBlocks, widths 16/32/64 at 14×14, 7×7, 4×4; the first block of stages 2 and 3 has
stride 2 and a projection shortcut (1×1 conv stride 2 + BN), every other block an identity shortcut; global
average pool; linear 64 → 10.
"""
import argparse
import gzip
import json
import os
import platform
import sys
import time

# Threads that wait for each other sleep instead of spinning: on a machine shared with other jobs a
# spinning OpenMP thread whose partner is descheduled made an epoch 8 times slower (340 s instead of 40 s).
# Set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(ROOT, "models")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SAMPLES_PER_CLASS = 2  # the first test images of each class: 20 bundled samples


def read_idx(name):
    """An idx file (gzip) as a numpy array: magic 0x0000 0x08 ndim, big-endian dims, then uint8 data."""
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{name}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def load_split(prefix):
    x = read_idx(f"{prefix}-images-idx3-ubyte.gz")
    y = read_idx(f"{prefix}-labels-idx1-ubyte.gz")
    return x, y.astype(np.int64)


class BasicBlock(nn.Module):
    """Two 3×3 conv + BN, ReLU between and after the residual addition; a projection (1×1 conv + BN)
    shortcut where the shape changes, an identity one otherwise."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + skip)


class FashionResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(), nn.MaxPool2d(2, 2))
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def augment(x, gen):
    """Random crop of the 2-pixel zero-padded (background) image and a random horizontal flip, per image."""
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2), value=0.0)
    dy = torch.randint(0, 5, (n,), generator=gen)
    dx = torch.randint(0, 5, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch])
            loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    return loss / len(x), correct / len(x)


def train(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)

    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    mean = float(xtr.mean() / 255.0)
    std = float(xtr.std() / 255.0)
    norm = lambda a: (torch.from_numpy(a.copy()).float().div(255.0).sub(mean).div(std)).unsqueeze(1)
    xtr_t, xte_t = norm(xtr), norm(xte)
    ytr_t, yte_t = torch.from_numpy(ytr), torch.from_numpy(yte)

    model = FashionResNet()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = args.epochs * ((len(xtr_t) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    log = {"epochs": []}
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr_t), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            xb = augment(xtr_t[idx], gen) if args.augment else xtr_t[idx]
            loss = F.cross_entropy(model(xb), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        test_loss, test_acc = evaluate(model, xte_t, yte_t)
        row = {"epoch": epoch + 1, "train_loss": round(total / seen, 5), "test_loss": round(test_loss, 5),
               "test_accuracy": test_acc, "seconds": round(time.time() - start, 1)}
        log["epochs"].append(row)
        print(json.dumps(row), flush=True)
    log["wall_seconds"] = round(time.time() - start, 1)
    log["test_accuracy"] = log["epochs"][-1]["test_accuracy"]
    log["mean"], log["std"] = mean, std
    return model, log


def stored(mean, std):
    """Mean and std as the model file stores them (6 decimals): the sample logits are computed with these."""
    return round(mean, 6), round(std, 6)


def preprocess_metadata(mean, std):
    """resnet_lrp.preprocess: what the engine's Preprocess needs (pixels are byte / 255 * scale)."""
    mean, std = stored(mean, std)
    return {"channels": 1, "size": [28, 28], "layout": "NCHW", "scale": 1.0,
            "mean": [mean], "std": [std], "resize": "full"}


def export(model, mean, std, path):
    import onnx

    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    # PRESERVE and no constant folding keep every BatchNorm as a BatchNormalization node
    torch.onnx.export(model, dummy, path, opset_version=13, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    m = onnx.load(path)
    for key, value in (("resnet_lrp.preprocess", preprocess_metadata(mean, std)),
                       ("resnet_lrp.classes", CLASSES)):
        prop = m.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value)
    m.producer_name = "resnet-lrp tools/train_fashion.py"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    ops = [n.op_type for n in m.graph.node]
    return {op: ops.count(op) for op in sorted(set(ops))}


def write_samples(model, mean, std, folder):
    """The first SAMPLES_PER_CLASS test images of every class as PNGs, labels.csv, and torch's logits."""
    from PIL import Image

    xte, yte = load_split("t10k")
    os.makedirs(folder, exist_ok=True)
    picked = []
    for c in range(len(CLASSES)):
        picked += [int(i) for i in np.nonzero(yte == c)[0][:SAMPLES_PER_CLASS]]
    picked.sort()
    rows, images = [], []
    for i in picked:
        name = f"t10k_{i:05d}.png"
        Image.fromarray(xte[i], mode="L").save(os.path.join(folder, name), optimize=True)
        rows.append(f"{name},{CLASSES[yte[i]]}")
        images.append(xte[i])
    with open(os.path.join(folder, "labels.csv"), "w") as f:
        f.write("file,class\n" + "\n".join(rows) + "\n")
    mean, std = stored(mean, std)
    x = torch.from_numpy(np.stack(images)).float().div(255.0).sub(mean).div(std).unsqueeze(1)
    model.eval()
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float32)
    np.save(os.path.join(folder, "logits.npy"), logits)
    return int((logits.argmax(1) == yte[picked]).sum()), len(picked)


def negative_gammas(model):
    return int(sum((m.weight < 0).sum().item() for m in model.modules() if isinstance(m, nn.BatchNorm2d)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--no-augment", dest="augment", action="store_false")
    ap.add_argument("--export-only", action="store_true", help="export OUT/fashion_resnet.pt again")
    ap.add_argument("--out", default=OUT, help="output directory (default: models/)")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    weights = os.path.join(out, "fashion_resnet.pt")
    log_path = os.path.join(out, "fashion_resnet.train.json")
    if args.export_only:
        model = FashionResNet()
        model.load_state_dict(torch.load(weights))
        with open(log_path) as f:
            log = json.load(f)
    else:
        model, log = train(args)
        torch.save(model.state_dict(), weights)
        log.update({
            "seed": args.seed, "batch": args.batch, "max_lr": args.lr, "augment": args.augment,
            "optimizer": "SGD momentum 0.9 nesterov, weight decay 5e-4, one-cycle learning rate",
            "threads": 2, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(),
            "dataset": {"name": "Fashion-MNIST", "source": f"Debian package dataset-fashion-mnist, {DATA}",
                        "authors": "Zalando Research (Han Xiao, Kashif Rasul, Roland Vollgraf)",
                        "licence": "MIT", "train": 60000, "test": 10000},
        })
    log["onnx_ops"] = export(model, log["mean"], log["std"], os.path.join(out, "fashion_resnet.onnx"))
    log["negative_bn_gammas"] = negative_gammas(model)
    correct, n = write_samples(model, log["mean"], log["std"], os.path.join(out, "fashion_samples"))
    log["samples_top1_correct"] = f"{correct}/{n}"
    with open(log_path, "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")
    print(f"test accuracy {log['test_accuracy']:.4f}, {log['wall_seconds']} s, "
          f"negative BN gammas {log['negative_bn_gammas']}, samples {correct}/{n}", file=sys.stderr)


if __name__ == "__main__":
    main()
