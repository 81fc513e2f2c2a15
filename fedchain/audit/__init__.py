"""Auditing a run or a ledger: rebuild each task's lineage from the chain, check it against the
content store, and (with ``recompute``) recompute every round.

Everything is read back from the chain's events and the content store, never from the server's
own summary (a run directory only says where the chain, the store and the spec are): the task's
``TaskCreated`` gives the spec hash and the initial model, ``RoundOpened`` each round's parent,
``CommitmentRecorded`` the updates (by hash) with the signatures read from the commit
transaction's calldata, ``RoundCommitted`` the global model, its evaluation and the scoring hash,
``RewardAttributed`` the scores and rewards, ``RewardClaimed`` the claims; the registry's
``OrganisationRegistered`` names the parties, ``MemberJoined``/``MemberLeft``/``MemberRemoved``
give each task's members (one definition of membership, the contract's, by round) with their
consent signatures read from the join transactions' calldata, ``TaskFunded``, ``TaskClosed``,
``FundsRefunded`` and ``UnclaimedSwept`` the money in and back out.

The modules, in the order an audit runs: :mod:`~fedchain.audit.sources` reaches the ledger
again, :mod:`~fedchain.audit.lineage` rebuilds its history from events,
:mod:`~fedchain.audit.merkle` checks merkle rounds' published records,
:mod:`~fedchain.audit.checks` runs the checks, :mod:`~fedchain.audit.replay` recomputes rounds,
:mod:`~fedchain.audit.verdict` holds the result, :mod:`~fedchain.audit.auditor` ties them
together; :mod:`~fedchain.audit.provenance` looks a model file up.
"""

from __future__ import annotations

from fedchain.audit.auditor import audit_ledger, audit_lineage, audit_run
from fedchain.audit.provenance import ModelProvenance, verify_model
from fedchain.audit.replay import RoundReplay, recompute_scores, replay_task
from fedchain.audit.sources import (
    ANVIL_STATE_FILE,
    AuditError,
    LedgerSource,
    OpenedRun,
    open_ledger,
    open_run,
)
from fedchain.audit.verdict import (
    AGGREGATION,
    BUDGET,
    CHAIN,
    CHECKS,
    CLAIMS,
    EVALUATION,
    EXIT_FAILED,
    EXIT_NOT_CHECKED,
    EXIT_OK,
    FAILED,
    FINAL,
    FUNDS,
    GLOBALS,
    LEDGER,
    MEMBERS,
    MERKLE,
    OPEN,
    PARENTS,
    SCORES,
    SIGNATURES,
    SPEC,
    UPDATES,
    VOIDED,
    Check,
    ScoreCheck,
    Verdict,
)

__all__ = [
    "AGGREGATION",
    "ANVIL_STATE_FILE",
    "BUDGET",
    "CHAIN",
    "CHECKS",
    "CLAIMS",
    "EVALUATION",
    "EXIT_FAILED",
    "EXIT_NOT_CHECKED",
    "EXIT_OK",
    "FAILED",
    "FINAL",
    "FUNDS",
    "GLOBALS",
    "LEDGER",
    "MEMBERS",
    "MERKLE",
    "OPEN",
    "PARENTS",
    "SCORES",
    "SIGNATURES",
    "SPEC",
    "UPDATES",
    "VOIDED",
    "AuditError",
    "Check",
    "LedgerSource",
    "ModelProvenance",
    "OpenedRun",
    "RoundReplay",
    "ScoreCheck",
    "Verdict",
    "audit_ledger",
    "audit_lineage",
    "audit_run",
    "open_ledger",
    "open_run",
    "recompute_scores",
    "replay_task",
    "verify_model",
]
