"""Flower messages as both sides build and read them: named numpy arrays <-> ArrayRecord.

The client and the server (and an auditor recomputing a round) share these, so neither imports
the other's module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedchain.record_keys import METRIC_NUM_EXAMPLES, RECORD_ARRAYS, RECORD_METRICS

__all__ = ["Weights", "arrays_to_numpy", "numpy_to_arrays", "reply_message", "train_reply"]

Weights = dict[str, np.ndarray[Any, Any]]


def arrays_to_numpy(arrays: ArrayRecord) -> Weights:
    """An ArrayRecord as named numpy arrays (in the record's order)."""
    return {name: array.numpy() for name, array in arrays.items()}


def numpy_to_arrays(weights: Mapping[str, np.ndarray[Any, Any]]) -> ArrayRecord:
    """Named numpy arrays as an ArrayRecord."""
    from flwr.app import Array

    return ArrayRecord({name: Array(np.ascontiguousarray(w)) for name, w in weights.items()})


def reply_message(content: RecordDict, node_id: int = 1) -> Message:
    """A train reply built outside a running Flower app (audits recompute rounds with these)."""
    from flwr.supercore.task_identity import TaskIdentity

    try:
        TaskIdentity.run_id  # noqa: B018 - raises when no Flower app set the identity
    except RuntimeError:
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    instruction = Message(RecordDict(), dst_node_id=node_id, message_type="train")
    return Message(content, reply_to=instruction)


def train_reply(arrays: ArrayRecord, num_examples: int) -> Message:
    """A train reply as the server receives it: an update and its number of examples."""
    metrics = MetricRecord({METRIC_NUM_EXAMPLES: int(num_examples)})
    return reply_message(RecordDict({RECORD_ARRAYS: arrays, RECORD_METRICS: metrics}))
