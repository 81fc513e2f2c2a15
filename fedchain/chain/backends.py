"""Three ways to reach a chain, one interface: embedded (in-process py-evm), anvil, any RPC node."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

from fedchain.chain._keccak import use_fast_keccak
from fedchain.chain.accounts import DEVNET_MNEMONIC
from fedchain.chain.errors import ChainError, ChainUnreachable

__all__ = [
    "ANVIL_ENV",
    "AnvilChain",
    "ChainBackend",
    "EmbeddedChain",
    "EmbeddedProvider",
    "JournalMismatch",
    "RpcChain",
    "find_anvil",
    "free_port",
]

log = logging.getLogger(__name__)

# Every process that reaches a chain comes through here: hash with C code from now on.
use_fast_keccak()

ANVIL_ENV = "FEDCHAIN_ANVIL"
_EMBEDDED_ACCOUNTS = 10
_HD_PATH = "m/44'/60'/0'/0"
_RPC_TIMEOUT_S = 10.0


class JournalMismatch(ChainError, ValueError):
    """A saved embedded chain does not re-execute to the block hashes it recorded.

    Attributes
    ----------
    journal : Path
        The journal directory.
    line : int
        The first journal line that does not re-execute (1-based).
    tx : str
        That line's raw transaction, as saved (0x hex; possibly the altered part).
    """

    def __init__(self, message: str, journal: Path, line: int, tx: str) -> None:
        super().__init__(message)
        self.journal, self.line, self.tx = journal, line, tx


class ChainBackend(Protocol):
    """A reachable chain: its kind, a connected Web3, and how to let it go."""

    kind: str

    @property
    def url(self) -> str | None: ...

    @property
    def w3(self) -> Web3: ...

    def close(self) -> None: ...


#: Fixed genesis time: with deterministic block times and randomness, the same transactions give
#: the same block hashes, so a saved embedded chain can be re-executed and checked.
GENESIS_TIMESTAMP = 1_700_000_000
BLOCK_INTERVAL_S = 12
JOURNAL_FILE = "blocks.jsonl"


@dataclass
class EmbeddedChain:
    """py-evm through eth-tester, in this process: nothing to start, gone when the process ends.

    Genesis funds the first DEVNET TEST accounts of the public test mnemonic. Blocks are
    deterministic (fixed genesis time, 12 s per block, prevrandao derived from the parent), and
    with ``journal`` every transaction is appended, as executed, to ``journal/blocks.jsonl``
    with its block's number and hash, so :meth:`replay` can rebuild and check the chain later.
    """

    accounts: int = _EMBEDDED_ACCOUNTS
    journal: Path | None = None
    kind: str = "embedded"
    _w3: Web3 | None = field(default=None, repr=False)

    @property
    def url(self) -> str | None:
        return None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            from eth_tester import EthereumTester

            backend = _deterministic_backend(self.accounts)
            backend.chain.gas_estimator = _one_shot_gas_estimate
            if self.journal is not None:
                self.journal.mkdir(parents=True, exist_ok=True)
                (self.journal / JOURNAL_FILE).touch()
            self._w3 = Web3(EmbeddedProvider(EthereumTester(backend), self.journal))
        return self._w3

    def close(self) -> None:
        self._w3 = None

    @classmethod
    def replay(
        cls, journal: Path, accounts: int = _EMBEDDED_ACCOUNTS, resume: bool = False
    ) -> EmbeddedChain:
        """Rebuild a journaled chain by re-executing its transactions; check every block hash.

        With ``resume``, transactions sent to the rebuilt chain are appended to the same
        journal, so a claim made on a saved run is kept with it.
        """
        path = journal / JOURNAL_FILE
        if not path.exists():
            raise ChainError(f"no saved chain at {journal}: expected {JOURNAL_FILE} there")
        text = path.read_text()
        complete, _, torn = text.rpartition("\n")
        if torn:  # the process died while appending a line: that transaction never completed
            log.warning("saved chain %s ends in a torn line: dropped", journal)
            text = complete + "\n" if complete else ""
            if resume:
                path.write_text(text)
        chain = cls(accounts=accounts)
        w3 = chain.w3
        for line_no, line in enumerate(text.splitlines(), start=1):
            try:
                entry = json.loads(line)
                w3.eth.send_raw_transaction(entry["tx"])
            except Exception as exc:  # any failure to re-execute means the file was altered
                raise JournalMismatch(
                    f"saved chain {journal} does not re-execute at line {line_no}: {exc}",
                    journal,
                    line_no,
                    str(entry.get("tx", "")) if isinstance(entry, dict) else "",
                ) from exc
            block = w3.eth.get_block("latest")
            if block["number"] != entry["number"] or _hex(block["hash"]) != entry["hash"]:
                raise JournalMismatch(
                    f"saved chain {journal} does not re-execute: block {entry['number']} "
                    f"(line {line_no}) hashes to {_hex(block['hash'])}, saved "
                    f"{entry['hash']}: the saved chain was altered",
                    journal,
                    line_no,
                    str(entry["tx"]),
                )
        if resume:
            chain.journal = journal
            provider = w3.provider
            assert isinstance(provider, EmbeddedProvider)
            provider.journal_to(journal)
        return chain


def _hex(value: Any) -> str:
    """0x-hex of bytes or of a hex string (eth-tester returns either)."""
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _deterministic_backend(accounts: int) -> Any:
    from eth_tester import PyEVMBackend

    class _DeterministicBackend(PyEVMBackend):  # type: ignore[misc]
        def _pin(self) -> None:
            """Give the pending block its final time and randomness before anything executes
            in it: py-evm stamps a pending block with the wall clock, so a transaction read
            ``block.timestamp`` (the ledger stores a round's opening time) from a clock that
            neither the mined block nor a replay of the chain has."""
            parent = self.chain.get_canonical_head()
            timestamp = parent.timestamp + BLOCK_INTERVAL_S
            mix_hash = hashlib.sha256(parent.hash).digest()
            pending = self.chain.header
            if (pending.timestamp, pending.mix_hash) != (timestamp, mix_hash):
                self.chain.header = pending.copy(timestamp=timestamp, mix_hash=mix_hash)

        def send_raw_transaction(self, raw_transaction: Any) -> Any:
            self._pin()
            return super().send_raw_transaction(raw_transaction)

        def send_signed_transaction(
            self, signed_transaction: Any, block_number: Any = "latest"
        ) -> Any:
            self._pin()
            return super().send_signed_transaction(signed_transaction, block_number)

        def send_transaction(self, transaction: Any) -> Any:
            self._pin()
            return super().send_transaction(transaction)

        def mine_blocks(self, num_blocks: int = 1, coinbase: Any = None) -> Any:
            hashes = []
            for _ in range(num_blocks):
                self._pin()
                block = self.chain.mine_block(mix_hash=self.chain.header.mix_hash)
                hashes.append(block.hash)
            return tuple(hashes)

    params = PyEVMBackend.generate_genesis_params(overrides={"timestamp": GENESIS_TIMESTAMP})
    state = PyEVMBackend.generate_genesis_state(
        mnemonic=DEVNET_MNEMONIC, num_accounts=accounts, hd_path=_HD_PATH
    )
    return _DeterministicBackend(
        genesis_parameters=params, genesis_state=state, mnemonic=DEVNET_MNEMONIC, hd_path=_HD_PATH
    )


#: Position of the block number in the params of the reads whose number web3's eth-tester
#: layer passes on as JSON-RPC's hex text, which eth-tester refuses (it takes an int).
_HEX_BLOCK_PARAM = {"eth_getStorageAt": 2}


def _block_number_as_int(method: Any, params: Any) -> Any:
    """``params`` with a hex block number turned into the int eth-tester takes."""
    index = _HEX_BLOCK_PARAM.get(method)
    if index is None or len(params) <= index:
        return params
    block = params[index]
    if not (isinstance(block, str) and block.startswith("0x")):
        return params  # "latest" and the other names pass as they are
    return [*params[:index], int(block, 16), *params[index + 1 :]]


#: Reads whose answer depends only on the chain's state at one block, and where their block
#: parameter sits: with the head unchanged, the same request has the same answer.
_STATE_READS = {"eth_call": 1, "eth_getStorageAt": 2, "eth_getBalance": 1, "eth_getCode": 1}


class EmbeddedProvider(EthereumTesterProvider):
    """Serialises requests (eth-tester is not thread-safe and the RPC bridge serves it from other
    threads) and journals every transaction the chain executed.

    It also answers ``eth_accounts`` from memory: the accounts are fixed at genesis, and web3's
    eth-tester middleware asks for them twice per ``eth_call`` without a sender, which made each
    view call (checksumming every account twice) about twice as slow. And it answers a state
    read asked again at the same head block from memory (py-evm executes every ``eth_call`` anew:
    a round's clients each poll the same task at the same block through the RPC bridge).
    """

    def __init__(self, tester: Any, journal: Path | None) -> None:
        super().__init__(tester)
        self._tester = tester
        self._lock = threading.RLock()
        self._journal = journal / JOURNAL_FILE if journal is not None else None
        self._accounts: Any = None
        self._reads: dict[str, Any] = {}  # request -> result, at head block self._reads_at
        self._reads_at: bytes = b""

    def journal_to(self, journal: Path) -> None:
        """Append every further transaction to ``journal``."""
        self._journal = journal / JOURNAL_FILE

    def make_request(self, method: Any, params: Any) -> Any:
        params = _block_number_as_int(method, params)
        with self._lock:
            if method == "eth_accounts":
                if self._accounts is None:
                    self._accounts = super().make_request(method, params)
                return copy.deepcopy(self._accounts)
            key = self._read_key(method, params)
            if key is not None and key in self._reads:
                return {**self._reads[key], "id": repr(self._current_request_id)}
            response = super().make_request(method, params)
            if key is not None and "result" in response:
                self._reads[key] = response
            if method == "eth_sendRawTransaction" and self._journal is not None:
                self._record(params[0])
            return response

    def _read_key(self, method: Any, params: Any) -> str | None:
        """The cache key of a state read at the head block (None: not cached). Keyed by the
        head's hash, so any new block, and a revert to a snapshot, starts afresh."""
        index = _STATE_READS.get(method)
        if index is None:
            return None
        block = params[index] if len(params) > index else "latest"
        if block == "pending":
            return None
        head = bytes(self._tester.backend.chain.get_canonical_head().hash)
        if head != self._reads_at:
            self._reads, self._reads_at = {}, head
        return f"{method}{params!r}"

    def ledger_logs(self, address: str, start: int, end: int) -> list[dict[str, Any]]:
        """The logs of contract ``address`` in blocks ``start`` to ``end``, as a node sends them
        (0x-hex strings), read from py-evm's receipts directly.

        eth-tester's ``eth_getLogs`` normalises every log and web3 formats it again: 68 ms
        against 40 ms here for 300 logs, on the read-back at the end of every run. Numbered as
        eth-tester numbers them (``logIndex`` within the transaction's receipt).
        """
        wanted = bytes.fromhex(address.removeprefix("0x").lower())
        out: list[dict[str, Any]] = []
        with self._lock:
            chain = self._tester.backend.chain
            last = min(end, chain.get_canonical_head().block_number)
            for number in range(max(start, 0), last + 1):
                block = chain.get_canonical_block_by_number(number)
                receipts = block.get_receipts(chain.chaindb)
                for tx, receipt in zip(block.transactions, receipts, strict=True):
                    for index, log in enumerate(receipt.logs):
                        if log.address == wanted:
                            out.append(_node_log(log, index, number, tx.hash))
        return out

    def storage_words(self, address: str, slots: Sequence[int]) -> list[int]:
        """The storage words of contract ``address`` at ``slots``, all read at the head block
        (as ``eth_getStorageAt`` at ``latest``, without a request per word)."""
        account = bytes.fromhex(address.removeprefix("0x"))
        with self._lock:
            chain = self._tester.backend.chain
            state = chain.get_vm(at_header=chain.get_canonical_head()).state
            return [int(state.get_storage(account, slot)) for slot in slots]

    def node_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        """A mined transaction's receipt as a node sends it (status, gas, block, logs), read
        from py-evm directly; None for a transaction not mined. eth-tester's normalisers and
        web3's formatters took a sixth of a round's commit (a 50-participant commit has 100
        logs, and its receipt is read twice)."""
        from eth.exceptions import TransactionNotFound

        with self._lock:
            chain = self._tester.backend.chain
            try:
                number, index = chain.chaindb.get_transaction_index(tx_hash)
            except TransactionNotFound:
                return None
            block = chain.get_canonical_block_by_number(number)
            receipts = block.get_receipts(chain.chaindb)
        receipt = receipts[index]
        before = receipts[index - 1].gas_used if index else 0  # py-evm's gas_used is cumulative
        tx = block.transactions[index].hash
        return {
            "blockNumber": hex(number),
            "gasUsed": hex(receipt.gas_used - before),
            "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
            "logs": [_node_log(log, i, number, tx) for i, log in enumerate(receipt.logs)],
        }

    def _record(self, raw: Any) -> None:
        block = self._tester.get_block_by_number("latest")
        tx = raw if isinstance(raw, str) else "0x" + bytes(raw).hex()
        entry = {"number": int(block["number"]), "hash": _hex(block["hash"]), "tx": tx}
        with self._journal.open("a") as handle:  # type: ignore[union-attr]
            handle.write(json.dumps(entry) + "\n")


def _node_log(log: Any, index: int, block_number: int, tx_hash: bytes) -> dict[str, Any]:
    """A py-evm log as a JSON-RPC node sends it (the fields the gateway reads)."""
    return {
        "address": "0x" + bytes(log.address).hex(),
        "topics": ["0x" + topic.to_bytes(32, "big").hex() for topic in log.topics],
        "data": "0x" + bytes(log.data).hex(),
        "blockNumber": hex(block_number),
        "transactionHash": "0x" + bytes(tx_hash).hex(),
        "logIndex": hex(index),
    }


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
    #: Prove at once that the node answers (one try); without, the first call finds out, with
    #: whatever retries its caller has (a gateway's :class:`RetryPolicy`).
    probe: bool = True
    _w3: Web3 | None = field(default=None, repr=False)

    @property
    def url(self) -> str | None:
        return self.rpc_url

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            # web3 asks the node for its chain id before every call and gas estimate (to
            # validate the request): cached, that is one request per connection, not two per read.
            provider = Web3.HTTPProvider(
                self.rpc_url,
                request_kwargs={"timeout": _RPC_TIMEOUT_S},
                cache_allowed_requests=True,
                cacheable_requests={RPCEndpoint("eth_chainId")},
            )
            w3 = Web3(provider)
            if self.probe:
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
        if not Path(override).is_file():
            raise ChainError(f"{ANVIL_ENV}={override} is not a file: point it at the anvil binary")
        return Path(override)
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        native = _npm_native_anvil(root / "node_modules")
        if native is not None:
            return native
        candidate = root / "node_modules" / ".bin" / "anvil"
        if candidate.exists():
            return candidate
    raise ChainError(
        "no anvil binary: run `npm ci` in the fedchain checkout (npm package @foundry-rs/anvil), "
        f"put anvil on PATH, or set {ANVIL_ENV}"
    )


#: npm's names for this machine, as in @foundry-rs/anvil's platform packages.
_NPM_OS = {"linux": "linux", "darwin": "darwin", "win32": "win32"}
_NPM_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def _npm_native_anvil(node_modules: Path) -> Path | None:
    """The platform binary the npm package @foundry-rs/anvil installed, if any.

    ``node_modules/.bin/anvil`` is a Node script that starts this binary as its child and
    forwards only SIGINT and SIGTERM: signals for the node (a kill, the parent's death) must
    reach the binary itself, so it is run directly.
    """
    import platform

    system = _NPM_OS.get(sys.platform, sys.platform)
    arch = _NPM_ARCH.get(platform.machine().lower())
    if arch is None:
        return None
    binary = node_modules / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM anvil when its parent dies (no orphan devnets)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AnvilChain:
    """A local anvil on 127.0.0.1, started here and stopped by :meth:`close`.

    With ``state_file`` the chain is loaded from and dumped to that file, so it survives a restart:
    anvil dumps it on a clean stop, and every ``state_interval`` seconds, so a killed anvil loses
    at most the last interval (measured: SIGKILL without an interval keeps nothing at all; with
    1 s, a restart comes back at the last dump, at most a second old, in about a second).
    Its funded accounts are the DEVNET TEST accounts of the public test mnemonic.
    """

    port: int = 0
    state_file: Path | None = None
    block_time: float | None = None
    state_interval: int = 1
    #: False: load the state file but never write it (to inspect a saved chain).
    save_state: bool = True
    kind: str = "anvil"
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _rpc: RpcChain | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(find_anvil()), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--mnemonic", DEVNET_MNEMONIC, "--silent"]
        if self.state_file is not None and not self.save_state:
            cmd += ["--load-state", str(self.state_file)]
        elif self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
            if self.state_interval > 0:
                cmd += ["--state-interval", str(self.state_interval)]
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
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets a signal, no locks taken
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
                time.sleep(0.02)
        self.close()
        raise ChainError(f"anvil did not answer at {self.url} within {timeout_s:.0f} s")

    @property
    def pid(self) -> int | None:
        """The anvil process's id while it runs (to signal it, as a crash test does)."""
        return self._process.pid if self._process is not None else None

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
