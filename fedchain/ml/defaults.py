"""Per-dataset training defaults, shared by the tests, the simulation and the Flower apps.

They were tuned with FedAvg over 10 clients, ``dirichlet:0.5`` label skew and 10 rounds, each
client preprocessing with its own statistics (see :mod:`fedchain.ml.preprocess`):

* breast-cancer: ``logreg`` was the most stable across seeds (final holdout accuracy 0.90 to 0.97
  over 20 seeds, mean 0.945, 8 of them at 0.95 or more; the ``mlp`` ranged 0.70 to 0.99).
  Centralized training reaches 0.97 to 0.98. The spread comes from local standardization under
  label skew (see :mod:`fedchain.ml.preprocess`), not from these hyper-parameters: SGD without
  momentum, Adam, other learning rates and batch sizes all kept the mean between 0.93 and 0.95.
  One local epoch of batch 8 gives a client of about 45 examples a few steps a round.
* digits: the ``cnn`` with two local epochs reached 0.958 to 0.986 over 10 seeds.
* csv: a site's own table gets the tabular defaults of breast-cancer.
* synthetic: a generated table, so the tabular defaults too.

``fedchain simulate`` takes its defaults from :class:`fedchain.settings.RunSettings` (``auto``
model, lr 0.05, batch 16, one local epoch), not from here; docs/simulation.md (Feature
standardization) measures them per seed with each party's own statistics and with the task's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fedchain.ml.data import BREAST_CANCER, DIGITS, SYNTHETIC, DatasetSpec, parse_dataset_spec
from fedchain.ml.models import CNN, LOGREG

__all__ = [
    "BREAST_CANCER_DEFAULTS",
    "DATASET_DEFAULTS",
    "DEFAULT_DATASET",
    "DIGITS_DEFAULTS",
    "TABULAR_DEFAULTS",
    "TrainingDefaults",
    "training_defaults",
]

DEFAULT_DATASET = BREAST_CANCER


@dataclass(frozen=True)
class TrainingDefaults:
    """Model and local-training hyper-parameters for one dataset.

    Attributes
    ----------
    model
        Model name for :func:`fedchain.ml.build_model`.
    lr
        SGD learning rate (momentum is :data:`fedchain.ml.training.MOMENTUM`).
    batch_size
        Mini-batch size.
    local_epochs
        Passes over the local data per round.
    """

    model: str
    lr: float
    batch_size: int
    local_epochs: int


BREAST_CANCER_DEFAULTS = TrainingDefaults(model=LOGREG, lr=0.1, batch_size=8, local_epochs=1)
DIGITS_DEFAULTS = TrainingDefaults(model=CNN, lr=0.05, batch_size=16, local_epochs=2)
TABULAR_DEFAULTS = BREAST_CANCER_DEFAULTS

DATASET_DEFAULTS: Mapping[str, TrainingDefaults] = MappingProxyType(
    {
        BREAST_CANCER: BREAST_CANCER_DEFAULTS,
        DIGITS: DIGITS_DEFAULTS,
        SYNTHETIC: TABULAR_DEFAULTS,
        "csv": TABULAR_DEFAULTS,
    }
)


def training_defaults(spec: str | DatasetSpec) -> TrainingDefaults:
    """Defaults for a dataset spec: ``breast-cancer``, ``digits``, ``synthetic``, ``csv:PATH``.

    Raises
    ------
    DatasetError
        For an unknown dataset spec.
    """
    parsed = spec if isinstance(spec, DatasetSpec) else parse_dataset_spec(spec)
    return DATASET_DEFAULTS[parsed.kind]
