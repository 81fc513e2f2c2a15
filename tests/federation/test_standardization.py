"""Standardization with the task's statistics (``standardize = "task"``): the holdout's mean and
standard deviation, used by every client and site, recorded in the spec under its hash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fedchain.federation.coordinator import task_spec
from fedchain.federation.workload import (
    client_data,
    holdout,
    holdout_statistics,
    run_dataset,
    site_columns,
    site_data,
    spec_data,
    standardization_problem,
    task_standardizer,
)
from fedchain.ml.data import split_holdout
from fedchain.ml.errors import DatasetError
from fedchain.ml.partition import partition
from fedchain.ml.preprocess import Standardizer
from fedchain.settings import RunSettings

LOCAL = RunSettings(chain="none", standardize="local")
TASK = LOCAL.with_changes(standardize="task")


def _raw_client(settings: RunSettings, partition_id: int) -> np.ndarray:
    """Client ``partition_id``'s rows before preprocessing, rebuilt from the public ML API."""
    train, _ = split_holdout(run_dataset(settings), settings.holdout_fraction, settings.seed)
    parts = partition(train.labels, settings.num_clients, settings.partition, settings.seed)
    return np.asarray(train.features[parts[partition_id]], dtype=np.float64)


def test_a_simulated_client_uses_the_task_statistics_when_set() -> None:
    # Prepare
    raw = _raw_client(TASK, 3)
    _, raw_holdout = split_holdout(run_dataset(TASK), TASK.holdout_fraction, TASK.seed)
    expected = Standardizer.fit(raw_holdout.features)
    # Execute
    task = client_data(TASK, 3).features
    local = client_data(LOCAL, 3).features
    # Assert: the task's space, not the client's own
    np.testing.assert_array_equal(task, expected.transform(raw))
    np.testing.assert_array_equal(local, Standardizer.fit(raw).transform(raw))
    assert not np.allclose(task, local, atol=1e-2)


def test_the_holdout_is_standardized_alike_either_way_and_images_are_not() -> None:
    # Execute
    task, local = holdout(TASK), holdout(LOCAL)
    digits = TASK.with_changes(dataset="digits")
    # Assert: the task's statistics are the holdout's own, so the server's evaluation is unchanged
    np.testing.assert_array_equal(task.data.features, local.data.features)
    assert task.data_hash == local.data_hash
    assert task_standardizer(LOCAL) is None
    assert holdout_statistics(digits) is None
    assert task_spec(digits).feature_mean == ()


def test_the_spec_records_the_statistics_and_a_local_spec_is_unchanged() -> None:
    # Prepare
    stats = holdout_statistics(TASK)
    assert stats is not None
    # Execute
    task, local = task_spec(TASK), task_spec(LOCAL)
    # Assert
    assert task.standardize == "task"
    assert task.feature_mean == tuple(stats.mean.tolist())
    assert task.feature_scale == tuple(stats.scale.tolist())
    assert len(task.feature_mean) == 30
    assert task.spec_hash() != local.spec_hash()
    assert b"standardize" not in local.canonical()
    assert standardization_problem(task, TASK) == ""
    assert standardization_problem(local, LOCAL) == ""


@pytest.mark.parametrize(
    "change",
    [
        {"feature_mean": (0.0,) * 30},
        {"feature_scale": ()},
        {"standardize": "local"},
    ],
)
def test_a_spec_whose_statistics_are_not_its_holdouts_is_named(change: dict[str, object]) -> None:
    # Prepare
    spec = dataclasses.replace(task_spec(TASK), **change)
    settings = spec.training_settings(TASK)
    # Execute
    problem = standardization_problem(spec, settings)
    # Assert
    assert "are not those of the holdout" in problem


def _holdout_csv(path: Path) -> Path:
    lines = ["patient,age,dose,outcome"]
    lines += [f"P{i},{30 + i},{i % 4},{'relapse' if i % 3 else 'remission'}" for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _site_csv(path: Path) -> Path:
    lines = ["patient,age,dose,outcome"]
    lines += [f"S{i},{60 + i},{i % 2},relapse" for i in range(8)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _consortium(tmp_path: Path) -> RunSettings:
    return RunSettings(
        dataset="site-csv",
        partition="sites",
        holdout=f"csv:{_holdout_csv(tmp_path / 'holdout.csv')}",
        label_column="outcome",
        model="logreg",
        standardize="task",
    )


def test_a_site_reads_the_task_statistics_from_its_run_config(tmp_path: Path) -> None:
    # Prepare: the run config `fedchain task create` writes for the sites
    settings = site_columns(_consortium(tmp_path))
    site = _site_csv(tmp_path / "site.csv")
    ages = np.arange(60.0, 68.0)
    held = np.arange(30.0, 60.0)  # the holdout's ages
    # Execute
    data = site_data(
        str(site),
        "outcome",
        2,
        settings.features,
        settings.classes,
        standardize="task",
        standardize_stats=settings.standardize_stats,
    )
    # Assert: the holdout's mean and std of age, not the site's
    np.testing.assert_allclose(data.features[:, 0], (ages - held.mean()) / held.std(), rtol=1e-6)
    assert task_spec(settings).spec_hash() == task_spec(_consortium(tmp_path)).spec_hash()


def test_a_site_without_the_task_statistics_is_refused(tmp_path: Path) -> None:
    # Prepare
    site = _site_csv(tmp_path / "site.csv")
    # Execute / Assert
    with pytest.raises(DatasetError, match="carries no standardize-stats"):
        site_data(str(site), "outcome", 2, "age,dose", "relapse,remission", standardize="task")


def test_run_config_statistics_that_are_not_the_holdouts_are_refused(tmp_path: Path) -> None:
    # Prepare: a run config whose statistics were edited after `fedchain task create`
    settings = site_columns(_consortium(tmp_path))
    stats = Standardizer.from_json(settings.standardize_stats)
    edited = Standardizer(stats.mean + 1.0, stats.scale).to_json()
    # Execute / Assert
    with pytest.raises(DatasetError, match="not the holdout's statistics"):
        spec_data(settings.with_changes(standardize_stats=edited))
