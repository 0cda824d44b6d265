"""torch.save reader without torch: a restricted unpickler over the zip or the legacy format.

Only ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter``
and the storage types are allowed; strides and storage offsets are honoured.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

from .common import AssetError

_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bf16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        import numpy as np

        return 2 if self.dtype == "bf16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A storage whose bytes are filled in after unpickling (legacy format) or read lazily (zip)."""

    def __init__(self, stype: _StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, key, numel
        self.array = None  # 1-D numpy array once loaded

    def load(self, raw: bytes) -> None:
        import numpy as np

        if self.stype.dtype == "bf16":
            u16 = np.frombuffer(raw, dtype="<u2")
            self.array = (u16.astype(np.uint32) << 16).view(np.float32)
        else:
            self.array = np.frombuffer(raw, dtype=self.stype.dtype)


class _StorageView:
    """Legacy storage view (view_metadata): a slice of a root storage."""

    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel

    @property
    def array(self):
        return self.root.array[self.offset:self.offset + self.numel]


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def materialize(self):
        import numpy as np

        base = self.storage.array
        if base is None:
            raise AssetError("tensor storage was never loaded")
        if not self.size:
            return np.array(base[self.offset])
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=base.dtype)
        if needed > base.size:
            raise AssetError(f"tensor view exceeds its storage ({needed} > {base.size} elements)")
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride], writeable=False)
        return np.array(view, copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a state dict, allowing only the few globals a state dict needs."""

    def __init__(self, fp, storage_for):
        super().__init__(fp)
        self._storage_for = storage_for

    def find_class(self, module, name):
        import collections

        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a weights file")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._storage_for(pid)


def load_torch_state_dict(data: bytes) -> dict:
    """Read a torch.save()d state dict (zip format of torch >= 1.6, or the older legacy format)."""
    if data[:4] == b"PK\x03\x04":
        return _load_torch_zip(data)
    return _load_torch_legacy(data)


def _finish(obj) -> dict:
    out = {}
    for k, v in obj.items():
        if isinstance(v, _TensorRef):
            out[k] = v.materialize()
    return out


def _load_torch_zip(data: bytes) -> dict:
    zf = zipfile.ZipFile(io.BytesIO(data))
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise AssetError("torch zip file without a single data.pkl")
    prefix = pkl[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in zf.namelist():
        byteorder = zf.read(prefix + "byteorder").decode().strip()
    if byteorder != "little":
        raise AssetError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}

    def storage_for(pid):
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if key not in storages:
            st = _Storage(stype, str(key), int(numel))
            st.load(zf.read(f"{prefix}data/{key}"))
            storages[key] = st
        return storages[key]

    obj = _TorchUnpickler(io.BytesIO(zf.read(pkl[0])), storage_for).load()
    return _finish(obj)


def _load_torch_legacy(data: bytes) -> dict:
    fp = io.BytesIO(data)
    if pickle.load(fp) != _LEGACY_MAGIC:
        raise AssetError("not a torch.save file (bad magic number)")
    if pickle.load(fp) != _LEGACY_PROTOCOL:
        raise AssetError("unsupported legacy torch.save protocol version")
    sys_info = pickle.load(fp)
    if not sys_info.get("little_endian", True):
        raise AssetError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}

    def storage_for(pid):
        _, stype, key, _location, numel, view_metadata = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if key not in storages:
            storages[key] = _Storage(stype, str(key), int(numel))
        root = storages[key]
        if view_metadata is not None:
            _view_key, offset, view_size = view_metadata
            return _StorageView(root, int(offset), int(view_size))
        return root

    obj = _TorchUnpickler(fp, storage_for).load()
    keys = pickle.load(fp)
    for key in keys:
        st = storages.get(key)
        (numel,) = struct.unpack("<q", fp.read(8))
        if st is None:
            raise AssetError(f"storage {key} listed but not referenced")
        nbytes = numel * st.stype.itemsize
        raw = fp.read(nbytes)
        if len(raw) != nbytes:
            raise AssetError("truncated torch.save file")
        st.load(raw)
    return _finish(obj)
