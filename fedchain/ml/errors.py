"""Errors raised by :mod:`fedchain.ml`.

Each derives from :class:`fedchain.errors.FedchainError` and from the builtin a caller would
naturally catch (``ValueError`` for bad input, ``FileNotFoundError`` for a missing file).
"""

from fedchain.errors import FedchainError

__all__ = [
    "DatasetError",
    "DatasetFileNotFoundError",
    "ModelError",
    "PartitionError",
    "TrainingError",
    "WeightsMismatchError",
]


class DatasetError(FedchainError, ValueError):
    """A dataset spec, file or array cannot be used."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file does not exist."""


class PartitionError(FedchainError, ValueError):
    """A partition scheme is malformed or cannot split the given labels."""


class ModelError(FedchainError, ValueError):
    """A model name is unknown or does not fit the data's shape."""


class WeightsMismatchError(FedchainError, ValueError):
    """Weights do not match a model's parameter names or shapes."""


class TrainingError(FedchainError, ValueError):
    """Training or evaluation was called with unusable data or hyper-parameters."""
