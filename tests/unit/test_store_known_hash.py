"""ModelStore.put with the hash the caller has already: the server hashes each update as it
checks it, and storing it must not hash its 40 MB (at 10M parameters) a second time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import fedchain.store
from fedchain.errors import FedchainError
from fedchain.hashing import model_hash
from fedchain.store import ModelStore

Arrays = dict[str, npt.NDArray[Any]]


def _model(seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    return {
        "fc.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "fc.bias": rng.standard_normal(8).astype(np.float32),
    }


def _count_model_hash(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]

    def counted(tensors: Any) -> Any:
        calls[0] += 1
        return model_hash(tensors)

    monkeypatch.setattr(fedchain.store, "model_hash", counted)
    return calls


def test_put_with_the_known_hash_does_not_hash_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    store, tensors = ModelStore(tmp_path / "store"), _model(0)
    known = model_hash(tensors)
    calls = _count_model_hash(monkeypatch)
    # Execute
    h = store.put(tensors, known=known)
    # Assert: stored whole under its name, the tensors never hashed apart from the write
    assert calls == [0]
    assert h == known
    assert hashlib.sha256(store.path(h).read_bytes()).digest() == known
    assert store.get(h).keys() == tensors.keys()


def test_put_without_a_known_hash_still_hashes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path / "store")
    calls = _count_model_hash(monkeypatch)
    h = store.put(_model(0))
    assert calls == [1]
    assert h == model_hash(_model(0))


def test_a_wrong_known_hash_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    # Prepare
    store, tensors = ModelStore(tmp_path / "store"), _model(0)
    wrong = model_hash(_model(1))
    # Execute
    with pytest.raises(FedchainError) as info:
        store.put(tensors, known=wrong)
    # Assert
    message = str(info.value)
    assert "\n" not in message
    assert f"hash to 0x{model_hash(tensors).hex()}" in message
    assert wrong not in store
    assert list(store.root.iterdir()) == []  # no file, no temporary left
