"""The Flower strategies fedchain wraps, chosen by name, their parameters set from the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.serverapp.strategy import (
    Bulyan,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Strategy,
)

from fedchain.federation.messages import Weights
from fedchain.federation.robust_strategies import (
    RobustAggregation,
    SelectingKrum,
    SelectingMultiKrum,
)
from fedchain.robust import (
    byzantine_count,
    check_tolerance,
    parse_pre_aggregation,
    sampled_count,
    trim_fraction,
)
from fedchain.settings import RunSettings, SettingsError

__all__ = ["HoldoutUpdate", "build_strategy", "server_seed"]


def server_seed(task_seed: int, server_round: int) -> int:
    """The seed of the server's own training in a round (FLTrust): the clients' formula
    (:func:`fedchain.federation.participant._seed`) with partition ``-1``, so it is no client's
    seed."""
    return task_seed * 1_000_003 + server_round * 1_009 - 1


@dataclass(frozen=True)
class HoldoutUpdate:
    """FLTrust's root-data update: the parent trained as a client trains (the same learning
    rate, epochs and batch size), with :func:`server_seed`, on ``size`` examples of the task's
    holdout (the server's own data, which it also evaluates on), drawn without replacement with
    that seed; all of it when ``size`` is 0 or larger than the holdout."""

    settings: RunSettings

    def __call__(
        self, parent: Mapping[str, np.ndarray[Any, Any]], server_round: int, size: int = 0
    ) -> Weights:
        from fedchain.federation.workload import holdout, train_locally

        data = holdout(self.settings).data
        seed = server_seed(self.settings.seed, server_round)
        if 0 < size < len(data):
            chosen = np.random.default_rng(seed).choice(len(data), size=size, replace=False)
            data = data.subset(np.sort(chosen))
        return train_locally(self.settings, data, parent, seed=seed)[0]


def build_strategy(settings: RunSettings, num_nodes: int) -> Strategy:
    """The Flower strategy named by ``settings.strategy``.

    Clients evaluate nothing: the server evaluates every global model on the task's holdout, so
    federated evaluation is switched off (``fraction_evaluate=0``). The robust rules get their
    attacker count ``f`` from :func:`byzantine_count`: Krum, MultiKrum and Bulyan as
    ``num_malicious_nodes`` (MultiKrum keeps ``n - f`` updates), FedTrimmedAvg as
    ``beta`` (``f`` updates cut off each tail: :func:`trim_fraction`). Krum and MultiKrum also
    say which updates they kept (``last_update_weights``).

    ``cclip`` and ``fltrust``, and any rule with ``settings.pre_aggregation``, are
    :class:`~fedchain.federation.robust_strategies.RobustAggregation`: it needs ``prime`` before
    each round's aggregation, which the ledger wrapper calls.

    Raises
    ------
    SettingsError
        For an unknown strategy, or a robust one that cannot tolerate ``f`` attackers.
    """
    check_tolerance(settings, num_nodes)
    sampled = sampled_count(settings, num_nodes)
    malicious = byzantine_count(settings, sampled)
    common: dict[str, Any] = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": 0.0,
        "min_train_nodes": min(settings.min_train_nodes, num_nodes),
        "min_available_nodes": min(settings.min_train_nodes, num_nodes),
    }
    name = settings.strategy
    pre = parse_pre_aggregation(settings.pre_aggregation)
    if name in ("cclip", "fltrust") or pre is not None:
        return RobustAggregation(
            name,
            byzantine=malicious,
            pre_aggregation=pre,
            task_seed=settings.seed,
            server_update=HoldoutUpdate(settings) if name == "fltrust" else None,
            **common,
        )
    if name == "fedavg":
        return FedAvg(**common)
    if name == "fedprox":
        return FedProx(**common, proximal_mu=settings.proximal_mu)
    if name == "fedadam":
        return FedAdam(**common)
    if name == "fedmedian":
        return FedMedian(**common)
    if name == "fedtrimmedavg":
        return FedTrimmedAvg(**common, beta=trim_fraction(malicious, sampled))
    if name == "krum":
        return SelectingKrum(**common, num_malicious_nodes=malicious)
    if name == "multikrum":
        return SelectingMultiKrum(
            **common, num_malicious_nodes=malicious, num_nodes_to_select=sampled - malicious
        )
    if name == "bulyan":
        return Bulyan(**common, num_malicious_nodes=malicious)
    raise SettingsError(f"unknown strategy {name!r}")
