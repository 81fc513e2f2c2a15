"""Simulated misbehaviour: which participants attack, and what their updates become.

A run's ``attack`` setting is ``KIND:FRACTION``; the last ``round(FRACTION * clients)``
partitions play the attacker, so a run is reproducible and its record can name them. An attacker
is a registered participant that misbehaves: it signs whatever update it sends with its own key,
so the ledger records exactly what it did.

Kinds (``ATTACK_KINDS``):

``sign-flip``
    Trains honestly, then sends the global model minus ``SIGN_FLIP_SCALE`` times its update:
    ``w - s * (w_trained - w)``.
``gaussian``
    Trains nothing; sends the global model plus gaussian noise of standard deviation
    ``GAUSSIAN_STD`` on every weight (a pure noise update).
``label-flip``
    Data poisoning at the client: trains honestly, but on its data with every label ``y``
    replaced by ``num_classes - 1 - y``.
``free-rider``
    Trains nothing; sends the global model back unchanged.
``noisy-free-rider``
    Trains nothing; sends the global model plus tiny noise (``FREE_RIDER_NOISE_STD``), so its
    update does not hash like the global model's.
``alie``
    "A little is enough" (Baruah et al., NeurIPS 2019). The attackers collude: each one trains
    the honest update of *every* attacker (it knows their data and seeds; the simulation
    recomputes them rather than passing them over a side channel, with the same result), takes
    the per-coordinate mean ``mu`` and standard deviation ``sigma`` of those honest updates as its
    estimate of the benign updates' statistics, and sends ``mu - z * sigma`` (all attackers the
    same update). ``z`` is the paper's ``z_max`` for ``n`` clients and ``f`` attackers:
    ``s = floor(n / 2 + 1) - f`` and ``z = Phi^-1((n - s) / n)``, the largest shift that still
    leaves the attackers inside the majority a median or Krum sides with. With one attacker the
    standard deviation is zero and the attack sends its honest update.
``inflate-examples``
    Trains honestly, but reports (and signs) ``INFLATE_FACTOR`` times its number of examples,
    so FedAvg weights its update, and data-size scoring pays it, as if it held that much data.
``sybil``
    One organisation registers the attackers' keys and sends the same update under each: the
    honest update of the first attacking partition (every sybil recomputes it, as ALIE does),
    with that partition's example count. Each copy is signed by its own key, so the copies hash
    alike and multiply one organisation's weight and reward.
``ipm``
    Inner-product manipulation (Xie, Koyejo, Gupta, UAI 2020). The attackers are omniscient, as
    in the paper: each recomputes the honest update of every honest partition and sends
    ``w - IPM_EPSILON * mean_h(w_h - w)``, the honest clients' mean update reversed and
    shrunk, so its inner product with the true update is negative while the vector stays
    small enough for a median or Krum to pick (all attackers the same update).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from fedchain.errors import FedchainError

__all__ = [
    "ATTACK_KINDS",
    "FREE_RIDER_NOISE_STD",
    "GAUSSIAN_STD",
    "HONEST",
    "INFLATE_FACTOR",
    "IPM_EPSILON",
    "SIGN_FLIP_SCALE",
    "AttackError",
    "AttackPlan",
    "ExampleCount",
    "Trainer",
    "alie_z",
    "flipped_labels",
    "parse_attack",
]

ATTACK_KINDS = (
    "sign-flip",
    "gaussian",
    "label-flip",
    "free-rider",
    "noisy-free-rider",
    "alie",
    "inflate-examples",
    "sybil",
    "ipm",
)
#: The role of a participant that does not attack.
HONEST = "honest"
#: sign-flip sends ``w - SIGN_FLIP_SCALE * (w_trained - w)``.
SIGN_FLIP_SCALE = 4.0
#: gaussian sends ``w + N(0, GAUSSIAN_STD^2)`` on every weight.
GAUSSIAN_STD = 1.0
#: noisy-free-rider sends ``w + N(0, FREE_RIDER_NOISE_STD^2)``.
FREE_RIDER_NOISE_STD = 1e-3
#: inflate-examples reports ``INFLATE_FACTOR`` times the examples it holds.
INFLATE_FACTOR = 100
#: ipm sends ``w - IPM_EPSILON * mean_h(w_h - w)``: the small epsilon of Xie et al.'s attacks on
#: coordinate-wise median and Krum, and the one Karimireddy, He and Jaggi's bucketing experiments
#: (ICLR 2022) run IPM with.
IPM_EPSILON = 0.1

Weights = dict[str, np.ndarray[Any, Any]]
#: Trains partition ``p`` honestly on the received model (``flip_labels``: on flipped labels);
#: returns the trained weights and the last epoch's loss.
Trainer = Callable[[int, bool], tuple[Weights, float]]
#: The number of examples partition ``p`` holds.
ExampleCount = Callable[[int], int]


class AttackError(FedchainError, ValueError):
    """An attack setting cannot be parsed."""


def alie_z(num_clients: int, num_attackers: int) -> float:
    """The ALIE paper's ``z_max`` for ``num_clients`` clients of which ``num_attackers`` collude.

    ``s = floor(n / 2 + 1) - f`` benign clients must be won over for a majority;
    ``z = Phi^-1((n - s) / n)``. Zero when no shift stays hidden (``s`` out of range).
    """
    supporters = math.floor(num_clients / 2 + 1) - num_attackers
    quantile = (num_clients - supporters) / num_clients
    if not 0 < quantile < 1:
        return 0.0
    return max(0.0, NormalDist().inv_cdf(quantile))


def flipped_labels(labels: np.ndarray[Any, Any], num_classes: int) -> np.ndarray[Any, Any]:
    """Labels ``y`` replaced by ``num_classes - 1 - y`` (label-flip data poisoning)."""
    return (num_classes - 1 - np.asarray(labels)).astype(np.asarray(labels).dtype)


@dataclass(frozen=True)
class AttackPlan:
    """Which partitions attack, and how."""

    kind: str
    fraction: float

    def attackers(self, num_clients: int) -> frozenset[int]:
        """The attacking partitions: the last ``round(fraction * num_clients)``."""
        count = round(self.fraction * num_clients)
        return frozenset(range(num_clients - count, num_clients))

    def role(self, partition_id: int, num_clients: int) -> str:
        """``honest``, or the attack kind partition ``partition_id`` plays."""
        return self.kind if partition_id in self.attackers(num_clients) else HONEST

    def forge(
        self,
        received: Mapping[str, np.ndarray[Any, Any]],
        partition_id: int,
        num_clients: int,
        *,
        train: Trainer,
        seed: int,
    ) -> tuple[Weights, float]:
        """The update attacker ``partition_id`` sends instead of its honest one, and its loss.

        Parameters
        ----------
        received
            The global model the attacker was sent.
        partition_id, num_clients
            Who attacks, among how many.
        train
            Honest local training of a partition on ``received`` (used by the attacks that
            train: sign-flip, label-flip, inflate-examples, ALIE for every colluder, sybil for
            the first sybil, IPM for every honest partition).
        seed
            Seed of the attacker's noise.
        """
        kind = self.kind
        if kind == "free-rider":
            return {k: np.array(v, copy=True) for k, v in received.items()}, 0.0
        if kind in ("noisy-free-rider", "gaussian"):
            std = GAUSSIAN_STD if kind == "gaussian" else FREE_RIDER_NOISE_STD
            rng = np.random.default_rng(seed)
            noisy = {
                k: (v + rng.normal(0.0, std, size=v.shape)).astype(v.dtype)
                for k, v in received.items()
            }
            return noisy, 0.0
        if kind == "label-flip":
            return train(partition_id, True)
        if kind == "sign-flip":
            trained, loss = train(partition_id, False)
            flipped = {
                k: (v - SIGN_FLIP_SCALE * (trained[k] - v)).astype(v.dtype)
                for k, v in received.items()
            }
            return flipped, loss
        if kind == "inflate-examples":
            return train(partition_id, False)  # the lie is in the count: claimed_examples
        if kind == "alie":
            return self._alie(received, partition_id, num_clients, train)
        if kind == "sybil":
            shared, loss = train(min(self.attackers(num_clients)), False)
            return {k: np.array(v, copy=True) for k, v in shared.items()}, loss
        if kind == "ipm":
            return self._ipm(received, num_clients, train)
        raise AttackError(f"unknown attack {kind!r}: use one of {', '.join(ATTACK_KINDS)}")

    def _alie(
        self,
        received: Mapping[str, np.ndarray[Any, Any]],
        partition_id: int,
        num_clients: int,
        train: Trainer,
    ) -> tuple[Weights, float]:
        colluders = sorted(self.attackers(num_clients))
        honest = [train(p, False) for p in colluders]
        z = alie_z(num_clients, len(colluders))
        forged: Weights = {}
        for name, template in received.items():
            stack = np.stack([np.asarray(w[name], dtype=np.float64) for w, _ in honest])
            shifted = stack.mean(axis=0) - z * stack.std(axis=0)
            forged[name] = shifted.astype(template.dtype)
        return forged, honest[colluders.index(partition_id)][1]

    def _ipm(
        self, received: Mapping[str, np.ndarray[Any, Any]], num_clients: int, train: Trainer
    ) -> tuple[Weights, float]:
        attackers = self.attackers(num_clients)
        honest = [train(p, False) for p in range(num_clients) if p not in attackers]
        if not honest:  # every client attacks: no honest update to reverse
            return {k: np.array(v, copy=True) for k, v in received.items()}, 0.0
        forged: Weights = {}
        for name, template in received.items():
            base = np.asarray(template, dtype=np.float64)
            deltas = np.stack([np.asarray(w[name], dtype=np.float64) - base for w, _ in honest])
            forged[name] = (base - IPM_EPSILON * deltas.mean(axis=0)).astype(template.dtype)
        # It reports the honest clients' mean loss, a plausible figure.
        return forged, float(np.mean([loss for _, loss in honest]))

    def data_partition(self, partition_id: int, num_clients: int) -> int:
        """The partition whose data participant ``partition_id`` holds, and so consents to a
        task with (its dataset size and data hash): a sybil holds copies of the first sybil's
        data; every other participant, attacker or not, its own partition."""
        if self.kind == "sybil" and partition_id in self.attackers(num_clients):
            return min(self.attackers(num_clients))
        return partition_id

    def claimed_examples(self, partition_id: int, num_clients: int, held: ExampleCount) -> int:
        """The number of examples attacker ``partition_id`` reports and signs.

        ``held(p)`` is what partition ``p`` truly holds. An inflate-examples attacker claims
        ``INFLATE_FACTOR`` times its own; a sybil the count of the data its copies came from
        (the first sybil's partition); every other attacker its own.
        """
        if self.kind == "inflate-examples":
            return INFLATE_FACTOR * held(partition_id)
        if self.kind == "sybil":
            return held(min(self.attackers(num_clients)))
        return held(partition_id)


def parse_attack(text: str) -> AttackPlan | None:
    """``""`` (no attack) or ``KIND:FRACTION`` with FRACTION in [0, 1).

    Raises
    ------
    AttackError
        For an unknown kind, a missing or non-numeric fraction, or one outside [0, 1).
    """
    if not text:
        return None
    kind, _, fraction = text.strip().partition(":")
    if kind not in ATTACK_KINDS:
        raise AttackError(
            f"unknown attack {kind!r}: use KIND:FRACTION with KIND one of {', '.join(ATTACK_KINDS)}"
        )
    try:
        value = float(fraction)
    except ValueError as exc:
        raise AttackError(
            f"attack {text!r} needs the fraction of attackers: write e.g. {kind}:0.2"
        ) from exc
    if not 0 <= value < 1:  # also refuses NaN
        raise AttackError(
            f"attack fraction must lie in [0, 1), got {fraction!r}: write e.g. {kind}:0.3"
        )
    return AttackPlan(kind, value)
