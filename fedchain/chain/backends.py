"""Three ways to reach a chain, one interface: embedded (in-process py-evm), anvil, any RPC node."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from fedchain.chain.accounts import DEVNET_MNEMONIC
from fedchain.chain.errors import ChainError, ChainUnreachable

__all__ = [
    "ANVIL_ENV",
    "AnvilChain",
    "ChainBackend",
    "EmbeddedChain",
    "RpcChain",
    "find_anvil",
    "free_port",
]

ANVIL_ENV = "FEDCHAIN_ANVIL"
_EMBEDDED_ACCOUNTS = 10
_RPC_TIMEOUT_S = 10.0


class ChainBackend(Protocol):
    """A reachable chain: its kind, a connected Web3, and how to let it go."""

    kind: str

    @property
    def url(self) -> str | None: ...

    @property
    def w3(self) -> Web3: ...

    def close(self) -> None: ...


@dataclass
class EmbeddedChain:
    """py-evm through eth-tester, in this process: nothing to start, gone when the process ends.

    Genesis funds the first DEVNET TEST accounts of the public test mnemonic.
    """

    accounts: int = _EMBEDDED_ACCOUNTS
    kind: str = "embedded"
    _w3: Web3 | None = field(default=None, repr=False)

    @property
    def url(self) -> str | None:
        return None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            from eth_tester import EthereumTester, PyEVMBackend

            backend = PyEVMBackend.from_mnemonic(
                DEVNET_MNEMONIC, num_accounts=self.accounts, hd_path="m/44'/60'/0'/0"
            )
            backend.chain.gas_estimator = _one_shot_gas_estimate
            self._w3 = Web3(_LockedTesterProvider(EthereumTester(backend)))
        return self._w3

    def close(self) -> None:
        self._w3 = None


class _LockedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe; the RPC bridge serves it from other threads."""

    def __init__(self, tester: Any) -> None:
        super().__init__(tester)
        self._lock = threading.RLock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            return super().make_request(method, params)


def _one_shot_gas_estimate(state: Any, transaction: Any) -> int:
    """Estimate gas from one execution at the block gas limit, plus a margin.

    py-evm's default binary search re-executes a transaction ~25 times, which made a 10-participant
    commit take 1.5 s. The margin (+25 % and 25,000) covers refunds (at most a fifth of the gas
    used) and the 63/64 of gas forwarded to calls; the node still meters the real transaction.
    """
    from eth.vm.spoof import SpoofTransaction

    trial = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(trial)
        if computation.is_error:
            raise computation.error
        used = int(transaction.intrinsic_gas) + int(computation.get_gas_used())
    finally:
        state.revert(snapshot)
    return min(int(state.gas_limit), used * 5 // 4 + 25_000)


@dataclass
class RpcChain:
    """Any node by URL: a devnet, Hardhat node, geth, besu, a consortium chain."""

    rpc_url: str
    kind: str = "rpc"
    _w3: Web3 | None = field(default=None, repr=False)

    @property
    def url(self) -> str | None:
        return self.rpc_url

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            provider = Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": _RPC_TIMEOUT_S})
            w3 = Web3(provider)
            try:
                w3.eth.chain_id  # noqa: B018 - a cheap call that proves the node answers
            except (requests.RequestException, OSError) as exc:
                raise ChainUnreachable(self.rpc_url, exc) from exc
            self._w3 = w3
        return self._w3

    def close(self) -> None:
        self._w3 = None


def find_anvil() -> Path:
    """The anvil binary: ``$FEDCHAIN_ANVIL``, then PATH, then the npm package in a checkout."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        return Path(override)
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "node_modules" / ".bin" / "anvil"
        if candidate.exists():
            return candidate
    raise ChainError(
        "no anvil binary: run `npm ci` in the fedchain checkout (npm package @foundry-rs/anvil), "
        f"put anvil on PATH, or set {ANVIL_ENV}"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AnvilChain:
    """A local anvil on 127.0.0.1, started here and stopped by :meth:`close`.

    With ``state_file`` the chain is loaded from and dumped to that file, so it survives a restart.
    Its funded accounts are the DEVNET TEST accounts of the public test mnemonic.
    """

    port: int = 0
    state_file: Path | None = None
    block_time: float | None = None
    kind: str = "anvil"
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _rpc: RpcChain | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(find_anvil()), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--mnemonic", DEVNET_MNEMONIC, "--silent"]
        if self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        return cmd

    def start(self, timeout_s: float = 30.0) -> AnvilChain:
        """Start anvil and wait until it answers."""
        if self._process is not None:
            return self
        if self.port == 0:
            self.port = free_port()
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                self._process = None
                raise ChainError(f"anvil exited at start: {err.strip() or 'no message'}")
            try:
                self._rpc = RpcChain(self.url)
                self._rpc.w3  # noqa: B018 - connects or raises
                return self
            except ChainUnreachable:
                time.sleep(0.1)
        self.close()
        raise ChainError(f"anvil did not answer at {self.url} within {timeout_s:.0f} s")

    @property
    def w3(self) -> Web3:
        if self._rpc is None:
            self.start()
        assert self._rpc is not None
        return self._rpc.w3

    def close(self) -> None:
        """Stop anvil (it dumps its state file on SIGTERM)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._rpc = None
