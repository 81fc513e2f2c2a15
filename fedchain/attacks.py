"""Simulated misbehaviour: which participants attack, and what their updates become.

A run's ``attack`` setting is ``KIND:FRACTION``; the last ``round(FRACTION * clients)``
partitions play the attacker, so a run is reproducible and its record can name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedchain.errors import FedchainError

__all__ = ["ATTACK_KINDS", "AttackError", "AttackPlan", "parse_attack"]

#: free-rider: returns the global model unchanged; noisy-free-rider: plus gaussian noise.
ATTACK_KINDS = ("free-rider", "noisy-free-rider")
_NOISE_STD = 1e-3
HONEST = "honest"


class AttackError(FedchainError, ValueError):
    """An attack setting cannot be parsed."""


@dataclass(frozen=True)
class AttackPlan:
    """Which partitions attack, and how."""

    kind: str
    fraction: float

    def attackers(self, num_clients: int) -> frozenset[int]:
        count = round(self.fraction * num_clients)
        return frozenset(range(num_clients - count, num_clients))

    def role(self, partition_id: int, num_clients: int) -> str:
        return self.kind if partition_id in self.attackers(num_clients) else HONEST

    def forge(
        self, received: Mapping[str, np.ndarray[Any, Any]], seed: int
    ) -> dict[str, np.ndarray[Any, Any]]:
        """The update an attacker returns instead of training."""
        if self.kind == "free-rider":
            return {k: np.array(v, copy=True) for k, v in received.items()}
        rng = np.random.default_rng(seed)
        return {
            k: (v + rng.normal(0.0, _NOISE_STD, size=v.shape)).astype(v.dtype)
            for k, v in received.items()
        }


def parse_attack(text: str) -> AttackPlan | None:
    """``""`` (no attack) or ``KIND:FRACTION`` with FRACTION in (0, 1)."""
    if not text:
        return None
    kind, _, fraction = text.partition(":")
    if kind not in ATTACK_KINDS:
        raise AttackError(f"unknown attack {kind!r}: use one of {', '.join(ATTACK_KINDS)}")
    try:
        value = float(fraction)
    except ValueError as exc:
        raise AttackError(f"attack {text!r} needs a fraction: write {kind}:0.2") from exc
    if not 0 < value < 1:
        raise AttackError(f"attack fraction must lie in (0, 1), got {value}")
    return AttackPlan(kind, value)
