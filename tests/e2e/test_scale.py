"""Many clients on one machine: 100 at fraction 1.0 and 1,000 at fraction 0.05, embedded chain.

Each federation runs once (module fixtures) for all the checks on it; one round each keeps the
suite short. The 1,000-client run goes through the command line, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedchain.federation.coordinator import REGISTRATION_BATCH
from fedchain.federation.run_artifacts import RunRecord
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate

pytestmark = pytest.mark.slow

#: Far above what the runs take (2.2 to 2.4 GiB) and far below the machine's 24 GiB: a leak of
#: per-client state in the server or the workers would cross it.
MEMORY_CEILING = 6 * 2**30


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    out = tmp_path_factory.mktemp("hundred")
    settings = RunSettings(
        num_clients=100, fraction_train=1.0, num_rounds=1, dataset="synthetic", out=str(out)
    )
    return simulate(settings)


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("thousand")
    done = subprocess.run(
        [sys.executable, "-m", "fedchain", "simulate", "--clients", "1000", "--fraction", "0.05",
         "--rounds", "1", "--dataset", "synthetic", "--out", str(out)],
        capture_output=True, text=True, timeout=1200, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, json.loads((out / "summary.json").read_text())


def test_a_hundred_clients_all_train_and_are_committed(hundred: RunRecord) -> None:
    # Prepare
    summary = json.loads((hundred.settings.out_dir / "summary.json").read_text())
    (round_1,) = summary["rounds"]
    # Assert
    assert round_1["committed"] is True
    assert (round_1["accepted"], round_1["rejected"], round_1["absent"]) == (100, 0, 0)
    assert len({p["address"] for p in round_1["participants"]}) == 100
    recorded = [e for e in hundred.events if e.name == "CommitmentRecorded"]
    assert len(recorded) == 100


def test_a_hundred_clients_record_their_peak_memory(hundred: RunRecord) -> None:
    summary = json.loads((hundred.settings.out_dir / "summary.json").read_text())
    assert summary["peak_rss_bytes"] == hundred.peak_rss_bytes
    assert 0 < summary["peak_rss_bytes"] < MEMORY_CEILING
    # The server alone is one process: the tree also holds Ray's processes and its workers.
    assert summary["peak_rss_processes"] >= 3


def test_a_thousand_clients_are_registered_in_batches(thousand: tuple[str, dict[str, Any]]) -> None:
    # Prepare
    _, summary = thousand
    events = json.loads((Path(summary["settings"]["out"]) / "ledger.json").read_text())
    # Execute
    registered = [e for e in events if e["event"] == "OrganisationRegistered"]
    joined = [e for e in events if e["event"] == "MemberJoined"]
    # Assert
    assert len({e["args"]["account"] for e in registered}) == 1000 + 1  # and the coordinator
    assert len({e["tx"] for e in registered}) == -(-1000 // REGISTRATION_BATCH)
    assert len({e["args"]["participant"] for e in joined}) == 1000
    assert len({e["tx"] for e in joined}) == -(-1000 // REGISTRATION_BATCH)


def test_a_thousand_clients_sample_fifty_and_commit_the_round(
    thousand: tuple[str, dict[str, Any]],
) -> None:
    # Prepare
    _, summary = thousand
    (round_1,) = summary["rounds"]
    # Assert
    assert round_1["committed"] is True
    assert (round_1["accepted"], round_1["rejected"], round_1["absent"]) == (50, 0, 0)
    assert summary["settings"]["num-clients"] == 1000
    assert summary["spec"]["dataset"] == "synthetic"
    assert sum(int(v) for v in summary["rewards"].values()) == 1000 * 10**18


def test_a_thousand_clients_report_peak_memory_in_summary_and_output(
    thousand: tuple[str, dict[str, Any]],
) -> None:
    # Prepare
    stdout, summary = thousand
    peak = summary["peak_rss_bytes"]
    # Assert
    assert 0 < peak < MEMORY_CEILING
    assert summary["peak_rss_processes"] >= 3
    assert f"peak memory {peak / 2**20:,.0f} MiB resident" in stdout
