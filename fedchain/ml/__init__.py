"""Pure PyTorch + numpy machine learning of fedchain: datasets, partitions, models, training.

Nothing here imports Flower or the chain layer, so it can be used and tested on its own.
"""

from fedchain.ml.data import (
    BREAST_CANCER,
    CSV_PREFIX,
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_LABEL_COLUMN,
    DIGITS,
    SYNTHETIC,
    Dataset,
    DatasetSpec,
    dataset_hash,
    load_breast_cancer,
    load_csv,
    load_dataset,
    load_digits,
    load_synthetic,
    parse_dataset_spec,
    split_holdout,
)
from fedchain.ml.defaults import (
    BREAST_CANCER_DEFAULTS,
    DATASET_DEFAULTS,
    DEFAULT_DATASET,
    DIGITS_DEFAULTS,
    TABULAR_DEFAULTS,
    TrainingDefaults,
    training_defaults,
)
from fedchain.ml.errors import (
    DatasetError,
    DatasetFileNotFoundError,
    ModelError,
    PartitionError,
    TrainingError,
    WeightsMismatchError,
)
from fedchain.ml.models import CNN, LOGREG, MLP, MODEL_NAMES, build_model
from fedchain.ml.partition import (
    DEFAULT_PARTITION,
    MIN_CLIENT_SAMPLES,
    PartitionScheme,
    parse_partition_scheme,
    partition,
)
from fedchain.ml.preprocess import (
    PIXEL_MAX,
    STD_FLOOR,
    Standardizer,
    preprocess_local,
    scale_pixels,
)
from fedchain.ml.threads import torch_threads
from fedchain.ml.training import MOMENTUM, EvalResult, TrainResult, evaluate, train
from fedchain.ml.weights import Weights, get_weights, set_weights

__all__ = [
    "BREAST_CANCER",
    "BREAST_CANCER_DEFAULTS",
    "CNN",
    "CSV_PREFIX",
    "DATASET_DEFAULTS",
    "DEFAULT_DATASET",
    "DEFAULT_HOLDOUT_FRACTION",
    "DEFAULT_LABEL_COLUMN",
    "DEFAULT_PARTITION",
    "DIGITS",
    "DIGITS_DEFAULTS",
    "LOGREG",
    "MIN_CLIENT_SAMPLES",
    "MLP",
    "MODEL_NAMES",
    "MOMENTUM",
    "PIXEL_MAX",
    "STD_FLOOR",
    "SYNTHETIC",
    "TABULAR_DEFAULTS",
    "Dataset",
    "DatasetError",
    "DatasetFileNotFoundError",
    "DatasetSpec",
    "EvalResult",
    "ModelError",
    "PartitionError",
    "PartitionScheme",
    "Standardizer",
    "TrainResult",
    "TrainingDefaults",
    "TrainingError",
    "Weights",
    "WeightsMismatchError",
    "build_model",
    "dataset_hash",
    "evaluate",
    "get_weights",
    "load_breast_cancer",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_synthetic",
    "parse_dataset_spec",
    "parse_partition_scheme",
    "partition",
    "preprocess_local",
    "scale_pixels",
    "set_weights",
    "split_holdout",
    "torch_threads",
    "train",
    "training_defaults",
]
