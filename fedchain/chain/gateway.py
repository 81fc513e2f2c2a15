"""The ledger gateway: fedchain's one door to the contracts (and, with backends.py, to web3).

Every write is signed locally, sent with retries on transient RPC failures, and idempotent: a
signed transaction keeps its nonce and hash across resends, and the high-level calls first check
whether what they are asked to record is already on chain, so a retry never duplicates a round.
A revert is raised as the typed exception named after the contract's custom error.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Protocol, TypeVar, cast

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed as EthTesterTransactionFailed
from eth_utils.abi import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

from fedchain.chain._artifacts import load_artifact
from fedchain.chain.deployments import Deployment
from fedchain.chain.errors import (
    REVERT_ERRORS,
    ChainError,
    ChainReset,
    ChainUnreachable,
    ContractRevert,
    DeploymentError,
    InsufficientGas,
    TransactionFailed,
)
from fedchain.chain.logs import LogDecoder
from fedchain.chain.merkle import LeafClaim, RewardLeaf, RewardRootRecord, RoundRoot
from fedchain.chain.records import (
    Commitment,
    ParticipantRecord,
    ParticipantStatus,
    Reward,
    RoundId,
    RoundOutcome,
    RoundRecord,
    RoundState,
    SignedCommitment,
    TaskId,
    TaskRecord,
)
from fedchain.chain.signing import LedgerDomain

__all__ = [
    "LedgerEvent",
    "LedgerGateway",
    "LedgerPort",
    "RetryPolicy",
    "TxResult",
    "deploy",
    "revert_data",
    "send_native",
]

_T = TypeVar("_T")
_ZERO32 = b"\x00" * 32
#: Gas limit of a transaction on the embedded chain, where no estimate is made (its blocks hold
#: 30M; the largest transaction, a 100-participant commit, uses about 2.3M).
_IN_PROCESS_GAS = 15_000_000
#: A transaction's gas limit on a node, in percent of the gas one execution used (see
#: LedgerGateway._gas_limit): refunds return at most a fifth of the gas spent (EIP-3529).
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
class LedgerEvent:
    """One decoded ledger event; bytes arguments are 0x-hex strings."""

    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int


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


class LedgerPort(Protocol):
    """What the federation needs of a ledger; :class:`LedgerGateway` implements it on any chain."""

    @property
    def domain(self) -> LedgerDomain: ...

    def task(self, task_id: TaskId) -> TaskRecord: ...

    def task_head(self, task_id: TaskId) -> tuple[bytes, RoundId]: ...

    def round(self, task_id: TaskId, round_id: RoundId) -> RoundRecord: ...

    def participant(self, address: str) -> ParticipantRecord: ...

    def participants(self, addresses: Sequence[str]) -> list[ParticipantRecord]: ...

    def direct_commitment(self, task_id: TaskId, round_id: RoundId, address: str) -> bytes: ...

    def open_round(self, task_id: TaskId, round_id: RoundId, parent: bytes) -> TxResult: ...

    def commit_round(
        self,
        task_id: TaskId,
        round_id: RoundId,
        commitments: Sequence[SignedCommitment],
        outcome: RoundOutcome,
        rewards: Sequence[Reward],
        *,
        open_next: bool = False,
    ) -> TxResult: ...

    def fail_round(self, task_id: TaskId, round_id: RoundId, reason: str) -> TxResult: ...

    def commit_round_root(
        self,
        task_id: TaskId,
        round_id: RoundId,
        tree: RoundRoot,
        outcome: RoundOutcome,
        *,
        open_next: bool = False,
    ) -> TxResult: ...


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status >= 500 or status == 429
    return isinstance(exc, requests.ConnectionError | requests.Timeout | TimeExhausted | OSError)


def revert_data(exc: Exception) -> bytes | None:
    """The raw revert data of a failed call, from a node (web3) or from the embedded chain."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return bytes.fromhex(data[2:])
        return None
    # web3's eth-tester provider re-raises the embedded chain's revert as text; the original
    # exception is in the context chain, holding the raw bytes (possibly wrapped in py-evm's
    # Revert) or, for calls, their Python repr.
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, EthTesterTransactionFailed) and current.args:
            first = current.args[0]
            if isinstance(first, Exception) and first.args:
                first = first.args[0]
            if isinstance(first, str) and first[:2] in ("b'", 'b"'):
                first = ast.literal_eval(first)
            if isinstance(first, bytes) and len(first) >= 4:
                return first
        current = current.__context__
    return None


