"""The task spec: what is trained, how, and on which holdout; its SHA-256 goes on chain.

The canonical form is compact JSON with sorted keys (ASCII), so anyone holding the spec file can
recompute the hash the ledger recorded at ``createTask``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain._version import __version__
from fedchain.errors import FedchainError

if TYPE_CHECKING:
    from fedchain.settings import RunSettings

__all__ = ["TaskSpec", "TaskSpecError"]


class TaskSpecError(FedchainError, ValueError):
    """A task spec file is missing or malformed."""


@dataclass(frozen=True)
class TaskSpec:
    """The canonical description of a federated task."""

    dataset: str
    model: str
    num_classes: int
    input_shape: tuple[int, ...]
    strategy: str
    local_epochs: int
    learning_rate: float
    batch_size: int
    proximal_mu: float
    holdout_hash: str
    holdout_fraction: float
    initial_model_hash: str
    contribution: str = "data-size"
    partition: str = ""
    seed: int = 0
    fedchain_version: str = __version__

    def canonical(self) -> bytes:
        """Compact, key-sorted ASCII JSON: the bytes the spec hash is taken over."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode("ascii")

    def training_settings(self, base: RunSettings) -> RunSettings:
        """``base`` with the fields this spec fixes: how the task's rounds are trained, scored
        and so recomputed (an older spec without a partition keeps ``base``'s)."""
        return base.with_changes(
            dataset=self.dataset,
            model=self.model,
            strategy=self.strategy,
            local_epochs=self.local_epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            proximal_mu=self.proximal_mu,
            holdout_fraction=self.holdout_fraction,
            partition=self.partition or base.partition,
            seed=self.seed,
            contribution=self.contribution,
        )

    def spec_hash(self) -> bytes:
        return hashlib.sha256(self.canonical()).digest()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.canonical() + b"\n")

    @classmethod
    def load(cls, path: Path) -> TaskSpec:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            data["input_shape"] = tuple(data["input_shape"])
            return cls(**data)
        except FileNotFoundError as exc:
            raise TaskSpecError(f"no task spec at {path}") from exc
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise TaskSpecError(f"{path} is not a fedchain task spec: {exc}") from exc
