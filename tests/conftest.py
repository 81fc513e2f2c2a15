"""Session-wide guards: no test hangs for long, and no process a test started outlives the
test session."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from e2e._processes import SESSION_MARKER, describe, kill_processes, leftovers

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