def _is_revert(exc: Exception) -> bool:
    return isinstance(exc, ContractLogicError | EthTesterTransactionFailed)


class _RevertDecoder:
    """Maps a revert's 4-byte selector to the typed exception named after the custom error."""

    def __init__(self, abis: Sequence[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item["type"] != "error":
                    continue
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self._errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)

    def decode(self, exc: Exception) -> Exception:
        raw = revert_data(exc)
        if raw is None:
            return TransactionFailed(f"reverted: {exc}")
        known = self._errors.get(raw[:4])
        if known is None:
            return TransactionFailed(f"reverted with unknown data 0x{raw.hex()}: {exc}")
        name, names, types = known
        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, abi_decode(types, raw[4:]), strict=True)
        ]
        cls = REVERT_ERRORS.get(name) or type(name, (ContractRevert,), {"fields": tuple(names)})
        error: Exception = cls(**dict(zip(names, values, strict=True)))
        return error


class LedgerGateway:
    """Reads and writes the Ledger (and its dev token) as one account."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        account: LocalAccount,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.account = account
        self.retry = retry or RetryPolicy()
        _retry_each_request(w3, self.retry)
        self._in_process = isinstance(w3.provider, EthereumTesterProvider)
        ledger_abi = load_artifact("Ledger")["abi"]
        token_abi = load_artifact("DevToken")["abi"]
        self.ledger: Contract = w3.eth.contract(address=_address(deployment.ledger), abi=ledger_abi)
        self.token: Contract = w3.eth.contract(address=_address(deployment.token), abi=token_abi)
        self._decoder = _RevertDecoder([ledger_abi, token_abi])
        self._logs = LogDecoder(ledger_abi)
        self._last_tx: HexBytes | None = None  # the latest transaction this gateway got mined
        chain_id = self._rpc(lambda: w3.eth.chain_id)
        if chain_id != deployment.chain_id:
            raise DeploymentError(
                f"the deployment is for chain {deployment.chain_id} but the node is chain "
                f"{chain_id}: use the deployment file of this chain or another --rpc-url"
            )

    def as_account(self, account: LocalAccount) -> LedgerGateway:
        """The same ledger, acting as ``account``."""
        return LedgerGateway(self.w3, self.deployment, account, self.retry)

    @cached_property
    def domain(self) -> LedgerDomain:
        return LedgerDomain(self.deployment.chain_id, _address(self.deployment.ledger))

    # ------------------------------------------------------------------ reads

    def task(self, task_id: TaskId) -> TaskRecord:
        t = self._rpc(lambda: self.ledger.functions.getTask(task_id).call())
        return TaskRecord(
            task_id=task_id,
            spec_hash=bytes(t[0]),
            head_model_hash=bytes(t[1]),
            token=str(t[2]),
            last_round=RoundId(int(t[3])),
            coordinator=str(t[4]),
            reward_per_round=int(t[5]),
            funded=int(t[6]),
            attributed=int(t[7]),
        )

    def task_head(self, task_id: TaskId) -> tuple[bytes, RoundId]:
        """The task's latest committed model hash and latest opened round, read cheaply.

        Two storage words instead of a contract call (a participant polls this every round),
        located with the compiler's storage layout shipped in the artifact.
        """
        head_slot, round_slot, shift, width = _task_head_slots(task_id)
        address = self.ledger.address
        words = self._read_together(
            lambda: self.w3.eth.get_storage_at(address, head_slot),
            lambda: self.w3.eth.get_storage_at(address, round_slot),
        )
        head, packed = bytes(words[0]), bytes(words[1])
        last_round = (int.from_bytes(packed, "big") >> shift) & ((1 << width) - 1)
        return head.rjust(32, b"\x00"), RoundId(last_round)

    def task_count(self) -> int:
        return int(self._rpc(lambda: self.ledger.functions.taskCount().call()))

    def round(self, task_id: TaskId, round_id: RoundId) -> RoundRecord:
        r = self._rpc(lambda: self.ledger.functions.getRound(task_id, round_id).call())
        return RoundRecord(RoundState(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4]))

    def participant(self, address: str) -> ParticipantRecord:
        call = self.ledger.functions.getParticipant(_address(address))
        p = self._rpc(call.call)
        return _participant_record(p)

    def participants(self, addresses: Sequence[str]) -> list[ParticipantRecord]:
        """The records of several participants, in one call."""
        call = self.ledger.functions.getParticipants([_address(a) for a in addresses])
        # Read past web3's output formatters, which cost 35 ms for the 50 records a round asks.
        request: Any = {"to": call.address, "data": _calldata(call)}
        raw = bytes(self._rpc(lambda: self.w3.eth.call(request)))
        (records,) = abi_decode(get_abi_output_types(call.abi), raw)
        return [_participant_record(p) for p in records]

    def direct_commitment(self, task_id: TaskId, round_id: RoundId, address: str) -> bytes:
        call = self.ledger.functions.directCommitment(task_id, round_id, _address(address))
        return bytes(self._rpc(call.call))

    def owed(self, address: str, token: str | None = None) -> int:
        call = self.ledger.functions.owed(_address(token or self.token.address), _address(address))
        return int(self._rpc(call.call))

    def claimed(self, address: str, token: str | None = None) -> int:
        call = self.ledger.functions.claimed(
            _address(token or self.token.address), _address(address)
        )
        return int(self._rpc(call.call))

    def token_decimals(self, token: str | None = None) -> int:
        """The ERC-20 ``decimals`` of ``token`` (default: the deployment's dev token)."""
        contract = self.w3.eth.contract(
            address=_address(token or self.token.address), abi=self.token.abi
        )
        return int(self._rpc(contract.functions.decimals().call))

    def token_balance(self, address: str) -> int:
        call = self.token.functions.balanceOf(_address(address))
        return int(self._rpc(call.call))

    def commitment_digest(self, commitment: Commitment) -> bytes:
        c = commitment
        call = self.ledger.functions.commitmentDigest(
            c.task_id, c.round, c.update_hash, c.num_examples
        )
        return bytes(self._rpc(call.call))

    def events(
        self, from_block: int | None = None, to_block: int | None = None
    ) -> list[LedgerEvent]:
        """Every Ledger event in the block range, decoded, in chain order."""
        start = self.deployment.block if from_block is None else from_block
        end = self._rpc(lambda: self.w3.eth.block_number) if to_block is None else to_block
        decoded = []
        for log in self._raw_logs(start, end):
            event = self._logs.decode(log)
            if event is None:
                continue
            decoded.append(
                LedgerEvent(
                    name=event[0],
                    args=event[1],
                    block_number=_int(log["blockNumber"]),
                    tx_hash="0x" + bytes(HexBytes(log["transactionHash"])).hex(),
                    log_index=_int(log["logIndex"]),
                )
            )
        return decoded

    def _raw_logs(self, start: int, end: int) -> list[Any]:
        """The ledger's logs in a block range; from a node, as it sent them (hex strings).

        web3's formatting of each log costs more than decoding it: 0.9 of the 1.6 s it took to
        read back a 1,000-client run's 2,300 events.
        """
        query: dict[str, Any] = {"address": self.ledger.address}
        if not isinstance(self.w3.provider, HTTPProvider):
            query.update(fromBlock=start, toBlock=end)
            return list(self._rpc(lambda: self.w3.eth.get_logs(cast(Any, query))))
        query.update(fromBlock=hex(start), toBlock=hex(end))
        return list(self._raw_request("eth_getLogs", [query]))

    # ------------------------------------------------------------------ writes

    def create_task(
        self,
        spec_hash: bytes,
        initial_model_hash: bytes,
        reward_per_round: int,
        token: str | None = None,
    ) -> tuple[TaskId, TxResult]:
        """Create a task; the gateway's account becomes its coordinator."""
        call = self.ledger.functions.createTask(
            spec_hash, initial_model_hash, _address(token or self.token.address), reward_per_round
        )
        result = self._send(call)
        receipt = self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(result.tx_hash)))
        (event,) = self.ledger.events.TaskCreated().process_receipt(receipt)
        return TaskId(int(event["args"]["taskId"])), result

    def ensure_task(
        self,
        task_id: TaskId,
        spec_hash: bytes,
        initial_model_hash: bytes,
        reward_per_round: int,
        token: str | None = None,
    ) -> TxResult:
        """Create task ``task_id`` as :meth:`create_task` did, unless the chain holds it (a
        creation lost with a node's unsaved state is sent again)."""
        if self.task(task_id).spec_hash == spec_hash:
            return _already()
        count = self.task_count()
        if count + 1 != task_id:
            raise ChainError(
                f"task {task_id} is not on chain and cannot be created again with that id (the "
                f"chain has {count} tasks): start a new run"
            )
        _, result = self.create_task(spec_hash, initial_model_hash, reward_per_round, token)
        return result

    def fund_task(self, task_id: TaskId, amount: int) -> TxResult:
        """Approve the ledger for ``amount`` of the task's token, then move it into the pool."""
        task = self.task(task_id)
        if task.spec_hash == _ZERO32:  # refuse before the approve costs gas
            raise REVERT_ERRORS["LedgerTaskUnknown"](taskId=task_id)
        token = self.w3.eth.contract(address=_address(task.token), abi=self.token.abi)
        self._send(token.functions.approve(self.ledger.address, amount))
        return self._send(self.ledger.functions.fundTask(task_id, amount))

    def ensure_funded(self, task_id: TaskId, total: int) -> TxResult:
        """Fund the task up to ``total`` in all; recognised as done when it holds that much."""
        missing = total - self.task(task_id).funded
        if missing <= 0:
            return _already()
        return self.fund_task(task_id, missing)

    def ensure_balance(self, address: str, wei: int) -> TxResult:
        """Send ``address`` what it lacks of ``wei`` for gas; done when it holds that much."""
        balance = int(self._rpc(lambda: self.w3.eth.get_balance(_address(address))))
        if balance >= wei:
            return _already()
        return self.transfer_eth(address, wei - balance)

    def mint(self, to: str, amount: int) -> TxResult:
        """Mint dev tokens (the account needs MINTER_ROLE on the dev token)."""
        return self._send(self.token.functions.mint(_address(to), amount))

    def transfer_eth(self, to: str, wei: int) -> TxResult:
        """Send ``wei`` of the chain's native currency, for gas."""
        tx = {"to": _address(to), "value": wei, "gas": 21_000}
        return self._send_tx(tx)

    def grant_coordinator(self, address: str) -> TxResult:
        role = self._rpc(lambda: self.ledger.functions.COORDINATOR_ROLE().call())
        return self._send(self.ledger.functions.grantRole(role, _address(address)))

    def register_participant(self, address: str, org_hash: bytes) -> TxResult:
        """Register ``address``; recognised as done when it is already active with ``org_hash``."""
        record = self.participant(address)
        if record.status == ParticipantStatus.ACTIVE and record.org_hash == org_hash:
            return _already()
        return self._send(self.ledger.functions.registerParticipant(_address(address), org_hash))

    def register_participants(
        self, addresses: Sequence[str], org_hashes: Sequence[bytes]
    ) -> TxResult:
        """Register several participants in one transaction; those already registered with the
        same organisation hash are recognised and left out."""
        if len(addresses) != len(org_hashes):
            raise ValueError(f"{len(addresses)} addresses but {len(org_hashes)} org hashes")
        records = self.participants(addresses) if addresses else []
        todo = [
            (_address(a), o)
            for a, o, r in zip(addresses, org_hashes, records, strict=True)
            if not (r.status == ParticipantStatus.ACTIVE and r.org_hash == o)
        ]
        if not todo:
            return _already()
        call = self.ledger.functions.registerParticipants(
            [a for a, _ in todo], [o for _, o in todo]
        )
        return self._send(call)

    def withdraw(self) -> TxResult:
        """Withdraw this account's consent."""
        return self._send(self.ledger.functions.withdraw())

    def open_round(self, task_id: TaskId, round_id: RoundId, parent: bytes) -> TxResult:
        """Open a round; recognised as done when it was already opened on ``parent`` (and is
        open, committed or failed since)."""
        record = self.round(task_id, round_id)
        if record.state != RoundState.NONE and record.parent_model_hash == parent:
            return _already()
        return self._send(self.ledger.functions.openRound(task_id, round_id, parent))

    def submit_commitment(self, commitment: Commitment) -> TxResult:
        """Record this account's own commitment (no coordinator needed)."""
        c = commitment
        held = self.direct_commitment(c.task_id, c.round, self.account.address)
        if held == c.update_hash:
            return _already()
        call = self.ledger.functions.submitCommitment(
            c.task_id, c.round, c.update_hash, c.num_examples
        )
        return self._send(call)

    def commit_round(
        self,
        task_id: TaskId,
        round_id: RoundId,
        commitments: Sequence[SignedCommitment],
        outcome: RoundOutcome,
        rewards: Sequence[Reward],
        *,
        open_next: bool = False,
    ) -> TxResult:
        """Close a round in one transaction; with ``open_next``, open the next round on the new
        model in the same transaction. Recognised as done when committed with this model."""
        record = self.round(task_id, round_id)
        if (
            record.state == RoundState.COMMITTED
            and record.global_model_hash == outcome.global_model_hash
        ):
            return self._already_committed(task_id, round_id, outcome, open_next)
        relayed = [
            (
                _address(s.participant),
                s.commitment.update_hash,
                s.commitment.num_examples,
                *s.compact(),
            )
            for s in sorted(commitments, key=lambda s: int(s.participant, 16))
        ]
        paid = [
            (_address(w.participant), w.score, w.amount)
            for w in sorted(rewards, key=lambda w: int(w.participant, 16))
        ]
        o = outcome
        call = self.ledger.functions.commitRound(
            task_id,
            round_id,
            relayed,
            (o.global_model_hash, o.accuracy_ppm, o.loss_ppm, o.scoring_hash),
            paid,
        )
        return self._send_commit(call, task_id, round_id, outcome, open_next)

    def _send_commit(
        self,
        commit: ContractFunction,
        task_id: TaskId,
        round_id: RoundId,
        outcome: RoundOutcome,
        open_next: bool,
    ) -> TxResult:
        """Send a round's commit, batched with the next round's opening when asked (the next
        round's clients wait for both: one transaction is one latency, not two)."""
        if not open_next:
            return self._send(commit)
        opening = self.ledger.functions.openRound(task_id, round_id + 1, outcome.global_model_hash)
        batch = [bytes.fromhex(_calldata(c)[2:]) for c in (commit, opening)]
        return self._send(self.ledger.functions.multicall(batch))

    def _already_committed(
        self, task_id: TaskId, round_id: RoundId, outcome: RoundOutcome, open_next: bool
    ) -> TxResult:
        """A commit found on chain; the next round is opened if asked and not yet (a round
        committed alone, before a restart)."""
        if open_next:
            self.open_round(task_id, RoundId(round_id + 1), outcome.global_model_hash)
        return _already()

    # ------------------------------------------------------------------ merkle commit mode

    def commit_round_root(
        self,
        task_id: TaskId,
        round_id: RoundId,
        tree: RoundRoot,
        outcome: RoundOutcome,
        *,
        open_next: bool = False,
    ) -> TxResult:
        """Close a round by the root of its reward tree (merkle mode), in one transaction of
        constant gas (with ``open_next``, opening the next round in it too); recognised as done
        when committed with this model and root."""
        record = self.round(task_id, round_id)
        if (
            record.state == RoundState.COMMITTED
            and record.global_model_hash == outcome.global_model_hash
            and self.reward_root(task_id, round_id).root == tree.root
        ):
            return self._already_committed(task_id, round_id, outcome, open_next)
        o = outcome
        call = self.ledger.functions.commitRoundRoot(
            task_id,
            round_id,
            (tree.root, tree.record_hash, tree.leaf_count, tree.total_reward),
            (o.global_model_hash, o.accuracy_ppm, o.loss_ppm, o.scoring_hash),
        )
        return self._send_commit(call, task_id, round_id, outcome, open_next)

    def reward_root(self, task_id: TaskId, round_id: RoundId) -> RewardRootRecord:
        """The reward root committed for a round (all zero when it has none)."""
        call = self.ledger.functions.getRewardRoot(task_id, round_id)
        root, total, claimed = self._rpc(call.call)
        return RewardRootRecord(bytes(root), int(total), int(claimed))

    def leaf_claimed(self, task_id: TaskId, round_id: RoundId, leaf_hash: bytes) -> bool:
        """Whether the reward leaf with this hash has been claimed."""
        call = self.ledger.functions.leafClaimed(task_id, round_id, leaf_hash)
        return bool(self._rpc(call.call))

    def reward_leaf_hash(self, leaf: RewardLeaf) -> bytes:
        """The leaf hash as the contract computes it."""
        call = self.ledger.functions.rewardLeafHash(_leaf_tuple(leaf))
        return bytes(self._rpc(call.call))

    def claim_leaves(self, task_id: TaskId, claims: Sequence[LeafClaim]) -> TxResult:
        """Prove reward leaves (any rounds of one task) in one transaction; each is credited to
        its participant, who pulls the tokens with :meth:`claim`."""
        call = self.ledger.functions.claimLeaves(
            task_id, [(c.round, _leaf_tuple(c.leaf), list(c.proof)) for c in claims]
        )
        return self._send(call)

    def fail_round(self, task_id: TaskId, round_id: RoundId, reason: str) -> TxResult:
        """Close an open round without a model; recognised as done when already failed."""
        if self.round(task_id, round_id).state == RoundState.FAILED:
            return _already()
        return self._send(self.ledger.functions.failRound(task_id, round_id, reason))

    def claim(self, token: str | None = None) -> tuple[int, TxResult]:
        """Pull everything this account is owed in ``token``; returns the amount paid."""
        token_address = _address(token or self.token.address)
        amount = self.owed(self.account.address, token_address)
        if amount == 0:
            return 0, _already()
        return amount, self._send(self.ledger.functions.claim(token_address))

    # ------------------------------------------------------------------ plumbing

    def _rpc(self, fn: Callable[[], _T]) -> _T:
        """Run chain calls; reverts become typed errors, a dead link ChainUnreachable.

        Transient failures are retried per JSON-RPC request by the provider (see
        :func:`_retry_each_request`), so a multi-request call never restarts from scratch.
        """
        try:
            return fn()
        except ChainError:
            raise
        except Exception as exc:
            if _is_revert(exc):
                raise self._decoder.decode(exc) from exc
            if _is_transient(exc):
                raise ChainUnreachable(self._url(), exc) from exc
            raise

    def _read_together(self, *reads: Callable[[], Any]) -> list[Any]:
        """Several reads in one round trip to a node (a JSON-RPC batch); in turn in process."""
        if not isinstance(self.w3.provider, HTTPProvider):
            return [self._rpc(read) for read in reads]

        def batched() -> list[Any]:
            with self.w3.batch_requests() as batch:
                for read in reads:
                    batch.add(read())
                return list(batch.execute())

        # a batch bypasses the per-request retry of the provider: retried here as a whole
        result: list[Any] = self._rpc(lambda: _with_retries(self.retry, self._url(), batched))
        return result

    def _raw_request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request to an HTTP node, its result as the node sent it (hex strings),
        for answers whose formatting by web3 costs more than the request (logs, receipts)."""
        provider = cast(HTTPProvider, self.w3.provider)
        response = self._rpc(lambda: provider.make_request(RPCEndpoint(method), params))
        if "error" in response:
            raise ChainError(f"{self._url()} refused {method}: {response['error']}")
        return response["result"]

    def _url(self) -> str:
        provider = self.w3.provider
        return str(getattr(provider, "endpoint_uri", None) or "the embedded chain")

    def check_durable(self) -> None:
        """Check that the node still holds the last transaction this gateway got mined.

        Raises
        ------
        ChainReset
            When it does not: the node restarted from an older state and lost it (and
            possibly more); the caller sends its writes again.
        """
        last = self._last_tx
        if last is None or self._in_process:  # an in-process chain cannot lose what it mined
            return
        if self._receipt(last) is None:
            self._last_tx = None  # what is sent again becomes the new reference
            raise ChainReset(self._url(), f"transaction 0x{bytes(last).hex()} is gone")

    def _send(self, call: ContractFunction) -> TxResult:
        sender = self.account.address
        request: dict[str, Any] = {"from": sender, "to": call.address, "data": _calldata(call)}
        self.check_durable()  # a nonce read from a node that lost our last write would be stale
        nonce, latest = self._read_together(
            lambda: self.w3.eth.get_transaction_count(sender, "pending"),
            lambda: self.w3.eth.get_block("latest"),
        )
        if self._in_process:
            # The embedded chain executes in this process: estimating would run every
            # transaction twice. Send with a generous limit; a revert is decoded afterwards.
            gas = _IN_PROCESS_GAS
        else:
            gas = self._gas_limit(request, int(latest["gasLimit"]))
        tx = {**request, "nonce": int(nonce), "gas": gas, "chainId": self.deployment.chain_id}
        try:
            return self._send_tx({**tx, **_fees(latest)})
        except TransactionFailed:
            if self._in_process:  # replay as a call: raises the typed revert if there is one
                self._rpc(lambda: self.w3.eth.call(cast(Any, request)))
            raise

    def _nonce(self) -> int:
        return int(
            self._rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"))
        )

    def _gas_limit(self, request: dict[str, Any], block_limit: int) -> int:
        """A gas limit for ``request``, from one execution of it (``eth_createAccessList``).

        ``eth_estimateGas`` searches for the lowest limit that succeeds, executing the call
        several times: 60 ms for a 50-participant commit on anvil, on every round's critical
        path, against 10 ms for one execution. The margin covers what the gas used leaves out:
        refunds (at most a fifth of the gas spent) and the 1/64 held back at each call. A
        revert, or a node without the method, falls back to the estimate, which raises the
        typed revert or gives the limit.
        """
        try:
            used = self._rpc(lambda: self.w3.eth.create_access_list(cast(Any, request)))
        except ChainUnreachable:
            raise
        except Exception:  # a revert or an unknown method: the estimate says which
            used = None
        if used is not None and not used.get("error"):
            limit = int(used["gasUsed"]) * _GAS_MARGIN_PERCENT // 100
            if limit <= block_limit:
                return limit
        return int(self._rpc(lambda: self.w3.eth.estimate_gas(cast(Any, request))))

    def _fees(self) -> dict[str, int]:
        return _fees(self._rpc(lambda: self.w3.eth.get_block("latest")))

    def _send_tx(self, tx: dict[str, Any]) -> TxResult:
        tx.setdefault("from", self.account.address)
        if "nonce" not in tx:
            self.check_durable()
            tx["nonce"] = self._nonce()
        tx.setdefault("chainId", self.deployment.chain_id)
        if "gas" not in tx:
            tx["gas"] = self._rpc(lambda: self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        if "maxFeePerGas" not in tx and "gasPrice" not in tx:
            tx.update(self._fees())
        signed = self.account.sign_transaction(tx)
        tx_hash = HexBytes(signed.hash)
        self._rpc(lambda: self._send_raw(signed.raw_transaction, tx_hash))
        mined = self._await_receipt(tx_hash, int(tx["nonce"]), signed.raw_transaction)
        self._last_tx = tx_hash
        result = TxResult("0x" + bytes(tx_hash).hex(), mined.block_number, mined.gas_used)
        if not mined.succeeded:
            raise TransactionFailed(
                f"transaction {result.tx_hash} failed in block {result.block_number}"
            )
        return result

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
        if self._in_process:  # mined as it was sent
            return _Mined.of(self._rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash)))
        policy = self.retry
        deadline = time.monotonic() + policy.receipt_timeout_s
        check_at = time.monotonic() + policy.lost_check_s
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                return receipt
            now = time.monotonic()
            if now >= deadline:
                raise ChainUnreachable(
                    self._url(),
                    f"transaction 0x{bytes(tx_hash).hex()} not mined within "
                    f"{policy.receipt_timeout_s:.0f} s",
                )
            if now >= check_at:
                self._check_pending(tx_hash, nonce, raw)
                check_at = time.monotonic() + policy.lost_check_s
            time.sleep(policy.receipt_poll_s)

    def _check_pending(self, tx_hash: HexBytes, nonce: int, raw: bytes) -> None:
        """Why a sent transaction is not mined yet: waiting, forgotten, or stranded.

        This gateway sends one transaction at a time and waits for it, so all of its account's
        earlier transactions are mined: fewer on chain means the node lost some (a restart from
        an older state) and this one waits behind a gap that only sending those again fills.
        """
        address = self.account.address
        mined = int(self._rpc(lambda: self.w3.eth.get_transaction_count(address, "latest")))
        if mined < nonce:
            self._last_tx = None  # what is sent again becomes the new reference
            raise ChainReset(
                self._url(),
                f"{mined} transactions of {address} are on chain, {nonce} were mined before",
            )
        if mined > nonce:
            if self._receipt(tx_hash) is None:
                raise TransactionFailed(
                    f"nonce {nonce} of {address} was used by another transaction (is another "
                    "process signing with this key?): send again"
                )
            return
        if self._lookup(tx_hash) is None:  # the node restarted and forgot it: send it again
            self._rpc(lambda: self._send_raw(raw, tx_hash))

    def _receipt(self, tx_hash: HexBytes) -> _Mined | None:
        """The receipt's figures, or None while the node knows of no such mined transaction.

        Read raw from an HTTP node: web3 formats every log of a receipt, 18 ms for a
        100-participant commit (200 logs) against 2.5 ms for the request, and a commit reads
        two receipts (this one's, and the previous one's in :meth:`check_durable`) on every
        round's critical path.
        """
        if isinstance(self.w3.provider, HTTPProvider):
            receipt = self._raw_request("eth_getTransactionReceipt", ["0x" + bytes(tx_hash).hex()])
            return None if receipt is None else _Mined.of(receipt)
        try:
            return _Mined.of(self._rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash)))
        except TransactionNotFound:
            return None

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
            _int(receipt["blockNumber"]), _int(receipt["gasUsed"]), _int(receipt["status"]) == 1
        )


def _int(value: Any) -> int:
    """A JSON-RPC quantity: a 0x-hex string from a node, an int from web3's formatters."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _fees(latest: Any) -> dict[str, int]:
    """EIP-1559 fees that stay valid while the base fee doubles (from the latest block)."""
    base = int(latest["baseFeePerGas"])
    return {"maxPriorityFeePerGas": 1, "maxFeePerGas": 2 * base + 1}


