"""The one canonical SHA-256 of a model or an update.

A model (or an update) is a mapping from tensor names to arrays. Its canonical serialization is
the safetensors file that ``safetensors.numpy.save(tensors)`` writes with no metadata: an 8-byte
little-endian header length, a JSON header padded with spaces to a multiple of 8 bytes, then the
raw little-endian, C-ordered bytes of every tensor. Safetensors orders the tensors by descending
dtype (``U64, I64, F64, C64, F32, U32, I32, F16, U16, I16, I8, U8, BOOL``) and then by name, and
lists them in that order in the header; this module reproduces that layout byte for byte.

The hash of a model is the SHA-256 of those bytes, so ``sha256sum model.safetensors`` equals
:func:`model_hash` of the tensors and the ``bytes32`` committed on chain. :func:`model_hash` never
builds the file: it hashes the header, then each array's own memory (copying an array only when it
is not C-contiguous or not little-endian).

Examples
--------
>>> import numpy as np
>>> h = model_hash({"w": np.zeros((2, 2), dtype=np.float32)})
>>> to_hex(h)[:10], len(h)
('0x644d5bee', 32)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NewType, TypeAlias

import numpy as np
import numpy.typing as npt
import safetensors.numpy
from safetensors import SafetensorError

from fedchain.errors import FedchainError

if TYPE_CHECKING:
    import torch

__all__ = [
    "InvalidModelHashError",
    "ModelFileError",
    "ModelHash",
    "TensorLike",
    "TensorNameError",
    "Tensors",
    "UnsupportedTensorError",
    "as_model_hash",
    "dumps",
    "file_hash",
    "from_hex",
    "load",
    "loads",
    "model_hash",
    "save_canonical",
    "to_hex",
]

ModelHash = NewType("ModelHash", bytes)
"""SHA-256 (32 bytes) of a model's canonical safetensors serialization."""

TensorLike: TypeAlias = "npt.NDArray[Any] | torch.Tensor"
"""A numpy array, or a torch tensor (converted with ``.detach().cpu().numpy()``)."""

Tensors: TypeAlias = "Mapping[str, TensorLike]"
"""A model or an update: tensor name to tensor."""

_HASH_SIZE = 32
_HEX_HASH = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
_RESERVED_NAME = "__metadata__"

