"""Run settings, the Flower run config in pyproject.toml, the task spec and its hash."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from fedchain.settings import RunSettings, SettingsError
from fedchain.task import TaskSpec, TaskSpecError

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_run_config_carries_the_settings_defaults() -> None:
    # Prepare
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    flower = pyproject["tool"]["flwr"]
    # Assert
    assert flower["app"]["config"] == RunSettings().to_run_config()
    assert flower["app"]["components"] == {
        "serverapp": "fedchain.server_app:app",
        "clientapp": "fedchain.client_app:app",
    }


def test_run_config_round_trip_and_coercion() -> None:
    # Prepare
    custom = RunSettings(num_rounds=3, dataset="digits", direct=True, reward_per_round=7 * 10**21)
    # Execute
    config = custom.to_run_config()
    back = RunSettings.from_run_config(config)
    loose = RunSettings.from_run_config({"num-server-rounds": "4", "direct": "true"})
    # Assert
    assert back == custom
    assert config["reward-per-round"] == str(7 * 10**21)
    assert loose.num_rounds == 4
    assert loose.direct is True


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"num-server-rounds": 0}, "num-server-rounds must be >= 1"),
        ({"chain": "mainnet"}, "chain must be one of"),
        ({"chain": "rpc"}, "chain rpc needs an rpc-url"),
        ({"strategy": "fedsgd"}, "strategy must be one of"),
        ({"fraction-train": 1.5}, "fraction-train must lie in"),
        ({"direct": "maybe"}, "is not a bool"),
        ({"num-clients": 2.5}, "is not a int"),
    ],
)
def test_bad_settings_say_which_one(config: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        RunSettings.from_run_config(config)


def _spec(**changes: object) -> TaskSpec:
    base = dict(
        dataset="breast-cancer",
        model="mlp",
        num_classes=2,
        input_shape=(30,),
        strategy="fedavg",
        local_epochs=1,
        learning_rate=0.05,
        batch_size=16,
        proximal_mu=0.0,
        holdout_hash="0x" + "11" * 32,
        holdout_fraction=0.2,
        initial_model_hash="0x" + "22" * 32,
    )
    base.update(changes)
    return TaskSpec(**base)  # type: ignore[arg-type]


def test_spec_hash_is_sha256_of_the_saved_file(tmp_path: Path) -> None:
    # Prepare
    spec = _spec()
    path = tmp_path / "task.json"
    # Execute
    spec.save(path)
    # Assert
    assert hashlib.sha256(path.read_bytes().rstrip(b"\n")).digest() == spec.spec_hash()
    assert TaskSpec.load(path) == spec
    assert _spec(learning_rate=0.1).spec_hash() != spec.spec_hash()
    assert _spec(holdout_hash="0x" + "33" * 32).spec_hash() != spec.spec_hash()


def test_a_malformed_spec_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    path.write_text('{"dataset": "x"}')
    with pytest.raises(TaskSpecError, match="not a fedchain task spec"):
        TaskSpec.load(path)
    with pytest.raises(TaskSpecError, match="no task spec"):
        TaskSpec.load(tmp_path / "missing.json")
