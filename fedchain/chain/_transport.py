"""Transport: how the gateway's requests reach a node and its transactions get mined.

Nonce, gas and fees, signing and sending, receipts, and retries on transient RPC failures. A
signed transaction keeps its nonce and hash across resends, so a resend never duplicates a
write; a node that forgot a transaction gets it again, and one that lost mined transactions
(a restart from an older state) is reported as :class:`ChainReset`. A revert is raised as the
typed exception named after the contract's custom error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3RPCError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

from fedchain.chain._reverts import RevertDecoder, is_revert
from fedchain.chain.backends import EmbeddedProvider
from fedchain.chain.errors import (
    CallArgumentsError,
    ChainError,
    ChainReset,
    ChainUnreachable,
    ContractRevert,
    InsufficientGas,
    TransactionFailed,
)

__all__ = [
    "RetryPolicy",
    "Transport",
    "TxResult",
    "calldata",
    "quantity",
    "retry_each_request",
    "send_native",
]

_T = TypeVar("_T")
#: Gas limit of a transaction on the embedded chain, where no estimate is made (its blocks hold
#: 30M; the largest transaction, a 100-participant commit, uses about 2.3M).
_IN_PROCESS_GAS = 15_000_000
#: A transaction's gas limit on a node, in percent of the gas one execution used (see
#: Transport._gas_limit): refunds return at most a fifth of the gas spent (EIP-3529).
_GAS_MARGIN_PERCENT = 130
_ALREADY_SENT = ("already known", "known transaction", "nonce too low", "already imported")


@dataclass(frozen=True)
class TxResult:
    """A mined transaction, or ``already_recorded`` when the chain held the record already."""

    tx_hash: str
    block_number: int
    gas_used: int
    already_recorded: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """How transient RPC failures are retried: ``attempts`` tries, exponential back-off.

    The defaults ride out about 25 s without a node (a devnet restarting takes about one), and
    a transaction still unmined after ``lost_check_s`` is checked: re-sent if the node forgot it,
    :class:`ChainReset` if the node lost the ones before it.
    """

    attempts: int = 10
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0
    receipt_timeout_s: float = 120.0
    receipt_poll_s: float = 0.01
    lost_check_s: float = 1.0


class Transport:
    """One account's requests and transactions on one chain, retried and checked."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        chain_id: int,
        retry: RetryPolicy,
        decoder: RevertDecoder,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.chain_id = chain_id
        self.retry = retry
        self.in_process = isinstance(w3.provider, EthereumTesterProvider)
        self._decoder = decoder
        self._last_tx: HexBytes | None = None  # the latest transaction this transport got mined
        retry_each_request(w3, retry)

    # ------------------------------------------------------------------ requests

    def rpc(self, fn: Callable[[], _T]) -> _T:
        """Run chain calls; reverts become typed errors, a dead link ChainUnreachable.

        Transient failures are retried per JSON-RPC request by the provider (see
        :func:`retry_each_request`), so a multi-request call never restarts from scratch.
        """
        try:
            return fn()
        except ChainError:
            raise
        except Exception as exc:
            if is_revert(exc):
                raise self._decoder.decode(exc) from exc
            if _is_transient(exc):
                raise ChainUnreachable(self.url(), exc) from exc
            raise

    def read_together(self, *reads: Callable[[], Any]) -> list[Any]:
        """Several reads in one round trip to a node (a JSON-RPC batch); in turn in process."""
        if not isinstance(self.w3.provider, HTTPProvider):
            return [self.rpc(read) for read in reads]

        def batched() -> list[Any]:
            with self.w3.batch_requests() as batch:
                for read in reads:
                    batch.add(read())
                return list(batch.execute())

        # a batch bypasses the per-request retry of the provider: retried here as a whole
        result: list[Any] = self.rpc(lambda: _with_retries(self.retry, self.url(), batched))
        return result

    def raw_request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request to an HTTP node, its result as the node sent it (hex strings),
        for answers whose formatting by web3 costs more than the request (logs, receipts)."""
        provider = cast(HTTPProvider, self.w3.provider)
        response = self.rpc(lambda: provider.make_request(RPCEndpoint(method), params))
        if "error" in response:
            raise ChainError(f"{self.url()} refused {method}: {response['error']}")
        return response["result"]

    def url(self) -> str:
        """The node's URL, for messages."""
        provider = self.w3.provider
        return str(getattr(provider, "endpoint_uri", None) or "the embedded chain")

    # ------------------------------------------------------------------ transactions

    def check_durable(self) -> None:
        """Check that the node still holds the last transaction this transport got mined.

        Raises
        ------
        ChainReset
            When it does not: the node restarted from an older state and lost it (and
            possibly more); the caller sends its writes again.
        """
        last = self._last_tx
        if last is None or self.in_process:  # an in-process chain cannot lose what it mined
            return
        if self.receipt(last) is None:
            self._last_tx = None  # what is sent again becomes the new reference
            raise ChainReset(self.url(), f"transaction 0x{bytes(last).hex()} is gone")

    def send(self, call: ContractFunction) -> TxResult:
        """Send a contract call as a transaction and wait until it is mined."""
        sender = self.account.address
        request: dict[str, Any] = {"from": sender, "to": call.address, "data": calldata(call)}
        self.check_durable()  # a nonce read from a node that lost our last write would be stale
        nonce, latest = self.read_together(
            lambda: self.w3.eth.get_transaction_count(sender, "pending"),
            lambda: self.w3.eth.get_block("latest"),
        )
        if self.in_process:
            # The embedded chain executes in this process: estimating would run every
            # transaction twice. Send with a generous limit; a revert is decoded afterwards.
            gas = _IN_PROCESS_GAS
        else:
            gas = self._gas_limit(request, int(latest["gasLimit"]))
        tx = {**request, "nonce": int(nonce), "gas": gas, "chainId": self.chain_id}
        try:
            return self.send_tx({**tx, **_fees(latest)})
        except TransactionFailed:
            if self.in_process:  # replay as a call: raises the typed revert if there is one
                self.rpc(lambda: self.w3.eth.call(cast(Any, request)))
            raise

    def send_tx(self, tx: dict[str, Any]) -> TxResult:
        """Sign and send ``tx`` (nonce, gas and fees filled in when absent); wait until mined."""
        tx.setdefault("from", self.account.address)
        if "nonce" not in tx:
            self.check_durable()
            tx["nonce"] = self._nonce()
        tx.setdefault("chainId", self.chain_id)
        if "gas" not in tx:
            tx["gas"] = self.rpc(lambda: self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        if "maxFeePerGas" not in tx and "gasPrice" not in tx:
            tx.update(_fees(self.rpc(lambda: self.w3.eth.get_block("latest"))))
        signed = self.account.sign_transaction(tx)
        tx_hash = HexBytes(signed.hash)
        self.rpc(lambda: self._send_raw(signed.raw_transaction, tx_hash))
        mined = self._await_receipt(tx_hash, int(tx["nonce"]), signed.raw_transaction)
        self._last_tx = tx_hash
        result = TxResult("0x" + bytes(tx_hash).hex(), mined.block_number, mined.gas_used)
        if not mined.succeeded:
            raise TransactionFailed(
                f"transaction {result.tx_hash} failed in block {result.block_number}"
            )
        return result

    def receipt(self, tx_hash: HexBytes) -> _Mined | None:
        """The receipt's figures, or None while the node knows of no such mined transaction.

        Read raw from an HTTP node: web3 formats every log of a receipt, 18 ms for a
        100-participant commit (200 logs) against 2.5 ms for the request, and a commit reads
        two receipts (this one's, and the previous one's in :meth:`check_durable`) on every
        round's critical path.
        """
        provider = self.w3.provider
        if isinstance(provider, EmbeddedProvider):
            receipt = provider.node_receipt(bytes(tx_hash))
            return None if receipt is None else _Mined.of(receipt)
        if isinstance(provider, HTTPProvider):
            receipt = self.raw_request("eth_getTransactionReceipt", ["0x" + bytes(tx_hash).hex()])
            return None if receipt is None else _Mined.of(receipt)
        try:
            return _Mined.of(self.rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash)))
        except TransactionNotFound:
            return None

    def _nonce(self) -> int:
        return int(
            self.rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"))
        )

    def _gas_limit(self, request: dict[str, Any], block_limit: int) -> int:
        """A gas limit for ``request``, from one execution of it (``eth_createAccessList``).

        ``eth_estimateGas`` searches for the lowest limit that succeeds, executing the call
        several times: 60 ms for a 50-participant commit on anvil, on every round's critical
        path, against 10 ms for one execution. The margin covers what the gas used leaves out:
        refunds (at most a fifth of the gas spent) and the 1/64 held back at each call. A
        revert, or a node without the method, falls back to the estimate, which raises the
        typed revert or gives the limit.

        Both execute in the pending block, where the transaction will be mined: the ledger
        refuses to commit a round in the block that opened it, so an execution in the latest
        block (the opening one, right after it) would revert.
        """
        try:
            used = self.rpc(lambda: self.w3.eth.create_access_list(cast(Any, request), "pending"))
        except ChainUnreachable:
            raise
        except Exception:  # a revert or an unknown method: the estimate says which
            used = None
        if used is not None and not used.get("error"):
            limit = int(used["gasUsed"]) * _GAS_MARGIN_PERCENT // 100
            if limit <= block_limit:
                return limit
        try:
            return int(self.rpc(lambda: self.w3.eth.estimate_gas(cast(Any, request), "pending")))
        except (ContractRevert, ChainUnreachable):
            raise
        except Exception:  # a node that cannot estimate in the pending block (eth-tester)
            return int(self.rpc(lambda: self.w3.eth.estimate_gas(cast(Any, request))))

    def _send_raw(self, raw: bytes, tx_hash: HexBytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except (Web3RPCError, ValueError) as exc:
            text = str(exc).lower()
            if "insufficient funds" in text:
                raise InsufficientGas(self.account.address) from exc
            if not any(marker in text for marker in _ALREADY_SENT):
                raise
            # "Already known" after a lost answer: the node has this very transaction. But a
            # nonce can also have gone to another transaction of the same key: check which.
            if "nonce too low" in text and self._lookup(tx_hash) is None:
                raise TransactionFailed(
                    f"nonce {self._nonce()} of {self.account.address} was used by another "
                    "transaction (is another process signing with this key?): send again"
                ) from exc

    def _await_receipt(self, tx_hash: HexBytes, nonce: int, raw: bytes) -> _Mined:
        """The transaction's receipt, once mined; a node that forgot it gets it again."""
        if self.in_process:  # mined as it was sent
            mined = self.receipt(tx_hash)
            if mined is not None:
                return mined
            return _Mined.of(self.rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash)))
        policy = self.retry
        deadline = time.monotonic() + policy.receipt_timeout_s
        check_at = time.monotonic() + policy.lost_check_s
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            now = time.monotonic()
            if now >= deadline:
                raise ChainUnreachable(
                    self.url(),
                    f"transaction 0x{bytes(tx_hash).hex()} not mined within "
                    f"{policy.receipt_timeout_s:.0f} s",
                )
            if now >= check_at:
                self._check_pending(tx_hash, nonce, raw)
                check_at = time.monotonic() + policy.lost_check_s
            time.sleep(policy.receipt_poll_s)

    def _check_pending(self, tx_hash: HexBytes, nonce: int, raw: bytes) -> None:
        """Why a sent transaction is not mined yet: waiting, forgotten, or stranded.

        This transport sends one transaction at a time and waits for it, so all of its
        account's earlier transactions are mined: fewer on chain means the node lost some (a
        restart from an older state) and this one waits behind a gap that only sending those
        again fills.
        """
        address = self.account.address
        mined = int(self.rpc(lambda: self.w3.eth.get_transaction_count(address, "latest")))
        if mined < nonce:
            self._last_tx = None  # what is sent again becomes the new reference
            raise ChainReset(
                self.url(),
                f"{mined} transactions of {address} are on chain, {nonce} were mined before",
            )
        if mined > nonce:
            if self.receipt(tx_hash) is None:
                raise TransactionFailed(
                    f"nonce {nonce} of {address} was used by another transaction (is another "
                    "process signing with this key?): send again"
                )
            return
        if self._lookup(tx_hash) is None:  # the node restarted and forgot it: send it again
            self.rpc(lambda: self._send_raw(raw, tx_hash))

    def _lookup(self, tx_hash: HexBytes) -> Any:
        try:
            return self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return None


