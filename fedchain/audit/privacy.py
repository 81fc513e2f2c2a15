"""The privacy check (issue 17): every participant's recorded spend recomputes from the spec.

Each commitment on chain carries its participant's cumulative epsilon after the round, in
micro-epsilon (:func:`fedchain.privacy.to_micro`). The auditor recomputes it from the task spec's
DP terms (cap, delta, local epochs, batch size, the rounds the noise was planned for) and the
rounds the participant took part in, as the chain records them: after its k-th recorded
commitment a site has spent ``epsilon_spent(..., rounds_taken=k)`` on its consented dataset size
(:func:`fedchain.ml.privacy.epsilon_spent`, deterministic). The chain's value must equal that
exactly, and never exceed the task's cap, which must be the spec's epsilon.

A site that trained a round whose reply the server then dropped spent that round too, yet the
chain does not count it: its later commitments read above the recomputation, and the check says
so for the auditor to look at. A task without DP terms has cap 0 and every spend 0: the check
is not applicable and says that.
"""

from __future__ import annotations

from collections import defaultdict

from fedchain.audit.lineage import CommitmentEntry, TaskLineage
from fedchain.audit.verdict import PRIVACY, Check, Rows
from fedchain.privacy import PrivacyTerms, to_micro
from fedchain.task import TaskSpec

__all__ = ["check_privacy", "expected_spends"]


def check_privacy(task: TaskLineage, spec: TaskSpec | None, *, given: bool = True) -> list[Check]:
    """The privacy rows of one task: recorded spends against the spec's recomputation.

    Parameters
    ----------
    task
        The task's lineage (its cap from ``TaskTermsSet``, each commitment's ``epsilon``).
    spec
        The task's spec, when one that hashes to the chain's was given; None otherwise.
    given
        Whether a spec file was given at all (without one, a DP task is *not checked*).
    """
    rows = Rows(PRIVACY, task.task_id)
    commitments = [(e.round, c) for e in task.committed_rounds() for c in e.commitments]
    spent = any(c.epsilon for _, c in commitments)
    terms = spec.privacy if spec is not None else None
    if terms is None and (spec is not None or not (task.epsilon_cap or spent)):
        if task.epsilon_cap or spent:
            rows.fail(
                f"the spec has no DP terms, but the chain holds a cap of {task.epsilon_cap} "
                "micro-epsilon or a non-zero spend: the task was created with other terms"
            )
        return rows.rows("not applicable: the task has no DP terms (cap 0, every spend 0)")
    if spec is None or terms is None:
        why = "no spec file given: pass --spec FILE" if not given else "no spec matches the chain"
        return [Check.not_checked(PRIVACY, task.task_id, f"{why} to recompute the spends")]
    cap = to_micro(terms.epsilon)
    if task.epsilon_cap != cap:
        rows.fail(
            f"the chain's cap is {task.epsilon_cap} micro-epsilon, the spec's epsilon "
            f"{terms.epsilon:g} is {cap}: the task was created with another cap"
        )
    expected = expected_spends(task, spec, terms)
    for (round_id, c), want in zip(commitments, expected, strict=True):
        _compare(rows, round_id, c, want, cap)
    sites = len({c.participant for _, c in commitments})
    return rows.rows(
        f"{len(commitments)} spends of {sites} participants recompute from the spec "
        f"({terms.describe()}), each within the cap of {cap} micro-epsilon"
    )


def expected_spends(task: TaskLineage, spec: TaskSpec, terms: PrivacyTerms) -> list[int]:
    """The micro-epsilon each commitment of the task should carry, in the order of
    ``committed_rounds()`` and their commitments: its participant's spend after its k-th
    recorded round, on its consented dataset size."""
    from fedchain.ml.privacy import epsilon_spent  # Opacus: imported only for DP tasks

    taken: dict[str, int] = defaultdict(int)
    out: list[int] = []
    for entry in task.committed_rounds():
        for c in entry.commitments:
            taken[c.participant] += 1
            member = task.members.get(c.participant)
            size = member.dataset_size if member is not None else 0
            if size < 1:
                out.append(-1)  # no consented dataset: cannot recompute
                continue
            epsilon = epsilon_spent(
                terms,
                dataset_size=size,
                batch_size=spec.batch_size,
                local_epochs=spec.local_epochs,
                rounds_taken=taken[c.participant],
                planned_rounds=spec.dp_rounds,
            )
            out.append(to_micro(epsilon))
    return out


def _compare(rows: Rows, round_id: int, c: CommitmentEntry, want: int, cap: int) -> None:
    """One failure row when the recorded spend is above the cap or not the recomputed one."""
    got = c.epsilon
    if got > cap:
        rows.fail(
            f"recorded spend {got} micro-epsilon is above the cap {cap}", round_id, c.participant
        )
    elif want < 0:
        rows.fail("no consented dataset size to recompute its spend from", round_id, c.participant)
    elif got < want:
        rows.fail(
            f"recorded spend {got} micro-epsilon, the spec gives {want} for the rounds it took "
            "part in: the site under-reports its privacy loss",
            round_id,
            c.participant,
        )
    elif got > want:
        rows.fail(
            f"recorded spend {got} micro-epsilon, the spec gives {want} for the rounds the chain "
            "recorded: the site counts a round the chain does not (a dropped reply?)",
            round_id,
            c.participant,
        )
