"""Privacy accounting of DP-SGD with Opacus' accountants: the noise and the epsilon spent.

A site's local training samples each example independently with probability ``q`` per step
(Poisson sampling, as Opacus' ``DPDataLoader`` does and as the accountant assumes), with
``q = 1 / ceil(n / batch_size)`` for its ``n`` examples and ``int(1 / q)`` steps per epoch,
exactly what :func:`fedchain.ml.dp_training.train_private` runs. A round is ``local_epochs``
epochs. The noise multiplier is the smallest (to 0.1 % of epsilon) that keeps the site's
epsilon at or below the task's cap after the planned number of rounds.

The task's accountant (:attr:`fedchain.privacy.PrivacyTerms.accountant`) counts every epsilon:
``prv``, Opacus' ``PRVAccountant`` (numerical composition of privacy random variables, Gopi et
al. 2021; its upper bound on epsilon, tighter than RDP's, so less noise for the same cap), or
``rdp``, Opacus' Renyi DP accountant (the specs made before the choice existed).

Both functions are pure and deterministic: an auditor recomputes them from the task spec, the
site's dataset size and the rounds it took part in. A PRV epsilon takes about a second (an FFT
over a fine mesh) where RDP's takes 0.1 ms, so each is cached per (noise, sample rate, steps,
delta): a process asks for each distinct history once.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import prv as prv_analysis
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from fedchain.ml.errors import TrainingError
from fedchain.privacy import PrivacyTerms

__all__ = [
    "EPSILON_TOLERANCE",
    "epsilon_of",
    "epsilon_spent",
    "noise_multiplier",
    "sample_rate",
    "steps_per_round",
]

#: The noise search stops within this much epsilon below the target.
EPSILON_TOLERANCE = 1e-3
#: ``PRVAccountant.get_epsilon``'s default error on epsilon (its bound is the estimate plus it).
_PRV_EPS_ERROR = 0.01
#: Opacus' largest noise multiplier; a cap that needs more is refused.
_MAX_SIGMA = 2000.0


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
        if terms.accountant == "prv":
            return _search_sigma_prv(terms.epsilon, terms.delta, q, steps)
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
    q = sample_rate(dataset_size, batch_size)
    return epsilon_of(
        sigma, sample_rate=q, steps=steps, delta=terms.delta, accountant=terms.accountant
    )


def epsilon_of(
    sigma: float, *, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """The epsilon of ``steps`` Poisson-sampled Gaussian steps: what Opacus' ``accountant``
    (``prv`` or ``rdp``) gives for that history, bit for bit.

    RDP's is one step's RDP times ``steps`` (one step's is cached); PRV's is the accountant's
    upper bound, cached per history (a site asks each round, the audit for each participant
    and round, mostly the same histories)."""
    if steps == 0:
        return 0.0
    if accountant == "prv":
        return _prv_epsilon(sigma, sample_rate, steps, delta)
    return _rdp_epsilon(_rdp_per_step(sigma, sample_rate) * steps, delta)


@functools.lru_cache(maxsize=256)
def _rdp_per_step(sigma: float, q: float) -> np.ndarray[Any, Any]:
    """The RDP of one step at the accountant's orders (Opacus' ``compute_rdp``)."""
    rdp = rdp_analysis.compute_rdp(
        q=q, noise_multiplier=sigma, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
    )
    rdp.setflags(write=False)  # shared by the cache
    return rdp  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4096)
def _prv_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    """Opacus' ``PRVAccountant.get_epsilon`` (its upper bound, default errors) for ``steps``
    steps at ``sigma``, bit for bit, with one step's RDP cached.

    The accountant's own code, step by step (``PRVAccountant._get_dprv``), except the safe
    domain's bound (``compute_safe_domain_size``): Opacus recomputes one step's RDP at every
    order for it, nine tenths of an epsilon's time; here it is the cached
    :func:`_rdp_per_step`, scaled by ``steps`` exactly as Opacus' ``compute_rdp`` does.
    """
    eps_error, delta_error = _PRV_EPS_ERROR, delta / 1000  # PRVAccountant's defaults
    one_step = _rdp_per_step(sigma, q)
    bound = max(
        _rdp_epsilon(one_step * steps, delta_error / 4),
        _rdp_epsilon(one_step * 1, delta_error / (8 * steps)),
    )
    size = max(bound, eps_error) + 3
    mesh = eps_error / np.sqrt(steps * np.log(12 / delta_error) / 2)
    domain = prv_analysis.Domain.create_aligned(-size, size, mesh)
    with warnings.catch_warnings():  # q = 1 (a site smaller than a batch): log(0), harmless
        warnings.simplefilter("ignore")
        prv = prv_analysis.PoissonSubsampledGaussianPRV(q, sigma)
        truncated = prv_analysis.TruncatedPrivacyRandomVariable(prv, domain.t_min, domain.t_max)
        composed = prv_analysis.compose_heterogeneous(
            dprvs=[prv_analysis.discretize(truncated, domain)], num_self_compositions=[steps]
        )
        _, _, upper = composed.compute_epsilon(delta, delta_error, eps_error)
    return float(upper)


def _rdp_epsilon(rdp: np.ndarray[Any, Any], delta: float) -> float:
    """Opacus' ``get_privacy_spent`` at the accountant's orders."""
    with warnings.catch_warnings():  # Opacus warns about optimal orders at the alphas' edge
        warnings.simplefilter("ignore")
        epsilon, _ = rdp_analysis.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta
        )
    return float(epsilon)


@functools.lru_cache(maxsize=256)
def _search_sigma_prv(epsilon: float, delta: float, q: float, steps: int) -> float:
    """The smallest sigma (to :data:`EPSILON_TOLERANCE`) whose PRV epsilon is at most
    ``epsilon``: the condition of Opacus' search, found in fewer PRV epsilons.

    A PRV epsilon at a new sigma costs about as much as Opacus' whole RDP epsilon (both
    compute one step's RDP at every order), so instead of Opacus' doubling and bisection (15 or
    more of them) the search steps along log-epsilon against log-sigma, nearly a straight line
    of slope -1 (epsilon ~ q sqrt(steps log(1/delta)) / sigma, the start), until the cap is
    bracketed, then interpolates between the bracket's ends, aiming half a tolerance below the
    cap: four to six epsilons in all. Deterministic, so an auditor finds the same sigma.
    """

    def eps(sigma: float) -> float:  # floored: its logarithm is taken
        return max(_prv_epsilon(sigma, q, steps, delta), 1e-12)

    aim = math.log(max(epsilon - EPSILON_TOLERANCE / 2, epsilon / 2))
    sigma = max(0.3, q * math.sqrt(2 * steps * math.log(1 / delta)) / epsilon)
    e = eps(sigma)
    low, e_low, high, e_high = 0.0, math.inf, math.inf, 0.0
    slope = -1.0
    while not (low and high < math.inf):  # bracket: eps(low) > epsilon >= eps(high)
        if e <= epsilon:
            high, e_high = sigma, e
        else:
            low, e_low = sigma, e
        step = (aim - math.log(e)) / slope  # in log-sigma, at most a factor 4 either way
        next_sigma = sigma * math.exp(min(max(step, -math.log(4)), math.log(4)))
        if next_sigma > _MAX_SIGMA:
            raise TrainingError("the privacy budget is too low")  # as Opacus says
        next_e = eps(next_sigma)
        if next_e != e and next_sigma != sigma:
            slope = min((math.log(next_e) - math.log(e)) / math.log(next_sigma / sigma), -0.05)
        sigma, e = next_sigma, next_e
    if e <= epsilon:
        high, e_high = min((high, e_high), (sigma, e))
    else:
        low, e_low = max((low, e_low), (sigma, e))
    while epsilon - e_high > EPSILON_TOLERANCE:
        # where the line through the bracket's ends reaches ``aim``, kept a tenth of the
        # bracket off its ends so that the bracket always shrinks
        slope = (math.log(e_high) - math.log(e_low)) / math.log(high / low)
        guess = high * math.exp((aim - math.log(e_high)) / slope)
        margin = (high - low) / 10
        sigma = min(max(guess, low + margin), high - margin)
        e = eps(sigma)
        if e <= epsilon:
            high, e_high = sigma, e
        else:
            low, e_low = sigma, e
    return high


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
                accountant="rdp",
                epsilon_tolerance=EPSILON_TOLERANCE,
            )
        )


def _check_sizes(dataset_size: int, batch_size: int) -> None:
    if dataset_size < 1 or batch_size < 1:
        raise TrainingError(
            f"dataset_size and batch_size must be >= 1, got {dataset_size} and {batch_size}"
        )
