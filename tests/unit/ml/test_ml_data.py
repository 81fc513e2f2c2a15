"""Datasets, CSV loading and its errors, spec parsing, holdout split and dataset hash."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from fedchain.errors import FedchainError
from fedchain.ml import (
    Dataset,
    DatasetError,
    DatasetFileNotFoundError,
    DatasetSpec,
    dataset_hash,
    load_breast_cancer,
    load_csv,
    load_dataset,
    load_digits,
    parse_dataset_spec,
    split_holdout,
)


def _write(tmp_path: Path, text: str, name: str = "site.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _toy(n: int = 10, name: str = "toy") -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(
        features=rng.normal(size=(n, 3)), labels=np.arange(n) % 2, num_classes=2, name=name
    )


# --- built-in datasets and the Dataset value object ---


def test_breast_cancer_is_tabular_binary() -> None:
    # Execute
    ds = load_breast_cancer()

    # Assert
    assert ds.features.shape == (569, 30)
    assert ds.features.dtype == np.float32
    assert ds.labels.dtype == np.int64
    assert ds.num_classes == 2
    assert ds.name == "breast-cancer"
    assert not ds.is_image


def test_digits_are_one_channel_8x8_images_with_raw_pixels() -> None:
    # Execute
    ds = load_digits()

    # Assert
    assert ds.features.shape == (1797, 1, 8, 8)
    assert ds.input_shape == (1, 8, 8)
    assert ds.is_image
    assert ds.num_classes == 10
    assert float(ds.features.max()) == 16.0


def test_dataset_copies_and_freezes_its_arrays() -> None:
    # Prepare
    features = np.zeros((2, 2))
    ds = Dataset(features=features, labels=np.array([0, 1]), num_classes=2, name="x")

    # Execute
    features[0, 0] = 5.0

    # Assert
    assert ds.features[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        ds.features[0, 0] = 1.0


@pytest.mark.parametrize(
    ("labels", "num_classes", "message"),
    [
        ([0, 1, 1], 2, "labels must have shape"),
        ([0, 2], 2, r"labels must lie in \[0, 2\)"),
        ([0, 0], 1, "num_classes must be at least 2"),
    ],
)
def test_dataset_rejects_inconsistent_labels(
    labels: list[int], num_classes: int, message: str
) -> None:
    # Execute / Assert
    with pytest.raises(DatasetError, match=message):
        Dataset(features=np.zeros((2, 3)), labels=labels, num_classes=num_classes, name="bad")


def test_subset_keeps_order_and_classes() -> None:
    # Prepare
    ds = _toy()

    # Execute
    sub = ds.subset([3, 1], name="sub")

    # Assert
    np.testing.assert_array_equal(sub.features, ds.features[[3, 1]])
    np.testing.assert_array_equal(sub.labels, [1, 1])
    assert (sub.num_classes, sub.name) == (2, "sub")


# --- dataset specs ---


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("breast-cancer", DatasetSpec(kind="breast-cancer")),
        (" Digits ", DatasetSpec(kind="digits")),
        ("csv:data/site 1.csv", DatasetSpec(kind="csv", path=Path("data/site 1.csv"))),
    ],
)
def test_parse_dataset_spec(spec: str, expected: DatasetSpec) -> None:
    # Execute / Assert
    assert parse_dataset_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"), [("mnist", "unknown dataset 'mnist'"), ("csv:", "names no file")]
)
def test_parse_dataset_spec_rejects_bad_specs(spec: str, message: str) -> None:
    # Execute
    with pytest.raises(DatasetError) as info:
        parse_dataset_spec(spec)

    # Assert
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FedchainError)
    assert message in str(info.value)
    assert "csv:PATH" in str(info.value)


def test_load_dataset_csv_uses_label_column_argument(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "a,b,target\n1,2,0\n3,4,1\n")

    # Execute
    ds = load_dataset(f"csv:{path}", label_column="target")

    # Assert
    np.testing.assert_array_equal(ds.features, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(ds.labels, [0, 1])


def test_load_dataset_builtin_by_name() -> None:
    # Execute / Assert
    assert load_dataset("digits").num_examples == 1797


# --- CSV loading ---


def test_load_csv_reads_features_in_requested_order(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "\ufeffx1, x2 ,label,x3\n1,2,0,3\n4.5,-5,2,6e1\n\n")

    # Execute
    ds = load_csv(path, "label", feature_columns=["x3", "x1"])

    # Assert
    np.testing.assert_array_equal(ds.features, np.array([[3, 1], [60, 4.5]], dtype=np.float32))
    np.testing.assert_array_equal(ds.labels, [0, 2])
    assert ds.num_classes == 3
    assert ds.name == f"csv:{path}"


def test_load_csv_takes_the_task_num_classes(tmp_path: Path) -> None:
    # Prepare: a site holding only class 0 of a 10-class task
    path = _write(tmp_path, "x,label\n1,0\n2,0\n")

    # Execute
    ds = load_csv(path, "label", num_classes=10)

    # Assert
    assert ds.num_classes == 10


def test_load_csv_missing_file(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(DatasetFileNotFoundError) as info:
        load_csv(tmp_path / "nope.csv", "label")

    # Assert
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, FedchainError)
    assert "nope.csv" in str(info.value)


def test_load_csv_missing_label_column_lists_available(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "age,weight,y\n1,2,0\n")

    # Execute
    with pytest.raises(DatasetError) as info:
        load_csv(path, "label")

    # Assert
    message = str(info.value)
    assert "no label column 'label'" in message
    assert "'age', 'weight', 'y'" in message


def test_load_csv_missing_feature_column_names_it(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "age,weight,label\n1,2,0\n")

    # Execute
    with pytest.raises(DatasetError) as info:
        load_csv(path, "label", feature_columns=["age", "height"])

    # Assert
    message = str(info.value)
    assert "'height'" in message
    assert "available columns: 'age', 'weight', 'label'" in message


def test_load_csv_non_numeric_value_names_row_and_column(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "age,weight,label\n1,2,0\n3,heavy,1\n")

    # Execute
    with pytest.raises(DatasetError) as info:
        load_csv(path, "label")

    # Assert
    message = str(info.value)
    assert "row 2 (line 3)" in message
    assert "column 'weight'" in message
    assert "'heavy' is not a number" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("a,label\n", "no data rows"),
        ("a,label\n1,\n", "row 1 (line 2), column 'label': the label is empty"),
        ("a,label\n,0\n2,1\n", "row 1 (line 2), column 'a': '' is not a number"),
        ("a,label\nnan,1\n", "not a finite number"),
        ("a,label\n1,0.5\n", "label '0.5' is not a class id"),
        ("a,label\n1,inf\n", "label 'inf' is not a class id"),
        ("a,label\n1,0,7\n", "has 3 fields but the header has 2"),
        ("a,a,label\n1,2,0\n", "duplicate column names ['a']"),
        ("label\n0\n", "no numeric feature columns besides the label 'label'"),
        (
            "id,label\nP1,0\n",
            "no numeric feature columns besides the label 'label'; non-numeric columns: 'id'",
        ),
    ],
)
def test_load_csv_rejects_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    # Prepare
    path = _write(tmp_path, text)

    # Execute / Assert
    with pytest.raises(DatasetError) as info:
        load_csv(path, "label")
    assert message in str(info.value)


def test_load_csv_missing_label_column_names_the_option_to_set(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "age,y\n1,0\n")

    # Execute / Assert
    with pytest.raises(DatasetError, match="Name the right one with --label-column"):
        load_csv(path, "label")


def test_load_csv_maps_class_names_to_ids_in_sorted_order(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "x,diagnosis\n1,malignant\n2, benign\n3,malignant\n4,cyst\n")

    # Execute
    ds = load_csv(path, "diagnosis")

    # Assert
    assert ds.class_names == ("benign", "cyst", "malignant")
    np.testing.assert_array_equal(ds.labels, [2, 0, 2, 1])
    assert ds.num_classes == 3
    assert ds.feature_names == ("x",)


def test_load_csv_maps_negative_class_ids_in_numeric_order(tmp_path: Path) -> None:
    # Prepare: the -1/1 labels of many SVM-style files, and a third class 10
    path = _write(tmp_path, "x,label\n1,1\n2,-1\n3,10\n4,-1.0\n")

    # Execute
    ds = load_csv(path, "label")

    # Assert
    assert ds.class_names == ("-1", "1", "10")
    np.testing.assert_array_equal(ds.labels, [1, 0, 2, 0])


def test_load_csv_maps_labels_by_the_task_classes(tmp_path: Path) -> None:
    # Prepare: a site holding one class of the task's three
    path = _write(tmp_path, "x,label\n1,cyst\n2,cyst\n")

    # Execute
    ds = load_csv(path, "label", classes=["benign", "cyst", "malignant"])

    # Assert
    np.testing.assert_array_equal(ds.labels, [1, 1])
    assert ds.num_classes == 3
    assert ds.class_names == ("benign", "cyst", "malignant")


def test_load_csv_refuses_a_label_outside_the_task_classes(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "x,label\n1,benign\n2,polyp\n")

    # Execute / Assert
    with pytest.raises(DatasetError) as info:
        load_csv(path, "label", classes=["benign", "malignant"])
    assert (
        "row 2 (line 3), column 'label': label 'polyp' is not one of the task's classes "
        "'benign', 'malignant'" in str(info.value)
    )


def test_load_csv_default_features_are_the_other_numeric_columns(tmp_path: Path) -> None:
    # Prepare: an id and a name column hold no number; 'dose' is blank in one row only
    path = _write(tmp_path, "id,name,age,label,dose\nP1,Ann,30,0,1.5\nP2,Bob,40,1,2\n")

    # Execute
    ds = load_csv(path, "label")

    # Assert
    assert ds.feature_names == ("age", "dose")
    np.testing.assert_array_equal(ds.features, [[30, 1.5], [40, 2]])


def test_load_csv_names_non_numeric_columns_listed_as_features(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "id,name,age,label\nP1,Ann,30,0\nP2,,40,1\n")

    # Execute / Assert
    with pytest.raises(DatasetError) as info:
        load_csv(path, "label", feature_columns=["age", "id", "name"])
    message = str(info.value)
    assert "feature column(s) 'id' (e.g. 'P1'), 'name' (e.g. 'Ann') hold no numbers" in message
    assert "leave them out of --features" in message


def test_load_csv_refuses_a_feature_listed_twice(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "a,b,label\n1,2,0\n")

    # Execute / Assert
    with pytest.raises(DatasetError, match=r"--features lists \['a'\] more than once"):
        load_csv(path, "label", feature_columns=["a", "b", "a"])


def test_load_csv_rejects_label_listed_as_feature(tmp_path: Path) -> None:
    # Prepare
    path = _write(tmp_path, "a,label\n1,0\n")

    # Execute / Assert
    with pytest.raises(DatasetError, match="also listed as a feature"):
        load_csv(path, "label", feature_columns=["a", "label"])


# --- holdout split ---


def test_split_holdout_is_stratified_disjoint_and_complete() -> None:
    # Prepare
    ds = load_breast_cancer()

    # Execute
    train, holdout = split_holdout(ds, fraction=0.2, seed=0)

    # Assert
    assert len(train) + len(holdout) == len(ds)
    assert len(holdout) == 42 + 71  # floor(0.2 * count + 0.5) of 212 malignant, 357 benign
    assert abs(holdout.labels.mean() - ds.labels.mean()) < 0.01
    rows = {tuple(row) for row in np.vstack([train.features, holdout.features]).tolist()}
    assert len(rows) == len(ds)
    assert holdout.name == "breast-cancer[holdout]"


def test_split_holdout_is_deterministic_per_seed() -> None:
    # Prepare
    ds = load_breast_cancer()

    # Execute
    first = split_holdout(ds, seed=1)[1]
    again = split_holdout(ds, seed=1)[1]
    other = split_holdout(ds, seed=2)[1]

    # Assert
    assert dataset_hash(first) == dataset_hash(again)
    assert dataset_hash(first) != dataset_hash(other)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_holdout_rejects_bad_fraction(fraction: float) -> None:
    # Execute / Assert
    with pytest.raises(DatasetError, match="fraction"):
        split_holdout(_toy(), fraction=fraction)


def test_split_holdout_rejects_too_small_datasets() -> None:
    # Execute / Assert
    with pytest.raises(DatasetError, match="too small"):
        split_holdout(_toy(n=2), fraction=0.2)


# --- dataset hash ---


def test_dataset_hash_follows_documented_encoding() -> None:
    # Prepare
    ds = _toy()
    expected = hashlib.sha256(
        b"fedchain.dataset.v1\x00"
        + struct.pack("<3Q", 2, 10, 3)
        + ds.features.astype("<f4").tobytes()
        + ds.labels.astype("<i8").tobytes()
    ).digest()

    # Execute / Assert
    assert dataset_hash(ds) == expected


def test_dataset_hash_ignores_name_but_sees_every_label() -> None:
    # Prepare
    ds = _toy(name="a")
    renamed = _toy(name="b")
    labels = ds.labels.copy()
    labels[-1] = 1 - labels[-1]
    relabelled = Dataset(features=ds.features, labels=labels, num_classes=2, name="a")

    # Execute / Assert
    assert len(dataset_hash(ds)) == 32
    assert dataset_hash(ds) == dataset_hash(renamed)
    assert dataset_hash(ds) != dataset_hash(relabelled)


def test_dataset_hash_sees_shape() -> None:
    # Prepare: same bytes, different shapes
    flat = Dataset(features=np.zeros((2, 4)), labels=[0, 1], num_classes=2, name="flat")
    square = Dataset(features=np.zeros((2, 2, 2)), labels=[0, 1], num_classes=2, name="sq")

    # Execute / Assert
    assert dataset_hash(flat) != dataset_hash(square)
