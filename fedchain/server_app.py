"""Flower ServerApp: its main runs the federation with the ledger (federation.coordinator)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedchain.federation.coordinator import run_federation
from fedchain.federation.round_report import RoundReport
from fedchain.federation.run_artifacts import RunRecord
from fedchain.settings import RunSettings

__all__ = ["app", "make_server_app"]


def make_server_app(
    settings: RunSettings | None = None,
    on_round: Callable[[RoundReport], None] | None = None,
    on_done: Callable[[RunRecord], None] | None = None,
    resume: bool = False,
) -> ServerApp:
    """A ServerApp with fixed ``settings``, or (None) reading them from the run config; with
    ``resume`` it goes on with the run in ``settings.out``
    (see :mod:`fedchain.federation.resume`)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        record = run_federation(grid, settings or _run_settings(context), on_round, resume)
        if on_done is not None:
            on_done(record)

    return server


def _run_settings(context: Context) -> RunSettings:
    """The run config's settings; a consortium task's with the coordinator's paths, which its
    run config (sent to every SuperNode) does not hold (see ``fedchain server start``)."""
    from fedchain.federation.coordinator_paths import COORDINATOR_DIR_ENV, with_coordinator_paths

    settings = RunSettings.from_run_config(context.run_config)
    directory = os.environ.get(COORDINATOR_DIR_ENV)
    if settings.task_id and directory:
        return with_coordinator_paths(settings, Path(directory))
    return settings


#: The app `flwr run .` loads (settings from [tool.flwr.app.config]).
app = make_server_app()
