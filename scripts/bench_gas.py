"""Gas of the ledger's operations, measured on the embedded chain (gas is the same on any EVM).

The per-commitment cost of a commit-round is the slope between 1 and 100 relayed commitments, with
and without rewards; the baseline is the usual pattern of one transaction per client per round
(a participant's own ``submitCommitment``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.gateway import LedgerGateway, deploy
from fedchain.chain.records import Commitment, Reward, RoundId, RoundOutcome, TaskId
from fedchain.chain.signing import sign_commitment

SIZES = (1, 10, 100)
_BUDGET = 10**24


@dataclass(frozen=True)
class GasFigures:
    create_task: int
    fund_task: int
    register: int
    open_round: int
    direct_commitment: int
    claim: int
    commit_round: dict[tuple[int, bool], int]  # (relayed commitments, with rewards) -> gas

    def per_commitment(self, rewards: bool) -> float:
        low, high = SIZES[0], SIZES[-1]
        return (self.commit_round[(high, rewards)] - self.commit_round[(low, rewards)]) / (
            high - low
        )


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _round(
    ledger: LedgerGateway,
    *,
    task: TaskId,
    round_no: int,
    parent: bytes,
    signers: list[LocalAccount],
    rewards: bool,
) -> tuple[int, bytes]:
    round_id = RoundId(round_no)
    ledger.open_round(task, round_id, parent)
    signed = [
        sign_commitment(a, ledger.domain, Commitment(task, round_id, _sha(f"{round_no}{i}"), 100))
        for i, a in enumerate(signers)
    ]
    paid = [Reward(a.address, 10**6 // len(signers), 10**18) for a in signers] if rewards else []
    global_hash = _sha(f"global {round_no}")
    outcome = RoundOutcome(global_hash, 900_000, 250_000, _sha("scoring"))
    return ledger.commit_round(task, round_id, signed, outcome, paid).gas_used, global_hash


def bench_gas() -> GasFigures:
    """Measure every figure on a fresh embedded chain."""
    coordinator, *people = devnet_accounts(1 + SIZES[-1] + 1)
    ledger = deploy(EmbeddedChain().w3, coordinator)
    participants, direct = people[: SIZES[-1]], people[-1]
    register = ledger.register_participant(direct.address, _sha("org")).gas_used
    for p in participants:
        ledger.register_participant(p.address, _sha(p.address))
    commit: dict[tuple[int, bool], int] = {}
    create = fund = 0
    for size in SIZES:
        for rewards in (False, True):
            task, created = ledger.create_task(_sha(f"spec {size}"), _sha("init"), _BUDGET)
            create = created.gas_used
            fund = ledger.fund_task(task, 10 * _BUDGET).gas_used
            # Round 1 pays first-time storage; round 2 is the steady state that is reported.
            people_now = participants[:size]
            _, parent = _round(
                ledger,
                task=task,
                round_no=1,
                parent=_sha("init"),
                signers=people_now,
                rewards=rewards,
            )
            commit[(size, rewards)], parent = _round(
                ledger, task=task, round_no=2, parent=parent, signers=people_now, rewards=rewards
            )
    task, _ = ledger.create_task(_sha("direct"), _sha("init"), _BUDGET)
    open_gas = ledger.open_round(task, RoundId(1), _sha("init")).gas_used
    ledger.transfer_eth(direct.address, 10**18)
    mine = ledger.as_account(direct)
    direct_gas = mine.submit_commitment(Commitment(task, RoundId(1), _sha("u"), 100)).gas_used
    _, claimed = ledger.as_account(participants[0]).claim()
    return GasFigures(create, fund, register, open_gas, direct_gas, claimed.gas_used, commit)


def markdown(figures: GasFigures) -> str:
    """The gas table for docs/BENCHMARKS.md."""
    rows = [
        ("createTask", figures.create_task),
        ("fundTask (after approve)", figures.fund_task),
        ("registerParticipant", figures.register),
        ("openRound", figures.open_round),
        ("submitCommitment (one tx per client, the usual pattern)", figures.direct_commitment),
        ("claim", figures.claim),
    ]
    for (size, rewards), gas in sorted(figures.commit_round.items()):
        label = "with rewards" if rewards else "no rewards"
        rows.append((f"commitRound, {size} relayed commitments, {label}", gas))
    lines = ["| operation | gas |", "|---|---:|"]
    lines += [f"| {name} | {gas:,} |" for name, gas in rows]
    slope = figures.per_commitment(rewards=False)
    slope_paid = figures.per_commitment(rewards=True)
    baseline = figures.direct_commitment  # a whole transaction, 21,000 base included
    lines += [
        "",
        f"- per relayed commitment above the fixed part (slope 1 → 100): **{slope:,.0f} gas**, "
        f"{slope_paid:,.0f} gas when the participant is also rewarded in the same transaction "
        "(steady state: its reward balance already exists).",
        f"- ratio to one transaction per client ({baseline:,} gas): "
        f"{slope / baseline:.2f} (commitment only), {slope_paid / baseline:.2f} (with reward).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(bench_gas()))
