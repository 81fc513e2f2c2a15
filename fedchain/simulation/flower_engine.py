"""`fedchain simulate`: the ServerApp and ClientApp under Flower's simulation engine."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable

from fedchain.errors import FedchainError
from fedchain.federation.round_report import RoundReport
from fedchain.federation.run_artifacts import RunRecord, write_summary
from fedchain.settings import RunSettings
from fedchain.simulation.memory import PeakMemory

__all__ = ["SimulationError", "simulate"]


class SimulationError(FedchainError, RuntimeError):
    """The simulation ended without a result."""


def simulate(
    settings: RunSettings,
    on_round: Callable[[RoundReport], None] | None = None,
    resume: bool = False,
) -> RunRecord:
    """Run the federation of ``settings.num_clients`` simulated clients; return its record.

    With ``resume``, go on with the run in ``settings.out`` (whose settings these must be, see
    :func:`fedchain.federation.resume.load_run_settings`) from the last round its chain holds;
    whether it can is checked first, before any engine starts or anything is written.

    The record (and summary.json) carries the peak resident memory of the whole process tree,
    server and Ray workers, sampled while the simulation ran.
    """
    if resume:
        from fedchain.federation.coordinator import check_resume

        check_resume(settings)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # Flower's progress lines and its notice that run_simulation is deprecated (it is still
    # the Python API for simulations) would bury ours; errors still show.
    logging.getLogger("flwr").setLevel(logging.ERROR)
    from flwr.simulation import run_simulation

    from fedchain.client_app import make_client_app
    from fedchain.server_app import make_server_app
    from fedchain.simulation import _dispatch

    done: list[RunRecord] = []
    errors: list[BaseException] = []

    def on_done(record: RunRecord) -> None:
        done.append(record)

    server = make_server_app(settings, on_round, on_done, resume)
    _dispatch.install()  # Flower's dispatch scans nodes x messages: see the module
    with warnings.catch_warnings(), PeakMemory() as memory:
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            run_simulation(
                server_app=server,
                client_app=make_client_app(settings),
                num_supernodes=settings.num_clients,
                backend_config={
                    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                    "init_args": {"include_dashboard": False, "logging_level": "ERROR"},
                },
            )
        except SystemExit as exc:  # Flower exits the process on a ServerApp exception
            errors.append(exc)
    if not done:
        raise SimulationError(
            "the simulation stopped before the federation finished: see the log above"
        ) from (errors[0] if errors else None)
    record = done[0]
    record.peak_rss_bytes = memory.peak.rss_bytes
    record.peak_rss_processes = memory.peak.processes
    write_summary(record, settings.out_dir)  # again, now with the peak of the whole run
    return record
