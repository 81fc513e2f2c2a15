"""Contribution accounting end to end: every method through a federation, rewards, claims, audit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _cli_here import fedchain_here

from fedchain.audit import open_run, recompute_scores
from fedchain.federation.run_artifacts import RunRecord
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow
METHODS = ("data-size", "loo", "shapley", "gtg", "cosine")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunRecord]:
    """One small seeded federation per method: 5 clients (one a free-rider), IID, 2 rounds.

    In process: the accounting does not depend on the engine (test_attacks checks that both
    engines give the same models), and each Ray start would cost seconds per method.
    """
    return {
        method: run_inprocess(
            RunSettings(
                num_clients=5,
                num_rounds=2,
                partition="iid",
                contribution=method,
                attack="free-rider:0.2",
                out=str(tmp_path_factory.mktemp(method)),
            )
        )
        for method in METHODS
    }


@pytest.mark.parametrize("method", METHODS)
def test_every_method_scores_rewards_and_recomputes(
    method: str, runs: dict[str, RunRecord]
) -> None:
    # Prepare
    out = runs[method].settings.out_dir
    summary = json.loads((out / "summary.json").read_text())
    # Assert: the record
    for r in summary["rounds"]:
        assert r["contribution_method"] == method
        assert r["scoring_seconds"] >= 0
        assert int(r["budget"]) == runs[method].settings.reward_per_round
        paid = sum(int(p["reward"]) for p in r["participants"])
        assert paid + int(r["unearned"]) == int(r["budget"])  # the rest stays in the pool
        if method in ("data-size", "cosine"):  # no gain measured: the whole budget is split
            assert paid == int(r["budget"])
    assert (out / "rewards.png").read_bytes()[:4] == b"\x89PNG"
    # Assert: anyone can recompute every score and reward from the chain and the store
    run = open_run(out)
    try:
        checks = recompute_scores(run)
    finally:
        run.close()
    assert len(checks) == 2 * 5
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize("method", ["shapley", "gtg", "loo"])
def test_free_riders_earn_at_most_two_percent(method: str, runs: dict[str, RunRecord]) -> None:
    summary = json.loads((runs[method].settings.out_dir / "summary.json").read_text())
    roles = {p["address"]: p["role"] for r in summary["rounds"] for p in r["participants"]}
    total = sum(int(v) for v in summary["rewards"].values())
    riders = [a for a, role in roles.items() if role == "free-rider"]
    assert riders
    for rider in riders:
        assert int(summary["rewards"].get(rider, "0")) <= 0.02 * total


def _fedchain(*args: str) -> subprocess.CompletedProcess[str]:
    """A command on a finished run, in this process through the console entry point (see
    ``_cli_here``): the same code as a subprocess, without importing torch and web3 again."""
    return fedchain_here(*args)


def test_rewards_claim_and_scores_commands(runs: dict[str, RunRecord]) -> None:
    # Prepare
    out = str(runs["data-size"].settings.out_dir)
    # Execute
    before = _fedchain("rewards", "--run", out)
    claimed = _fedchain("claim", "--run", out, "--devnet-account", "1")
    again = _fedchain("claim", "--run", out, "--devnet-account", "1")
    after = _fedchain("rewards", "--run", out)
    verified = _fedchain("scores", "--run", out)
    # Assert
    assert before.returncode == 0, before.stderr
    assert "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" in before.stdout
    assert claimed.returncode == 0, claimed.stderr
    assert "claimed" in claimed.stdout
    assert "nothing to claim" in again.stdout  # the claim was kept with the saved chain
    row = next(line for line in after.stdout.splitlines() if "0x70997970C5" in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[-1] == "0 FDT"  # nothing claimable any more
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every check passed" in verified.stdout


def test_a_tampered_update_is_named_by_round_and_participant(
    runs: dict[str, RunRecord], tmp_path: Path
) -> None:
    # Prepare: a copy of the run with one stored update altered
    import shutil

    out = tmp_path / "run"
    shutil.copytree(runs["loo"].settings.out_dir, out)
    summary = json.loads((out / "summary.json").read_text())
    victim = next(p for p in summary["rounds"][1]["participants"] if p["role"] == "honest")
    stored = out / "store" / f"{victim['update_hash'][2:]}.safetensors"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    # Execute
    done = _fedchain("scores", "--run", str(out))
    # Assert
    assert done.returncode == 1
    assert victim["address"] in done.stdout
    assert "stored update" in done.stdout
