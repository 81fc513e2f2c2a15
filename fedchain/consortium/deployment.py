"""A consortium on Flower's deployment engine: the coordinator's task, the run config of that
task, and the SuperLink, SuperNode and ``flwr`` commands fedchain wraps.

The coordinator creates and funds a task on chain (:func:`create_task`) and writes its Flower
run config (:func:`write_run_config`): the ServerApp reads the chain settings from it and uses
that task instead of creating one. Each hospital runs a SuperNode whose node config names its
own CSV file and keystore (:func:`node_config`); those paths stay in the node config, on the
hospital's machine, and never enter the run config every SuperNode sees. The step-by-step is
docs/consortium.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tomllib
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.records import TaskId, TaskTerms, privacy_task_terms
from fedchain.errors import FedchainError
from fedchain.federation.coordinator_paths import (
    COORDINATOR_DIR_ENV,
    COORDINATOR_FIELDS,
    coordinator_file,
    with_coordinator_paths,
)
from fedchain.record_keys import NODE_DATA_PATH, NODE_KEYSTORE, NODE_RPC_URL
from fedchain.settings import RunSettings, SettingsError, config_key
from fedchain.task import TaskSpec

if TYPE_CHECKING:
    from fedchain.chain.gateway import LedgerGateway

__all__ = [
    "CONNECTION",
    "COORDINATOR_DIR_ENV",
    "COORDINATOR_FIELDS",
    "DEFAULT_SUPERLINK_ADDRESS",
    "DEFAULT_SUPERLINK_PORT",
    "ConsortiumError",
    "CreatedTask",
    "app_dir",
    "coordinator_file",
    "create_task",
    "flower_env",
    "flwr_command",
    "node_config",
    "org_hash",
    "private_directory",
    "public_settings",
    "read_run_config",
    "settings_from_spec",
    "superlink_command",
    "supernode_command",
    "token_amount",
    "with_coordinator_paths",
    "write_connection",
    "write_coordinator_file",
    "write_run_config",
]

#: The SuperLink connection fedchain writes into the Flower configuration ($FLWR_HOME).
CONNECTION = "fedchain"
#: Flower's own default: the SuperLink serves its Fleet, Control and Runtime APIs on one port.
DEFAULT_SUPERLINK_PORT = 8000
DEFAULT_SUPERLINK_ADDRESS = f"127.0.0.1:{DEFAULT_SUPERLINK_PORT}"


class ConsortiumError(FedchainError, ValueError):
    """A consortium command cannot proceed: a file is missing or a value is unusable."""


@dataclass(frozen=True)
class CreatedTask:
    """A task created and funded on chain, with the run settings that reproduce its spec."""

    task_id: TaskId
    spec: TaskSpec
    settings: RunSettings
    funded: int


def org_hash(name: str) -> bytes:
    """The organisation metadata hash recorded with a participant: SHA-256 of its name."""
    if not name.strip():
        raise ConsortiumError("--org must name the organisation, e.g. --org 'Hospital A'")
    return hashlib.sha256(name.strip().encode("utf-8")).digest()


def token_amount(text: str, decimals: int) -> int:
    """A token amount given in whole tokens (``"1000"``, ``"0.5"``) in the token's base units."""
    try:
        value = Decimal(text) * (Decimal(10) ** decimals)
    except InvalidOperation:
        raise ConsortiumError(f"{text!r} is not an amount of tokens, e.g. 1000 or 0.5") from None
    if value < 0 or value != value.to_integral_value():
        raise ConsortiumError(
            f"{text} tokens is not a whole number of base units (the token has {decimals} decimals)"
        )
    return int(value)


def settings_from_spec(spec: TaskSpec, base: RunSettings) -> RunSettings:
    """Run settings whose task spec is ``spec`` (with ``base``'s holdout and chain settings).

    Raises
    ------
    ConsortiumError
        When the settings cannot reproduce the spec: another holdout file, another fedchain
        version, a changed initial model. The message lists the fields that differ.
    """
    from fedchain.federation.coordinator import task_spec

    settings = spec.training_settings(base)
    rebuilt = task_spec(settings)
    differ = [
        f"{f.name} (spec {getattr(spec, f.name)!r}, here {getattr(rebuilt, f.name)!r})"
        for f in fields(TaskSpec)
        if getattr(spec, f.name) != getattr(rebuilt, f.name)
    ]
    if differ:
        raise ConsortiumError(
            "this spec cannot be reproduced here: " + "; ".join(differ) + ". Check the "
            "--holdout file and the fedchain version, or create the task from options"
        )
    return settings


