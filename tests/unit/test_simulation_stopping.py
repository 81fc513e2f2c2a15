"""StoppableGrid: the server's wait for replies ends as soon as a stop is requested."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from flwr.serverapp import Grid

from fedchain.simulation.stopping import SimulationStopped, StoppableGrid, StopRequested


class _FakeGrid(Grid):
    """Replies to message ``i`` once ``delays[i]`` seconds passed (never for None)."""

    def __init__(self, delays: list[float | None], on_pull: Any = None) -> None:
        self.delays, self.on_pull, self.pushed = delays, on_pull, 0
        self.started = time.monotonic()

    def set_run(self, run: Any) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Any:
        raise NotImplementedError

    def create_message(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [2, 3]

    def push_messages(self, messages: Iterable[Any]) -> Iterable[str]:
        ids = [str(i) for i, _ in enumerate(messages)]
        self.pushed += len(ids)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Any]:
        if self.on_pull is not None:
            self.on_pull()
        elapsed = time.monotonic() - self.started
        return [
            SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i))
            for i in message_ids
            if (delay := self.delays[int(i)]) is not None and delay <= elapsed
        ]

    def send_and_receive(self, messages: Iterable[Any], *, timeout: float | None = None) -> Any:
        raise NotImplementedError


def _ids(replies: Iterable[Any]) -> list[str]:
    return sorted(r.metadata.reply_to_message_id for r in replies)


def test_without_a_stop_it_returns_every_reply() -> None:
    grid = StoppableGrid(_FakeGrid([0.0, 0.2]), threading.Event())
    assert _ids(grid.send_and_receive(["a", "b"])) == ["0", "1"]


def test_the_timeout_still_ends_the_wait_with_the_replies_that_came() -> None:
    grid = StoppableGrid(_FakeGrid([0.0, None]), threading.Event())
    began = time.monotonic()
    replies = grid.send_and_receive(["a", "b"], timeout=0.3)
    assert _ids(replies) == ["0"]
    assert 0.3 <= time.monotonic() - began < 2


def test_a_stop_ends_a_wait_that_has_no_timeout_at_once() -> None:
    # Prepare: one client never answers (its worker died with the Ctrl-C); no round timeout
    stop = threading.Event()
    grid = StoppableGrid(_FakeGrid([0.0, None]), stop)
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    # Execute / Assert
    with pytest.raises(StopRequested):
        grid.send_and_receive(["a", "b"])
    assert time.monotonic() - began < 1.5


def test_replies_that_arrive_with_the_stop_are_not_returned() -> None:
    """A round being stopped is not aggregated: its error replies must not fail it on chain."""
    stop = threading.Event()
    grid = StoppableGrid(_FakeGrid([0.0, 0.0], on_pull=stop.set), stop)
    with pytest.raises(StopRequested):
        grid.send_and_receive(["a", "b"])


def test_once_stopped_nothing_more_is_sent() -> None:
    stop = threading.Event()
    stop.set()
    inner = _FakeGrid([0.0])
    grid = StoppableGrid(inner, stop)
    with pytest.raises(StopRequested):
        grid.send_and_receive(["a"])
    with pytest.raises(StopRequested):
        grid.get_node_ids()
    assert inner.pushed == 0


def test_the_stopped_error_says_how_to_go_on(tmp_path: Any) -> None:
    assert f"fedchain simulate --resume {tmp_path}" in str(SimulationStopped(tmp_path, True))
    assert "nothing to resume" in str(SimulationStopped(tmp_path, False))
