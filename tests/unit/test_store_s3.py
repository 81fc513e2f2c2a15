"""The content store on object storage: an s3:// store against a real S3 API on loopback (moto's
server) holds the same objects as a local store, re-checks every read, never overwrites, and an
unusable URL is refused in one line before anything starts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from _s3_server import S3Server, free_port, s3_server

from fedchain.errors import FedchainError
from fedchain.hashing import to_hex
from fedchain.settings import SettingsError
from fedchain.simulation.preflight import check_store
from fedchain.storage import ObjectStore, StoreUnreachable, is_remote
from fedchain.store import ModelCorrupted, ModelNotInStore, ModelStore

pytestmark = pytest.mark.timeout(120)

Arrays = dict[str, npt.NDArray[Any]]


def _model(seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    return {
        "fc.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "fc.bias": rng.standard_normal(8).astype(np.float32),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@pytest.fixture
def bucket(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the AWS environment pointing at the loopback server."""
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    name = f"store-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def _object(server: S3Server, bucket: str, key: str) -> bytes:
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
    return bytes(body.read())


def test_an_s3_store_holds_exactly_what_a_local_store_holds(
    server: S3Server, bucket: str, tmp_path: Path
) -> None:
    # Prepare
    local, remote = ModelStore(tmp_path / "store"), ModelStore(f"s3://{bucket}/runs/a")
    tensors, document = _model(), b'{"round": 1}'

    # Execute
    hashes = (local.put(tensors), remote.put(tensors))
    documents = (local.put_document(document), remote.put_document(document))

    # Assert
    assert hashes[0] == hashes[1]
    assert documents[0] == documents[1]
    name = f"{to_hex(hashes[0])[2:]}.safetensors"
    stored = _object(server, bucket, f"runs/a/{name}")
    assert stored == (tmp_path / "store" / name).read_bytes()
    assert hashlib.sha256(stored).digest() == hashes[1]
    assert hashes[1] in remote
    assert _model(1) not in remote
    got = remote.get(hashes[1])
    assert all(np.array_equal(got[k], tensors[k]) for k in tensors)
    assert remote.get_document(documents[1]) == document
    assert remote.stored_hash(hashes[1]) == hashes[1]
    assert remote.bytes_written == local.bytes_written == len(stored) + len(document)


def test_putting_equal_content_again_writes_nothing(bucket: str) -> None:
    # Prepare
    store = ModelStore(f"s3://{bucket}/p")
    h = store.put(_model())
    written = store.bytes_written

    # Execute
    again = store.put(dict(reversed(list(_model().items()))))

    # Assert
    assert again == h
    assert store.bytes_written == written


def test_a_tampered_object_is_detected_and_never_overwritten(
    server: S3Server, bucket: str, tmp_path: Path
) -> None:
    # Prepare
    store = ModelStore(f"s3://{bucket}/p")
    h = store.put(_model())
    key = f"p/{to_hex(h)[2:]}.safetensors"
    tampered = bytearray(_object(server, bucket, key))
    tampered[-1] ^= 0x01
    server.client().put_object(Bucket=bucket, Key=key, Body=bytes(tampered))  # type: ignore[attr-defined]

    # Execute / Assert
    with pytest.raises(ModelCorrupted, match="modified or truncated"):
        store.get(h)
    with pytest.raises(ModelCorrupted, match="never overwrites"):
        store.put(_model())
    with pytest.raises(ModelCorrupted):
        store.export(h, tmp_path)
    assert store.stored_hash(h) == hashlib.sha256(tampered).digest() != h
    assert _object(server, bucket, key) == bytes(tampered)  # left as found, for the audit
    assert list(tmp_path.iterdir()) == []  # nothing exported


def test_a_tampered_document_is_detected(server: S3Server, bucket: str) -> None:
    # Prepare
    store = ModelStore(f"s3://{bucket}/p")
    h = store.put_document(b"{}")
    server.client().put_object(Bucket=bucket, Key=f"p/{to_hex(h)[2:]}.json", Body=b"[]")  # type: ignore[attr-defined]

    # Execute / Assert
    with pytest.raises(ModelCorrupted):
        store.get_document(h)


def test_a_missing_object_is_not_in_the_store(bucket: str) -> None:
    store = ModelStore(f"s3://{bucket}/p")
    missing = hashlib.sha256(b"nothing").digest()

    with pytest.raises(ModelNotInStore, match=f"s3://{bucket}/p"):
        store.get(missing)
    assert store.stored_hash(missing) is None
    assert missing not in store


def test_export_from_s3_writes_the_checked_file(bucket: str, tmp_path: Path) -> None:
    store = ModelStore(f"s3://{bucket}/p")
    h = store.put(_model())

    written = store.export(h, tmp_path)

    assert written == tmp_path / f"{to_hex(h)[2:]}.safetensors"
    assert hashlib.sha256(written.read_bytes()).digest() == h


def test_an_object_is_created_only_when_absent(server: S3Server, bucket: str) -> None:
    # Prepare: S3's conditional write (If-None-Match), which moto implements
    objects = ObjectStore(f"s3://{bucket}/p")

    # Execute
    first, second = objects.create("a", b"first"), objects.create("a", b"second")

    # Assert
    assert (first, second) == (True, False)
    assert _object(server, bucket, "p/a") == b"first"


def test_a_plain_path_stays_a_local_folder(tmp_path: Path) -> None:
    store = ModelStore(str(tmp_path / "s"))
    via_file_url = ModelStore(f"file://{tmp_path / 's'}")

    assert not store.remote
    assert store.root == tmp_path / "s"
    assert not via_file_url.remote
    assert via_file_url.root == tmp_path / "s"
    assert is_remote("s3://b/p")
    assert not is_remote("runs/x")
    assert not is_remote(tmp_path)


def test_a_remote_store_has_no_local_folder(bucket: str) -> None:
    with pytest.raises(StoreUnreachable, match="not a local folder"):
        _ = ModelStore(f"s3://{bucket}/p").root


def test_a_missing_bucket_is_refused(server: S3Server, bucket: str) -> None:
    with pytest.raises(StoreUnreachable, match="no bucket nowhere-"):
        check_store(f"s3://nowhere-{uuid.uuid4().hex[:8]}/p")


def test_an_unreachable_endpoint_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: nothing listens on this port
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    # Execute
    with pytest.raises(StoreUnreachable) as caught:
        check_store("s3://bucket/prefix")

    # Assert
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("store s3://bucket/prefix cannot be used")
    assert "AWS_ENDPOINT_URL" in message
    assert isinstance(caught.value, FedchainError)
    assert isinstance(caught.value, OSError)


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(StoreUnreachable, match="no protocol 'nosuch'"):
        check_store("nosuch://bucket/prefix")


def test_a_store_folder_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    with pytest.raises(SettingsError, match="is a file"):
        check_store(str(tmp_path / "file" / "store"))
