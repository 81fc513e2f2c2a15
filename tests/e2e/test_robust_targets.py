"""Issue 15's targets on one representative cell per attack kind, for the candidate default.

The pipeline is given explicitly (``PIPELINE``, the defaults of ``fedchain simulate``). Each
cell: breast-cancer, 10 clients, ``dirichlet:0.5`` (the default partition), 30 % attackers
(the most the targets cover), 5 rounds, seed 0, in process without a ledger (scores and rewards
are computed by the same code as on chain), except where the defence is the ledger's
(``LEDGER_CELLS``). Targets, against the clean FedAvg run of the same
partition, seed and standardization:

- final holdout accuracy at least clean FedAvg's minus 3 points;
- the attackers earn at most 2 % of all the rewards paid; free-riders at most 1 %; a sybil
  organisation's keys at most 1 % beyond what one honest participant earns (the reward rule pays
  a group of copies as one participant);
- without attackers, the pipeline within 1 point of clean FedAvg.

The full matrix (3 seeds, iid and dirichlet, 10 and 20 clients, two datasets) is
scripts/bench_robustness.py, on the benchmark page.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fedchain.attacks import ATTACK_KINDS
from fedchain.federation.run_artifacts import RunRecord
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: The default pipeline (docs/attacks.md, "The default pipeline").
PIPELINE: dict[str, Any] = {"strategy": "fltrust", "contribution": "loo", "standardize": "task"}
CELL = RunSettings(
    num_clients=10,
    num_rounds=5,
    partition="dirichlet:0.5",
    seed=0,
    chain="none",
    standardize="task",
)
FRACTION = 0.3
#: Cells whose defence is the ledger's: the dataset size each participant consented to caps the
#: num-examples of its commitments (issue 15, item 3), so they run on the embedded chain.
LEDGER_CELLS = {"inflate-examples": "embedded"}
ATTACKS = ATTACK_KINDS  # every kind the code has gets its cell
FREE_RIDING = ("free-rider", "noisy-free-rider")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunRecord]:
    """Clean FedAvg, the clean pipeline, and the pipeline under each attack."""

    def run(name: str, **changes: Any) -> RunRecord:
        out = str(tmp_path_factory.mktemp(name))
        return run_inprocess(CELL.with_changes(out=out, **changes))

    found = {
        "fedavg": run("fedavg", strategy="fedavg"),
        "clean": run("clean", **PIPELINE),
    }
    for attack in ATTACKS:
        chain = LEDGER_CELLS.get(attack, "none")
        found[attack] = run(attack, attack=f"{attack}:{FRACTION}", chain=chain, **PIPELINE)
    return found


def _summary(record: RunRecord) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((record.settings.out_dir / "summary.json").read_text())
    return summary


def _final_accuracy(record: RunRecord) -> float:
    return float(_summary(record)["rounds"][-1]["accuracy"])


def _rewards_by_role(record: RunRecord) -> tuple[dict[str, int], dict[str, str]]:
    summary = _summary(record)
    roles = {p["address"]: p["role"] for r in summary["rounds"] for p in r["participants"]}
    return {a: int(v) for a, v in summary["rewards"].items()}, roles


def _attacker_share(record: RunRecord) -> float:
    rewards, roles = _rewards_by_role(record)
    paid = sum(rewards.values())
    assert paid > 0, "nobody was paid: the share would say nothing"
    return sum(v for a, v in rewards.items() if roles[a] != "honest") / paid


def _sybil_excess(record: RunRecord) -> float:
    """The sybil keys' share of the rewards beyond the mean honest participant's (one key)."""
    rewards, roles = _rewards_by_role(record)
    paid = sum(rewards.values())
    honest = [rewards.get(a, 0) for a, role in roles.items() if role == "honest"]
    sybils = sum(rewards.get(a, 0) for a, role in roles.items() if role == "sybil")
    return max(0.0, sybils - sum(honest) / len(honest)) / paid


def test_the_pipeline_is_what_simulate_runs_with_no_options() -> None:
    defaults = RunSettings()
    assert {name: getattr(defaults, name) for name in PIPELINE} == PIPELINE


def test_the_attackers_are_the_last_three_partitions(runs: dict[str, RunRecord]) -> None:
    for attack in ATTACKS:
        roles = list(runs[attack].roles.values())
        assert roles.count(attack) == 3, attack


def test_without_attackers_within_one_point_of_fedavg(runs: dict[str, RunRecord]) -> None:
    clean, fedavg = _final_accuracy(runs["clean"]), _final_accuracy(runs["fedavg"])
    assert clean >= fedavg - 0.01, (clean, fedavg)


@pytest.mark.parametrize("attack", ATTACKS)
def test_accuracy_within_three_points_of_clean_fedavg(
    attack: str, runs: dict[str, RunRecord]
) -> None:
    attacked, fedavg = _final_accuracy(runs[attack]), _final_accuracy(runs["fedavg"])
    assert attacked >= fedavg - 0.03, (attacked, fedavg)


#: Cells that miss the 2 % target today, with why (docs/attacks.md, "The default pipeline").
#: Strict: when a change makes one pass, the test fails until its mark is removed.
MISSES = {
    "alie": "the colluders' one vector (mean - 0.52 std of their honest updates) points along "
    "the honest direction: FLTrust trusts it and leave-one-out measures a real holdout gain, "
    "which the reward rule pays once for the group (4.9 % of the rewards)",
}


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(a, marks=pytest.mark.xfail(strict=True, reason=MISSES[a]))
        if a in MISSES
        else a
        for a in ATTACKS
        if a not in (*FREE_RIDING, "sybil")
    ],
)
def test_attackers_earn_at_most_two_percent(attack: str, runs: dict[str, RunRecord]) -> None:
    share = _attacker_share(runs[attack])
    assert share <= 0.02, share


@pytest.mark.parametrize("attack", FREE_RIDING)
def test_free_riders_earn_at_most_one_percent(attack: str, runs: dict[str, RunRecord]) -> None:
    share = _attacker_share(runs[attack])
    assert share <= 0.01, share


def test_sybil_copies_earn_at_most_one_percent_beyond_one_key(
    runs: dict[str, RunRecord],
) -> None:
    excess = _sybil_excess(runs["sybil"])
    assert excess <= 0.01, (excess, _attacker_share(runs["sybil"]))
