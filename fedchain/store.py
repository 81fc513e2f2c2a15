"""Content-addressed model store.

Every model lives in ``<root>/<sha256 hex>.safetensors``: its canonical safetensors file (see
:mod:`fedchain.hashing`), named after its own SHA-256. So a file's name is the hash committed on
chain, ``sha256sum`` of the file checks it, and reading a model back re-hashes the bytes.

The root may also be any fsspec URL (``s3://bucket/prefix``): the same names as objects there,
the same checks on every read, and an object is written only when absent (see
:mod:`fedchain.storage`).

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
    dumps,
    file_hash,
    load,
    loads,
    model_hash,
    save_canonical,
    to_hex,
)
from fedchain.storage import ObjectStore, StoreUnreachable, is_remote, local_path

__all__ = ["ModelCorrupted", "ModelNotInStore", "ModelStore", "run_store"]

_SUFFIX = ".safetensors"


def run_store(out: str | os.PathLike[str], store: str = "") -> ModelStore:
    """A run's content store: ``store`` (a folder or an fsspec URL) if set, else ``<out>/store``.

    Raises
    ------
    fedchain.storage.StoreUnreachable
        If ``store`` is a URL fsspec cannot open (unknown protocol, driver not installed).
    """
    return ModelStore(store or Path(out) / "store")


#: A local store's files and the folder it creates: its owner's only (each site's updates are
#: in it; the coordinator publishes a copy to auditors, docs/audit.md).
_FILE_MODE, _DIR_MODE = 0o600, 0o700


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
        Directory of the store, created on the first :meth:`put`; or an fsspec URL such as
        ``s3://bucket/prefix`` (see :mod:`fedchain.storage`).

    Attributes
    ----------
    location : str
        The folder or URL, as messages name it.
    bytes_written : int
        Bytes this object wrote to the store (models and documents it did not find there).

    Notes
    -----
    Writes are atomic (temporary file, then ``os.replace``), so concurrent writers of the same
    model and readers never see a partial file. A local store's files are created mode 600 and
    the folder it creates 700. Reads (:meth:`get`, :meth:`export`) re-hash the
    bytes they hand out.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._remote = ObjectStore(str(root)) if is_remote(root) else None
        self._root = Path(local_path(root))
        self.location = self._remote.url if self._remote is not None else str(self._root)
        self.bytes_written = 0

    def __repr__(self) -> str:
        return f"ModelStore({self.location!r})"

    @property
    def root(self) -> Path:
        """The store's local folder.

        Raises
        ------
        fedchain.storage.StoreUnreachable
            If the store is at a URL: it has no local folder (see :attr:`location`).
        """
        if self._remote is not None:
            raise StoreUnreachable(f"the store at {self.location} is not a local folder")
        return self._root

    @property
    def remote(self) -> bool:
        """Whether the store is at an fsspec URL rather than in a local folder."""
        return self._remote is not None

    def check(self) -> None:
        """Refuse a store URL that does not answer (a local folder needs nothing).

        Raises
        ------
        fedchain.storage.StoreUnreachable
            If the object store cannot be listed.
        """
        if self._remote is not None:
            self._remote.check()

    def name(self, h: bytes | str, suffix: str = _SUFFIX) -> str:
        """The file or object name of hash `h`: ``<64 lowercase hex digits><suffix>``."""
        return f"{to_hex(as_model_hash(h))[2:]}{suffix}"

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
            if self._remote is not None:
                return self._remote.exists(self.name(h))
            return self.path(h).is_file()
        except InvalidModelHashError:
            return False

    def put(self, tensors: Tensors, known: bytes | None = None) -> ModelHash:
        """Store a model; idempotent.

        If an intact copy is already stored nothing is written; a damaged copy is replaced (in a
        local folder; at a store URL it is reported, never overwritten).

        Parameters
        ----------
        tensors : Mapping[str, numpy.ndarray or torch.Tensor]
            The model or update.
        known : bytes, optional
            :func:`fedchain.hashing.model_hash` of `tensors` when the caller has it already (the
            server hashes each update as it checks it): a local store then does not hash them
            again before writing (a 10M-parameter update is 40 MB). The write hashes the bytes
            it writes and refuses a mismatch, so nothing is ever stored under a wrong name.

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
            If the arrays changed while they were being written, or do not hash to `known`.
        ModelCorrupted
            If a store URL holds other bytes under the model's name (never overwritten).
        """
        if self._remote is not None:
            data = dumps(tensors)
            h = ModelHash(hashlib.sha256(data).digest())
            self._create(h, data, _SUFFIX)
            return h
        h = model_hash(tensors) if known is None else as_model_hash(known)
        target = self.path(h)
        if target.is_file() and file_hash(target) == h:
            return h
        self._make_root()
        incoming = self.root / f".incoming-{uuid.uuid4().hex}{_SUFFIX}"
        try:
            written = save_canonical(tensors, incoming)
            os.chmod(incoming, _FILE_MODE)
            if written != h:
                why = (
                    "changed while it was being stored: do not modify them until "
                    "ModelStore.put returns"
                    if known is None
                    else f"hash to {to_hex(written)}: pass ModelStore.put their model_hash"
                )
                raise FedchainError(f"the arrays of model {to_hex(h)} {why}")
            os.replace(incoming, target)
        finally:
            incoming.unlink(missing_ok=True)
        self.bytes_written += target.stat().st_size
        return h

    def _make_root(self) -> None:
        """The store's folder, created 700: it holds each site's individual updates."""
        self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)

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
        source: Path | str
        if self._remote is not None:
            source, data = self._read(h, _SUFFIX, "model")
        else:
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
        if self._remote is not None:
            return self._export_remote(h, Path(dest))
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
        if self._remote is not None:
            self._create(h, data, suffix)
            return h
        target = self.root / f"{to_hex(h)[2:]}{suffix}"
        if target.is_file() and hashlib.sha256(target.read_bytes()).digest() == h:
            return h
        self._make_root()
        incoming = self.root / f".incoming-{uuid.uuid4().hex}{suffix}"
        try:
            descriptor = os.open(incoming, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(incoming, target)
        finally:
            incoming.unlink(missing_ok=True)
        self.bytes_written += len(data)
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
        if self._remote is not None:
            where, data = self._read(h, suffix, "document")
            self._check(h, ModelHash(hashlib.sha256(data).digest()), where)
            return data
        source = self.root / f"{to_hex(as_model_hash(h))[2:]}{suffix}"
        if not source.is_file():
            raise ModelNotInStore(
                f"document {to_hex(as_model_hash(h))} is not in the store at {self.root}: "
                "copy the run's store, or publish it with ModelStore.put_document"
            )
        data = source.read_bytes()
        self._check(h, ModelHash(hashlib.sha256(data).digest()), source)
        return data

    def stored_hash(self, h: bytes | str, suffix: str = _SUFFIX) -> ModelHash | None:
        """SHA-256 of what is stored under hash `h`'s name, or None when nothing is.

        Lets an audit say whether a model is missing or altered without loading it.
        """
        if self._remote is not None:
            data = self._remote.read(self.name(h, suffix))
            return None if data is None else ModelHash(hashlib.sha256(data).digest())
        path = self.root / self.name(h, suffix)
        return file_hash(path) if path.is_file() else None

    def _create(self, h: ModelHash, data: bytes, suffix: str) -> None:
        """Write ``data`` under its hash at the store URL unless there; never over other bytes."""
        assert self._remote is not None
        name = self.name(h, suffix)
        if self._remote.create(name, data):
            self.bytes_written += len(data)
            return
        existing = self._remote.read(name)
        if existing is None or hashlib.sha256(existing).digest() != h:
            raise ModelCorrupted(
                f"{self._remote.where(name)} already exists with other bytes than its name's "
                "hash: it is damaged; delete that object and run again (fedchain never "
                "overwrites an object)"
            )

    def _read(self, h: bytes | str, suffix: str, what: str) -> tuple[str, bytes]:
        """The URL and bytes of a stored object, or ModelNotInStore."""
        assert self._remote is not None
        name = self.name(h, suffix)
        data = self._remote.read(name)
        if data is None:
            raise ModelNotInStore(
                f"{what} {to_hex(as_model_hash(h))} is not in the store at {self.location}: "
                "put it with ModelStore.put, or fetch it from the party that committed it"
            )
        return self._remote.where(name), data

    def _export_remote(self, h: bytes | str, dest: Path) -> Path:
        """:meth:`export` from a store URL: read, check, then write atomically."""
        where, data = self._read(h, _SUFFIX, "model")
        self._check(h, ModelHash(hashlib.sha256(data).digest()), where)
        target = dest / self.name(h) if dest.is_dir() else dest
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def _existing(self, h: bytes | str) -> Path:
        source = self.path(h)
        if not source.is_file():
            raise ModelNotInStore(
                f"model {to_hex(as_model_hash(h))} is not in the store at {self.root}: put it "
                "with ModelStore.put, or fetch it from the participant that committed it"
            )
        return source

    def _check(self, h: bytes | str, actual: ModelHash, source: Path | str) -> None:
        expected = as_model_hash(h)
        if actual != expected:
            raise ModelCorrupted(
                f"{source} has SHA-256 {to_hex(actual)}, not {to_hex(expected)}: the file was "
                "modified or truncated; delete it and put or fetch the model again"
            )