def _calldata(call: ContractFunction) -> str:
    """The call's transaction data, encoded by eth_abi directly.

    web3's own encoding first walks every argument through its normalisers (ENS names, text
    to bytes), which costs ten times the encoding: 23 ms against 2.6 ms for a 50-participant
    commit, paid on the round's critical path. fedchain's arguments are already typed values.
    """
    if call.kwargs:  # positional only: the ABI's order is the encoding's order
        raise TypeError(f"{call.fn_name}: pass the contract arguments by position")
    selector = function_abi_to_4byte_selector(call.abi)
    return "0x" + (selector + abi_encode(get_abi_input_types(call.abi), call.args)).hex()


def _retry_each_request(w3: Web3, policy: RetryPolicy) -> None:
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


def deploy(
    w3: Web3, deployer: LocalAccount, token_supply: int = 10**27, retry: RetryPolicy | None = None
) -> LedgerGateway:
    """Deploy the dev reward token and the Ledger; ``deployer`` becomes admin and coordinator."""
    _retry_each_request(w3, retry or RetryPolicy())
    chain_id = int(w3.eth.chain_id)
    block = int(w3.eth.block_number)
    token = _deploy_contract(w3, deployer, "DevToken", chain_id, deployer.address, token_supply)
    ledger = _deploy_contract(w3, deployer, "Ledger", chain_id, deployer.address)
    url = getattr(w3.provider, "endpoint_uri", None)
    deployment = Deployment(chain_id, ledger, token, block + 1, deployer.address, url and str(url))
    return LedgerGateway(w3, deployment, deployer, retry)


