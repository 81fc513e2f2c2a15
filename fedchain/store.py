"""Content-addressed model store.

Every model lives in ``<root>/<sha256 hex>.safetensors``: its canonical safetensors file (see
:mod:`fedchain.hashing`), named after its own SHA-256. So a file's name is the hash committed on
chain, ``sha256sum`` of the file checks it, and reading a model back re-hashes the bytes.

Examples
--------
>>> import tempfile
>>> import numpy as np
>>> store = ModelStore(tempfile.mkdtemp())
>>> h = store.put({"w": np.zeros((2, 2), dtype=np.float32)})
>>> h in store, store.path(h).name[:8]
(True, '644d5bee')
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import numpy.typing as npt

from fedchain.errors import FedchainError
from fedchain.hashing import (
    InvalidModelHashError,
    ModelFileError,
    ModelHash,
    Tensors,
    as_model_hash,
    file_hash,
    load,
    loads,
    model_hash,
    save_canonical,
    to_hex,
)

__all__ = ["ModelCorrupted", "ModelNotInStore", "ModelStore"]

_SUFFIX = ".safetensors"


class ModelNotInStore(FedchainError, KeyError):
    """No model with the requested hash is in the store."""

    def __str__(self) -> str:
        # KeyError would show the message quoted; show it as written.
        return Exception.__str__(self)


class ModelCorrupted(FedchainError, ValueError):
    """A stored file's bytes do not hash to its name, or do not parse."""


