#!/usr/bin/env python3
"""Fetch the real models, ImageNet class names and sample photos used by resnet-lrp.

The work is done by the package tools/assets/ (see its __init__.py for the outputs and one module per
job); this script runs it, as does `python -m tools.assets` from the project root.

Usage: python tools/prepare_assets.py [--out www] [--force] [--only models|photos] [--cache DIR]
"""

import sys

# This directory (tools/) is sys.path[0] when the script is run, so the package imports as `assets`.
from assets.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
