"""Where a content store lives: a local folder, or any fsspec URL (object storage).

A plain path (or ``file://``) is a local folder, handled by :class:`fedchain.store.ModelStore`
as always. Any other URL (``s3://bucket/prefix``, ``gcs://...``, ``memory://...``) is an
:class:`ObjectStore` through `fsspec <https://filesystem-spec.readthedocs.io>`_; ``s3://`` uses
s3fs, which reads its credentials and endpoint the way every AWS client does: the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3``, ``AWS_DEFAULT_REGION``), ``~/.aws/config`` and ``~/.aws/credentials``, or
fsspec's configuration (``FSSPEC_S3_ENDPOINT_URL``, ``FSSPEC_S3_KEY``, ...). Never from the
command line, so no secret lands in a shell history or a run's settings.

Objects are written only when absent (an exclusive create where the backend has one, such as
S3's ``If-None-Match``), never over an existing object: content addressing makes equal content
idempotent, and different content under a hash's name is damage to report, not to paper over.
"""

from __future__ import annotations

import os
from typing import Any

from fedchain.errors import FedchainError

__all__ = [
    "REMOTE_TIMEOUT_S",
    "ObjectStore",
    "StoreUnreachable",
    "is_remote",
    "local_path",
]

#: Seconds an object store has to connect (and to answer each read) before a call fails.
REMOTE_TIMEOUT_S = 10.0


class StoreUnreachable(FedchainError, OSError):
    """A store URL that cannot be used: unknown protocol, missing driver, or no answer."""


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL of an object store (not a plain path nor ``file://``)."""
    if isinstance(location, os.PathLike):
        return False
    from fsspec.utils import get_protocol

    return "://" in location and get_protocol(location) not in ("file", "local")


def local_path(location: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """A local location as a path: ``file://`` stripped, anything else as given."""
    if isinstance(location, str) and location.startswith("file://"):
        return location[len("file://") :]
    return location


def _options(protocol: str) -> dict[str, Any]:
    """Storage options fedchain sets itself: bounded waits, and no cached listings (another
    process may add or damage objects between two reads)."""
    if protocol in ("s3", "s3a"):
        return {
            "use_listings_cache": False,
            "skip_instance_cache": True,
            "config_kwargs": {
                "connect_timeout": REMOTE_TIMEOUT_S,
                "read_timeout": REMOTE_TIMEOUT_S,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
        }
    return {"skip_instance_cache": True}


class ObjectStore:
    """Named objects under one fsspec URL; the content store's remote backend.

    Parameters
    ----------
    url : str
        ``protocol://bucket/prefix``; objects are ``<url>/<name>``.

    Raises
    ------
    StoreUnreachable
        If fsspec knows no such protocol or its driver is not installed.
    """

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        try:
            cls = fsspec.get_filesystem_class(protocol)
        except ImportError as exc:  # a known protocol whose driver is not installed
            raise StoreUnreachable(f"store {self.url}: {str(exc).splitlines()[0]}") from None
        except ValueError:
            raise StoreUnreachable(
                f"store {self.url}: fsspec knows no protocol {protocol!r}: give a folder or a "
                "URL such as s3://bucket/prefix"
            ) from None
        self.fs = cls(**_options(protocol))
        self.base = cls._strip_protocol(self.url).rstrip("/")

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def where(self, name: str) -> str:
        """The URL of object ``name``, for messages."""
        return f"{self.url}/{name}"

    def exists(self, name: str) -> bool:
        """Whether object ``name`` is there."""
        return bool(self._call(self.fs.exists, f"{self.base}/{name}"))

    def read(self, name: str) -> bytes | None:
        """Object ``name``'s bytes, or None when there is none."""
        try:
            return bytes(self._call(self.fs.cat_file, f"{self.base}/{name}"))
        except FileNotFoundError:
            return None

    def create(self, name: str, data: bytes) -> bool:
        """Write object ``name`` only if absent; False when one is already there."""
        try:
            self._call(self.fs.pipe_file, f"{self.base}/{name}", data, mode="create")
        except FileExistsError:
            return False
        return True

    def check(self) -> None:
        """Refuse a store that does not answer, before anything starts (one request: list the
        prefix; an empty or new prefix is fine, a missing bucket or no endpoint is not).

        Raises
        ------
        StoreUnreachable
            If the store cannot be listed: no endpoint, bad credentials, no such bucket.
        """
        bucket = self.base.split("/", 1)[0]
        try:
            self._call(self.fs.ls, bucket, detail=False)
        except FileNotFoundError:
            raise StoreUnreachable(
                f"store {self.url}: no bucket {bucket} there: create it, or check the URL"
            ) from None

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the filesystem, turning a connection or permission failure into one line."""
        try:
            return method(*args, **kwargs)
        except (FileNotFoundError, FileExistsError):
            raise
        except Exception as exc:  # botocore's (no credentials, no endpoint) are not OSErrors
            raise _unreachable(self.url, exc) from None


def _unreachable(url: str, exc: BaseException) -> StoreUnreachable:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return StoreUnreachable(
        f"store {url} cannot be used ({reason}): check the URL, the endpoint "
        "(AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    )
