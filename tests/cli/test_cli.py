"""The `fedchain` command as a user runs it: a real process, its output and exit code (bad
options in this process, through the same entry point: see ``_cli_here``)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli_here import fedchain_here

from fedchain.chain.backends import AnvilChain, RpcChain, free_port


def fedchain(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--partition", "zipf"], "unknown partition scheme 'zipf'"),
        (["simulate", "--clients", "many"], "'many' is not a valid integer"),
        (["simulate", "--strategy", "fedsgd"], "strategy must be one of"),
        (["simulate", "--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["simulate", "--dataset", "csv:/nonexistent.csv"], "/nonexistent.csv"),
        (["simulate", "--model", "resnet"], "unknown model 'resnet'"),
        (["simulate", "--commit-mode", "rollup"], "commit-mode must be one of relayed, merkle"),
        (["simulate", "--no-such-option"], "No such option"),
        (["simulate", "--dropout", "1"], "dropout must lie in [0, 1)"),
        (["simulate", "--attack", "poison:0.3"], "unknown attack 'poison'"),
        (["simulate", "--attack", "sign-flip:1.5"], "attack fraction must lie in [0, 1)"),
        (["simulate", "--strategy", "bulyan", "--attack", "sign-flip:0.3"], "n >= 4f + 3"),
    ],
)
def test_bad_options_give_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    done = fedchain_here(*args)  # in this process: refused before anything starts
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert message in lines[0]


def test_the_console_script_refuses_a_bad_option_in_one_line() -> None:
    """The cases above run in this process; the installed entry point says the same."""
    done = fedchain("simulate", "--partition", "zipf")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown partition scheme 'zipf'")


def test_account_new_writes_an_encrypted_keystore_and_prints_only_the_address(
    tmp_path: Path,
) -> None:
    # Prepare
    keystore = tmp_path / "hospital.json"
    env = {"FEDCHAIN_KEYSTORE_PASSWORD": "correct horse"}
    # Execute
    created = fedchain("account", "new", str(keystore), env=env)
    shown = fedchain("account", "show", str(keystore), env=env)
    wrong = fedchain("account", "show", str(keystore), env={"FEDCHAIN_KEYSTORE_PASSWORD": "nope"})
    again = fedchain("account", "new", str(keystore), env=env)
    # Assert
    assert created.returncode == 0, created.stderr
    address = created.stdout.split()[1]
    assert address.startswith("0x")
    assert len(address) == 42
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert "crypto" in json.loads(keystore.read_text())
    assert shown.stdout.strip() == address
    assert wrong.returncode == 1
    assert "wrong password" in wrong.stderr
    assert again.returncode == 1
    assert "never overwritten" in again.stderr


def test_ledger_demo_prints_what_the_chain_recorded() -> None:
    done = fedchain("ledger-demo")
    assert done.returncode == 0, done.stderr
    for event in ("TaskCreated", "CommitmentRecorded", "RoundCommitted", "RewardClaimed"):
        assert event in done.stdout
    assert done.stdout.count("claimed") == 3


@pytest.mark.anvil
def test_deploy_writes_the_deployment_file_later_commands_read(tmp_path: Path) -> None:
    # Prepare
    anvil = AnvilChain().start()
    out = tmp_path / "deployment.json"
    try:
        # Execute
        done = fedchain(
            "deploy", "--rpc-url", anvil.url, "--devnet-account", "0", "--out", str(out)
        )
        # Assert
        assert done.returncode == 0, done.stderr
        deployment = json.loads(out.read_text())
        assert deployment["chain_id"] == 31337
        assert deployment["rpc_url"] == anvil.url
        code = anvil.w3.eth.get_code(deployment["ledger"])
        assert len(code) > 1000
    finally:
        anvil.close()


def test_deploy_to_no_chain_says_how_to_start_one(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = fedchain(
        "deploy", "--rpc-url", url, "--devnet-account", "0", "--out", str(tmp_path / "d.json")
    )
    assert done.returncode == 1
    assert url in done.stderr
    assert "fedchain devnet" in done.stderr


@pytest.mark.anvil
def test_devnet_runs_until_stopped_and_keeps_its_state(tmp_path: Path) -> None:
    # Prepare
    port, state = free_port(), tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "fedchain", "devnet", "--port", str(port), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Execute
        w3 = None
        for _ in range(100):
            try:
                w3 = RpcChain(f"http://127.0.0.1:{port}").w3
                break
            except Exception:
                time.sleep(0.2)
        assert w3 is not None, "fedchain devnet never answered"
        chain_id = w3.eth.chain_id
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # Assert
    assert chain_id == 31337
    assert "DEVNET TEST" in output
    assert state.exists()
    assert state.stat().st_size > 0


@pytest.mark.slow
def test_simulate_prints_a_table_of_rounds_and_where_the_artifacts_are(tmp_path: Path) -> None:
    done = fedchain(
        "simulate", "--clients", "3", "--rounds", "2", "--out", str(tmp_path / "run"), timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # A line per round, as the output is no terminal (a CI log); then the tables.
    assert "round 1/2: accuracy 0." in done.stdout
    assert "round 2/2: accuracy 0." in done.stdout
    assert "final model 0x" in done.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "artifacts in" in done.stdout
    # Each participant's total reward, in whole tokens with the token's symbol (FDT, 18 decimals)
    assert "rewards of task 1" in done.stdout
    for address, amount in summary["rewards"].items():
        tokens = f"{int(amount) / 10**18:,.2f}" if int(amount) else "0"
        assert re.search(rf"{address}\s.*\s{tokens} FDT", done.stdout), address
    paid = sum(int(v) for v in summary["rewards"].values())
    assert 0 < paid <= 2 * 10**21  # what the rounds earned of their budgets (the reward rule)
    assert f"rewards paid {paid / 10**18:,.2f} FDT in all" in done.stdout
