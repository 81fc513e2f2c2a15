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

from fedchain.settings import RunSettings, SettingsError

__all__ = ["build_strategy"]


def build_strategy(settings: RunSettings, num_nodes: int) -> Strategy:
    """The Flower strategy named by ``settings.strategy``.

    Clients evaluate nothing: the server evaluates every global model on the task's holdout, so
    federated evaluation is switched off (``fraction_evaluate=0``).
    """
    sampled = max(settings.min_train_nodes, int(num_nodes * settings.fraction_train))
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
        return FedTrimmedAvg(**common)
    if name == "krum":
        return Krum(**common, num_malicious_nodes=_malicious(sampled))
    if name == "multikrum":
        malicious = _malicious(sampled)
        return MultiKrum(
            **common, num_malicious_nodes=malicious, num_nodes_to_select=sampled - malicious
        )
    if name == "bulyan":
        return Bulyan(**common, num_malicious_nodes=_malicious(sampled, bulyan=True))
    raise SettingsError(f"unknown strategy {name!r}")


def _malicious(sampled: int, bulyan: bool = False) -> int:
    """The most attackers the rule tolerates for this many sampled clients.

    Krum needs n > 2f + 2, Bulyan n >= 4f + 3.
    """
    if bulyan:
        return max(0, (sampled - 3) // 4)
    return max(0, (sampled - 3) // 2)
