"""Partitions: coverage, reproducibility, skew, and scheme parsing."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from fedchain.ml import (
    MIN_CLIENT_SAMPLES,
    PartitionError,
    PartitionScheme,
    load_digits,
    parse_partition_scheme,
    partition,
)

SCHEMES = ["iid", "dirichlet:0.5", "dirichlet:0.05", "quantity", "quantity:0.3"]


def _labels() -> NDArray[np.int64]:
    return load_digits().labels


def _mean_label_entropy(labels: NDArray[np.int64], shares: list[NDArray[np.int64]]) -> float:
    entropies = []
    for share in shares:
        p = np.bincount(labels[share], minlength=10) / share.size
        p = p[p > 0]
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_partition_covers_every_index_exactly_once(scheme: str) -> None:
    # Prepare
    labels = _labels()

    # Execute
    shares = partition(labels, 10, scheme, seed=0)

    # Assert
    assert len(shares) == 10
    merged = np.concatenate(shares)
    np.testing.assert_array_equal(np.sort(merged), np.arange(labels.size))
    assert all(share.dtype == np.int64 for share in shares)
    assert all(np.all(np.diff(share) > 0) for share in shares)
    assert min(share.size for share in shares) >= MIN_CLIENT_SAMPLES


@pytest.mark.parametrize("scheme", SCHEMES)
def test_partition_is_reproducible_and_seed_dependent(scheme: str) -> None:
    # Prepare
    labels = _labels()

    # Execute
    first = partition(labels, 10, scheme, seed=3)
    again = partition(labels, 10, scheme, seed=3)
    other = partition(labels, 10, scheme, seed=4)

    # Assert
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_dirichlet_is_label_skewed_and_iid_is_not() -> None:
    # Prepare
    labels = _labels()
    global_entropy = _mean_label_entropy(labels, [np.arange(labels.size)])

    # Execute
    iid = _mean_label_entropy(labels, partition(labels, 10, "iid", seed=0))
    skewed = _mean_label_entropy(labels, partition(labels, 10, "dirichlet:0.5", seed=0))
    extreme = _mean_label_entropy(labels, partition(labels, 10, "dirichlet:0.05", seed=0))

    # Assert
    assert iid > 0.95 * global_entropy
    assert skewed < 0.8 * iid
    assert extreme < skewed


def test_quantity_skew_varies_sizes_but_not_labels() -> None:
    # Prepare
    labels = _labels()

    # Execute
    iid_sizes = [s.size for s in partition(labels, 10, "iid", seed=0)]
    shares = partition(labels, 10, "quantity", seed=0)
    sizes = [s.size for s in shares]

    # Assert
    assert max(iid_sizes) - min(iid_sizes) <= 1
    assert max(sizes) > 2 * min(sizes)
    assert np.std(sizes) > 0.3 * np.mean(sizes)
    big = shares[int(np.argmax(sizes))]
    assert _mean_label_entropy(labels, [big]) > 0.95 * np.log(10)


def test_dirichlet_fallback_still_gives_every_client_the_minimum() -> None:
    # Prepare: 20 clients over 60 examples with an extreme alpha leaves clients empty on most draws
    labels = np.repeat(np.arange(3), 20)

    # Execute
    shares = partition(labels, 20, "dirichlet:0.001", seed=0)

    # Assert
    assert min(share.size for share in shares) == MIN_CLIENT_SAMPLES
    np.testing.assert_array_equal(np.sort(np.concatenate(shares)), np.arange(60))


def test_partition_accepts_a_parsed_scheme() -> None:
    # Prepare
    labels = _labels()

    # Execute
    parsed = partition(labels, 5, PartitionScheme(kind="dirichlet", alpha=0.5), seed=1)
    text = partition(labels, 5, "dirichlet:0.5", seed=1)

    # Assert
    assert all(np.array_equal(a, b) for a, b in zip(parsed, text, strict=True))


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("iid", PartitionScheme(kind="iid")),
        (" Dirichlet:0.5 ", PartitionScheme(kind="dirichlet", alpha=0.5)),
        ("quantity", PartitionScheme(kind="quantity", alpha=1.0)),
        ("quantity:2", PartitionScheme(kind="quantity", alpha=2.0)),
    ],
)
def test_parse_partition_scheme(scheme: str, expected: PartitionScheme) -> None:
    # Execute / Assert
    assert parse_partition_scheme(scheme) == expected


@pytest.mark.parametrize(
    ("scheme", "message"),
    [
        ("shards", "unknown partition scheme 'shards'"),
        ("iid:2", "unknown partition scheme 'iid:2'"),
        ("dirichlet", "needs an alpha"),
        ("dirichlet:abc", "'abc' is not a number"),
        ("dirichlet:0", "alpha must be a finite number > 0"),
        ("quantity:-1", "alpha must be a finite number > 0"),
        ("dirichlet:inf", "alpha must be a finite number > 0"),
    ],
)
def test_parse_partition_scheme_errors(scheme: str, message: str) -> None:
    # Execute
    with pytest.raises(PartitionError) as info:
        parse_partition_scheme(scheme)

    # Assert
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert "dirichlet:ALPHA" in str(info.value)


@pytest.mark.parametrize(
    ("num_clients", "message"), [(0, "at least 1"), (6, "cannot give 6 clients")]
)
def test_partition_rejects_impossible_client_counts(num_clients: int, message: str) -> None:
    # Execute / Assert
    with pytest.raises(PartitionError, match=message):
        partition(np.zeros(10, dtype=np.int64), num_clients, "iid", seed=0)
