"""fedchain.hashing: the canonical SHA-256 is safetensors' own bytes, hashed streaming."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import safetensors.numpy
import torch

from fedchain.errors import FedchainError
from fedchain.hashing import (
    InvalidModelHashError,
    ModelFileError,
    TensorNameError,
    UnsupportedTensorError,
    as_model_hash,
    dumps,
    file_hash,
    from_hex,
    load,
    loads,
    model_hash,
    save_canonical,
    to_hex,
)

Arrays = dict[str, npt.NDArray[Any]]

# Every dtype both safetensors and numpy know, in the order the header lists them.
SUPPORTED_DTYPES = [
    "uint64",
    "int64",
    "float64",
    "complex64",
    "float32",
    "uint32",
    "int32",
    "float16",
    "uint16",
    "int16",
    "int8",
    "uint8",
    "bool",
]


def _values(shape: tuple[int, ...], dtype: str, seed: int) -> npt.NDArray[Any]:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("complex"):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _all_dtypes_reverse_names() -> Arrays:
    # Names sort opposite to the dtype order, so a name-only sort would be caught.
    return {
        f"t{99 - i:02d}": _values((i % 3 + 1, 2), dt, i) for i, dt in enumerate(SUPPORTED_DTYPES)
    }


def _many_names() -> Arrays:
    names = [f"layer.{i}.weight" for i in range(150)]
    names += ["", "é", "Ω", "😀", "中文", "a\nb", "tab\tname", 'q"uote', "back\\slash"]
    names += ["\x00nul", "\x01", "\x1f", "\x7f", "\u2028", "Zeta", "zeta", "ä", "a" * 300]
    return {name: _values((i % 4,), SUPPORTED_DTYPES[i % 4], i) for i, name in enumerate(names)}


CASES: dict[str, Callable[[], Arrays]] = {
    "float32": lambda: {"w": _values((4, 5), "float32", 0), "b": _values((5,), "float32", 1)},
    "float64": lambda: {"w": _values((3, 3), "float64", 2)},
    "int64": lambda: {"steps": _values((7,), "int64", 3)},
    "float16": lambda: {"h": _values((2, 3, 4), "float16", 4)},
    "mixed-dtypes": _all_dtypes_reverse_names,
    "scalars-0d": lambda: {
        "lr": np.array(0.1, dtype=np.float32),
        "step": np.array(7, dtype=np.int64),
        "flag": np.array(True),
    },
    "empty-tensors": lambda: {
        "e0": np.zeros((0,), np.float32),
        "e1": np.zeros((3, 0), np.int64),
        "x": np.ones((2,), np.float16),
    },
    "many-unicode-names": _many_names,
    "no-tensors": dict,
}


@pytest.fixture(params=sorted(CASES))
def arrays(request: pytest.FixtureRequest) -> Arrays:
    return CASES[request.param]()


def _safetensors_bytes(tensors: Arrays) -> bytes:
    return safetensors.numpy.save(tensors)


def _header(data: bytes) -> dict[str, Any]:
    (length,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    return header


# --- byte-identical with safetensors ---------------------------------------------------------


def test_dumps_is_byte_identical_to_safetensors_save(arrays: Arrays) -> None:
    # Prepare
    expected = _safetensors_bytes(arrays)

    # Execute
    actual = dumps(arrays)

    # Assert
    assert actual == expected


def test_model_hash_is_sha256_of_safetensors_save(arrays: Arrays) -> None:
    # Prepare
    expected = hashlib.sha256(_safetensors_bytes(arrays)).digest()

    # Execute
    actual = model_hash(arrays)

    # Assert
    assert actual == expected
    assert len(actual) == 32


def test_save_canonical_writes_safetensors_bytes_and_returns_file_sha256(
    arrays: Arrays, tmp_path: Path
) -> None:
    # Prepare
    path = tmp_path / "model.safetensors"

    # Execute
    returned = save_canonical(arrays, path)

    # Assert
    data = path.read_bytes()
    assert data == _safetensors_bytes(arrays)
    assert returned == hashlib.sha256(data).digest() == file_hash(path) == model_hash(arrays)


def test_header_lists_tensors_by_descending_dtype_then_name() -> None:
    # Prepare
    tensors = _all_dtypes_reverse_names()

    # Execute
    header = _header(dumps(tensors))

    # Assert
    in_file_order = sorted(header, key=lambda name: header[name]["data_offsets"][0])
    assert list(header) == in_file_order
    assert [header[name]["dtype"] for name in in_file_order] == [
        "U64", "I64", "F64", "C64", "F32", "U32", "I32", "F16", "U16", "I16", "I8", "U8", "BOOL",
    ]  # fmt: skip


def test_header_is_space_padded_to_eight_bytes(arrays: Arrays) -> None:
    # Execute
    data = dumps(arrays)

    # Assert
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    assert data[8 : 8 + length].rstrip(b" ").endswith(b"}")


def test_non_contiguous_and_fortran_arrays_hash_as_their_c_ordered_values() -> None:
    # Prepare
    base = _values((4, 6), "float32", 5)
    views = {"t": base.T, "strided": base[::2, ::3], "fortran": np.asfortranarray(base)}
    contiguous = {name: np.ascontiguousarray(view) for name, view in views.items()}

    # Execute
    actual = model_hash(views)

    # Assert
    assert not views["t"].flags.c_contiguous
    assert actual == hashlib.sha256(_safetensors_bytes(contiguous)).digest()


def test_big_endian_arrays_hash_as_their_little_endian_values() -> None:
    # Prepare
    little = {"w": _values((3, 4), "float64", 6), "i": _values((5,), "int32", 7)}
    big = {name: value.astype(value.dtype.newbyteorder(">")) for name, value in little.items()}

    # Execute
    actual = model_hash(big)

    # Assert
    assert actual == model_hash(little)
    assert actual == hashlib.sha256(_safetensors_bytes(big)).digest()


# --- streaming -------------------------------------------------------------------------------


def test_model_hash_feeds_array_memory_to_sha256_without_copying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    tensors = {"a": _values((256, 64), "float32", 8), "b": _values((1000,), "int64", 9)}
    updates: list[memoryview] = []
    real_sha256 = hashlib.sha256

    class RecordingSha256:
        def __init__(self, data: bytes = b"") -> None:
            self._inner = real_sha256(data)

        def update(self, chunk: memoryview) -> None:
            updates.append(chunk)
            self._inner.update(chunk)

        def digest(self) -> bytes:
            return self._inner.digest()

    monkeypatch.setattr(hashlib, "sha256", RecordingSha256)

    # Execute
    digest = model_hash(tensors)

    # Assert
    monkeypatch.undo()
    assert digest == hashlib.sha256(_safetensors_bytes(tensors)).digest()
    largest = max(value.nbytes for value in tensors.values())
    assert all(len(chunk) <= largest for chunk in updates)  # never the whole file at once
    fed = [np.frombuffer(chunk, dtype=np.uint8) for chunk in updates]
    for value in tensors.values():
        assert any(np.shares_memory(chunk, value) for chunk in fed)


# --- what changes the hash, what does not ----------------------------------------------------


def test_hash_does_not_depend_on_mapping_order() -> None:
    # Prepare
    tensors = _many_names()
    reordered = dict(reversed(list(tensors.items())))

    # Execute / Assert
    assert list(reordered) != list(tensors)
    assert model_hash(reordered) == model_hash(tensors)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda t: {**t, "w": np.nextafter(t["w"], np.inf)}, id="one-ulp-values"),
        pytest.param(lambda t: {**t, "w": t["w"].reshape(3, 2)}, id="same-bytes-other-shape"),
        pytest.param(lambda t: {**t, "w": t["w"].view(np.int32)}, id="same-bytes-other-dtype"),
        pytest.param(lambda t: {"W": t["w"], "b": t["b"]}, id="renamed-tensor"),
        pytest.param(lambda t: {"w": t["w"]}, id="dropped-tensor"),
        pytest.param(lambda t: {**t, "extra": np.zeros(0, np.float32)}, id="added-empty-tensor"),
        pytest.param(lambda t: {**t, "w": t["w"].astype(np.float64)}, id="same-values-float64"),
    ],
)
def test_different_tensors_give_different_hashes(change: Callable[[Arrays], Arrays]) -> None:
    # Prepare
    original = {"w": _values((2, 3), "float32", 10), "b": _values((3,), "float32", 11)}
    changed = change(original)

    # Execute / Assert
    assert model_hash(changed) != model_hash(original)


# --- torch -----------------------------------------------------------------------------------


def test_torch_tensors_hash_like_their_numpy_arrays() -> None:
    # Prepare
    weight = torch.randn(4, 3, requires_grad=True)
    tensors = {
        "w": weight,
        "wt": weight.detach().t(),  # non-contiguous
        "steps": torch.arange(5, dtype=torch.int64),
        "mask": torch.tensor([True, False]),
        "half": torch.ones(3, dtype=torch.float16),
    }
    as_numpy = {name: np.ascontiguousarray(t.detach().numpy()) for name, t in tensors.items()}

    # Execute
    actual = model_hash(tensors)

    # Assert
    assert actual == model_hash(as_numpy)
    assert actual == hashlib.sha256(_safetensors_bytes(as_numpy)).digest()


def test_torch_bfloat16_is_rejected_with_a_fix() -> None:
    # Prepare
    tensors = {"w": torch.ones(2, dtype=torch.bfloat16)}

    # Execute / Assert
    with pytest.raises(UnsupportedTensorError, match=r"bfloat16.*tensor\.float\(\)"):
        model_hash(tensors)


# --- rejected input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(np.zeros(2, np.complex128), id="complex128"),
        pytest.param(np.zeros(2, np.longdouble), id="longdouble"),
        pytest.param(np.array(["a"]), id="str"),
        pytest.param(np.array([None]), id="object"),
        pytest.param(np.zeros(2, "datetime64[s]"), id="datetime64"),
        pytest.param(np.zeros(2, [("x", "f4")]), id="structured"),
        pytest.param([1.0, 2.0], id="list"),
        pytest.param(np.float32(1.0), id="numpy-scalar"),
    ],
)
def test_values_without_a_canonical_form_are_rejected(value: object) -> None:
    # Execute / Assert
    with pytest.raises(UnsupportedTensorError, match="'w'") as caught:
        model_hash({"w": value})  # type: ignore[dict-item]
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, FedchainError)


@pytest.mark.parametrize("name", ["__metadata__", "bad\ud800surrogate"])
def test_names_safetensors_cannot_store_are_rejected(name: str, tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "m.safetensors"

    # Execute / Assert
    with pytest.raises(TensorNameError, match="rename that tensor"):
        save_canonical({name: np.zeros(1, np.float32)}, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_non_string_names_are_rejected() -> None:
    # Execute / Assert
    with pytest.raises(UnsupportedTensorError, match="names must be str"):
        model_hash({1: np.zeros(1, np.float32)})  # type: ignore[dict-item]


# --- hex -------------------------------------------------------------------------------------


def test_to_hex_and_from_hex_round_trip() -> None:
    # Prepare
    h = model_hash({"w": np.arange(3, dtype=np.float32)})

    # Execute
    text = to_hex(h)

    # Assert
    assert text == "0x" + hashlib.sha256(dumps({"w": np.arange(3, dtype=np.float32)})).hexdigest()
    assert len(text) == 66
    assert text == text.lower()
    assert from_hex(text) == h
    assert from_hex(text[2:]) == h  # sha256sum form
    assert from_hex(text.upper().replace("0X", "0x")) == h


@pytest.mark.parametrize(
    "text",
    ["", "0x", "0x" + "ab" * 31, "0x" + "ab" * 33, "0x" + "zz" * 32, " " + "ab" * 32, "ab " * 32],
)
def test_from_hex_rejects_malformed_text(text: str) -> None:
    # Execute / Assert
    with pytest.raises(InvalidModelHashError, match="64 hex digits") as caught:
        from_hex(text)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, FedchainError)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33])
def test_wrong_length_bytes_are_not_hashes(raw: bytes) -> None:
    # Execute / Assert
    with pytest.raises(InvalidModelHashError, match=f"{len(raw)} bytes"):
        to_hex(raw)


def test_as_model_hash_accepts_bytes_subclasses_and_hex() -> None:
    # Prepare
    h = model_hash({"w": np.ones(2, np.float32)})

    class HexBytesLike(bytes):
        pass

    # Execute
    results = [
        as_model_hash(HexBytesLike(h)),
        as_model_hash(bytearray(h)),
        as_model_hash(memoryview(h)),
        as_model_hash(to_hex(h)),
    ]

    # Assert
    assert all(result == h and type(result) is bytes for result in results)


# --- files -----------------------------------------------------------------------------------


def test_load_round_trips_names_dtypes_shapes_and_values(arrays: Arrays, tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "m.safetensors"
    save_canonical(arrays, path)

    # Execute
    loaded = load(path)

    # Assert
    assert list(loaded) == sorted(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype
        assert loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)
    assert model_hash(loaded) == model_hash(arrays)


def test_loads_gives_writable_arrays() -> None:
    # Prepare
    data = dumps({"w": np.zeros(3, np.float32)})

    # Execute
    loaded = loads(data)
    loaded["w"] += 1

    # Assert
    np.testing.assert_array_equal(loaded["w"], np.ones(3, np.float32))


def test_load_rejects_a_file_that_is_not_safetensors(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")

    # Execute / Assert
    with pytest.raises(ModelFileError, match=r"junk\.safetensors"):
        load(path)


def test_file_hash_streams_a_large_file(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "big.bin"
    data = np.random.default_rng(12).bytes(3 * (1 << 20) + 17)
    path.write_bytes(data)

    # Execute
    actual = file_hash(path)

    # Assert
    assert actual == hashlib.sha256(data).digest()


def test_save_canonical_replaces_an_existing_file(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old content")
    tensors = {"w": np.ones(4, np.float32)}

    # Execute
    save_canonical(tensors, path)

    # Assert
    assert path.read_bytes() == _safetensors_bytes(tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_failed_save_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old content")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)

    # Execute
    with pytest.raises(OSError, match="disk full"):
        save_canonical({"w": np.ones(4, np.float32)}, path)

    # Assert
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