@dataclass(frozen=True)
class _Mined:
    """What a sender needs of a receipt: where the transaction was mined, its gas, its status."""

    block_number: int
    gas_used: int
    succeeded: bool

    @classmethod
    def of(cls, receipt: Any) -> _Mined:
        """From a receipt, formatted by web3 or raw from a node."""
        return cls(
            quantity(receipt["blockNumber"]),
            quantity(receipt["gasUsed"]),
            quantity(receipt["status"]) == 1,
        )


def quantity(value: Any) -> int:
    """A JSON-RPC quantity: a 0x-hex string from a node, an int from web3's formatters."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _fees(latest: Any) -> dict[str, int]:
    """EIP-1559 fees that stay valid while the base fee doubles (from the latest block)."""
    base = int(latest["baseFeePerGas"])
    return {"maxPriorityFeePerGas": 1, "maxFeePerGas": 2 * base + 1}


def calldata(call: ContractFunction) -> str:
    """The call's transaction data, encoded by eth_abi directly.

    web3's own encoding first walks every argument through its normalisers (ENS names, text
    to bytes), which costs ten times the encoding: 23 ms against 2.6 ms for a 50-participant
    commit, paid on the round's critical path. fedchain's arguments are already typed values.
    """
    if call.kwargs:  # positional only: the ABI's order is the encoding's order
        raise CallArgumentsError(f"{call.fn_name}: pass the contract arguments by position")
    selector = function_abi_to_4byte_selector(call.abi)
    return "0x" + (selector + abi_encode(get_abi_input_types(call.abi), call.args)).hex()


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status >= 500 or status == 429
    return isinstance(exc, requests.ConnectionError | requests.Timeout | TimeExhausted | OSError)


def retry_each_request(w3: Web3, policy: RetryPolicy) -> None:
    """Make an HTTP provider retry each JSON-RPC request on transient failures (once installed).

    web3's own retry (5 tries on a few methods) is switched off, so ``policy`` is the only layer.
    """
    provider = w3.provider
    if not isinstance(provider, HTTPProvider) or getattr(provider, "_fedchain_retry", False):
        return
    cast(Any, provider).exception_retry_configuration = None  # web3's own retry off
    send = provider._make_request
    url = str(provider.endpoint_uri)

    def make_request(method: Any, params: Any) -> Any:
        return _with_retries(policy, url, lambda: send(method, params))

    vars(provider)["_make_request"] = make_request  # the instance's hook shadows the method
    vars(provider)["_fedchain_retry"] = True


def _with_retries(policy: RetryPolicy, url: str, fn: Callable[[], _T]) -> _T:
    """``fn()``, tried again on transient failures as ``policy`` says; then ChainUnreachable."""
    delay = policy.first_delay_s
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not _is_transient(exc):
                raise
            if attempt == policy.attempts:
                raise ChainUnreachable(url, exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, policy.max_delay_s)
    raise AssertionError("unreachable")  # pragma: no cover


def send_native(w3: Web3, sender: LocalAccount, to: str, wei: int) -> TxResult:
    """Send ``wei`` of the chain's native currency (gas money) from ``sender`` to ``to``."""
    retry_each_request(w3, RetryPolicy())
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx: Any = {
        "to": to_checksum_address(to),
        "value": wei,
        "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "chainId": int(w3.eth.chain_id),
        "maxPriorityFeePerGas": 1,
        "maxFeePerGas": 2 * base + 1,
    }
    signed = sender.sign_transaction(tx)
    try:
        w3.eth.send_raw_transaction(signed.raw_transaction)
    except (Web3RPCError, ValueError) as exc:
        if "insufficient funds" in str(exc).lower():
            raise InsufficientGas(sender.address) from exc
        raise
    receipt = w3.eth.wait_for_transaction_receipt(signed.hash)
    result = TxResult(
        "0x" + bytes(signed.hash).hex(), int(receipt["blockNumber"]), int(receipt["gasUsed"])
    )
    if receipt["status"] != 1:
        raise TransactionFailed(f"transfer {result.tx_hash} failed in block {result.block_number}")
    return result
