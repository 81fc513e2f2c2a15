"""How a task names its data: a built-in set by name, a CSV file by its SHA-256 and file name, and
a consortium's holdout columns and classes written out for the sites."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fedchain.federation.coordinator import task_spec
from fedchain.federation.workload import site_columns, spec_data
from fedchain.settings import RunSettings
from fedchain.task import decode_names


def _holdout(path: Path) -> Path:
    lines = ["patient,age,dose,outcome"]
    lines += [f"P{i},{30 + i},{i % 4},{'relapse' if i % 3 else 'remission'}" for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_built_in_dataset_is_named_as_before() -> None:
    # Execute
    data = spec_data(RunSettings(dataset="digits", standardize="local"))
    # Assert
    assert data == {
        "dataset": "digits",
        "data_hash": "",
        "label_column": "",
        "features": (),
        "classes": (),
        "standardize": "local",
        "feature_mean": (),
        "feature_scale": (),
    }


def test_a_consortium_spec_names_the_holdout_file_by_its_hash(tmp_path: Path) -> None:
    # Prepare
    holdout = _holdout(tmp_path / "holdout.csv")
    settings = RunSettings(
        dataset="site-csv",
        partition="sites",
        holdout=f"csv:{holdout}",
        label_column="outcome",
        model="logreg",
    )
    # Execute
    spec = task_spec(settings)
    pinned = site_columns(settings)
    # Assert: the sites get the holdout's columns and classes in their run config
    assert spec.dataset == "site-csv"
    assert spec.data_hash == "0x" + hashlib.sha256(holdout.read_bytes()).hexdigest()
    assert (spec.features, spec.classes) == (("age", "dose"), ("relapse", "remission"))
    assert decode_names(pinned.features) == ("age", "dose")
    assert decode_names(pinned.classes) == ("relapse", "remission")
    assert task_spec(pinned).spec_hash() == spec.spec_hash()
    assert str(tmp_path) not in spec.canonical().decode()
