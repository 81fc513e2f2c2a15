"""The coordinator's paths of a consortium task, kept out of the run config.

The run config of a task goes to every SuperNode; the coordinator's keystore, holdout,
deployment file and artifact directory are paths on its own machine, so ``fedchain task create``
writes them to a private file (mode 600) of its own, and the ServerApp, started by ``fedchain
server start`` (which names the directory in ``FEDCHAIN_COORDINATOR_DIR``), adds them back.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from fedchain.errors import FedchainError
from fedchain.settings import RunSettings, config_key

__all__ = [
    "COORDINATOR_DIR_ENV",
    "COORDINATOR_FIELDS",
    "CoordinatorFileError",
    "coordinator_file",
    "with_coordinator_paths",
]

#: The settings that are paths on the coordinator's machine (its keystore, holdout, deployment
#: file, artifacts and store): kept in its private task file, never in the run config every
#: SuperNode receives.
COORDINATOR_FIELDS = ("keystore", "holdout", "deployment", "out", "store")
#: Where the ServerApp finds the coordinator's private task files (set by `fedchain server
#: start`).
COORDINATOR_DIR_ENV = "FEDCHAIN_COORDINATOR_DIR"


class CoordinatorFileError(FedchainError, FileNotFoundError):
    """The coordinator's private file of a task is missing."""


def coordinator_file(directory: Path, task_id: int) -> Path:
    """The coordinator's private file of task ``task_id`` in ``directory``."""
    return directory / f"task-{task_id}.toml"


def with_coordinator_paths(settings: RunSettings, directory: Path) -> RunSettings:
    """``settings`` (from a run config) with the coordinator's paths of its task."""
    path = coordinator_file(directory, settings.task_id)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CoordinatorFileError(
            f"no coordinator file of task {settings.task_id} at {path}: run `fedchain server "
            "start` and `fedchain server run` where `fedchain task create` ran"
        ) from None
    known = {config_key(name): name for name in COORDINATOR_FIELDS}
    return settings.with_changes(**{known[k]: str(v) for k, v in data.items() if k in known})