def create_task(
    gateway: LedgerGateway,
    settings: RunSettings,
    *,
    fund: int,
    token: str | None = None,
    terms: TaskTerms | None = None,
) -> CreatedTask:
    """Create the task ``settings`` describe (the signer becomes its coordinator), fund it with
    ``fund`` base units of ``token`` (default: the deployment's dev token). ``terms``: its
    minimum round duration, challenge and claim periods (default: the contract's); the privacy
    cap always comes from the spec's DP terms."""
    from fedchain.federation.coordinator import task_spec

    spec = task_spec(settings)
    initial = bytes.fromhex(spec.initial_model_hash.removeprefix("0x"))
    private = privacy_task_terms(spec.privacy)  # the privacy cap, with DP terms
    if terms is not None:
        terms = replace(terms, epsilon_cap=private.epsilon_cap if private else 0)
    else:
        terms = private
    task_id, _ = gateway.create_task(
        spec.spec_hash(), initial, settings.reward_per_round, token, terms=terms
    )
    if fund:
        gateway.fund_task(task_id, fund)
    return CreatedTask(task_id, spec, settings.with_changes(task_id=int(task_id)), fund)


def write_run_config(path: Path, settings: RunSettings, header: str = "") -> None:
    """Write ``settings`` as a Flower run config file (TOML), for ``flwr run --run-config``.

    Refuses to overwrite: a task's run config is how its run finds it.
    """
    if path.exists():
        raise ConsortiumError(f"{path} exists: choose another --out, a run config is never lost")
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in settings.to_run_config().items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def read_run_config(path: Path) -> RunSettings:
    """The settings of a run config file written by :func:`write_run_config`."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConsortiumError(
            f"no run config at {path}: `fedchain task create` writes it (--out)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConsortiumError(f"{path} is not a TOML run config: {exc}") from exc
    try:
        settings = RunSettings.from_run_config(data)
    except SettingsError as exc:
        raise ConsortiumError(f"{path}: {exc}") from exc
    if not settings.task_id:
        raise ConsortiumError(
            f"{path} names no task (task-id): create one with `fedchain task create`"
        )
    return settings


def public_settings(settings: RunSettings) -> RunSettings:
    """``settings`` without the coordinator's paths: what the run config may hold."""
    return settings.with_changes(**dict.fromkeys(COORDINATOR_FIELDS, ""))


def write_coordinator_file(directory: Path, settings: RunSettings) -> Path:
    """Write the coordinator's paths of ``settings``' task (mode 600, directory 700)."""
    path = coordinator_file(directory, settings.task_id)
    if path.exists():
        raise ConsortiumError(f"{path} exists: a task's coordinator file is never overwritten")
    private_directory(directory)
    values = {config_key(name): getattr(settings, name) for name in COORDINATOR_FIELDS}
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    import json

    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def node_config(
    data: Path, keystore: Path, rpc_url: str | None = None, policy: Path | None = None
) -> str:
    """A hospital SuperNode's ``--node-config``: its CSV file, its keystore, its own chain node
    and its consent policy (:mod:`fedchain.federation.consent_policy`).

    Absolute paths, so the ClientApp finds them whatever its working directory.
    """
    from fedchain.federation.consent_policy import NODE_CONSENT_POLICY

    entries = {
        NODE_DATA_PATH: str(data.resolve()),
        NODE_KEYSTORE: str(keystore.resolve()),
    }
    if policy is not None:
        entries[NODE_CONSENT_POLICY] = str(policy.resolve())
    if rpc_url:
        entries[NODE_RPC_URL] = rpc_url
    for key, value in entries.items():
        if '"' in value or "\\" in value:
            raise ConsortiumError(f"{key} {value!r} holds a quote or backslash: rename it")
    return " ".join(f'{key}="{value}"' for key, value in entries.items())


