"""A task's differential-privacy terms: the cap each site's epsilon may reach, delta, clipping.

Core and torch-free, so the chain, the audit and the CLI read the terms without PyTorch. The
accounting itself (noise multiplier, epsilon spent) is :mod:`fedchain.ml.privacy`.

On chain an epsilon is an integer number of micro-epsilons (:data:`EPSILON_SCALE`), rounded up
by :func:`to_micro` so that the recorded spend never under-reports the real one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedchain.errors import FedchainError

__all__ = [
    "ACCOUNTANTS",
    "DEFAULT_ACCOUNTANT",
    "DEFAULT_CLIP_NORM",
    "DEFAULT_DELTA",
    "EPSILON_SCALE",
    "LEGACY_ACCOUNTANT",
    "METRIC_DP_EPSILON",
    "PrivacyError",
    "PrivacyTerms",
    "parse_dp",
    "to_micro",
]

#: The delta of ``--dp EPSILON`` without one: well below 1/n for the datasets fedchain runs
#: (the usual advice for record-level DP is delta < 1/number of records).
DEFAULT_DELTA = 1e-5
#: The per-example gradient norm DP-SGD clips to: 1.0 is Opacus' tutorials' and Abadi et al.'s
#: usual order of magnitude, and works for the three built-in models at their learning rates.
DEFAULT_CLIP_NORM = 1.0
#: Opacus' accountants a task may count its epsilons with: Renyi DP (Mironov 2017) and the
#: privacy random variables (PRV, Gopi et al. 2021), whose numerical composition gives a
#: tighter (smaller) epsilon for the same noise, hence less noise for the same cap.
ACCOUNTANTS = ("prv", "rdp")
#: The accountant of a new task.
DEFAULT_ACCOUNTANT = "prv"
#: The accountant of a task spec without one: every DP task made before the field existed.
LEGACY_ACCOUNTANT = "rdp"
#: Epsilons go on chain as integers in millionths (micro-epsilon).
EPSILON_SCALE = 10**6
#: The fit metric in which a client reports its cumulative epsilon after the round (a float;
#: absent when DP is off).
METRIC_DP_EPSILON = "dp_epsilon"


class PrivacyError(FedchainError, ValueError):
    """Privacy terms are out of range, or a ``--dp`` value cannot be read."""


@dataclass(frozen=True)
class PrivacyTerms:
    """A task's differential-privacy terms (record-level, per site).

    Attributes
    ----------
    epsilon
        The cap: the most epsilon any site may have spent over the whole task.
    delta
        The delta of the (epsilon, delta) guarantee.
    clip_norm
        The L2 norm each example's gradient is clipped to in DP-SGD.
    accountant
        The accountant every epsilon of the task is counted with (:data:`ACCOUNTANTS`): the
        noise planned, each site's spend and the audit's recomputation.
    """

    epsilon: float
    delta: float = DEFAULT_DELTA
    clip_norm: float = DEFAULT_CLIP_NORM
    accountant: str = DEFAULT_ACCOUNTANT

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise PrivacyError(f"--dp: epsilon must be a positive number, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise PrivacyError(f"--dp: delta must lie strictly between 0 and 1, got {self.delta}")
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise PrivacyError(
                f"--dp-clip-norm: the clipping norm must be a positive number, got {self.clip_norm}"
            )
        if self.accountant not in ACCOUNTANTS:
            raise PrivacyError(
                f"dp-accountant: {self.accountant!r} is not one of {', '.join(ACCOUNTANTS)}"
            )

    def describe(self) -> str:
        """One line for people: ``epsilon <= 8 per site, delta 1e-05, clip norm 1, PRV
        accountant``."""
        return (
            f"epsilon <= {self.epsilon:g} per site, delta {self.delta:g}, "
            f"clip norm {self.clip_norm:g}, {self.accountant.upper()} accountant"
        )


def parse_dp(
    text: str, *, clip_norm: float = DEFAULT_CLIP_NORM, accountant: str = DEFAULT_ACCOUNTANT
) -> PrivacyTerms:
    """Read ``EPSILON[:DELTA]`` (``--dp 8`` or ``--dp 8:1e-5``); delta defaults to 1e-5.

    Raises
    ------
    PrivacyError
        If the text is not one or two numbers, or they are out of range.
    """
    parts = text.strip().split(":")
    if len(parts) > 2 or not parts[0]:
        raise PrivacyError(f"--dp: {text!r} is not EPSILON or EPSILON:DELTA, e.g. 8 or 8:1e-5")
    try:
        epsilon = float(parts[0])
        delta = float(parts[1]) if len(parts) == 2 else DEFAULT_DELTA
    except ValueError:
        raise PrivacyError(
            f"--dp: {text!r} is not EPSILON or EPSILON:DELTA, e.g. 8 or 8:1e-5"
        ) from None
    return PrivacyTerms(epsilon=epsilon, delta=delta, clip_norm=clip_norm, accountant=accountant)


def to_micro(epsilon: float) -> int:
    """``epsilon`` in micro-epsilons, rounded up: the fixed point the chain records.

    Rounding up keeps the recorded spend at or above the real one. The tiny float error of the
    product (``0.3 * 10**6`` is ``300000.00000000006``) is taken off first so that an epsilon
    with at most six decimals maps to itself.

    Raises
    ------
    PrivacyError
        If ``epsilon`` is negative or not finite.
    """
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise PrivacyError(f"an epsilon must be a finite number >= 0, got {epsilon}")
    scaled = epsilon * EPSILON_SCALE
    nearest = round(scaled)
    if math.isclose(scaled, nearest, rel_tol=1e-12, abs_tol=1e-9):
        return int(nearest)
    return math.ceil(scaled)
