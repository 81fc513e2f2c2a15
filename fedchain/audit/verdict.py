"""What an audit says: the check kinds, one row per check (:class:`Check`), the whole
:class:`Verdict`, and one recomputed score (:class:`ScoreCheck`).

The verdict is one row per check kind when everything passes, and one failing row per failure,
naming its task, round and participant. A check that could not run (no spec file, no store, a
round whose stored models are missing) is a row of its own, *not checked*: never read as passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AGGREGATION",
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
    "PRIVACY",
    "SCORES",
    "SIGNATURES",
    "SPEC",
    "UPDATES",
    "VOIDED",
    "Check",
    "Rows",
    "ScoreCheck",
    "Verdict",
]

# The check kinds, in the order the verdict lists them.
CHAIN = "chain reopened; saved blocks re-execute"
SPEC = "task spec hash matches the chain"
LEDGER = "task and its events on the ledger"
PARENTS = "each round builds on the previous global model"
MEMBERS = "members joined by their own signed consent"
SIGNATURES = "commitments signed by eligible members"
GLOBALS = "global models in store and hashes match"
UPDATES = "stored updates match their commitments"
FINAL = "final model is the last committed global model"
BUDGET = "round rewards within the budget, paid to members only"
PRIVACY = "privacy spends recompute from the spec, within the cap"
FUNDS = "refunds and sweeps within what funders are owed"
CLAIMS = "claims within attributions"
MERKLE = "merkle round records match the chain's roots"
AGGREGATION = "aggregation reproduces the global model"
EVALUATION = "evaluation reproduces the recorded accuracy and loss"
SCORES = "scores and rewards recompute"
FAILED = "failed round (listed)"
OPEN = "round left open (listed)"
VOIDED = "merkle root voided by a challenge (listed)"
CHECKS = (
    CHAIN,
    SPEC,
    LEDGER,
    MERKLE,
    PARENTS,
    MEMBERS,
    SIGNATURES,
    GLOBALS,
    UPDATES,
    FINAL,
    BUDGET,
    PRIVACY,
    FUNDS,
    CLAIMS,
    AGGREGATION,
    EVALUATION,
    SCORES,
    FAILED,
    OPEN,
    VOIDED,
)

#: The exit codes of ``fedchain audit`` and ``fedchain scores`` (2 is a bad option, refused before
#: anything is checked): every check ran and passed; at least one failed; none failed but at least
#: one could not run (not checked).
EXIT_OK, EXIT_FAILED, EXIT_NOT_CHECKED = 0, 1, 3


@dataclass(frozen=True)
class Check:
    """One row of a verdict: a check kind that passed, or one failure of it.

    Attributes
    ----------
    check : str
        The kind of check (one of :data:`CHECKS`).
    ok : bool
        Whether it passed.
    task, round, participant : int, int, str or None
        Where a failure is (round 0 is a task's initial model); None when not tied to one.
    detail : str
        What was checked (on success), what is wrong and what to do (on failure), or what is
        missing to check it (not checked).
    checked : bool
        False when the check could not run; ``ok`` is then False too.
    """

    check: str
    ok: bool
    task: int | None
    round: int | None
    participant: str | None
    detail: str
    checked: bool = True

    @classmethod
    def not_checked(
        cls,
        check: str,
        task: int | None,
        detail: str,
        round: int | None = None,
        participant: str | None = None,
    ) -> Check:
        """A row for a check that could not run: ``detail`` says what is missing."""
        return cls(check, False, task, round, participant, detail, checked=False)

    @property
    def status(self) -> str:
        """``ok``, ``FAIL`` or ``not checked``."""
        if not self.checked:
            return "not checked"
        return "ok" if self.ok else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "status": self.status,
            "task": self.task,
            "round": self.round,
            "participant": self.participant,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Verdict:
    """The audit's result: every row, passing and failing."""

    checks: tuple[Check, ...]

    @classmethod
    def of(cls, checks: list[Check]) -> Verdict:
        """The rows in the order of :data:`CHECKS`, then by task."""
        order = {name: i for i, name in enumerate(CHECKS)}
        return cls(
            tuple(sorted(checks, key=lambda c: (order.get(c.check, len(order)), c.task or 0)))
        )

    @property
    def ok(self) -> bool:
        """True only when every check ran and passed (a row not checked is not a pass)."""
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The rows of checks that ran and failed."""
        return tuple(c for c in self.checks if c.checked and not c.ok)

    @property
    def unchecked(self) -> tuple[Check, ...]:
        """The rows of checks that could not run."""
        return tuple(c for c in self.checks if not c.checked)

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_FAILED` if a check failed, else :data:`EXIT_NOT_CHECKED` if one could not
        run, else :data:`EXIT_OK`."""
        if self.failures:
            return EXIT_FAILED
        return EXIT_NOT_CHECKED if self.unchecked else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "failed": N, "not_checked": N, "checks": [{check, ok, status, task,
        round, participant, detail}, ...]}``; ``ok`` only when every check ran and passed."""
        return {
            "ok": self.ok,
            "failed": len(self.failures),
            "not_checked": len(self.unchecked),
            "checks": [c.to_json() for c in self.checks],
        }


class Rows:
    """Collects the failures of one check kind; one passing row when there are none."""

    def __init__(self, check: str, task: int | None) -> None:
        self.check, self.task = check, task
        self.failures: list[Check] = []

    def not_checked(
        self, detail: str, round: int | None = None, participant: str | None = None
    ) -> None:
        """A part of the check that could not run (it is listed, not passed)."""
        self.failures.append(Check.not_checked(self.check, self.task, detail, round, participant))

    def fail(self, detail: str, round: int | None = None, participant: str | None = None) -> None:
        self.failures.append(Check(self.check, False, self.task, round, participant, detail))

    def rows(self, passed: str) -> list[Check]:
        if self.failures:
            return self.failures
        return [Check(self.check, True, self.task, None, None, passed)]


@dataclass(frozen=True)
class ScoreCheck:
    """One recorded score against its recomputation."""

    round: int
    participant: str
    recorded_score: int
    recomputed_score: int
    recorded_reward: int
    recomputed_reward: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.detail
            and self.recorded_score == self.recomputed_score
            and self.recorded_reward == self.recomputed_reward
        )

    def describe(self) -> str:
        if self.ok:
            return "recomputes"
        if self.detail:
            return self.detail
        return (
            f"recorded score {self.recorded_score} and reward {self.recorded_reward}, "
            f"recomputed {self.recomputed_score} and {self.recomputed_reward}"
        )
