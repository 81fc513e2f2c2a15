"""A participant's privacy budget: the epsilon a round would take it to, refused past the cap.

Each node counts the rounds it trained in its Flower context's state (kept across rounds by
both simulation engines and by a SuperNode for the life of the run). Before training a round it
computes the epsilon it would have spent after it (:func:`fedchain.ml.privacy.epsilon_spent`
with the noise planned for the task's ``dp-rounds``); past the task's cap it refuses the round,
says so in its log and in its error reply (which the server records as its absence reason),
and the other participants go on.
"""

from __future__ import annotations

import logging

from flwr.app import ConfigRecord, Context

from fedchain.errors import FedchainError
from fedchain.settings import RunSettings

__all__ = ["PrivacyBudgetExhaustedError", "epsilon_after_round", "record_round", "rounds_taken"]

log = logging.getLogger(__name__)

#: The context-state record of a node's privacy spend, and its count of rounds trained.
STATE_RECORD = "fedchain-privacy"
STATE_ROUNDS = "rounds-taken"


class PrivacyBudgetExhaustedError(FedchainError, RuntimeError):
    """Training this round would take the site's epsilon past the task's cap: refused."""


def rounds_taken(context: Context) -> int:
    """How many rounds this node has trained (and sent an update for) in this run."""
    record = context.state.config_records.get(STATE_RECORD)
    return int(record.get(STATE_ROUNDS, 0)) if record is not None else 0  # type: ignore[arg-type]


def record_round(context: Context) -> None:
    """Count one more round trained by this node."""
    context.state.config_records[STATE_RECORD] = ConfigRecord(
        {STATE_ROUNDS: rounds_taken(context) + 1}
    )


def epsilon_after_round(settings: RunSettings, dataset_size: int, context: Context) -> float | None:
    """The node's cumulative epsilon if it trains this round; None when DP is off.

    Raises
    ------
    PrivacyBudgetExhaustedError
        If that epsilon would exceed the task's cap.
    """
    terms = settings.privacy
    if terms is None:
        return None
    from fedchain.ml.privacy import epsilon_spent

    taken = rounds_taken(context)
    epsilon = epsilon_spent(
        terms,
        dataset_size=dataset_size,
        batch_size=settings.batch_size,
        local_epochs=settings.local_epochs,
        rounds_taken=taken + 1,
        planned_rounds=settings.dp_planned_rounds,
    )
    if epsilon > terms.epsilon:
        reason = (
            f"privacy budget exhausted: epsilon {epsilon:.4f} would exceed cap "
            f"{terms.epsilon:g} after {taken + 1} rounds (noise planned for "
            f"{settings.dp_planned_rounds}); this site trains no more rounds of the task"
        )
        log.warning("refused to train: %s", reason)
        raise PrivacyBudgetExhaustedError(reason)
    return epsilon
