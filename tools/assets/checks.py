"""Validation of outputs already present (skipped unless --force) and PNG/JPEG header reading."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def onnx_ok(path: Path, input_name: str, output_name: str) -> bool:
    if not path.exists() or path.stat().st_size < 1000:
        return False
    try:
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        return ([i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}] == [input_name]
                and [o.name for o in m.graph.output] == [output_name])
    except Exception:  # noqa: BLE001 - any failure means "rebuild it"
        return False


def text_ok(path: Path, must_contain: str) -> bool:
    return path.exists() and must_contain in path.read_text(encoding="utf-8", errors="replace")


def image_info(path_or_bytes) -> dict | None:
    """Width, height and colour mode from a PNG or JPEG header; None if it is neither."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h, _depth, ctype = struct.unpack(">IIBB", data[16:26])
        mode = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}.get(ctype, "?")
        return {"format": "png", "width": w, "height": h, "mode": mode}
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (seg_len,) = struct.unpack(">H", data[i + 2:i + 4])
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w, comps = struct.unpack(">HHB", data[i + 5:i + 10])
                return {"format": "jpeg", "width": w, "height": h, "mode": "gray" if comps == 1 else "rgb"}
            i += 2 + seg_len
    return None


def classes_ok(path: Path) -> bool:
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(names, list) and len(names) == 1000 and all(isinstance(n, str) for n in names)
    except (OSError, ValueError):
        return False
