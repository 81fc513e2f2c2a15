"""The task spec: what is trained, how, and on which data; its SHA-256 goes on chain.

The canonical form is compact JSON with sorted keys (ASCII), and ``task.json`` holds exactly
those bytes, so ``sha256sum task.json`` is the hash the ledger recorded at ``createTask``.

A spec names its data by content, never by a path: a CSV file by its SHA-256 (``data_hash``,
with the file's name for display), the columns read from it and the class names its labels were
mapped from; the holdout by the hash of its arrays. An auditor elsewhere points the audit at
their copy of the file, which must hash to ``data_hash``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from fedchain._version import __version__
from fedchain.errors import FedchainError
from fedchain.privacy import LEGACY_ACCOUNTANT, PrivacyTerms

if TYPE_CHECKING:
    from fedchain.settings import RunSettings

__all__ = [
    "SITES_PARTITION",
    "DataMismatchError",
    "SpecData",
    "TaskSpec",
    "TaskSpecError",
    "decode_names",
    "encode_names",
    "privacy_fields",
]

#: Fields added after the first release, with the value that leaves them out of the canonical
#: form, so the specs (and spec hashes) of tasks that do not use them keep their bytes.
_OPTIONAL_FIELDS: dict[str, object] = {
    "data_hash": "",
    "label_column": "",
    "features": (),
    "classes": (),
    "standardize": "local",
    "feature_mean": (),
    "feature_scale": (),
    "reward_full_gain": 0.0,
    "pre_aggregation": "",
    "dp_epsilon": 0.0,
    "dp_delta": 0.0,
    "dp_clip_norm": 0.0,
    "dp_rounds": 0,
    "dp_accountant": "",
}
#: Spec fields read back from JSON arrays.
_TUPLE_FIELDS = ("input_shape", "features", "classes", "feature_mean", "feature_scale")
#: The partition of a consortium's task: the sites hold the training data, the coordinator the
#: holdout file, so the spec's data is that holdout.
SITES_PARTITION = "sites"


class TaskSpecError(FedchainError, ValueError):
    """A task spec file is missing or malformed."""


class DataMismatchError(TaskSpecError):
    """A data file is not the one the task spec names by its hash."""


class SpecData(TypedDict):
    """The fields of a spec that name its data (see :func:`fedchain.federation.workload`)."""

    dataset: str
    data_hash: str
    label_column: str
    features: tuple[str, ...]
    classes: tuple[str, ...]
    standardize: str
    feature_mean: tuple[float, ...]
    feature_scale: tuple[float, ...]


@dataclass(frozen=True)
class TaskSpec:
    """The canonical description of a federated task.

    ``dataset`` is a built-in dataset's name, or for a CSV file ``csv:NAME`` (the file's name
    only, for display); ``data_hash`` is then the file's SHA-256, ``label_column`` and
    ``features`` the columns read, ``classes`` the label values in class-id order when the labels
    were names (empty when they were class ids already).

    ``standardize`` is how clients standardize tabular features: ``local`` (each on its own
    rows) or ``task``, with ``feature_mean`` and ``feature_scale`` (the holdout's per-feature
    mean and standard deviation, see :mod:`fedchain.ml.preprocess`) under the spec hash.

    ``reward_full_gain`` is the measured gain that earns a round's whole budget (see
    :mod:`fedchain.contribution.rewards`); 0, and absent from the specs of older tasks, pays
    by the rule before issue 15 (the whole budget split over the positive scores).

    ``pre_aggregation`` is the step before the robust rule ``strategy`` (``nnm`` or
    ``bucketing:S``; empty, and absent from the canonical form, without one): how the sites'
    updates are combined is part of what each site consents to.

    ``dp_epsilon``, ``dp_delta`` and ``dp_clip_norm`` are the task's differential-privacy terms
    (:attr:`privacy`) and ``dp_rounds`` the rounds each site's noise is planned over (see
    :mod:`fedchain.ml.privacy`); all 0, and absent from the canonical form, when DP is off.
    ``dp_accountant`` is the accountant of every epsilon (``prv`` or ``rdp``); absent in the
    specs made before it, whose epsilons are RDP's.
    """

    dataset: str
    model: str
    num_classes: int
    input_shape: tuple[int, ...]
    strategy: str
    local_epochs: int
    learning_rate: float
    batch_size: int
    proximal_mu: float
    holdout_hash: str
    holdout_fraction: float
    initial_model_hash: str
    contribution: str = "data-size"
    partition: str = ""
    seed: int = 0
    fedchain_version: str = __version__
    data_hash: str = ""
    label_column: str = ""
    features: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    standardize: str = "local"
    feature_mean: tuple[float, ...] = ()
    feature_scale: tuple[float, ...] = ()
    reward_full_gain: float = 0.0
    pre_aggregation: str = ""
    dp_epsilon: float = 0.0
    dp_delta: float = 0.0
    dp_clip_norm: float = 0.0
    dp_rounds: int = 0
    dp_accountant: str = ""

    def canonical(self) -> bytes:
        """Compact, key-sorted ASCII JSON: the bytes the spec hash is taken over."""
        fields = asdict(self)
        for name, unused in _OPTIONAL_FIELDS.items():
            if fields[name] == unused:
                del fields[name]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")

    @property
    def privacy(self) -> PrivacyTerms | None:
        """The task's differential-privacy terms, or None when it trains without DP."""
        if not self.dp_epsilon:
            return None
        accountant = self.dp_accountant or LEGACY_ACCOUNTANT  # older specs: RDP's epsilons
        return PrivacyTerms(self.dp_epsilon, self.dp_delta, self.dp_clip_norm, accountant)

    @property
    def data_on_sites(self) -> bool:
        """Whether the training data is the sites' own (a consortium): the spec's data file is
        then the coordinator's holdout."""
        return self.partition == SITES_PARTITION

    def training_settings(self, base: RunSettings, data: Path | None = None) -> RunSettings:
        """``base`` with the fields this spec fixes: how the task's rounds are trained, scored
        and so recomputed (an older spec without a partition keeps ``base``'s).

        A spec naming a CSV file by its hash reads it from ``data`` if given, else from the path
        ``base`` names (a run's own settings); check it first with :meth:`check_data`.
        """
        settings = base.with_changes(
            model=self.model,
            strategy=self.strategy,
            local_epochs=self.local_epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            proximal_mu=self.proximal_mu,
            holdout_fraction=self.holdout_fraction,
            partition=self.partition or base.partition,
            seed=self.seed,
            contribution=self.contribution,
            standardize=self.standardize,
            reward_full_gain=self.reward_full_gain,
            pre_aggregation=self.pre_aggregation or base.pre_aggregation,  # older specs: none
            **_privacy_settings(self),
        )
        if self.data_hash:  # the columns read are part of the spec
            settings = settings.with_changes(
                label_column=self.label_column or base.label_column,
                features=encode_names(self.features),
                classes=encode_names(self.classes),
            )
        csv = f"csv:{data}" if data is not None else None
        if self.data_on_sites:
            return settings.with_changes(dataset=self.dataset, holdout=csv or base.holdout)
        if self.data_hash:
            return settings.with_changes(dataset=csv or base.dataset)
        return settings.with_changes(dataset=csv or self.dataset)

    def check_data(self, path: Path) -> None:
        """Check that ``path`` is the data file this spec names by its hash.

        Raises
        ------
        DataMismatchError
            If there is no file at ``path`` or its SHA-256 differs from ``data_hash``.
        """
        name = f"{self.dataset} (SHA-256 {self.data_hash})"
        if not path.is_file():
            raise DataMismatchError(
                f"no data file at {path}: point --data at a copy of the task's data {name}"
            )
        with path.open("rb") as handle:
            actual = "0x" + hashlib.file_digest(handle, "sha256").hexdigest()
        if actual != self.data_hash.lower():
            raise DataMismatchError(
                f"{path} hashes to {actual}, the task spec names {self.data_hash}: it is not "
                f"the task's data {self.dataset}; point --data at the file the task used"
            )

    def spec_hash(self) -> bytes:
        return hashlib.sha256(self.canonical()).digest()

    def save(self, path: Path) -> None:
        """Write exactly the canonical bytes (no trailing newline): ``sha256sum`` of the file
        is the spec hash."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.canonical())

    @classmethod
    def load(cls, path: Path) -> TaskSpec:
        """Read a spec file (also one of an older run, which ends with a newline)."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            for name in _TUPLE_FIELDS:
                if name in data:
                    data[name] = tuple(data[name])
            return cls(**data)
        except FileNotFoundError as exc:
            raise TaskSpecError(f"no task spec at {path}") from exc
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise TaskSpecError(f"{path} is not a fedchain task spec: {exc}") from exc