class ModelStore:
    """Models on disk, each named after the SHA-256 of its canonical safetensors file.

    Parameters
    ----------
    root : str or os.PathLike
        Directory of the store; created on the first :meth:`put`.

    Notes
    -----
    Writes are atomic (temporary file, then ``os.replace``), so concurrent writers of the same
    model and readers never see a partial file. Reads (:meth:`get`, :meth:`export`) re-hash the
    bytes they hand out.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    def path(self, h: bytes | str) -> Path:
        """Where the model with hash `h` lives (whether or not it is there).

        Parameters
        ----------
        h : ModelHash or str
            The model hash: 32 raw bytes, or hex with or without ``0x``.

        Returns
        -------
        pathlib.Path
            ``<root>/<64 lowercase hex digits>.safetensors``.

        Raises
        ------
        fedchain.hashing.InvalidModelHashError
            If `h` is not a model hash.
        """
        return self.root / f"{to_hex(as_model_hash(h))[2:]}{_SUFFIX}"

    def __contains__(self, h: object) -> bool:
        """Whether a file for hash `h` is present (not verified; :meth:`get` verifies).

        Anything that is not a model hash is simply not contained.
        """
        if not isinstance(h, bytes | str):
            return False
        try:
            return self.path(h).is_file()
        except InvalidModelHashError:
            return False

    def put(self, tensors: Tensors) -> ModelHash:
        """Store a model; idempotent.

        If an intact copy is already stored nothing is written; a damaged copy is replaced.

        Parameters
        ----------
        tensors : Mapping[str, numpy.ndarray or torch.Tensor]
            The model or update.

        Returns
        -------
        ModelHash
            :func:`fedchain.hashing.model_hash` of `tensors`, which is also the SHA-256 of the
            stored file.

        Raises
        ------
        fedchain.hashing.UnsupportedTensorError, fedchain.hashing.TensorNameError
            If `tensors` has no canonical form.
        FedchainError
            If the arrays changed while they were being written.
        """
        h = model_hash(tensors)
        target = self.path(h)
        if target.is_file() and file_hash(target) == h:
            return h
        self.root.mkdir(parents=True, exist_ok=True)
        incoming = self.root / f".incoming-{uuid.uuid4().hex}{_SUFFIX}"
        try:
            written = save_canonical(tensors, incoming)
            if written != h:
                raise FedchainError(
                    f"the arrays of model {to_hex(h)} changed while it was being stored: "
                    "do not modify them until ModelStore.put returns"
                )
            os.replace(incoming, target)
        finally:
            incoming.unlink(missing_ok=True)
        return h

    def put_file(self, path: str | os.PathLike[str]) -> ModelHash:
        """Store the model in a safetensors file.

        The tensors are stored in canonical form, so the result is the model hash even if the
        file was not canonical (e.g. it carried metadata); then it differs from ``sha256sum`` of
        the given file.

        Parameters
        ----------
        path : str or os.PathLike
            A safetensors file.

        Returns
        -------
        ModelHash
            The hash of the model in the file.

        Raises
        ------
        fedchain.hashing.ModelFileError
            If `path` is not a loadable safetensors file.
        """
        return self.put(load(path))

    def get(self, h: bytes | str) -> dict[str, npt.NDArray[Any]]:
        """Load a stored model, after checking that its bytes hash to `h`.

        Parameters
        ----------
        h : ModelHash or str
            The model hash, as bytes or hex.

        Returns
        -------
        dict[str, numpy.ndarray]
            The tensors, keyed by name in sorted order.

        Raises
        ------
        ModelNotInStore
            If no file for `h` is stored.
        ModelCorrupted
            If the file's SHA-256 is not `h`, or the file does not parse.
        """
        source = self._existing(h)
        data = source.read_bytes()
        actual = ModelHash(hashlib.sha256(data).digest())
        self._check(h, actual, source)
        try:
            return loads(data)
        except ModelFileError as exc:  # only reachable by a SHA-256 collision or a bad put_file
            raise ModelCorrupted(f"{source} hashes right but does not parse: {exc}") from exc

    def export(self, h: bytes | str, dest: str | os.PathLike[str]) -> Path:
        """Copy a stored model's file to `dest`, verifying its hash while copying.

        Parameters
        ----------
        h : ModelHash or str
            The model hash, as bytes or hex.
        dest : str or os.PathLike
            Destination file, or an existing directory to write ``<hex>.safetensors`` into.

        Returns
        -------
        pathlib.Path
            The written file; ``sha256sum`` of it is `h`.

        Raises
        ------
        ModelNotInStore
            If no file for `h` is stored.
        ModelCorrupted
            If the stored bytes do not hash to `h`; nothing is written.
        """
        source = self._existing(h)
        target = Path(dest)
        if target.is_dir():
            target = target / source.name
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        digest = hashlib.sha256()
        try:
            with source.open("rb") as src, tmp.open("xb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._check(h, ModelHash(digest.digest()), source)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def put_document(self, data: bytes, suffix: str = ".json") -> ModelHash:
        """Store a document (a published round record, say) under its SHA-256; idempotent.

        Parameters
        ----------
        data : bytes
            The document's exact bytes.
        suffix : str
            File suffix; ``<root>/<sha256 hex><suffix>`` is written.

        Returns
        -------
        ModelHash
            SHA-256 of `data`, which names the file.
        """
        h = ModelHash(hashlib.sha256(data).digest())
        target = self.root / f"{to_hex(h)[2:]}{suffix}"
        if target.is_file() and hashlib.sha256(target.read_bytes()).digest() == h:
            return h
        self.root.mkdir(parents=True, exist_ok=True)
        incoming = self.root / f".incoming-{uuid.uuid4().hex}{suffix}"
        try:
            incoming.write_bytes(data)
            os.replace(incoming, target)
        finally:
            incoming.unlink(missing_ok=True)
        return h

    def get_document(self, h: bytes | str, suffix: str = ".json") -> bytes:
        """A stored document's bytes, after checking that they hash to `h`.

        Raises
        ------
        ModelNotInStore
            If no document for `h` is stored.
        ModelCorrupted
            If the file's SHA-256 is not `h`.
        """
        source = self.root / f"{to_hex(as_model_hash(h))[2:]}{suffix}"
        if not source.is_file():
            raise ModelNotInStore(
                f"document {to_hex(as_model_hash(h))} is not in the store at {self.root}: "
                "copy the run's store, or publish it with ModelStore.put_document"
            )
        data = source.read_bytes()
        self._check(h, ModelHash(hashlib.sha256(data).digest()), source)
        return data

    def _existing(self, h: bytes | str) -> Path:
        source = self.path(h)
        if not source.is_file():
            raise ModelNotInStore(
                f"model {to_hex(as_model_hash(h))} is not in the store at {self.root}: put it "
                "with ModelStore.put, or fetch it from the participant that committed it"
            )
        return source

    def _check(self, h: bytes | str, actual: ModelHash, source: Path) -> None:
        expected = as_model_hash(h)
        if actual != expected:
            raise ModelCorrupted(
                f"{source} has SHA-256 {to_hex(actual)}, not {to_hex(expected)}: the file was "
                "modified or truncated; delete it and put or fetch the model again"
            )
