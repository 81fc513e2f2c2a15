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

import numpy as np
import pytest

from fedchain.attacks import INFLATE_FACTOR, IPM_EPSILON
from fedchain.audit import open_run, recompute_scores
from fedchain.chain.accounts import devnet_account
from fedchain.federation.participant import FIRST_PARTICIPANT_KEY
from fedchain.federation.run_artifacts import RunRecord
from fedchain.federation.workload import client_data
from fedchain.ml.training import MAX_LOSS
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate
from fedchain.simulation.inprocess import run_inprocess
from fedchain.store import ModelStore

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


# ------------------------------------------------------------------ the attacks of issue 15
# Small federations (5 clients, 2 of them attackers, 2 rounds, FedAvg) showing each attack
# happened as defined: what the chain recorded, and the forged update against its formula.

SMALL = RunSettings(num_clients=5, num_rounds=2, partition="iid", strategy="fedavg")
SMALL_ATTACKERS = (3, 4)  # the last 40 % of the partitions


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunRecord]:
    """A clean run without a ledger; inflate-examples and sybil on the embedded chain; ipm."""

    def settings(name: str, **changes: Any) -> RunSettings:
        return SMALL.with_changes(out=str(tmp_path_factory.mktemp(name)), **changes)

    return {
        "clean": run_inprocess(settings("clean", chain="none")),
        # Paid by data size, the method an inflated count would game: every honest update earns.
        "inflate-examples": run_inprocess(
            settings(
                "inflate-examples",
                attack="inflate-examples:0.4",
                chain="embedded",
                contribution="data-size",
            )
        ),
        "sybil": run_inprocess(settings("sybil", attack="sybil:0.4", chain="embedded")),
        "ipm": run_inprocess(settings("ipm", attack="ipm:0.4", chain="none")),
    }


def _commitments(record: RunRecord) -> dict[tuple[int, str], dict[str, Any]]:
    """The chain's CommitmentRecorded events of a run, by (round, participant)."""
    ledger = json.loads((record.settings.out_dir / "ledger.json").read_text())
    return {
        (int(e["args"]["round"]), e["args"]["participant"]): e["args"]
        for e in ledger
        if e["event"] == "CommitmentRecorded"
    }


def _address(partition_id: int) -> str:
    return devnet_account(FIRST_PARTICIPANT_KEY + partition_id).address


def test_inflated_example_counts_are_refused_before_relaying_and_the_honest_paid(
    small_runs: dict[str, RunRecord],
) -> None:
    # Prepare: every participant consented to its true dataset size when it joined the task
    record = small_runs["inflate-examples"]
    held = {p: len(client_data(record.settings, p)) for p in range(5)}
    # Execute
    recorded = _commitments(record)
    outcomes = {
        (r["round"], p["address"]): p for r in _summary(record)["rounds"] for p in r["participants"]
    }
    # Assert: the chain holds only the honest commitments, each with what it holds
    assert len(recorded) == 2 * 3
    for (_, participant), args in recorded.items():
        p = next(q for q in range(5) if _address(q) == participant)
        assert p not in SMALL_ATTACKERS
        assert int(args["numExamples"]) == held[p]
    for r in (1, 2):
        for p in SMALL_ATTACKERS:  # refused with its reason, paid nothing
            refused = outcomes[r, _address(p)]
            assert not refused["accepted"]
            claimed = INFLATE_FACTOR * held[p]
            assert (
                f"num-examples {claimed} is above the dataset size {held[p]}" in refused["reason"]
            )
            assert int(refused["reward"]) == 0
        assert all(int(outcomes[r, _address(p)]["reward"]) > 0 for p in range(3))


def test_sybils_commit_one_update_under_their_own_keys(small_runs: dict[str, RunRecord]) -> None:
    # Prepare
    record, clean = small_runs["sybil"], small_runs["clean"]
    recorded = _commitments(record)
    first = _address(SMALL_ATTACKERS[0])
    clean_update = next(
        p["update_hash"] for p in _summary(clean)["rounds"][0]["participants"]
        if p["address"] == first
    )  # fmt: skip
    for r in (1, 2):
        # Execute
        copies = [recorded[r, _address(p)] for p in SMALL_ATTACKERS]
        # Assert: one update, one count (the data each sybil holds and consented with), two
        # signers; every reply accepted
        assert len({c["updateHash"] for c in copies}) == 1
        assert len({c["numExamples"] for c in copies}) == 1
        honest = {recorded[r, _address(p)]["updateHash"] for p in range(3)}
        assert copies[0]["updateHash"] not in honest
    # Round 1 trains on the same initial model: the copy is the first sybil's honest update.
    assert recorded[1, first]["updateHash"] == clean_update
    assert all(p["accepted"] for r in _summary(record)["rounds"] for p in r["participants"])


def test_ipm_attackers_send_minus_epsilon_times_the_honest_mean_update(
    small_runs: dict[str, RunRecord],
) -> None:
    # Prepare
    record = small_runs["ipm"]
    store = ModelStore(record.settings.out_dir / "store")
    for r in _summary(record)["rounds"]:
        parent = store.get(r["parent_model_hash"])
        by_address = {p["address"]: store.get(p["update_hash"]) for p in r["participants"]}
        honest = [by_address[_address(p)] for p in range(3)]
        # Execute / Assert: each attacker's update is w - 0.1 * mean_h(w_h - w)
        for p in SMALL_ATTACKERS:
            forged = by_address[_address(p)]
            for name, w in parent.items():
                mean = np.mean([h[name].astype(np.float64) - w for h in honest], axis=0)
                np.testing.assert_allclose(forged[name], w - IPM_EPSILON * mean, atol=1e-6)


def test_a_federation_an_attack_drives_to_nan_is_recorded_to_its_end(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Prepare: FedAvg under 40 % sign-flip attackers on digits: the loss passes 1e4 in round 2
    # and the weights overflow to NaN in round 3 (the scores of such a model were NaN and the
    # server stopped with "cannot convert float NaN to integer")
    settings = RunSettings(
        dataset="digits",
        partition="iid",
        num_clients=5,
        num_rounds=4,
        learning_rate=0.2,
        strategy="fedavg",
        attack="sign-flip:0.4",
        out=str(tmp_path_factory.mktemp("diverged")),
    )
    # Execute
    record = run_inprocess(settings)
    # Assert: every round committed, the diverged ones at the loss cap, and the audit agrees
    assert [r.committed for r in record.reports] == [True] * 4
    assert [r.loss for r in record.reports][2:] == [MAX_LOSS, MAX_LOSS]
    opened = open_run(settings.out_dir, resume=False)
    try:
        assert all(check.ok for check in recompute_scores(opened))
    finally:
        opened.close()
