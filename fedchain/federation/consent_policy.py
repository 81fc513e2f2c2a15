"""A hospital's consent policy: the tasks its node agreed to train for, and the check of each round.

``fedchain task join`` signs the hospital's consent to a task on chain and records the task here,
in a file of the hospital's node directory (mode 600): the chain, the ledger, the task id and
the very spec consented to. The hospital's ClientApp (:mod:`fedchain.federation.participant`)
refuses, before it reads any data: a message that names no task, a task not in this policy, a
run whose training settings are not the ones that spec fixes, a task whose spec hash on chain is
not the policy's, and any round from the one its membership ended (``fedchain task leave``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fedchain.errors import FedchainError
from fedchain.settings import RunSettings
from fedchain.task import TaskSpec, TaskSpecError, encode_names, privacy_fields

__all__ = [
    "NODE_CONSENT_POLICY",
    "POLICY_FILE",
    "ConsentEntry",
    "ConsentPolicy",
    "ConsentRefusedError",
    "ConsentView",
    "check_chain",
    "check_settings",
    "node_directory",
    "record_consent",
    "withdraw_consent",
]

#: The node-config key naming the policy file (set by ``fedchain client``).
NODE_CONSENT_POLICY = "consent-policy"
#: The policy's file name in a node directory.
POLICY_FILE = "consent-policy.json"
_VERSION = 1
#: The spec's differential-privacy terms (absent from a spec without DP).
_PRIVACY_FIELDS = ("dp_epsilon", "dp_delta", "dp_clip_norm", "dp_rounds")


class ConsentRefusedError(FedchainError, PermissionError):
    """A round this hospital did not consent to: it is refused before any data is read."""


@dataclass(frozen=True)
class ConsentEntry:
    """One task consented to: where it lives, who consented, and the spec agreed to."""

    chain_id: int
    ledger: str
    task_id: int
    participant: str
    spec: TaskSpec

    @property
    def spec_hash(self) -> bytes:
        return self.spec.spec_hash()

    def key(self) -> tuple[int, str, int]:
        return (self.chain_id, self.ledger.lower(), self.task_id)


@dataclass(frozen=True)
class ConsentPolicy:
    """The tasks a hospital's node trains for (empty: none)."""

    entries: tuple[ConsentEntry, ...] = ()

    def entry(self, chain_id: int, ledger: str, task_id: int) -> ConsentEntry | None:
        key = (chain_id, ledger.lower(), task_id)
        return next((e for e in self.entries if e.key() == key), None)

    @classmethod
    def load(cls, path: Path) -> ConsentPolicy:
        """The policy in ``path``; an absent file is the empty policy (nothing consented)."""
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
            entries = tuple(_entry(e) for e in data["tasks"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, TaskSpecError) as exc:
            raise ConsentRefusedError(
                f"{path} is not a consent policy ({exc}): join the task again with "
                "`fedchain task join`"
            ) from None
        return cls(entries)

    def save(self, path: Path) -> None:
        """Write the policy (mode 600, its directory 700), replacing the file atomically."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tasks = [
            {
                "chain_id": e.chain_id,
                "ledger": e.ledger,
                "task_id": e.task_id,
                "participant": e.participant,
                "spec_hash": "0x" + e.spec_hash.hex(),
                "spec": json.loads(e.spec.canonical()),
            }
            for e in self.entries
        ]
        text = json.dumps({"version": _VERSION, "tasks": tasks}, indent=2) + "\n"
        temporary = path.with_name(path.name + ".tmp")
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        temporary.replace(path)


def _entry(data: Mapping[str, Any]) -> ConsentEntry:
    spec_data = dict(data["spec"])
    for name in ("input_shape", "features", "classes", "feature_mean", "feature_scale"):
        if name in spec_data:
            spec_data[name] = tuple(spec_data[name])
    spec = TaskSpec(**spec_data)
    if "0x" + spec.spec_hash().hex() != str(data["spec_hash"]).lower():
        raise TaskSpecError(f"the spec of task {data['task_id']} does not hash to its spec_hash")
    return ConsentEntry(
        int(data["chain_id"]),
        str(data["ledger"]),
        int(data["task_id"]),
        str(data["participant"]),
        spec,
    )


def node_directory(keystore: Path, given: Path | None = None) -> Path:
    """A hospital's node directory: ``given``, else ``.fedchain/<keystore's name>``."""
    return given if given is not None else Path(".fedchain") / keystore.stem


def record_consent(path: Path, entry: ConsentEntry) -> None:
    """Add (or replace) ``entry`` in the policy at ``path``."""
    policy = ConsentPolicy.load(path)
    kept = tuple(e for e in policy.entries if e.key() != entry.key())
    ConsentPolicy((*kept, entry)).save(path)


def withdraw_consent(path: Path, chain_id: int, ledger: str, task_id: int) -> bool:
    """Remove the task from the policy at ``path``; whether it was there."""
    policy = ConsentPolicy.load(path)
    kept = tuple(e for e in policy.entries if e.key() != (chain_id, ledger.lower(), task_id))
    if len(kept) == len(policy.entries):
        return False
    ConsentPolicy(kept).save(path)
    return True


def check_settings(
    entry: ConsentEntry, settings: RunSettings, num_classes: int | None, proximal_mu: float
) -> None:
    """Refuse a run whose training settings are not the ones the consented spec fixes.

    Raises
    ------
    ConsentRefusedError
        Listing every setting that differs from the spec.
    """
    from fedchain.federation.workload import model_name

    spec = entry.spec
    expected: dict[str, tuple[object, object]] = {
        "model": (spec.model, model_name(settings, spec.input_shape)),
        "strategy": (spec.strategy, settings.strategy),
        "local-epochs": (spec.local_epochs, settings.local_epochs),
        "learning-rate": (spec.learning_rate, settings.learning_rate),
        "batch-size": (spec.batch_size, settings.batch_size),
        "proximal-mu": (spec.proximal_mu, proximal_mu),
        "seed": (spec.seed, settings.seed),
        "standardize": (spec.standardize, settings.standardize),
    }
    if num_classes is not None:
        expected["num-classes"] = (spec.num_classes, num_classes)
    if spec.data_hash:  # the columns read are part of the spec
        expected["label-column"] = (spec.label_column, settings.label_column)
        expected["features"] = (encode_names(spec.features), settings.features)
        expected["classes"] = (encode_names(spec.classes), settings.classes)
    spec_privacy = {name: getattr(spec, name) for name in _PRIVACY_FIELDS if spec.dp_epsilon}
    if spec.privacy is not None:  # an older spec's absent accountant is RDP
        spec_privacy["dp_accountant"] = spec.privacy.accountant
    expected["dp"] = (spec_privacy, privacy_fields(settings))  # the noise it consented to
    differ = [f"{k} (spec {a!r}, run {b!r})" for k, (a, b) in expected.items() if a != b]
    if spec.standardize == "task" and not _same_statistics(spec, settings.standardize_stats):
        differ.append("standardize-stats (not the spec's feature mean and scale)")
    if differ:
        raise ConsentRefusedError(
            f"refused: the run's settings are not those of task {entry.task_id}'s spec "
            f"0x{entry.spec_hash.hex()} consented to: " + "; ".join(differ)
        )


def _same_statistics(spec: TaskSpec, stats: str) -> bool:
    from fedchain.ml.preprocess import Standardizer

    if not stats:
        return False
    given = Standardizer.from_json(stats)
    return given.same_as(Standardizer.from_values(spec.feature_mean, spec.feature_scale))


class ConsentView(Protocol):
    """The chain reads the check needs (a :class:`fedchain.chain.gateway.LedgerGateway`)."""

    def task(self, task_id: Any) -> Any: ...

    def membership(self, task_id: Any, address: str) -> Any: ...


def check_chain(entry: ConsentEntry, chain: ConsentView, round_id: int) -> None:
    """Refuse when the chain's spec hash of the task is not the consented one, or when this
    hospital is not a member of the task for ``round_id`` (it never joined, or it left)."""
    on_chain = bytes(chain.task(entry.task_id).spec_hash)
    if on_chain != entry.spec_hash:
        raise ConsentRefusedError(
            f"refused: task {entry.task_id}'s spec hash on chain is 0x{on_chain.hex()}, this "
            f"node consented to 0x{entry.spec_hash.hex()}"
        )
    membership = chain.membership(entry.task_id, entry.participant)
    if not membership.eligible(round_id):
        if membership.left_round:
            why = f"it left the task from round {membership.left_round}"
        else:
            why = f"its membership starts at round {membership.joined_round}"
        if not membership.joined:
            why = "it never joined the task on chain (`fedchain task join`)"
        raise ConsentRefusedError(
            f"refused: round {round_id} of task {entry.task_id}: {entry.participant} is not a "
            f"member, {why}"
        )
