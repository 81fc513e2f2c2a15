"""The per-test timeout (pytest-timeout, [tool.pytest.ini_options] and tests/conftest.py): a hang
fails within minutes, with every thread's stack, instead of holding the suite for CI's 90."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SLOW_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]

#: A test whose thread hangs while the main thread waits for it, as the suite's OpenBLAS hang
#: did; its own mark cuts the wait to two seconds.
_HANGING = """
import threading, time
import pytest

def spin():
    while True:
        time.sleep(0.01)

@pytest.mark.timeout(2)
def test_hangs():
    worker = threading.Thread(target=spin, name="spinning-worker")
    worker.start()
    worker.join()
"""


def test_every_test_has_a_timeout_by_default(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("timeout") is None
    assert float(request.config.getini("timeout")) == 300
    assert request.config.getini("timeout_method") == "thread"


@pytest.mark.slow
def test_a_slow_test_gets_the_longer_timeout(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None
    assert marker.args == (SLOW_TIMEOUT_S,)


def test_a_hang_fails_with_the_stack_of_every_thread(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "test_hang.py").write_text(_HANGING)
    began = time.monotonic()
    # Execute: with this project's pytest settings
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "-p",
         "no:cacheprovider", str(tmp_path / "test_hang.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Assert
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert time.monotonic() - began < 60
    assert "Timeout" in output
    assert "spinning-worker" in output  # the hung thread's stack is shown
    assert "in spin" in output
