"""The chain-write queue: in order, off the caller's thread, stopping at the first failure."""

from __future__ import annotations

import threading

import pytest

from fedchain.chain.queue import WriteQueue


def test_writes_run_in_submission_order_on_one_background_thread() -> None:
    # Prepare
    queue, seen, threads = WriteQueue(), [], set()

    def write(i: int) -> int:
        seen.append(i)
        threads.add(threading.current_thread().name)
        return i * i

    # Execute
    futures = [queue.submit(lambda i=i: write(i)) for i in range(20)]
    queue.flush()
    # Assert
    assert seen == list(range(20))
    assert [f.result() for f in futures] == [i * i for i in range(20)]
    assert len(threads) == 1
    assert threading.current_thread().name not in threads
    queue.close()


def test_the_first_failure_stops_the_queue_and_is_raised() -> None:
    # Prepare
    queue, seen = WriteQueue(), []

    def boom() -> None:
        raise ValueError("revert")

    # Execute
    queue.submit(lambda: seen.append(1))
    failed = queue.submit(boom)
    skipped = queue.submit(lambda: seen.append(3))
    # Assert
    with pytest.raises(ValueError, match="revert"):
        queue.flush()
    with pytest.raises(RuntimeError, match="skipped"):
        skipped.result()
    assert isinstance(failed.exception(), ValueError)
    assert seen == [1]
    with pytest.raises(ValueError, match="revert"):
        queue.submit(lambda: None)  # nothing more is accepted
    queue.close()
