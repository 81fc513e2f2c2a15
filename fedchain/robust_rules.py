"""Robust aggregation rules on flattened updates: pure numpy, the same result for the same inputs.

Each rule takes a round's updates as the rows of a float64 matrix ``x`` of shape ``(n, d)``: the
clients' deltas from the round's parent model (``x_i = w_i - parent``), flattened. It returns an
:class:`Aggregate`: the aggregated delta and, where the rule can say, how much each row counted
(non-negative, summing to 1; all zeros when the rule let nothing count, as FLTrust may). A
weight says how much the rule let an update shape the aggregate, not whether the update helped.

Pre-aggregation (:func:`nearest_neighbour_mixing`, :func:`bucketing`) turns the ``n`` rows into
mixed rows plus the mixing matrix that made them, so the weights a rule gives the mixed rows
propagate back to the original updates (:func:`propagate`).

Reductions avoid BLAS (row sums, ``einsum``), whose summation order may change with the thread
count; the one exception, :func:`krum_scores`, mirrors Flower's Krum arithmetic exactly so that
its selection is Flower's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Aggregate",
    "Mixed",
    "bucket_permutation",
    "bucketing",
    "centered_clipping",
    "clip_radius",
    "coordinate_median",
    "fltrust",
    "krum_scores",
    "krum_select",
    "multi_krum",
    "nearest_neighbour_mixing",
    "propagate",
    "trimmed_mean",
]

Matrix = NDArray[np.float64]
Vector = NDArray[np.float64]

#: Mixed into the bucketing seed so that it never equals another seed derived from the same task
#: seed and round (clients' training, scoring).
_BUCKETING_TAG = 0x6275636B  # "buck"


@dataclass(frozen=True)
class Aggregate:
    """A rule's result: the aggregated delta, and each input row's weight (``None``: the rule
    cannot say, e.g. a coordinate-wise median)."""

    vector: Vector
    weights: Vector | None


@dataclass(frozen=True)
class Mixed:
    """Pre-aggregated rows ``vectors = mixing @ x`` (computed row by row) and ``mixing``
    (``(m, n)``, each row non-negative and summing to 1)."""

    vectors: Matrix
    mixing: Matrix


def _row_norms(x: Matrix) -> Vector:
    norms: Vector = np.sqrt(np.einsum("ij,ij->i", x, x))
    return norms


def _distances_to(x: Matrix, i: int) -> Vector:
    """Euclidean distances from row ``i`` to every row, from explicit differences."""
    return _row_norms(x - x[i])


def clip_radius(x: Matrix, center: Vector) -> float:
    """The default clipping radius ``tau``: the median distance of the updates to ``center``.

    The paper's analysis (Karimireddy, He, Jaggi, ICML 2021) sets ``tau`` in proportion to the
    honest updates' spread around the center; its experiments tune a fixed ``tau`` per task.
    The median distance estimates that spread without tuning, in the updates' own scale, and
    fewer than half the updates (attackers) cannot inflate it: at least half the updates are
    left unclipped and every other one counts as if it were at the median distance.
    """
    return float(np.median(_row_norms(x - center)))


def centered_clipping(
    x: Matrix, center: Vector, *, tau: float | None = None, iterations: int = 1
) -> Aggregate:
    """Centered clipping: ``v <- v + (1/n) sum_i (x_i - v) min(1, tau / ||x_i - v||)``.

    Starts from ``center`` (the previous round's aggregate: the momentum the paper carries
    across rounds) and iterates ``iterations`` times (``L``; the paper finds ``L = 1`` enough
    with momentum). ``tau`` defaults to :func:`clip_radius` around the current ``v``. An update
    at the center is never clipped (factor 1). The weights are the last iteration's clipping
    factors, normalised.
    """
    n = x.shape[0]
    v = np.array(center, dtype=np.float64)
    factors = np.ones(n)
    for _ in range(iterations):
        diff = x - v
        norms = _row_norms(diff)
        radius = float(np.median(norms)) if tau is None else tau
        factors = np.ones(n)
        far = norms > radius
        factors[far] = radius / norms[far]
        v = v + (diff * factors[:, None]).sum(axis=0) / n
    return Aggregate(v, factors / factors.sum())


def krum_scores(x: NDArray[Any], f: int) -> NDArray[Any]:
    """Krum's score of each row (Blanchard et al., NeurIPS 2017): the sum of its squared
    distances to its ``n - f - 2`` nearest other rows (at least 1).

    Computed as Flower's ``select_multikrum`` does it (squared distances from the Gram matrix in
    the rows' dtype, the first of each row's sorted distances taken as the row itself), so the
    selection equals Flower's Krum and MultiKrum on the same rows.
    """
    norms = np.square(x).sum(axis=1)
    distances = norms[:, None] + norms[None, :] - 2 * x @ x.T
    closest = max(1, x.shape[0] - f - 2)
    return np.array(
        [np.sum(row[np.argsort(row)[1 : closest + 1]]) for row in distances], dtype=distances.dtype
    )


def krum_select(x: NDArray[Any], f: int, count: int) -> NDArray[np.intp]:
    """The ``count`` rows with the lowest Krum score, best first (Flower's order)."""
    return np.argsort(krum_scores(x, f))[:count]


def multi_krum(x: Matrix, f: int, count: int) -> Aggregate:
    """The plain mean of the ``count`` best rows by Krum score (``count = 1``: Krum).

    Used on pre-aggregated rows, which carry no example counts; Flower's MultiKrum (on raw
    updates) weights the selected updates by their examples instead.
    """
    count = max(1, min(count, x.shape[0]))
    chosen = np.sort(krum_select(x, f, count))
    weights = np.zeros(x.shape[0])
    weights[chosen] = 1.0 / count
    return Aggregate(x[chosen].sum(axis=0) / count, weights)


def coordinate_median(x: Matrix) -> Aggregate:
    """The coordinate-wise median (no per-update weight: each coordinate picks its own)."""
    return Aggregate(np.median(x, axis=0), None)


def trimmed_mean(x: Matrix, f: int) -> Aggregate:
    """The coordinate-wise mean after cutting ``f`` values off each tail (fewer when fewer than
    ``2f + 1`` rows are given: at least one value stays)."""
    cut = min(f, (x.shape[0] - 1) // 2)
    ordered = np.sort(x, axis=0)
    kept = ordered[cut : x.shape[0] - cut]
    return Aggregate(kept.sum(axis=0) / kept.shape[0], None)


def fltrust(x: Matrix, server: Vector) -> Aggregate:
    """FLTrust (Cao et al., NDSS 2021) against the server's own update ``server`` (``g0``).

    Trust score ``TS_i = ReLU(cos(x_i, g0))``; each update rescaled to ``||g0||``; the aggregate
    ``sum_i TS_i x_i' / sum_i TS_i``. An update of norm zero, or a zero ``g0``, scores 0; when
    every score is 0 the aggregate is zero (the model stays as it is) and every weight is 0.
    """
    norms = _row_norms(x)
    server_norm = float(np.sqrt(np.dot(server, server)))
    scores = np.zeros(x.shape[0])
    live = norms > 0
    if server_norm > 0 and live.any():
        cosines = np.einsum("ij,j->i", x[live], server) / (norms[live] * server_norm)
        scores[live] = np.maximum(cosines, 0.0)
    total = float(scores.sum())
    if total == 0:
        return Aggregate(np.zeros(x.shape[1]), scores)
    trusted = scores > 0
    scale = scores[trusted] * (server_norm / norms[trusted])
    return Aggregate((x[trusted] * scale[:, None]).sum(axis=0) / total, scores / total)


def nearest_neighbour_mixing(x: Matrix, f: int) -> Mixed:
    """NNM (Allouah et al., AISTATS 2023): each row replaced by the mean of its ``n - f``
    nearest rows, itself included (ties broken by row order; at least 1 row)."""
    n = x.shape[0]
    k = max(1, n - f)
    mixing = np.zeros((n, n))
    vectors = np.empty_like(x)
    for i in range(n):
        nearest = np.sort(np.argsort(_distances_to(x, i), kind="stable")[:k])
        mixing[i, nearest] = 1.0 / k
        vectors[i] = x[nearest].sum(axis=0) / k
    return Mixed(vectors, mixing)


def bucket_permutation(n: int, task_seed: int, round_id: int) -> NDArray[np.intp]:
    """The order bucketing shuffles a round's ``n`` updates into: from the task's seed and the
    round, so anyone recomputing the round rebuilds it."""
    rng = np.random.default_rng([task_seed, round_id, _BUCKETING_TAG])
    return rng.permutation(n)


def bucketing(x: Matrix, size: int, permutation: NDArray[np.intp]) -> Mixed:
    """Bucketing (Karimireddy, He, Jaggi, ICLR 2022): the rows in ``permutation`` order cut into
    buckets of ``size`` consecutive rows, each bucket replaced by its mean (a last, smaller
    bucket takes the rest)."""
    n = x.shape[0]
    starts = range(0, n, size)
    mixing = np.zeros((len(starts), n))
    vectors = np.empty((len(starts), x.shape[1]))
    for b, start in enumerate(starts):
        members = permutation[start : start + size]
        mixing[b, members] = 1.0 / len(members)
        vectors[b] = x[members].sum(axis=0) / len(members)
    return Mixed(vectors, mixing)


def propagate(mixed: Mixed, weights: Vector | None) -> Vector | None:
    """The weights a rule gave the mixed rows, carried back to the original updates: update
    ``j`` gets ``sum_i weights_i * mixing_ij`` (still summing to what ``weights`` sums to)."""
    if weights is None:
        return None
    back: Vector = (mixed.mixing * weights[:, None]).sum(axis=0)
    return back
