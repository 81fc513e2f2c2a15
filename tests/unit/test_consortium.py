"""The consortium's pieces: node config, run config file, token amounts, Flower commands, specs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flwr.common.config import parse_config_args

from fedchain import record_keys
from fedchain.consortium.certs import create_ca
from fedchain.consortium.deployment import (
    ConsortiumError,
    node_config,
    org_hash,
    read_run_config,
    settings_from_spec,
    superlink_command,
    token_amount,
    write_run_config,
)
from fedchain.federation.coordinator import task_spec
from fedchain.settings import RunSettings

TASK = RunSettings(
    num_rounds=3,
    chain="rpc",
    rpc_url="http://127.0.0.1:8545",
    deployment="/srv/fedchain-deployment.json",
    task_id=7,
    keystore="/srv/coordinator.json",
    holdout="csv:/srv/holdout.csv",
    reward_per_round=5 * 10**20,
    out="/srv/runs/consortium",
    partition="sites",
)


def test_node_config_is_read_back_by_flower_with_absolute_paths(tmp_path: Path) -> None:
    # Prepare: paths with spaces, relative to the working directory
    site = tmp_path / "our data"
    site.mkdir()
    (site / "site a.csv").touch()
    (site / "key.json").touch()
    # Execute
    relative = Path(os.path.relpath(site / "site a.csv"))
    config = node_config(relative, site / "key.json", "http://10.0.0.1:8545")
    parsed = parse_config_args([config])  # what flower-supernode --node-config does
    # Assert
    assert parsed == {
        record_keys.NODE_DATA_PATH: str(site / "site a.csv"),
        record_keys.NODE_KEYSTORE: str(site / "key.json"),
        record_keys.NODE_RPC_URL: "http://10.0.0.1:8545",
    }


def test_node_config_refuses_a_path_flower_cannot_quote(tmp_path: Path) -> None:
    with pytest.raises(ConsortiumError, match="quote"):
        node_config(tmp_path / 'a"b.csv', tmp_path / "key.json")


def test_the_run_config_file_round_trips_and_is_what_flwr_run_reads(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "fedchain-task.toml"
    # Execute
    write_run_config(path, TASK, "task 7\nsecond line")
    # Assert
    assert read_run_config(path) == TASK
    assert parse_config_args([str(path)]) == TASK.to_run_config()  # `flwr run --run-config`
    assert path.read_text().startswith("# task 7\n# second line\n")


def test_every_run_config_key_is_one_the_flower_app_declares() -> None:
    import tomllib

    declared = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert set(TASK.to_run_config()) == set(declared)


def test_a_run_config_is_never_overwritten_and_must_name_a_task(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "fedchain-task.toml"
    write_run_config(path, TASK)
    untasked = tmp_path / "untasked.toml"
    write_run_config(untasked, RunSettings())
    # Execute / Assert
    with pytest.raises(ConsortiumError, match="exists"):
        write_run_config(path, RunSettings())
    assert read_run_config(path) == TASK
    with pytest.raises(ConsortiumError, match="names no task"):
        read_run_config(untasked)
    with pytest.raises(ConsortiumError, match="fedchain task create"):
        read_run_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [("1000", 18, 1000 * 10**18), ("0.5", 18, 5 * 10**17), ("12", 0, 12), ("0", 6, 0)],
)
def test_token_amounts_are_whole_tokens_in_base_units(
    text: str, decimals: int, expected: int
) -> None:
    assert token_amount(text, decimals) == expected


@pytest.mark.parametrize("text", ["many", "-1", "0.5", "1e-19"])
def test_token_amounts_that_are_no_whole_base_unit_are_refused(text: str) -> None:
    decimals = 0 if text == "0.5" else 18
    with pytest.raises(ConsortiumError):
        token_amount(text, decimals)


def test_org_hash_needs_a_name() -> None:
    assert org_hash("Hospital A") == org_hash("  Hospital A ")
    with pytest.raises(ConsortiumError, match="--org"):
        org_hash(" ")


def test_the_superlink_runs_with_tls_and_node_authentication(tmp_path: Path) -> None:
    # Prepare
    create_ca(tmp_path)
    # Execute
    command = superlink_command(tmp_path, "0.0.0.0", 9443, tmp_path / "state.db")
    # Assert
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    assert flags["--ssl-ca-certfile"] == str(tmp_path / "ca.crt")
    assert flags["--ssl-certfile"] == str(tmp_path / "superlink.crt")
    assert flags["--ssl-keyfile"] == str(tmp_path / "superlink.key")
    assert "--enable-supernode-auth" in command
    assert "--disable-runtime-dependency-installation" in command
    assert "--insecure" not in command
    assert command[command.index("--port") + 1] == "9443"


def test_the_superlink_needs_its_certificates(tmp_path: Path) -> None:
    with pytest.raises(ConsortiumError, match="fedchain certs ca"):
        superlink_command(tmp_path, "127.0.0.1", 8000)


def test_a_spec_file_gives_back_settings_with_the_same_spec(tmp_path: Path) -> None:
    # Prepare
    source = RunSettings(
        model="logreg", learning_rate=0.1, seed=3, dataset="site-csv", holdout="breast-cancer"
    )
    spec = task_spec(source)
    # Execute
    settings = settings_from_spec(spec, RunSettings(holdout="breast-cancer"))
    # Assert
    assert task_spec(settings) == spec


def test_a_spec_whose_holdout_differs_is_refused(tmp_path: Path) -> None:
    # Prepare
    spec = task_spec(RunSettings(seed=3))
    # Execute / Assert: the whole dataset as holdout, not the split the spec names
    with pytest.raises(ConsortiumError, match="holdout_hash"):
        settings_from_spec(spec, RunSettings(holdout="breast-cancer"))
