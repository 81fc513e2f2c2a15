"""The reward rule through the audit: a run with copies (free-riders returning one model) and a
round gain below the full gain recomputes bit-exactly; a tampered reward, and a total that would
leave another amount unearned, are named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fedchain.audit import open_run
from fedchain.audit.lineage import TaskLineage, rebuild_lineage
from fedchain.audit.replay import RoundReplay, replay_task, settings_for
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess
from fedchain.store import ModelStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 clients (2 free-riders sending the parent back: copies of each other), 3 rounds, loo,
    on the embedded chain; a full gain of 0.05, so the later rounds earn part of the budget."""
    out = tmp_path_factory.mktemp("rule") / "run"
    settings = RunSettings(
        num_clients=4,
        num_rounds=3,
        partition="iid",
        contribution="loo",
        attack="free-rider:0.5",
        reward_full_gain=0.05,
        chain="embedded",
        out=str(out),
    )
    run_inprocess(settings)
    return out


def _summary(run: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return summary


def _replay(run: Path, tamper: Any = None) -> list[RoundReplay]:
    """Every round recomputed from the chain and the store, after ``tamper(task)``."""
    opened = open_run(run)
    try:
        lineage = rebuild_lineage(opened.gateway)
        task = lineage.tasks[opened.task_id]
        if tamper is not None:
            tamper(task)
        settings = settings_for(opened.spec, opened.settings, lineage, task)
        return replay_task(task, ModelStore(run / "store"), opened.spec, settings)
    finally:
        opened.close()


def test_the_run_records_what_was_not_earned(run: Path) -> None:
    summary = _summary(run)
    assert summary["spec"]["reward_full_gain"] == 0.05
    unearned = [int(r["unearned"]) for r in summary["rounds"]]
    for r in summary["rounds"]:
        paid = sum(int(p["reward"]) for p in r["participants"])
        assert paid + int(r["unearned"]) == int(r["budget"])
    assert unearned[0] < unearned[-1]  # round 1 gains most
    assert unearned[-1] > 0
    riders = [p for p in summary["rounds"][0]["participants"] if p["role"] == "free-rider"]
    assert len(riders) == 2
    assert sorted(bool(p["duplicate_of"]) for p in riders) == [False, True]


def test_every_score_reward_and_unearned_amount_recomputes(run: Path) -> None:
    results = _replay(run)
    assert len(results) == 3
    for result in results:
        assert (result.blocked, result.aggregation, result.evaluation, result.unearned) == (
            "", "", "", ""
        )  # fmt: skip
        assert len(result.scores) == 4
        assert all(s.ok for s in result.scores), [s.describe() for s in result.scores]


def test_a_tampered_reward_is_named_by_round_and_participant(run: Path) -> None:
    # Prepare: one token moved from one participant to another in round 2; the total unchanged
    def tamper(task: TaskLineage) -> None:
        entry = task.rounds[2]
        paid = sorted(entry.rewards, key=lambda r: -r.amount)
        rich, poor = paid[0], paid[-1]
        entry.rewards = [
            replace(r, amount=r.amount - 1) if r is rich
            else replace(r, amount=r.amount + 1) if r is poor
            else r
            for r in entry.rewards
        ]  # fmt: skip

    # Execute
    results = _replay(run, tamper)
    # Assert
    failed = [(r.round, s.participant) for r in results for s in r.scores if not s.ok]
    assert len(failed) == 2
    assert {round_ for round_, _ in failed} == {2}
    assert all(r.unearned == "" for r in results)


def test_a_total_that_leaves_another_amount_unearned_is_named(run: Path) -> None:
    def tamper(task: TaskLineage) -> None:
        task.rounds[3].total_reward += 7

    results = _replay(run, tamper)
    assert [r.round for r in results if r.unearned] == [3]
    assert "left unearned on chain" in results[2].unearned
