"""Shared helpers: the error type, logging, hashing and writing files."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


class AssetError(Exception):
    """A problem that stops the script with a clear message."""


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def human(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.0f} kB"


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_text_if_changed(path: Path, text: str, force: bool) -> None:
    """Manifests are derived data: rewrite them only when their content changes."""
    if path.exists() and not force and path.read_text(encoding="utf-8") == text:
        log(f"skip   {rel(path)} (up to date)")
        return
    write_bytes_atomic(path, text.encode("utf-8"))
    log(f"write  {rel(path)} ({len(text.encode('utf-8'))} bytes)")
