"""Reaching a ledger again to audit it: a run directory's chain (the saved embedded chain
re-executed, the saved anvil state restarted, or a node), a deployment file, or a node and a
ledger address; and what to say when a saved chain does not re-execute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import (
    AnvilChain,
    ChainBackend,
    EmbeddedChain,
    JournalMismatch,
    RpcChain,
)
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.lineage_reads import block_height, chain_id, has_code, raw_transaction_calls
from fedchain.errors import FedchainError
from fedchain.settings import RunSettings
from fedchain.task import TaskSpec, TaskSpecError

__all__ = [
    "ANVIL_STATE_FILE",
    "AuditError",
    "LedgerSource",
    "OpenedRun",
    "journal_context",
    "journal_round",
    "open_ledger",
    "open_run",
    "read_summary",
]

#: Where ``simulate --chain anvil`` keeps the anvil's state, relative to the run directory.
ANVIL_STATE_FILE = Path("chain") / "anvil-state.json"
_ZERO_ADDRESS = "0x" + "00" * 20


class AuditError(FedchainError, ValueError):
    """A run or a ledger cannot be audited as given (missing files, a chain that is gone)."""


@dataclass
class LedgerSource:
    """A ledger reachable again: its chain, a read-only gateway, and what the run says of it."""

    backend: ChainBackend
    gateway: LedgerGateway
    description: str
    out: Path | None = None
    summary: dict[str, Any] | None = None

    def close(self) -> None:
        self.backend.close()


@dataclass
class OpenedRun:
    """A run directory with its chain reachable again."""

    out: Path
    backend: ChainBackend
    gateway: LedgerGateway
    spec: TaskSpec
    settings: RunSettings
    task_id: int

    def close(self) -> None:
        self.backend.close()


def read_summary(out: Path) -> dict[str, Any]:
    """A run directory's ``summary.json``.

    Raises
    ------
    AuditError
        If there is none, or it is not JSON.
    """
    path = out / "summary.json"
    if not path.exists():
        raise AuditError(f"no run at {out}: expected summary.json there (see `fedchain simulate`)")
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
        return summary
    except json.JSONDecodeError as exc:
        raise AuditError(f"{path} is not JSON ({exc}): rerun the simulation") from exc


def _open_run_chain(
    out: Path, summary: dict[str, Any], rpc_url: str | None, resume: bool
) -> tuple[ChainBackend, str]:
    kind = summary["chain"]["kind"]
    if kind == "none":
        raise AuditError(f"the run at {out} had no ledger (--chain none): nothing to verify")
    if rpc_url:
        return RpcChain(rpc_url), f"the node at {rpc_url}"
    if kind == "embedded":
        chain = EmbeddedChain.replay(out / "chain", resume=resume)
        blocks = block_height(chain)
        return chain, f"{out / 'chain'}: {blocks} blocks re-executed, every block hash matches"
    if kind == "anvil":
        state = out / ANVIL_STATE_FILE
        if not state.is_file():
            raise AuditError(
                f"the anvil chain of the run at {out} was not saved ({state} is missing): pass "
                "--rpc-url of a node that holds it"
            )
        # Read-only commands load the state without dumping it back; a claim keeps its change.
        node = AnvilChain(state_file=state, save_state=resume).start()
        return node, f"anvil restarted from {state}"
    if summary["chain"].get("rpc_url"):
        url = str(summary["chain"]["rpc_url"])
        return RpcChain(url), f"the node at {url}"
    raise AuditError(f"the {kind} chain of the run at {out} is unknown: pass --rpc-url")


def _read_gateway(backend: ChainBackend, deployment: Deployment) -> LedgerGateway:
    # Reads need no key; DEVNET TEST key 0 only signs if a claim is made with it.
    try:
        return LedgerGateway(backend.w3, deployment, devnet_account(0))
    except Exception:
        backend.close()
        raise


def open_run(out: Path, rpc_url: str | None = None, resume: bool = False) -> OpenedRun:
    """Reopen a run's chain: the saved embedded chain re-executed, the saved anvil state
    restarted, or the node at ``rpc_url``. With ``resume``, what is sent to it is kept."""
    summary = read_summary(out)
    backend, _ = _open_run_chain(out, summary, rpc_url, resume)
    gateway = _read_gateway(backend, Deployment.load(out / "deployment.json"))
    try:
        spec = TaskSpec.load(out / "task.json")
    except TaskSpecError:
        backend.close()
        raise
    return OpenedRun(
        out=out,
        backend=backend,
        gateway=gateway,
        spec=spec,
        settings=RunSettings.from_run_config(summary["settings"]),
        task_id=int(summary["task_id"]),
    )


def open_ledger(
    *,
    run: Path | None = None,
    rpc_url: str | None = None,
    ledger: str | None = None,
    deployment: Path | None = None,
) -> LedgerSource:
    """Reach a ledger: a run's chain (``run``), a deployment file, or ``rpc_url`` + ``ledger``.

    Raises
    ------
    AuditError
        If the arguments name no ledger, or too many.
    fedchain.chain.backends.JournalMismatch
        If a run's saved embedded chain does not re-execute to its recorded block hashes.
    """
    if run is not None and (ledger or deployment):
        raise AuditError("give --run, or --ledger/--deployment, not both")
    if run is not None:
        summary = read_summary(run)
        backend, description = _open_run_chain(run, summary, rpc_url, resume=False)
        gateway = _read_gateway(backend, Deployment.load(run / "deployment.json"))
        return LedgerSource(backend, gateway, description, run, summary)
    if deployment is not None:
        dep = Deployment.load(deployment)
        url = rpc_url or dep.rpc_url
        if not url:
            raise AuditError(f"{deployment} names no node: pass --rpc-url")
        if ledger and ledger.lower() != dep.ledger.lower():
            raise AuditError(f"--ledger {ledger} is not the ledger of {deployment} ({dep.ledger})")
        backend = RpcChain(url)
        return LedgerSource(backend, _read_gateway(backend, dep), f"the node at {url}")
    if not ledger or not rpc_url:
        raise AuditError(
            "name a ledger: --run DIR, --deployment FILE, or --rpc-url URL --ledger ADDR"
        )
    backend = RpcChain(rpc_url)
    if not has_code(backend, ledger):
        backend.close()
        raise AuditError(f"no contract at {ledger} on the node at {rpc_url}: check --ledger")
    dep = Deployment(chain_id(backend), ledger, _ZERO_ADDRESS, 0, _ZERO_ADDRESS, rpc_url)
    return LedgerSource(backend, _read_gateway(backend, dep), f"the node at {rpc_url}")


# ---------------------------------------------------------------------- a saved chain altered


def _journal_call(exc: JournalMismatch) -> tuple[str, dict[str, Any]] | None:
    """The ledger function and arguments of the journal's failing transaction, if it decodes."""
    calls = raw_transaction_calls(exc.tx)
    return calls[0] if calls else None  # a commit batched with the next round's opening: the commit


def journal_round(exc: JournalMismatch) -> int | None:
    """The round of the saved chain's transaction that failed to re-execute, if it has one."""
    call = _journal_call(exc)
    if call is None or "round" not in call[1]:
        return None
    return int(call[1]["round"])


def journal_context(exc: JournalMismatch) -> str:
    """What the saved chain's failing transaction is, to append to the mismatch's message."""
    call = _journal_call(exc)
    if call is None:
        return " (the transaction there does not decode as a ledger call)"
    name, args = call
    where = f" of task {args['taskId']}, round {args['round']}" if "round" in args else ""
    return f" (the transaction there is {name}{where})"
