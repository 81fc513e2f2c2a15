"""What a round became: each sampled participant's outcome and the round as recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["NodeAddresses", "ParticipantOutcome", "RoundReport"]


@dataclass
class ParticipantOutcome:
    """What became of one sampled participant in one round."""

    node_id: int
    address: str = ""
    update_hash: str = ""
    num_examples: int = 0
    accepted: bool = False
    reason: str = ""
    absent: bool = False
    score: float = 0.0
    reward: int = 0
    # How much the aggregation weighted the update (None: the strategy cannot say), whether
    # that was enough to earn, and the address of its near-duplicate group's representative
    # ("" when none): see fedchain.contribution.rewards.
    weight: float | None = None
    eligible: bool = True
    duplicate_of: str = ""
    # Why the ledger skipped its commitment or reward at commit ("" when it did not): it left
    # the task while the round was open, say. Its reward then stays in the pool.
    skipped: str = ""
    # The site's cumulative DP epsilon after this round, as it reported it (None without DP).
    epsilon: float | None = None


@dataclass
class RoundReport:
    """One round as it happened and as it was recorded."""

    round: int
    parent_model_hash: str
    global_model_hash: str = ""
    accuracy: float | None = None
    loss: float | None = None
    gas_used: int = 0  # of the commit's transaction, which also opens the next round
    tx_hash: str = ""
    seconds: float = 0.0
    committed: bool = False
    failed_reason: str = ""
    budget: int = 0
    unearned: int = 0  # the part of the budget nobody earned: it stays in the task's pool
    contribution_method: str = ""
    scoring_seconds: float = 0.0
    evaluations: int = 0
    store_bytes: int = 0  # written to the content store in the round (models not there before)
    participants: list[ParticipantOutcome] = field(default_factory=list)


@dataclass
class NodeAddresses:
    """The address each node last signed with, so that a node absent from a later round is
    named by its address, not only by Flower's node id."""

    known: dict[int, str] = field(default_factory=dict)

    def learn(self, outcomes: list[ParticipantOutcome]) -> None:
        """Remember the address of every accepted update (its signature checked: a rejected
        reply may name any address)."""
        for outcome in outcomes:
            if outcome.accepted and outcome.address and not outcome.address.startswith("node-"):
                self.known[outcome.node_id] = outcome.address

    def absent(self, node_id: int, reason: str) -> ParticipantOutcome:
        """The outcome of a sampled node that sent no update, for ``reason``."""
        return ParticipantOutcome(
            node_id=node_id, address=self.known.get(node_id, ""), absent=True, reason=reason
        )

    def name_absent(self, outcomes: list[ParticipantOutcome]) -> None:
        """Give absent outcomes without an address the one their node last signed with."""
        for outcome in outcomes:
            if outcome.absent and not outcome.address:
                outcome.address = self.known.get(outcome.node_id, "")
