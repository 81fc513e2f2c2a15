"""What an audit needs to recompute a consortium task, checked before anything is recomputed:
a spec from before the data hash (a consortium's holdout named only by its arrays' hash) asks
for the holdout instead of failing later with "unknown dataset 'site-csv'"."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.audit.auditor import MissingDataError, check_data
from fedchain.task import SITES_PARTITION, TaskSpec

HASH = "0x" + "ab" * 32


def _consortium_spec(path: Path, data_hash: str = "") -> Path:
    TaskSpec(
        dataset="site-csv",
        model="logreg",
        num_classes=2,
        input_shape=(30,),
        strategy="fedavg",
        local_epochs=1,
        learning_rate=0.05,
        batch_size=16,
        proximal_mu=0.0,
        holdout_hash=HASH,
        holdout_fraction=0.2,
        initial_model_hash=HASH,
        partition=SITES_PARTITION,
        data_hash=data_hash,
    ).save(path)
    return path


def test_an_older_consortium_spec_without_the_holdout_asks_for_it(tmp_path: Path) -> None:
    # Prepare: no data hash in the spec, no run settings naming the holdout, no --data
    spec = _consortium_spec(tmp_path / "task.json")
    # Execute / Assert
    with pytest.raises(MissingDataError, match=r"holdout file is needed to recompute.*--data"):
        check_data([("--spec", spec)], None, None, recompute=True)


def test_a_missing_holdout_copy_is_named_with_the_committed_hash(tmp_path: Path) -> None:
    # Prepare
    spec = _consortium_spec(tmp_path / "task.json", data_hash=HASH)
    missing = tmp_path / "nowhere.csv"
    # Execute / Assert
    with pytest.raises(MissingDataError, match=rf"no data file at {missing}.*SHA-256 {HASH}"):
        check_data([("--spec", spec)], None, missing, recompute=True)
