"""Scoped control of torch's intra-op threads and of BLAS threads (nothing is set at import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

from fedchain.ml.errors import TrainingError

__all__ = ["blas_threads", "torch_threads"]


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
    _check_count(num_threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def blas_threads(num_threads: int) -> Iterator[None]:
    """Run a block with at most ``num_threads`` threads in every BLAS library loaded (numpy's
    and scipy's OpenBLAS), then restore the previous counts.

    With one thread, OpenBLAS computes in the calling thread and never hands work to its thread
    pool. Use ``blas_threads(1)`` around numpy work that may run in a thread other than the
    one that forks: OpenBLAS shuts its pool down in a ``pthread_atfork`` handler, run by the
    forking thread, and a BLAS call in flight on another thread then waits forever, at 100 %
    CPU in ``exec_blas``, for a job the stopped worker dropped. Flower runs the ServerApp in a
    thread while Ray forks its processes from the main one. The counts are process-wide.

    Raises
    ------
    TrainingError
        If ``num_threads`` is less than 1.
    """
    _check_count(num_threads)
    with threadpool_limits(limits=num_threads, user_api="blas"):
        yield


def _check_count(num_threads: int) -> None:
    if num_threads < 1:
        raise TrainingError(f"num_threads must be at least 1, got {num_threads}")
