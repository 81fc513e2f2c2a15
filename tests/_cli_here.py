"""`fedchain` commands run in the test's process, through the console entry point.

For tests of what a command says and does before anything starts (bad options, no run where one
is needed): a subprocess per case would import torch, Flower and web3 again, seconds each, for
the same code path. Commands that start a federation, a chain or a signal handler run as
subprocesses in their own tests.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from fedchain.cli import main
from fedchain.cli._common import console, err_console


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def _wide() -> Iterator[None]:
    """The CLI's consoles 200 columns wide, as ``COLUMNS=200`` makes them in a subprocess (under
    xdist they were 80 wide whatever ``COLUMNS`` said when they printed)."""
    saved = [(c, c._width) for c in (console, err_console)]
    for c, _ in saved:
        c.width = 200
    try:
        yield
    finally:
        for c, width in saved:
            c._width = width


def fedchain_here(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``fedchain ARGS`` as the console script does; its exit code and output.

    Rich's consoles write to ``sys.stdout``/``sys.stderr`` as they are when they print: both
    are redirected here.
    """
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(mock.patch.dict(os.environ, {"COLUMNS": "200", **(env or {})}))
        stack.enter_context(_argv(["fedchain", *args]))
        stack.enter_context(_wide())
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(["fedchain", *args], code, out.getvalue(), err.getvalue())
