"""Run settings: one frozen value, its defaults, and the kebab-case keys of the Flower run config.

The same settings reach the apps two ways: ``fedchain simulate`` builds them from its options,
and ``flwr run .`` reads them from ``[tool.flwr.app.config]`` in pyproject.toml (a test checks
that both carry the same defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from fedchain.errors import SettingsError
from fedchain.privacy import PrivacyError, PrivacyTerms, parse_dp

__all__ = [
    "CHAIN_KINDS",
    "COMMIT_MODES",
    "CONTRIBUTION_METHODS",
    "OPTION_FIELDS",
    "STANDARDIZE_MODES",
    "STRATEGY_NAMES",
    "RunSettings",
    "SettingsError",
    "config_key",
]

CHAIN_KINDS = ("embedded", "anvil", "rpc", "none")
#: How a round is committed: relayed signatures checked on chain, or one Merkle root per round.
COMMIT_MODES = ("relayed", "merkle")
CONTRIBUTION_METHODS = ("data-size", "loo", "shapley", "gtg", "cosine")
#: How tabular features are standardized: each party with its own statistics, or everyone with
#: the task's (its holdout's, recorded in the spec); see fedchain.ml.preprocess.
STANDARDIZE_MODES = ("local", "task")
STRATEGY_NAMES = (
    "fedavg",
    "fedprox",
    "fedadam",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
    "multikrum",
    "bulyan",
    "cclip",
    "fltrust",
)


#: ``fedchain simulate``'s options (and ``fedchain.simulate``'s keywords) named otherwise than
#: the RunSettings fields they set; every other option has its field's name.
OPTION_FIELDS = {
    "clients": "num_clients",
    "rounds": "num_rounds",
    "lr": "learning_rate",
    "fraction": "fraction_train",
}


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs to know; the field ``num_rounds`` is ``num-server-rounds``."""

    num_rounds: int = 10
    num_clients: int = 10
    dataset: str = "breast-cancer"
    partition: str = "dirichlet:0.5"
    model: str = "auto"
    strategy: str = "fltrust"
    local_epochs: int = 1
    learning_rate: float = 0.05
    batch_size: int = 16
    proximal_mu: float = 0.0
    fraction_train: float = 1.0
    min_train_nodes: int = 2
    seed: int = 0
    chain: str = "embedded"
    rpc_url: str = ""
    deployment: str = ""
    direct: bool = False
    reward_per_round: int = 1000 * 10**18
    # The measured gain (holdout loss) that earns a round's whole budget; 0: the whole budget is
    # split over the positive scores (fedchain.contribution.rewards).
    reward_full_gain: float = 0.01
    contribution: str = "loo"
    attack: str = ""
    byzantine: int = -1
    # A step before the robust rule: "" (none), "nnm" or "bucketing:S" (fedchain.robust).
    pre_aggregation: str = ""
    out: str = "runs/latest"
    # The content store: "" = <out>/store, or a folder or any fsspec URL (s3://bucket/prefix;
    # fedchain.storage); credentials never here, they come from the environment.
    store: str = ""
    holdout_fraction: float = 0.2
    label_column: str = "label"
    # CSV columns read as features ("" = every other numeric one) and the task's class names
    # (set by `fedchain task create` for the sites); see fedchain.task.encode_names.
    features: str = ""
    classes: str = ""
    dropout: float = 0.0
    round_timeout: float = 3600.0
    commit_mode: str = "relayed"
    # Deployment engine (docs/consortium.md): an existing task, the coordinator's keystore and
    # holdout file, all on the coordinator's machine. 0 / "" keep the simulation's behaviour.
    task_id: int = 0
    keystore: str = ""
    holdout: str = ""
    # "local" or "task" (STANDARDIZE_MODES); the task's statistics as JSON for sites that do not
    # hold the holdout ("" = rebuilt from the holdout), written by `fedchain task create`.
    standardize: str = "task"
    standardize_stats: str = ""
    # Differential privacy (fedchain.privacy, docs/privacy.md): "" (off) or EPSILON[:DELTA], the
    # cap each site's epsilon may reach over the task; the rounds its noise is planned over
    # (0: num-server-rounds; fewer makes a site stop, its budget spent, after that many); the
    # per-example gradient norm clipped to; Opacus' accountant ("prv" or "rdp").
    dp: str = ""
    dp_rounds: int = 0
    dp_clip_norm: float = 1.0
    dp_accountant: str = "prv"
    # Simulation only: HOST:PORT of an existing Ray cluster's head to run the clients on; ""
    # starts a Ray of the run's own on loopback (fedchain.simulation.ray_placement).
    ray_address: str = ""

    def __post_init__(self) -> None:
        checks = [
            (self.num_rounds >= 1, "num-server-rounds must be >= 1"),
            (self.num_clients >= 2, "num-clients must be >= 2"),
            (self.local_epochs >= 1, "local-epochs must be >= 1"),
            (self.learning_rate > 0, "learning-rate must be > 0"),
            (self.batch_size >= 1, "batch-size must be >= 1"),
            (self.proximal_mu >= 0, "proximal-mu must be >= 0"),
            (0 < self.fraction_train <= 1, "fraction-train must lie in (0, 1]"),
            (self.min_train_nodes >= 1, "min-train-nodes must be >= 1"),
            (self.chain in CHAIN_KINDS, f"chain must be one of {', '.join(CHAIN_KINDS)}"),
            (self.chain != "rpc" or bool(self.rpc_url), "chain rpc needs an rpc-url"),
            (
                self.strategy in STRATEGY_NAMES,
                f"strategy must be one of {', '.join(STRATEGY_NAMES)}",
            ),
            (self.reward_per_round >= 0, "reward-per-round must be >= 0"),
            (self.reward_full_gain >= 0, "reward-full-gain must be >= 0 (0: split the budget)"),
            (
                self.contribution in CONTRIBUTION_METHODS,
                f"contribution must be one of {', '.join(CONTRIBUTION_METHODS)}",
            ),
            (0 < self.holdout_fraction < 1, "holdout-fraction must lie in (0, 1)"),
            (0 <= self.dropout < 1, "dropout must lie in [0, 1)"),
            (self.round_timeout > 0, "round-timeout must be > 0 seconds"),
            (
                self.commit_mode in COMMIT_MODES,
                f"commit-mode must be one of {', '.join(COMMIT_MODES)}",
            ),
            (self.task_id >= 0, "task-id must be >= 0 (0 creates a new task)"),
            (
                self.task_id == 0 or self.chain == "rpc",
                "task-id names a task on a running chain: set chain = rpc and its rpc-url",
            ),
            (self.byzantine >= -1, "byzantine must be >= 0, or -1 to derive it from the attack"),
            (
                self.standardize in STANDARDIZE_MODES,
                f"standardize must be one of {', '.join(STANDARDIZE_MODES)}",
            ),
        ]
        checks.append((self.dp_rounds >= 0, "dp-rounds must be >= 0 (0: num-server-rounds)"))
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        _ = self.privacy  # raises SettingsError on a bad dp or dp-clip-norm
        from fedchain.attacks import parse_attack

        parse_attack(self.attack)  # raises AttackError (a ValueError) on a bad spec
        from fedchain.robust import check_tolerance

        check_tolerance(self)  # the robust strategy tolerates byzantine attackers

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def privacy(self) -> PrivacyTerms | None:
        """The differential-privacy terms, or None when DP is off (``dp`` empty).

        Raises
        ------
        SettingsError
            If ``dp`` is not ``EPSILON[:DELTA]`` in range or ``dp-clip-norm`` is not positive.
        """
        if not self.dp:
            return None
        try:
            return parse_dp(self.dp, clip_norm=self.dp_clip_norm, accountant=self.dp_accountant)
        except PrivacyError as error:
            raise SettingsError(str(error)) from None

    @property
    def dp_planned_rounds(self) -> int:
        """The rounds each site's DP noise is planned over: ``dp-rounds``, else every round."""
        return self.dp_rounds or self.num_rounds

    @property
    def ledger_enabled(self) -> bool:
        return self.chain != "none"

    def with_changes(self, **changes: Any) -> RunSettings:
        return replace(self, **changes)

    def to_run_config(self) -> dict[str, Any]:
        """The settings as a Flower run config (kebab-case keys; big ints as strings)."""
        config: dict[str, Any] = {}
        for name, value in asdict(self).items():
            key = config_key(name)
            config[key] = str(value) if name == "reward_per_round" else value
        return config

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> RunSettings:
        """Settings from a Flower run config; missing keys keep their defaults."""
        values: dict[str, Any] = {}
        known = {config_key(f.name): f for f in fields(cls)}
        for key, raw in config.items():
            field = known.get(key)
            if field is None:
                continue
            default = getattr(cls(), field.name)
            values[field.name] = _coerce(key, raw, type(default))
        return cls(**values)


def config_key(name: str) -> str:
    """The run-config key of the RunSettings field ``name`` (kebab-case; ``num-server-rounds``)."""
    return "num-server-rounds" if name == "num_rounds" else name.replace("_", "-")


def _coerce(key: str, raw: Any, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, str):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                return raw.lower() in ("true", "1")
            return bool(raw)
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"run config {key}={raw!r} is not a {kind.__name__}") from exc
