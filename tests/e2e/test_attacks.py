"""Attacks and defences end to end: 30 % attackers on breast-cancer IID against MultiKrum.

Targets (issue 6): a robust strategy ends within 3 accuracy points of the clean run; sign-flip
and gaussian attackers earn at most 5 % of the rewards, free-riders at most 2 %. The strategy is
MultiKrum with its attacker count derived from the attack, the contribution method leave-one-out
(``loo``). ``gtg`` and ``shapley`` met the targets too (attackers 0 to 0.2 % of the rewards), but
one such 5-round run took 20 to 85 s with ``gtg`` and 50 to 250 s with ``shapley``, against
about 4 s with ``loo`` (in process, on a loaded 2-core machine).

One run goes through ``simulate`` (Flower's simulation engine) on the embedded chain; the others
run the same apps in process (fedchain.simulation.inprocess), and a test checks both engines
give the same models.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fedchain.audit import open_run, recompute_scores
from fedchain.chain.accounts import devnet_account
from fedchain.federation.participant import FIRST_PARTICIPANT_KEY
from fedchain.federation.run_artifacts import RunRecord
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow

BASE = RunSettings(
    num_clients=10,
    num_rounds=5,
    partition="iid",
    strategy="multikrum",
    contribution="loo",
    chain="none",
)
ATTACKERS = (7, 8, 9)  # the last 30 % of the partitions


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunRecord]:
    """The clean run, and one run per attack (sign-flip also under the simulation engine)."""

    def settings(name: str, **changes: Any) -> RunSettings:
        return BASE.with_changes(out=str(tmp_path_factory.mktemp(name)), **changes)

    return {
        "clean": run_inprocess(settings("clean", strategy="fedavg")),
        "fedavg-sign-flip": run_inprocess(
            settings("fedavg-sign-flip", strategy="fedavg", attack="sign-flip:0.3")
        ),
        "sign-flip": run_inprocess(settings("sign-flip", attack="sign-flip:0.3")),
        "gaussian": run_inprocess(settings("gaussian", attack="gaussian:0.3", chain="embedded")),
        "free-rider": run_inprocess(settings("free-rider", attack="free-rider:0.3")),
        "simulated": simulate(settings("simulated", attack="sign-flip:0.3", chain="embedded")),
    }


def _summary(record: RunRecord) -> dict[str, Any]:
    return json.loads((record.settings.out_dir / "summary.json").read_text())


def _attacker_share(record: RunRecord) -> float:
    summary = _summary(record)
    roles = {p["address"]: p["role"] for r in summary["rounds"] for p in r["participants"]}
    rewards = {a: int(v) for a, v in summary["rewards"].items()}
    return sum(v for a, v in rewards.items() if roles[a] != "honest") / sum(rewards.values())


def _final_accuracy(record: RunRecord) -> float:
    return float(_summary(record)["rounds"][-1]["accuracy"])


def test_summary_marks_every_participant_with_its_role(runs: dict[str, RunRecord]) -> None:
    attackers = {devnet_account(FIRST_PARTICIPANT_KEY + p).address for p in ATTACKERS}
    for name in ("sign-flip", "gaussian", "free-rider", "simulated"):
        summary = _summary(runs[name])
        kind = summary["settings"]["attack"].split(":")[0]
        for r in summary["rounds"]:
            assert len(r["participants"]) == 10
            for p in r["participants"]:
                assert p["role"] == (kind if p["address"] in attackers else "honest"), name


@pytest.mark.parametrize("name", ["sign-flip", "gaussian"])
def test_a_robust_strategy_ends_within_three_points_of_the_clean_run(
    name: str, runs: dict[str, RunRecord]
) -> None:
    assert _final_accuracy(runs[name]) >= _final_accuracy(runs["clean"]) - 0.03


def test_the_attack_is_real_fedavg_breaks_under_it(runs: dict[str, RunRecord]) -> None:
    assert _final_accuracy(runs["fedavg-sign-flip"]) < _final_accuracy(runs["clean"]) - 0.3


@pytest.mark.parametrize("name", ["sign-flip", "gaussian", "simulated"])
def test_attackers_earn_at_most_five_percent_of_the_rewards(
    name: str, runs: dict[str, RunRecord]
) -> None:
    assert _attacker_share(runs[name]) <= 0.05


def test_free_riders_earn_at_most_two_percent_of_the_rewards(runs: dict[str, RunRecord]) -> None:
    assert _attacker_share(runs["free-rider"]) <= 0.02


def test_attackers_sign_their_updates_and_the_chain_records_them(
    runs: dict[str, RunRecord],
) -> None:
    # Prepare
    record = runs["simulated"]
    summary = _summary(record)
    ledger = json.loads((record.settings.out_dir / "ledger.json").read_text())
    recorded = {
        (e["args"]["round"], e["args"]["participant"], e["args"]["updateHash"])
        for e in ledger
        if e["event"] == "CommitmentRecorded"
    }
    # Assert: every attacker's reply passed the signature checks and is on chain as its own
    for r in summary["rounds"]:
        assert r["committed"]
        for p in r["participants"]:
            assert p["accepted"], p["reason"]
            assert (r["round"], p["address"], p["update_hash"]) in recorded


def test_anyone_recomputes_the_scores_of_an_attacked_run(runs: dict[str, RunRecord]) -> None:
    run = open_run(runs["simulated"].settings.out_dir)
    try:
        checks = recompute_scores(run)
    finally:
        run.close()
    assert len(checks) == 5 * 10
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_the_in_process_engine_gives_the_simulations_models(runs: dict[str, RunRecord]) -> None:
    simulated, inprocess = _summary(runs["simulated"]), _summary(runs["sign-flip"])
    assert [r["global_model_hash"] for r in simulated["rounds"]] == [
        r["global_model_hash"] for r in inprocess["rounds"]
    ]
    assert simulated["final_model_hash"] == inprocess["final_model_hash"]
