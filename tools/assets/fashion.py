"""The Fashion-MNIST samples: models/fashion_samples/*.png copied to www/photos/fashion/, with photos.json
entries that name the model they are for and their true class (models/fashion_samples/labels.csv)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from .checks import image_info
from .common import ROOT, AssetError, log, rel, write_bytes_atomic

SAMPLES = ROOT / "models" / "fashion_samples"
MODEL_ID = "fashion_resnet"  # the id of the model's entry in models.json
SUBDIR = "fashion"


def _labels() -> list[tuple[str, str]]:
    """(file, class) rows of labels.csv, in its order."""
    path = SAMPLES / "labels.csv"
    if not path.exists():
        raise AssetError(f"{rel(path)} is missing: it is committed; `./build.sh train` makes it again")
    with path.open(newline="", encoding="utf-8") as f:
        rows = [(r["file"], r["class"]) for r in csv.DictReader(f)]
    if not rows:
        raise AssetError(f"{rel(path)} lists no samples")
    return rows


def _entry(fname: str, cls: str, data: bytes) -> dict:
    info = image_info(data)
    if info is None:
        raise AssetError(f"{rel(SAMPLES / fname)} is not a PNG file")
    index = int(Path(fname).stem.split("_")[-1])
    return {
        "file": f"{SUBDIR}/{fname}",
        "title": f"Fashion-MNIST test image {index} ({cls})",
        "width": info["width"],
        "height": info["height"],
        "mode": info["mode"],
        "model": MODEL_ID,
        "class": cls,
        "source": {"path": f"models/fashion_samples/{fname}", "dataset": "Fashion-MNIST t10k (Debian dataset-fashion-mnist)"},
        "licence": "MIT",
        "attribution": "Fashion-MNIST, © 2017 Zalando SE (Han Xiao, Kashif Rasul, Roland Vollgraf)",
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def prepare_fashion_samples(pdir: Path) -> list[dict]:
    """Copies the samples (unchanged) and returns their photos.json entries, in labels.csv's order."""
    out = pdir / SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for fname, cls in _labels():
        data = (SAMPLES / fname).read_bytes()
        dest = out / fname
        if not (dest.exists() and dest.read_bytes() == data):
            write_bytes_atomic(dest, data)
        entries.append(_entry(fname, cls, data))
    log(f"write  {rel(out)}/ ({len(entries)} Fashion-MNIST samples with their true class)")
    return entries
