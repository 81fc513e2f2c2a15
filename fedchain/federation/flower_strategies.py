"""The Flower strategies fedchain wraps, chosen by name, their parameters set from the settings."""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import (
    Bulyan,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Krum,
    MultiKrum,
    Strategy,
)

from fedchain.robust import byzantine_count, check_tolerance, sampled_count, trim_fraction
from fedchain.settings import RunSettings, SettingsError

__all__ = ["build_strategy"]


def build_strategy(settings: RunSettings, num_nodes: int) -> Strategy:
    """The Flower strategy named by ``settings.strategy``.

    Clients evaluate nothing: the server evaluates every global model on the task's holdout, so
    federated evaluation is switched off (``fraction_evaluate=0``). The robust rules get their
    attacker count ``f`` from :func:`byzantine_count`: Krum, MultiKrum and Bulyan as
    ``num_malicious_nodes`` (MultiKrum keeps ``n - f`` updates), FedTrimmedAvg as
    ``beta`` (``f`` updates cut off each tail: :func:`trim_fraction`).

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
        return Krum(**common, num_malicious_nodes=malicious)
    if name == "multikrum":
        return MultiKrum(
            **common, num_malicious_nodes=malicious, num_nodes_to_select=sampled - malicious
        )
    if name == "bulyan":
        return Bulyan(**common, num_malicious_nodes=malicious)
    raise SettingsError(f"unknown strategy {name!r}")
