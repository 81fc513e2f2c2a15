"""Where a model file was recorded: ``fedchain verify-model`` hashes it and looks the hash up in
the ledger's lineage (a task's initial model, a round's global model, a participant's update)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedchain.audit.lineage import (
    LedgerLineage,
    ModelSighting,
    RoundLineage,
    find_model,
    rebuild_lineage,
)
from fedchain.audit.merkle import attach_merkle_records
from fedchain.audit.sources import AuditError, LedgerSource, read_summary
from fedchain.hashing import ModelFileError, file_hash, load, to_hex
from fedchain.store import run_store

__all__ = ["ModelProvenance", "verify_model"]


@dataclass(frozen=True)
class ModelProvenance:
    """Where a model file was recorded on a ledger."""

    path: Path
    model_hash: str
    readable: bool  # whether the file loads as safetensors
    sightings: tuple[ModelSighting, ...]
    lineage: LedgerLineage

    @property
    def recorded(self) -> bool:
        return bool(self.sightings)

    def round_of(self, sighting: ModelSighting) -> RoundLineage | None:
        task = self.lineage.tasks.get(sighting.task_id)
        return task.rounds.get(sighting.round) if task else None


def verify_model(
    path: Path, source: LedgerSource, run: Path | None = None, store: str = ""
) -> ModelProvenance:
    """Hash a model file (SHA-256 of its bytes) and find where the ledger recorded it.

    With the ``run`` directory, merkle rounds show their participants too (from the records
    the run published, in the run or its content store: ``store``, a folder or fsspec URL,
    default the run's own).

    Raises
    ------
    AuditError
        If ``path`` is not a readable file.
    """
    if not path.is_file():
        raise AuditError(f"no file at {path}: give the model file to verify")
    digest = to_hex(file_hash(path))
    try:
        load(path)
        readable = True
    except ModelFileError:
        readable = False
    lineage = rebuild_lineage(source.gateway)
    if run is not None:
        own = str(read_summary(run).get("settings", {}).get("store", ""))
        attach_merkle_records(lineage, run_store(run, store or own), run)
    return ModelProvenance(path, digest, readable, tuple(find_model(lineage, digest)), lineage)
