"""One scripted ledger round on the embedded chain: what the contracts record, end to end.

Three DEVNET TEST organisations are registered and join the task by signing their consent; they
sign commitments to made-up updates; the coordinator relays them,
commits the round with a global model hash, an evaluation and rewards by data size; everyone
claims. Used by ``fedchain ledger-demo`` and as a smoke test of the whole chain layer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerEvent
from fedchain.chain.records import Commitment, Consent, Reward, RoundId, RoundOutcome
from fedchain.chain.signing import sign_commitment, sign_consent

__all__ = ["ScriptedRecord", "scripted_round"]

_BUDGET = 1_000 * 10**18
_EXAMPLES = (120, 80, 200)


@dataclass(frozen=True)
class ScriptedRecord:
    """The decoded events of the scripted round and a few lines that sum it up."""

    events: list[LedgerEvent]
    summary: list[str]


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def scripted_round() -> ScriptedRecord:
    """Deploy, create and fund a task, run one round of three participants, claim; read it back."""
    coordinator, *participants = devnet_accounts(1 + len(_EXAMPLES))
    ledger = deploy(EmbeddedChain().w3, coordinator)
    initial = _sha("initial model")
    spec = _sha("task spec")
    task_id, _ = ledger.create_task(spec, initial, _BUDGET)
    ledger.fund_task(task_id, 10 * _BUDGET)
    ledger.register_organisations(
        [(p.address, f"Site {i + 1}", _sha(f"organisation {p.address}"), "")
         for i, p in enumerate(participants)]
    )  # fmt: skip
    consents = [
        sign_consent(p, ledger.domain, Consent(task_id, spec, n, _sha(f"data {p.address}")))
        for p, n in zip(participants, _EXAMPLES, strict=True)
    ]
    ledger.join_task_for(task_id, consents)

    round_id = RoundId(1)
    ledger.open_round(task_id, round_id, initial)
    signed = [
        sign_commitment(p, ledger.domain, Commitment(task_id, round_id, _sha(f"update {i}"), n))
        for i, (p, n) in enumerate(zip(participants, _EXAMPLES, strict=True))
    ]
    total = sum(_EXAMPLES)
    rewards = [
        Reward(p.address, n * 10**6 // total, _BUDGET * n // total)
        for p, n in zip(participants, _EXAMPLES, strict=True)
    ]
    outcome = RoundOutcome(_sha("global model 1"), accuracy_ppm=912_000, loss_ppm=231_000)
    commit = ledger.commit_round(task_id, round_id, signed, outcome, rewards)

    summary = [f"round 1 committed in one transaction: {commit.gas_used} gas"]
    for p in participants:
        paid, _ = ledger.as_account(p).claim()
        summary.append(f"{p.address} claimed {paid / 10**18:g} FDT")
    return ScriptedRecord(ledger.events(), summary)
