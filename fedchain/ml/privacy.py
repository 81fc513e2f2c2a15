"""Privacy accounting of DP-SGD with Opacus' RDP accountant: the noise and the epsilon spent.

A site's local training samples each example independently with probability ``q`` per step
(Poisson sampling, as Opacus' ``DPDataLoader`` does and as the accountant assumes), with
``q = 1 / ceil(n / batch_size)`` for its ``n`` examples and ``int(1 / q)`` steps per epoch,
exactly what :func:`fedchain.ml.dp_training.train_private` runs. A round is ``local_epochs``
epochs. The noise multiplier is the smallest (to 0.1 % of epsilon) that keeps the site's
epsilon at or below the task's cap after the planned number of rounds.

Both functions are pure and deterministic: an auditor recomputes them from the task spec, the
site's dataset size and the rounds it took part in.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from fedchain.ml.errors import TrainingError
from fedchain.privacy import PrivacyTerms

__all__ = [
    "ACCOUNTANT",
    "EPSILON_TOLERANCE",
    "epsilon_of",
    "epsilon_spent",
    "noise_multiplier",
    "sample_rate",
    "steps_per_round",
]

#: Opacus' accountant fedchain uses: Renyi DP (Mironov 2017; Abadi et al.'s moments accountant).
ACCOUNTANT = "rdp"
#: The noise search stops within this much epsilon below the target.
EPSILON_TOLERANCE = 1e-3


def sample_rate(dataset_size: int, batch_size: int) -> float:
    """Each example's probability of being in one step's batch: Opacus' ``1 / len(loader)``."""
    _check_sizes(dataset_size, batch_size)
    return 1 / math.ceil(dataset_size / batch_size)


def steps_per_round(dataset_size: int, batch_size: int, local_epochs: int) -> int:
    """The DP-SGD steps of one round: ``local_epochs`` times Opacus' ``int(1 / q)`` per epoch."""
    if local_epochs < 1:
        raise TrainingError(f"local_epochs must be >= 1, got {local_epochs}")
    return local_epochs * int(1 / sample_rate(dataset_size, batch_size))


def noise_multiplier(
    terms: PrivacyTerms, *, dataset_size: int, batch_size: int, local_epochs: int, rounds: int
) -> float:
    """The smallest noise multiplier (sigma) keeping a site within ``terms.epsilon`` after
    ``rounds`` rounds of ``local_epochs`` epochs on ``dataset_size`` examples.

    Raises
    ------
    TrainingError
        If a size is below 1, or the cap is too small to reach with any sane noise.
    """
    if rounds < 1:
        raise TrainingError(f"the privacy budget is planned over >= 1 round, got {rounds}")
    q = sample_rate(dataset_size, batch_size)
    steps = rounds * steps_per_round(dataset_size, batch_size, local_epochs)
    try:
        return _search_sigma(terms.epsilon, terms.delta, q, steps)
    except ValueError as error:  # Opacus: "The privacy budget is too low."
        raise TrainingError(
            f"epsilon {terms.epsilon:g} cannot be reached over {steps} DP-SGD steps on "
            f"{dataset_size} examples ({error}): raise --dp's epsilon or lower the rounds"
        ) from None


def epsilon_spent(
    terms: PrivacyTerms,
    *,
    dataset_size: int,
    batch_size: int,
    local_epochs: int,
    rounds_taken: int,
    planned_rounds: int,
) -> float:
    """A site's cumulative epsilon after training ``rounds_taken`` rounds with the noise
    derived for ``planned_rounds`` (0.0 before its first round).

    Raises
    ------
    TrainingError
        If ``rounds_taken`` is negative or a size is below 1.
    """
    if rounds_taken < 0:
        raise TrainingError(f"rounds_taken must be >= 0, got {rounds_taken}")
    sigma = noise_multiplier(
        terms,
        dataset_size=dataset_size,
        batch_size=batch_size,
        local_epochs=local_epochs,
        rounds=planned_rounds,
    )
    steps = rounds_taken * steps_per_round(dataset_size, batch_size, local_epochs)
    return epsilon_of(
        sigma, sample_rate=sample_rate(dataset_size, batch_size), steps=steps, delta=terms.delta
    )


def epsilon_of(sigma: float, *, sample_rate: float, steps: int, delta: float) -> float:
    """The epsilon of ``steps`` Poisson-sampled Gaussian steps: what Opacus' ``RDPAccountant``
    gives for that history, bit for bit (its RDP is one step's times ``steps``, and one step's
    is cached: a site asks each round, the audit for each participant and round)."""
    if steps == 0:
        return 0.0
    rdp = _rdp_per_step(sigma, sample_rate) * steps
    with warnings.catch_warnings():  # Opacus warns about optimal orders at the alphas' edge
        warnings.simplefilter("ignore")
        epsilon, _ = rdp_analysis.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta
        )
    return float(epsilon)


@functools.lru_cache(maxsize=256)
def _rdp_per_step(sigma: float, q: float) -> np.ndarray[Any, Any]:
    """The RDP of one step at the accountant's orders (Opacus' ``compute_rdp``)."""
    rdp = rdp_analysis.compute_rdp(
        q=q, noise_multiplier=sigma, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
    )
    rdp.setflags(write=False)  # shared by the cache
    return rdp  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def _search_sigma(epsilon: float, delta: float, q: float, steps: int) -> float:
    """Opacus' binary search for sigma (about a second, hence the cache: a site asks every
    round, the audit for every participant)."""
    with warnings.catch_warnings():  # Opacus warns about optimal orders at the alphas' edge
        warnings.simplefilter("ignore")
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=q,
                steps=steps,
                accountant=ACCOUNTANT,
                epsilon_tolerance=EPSILON_TOLERANCE,
            )
        )


def _check_sizes(dataset_size: int, batch_size: int) -> None:
    if dataset_size < 1 or batch_size < 1:
        raise TrainingError(
            f"dataset_size and batch_size must be >= 1, got {dataset_size} and {batch_size}"
        )
