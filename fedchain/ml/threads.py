"""Scoped control of torch's intra-op thread count (nothing is set at import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from fedchain.ml.errors import TrainingError

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run a block with ``num_threads`` torch intra-op threads, then restore the previous count.

    The models here are tiny, so their per-batch operations gain nothing from intra-op threads
    and lose a lot when cores are shared: two FedAvg rounds on digits took 2.4 s with one thread
    and 12.3 s with two on a busy 2-core machine. Use ``torch_threads(1)`` around training when
    several clients run in one machine. The count is process-wide, so do not nest this across
    threads. Results are bitwise reproducible for a fixed thread count.

    Raises
    ------
    TrainingError
        If ``num_threads`` is less than 1.
    """
    if num_threads < 1:
        raise TrainingError(f"num_threads must be at least 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
