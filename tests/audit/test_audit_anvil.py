"""An anvil run audited after it ended: anvil restarted from the state saved in the run directory,
and the same ledger audited without the run directory (node URL + ledger address + store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.audit import ANVIL_STATE_FILE, CHAIN, audit_run
from fedchain.chain.backends import AnvilChain
from fedchain.cli import app
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = [pytest.mark.slow, pytest.mark.anvil]
runner = CliRunner()


@pytest.fixture(scope="module")
def anvil_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("anvil") / "run"
    # Paid by data size: three equal IID partitions earn equal rewards.
    settings = RunSettings(
        num_clients=3, num_rounds=2, partition="iid", chain="anvil", contribution="data-size"
    )
    settings = settings.with_changes(out=str(out))
    run_inprocess(settings)  # in process: what is audited here does not depend on the engine
    return out


def test_an_anvil_run_is_audited_from_its_saved_state(anvil_run: Path) -> None:
    # Prepare
    state = anvil_run / ANVIL_STATE_FILE
    before = state.read_bytes()
    # Execute
    verdict = audit_run(anvil_run, recompute=True)
    # Assert
    assert verdict.ok, verdict.failures
    chain_row = next(c for c in verdict.checks if c.check == CHAIN)
    assert "anvil restarted" in chain_row.detail
    assert state.read_bytes() == before  # a read-only audit leaves the saved state as it was


def test_verify_model_and_rewards_on_the_anvil_run(anvil_run: Path) -> None:
    # Execute
    verified = runner.invoke(
        app, ["verify-model", str(anvil_run / "final_model.safetensors"), "--run", str(anvil_run)]
    )
    rewards = runner.invoke(app, ["rewards", "--run", str(anvil_run)])
    # Assert
    assert verified.exit_code == 0, verified.output
    assert "the global model of task 1, round 2" in verified.output
    assert rewards.exit_code == 0, rewards.output
    assert "666.67 FDT" in rewards.output  # 2 rounds x 1000 tokens over 3 equal participants
    # Every party named, not only the participants (issue 16)
    parties = json.loads((anvil_run / "summary.json").read_text())["parties"]
    (coordinator,) = [a for a, e in parties.items() if "coordinator" in e["roles"]]
    text = " ".join(rewards.output.split())
    name = parties[coordinator]["name"]
    assert f"task 1 coordinated by {f'{name} ({coordinator})' if name else coordinator}" in text
    assert "participants registered by" in text
    assert "coordinator" in " ".join(verified.output.split())


def test_the_ledger_is_audited_without_the_run_directory(anvil_run: Path, tmp_path: Path) -> None:
    # Prepare: a node holding the chain, and only the published store and spec
    state = tmp_path / "state.json"
    shutil.copyfile(anvil_run / ANVIL_STATE_FILE, state)
    ledger = json.loads((anvil_run / "deployment.json").read_text())["ledger"]
    report = tmp_path / "verdict.json"
    node = AnvilChain(state_file=state, save_state=False).start()
    try:
        # Execute
        done = runner.invoke(
            app,
            [
                "audit",
                "--rpc-url", node.url,
                "--ledger", ledger,
                "--store", str(anvil_run / "store"),
                "--spec", str(anvil_run / "task.json"),
                "--recompute",
                "--json", str(report),
            ],
        )  # fmt: skip
        without_store = runner.invoke(app, ["audit", "--rpc-url", node.url, "--ledger", ledger])
    finally:
        node.close()
    # Assert
    assert done.exit_code == 0, done.output
    document = json.loads(report.read_text())
    assert document["ok"] is True
    assert {row["task"] for row in document["checks"]} == {1}
    # Models cannot be checked without the store, nor the spec without one: not checked, exit 3
    assert without_store.exit_code == 3, without_store.output
    assert "--store" in without_store.output
    assert "not checked" in without_store.output
    assert "FAIL" not in without_store.output


def test_a_claim_on_the_anvil_run_is_kept_and_audited(anvil_run: Path) -> None:
    # Execute: claim as participant 1 (DEVNET TEST key), then audit the run again
    claimed = runner.invoke(app, ["claim", "--run", str(anvil_run), "--devnet-account", "1"])
    again = runner.invoke(app, ["claim", "--run", str(anvil_run), "--devnet-account", "1"])
    verdict = audit_run(anvil_run)
    # Assert: the claim survived anvil's restart, and it is within what was attributed
    assert claimed.exit_code == 0, claimed.output
    assert "claimed 666.67 FDT" in claimed.output
    assert "nothing to claim" in again.output
    assert verdict.ok, verdict.failures
    claims = next(c for c in verdict.checks if c.check == "claims within attributions")
    assert claims.detail.startswith("1 participants claimed")
