"""Session-wide guards: no test hangs for long, and no process a test started outlives the
test session; and the one Ray setting of the session."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from e2e._processes import SESSION_MARKER, describe, kill_processes, leftovers

#: Every Ray the tests start (in process, or under `fedchain simulate`, which inherits the
#: environment) sees one CPU, so a simulation runs its clients in one Ray actor: each actor
#: spends about 8 s of CPU importing torch, Flower and fedchain, and a second one on this
#: 2-core machine made a 3-client run cost 37 s of CPU instead of 28 s for the same wall
#: time, with two test workers and the consortium test competing for the cores. A test of
#: Ray's own placement sets its resources itself (tests/e2e/_ray_cluster.py: one CPU a node);
#: `flwr run` asks two CPUs a client, so its test takes the variable out.
os.environ["RAY_OVERRIDE_RESOURCES"] = '{"CPU": 1}'

#: How long processes that are being stopped get to exit before they count as left behind.
_GRACE_S = 15.0

#: The per-test timeout of a test marked ``slow`` (a real federation or a long run), whose
#: module fixture may run one: the longest took 134 s on a 2-core machine at load 13. Every
#: other test has pyproject.toml's ``timeout`` (300 s). Either way a hang ends in minutes.
SLOW_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each ``slow`` test without a timeout of its own the longer :data:`SLOW_TIMEOUT_S`."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session, and kill them, if SuperLinks, SuperNodes, anvil or Ray processes that
    its tests started are still running at its end (after every other fixture's teardown)."""
    marker = uuid.uuid4().hex
    os.environ[SESSION_MARKER] = marker
    existed = {process.pid for process in psutil.process_iter()}
    roots = [tmp_path_factory.getbasetemp()]
    yield
    deadline = time.monotonic() + _GRACE_S
    left = leftovers(marker, roots, existed)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftovers(marker, roots, existed)
    if left:
        listed = describe(left)
        kill_processes(left)
        pytest.fail(
            f"{len(left)} processes started by the tests were still running when the session "
            f"ended; they are killed now. The test that started them must stop them "
            f"(tests/e2e/_processes.py: Started.stop):\n{listed}",
            pytrace=False,
        )


def _byzfl_names() -> list[str]:
    return [n for n in sys.modules if n == "byzfl" or n.startswith("byzfl.")]


@pytest.fixture(scope="module")
def byzfl_reference() -> Iterator[Callable[[str], Any]]:
    """Loads byzfl's modules (the robust rules' and attacks' test reference) without running
    byzfl/__init__.py, which imports torchvision; sys.modules is restored afterwards, so that no
    stub of a module leaks into the next test module of the worker."""
    saved = {name: sys.modules.pop(name) for name in _byzfl_names()}
    spec = importlib.util.find_spec("byzfl")
    missing = (
        "byzfl is the test reference of the robust rules and attacks: install it with "
        "`.venv/bin/pip install --no-deps byzfl==0.0.11` (`make setup` does)"
    )
    assert spec is not None, missing
    assert spec.submodule_search_locations, missing
    package = types.ModuleType("byzfl")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["byzfl"] = package
    try:
        yield importlib.import_module
    finally:
        for name in _byzfl_names():
            del sys.modules[name]
        sys.modules.update(saved)
