"""`fedchain simulate`: the ServerApp and ClientApp under Flower's simulation engine."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable

import psutil
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedchain.errors import FedchainError
from fedchain.federation.resume import RUN_FILE
from fedchain.federation.round_report import RoundReport
from fedchain.federation.run_artifacts import RunRecord, write_summary
from fedchain.settings import RunSettings, SettingsError
from fedchain.simulation.memory import PeakMemory
from fedchain.simulation.ray_placement import ray_init_args
from fedchain.simulation.stopping import SimulationStopped, StoppableGrid

__all__ = ["SimulationError", "SimulationStopped", "simulate"]

#: Seconds the server gets, once a stop is requested, to finish the round's chain writes.
SERVER_STOP_S = 60.0
#: Seconds Flower then gets to stop its workers and shut Ray down before Ray's processes are
#: ended (a worker can be stuck in a client: a simulated timeout sleeps through the round's; and
#: Ray's shutdown took over 10 s at times after a Ctrl-C had killed its workers).
ENGINE_STOP_S = 6.0
#: Seconds Flower's thread then gets to end, Ray's processes gone, before the stop returns.
KILLED_STOP_S = 3.0
#: Ray's warning when it starts outside the main thread, which is on purpose (see simulate).
_RAY_SIGTERM_WARNING = "SIGTERM handler is not set"


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

    A KeyboardInterrupt (Ctrl-C; ``fedchain simulate`` turns SIGTERM into one) stops the run
    within seconds, resumable (see :mod:`fedchain.simulation.stopping`). Flower's engine runs in
    a thread meanwhile: this thread only waits, so it takes the interrupt at once, and Ray, not
    started from the main thread, leaves the process's SIGTERM handler alone.

    Raises
    ------
    SimulationStopped
        After a KeyboardInterrupt, once the server has ended and Ray is shut down.
    """
    if resume:
        from fedchain.federation.coordinator import check_resume

        if settings.privacy is not None:  # each node counts its DP rounds in its own state
            raise SettingsError(
                f"cannot resume {settings.out}: it is a DP run (--dp), and a resumed node would "
                "restart its count of the rounds it trained, under-reporting its epsilon; start "
                "a new run (a new task) with `fedchain simulate --dp`"
            )
        check_resume(settings)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # Ray's native crash handler takes SIGTERM too: it dumped a stack and aborted (exit 134)
    # instead of a clean stop. Read when Ray is imported, which Flower does on its first run.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    # Flower's log level in Ray's workers (read when they import Flower): their warnings ("Manually
    # terminating ClientAppActor" at every end) reached the terminal; errors still show.
    os.environ.setdefault("FLWR_LOG_LEVEL", "ERROR")
    init_args = ray_init_args(settings.ray_address)  # before Ray's import, which reads its mode
    from flwr.simulation import run_simulation

    from fedchain.client_app import make_client_app
    from fedchain.server_app import make_server_app
    from fedchain.simulation import _dispatch

    # Flower's progress lines and its notice that run_simulation is deprecated (it is still
    # the Python API for simulations) would bury ours; errors still show. After Flower's
    # import, which sets its logger's level to DEBUG.
    logging.getLogger("flwr").setLevel(logging.ERROR)
    _quiet_ray_thread_warning()
    done: list[RunRecord] = []
    errors: list[BaseException] = []
    stop, server_done, finished = threading.Event(), threading.Event(), threading.Event()
    server = _stoppable(make_server_app(settings, on_round, done.append, resume), stop, server_done)
    client = make_client_app(settings)
    _dispatch.install()  # Flower's dispatch scans nodes x messages: see the module

    def engine() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                run_simulation(
                    server_app=server,
                    client_app=client,
                    num_supernodes=settings.num_clients,
                    backend_config={
                        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": init_args,
                    },
                )
        except BaseException as exc:  # also SystemExit: Flower exits on a ServerApp exception
            errors.append(exc)
        finally:
            finished.set()

    with PeakMemory() as memory:
        threading.Thread(target=engine, name="flower-simulation", daemon=True).start()
        try:
            while not finished.wait(0.25):
                pass
        except KeyboardInterrupt:
            ended = _stop(stop, server_done, finished)
            if not done:
                resumable = (settings.out_dir / RUN_FILE).is_file()
                raise SimulationStopped(settings.out_dir, resumable, ended) from None
    return _result(done, errors, memory, settings)


def _result(
    done: list[RunRecord], errors: list[BaseException], memory: PeakMemory, settings: RunSettings
) -> RunRecord:
    if not done:
        error = errors[0] if errors else None
        if isinstance(error, Exception):
            raise error  # the server's own error (Flower re-raised it from its thread)
        raise SimulationError(
            "the simulation stopped before the federation finished: see the log above"
        ) from error
    record = done[0]
    record.peak_rss_bytes = memory.peak.rss_bytes
    record.peak_rss_processes = memory.peak.processes
    write_summary(record, settings.out_dir)  # again, now with the peak of the whole run
    return record


def _stoppable(inner: ServerApp, stop: threading.Event, server_done: threading.Event) -> ServerApp:
    """``inner`` talking to its clients through a :class:`StoppableGrid` that obeys ``stop``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            inner(grid=StoppableGrid(grid, stop), context=context)
        finally:
            server_done.set()

    return app


def _stop(stop: threading.Event, server_done: threading.Event, finished: threading.Event) -> bool:
    """Stop the run: the server ends at its next wait for replies and finishes its chain writes;
    then Flower stops its workers and shuts Ray down, or else Ray's processes are ended.

    Returns whether Flower's thread ended (if not, it is left to end in the background).
    """
    # Ray's processes as they are now: its workers outlive its shutdown by seconds, by then no
    # longer under this process.
    ray_processes = psutil.Process().children(recursive=True)
    # The workers' errors from clients killed by the same Ctrl-C are expected from now on.
    logging.getLogger("flwr").setLevel(logging.CRITICAL)
    stop.set()
    deadline = time.monotonic() + SERVER_STOP_S
    while not (server_done.is_set() or finished.is_set()) and time.monotonic() < deadline:
        server_done.wait(0.1)
    ended = finished.wait(ENGINE_STOP_S)
    if not ended:  # the run is on disk by now: nothing of it runs in Ray's processes
        _end([*ray_processes, *psutil.Process().children(recursive=True)])
        ended = finished.wait(KILLED_STOP_S)
    if server_done.is_set():  # the chain closed (an anvil it started is among these)
        _end(ray_processes)
    return ended


def _end(processes: list[psutil.Process], grace_s: float = 2.0) -> None:
    """SIGTERM ``processes``, then SIGKILL those still there after ``grace_s``."""
    for process in processes:
        _signal(process, terminate=True)
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        _signal(process, terminate=False)


def _signal(process: psutil.Process, terminate: bool) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate() if terminate else process.kill()


class _DropRayThreadWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _RAY_SIGTERM_WARNING not in record.getMessage()


def _quiet_ray_thread_warning() -> None:
    logger = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _DropRayThreadWarning) for f in logger.filters):
        logger.addFilter(_DropRayThreadWarning())