def _executable(name: str) -> str:
    """A Flower command from fedchain's own environment (it runs fedchain's apps)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ConsortiumError(f"no `{name}` command: install fedchain's dependencies (make setup)")
    return found


def flower_env(password_file: Path | None = None) -> dict[str, str]:
    """The environment of a Flower process: this Python's scripts first on PATH (the SuperLink
    and SuperNode start ``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp`` by
    name) and, when given, the *path* of the file (mode 600) holding the keystore password the
    ServerApp or ClientApp decrypts with; the password itself is never in the environment."""
    from fedchain.chain.accounts import PASSWORD_ENV, PASSWORD_FILE_ENV

    env = dict(os.environ)
    env.pop(PASSWORD_ENV, None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if password_file is not None:
        env[PASSWORD_FILE_ENV] = str(password_file.resolve())
    return env


def _need(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise ConsortiumError(f"no {path}: {hint}")
    return path.resolve()


def superlink_command(
    certs: Path,
    host: str,
    port: int,
    database: Path | None = None,
    signatures: Path = Path(".fedchain/app-signatures"),
) -> list[str]:
    """fedchain's SuperLink (:mod:`fedchain.consortium.superlink`: ``flower-superlink`` with its
    control plane kept local and the coordinator's bundle signatures) with TLS and SuperNode
    authentication switched on; its database private (600, in a directory of 700).

    Runtime dependency installation is off: the ServerApp runs in this environment, and a
    SuperLink never downloads packages a run asks for.
    """
    from fedchain.consortium.certs import CA_CERT, SUPERLINK_CERT, SUPERLINK_KEY

    hint = f"create the consortium's certificates with `fedchain certs ca {certs}`"
    command = [
        sys.executable,
        "-m",
        "fedchain.consortium.superlink",
        "--app-signatures",
        str(signatures.resolve()),
        "--ssl-ca-certfile",
        str(_need(certs / CA_CERT, hint)),
        "--ssl-certfile",
        str(_need(certs / SUPERLINK_CERT, hint)),
        "--ssl-keyfile",
        str(_need(certs / SUPERLINK_KEY, hint)),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if database is not None:
        private_directory(database.parent)
        descriptor = os.open(database, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(descriptor)
        database.chmod(0o600)
        command += ["--database", str(database.resolve())]
    return command


def private_directory(path: Path) -> Path:
    """``path`` created (or tightened) mode 700, resolved."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path.resolve()


def supernode_command(
    superlink: str,
    ca: Path,
    node_key: Path,
    config: str,
    runtime_port: int,
    *,
    trusted_entities: Path | None = None,
) -> list[str]:
    """``flower-supernode`` over TLS (verifying the SuperLink against the consortium's CA),
    authenticated by its node key, with the hospital's node config; with ``trusted_entities``
    it runs only bundles signed by a key the hospital pinned (Flower's own verification)."""
    command = [
        _executable("flower-supernode"),
        "--superlink",
        superlink,
        "--root-certificates",
        str(_need(ca, "copy the consortium's ca.crt from the coordinator")),
        "--auth-supernode-private-key",
        str(_need(node_key, "create the SuperNode's key with `fedchain certs node-key`")),
        "--node-config",
        config,
        "--port",
        str(runtime_port),
    ]
    if trusted_entities is not None:
        command += ["--trusted-entities", str(trusted_entities.resolve())]
    return command


def write_connection(address: str, ca: Path) -> None:
    """Add (or update) the ``fedchain`` SuperLink connection of the Flower configuration
    (``$FLWR_HOME/config.toml``, by default ``~/.flwr``), which ``flwr`` commands name."""
    from flwr.cli.flower_config import write_superlink_connection
    from flwr.cli.typing import SuperLinkConnection

    ca_path = _need(ca, "copy the consortium's ca.crt from the coordinator")
    connection = SuperLinkConnection(
        CONNECTION, address=address, root_certificates=str(ca_path), insecure=False
    )
    write_superlink_connection(connection)


def flwr_command(*args: str) -> list[str]:
    """A ``flwr`` CLI command from this environment."""
    return [_executable("flwr"), *args]


def app_dir() -> Path:
    """The fedchain Flower App: the checkout whose pyproject.toml holds ``[tool.flwr.app]``."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or "[tool.flwr.app]" not in pyproject.read_text():
        raise ConsortiumError(
            f"no Flower App at {root}: run from a fedchain checkout or pass --app PATH"
        )
    return root
