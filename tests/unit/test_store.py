"""fedchain.store: a model's file is named after its SHA-256, and reads re-check it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import safetensors.numpy

from fedchain.errors import FedchainError
from fedchain.hashing import InvalidModelHashError, ModelFileError, model_hash, to_hex
from fedchain.store import ModelCorrupted, ModelNotInStore, ModelStore

Arrays = dict[str, npt.NDArray[Any]]


def _model(seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    return {
        "fc.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "fc.bias": rng.standard_normal(8).astype(np.float32),
        "steps": np.array(seed, dtype=np.int64),
    }


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


# --- put -------------------------------------------------------------------------------------


def test_put_names_the_file_after_its_sha256(store: ModelStore) -> None:
    # Prepare
    tensors = _model()

    # Execute
    h = store.put(tensors)

    # Assert
    data = store.path(h).read_bytes()
    assert h == model_hash(tensors)
    assert h == hashlib.sha256(data).digest()
    assert data == safetensors.numpy.save(tensors)
    assert store.path(h) == store.root / f"{hashlib.sha256(data).hexdigest()}.safetensors"


def test_put_is_idempotent_and_leaves_no_temporaries(store: ModelStore) -> None:
    # Prepare
    tensors = _model()
    first = store.put(tensors)
    mtime = store.path(first).stat().st_mtime_ns

    # Execute
    second = store.put(dict(reversed(list(tensors.items()))))

    # Assert
    assert second == first
    assert _files(store.root) == [f"{to_hex(first)[2:]}.safetensors"]
    assert store.path(first).stat().st_mtime_ns == mtime  # intact copy not rewritten


def test_put_repairs_a_damaged_copy(store: ModelStore) -> None:
    # Prepare
    tensors = _model()
    h = store.put(tensors)
    _tamper(store.path(h))

    # Execute
    again = store.put(tensors)

    # Assert
    assert again == h
    assert hashlib.sha256(store.path(h).read_bytes()).digest() == h


def test_different_models_get_different_files(store: ModelStore) -> None:
    # Execute
    first = store.put(_model(1))
    second = store.put(_model(2))

    # Assert
    assert first != second
    assert len(_files(store.root)) == 2


def test_put_file_of_a_canonical_file_keeps_its_sha256(store: ModelStore, tmp_path: Path) -> None:
    # Prepare
    source = tmp_path / "client-update.safetensors"
    safetensors.numpy.save_file(_model(), source)

    # Execute
    h = store.put_file(source)

    # Assert
    assert h == hashlib.sha256(source.read_bytes()).digest()
    assert store.path(h).read_bytes() == source.read_bytes()


def test_put_file_canonicalises_a_file_with_metadata(store: ModelStore, tmp_path: Path) -> None:
    # Prepare
    source = tmp_path / "with-metadata.safetensors"
    safetensors.numpy.save_file(_model(), source, metadata={"format": "np"})

    # Execute
    h = store.put_file(source)

    # Assert
    assert h == model_hash(_model())
    assert h != hashlib.sha256(source.read_bytes()).digest()
    assert hashlib.sha256(store.path(h).read_bytes()).digest() == h


def test_put_file_rejects_a_file_that_is_not_safetensors(store: ModelStore, tmp_path: Path) -> None:
    # Prepare
    source = tmp_path / "notes.txt"
    source.write_text("hello")

    # Execute / Assert
    with pytest.raises(ModelFileError):
        store.put_file(source)


# --- get -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bytes", "0x-hex", "bare-hex"])
def test_get_returns_the_tensors(store: ModelStore, form: str) -> None:
    # Prepare
    tensors = _model()
    h = store.put(tensors)
    keys: dict[str, bytes | str] = {"bytes": h, "0x-hex": to_hex(h), "bare-hex": to_hex(h)[2:]}
    key = keys[form]

    # Execute
    loaded = store.get(key)

    # Assert
    assert sorted(loaded) == sorted(tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded[name], value)


def test_get_of_a_missing_model_says_how_to_get_it(store: ModelStore) -> None:
    # Prepare
    h = model_hash(_model(3))

    # Execute / Assert
    with pytest.raises(ModelNotInStore) as caught:
        store.get(h)
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, FedchainError)
    message = str(caught.value)
    assert message.startswith(f"model {to_hex(h)} is not in the store")  # not quoted by KeyError
    assert "put it" in message


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_tamper, id="flipped-bit"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-4]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), id="emptied"),
    ],
)
def test_get_detects_a_damaged_file(store: ModelStore, damage: Any) -> None:
    # Prepare
    h = store.put(_model())
    damage(store.path(h))

    # Execute / Assert
    with pytest.raises(ModelCorrupted, match=to_hex(h)) as caught:
        store.get(h)
    assert isinstance(caught.value, ValueError)
    assert "delete it" in str(caught.value)


def test_get_detects_another_model_under_the_wrong_name(store: ModelStore) -> None:
    # Prepare
    h = store.put(_model(1))
    other = store.put(_model(2))
    store.path(h).write_bytes(store.path(other).read_bytes())

    # Execute / Assert
    with pytest.raises(ModelCorrupted, match=to_hex(other)):
        store.get(h)


# --- contains, path --------------------------------------------------------------------------


def test_contains(store: ModelStore) -> None:
    # Prepare
    h = store.put(_model())
    absent = model_hash(_model(9))

    # Execute / Assert
    assert h in store
    assert to_hex(h) in store
    assert absent not in store
    assert "not a hash" not in store
    assert 42 not in store


def test_path_rejects_what_is_not_a_hash(store: ModelStore) -> None:
    # Execute / Assert
    with pytest.raises(InvalidModelHashError):
        store.path("0x1234")


# --- export ----------------------------------------------------------------------------------


def test_export_copies_the_verified_file(store: ModelStore, tmp_path: Path) -> None:
    # Prepare
    h = store.put(_model())
    dest = tmp_path / "out" / "global.safetensors"
    dest.parent.mkdir()

    # Execute
    written = store.export(h, dest)

    # Assert
    assert written == dest
    assert hashlib.sha256(dest.read_bytes()).digest() == h
    assert _files(dest.parent) == ["global.safetensors"]


def test_export_into_a_directory_uses_the_hash_name(store: ModelStore, tmp_path: Path) -> None:
    # Prepare
    h = store.put(_model())
    out = tmp_path / "out"
    out.mkdir()

    # Execute
    written = store.export(to_hex(h), out)

    # Assert
    assert written == out / store.path(h).name
    assert written.read_bytes() == store.path(h).read_bytes()


def test_export_of_a_damaged_file_writes_nothing(store: ModelStore, tmp_path: Path) -> None:
    # Prepare
    h = store.put(_model())
    _tamper(store.path(h))
    out = tmp_path / "out"
    out.mkdir()

    # Execute / Assert
    with pytest.raises(ModelCorrupted):
        store.export(h, out / "m.safetensors")
    assert _files(out) == []


def test_export_of_a_missing_model(store: ModelStore, tmp_path: Path) -> None:
    # Execute / Assert
    with pytest.raises(ModelNotInStore):
        store.export(model_hash(_model()), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