def send_native(w3: Web3, sender: LocalAccount, to: str, wei: int) -> TxResult:
    """Send ``wei`` of the chain's native currency (gas money) from ``sender`` to ``to``."""
    _retry_each_request(w3, RetryPolicy())
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx: Any = {
        "to": _address(to),
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


def _deploy_contract(w3: Web3, deployer: LocalAccount, name: str, chain_id: int, *args: Any) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    nonce = w3.eth.get_transaction_count(deployer.address, "pending")
    tx = factory.constructor(*args).build_transaction(
        {"from": deployer.address, "nonce": nonce, "chainId": chain_id}
    )
    signed = deployer.sign_transaction(dict(tx))
    w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(signed.hash)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise TransactionFailed(f"deploying {name} failed in tx 0x{bytes(signed.hash).hex()}")
    return str(receipt["contractAddress"])


@cache
def _task_layout() -> tuple[int, dict[str, tuple[int, int, int]]]:
    """The ``_tasks`` mapping's slot and its struct members: label -> (slot, offset, bytes)."""
    layout = load_artifact("Ledger")["storageLayout"]
    (entry,) = [s for s in layout["storage"] if s["label"] == "_tasks"]
    struct = layout["types"][entry["type"]]["value"]
    members = {
        m["label"]: (
            int(m["slot"]),
            int(m["offset"]),
            int(layout["types"][m["type"]]["numberOfBytes"]),
        )
        for m in layout["types"][struct]["members"]
    }
    return int(entry["slot"]), members


def _task_head_slots(task_id: int) -> tuple[int, int, int, int]:
    """Storage slots of a task's head model hash and last round, and the round's bit field."""
    base_slot, members = _task_layout()
    base = int.from_bytes(keccak(abi_encode(["uint256", "uint256"], [task_id, base_slot])), "big")
    head_member, round_member = members["headModelHash"], members["lastRound"]
    return base + head_member[0], base + round_member[0], 8 * round_member[1], 8 * round_member[2]


def _participant_record(fields: Sequence[Any]) -> ParticipantRecord:
    """A ``Ledger.Participant`` tuple as returned by a call."""
    return ParticipantRecord(
        ParticipantStatus(fields[0]), int(fields[1]), int(fields[2]), bytes(fields[3])
    )


def _leaf_tuple(leaf: RewardLeaf) -> tuple[Any, ...]:
    """A reward leaf as the ABI tuple ``Ledger.RewardLeaf``."""
    return (_address(leaf.participant), *leaf.values()[1:])


def _address(value: str) -> Any:
    return to_checksum_address(value)


def _already() -> TxResult:
    return TxResult(tx_hash="", block_number=0, gas_used=0, already_recorded=True)
