"""Differential privacy end to end (issue 17): a DP run under Flower's engine commits every
round, reports each site's spend and passes the audit; a site whose budget is spent mid-task
stops cleanly while the others go on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fedchain
from fedchain.federation.run_artifacts import RunRecord
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate

pytestmark = pytest.mark.slow

CAP = 8.0


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    """Three clients, two rounds, epsilon 8, the embedded chain, Flower's simulation engine."""
    out = tmp_path_factory.mktemp("dp")
    return simulate(RunSettings(out=str(out), num_clients=3, num_rounds=2, dp=f"{CAP:g}"))


def _summary(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def test_a_dp_run_commits_every_round_with_each_sites_growing_spend(dp_run: RunRecord) -> None:
    summary = _summary(dp_run.settings.out_dir)

    assert summary["spec"]["dp_epsilon"] == CAP
    assert summary["spec"]["dp_rounds"] == 2
    assert [r["committed"] for r in summary["rounds"]] == [True, True]
    spent: dict[str, list[float]] = {}
    for r in summary["rounds"]:
        assert r["accepted"] == 3
        for p in r["participants"]:
            spent.setdefault(p["address"], []).append(p["epsilon"])
    assert len(spent) == 3
    for first, second in spent.values():
        # Each node counted its rounds across Flower's engine: round 2 spends more than round 1,
        # and the plan of two rounds lands just under the cap.
        assert 0 < first < second <= CAP
        assert second > CAP - 0.01


def test_the_report_shows_the_spend_against_the_cap(dp_run: RunRecord) -> None:
    out = dp_run.settings.out_dir

    html = fedchain.write_report(out).read_text()

    assert 'id="privacy"' in html
    assert "epsilon &lt;= 8 per site" in html
    assert "PRV accountant" in html  # the accountant every new task counts with
    epsilon = _summary(out)["rounds"][1]["participants"][0]["epsilon"]
    assert f"{epsilon:.3f}" in html


def test_the_audit_of_a_dp_run_passes(dp_run: RunRecord) -> None:
    verdict = fedchain.audit_run(dp_run.settings.out_dir)

    assert verdict.ok, [c for c in verdict.checks if not c.ok]


def test_a_site_whose_budget_is_spent_stops_and_the_others_go_on(tmp_path: Path) -> None:
    # Prepare: half the sites sampled each round, the noise planned for two rounds each: a site
    # sampled a third time refuses, one sampled less often still trains (the sampling is seeded
    # from the task's seed: seed 0 samples, in round 3, a site for the third time beside one that
    # still has budget).
    options: dict[str, Any] = {
        "clients": 4,
        "rounds": 3,
        "fraction": 0.5,
        "min_train_nodes": 1,
        "dp": "8",
        "dp_rounds": 2,
        "seed": 0,
    }

    # Execute
    run = fedchain.simulate(engine="inprocess", out=str(tmp_path / "run"), **options)

    # Assert: every round committed; the refusing site is recorded absent with its reason, in a
    # round where another site trained; no site ever reported more than the cap.
    rounds = run.summary["rounds"]
    assert all(r["committed"] for r in rounds)
    refused = [
        (r["round"], p)
        for r in rounds
        for p in r["participants"]
        if "privacy budget exhausted" in p["reason"]
    ]
    assert refused, rounds
    for number, p in refused:
        assert p["absent"]
        assert f"would exceed cap {8:g}" in p["reason"]
        others = [q for q in rounds[number - 1]["participants"] if q["accepted"]]
        assert others, f"round {number}: nobody went on"
    reported = [p["epsilon"] for r in rounds for p in r["participants"] if p["epsilon"] is not None]
    assert max(reported) <= 8.0
    assert fedchain.audit_run(run).ok


def test_rewards_and_verify_model_show_the_privacy_terms(dp_run: RunRecord) -> None:
    # Prepare
    from typer.testing import CliRunner

    from fedchain.cli import app

    out = str(dp_run.settings.out_dir)
    runner = CliRunner()

    # Execute
    rewards = runner.invoke(app, ["rewards", "--run", out])
    verified = runner.invoke(app, ["verify-model", f"{out}/final_model.safetensors", "--run", out])

    # Assert
    for done in (rewards, verified):
        assert done.exit_code == 0, done.output
        text = " ".join(done.output.split())
        assert "privacy: epsilon <= 8 per site, delta 1e-05, clip norm 1" in text
        assert "noise planned over 2 rounds" in text
