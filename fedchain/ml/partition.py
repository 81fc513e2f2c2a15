"""Seeded partitions of a dataset over simulated clients: IID, label skew, quantity skew.

Every scheme returns one sorted index array per client; together they cover every index exactly
once. The same ``(labels, num_clients, scheme, seed)`` always gives the same partition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedchain.ml.errors import PartitionError

__all__ = [
    "DEFAULT_PARTITION",
    "DEFAULT_QUANTITY_ALPHA",
    "DIRICHLET_MAX_ATTEMPTS",
    "MIN_CLIENT_SAMPLES",
    "PartitionScheme",
    "parse_partition_scheme",
    "partition",
]

DEFAULT_PARTITION = "dirichlet:0.5"
# Every client gets at least this many examples, so it can train and report a loss.
MIN_CLIENT_SAMPLES = 2
# Concentration of the Dirichlet over client sizes for "quantity" without an explicit alpha.
DEFAULT_QUANTITY_ALPHA = 1.0
# Label-skew draws tried before falling back to topping up small clients (see partition()).
DIRICHLET_MAX_ATTEMPTS = 100

_SCHEME_HELP = (
    "use 'iid', 'dirichlet:ALPHA' or 'quantity[:ALPHA]' with ALPHA > 0, e.g. 'dirichlet:0.5'"
)


@dataclass(frozen=True)
class PartitionScheme:
    """A parsed partition scheme.

    Attributes
    ----------
    kind
        ``"iid"``, ``"dirichlet"`` (label skew) or ``"quantity"`` (quantity skew).
    alpha
        Dirichlet concentration (smaller is more skewed); ``None`` for ``"iid"``.
    """

    kind: Literal["iid", "dirichlet", "quantity"]
    alpha: float | None = None

    def __str__(self) -> str:
        return self.kind if self.alpha is None else f"{self.kind}:{self.alpha:g}"


def parse_partition_scheme(scheme: str) -> PartitionScheme:
    """Parse ``"iid"``, ``"dirichlet:ALPHA"`` or ``"quantity"`` / ``"quantity:ALPHA"``.

    Raises
    ------
    PartitionError
        For an unknown scheme, a missing or malformed alpha, or an alpha that is not > 0.
    """
    name, sep, arg = scheme.strip().lower().partition(":")
    if name == "iid" and not sep:
        return PartitionScheme(kind="iid")
    if name == "quantity" and not sep:
        return PartitionScheme(kind="quantity", alpha=DEFAULT_QUANTITY_ALPHA)
    if name in ("dirichlet", "quantity") and sep:
        try:
            alpha = float(arg)
        except ValueError:
            raise PartitionError(
                f"partition scheme {scheme!r}: {arg!r} is not a number; {_SCHEME_HELP}"
            ) from None
        if not (math.isfinite(alpha) and alpha > 0):
            raise PartitionError(
                f"partition scheme {scheme!r}: alpha must be a finite number > 0; {_SCHEME_HELP}"
            )
        return PartitionScheme(kind="dirichlet" if name == "dirichlet" else "quantity", alpha=alpha)
    if name == "dirichlet":
        raise PartitionError(f"partition scheme {scheme!r} needs an alpha; {_SCHEME_HELP}")
    raise PartitionError(f"unknown partition scheme {scheme!r}; {_SCHEME_HELP}")


def partition(
    labels: ArrayLike, num_clients: int, scheme: str | PartitionScheme, seed: int
) -> list[NDArray[np.int64]]:
    """Split example indices over ``num_clients`` clients.

    Parameters
    ----------
    labels
        ``(n,)`` integer class ids of the examples to split.
    num_clients
        Number of clients; each gets at least ``MIN_CLIENT_SAMPLES`` examples.
    scheme
        ``"iid"``: a random permutation cut into near-equal parts.
        ``"dirichlet:ALPHA"``: label skew; each class is spread over the clients in proportions
        drawn from ``Dirichlet(ALPHA)``. Draws leaving a client with fewer than
        ``MIN_CLIENT_SAMPLES`` examples are redrawn, up to ``DIRICHLET_MAX_ATTEMPTS`` times;
        after that the last draw is kept and each small client is topped up with random examples
        taken from the currently largest client.
        ``"quantity[:ALPHA]"``: quantity skew; client sizes are ``MIN_CLIENT_SAMPLES`` plus a
        multinomial share of the rest with ``Dirichlet(ALPHA)`` proportions (default ALPHA 1),
        the examples themselves drawn IID.
    seed
        Seed of the ``numpy.random.default_rng`` behind every random choice.

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 index array per client; together they cover ``range(n)`` exactly once.

    Raises
    ------
    PartitionError
        For a malformed scheme, ``num_clients < 1``, or too few examples for every client to get
        ``MIN_CLIENT_SAMPLES``.
    """
    parsed = scheme if isinstance(scheme, PartitionScheme) else parse_partition_scheme(scheme)
    label_array = np.asarray(labels)
    if label_array.ndim != 1:
        raise PartitionError(f"labels must be one-dimensional, got shape {label_array.shape}")
    if num_clients < 1:
        raise PartitionError(f"num_clients must be at least 1, got {num_clients}")
    n = int(label_array.shape[0])
    if n < num_clients * MIN_CLIENT_SAMPLES:
        raise PartitionError(
            f"{n} examples cannot give {num_clients} clients {MIN_CLIENT_SAMPLES} examples "
            "each: use fewer clients or more data"
        )
    rng = np.random.default_rng(seed)
    if parsed.kind == "iid":
        shares = np.array_split(rng.permutation(n), num_clients)
    elif parsed.kind == "dirichlet":
        assert parsed.alpha is not None  # guaranteed by parse_partition_scheme
        shares = _dirichlet_label_skew(label_array, num_clients, parsed.alpha, rng)
    else:
        assert parsed.alpha is not None
        shares = _quantity_skew(n, num_clients, parsed.alpha, rng)
    return [np.sort(share).astype(np.int64) for share in shares]


def _dirichlet_label_skew(
    labels: NDArray[np.generic], num_clients: int, alpha: float, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    classes = np.unique(labels)
    shares: list[NDArray[np.int64]] = []
    for attempt in range(DIRICHLET_MAX_ATTEMPTS):
        draws = []
        sizes = np.zeros(num_clients, dtype=np.int64)
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(proportions)[:-1] * members.size).astype(np.int64)
            sizes += np.diff(cuts, prepend=0, append=members.size)
            draws.append((members, cuts))
        # Count first, split only the draw that is kept (or the last one): with a thousand
        # clients, splitting every rejected draw cost seconds.
        if sizes.min() >= MIN_CLIENT_SAMPLES or attempt == DIRICHLET_MAX_ATTEMPTS - 1:
            parts: list[list[NDArray[np.int64]]] = [[] for _ in range(num_clients)]
            for members, cuts in draws:
                for client, piece in enumerate(np.split(members, cuts)):
                    parts[client].append(piece)
            shares = [np.concatenate(p).astype(np.int64) for p in parts]
        if sizes.min() >= MIN_CLIENT_SAMPLES:
            return shares
    # Documented fallback for extreme alphas: move random examples from the largest client.
    for client in range(num_clients):
        while shares[client].size < MIN_CLIENT_SAMPLES:
            donor = int(np.argmax([share.size for share in shares]))
            pick = int(rng.integers(shares[donor].size))
            shares[client] = np.append(shares[client], shares[donor][pick])
            shares[donor] = np.delete(shares[donor], pick)
    return shares


def _quantity_skew(
    n: int, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    proportions = rng.dirichlet(np.full(num_clients, alpha))
    sizes = MIN_CLIENT_SAMPLES + rng.multinomial(n - num_clients * MIN_CLIENT_SAMPLES, proportions)
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])