def privacy_fields(settings: RunSettings) -> dict[str, Any]:
    """The spec fields of ``settings``' DP terms; none when DP is off (older bytes kept)."""
    terms = settings.privacy
    if terms is None:
        return {}
    return {
        "dp_epsilon": terms.epsilon,
        "dp_delta": terms.delta,
        "dp_clip_norm": terms.clip_norm,
        "dp_rounds": settings.dp_planned_rounds,
        "dp_accountant": terms.accountant,
    }


def _privacy_settings(spec: TaskSpec) -> dict[str, Any]:
    """The run settings a spec's DP terms fix (``repr`` keeps each float exact)."""
    if not spec.dp_epsilon:
        return {"dp": "", "dp_rounds": 0}
    return {
        "dp": f"{spec.dp_epsilon!r}:{spec.dp_delta!r}",
        "dp_rounds": spec.dp_rounds,
        "dp_clip_norm": spec.dp_clip_norm,
        "dp_accountant": spec.dp_accountant or LEGACY_ACCOUNTANT,
    }


def encode_names(names: Sequence[str]) -> str:
    """Column or class names as one run-config value: ``a,b,c``, or a JSON array when a name
    would not survive the commas (it holds one, starts with ``[`` or has outer spaces)."""
    plain = all("," not in n and n == n.strip() and not n.startswith("[") for n in names)
    return ",".join(names) if plain else json.dumps(list(names))


def decode_names(text: str) -> tuple[str, ...]:
    """The names :func:`encode_names` wrote (or a user typed as ``a,b,c``); ``""`` is none.

    Raises
    ------
    TaskSpecError
        If a JSON array is malformed or a comma-separated list has an empty name.
    """
    text = text.strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskSpecError(f"{text!r} is not a JSON array of names: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TaskSpecError(f"{text!r} is not a JSON array of names")
        return tuple(names)
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise TaskSpecError(f"{text!r} has an empty name: write names separated by commas, a,b,c")
    return tuple(names)