# numpy dtype name -> safetensors dtype code, in the order safetensors writes them (its `Dtype`
# enum, descending). tests/unit/test_hashing.py checks this order against safetensors itself.
_DTYPE_CODES: dict[str, str] = {
    "uint64": "U64",
    "int64": "I64",
    "float64": "F64",
    "complex64": "C64",
    "float32": "F32",
    "uint32": "U32",
    "int32": "I32",
    "float16": "F16",
    "uint16": "U16",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_DTYPE_RANK: dict[str, int] = {code: rank for rank, code in enumerate(_DTYPE_CODES.values())}


class InvalidModelHashError(FedchainError, ValueError):
    """A value is not a model hash (32 bytes, or 64 hex digits with an optional ``0x``)."""


class UnsupportedTensorError(FedchainError, TypeError):
    """A tensor has a type or dtype that has no canonical safetensors form."""


class TensorNameError(FedchainError, ValueError):
    """A tensor name cannot appear in a canonical safetensors header."""


class ModelFileError(FedchainError, ValueError):
    """A file is not a safetensors file that numpy can load."""


def to_hex(h: bytes) -> str:
    """Format a model hash as ``0x`` followed by 64 lowercase hex digits.

    Parameters
    ----------
    h : bytes
        A 32-byte model hash.

    Returns
    -------
    str
        The ``0x``-prefixed lowercase hex form, as shown on chain explorers.

    Raises
    ------
    InvalidModelHashError
        If `h` is not 32 bytes.
    """
    return "0x" + as_model_hash(h).hex()


def from_hex(s: str) -> ModelHash:
    """Parse a model hash from hex.

    Parameters
    ----------
    s : str
        64 hex digits, in either case, with or without a ``0x`` prefix (so both :func:`to_hex`
        output and ``sha256sum`` output are accepted).

    Returns
    -------
    ModelHash
        The 32-byte hash.

    Raises
    ------
    InvalidModelHashError
        If `s` is not a string of exactly 64 hex digits after the optional prefix.
    """
    if not isinstance(s, str) or _HEX_HASH.fullmatch(s) is None:
        raise InvalidModelHashError(
            f"{s!r} is not a model hash: expected 64 hex digits with an optional 0x prefix "
            "(the output of `sha256sum model.safetensors` or of fedchain.hashing.to_hex)"
        )
    return ModelHash(bytes.fromhex(s[2:] if s[:2] in ("0x", "0X") else s))


def as_model_hash(value: bytes | bytearray | memoryview | str) -> ModelHash:
    """Coerce 32 raw bytes (e.g. a ``bytes32`` read from chain) or a hex string to a hash.

    Parameters
    ----------
    value : bytes, bytearray, memoryview or str
        32 bytes (any ``bytes`` subclass, such as ``HexBytes``) or a hex string accepted by
        :func:`from_hex`.

    Returns
    -------
    ModelHash
        The 32-byte hash, as plain ``bytes``.

    Raises
    ------
    InvalidModelHashError
        If `value` is neither 32 bytes nor a valid hex hash.
    """
    if isinstance(value, str):
        return from_hex(value)
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == _HASH_SIZE:
        return ModelHash(bytes(value))
    shown = (
        f"{len(value)} bytes" if isinstance(value, bytes | bytearray | memoryview) else repr(value)
    )
    raise InvalidModelHashError(
        f"{shown} is not a model hash: expected the 32-byte SHA-256 returned by "
        "fedchain.hashing.model_hash, or its hex form"
    )


def model_hash(tensors: Tensors) -> ModelHash:
    """SHA-256 of the canonical safetensors serialization of `tensors`, computed streaming.

    The header is hashed first, then each array's memory is fed to SHA-256 directly; an array is
    copied only if it is not C-contiguous or not little-endian. The file is never built.

    Parameters
    ----------
    tensors : Mapping[str, numpy.ndarray or torch.Tensor]
        The model or update. The order of the mapping does not matter.

    Returns
    -------
    ModelHash
        Equal to ``hashlib.sha256(safetensors.numpy.save(tensors)).digest()`` for C-ordered
        arrays, and to ``sha256sum`` of the file written by :func:`save_canonical`.

    Raises
    ------
    UnsupportedTensorError
        If a value is not an array or tensor, or its dtype has no safetensors/numpy form.
    TensorNameError
        If a name is reserved (``__metadata__``) or is not valid Unicode.
    """
    digest = hashlib.sha256()
    for chunk in _chunks(tensors):
        digest.update(chunk)
    return ModelHash(digest.digest())


def dumps(tensors: Tensors) -> bytes:
    """The canonical safetensors bytes of `tensors`, built in memory.

    Prefer :func:`model_hash` to hash and :func:`save_canonical` to write a file: both stream.

    Parameters
    ----------
    tensors : Mapping[str, numpy.ndarray or torch.Tensor]
        The model or update.

    Returns
    -------
    bytes
        Exactly the bytes ``safetensors.numpy.save`` returns for the same C-ordered arrays with
        no metadata; their SHA-256 is :func:`model_hash` of `tensors`.
    """
    return b"".join(_chunks(tensors))


def save_canonical(tensors: Tensors, path: str | os.PathLike[str]) -> ModelHash:
    """Write the canonical safetensors file of `tensors` atomically and return its hash.

    The bytes go to a temporary file in the destination directory, which is flushed, synced and
    then renamed over `path` (``os.replace``): readers see either the old file or the whole new
    one. The hash is computed while writing.

    Parameters
    ----------
    tensors : Mapping[str, numpy.ndarray or torch.Tensor]
        The model or update.
    path : str or os.PathLike
        Destination file; its directory must exist.

    Returns
    -------
    ModelHash
        :func:`model_hash` of `tensors`, equal to :func:`file_hash` of the written file.

    Raises
    ------
    UnsupportedTensorError, TensorNameError
        As :func:`model_hash`; nothing is written.
    OSError
        If the file cannot be written; `path` is left as it was.
    """
    chunks = _chunks(tensors)  # validates before anything touches the disk
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb", closefd=True) as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ModelHash(digest.digest())


def file_hash(path: str | os.PathLike[str]) -> ModelHash:
    """SHA-256 of a file, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        Any file; for a canonical safetensors file this is the model hash.

    Returns
    -------
    ModelHash
        The same digest as ``sha256sum path``.
    """
    with open(path, "rb") as f:
        return ModelHash(hashlib.file_digest(f, "sha256").digest())


def load(path: str | os.PathLike[str]) -> dict[str, npt.NDArray[Any]]:
    """Load the tensors of a safetensors file.

    Parameters
    ----------
    path : str or os.PathLike
        A safetensors file (canonical or not; metadata is ignored).

    Returns
    -------
    dict[str, numpy.ndarray]
        Writable arrays, keyed by name in sorted order.

    Raises
    ------
    ModelFileError
        If the file is not a safetensors file, or holds a dtype numpy has no type for.
    FileNotFoundError
        If `path` does not exist.
    """
    return _decode(Path(path).read_bytes(), source=str(path))


def loads(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """Load the tensors of safetensors bytes (such as :func:`dumps` output).

    Parameters
    ----------
    data : bytes
        The content of a safetensors file.

    Returns
    -------
    dict[str, numpy.ndarray]
        Writable arrays, keyed by name in sorted order.

    Raises
    ------
    ModelFileError
        If `data` is not safetensors content numpy can load.
    """
    return _decode(data, source="the given bytes")


def _decode(data: bytes, source: str) -> dict[str, npt.NDArray[Any]]:
    try:
        arrays = safetensors.numpy.load(data)
    except (SafetensorError, KeyError) as exc:
        raise ModelFileError(
            f"{source} is not a safetensors file numpy can load ({exc}): re-export it with "
            "fedchain.hashing.save_canonical, with dtypes numpy knows (e.g. float32, not bfloat16)"
        ) from exc
    return {name: arrays[name] for name in sorted(arrays)}


def _to_numpy(name: str, value: object) -> npt.NDArray[Any]:
    """Return `value` as a numpy array without copying when possible; torch goes through here."""
    if isinstance(value, np.ndarray):
        return value
    torch_module = sys.modules.get("torch")  # a torch tensor implies torch is already imported
    if torch_module is not None and isinstance(value, torch_module.Tensor):
        try:
            array: npt.NDArray[Any] = value.detach().cpu().numpy()
        except TypeError as exc:  # bfloat16, float8: no numpy dtype
            raise UnsupportedTensorError(
                f"tensor {name!r} has dtype {value.dtype}, which numpy cannot hold: "
                "convert it first, e.g. tensor.float()"
            ) from exc
        return array
    raise UnsupportedTensorError(
        f"tensor {name!r} is a {type(value).__name__}: pass a numpy.ndarray or a torch.Tensor"
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise UnsupportedTensorError(
            f"tensor names must be str, got {type(name).__name__} {name!r}: convert the keys"
        )
    if name == _RESERVED_NAME:
        raise TensorNameError(
            f"{_RESERVED_NAME!r} is reserved by safetensors for file metadata: rename that tensor"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TensorNameError(
            f"tensor name {name!r} is not valid Unicode (lone surrogate): rename that tensor"
        ) from exc
    return name


def _header(tensors: Tensors) -> tuple[bytes, list[npt.NDArray[Any]]]:
    """Validate `tensors`; return the length-prefixed padded header and arrays in file order."""
    entries: list[tuple[int, str, str, npt.NDArray[Any]]] = []
    for key, value in tensors.items():
        name = _check_name(key)
        array = _to_numpy(name, value)
        code = _DTYPE_CODES.get(array.dtype.name)
        if code is None or array.dtype.fields is not None:
            raise UnsupportedTensorError(
                f"tensor {name!r} has dtype {array.dtype}, which has no canonical form: use one "
                f"of {', '.join(sorted(_DTYPE_CODES))}"
            )
        entries.append((_DTYPE_RANK[code], name, code, array))
    entries.sort(key=lambda entry: (entry[0], entry[1]))

    header: dict[str, dict[str, object]] = {}
    offset = 0
    for _, name, code, array in entries:
        header[name] = {
            "dtype": code,
            "shape": [int(d) for d in array.shape],
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    # serde_json's compact form: same separators, raw UTF-8, same escapes (\" \\ \b \f \n \r \t,
    # other control characters as lowercase \u00XX).
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, [entry[3] for entry in entries]


def _chunks(tensors: Tensors) -> Iterator[memoryview]:
    """Validate now; return an iterator over the canonical file's bytes, without copying them."""
    head, arrays = _header(tensors)
    return _stream(head, arrays)


def _stream(head: bytes, arrays: list[npt.NDArray[Any]]) -> Iterator[memoryview]:
    yield memoryview(head)
    for array in arrays:
        # A view when the array is already C-contiguous little-endian; one copy otherwise.
        canonical = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        yield canonical.reshape(-1).view(np.uint8).data
