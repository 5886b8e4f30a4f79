"""State dicts saved by ``torch.save``, read as NumPy arrays without torch.

Both of ``torch.save``'s formats are read: the zip archive (torch 1.6 and
later) and the legacy stream. The unpickler admits nothing but tensors,
storages and ``OrderedDict``, so a file cannot run code. The InceptionV3
weights conversion (:func:`ganjax.evaluation.inception.convert_torch_file`)
reads pytorch-fid's file with it.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import pickle
import zipfile
from collections.abc import Callable, Mapping
from typing import BinaryIO

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save stream
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


@dataclasses.dataclass
class _Storage:
    """A torch storage: ``numel`` elements of ``dtype``; ``data`` once read."""

    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _Tensor:
    """A strided view of a storage, as ``torch._utils._rebuild_tensor_v2`` builds it."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data
        if 0 in self.size:
            return np.zeros(self.size, data.dtype)
        end = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or min(self.stride, default=0) < 0 or end >= len(data):
            raise ValueError(f"a tensor of size {self.size} reaches past its storage of {len(data)} elements")
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, [s * data.itemsize for s in self.stride])
        return view.copy()


def _rebuild_tensor(storage: _Storage, offset: int, size, stride, *_) -> _Tensor:
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Admits only what a state dict of tensors holds: ``OrderedDict``, tensors and typed storages.

    Storages are the persistent ids; ``storage(pid)`` resolves them (None: the pickle may hold none).
    """

    def __init__(self, file: BinaryIO, storage: Callable[[tuple], _Storage] | None = None):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict of tensors")

    def persistent_load(self, pid):
        if self._storage is None or not isinstance(pid, tuple) or pid[0] not in ("storage", b"storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return self._storage(pid)


def _read_zip(archive: zipfile.ZipFile):
    """The state dict of a zip-format ``torch.save`` file (``{prefix}/data.pkl``, ``{prefix}/data/{key}``)."""
    pickles = [name for name in archive.namelist() if name.rpartition("/")[2] == "data.pkl"]
    if len(pickles) != 1:
        raise ValueError(f"a torch zip archive holds one data.pkl, this one {len(pickles)}")
    prefix = pickles[0].removesuffix("data.pkl")
    if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder") != b"little":
        raise ValueError("big-endian storages are not supported")
    storages: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
        _, dtype, key, _location, numel = pid
        if key not in storages:
            data = np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype)
            if len(data) != numel:
                raise ValueError(f"storage {key} holds {len(data)} elements, not {numel}")
            storages[key] = _Storage(dtype, numel, data)
        return storages[key]

    with archive.open(pickles[0]) as f:
        return _StateDictUnpickler(f, storage).load()


def _read_legacy(stream: BinaryIO):
    """The state dict of a legacy ``torch.save`` stream (before torch 1.6, or ``_use_new_zipfile_serialization=False``).

    Pickles of the magic number, the protocol and the system, the state dict's pickle,
    the pickled list of its storage keys, then each storage as an int64 element count and its bytes.
    """
    header = lambda: _StateDictUnpickler(stream).load()
    if header() != _LEGACY_MAGIC:
        raise ValueError("not a torch.save file (no zip archive, no legacy magic number)")
    header()  # the protocol version
    if not header().get("little_endian", True):
        raise ValueError("big-endian storages are not supported")
    storages: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
        _, dtype, key, _location, numel, view = pid
        if view is not None:
            raise ValueError("storage views (torch < 0.4) are not supported")
        return storages.setdefault(key, _Storage(dtype, numel))

    state = _StateDictUnpickler(stream, storage).load()
    for key in header():
        target = storages[key]
        numel = int.from_bytes(stream.read(8), "little")
        data = np.frombuffer(stream.read(numel * target.dtype.itemsize), target.dtype)
        if numel != target.numel or len(data) != numel:
            raise ValueError(f"storage {key}: {len(data)} elements where {target.numel} were expected")
        target.data = data
    return state


def read_torch_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The tensors of a state dict saved by ``torch.save``, as NumPy arrays, read without torch.

    Reads both of ``torch.save``'s formats: the zip archive (torch 1.6 and later), whose
    ``{prefix}/data.pkl`` rebuilds each tensor with ``torch._utils._rebuild_tensor_v2(storage,
    offset, size, stride, ...)`` over persistent ids ``('storage', storage_type, key, location,
    numel)`` and keeps each storage's raw little-endian bytes at ``{prefix}/data/{key}``; and the
    legacy stream (:func:`_read_legacy`). The unpickler admits nothing but tensors, storages and
    ``OrderedDict``, so a file cannot run code.

    Raises:
      ValueError: naming ``path``, for anything else (another format, other objects, truncated storages).
    """
    path = pathlib.Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                state = _read_zip(archive)
        else:
            with path.open("rb") as stream:
                state = _read_legacy(stream)
        if not isinstance(state, Mapping) or not all(isinstance(v, _Tensor) for v in state.values()):
            raise ValueError("it holds something other than a state dict of tensors")
        return {name: tensor.array() for name, tensor in state.items()}
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read it as a torch state dict: {e}") from e
