"""The ledger gateway: fedchain's one door to the contracts (and, with backends.py, to web3).

:class:`LedgerPort` is what the federation needs of a ledger; :class:`LedgerGateway` implements
it with the Ledger's reads and writes. The writes are idempotent: the high-level calls first
check whether what they are asked to record is already on chain, so a retry never duplicates a
round. How requests and transactions travel (nonce, gas, receipts, retries) is in _transport.py,
revert decoding in _reverts.py, deployment in deploy.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Protocol, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import get_abi_output_types
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from fedchain.chain._artifacts import load_artifact
from fedchain.chain._reverts import RevertDecoder, revert_data
from fedchain.chain._transport import (
    RetryPolicy,
    Transport,
    TxResult,
    calldata,
    quantity,
    send_native,
)
from fedchain.chain.backends import EmbeddedProvider
from fedchain.chain.deployments import Deployment
from fedchain.chain.errors import REVERT_ERRORS, ChainError, DeploymentError
from fedchain.chain.logs import LogDecoder
from fedchain.chain.merkle import LeafClaim, RewardLeaf, RewardRootRecord, RoundRoot
from fedchain.chain.records import (
    Commitment,
    Consent,
    FunderRecord,
    Membership,
    ParticipantRecord,
    ParticipantStatus,
    Reward,
    RoundId,
    RoundOutcome,
    RoundRecord,
    RoundState,
    SignedCommitment,
    SignedConsent,
    TaskId,
    TaskRecord,
    TaskStatus,
    TaskTerms,
)
from fedchain.chain.signing import LedgerDomain

__all__ = [
    "LedgerEvent",
    "LedgerGateway",
    "LedgerPort",
    "RetryPolicy",
    "TxResult",
    "revert_data",
    "send_native",
]

_ZERO32 = b"\x00" * 32


@dataclass(frozen=True)
class LedgerEvent:
    """One decoded ledger event; bytes arguments are 0x-hex strings."""

    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int


class LedgerPort(Protocol):
    """What the federation needs of a ledger; :class:`LedgerGateway` implements it on any chain."""

    @property
    def domain(self) -> LedgerDomain: ...

    def task(self, task_id: TaskId) -> TaskRecord: ...

    def task_head(self, task_id: TaskId) -> tuple[bytes, RoundId]: ...

    def round(self, task_id: TaskId, round_id: RoundId) -> RoundRecord: ...

    def participant(self, address: str) -> ParticipantRecord: ...

    def participants(self, addresses: Sequence[str]) -> list[ParticipantRecord]: ...

    def memberships(self, task_id: TaskId, addresses: Sequence[str]) -> list[Membership]: ...

    def receipt_events(self, tx_hash: str) -> list[LedgerEvent]: ...

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
        ledger_abi = load_artifact("Ledger")["abi"]
        token_abi = load_artifact("DevToken")["abi"]
        decoder = RevertDecoder([ledger_abi, token_abi])
        self._transport = Transport(w3, account, deployment.chain_id, self.retry, decoder)
        self.ledger: Contract = w3.eth.contract(address=_address(deployment.ledger), abi=ledger_abi)
        self.token: Contract = w3.eth.contract(address=_address(deployment.token), abi=token_abi)
        self._logs = LogDecoder(ledger_abi)
        self._min_durations: dict[int, int] = {}  # task -> its minimum round duration (fixed)
        # Tasks this gateway created -> the participants it relayed consents for since.
        self._created: dict[int, set[str]] = {}
        # On a ledger this gateway deployed (see fedchain.chain.deploy), while it is the only
        # registrar: the organisations it registered; None when others may have registered.
        self._registered: set[str] | None = None
        chain_id = self._transport.rpc(lambda: w3.eth.chain_id)
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
        t = self._transport.rpc(lambda: self.ledger.functions.getTask(task_id).call())
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
            reserved=int(t[8]),
            refunded=int(t[9]),
            swept=int(t[10]),
            status=TaskStatus(int(t[11])),
            min_round_duration=int(t[12]),
            challenge_period=int(t[13]),
            claim_period=int(t[14]),
            claim_deadline=int(t[15]),
            round_opened_at=int(t[16]),
            round_opened_block=int(t[17]),
            member_count=int(t[18]),
            epsilon_cap=int(t[19]),
        )

    def task_head(self, task_id: TaskId) -> tuple[bytes, RoundId]:
        """The task's latest committed model hash and latest opened round, read cheaply.

        Two storage words instead of a contract call (a participant polls this every round),
        located with the compiler's storage layout shipped in the artifact. Both are read at
        one block: at ``latest`` each, a block mined between them paired the new round with the
        previous head, and the participant refused the model the chain had just committed.
        """
        head_slot, round_slot, shift, width = _task_head_slots(task_id)
        address = self.ledger.address
        block = self._transport.rpc(lambda: self.w3.eth.block_number)
        words = self._transport.read_together(
            lambda: self.w3.eth.get_storage_at(address, head_slot, block),
            lambda: self.w3.eth.get_storage_at(address, round_slot, block),
        )
        head, packed = bytes(words[0]), bytes(words[1])
        last_round = (int.from_bytes(packed, "big") >> shift) & ((1 << width) - 1)
        return head.rjust(32, b"\x00"), RoundId(last_round)

    def task_count(self) -> int:
        return int(self._transport.rpc(lambda: self.ledger.functions.taskCount().call()))

    def round(self, task_id: TaskId, round_id: RoundId) -> RoundRecord:
        r = self._transport.rpc(lambda: self.ledger.functions.getRound(task_id, round_id).call())
        return RoundRecord(RoundState(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4]))

    def participant(self, address: str) -> ParticipantRecord:
        call = self.ledger.functions.getParticipant(_address(address))
        p = self._transport.rpc(call.call)
        return _participant_record(p)

    def participants(self, addresses: Sequence[str]) -> list[ParticipantRecord]:
        """The records of several participants, in one call."""
        call = self.ledger.functions.getParticipants([_address(a) for a in addresses])
        # Read past web3's output formatters, which cost 35 ms for the 50 records a round asks.
        request: Any = {"to": call.address, "data": calldata(call)}
        raw = bytes(self._transport.rpc(lambda: self.w3.eth.call(request)))
        (records,) = abi_decode(get_abi_output_types(call.abi), raw)
        return [_participant_record(p) for p in records]

    def membership(self, task_id: TaskId, address: str) -> Membership:
        """``address``'s membership of task ``task_id`` (all zero if it never joined)."""
        call = self.ledger.functions.getMembership(task_id, _address(address))
        return _membership(self._transport.rpc(call.call))

    def memberships(self, task_id: TaskId, addresses: Sequence[str]) -> list[Membership]:
        """The memberships of several accounts in one task, in one call (a ``multicall`` of
        ``getMembership``, read at one block)."""
        if not addresses:
            return []
        provider = self.w3.provider
        if isinstance(provider, EmbeddedProvider):
            return self._memberships_from_storage(provider, task_id, addresses)
        calls = [self.ledger.functions.getMembership(task_id, _address(a)) for a in addresses]
        return [_membership(fields) for fields in self._read_many(calls)]

    def _memberships_from_storage(
        self, provider: EmbeddedProvider, task_id: TaskId, addresses: Sequence[str]
    ) -> list[Membership]:
        """The memberships read from the ledger's storage words, located with the compiler's
        storage layout, all at one block: on py-evm, executing ``getMembership`` 100 times in a
        multicall took a fifth of a round's server time, reading 200 words about a tenth."""
        _, members = _struct_layout("_members", nesting=2)
        width = 1 + max(slot for slot, _, _ in members.values())
        firsts = [_membership_slot(task_id, a) for a in addresses]
        slots = [first + i for first in firsts for i in range(width)]
        words = provider.storage_words(str(self.ledger.address), slots)
        return [_membership_from_words(words[i : i + width]) for i in range(0, len(words), width)]

    def privacy_spent(self, task_id: TaskId, address: str) -> int:
        """``address``'s recorded privacy spend in task ``task_id``, in micro-epsilon (the
        cumulative epsilon of its latest recorded commitment; 0 if none)."""
        return self.membership(task_id, address).epsilon_spent

    def is_eligible(self, task_id: TaskId, round_id: RoundId, address: str) -> bool:
        call = self.ledger.functions.isEligible(task_id, round_id, _address(address))
        return bool(self._transport.rpc(call.call))

    def funder(self, task_id: TaskId, address: str) -> FunderRecord:
        """What ``address`` put into task ``task_id`` and was paid back."""
        call = self.ledger.functions.getFunder(task_id, _address(address))
        contributed, refunded, swept = self._transport.rpc(call.call)
        return FunderRecord(int(contributed), int(refunded), int(swept))

    def paused(self) -> bool:
        return bool(self._transport.rpc(self.ledger.functions.paused().call))

    def has_role(self, role: str, address: str) -> bool:
        """Whether ``address`` holds ``role`` ("COORDINATOR_ROLE", "REGISTRAR_ROLE", ...)."""
        role_id = self._role(role)
        call = self.ledger.functions.hasRole(role_id, _address(address))
        return bool(self._transport.rpc(call.call))

    def consent_digest(self, consent: Consent) -> bytes:
        """The consent digest as the contract computes it."""
        c = consent
        call = self.ledger.functions.consentDigest(
            c.task_id, c.spec_hash, c.dataset_size, c.data_hash
        )
        return bytes(self._transport.rpc(call.call))

    def receipt_events(self, tx_hash: str) -> list[LedgerEvent]:
        """The ledger events of one mined transaction (none for a write found already done)."""
        if not tx_hash:
            return []
        provider = self.w3.provider
        if isinstance(provider, EmbeddedProvider):
            node = provider.node_receipt(bytes(HexBytes(tx_hash)))
            if node is not None:  # else web3 raises its TransactionNotFound, as for a node
                return [e for e in (self._event(log) for log in node["logs"]) if e is not None]
        receipt = self._transport.rpc(
            lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        )
        return [e for e in (self._event(log) for log in receipt["logs"]) if e is not None]

    def _read_many(self, calls: Sequence[ContractFunction]) -> list[Any]:
        """The results of several view calls of the ledger, in one ``eth_call`` of its
        ``multicall`` (past web3's output formatters, which are slow for many records)."""
        batch = [bytes.fromhex(calldata(c)[2:]) for c in calls]
        call = self.ledger.functions.multicall(batch)
        request: Any = {"to": call.address, "data": calldata(call)}
        raw = bytes(self._transport.rpc(lambda: self.w3.eth.call(request)))
        (results,) = abi_decode(["bytes[]"], raw)
        out = []
        for c, result in zip(calls, results, strict=True):
            (value,) = abi_decode(get_abi_output_types(c.abi), bytes(result))
            out.append(value)
        return out

    def _role(self, role: str) -> bytes:
        return bytes(self._transport.rpc(getattr(self.ledger.functions, role)().call))

    def direct_commitment(self, task_id: TaskId, round_id: RoundId, address: str) -> bytes:
        call = self.ledger.functions.directCommitment(task_id, round_id, _address(address))
        return bytes(self._transport.rpc(call.call))

    def owed(self, address: str, token: str | None = None) -> int:
        call = self.ledger.functions.owed(_address(token or self.token.address), _address(address))
        return int(self._transport.rpc(call.call))

    def claimed(self, address: str, token: str | None = None) -> int:
        call = self.ledger.functions.claimed(
            _address(token or self.token.address), _address(address)
        )
        return int(self._transport.rpc(call.call))

    def token_decimals(self, token: str | None = None) -> int:
        """The ERC-20 ``decimals`` of ``token`` (default: the deployment's dev token)."""
        contract = self.w3.eth.contract(
            address=_address(token or self.token.address), abi=self.token.abi
        )
        return int(self._transport.rpc(contract.functions.decimals().call))

    def token_balance(self, address: str) -> int:
        call = self.token.functions.balanceOf(_address(address))
        return int(self._transport.rpc(call.call))

    def commitment_digest(self, commitment: Commitment) -> bytes:
        c = commitment
        call = self.ledger.functions.commitmentDigest(
            c.task_id, c.round, c.update_hash, c.num_examples, c.epsilon
        )
        return bytes(self._transport.rpc(call.call))

    def block_timestamp(self, block_number: int) -> int:
        """The time (Unix seconds) of block ``block_number``, as the ledger's code read it."""
        block = self._transport.rpc(lambda: self.w3.eth.get_block(block_number))
        return int(block["timestamp"])

    def events(
        self, from_block: int | None = None, to_block: int | None = None
    ) -> list[LedgerEvent]:
        """Every Ledger event in the block range, decoded, in chain order."""
        start = self.deployment.block if from_block is None else from_block
        end = (
            self._transport.rpc(lambda: self.w3.eth.block_number) if to_block is None else to_block
        )
        return [e for e in (self._event(log) for log in self._raw_logs(start, end)) if e]

    def _event(self, log: Any) -> LedgerEvent | None:
        if str(log["address"]).lower() != str(self.ledger.address).lower():
            return None  # a token's Transfer in the same receipt, say
        event = self._logs.decode(log)
        if event is None:
            return None
        return LedgerEvent(
            name=event[0],
            args=event[1],
            block_number=quantity(log["blockNumber"]),
            tx_hash="0x" + bytes(HexBytes(log["transactionHash"])).hex(),
            log_index=quantity(log["logIndex"]),
        )

    def _raw_logs(self, start: int, end: int) -> list[Any]:
        """The ledger's logs in a block range; from a node, as it sent them (hex strings).

        web3's formatting of each log costs more than decoding it: 0.9 of the 1.6 s it took to
        read back a 1,000-client run's 2,300 events.
        """
        query: dict[str, Any] = {"address": self.ledger.address}
        provider = self.w3.provider
        if isinstance(provider, EmbeddedProvider):
            return provider.ledger_logs(str(self.ledger.address), start, end)
        if not isinstance(provider, HTTPProvider):
            query.update(fromBlock=start, toBlock=end)
            return list(self._transport.rpc(lambda: self.w3.eth.get_logs(cast(Any, query))))
        query.update(fromBlock=hex(start), toBlock=hex(end))
        return list(self._transport.raw_request("eth_getLogs", [query]))

    # ------------------------------------------------------------------ writes

    def create_task(
        self,
        spec_hash: bytes,
        initial_model_hash: bytes,
        reward_per_round: int,
        token: str | None = None,
        *,
        terms: TaskTerms | None = None,
    ) -> tuple[TaskId, TxResult]:
        """Create a task (with ``terms``, else the contract's defaults); the gateway's account
        becomes its coordinator. ``terms.epsilon_cap`` is the task's privacy cap (micro-epsilon)."""
        token_address = _address(token or self.token.address)
        if terms is None:
            call = self.ledger.functions.createTask(
                spec_hash, initial_model_hash, token_address, reward_per_round
            )
        else:
            t = terms
            call = self.ledger.functions.createTaskWithTerms(
                spec_hash,
                initial_model_hash,
                token_address,
                reward_per_round,
                (t.min_round_duration, t.challenge_period, t.claim_period, t.epsilon_cap),
            )
        result = self._transport.send(call)
        (created,) = [e for e in self.receipt_events(result.tx_hash) if e.name == "TaskCreated"]
        task_id = TaskId(int(created.args["taskId"]))
        self._created[task_id] = set()
        return task_id, result

    def ensure_task(
        self,
        task_id: TaskId,
        spec_hash: bytes,
        initial_model_hash: bytes,
        reward_per_round: int,
        token: str | None = None,
        *,
        terms: TaskTerms | None = None,
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
        _, result = self.create_task(
            spec_hash, initial_model_hash, reward_per_round, token, terms=terms
        )
        return result

    def fund_task(self, task_id: TaskId, amount: int) -> TxResult:
        """Approve the ledger for ``amount`` of the task's token, then move it into the pool."""
        task = self.task(task_id)
        if task.spec_hash == _ZERO32:  # refuse before the approve costs gas
            raise REVERT_ERRORS["LedgerTaskUnknown"](taskId=task_id)
        token = self.w3.eth.contract(address=_address(task.token), abi=self.token.abi)
        self._transport.send(token.functions.approve(self.ledger.address, amount))
        return self._transport.send(self.ledger.functions.fundTask(task_id, amount))

    def ensure_funded(self, task_id: TaskId, total: int) -> TxResult:
        """Fund the task up to ``total`` in all; recognised as done when it holds that much."""
        missing = total - self.task(task_id).funded
        if missing <= 0:
            return _already()
        return self.fund_task(task_id, missing)

    def ensure_balance(self, address: str, wei: int) -> TxResult:
        """Send ``address`` what it lacks of ``wei`` for gas; done when it holds that much."""
        balance = int(self._transport.rpc(lambda: self.w3.eth.get_balance(_address(address))))
        if balance >= wei:
            return _already()
        return self.transfer_eth(address, wei - balance)

    def mint(self, to: str, amount: int) -> TxResult:
        """Mint dev tokens (the account needs MINTER_ROLE on the dev token)."""
        return self._transport.send(self.token.functions.mint(_address(to), amount))

    def transfer_eth(self, to: str, wei: int) -> TxResult:
        """Send ``wei`` of the chain's native currency, for gas."""
        tx = {"to": _address(to), "value": wei, "gas": 21_000}
        return self._transport.send_tx(tx)

    def grant_coordinator(self, address: str) -> TxResult:
        return self.grant_role("COORDINATOR_ROLE", address)

    def grant_role(self, role: str, address: str) -> TxResult:
        """Grant ``role`` ("COORDINATOR_ROLE", "REGISTRAR_ROLE", "PAUSER_ROLE"); the account
        needs the role's admin, DEFAULT_ADMIN_ROLE. Recognised as done when held already."""
        if self.has_role(role, address):
            return _already()
        if role in ("REGISTRAR_ROLE", "DEFAULT_ADMIN_ROLE"):
            self._registered = None  # another account may register organisations from now on
        call = self.ledger.functions.grantRole(self._role(role), _address(address))
        return self._transport.send(call)

    def deployed_here(self) -> None:
        """Note that this gateway's account deployed the ledger just now (it is its only
        registrar): no organisation is registered but those this gateway registers."""
        self._registered = set()

    def register_organisation(
        self, address: str, name: str, metadata_hash: bytes, uri: str = ""
    ) -> TxResult:
        """Register (or update) the organisation of ``address`` as the registrar; recognised as
        done when it is registered with the same name, metadata hash and URI."""
        return self.register_organisations([(address, name, metadata_hash, uri)])

    def register_organisations(
        self, organisations: Sequence[tuple[str, str, bytes, str]]
    ) -> TxResult:
        """Register several organisations (address, name, metadata hash, URI) in one
        transaction (a ``multicall``); those registered with the same record are left out.

        Not read from the chain on a ledger this gateway deployed, when it registered none of
        them before (see :meth:`deployed_here`): reading 200 records cost a quarter of
        registering them on the embedded chain.
        """
        addresses = {o[0].lower() for o in organisations}
        known = self._registered
        if known is not None and known.isdisjoint(addresses):
            todo = [
                self.ledger.functions.registerOrganisation(_address(a), name, metadata, uri)
                for a, name, metadata, uri in organisations
            ]
        else:
            records = self.participants([o[0] for o in organisations]) if organisations else []
            todo = [
                self.ledger.functions.registerOrganisation(_address(a), name, metadata, uri)
                for (a, name, metadata, uri), r in zip(organisations, records, strict=True)
                if not (
                    r.status == ParticipantStatus.REGISTERED
                    and (r.name, r.org_hash, r.uri) == (name, metadata, uri)
                )
            ]
        result = self._send_batch(todo)
        if known is not None:
            known.update(addresses)
        return result

    def revoke_organisation(self, address: str) -> TxResult:
        """Revoke a registered organisation (final; it can join no new task)."""
        if self.participant(address).status == ParticipantStatus.REVOKED:
            return _already()
        return self._transport.send(self.ledger.functions.revokeOrganisation(_address(address)))

    def join_task(
        self,
        task_id: TaskId,
        dataset_size: int,
        data_hash: bytes,
        *,
        spec_hash: bytes | None = None,
    ) -> TxResult:
        """Join task ``task_id`` with this account's own consent to its spec (``spec_hash``,
        the spec reviewed; by default the chain's), its dataset size and data hash; recognised
        as done when it is a member with them."""
        held = self.membership(task_id, self.account.address)
        if held.joined and (held.dataset_size, held.data_hash) == (dataset_size, data_hash):
            return _already()
        spec_hash = spec_hash or self.task(task_id).spec_hash
        call = self.ledger.functions.joinTask(task_id, spec_hash, dataset_size, data_hash)
        return self._transport.send(call)

    def join_task_for(self, task_id: TaskId, consents: Sequence[SignedConsent]) -> TxResult:
        """Relay signed consents to task ``task_id`` in one transaction (``joinTaskFor``, or
        ``joinTaskForBatch`` for several); participants that joined already are left out.

        Not read from the chain for a task this gateway created, when it relayed none of these
        consents before: a new task's members are those its creator relayed (reading 200
        memberships cost a quarter of registering a 1,000-client simulation on the embedded
        chain). Anyone who joined it meanwhile by their own ``joinTask`` is skipped by
        ``joinTaskForBatch`` itself (ConsentSkipped), so the batch cannot fail on them.
        """
        participants = {c.participant.lower() for c in consents}
        relayed = self._created.get(task_id)
        if relayed is not None and len(consents) > 1 and relayed.isdisjoint(participants):
            todo = list(consents)
        else:
            held = self.memberships(task_id, [c.participant for c in consents])
            todo = [c for c, m in zip(consents, held, strict=True) if not m.joined]
        if not todo:
            return _already()
        tuples = [_consent_tuple(c) for c in todo]
        if len(tuples) == 1:
            result = self._transport.send(self.ledger.functions.joinTaskFor(task_id, tuples[0]))
        else:
            result = self._transport.send(self.ledger.functions.joinTaskForBatch(task_id, tuples))
        if relayed is not None:
            relayed.update(participants)
        return result

    def leave_task(self, task_id: TaskId) -> TxResult:
        """Leave task ``task_id`` from its first uncommitted round on (final for the task);
        recognised as done when this account has left already."""
        if self.membership(task_id, self.account.address).left_round:
            return _already()
        return self._transport.send(self.ledger.functions.leaveTask(task_id))

    def remove_member(self, task_id: TaskId, address: str) -> TxResult:
        """Remove ``address`` from task ``task_id`` as its coordinator; done when it has left."""
        if self.membership(task_id, address).left_round:
            return _already()
        call = self.ledger.functions.removeMember(task_id, _address(address))
        return self._transport.send(call)

    def close_task(self, task_id: TaskId, *, cancel: bool = False) -> TxResult:
        """Close (or cancel) task ``task_id`` as its coordinator or the admin: an open round is
        failed, the unattributed pool becomes refundable, and the claim deadline is set.
        Recognised as done when the task is no longer active."""
        if self.task(task_id).status in (TaskStatus.CLOSED, TaskStatus.CANCELLED):
            return _already()
        function = self.ledger.functions.cancelTask if cancel else self.ledger.functions.closeTask
        return self._transport.send(function(task_id))

    def refund(self, task_id: TaskId) -> tuple[int, TxResult]:
        """Pull this funder's pro-rata share of an ended task's unattributed tokens; returns
        the amount paid (0, and no transaction, when nothing new is due)."""
        return self._pull(task_id, "refund", "FundsRefunded")

    def sweep(self, task_id: TaskId) -> tuple[int, TxResult]:
        """Pull this funder's share of the merkle rewards unproven by the claim deadline."""
        return self._pull(task_id, "sweep", "UnclaimedSwept")

    def _pull(self, task_id: TaskId, function: str, event: str) -> tuple[int, TxResult]:
        call = getattr(self.ledger.functions, function)(task_id)
        due = int(self._transport.rpc(lambda: call.call({"from": self.account.address})))
        if due == 0:
            return 0, _already()
        result = self._transport.send(call)
        paid = sum(
            int(e.args["amount"]) for e in self.receipt_events(result.tx_hash) if e.name == event
        )
        return paid, result

    def set_task_coordinator(self, task_id: TaskId, coordinator: str) -> TxResult:
        """Hand task ``task_id`` to ``coordinator`` (the admin only)."""
        if self.task(task_id).coordinator.lower() == coordinator.lower():
            return _already()
        call = self.ledger.functions.setTaskCoordinator(task_id, _address(coordinator))
        return self._transport.send(call)

    def pause(self) -> TxResult:
        """Pause new work (PAUSER_ROLE); claims, refunds and leaving never pause."""
        if self.paused():
            return _already()
        return self._transport.send(self.ledger.functions.pause())

    def unpause(self) -> TxResult:
        """Lift the pause (DEFAULT_ADMIN_ROLE)."""
        if not self.paused():
            return _already()
        return self._transport.send(self.ledger.functions.unpause())

    def _send_batch(self, calls: Sequence[ContractFunction]) -> TxResult:
        """Send ledger calls as one transaction: alone, or in a ``multicall``."""
        if not calls:
            return _already()
        if len(calls) == 1:
            return self._transport.send(calls[0])
        batch = [bytes.fromhex(calldata(c)[2:]) for c in calls]
        return self._transport.send(self.ledger.functions.multicall(batch))

    def open_round(self, task_id: TaskId, round_id: RoundId, parent: bytes) -> TxResult:
        """Open a round; recognised as done when it was already opened on ``parent`` (and is
        open, committed or failed since)."""
        record = self.round(task_id, round_id)
        if record.state != RoundState.NONE and record.parent_model_hash == parent:
            return _already()
        return self._transport.send(self.ledger.functions.openRound(task_id, round_id, parent))

    def submit_commitment(self, commitment: Commitment) -> TxResult:
        """Record this account's own commitment (no coordinator needed)."""
        c = commitment
        held = self.direct_commitment(c.task_id, c.round, self.account.address)
        if held == c.update_hash:
            return _already()
        call = self.ledger.functions.submitCommitment(
            c.task_id, c.round, c.update_hash, c.num_examples, c.epsilon
        )
        return self._transport.send(call)

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
                s.commitment.epsilon,
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
        self._await_min_duration(task_id)
        if not open_next:
            return self._transport.send(commit)
        opening = self.ledger.functions.openRound(task_id, round_id + 1, outcome.global_model_hash)
        batch = [bytes.fromhex(calldata(c)[2:]) for c in (commit, opening)]
        return self._transport.send(self.ledger.functions.multicall(batch))

    def _await_min_duration(self, task_id: TaskId) -> None:
        """Wait until the open round has lasted the task's minimum round duration: a commit
        before that reverts (LedgerRoundTooShort). The next block's time is the wall clock's on
        a live node (anvil, a devnet, mainnet); the embedded chain's is its own, and the
        simulations it runs create tasks without one."""
        if self._min_durations.get(task_id) == 0:
            return  # terms are fixed at creation: a task without one is read once
        task = self.task(task_id)  # the open round's opening time
        self._min_durations[task_id] = task.min_round_duration
        if not task.min_round_duration:
            return
        wait = task.round_opened_at + task.min_round_duration + 1 - time.time()
        if wait > 0:
            time.sleep(wait)

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
        root, total, claimed, declared, claimed_count, claimable_at, voided = self._transport.rpc(
            call.call
        )
        return RewardRootRecord(
            bytes(root),
            int(total),
            int(claimed),
            int(declared),
            int(claimed_count),
            int(claimable_at),
            bool(voided),
        )

    def leaf_claimed(self, task_id: TaskId, round_id: RoundId, index: int) -> bool:
        """Whether the reward leaf at member index ``index`` of a round has been claimed."""
        call = self.ledger.functions.leafClaimed(task_id, round_id, index)
        return bool(self._transport.rpc(call.call))

    def reward_leaf_hash(self, leaf: RewardLeaf) -> bytes:
        """The leaf hash as the contract computes it (bound to the leaf's task and round)."""
        call = self.ledger.functions.rewardLeafHash(leaf.task_id, leaf.round, leaf.struct())
        return bytes(self._transport.rpc(call.call))

    def void_root(
        self, task_id: TaskId, round_id: RoundId, leaf: RewardLeaf, proof: Sequence[bytes]
    ) -> TxResult:
        """Void a round's reward root during its challenge period by proving one faulty leaf
        (it pays a non-member, carries another index, or more examples than the dataset)."""
        call = self.ledger.functions.voidRoot(task_id, round_id, _leaf_tuple(leaf), list(proof))
        return self._transport.send(call)

    def claim_leaves(self, task_id: TaskId, claims: Sequence[LeafClaim]) -> TxResult:
        """Prove reward leaves (any rounds of one task) in one transaction; each is credited to
        its participant, who pulls the tokens with :meth:`claim`."""
        call = self.ledger.functions.claimLeaves(
            task_id, [(c.round, _leaf_tuple(c.leaf), list(c.proof)) for c in claims]
        )
        return self._transport.send(call)

    def fail_round(self, task_id: TaskId, round_id: RoundId, reason: str) -> TxResult:
        """Close an open round without a model; recognised as done when already failed."""
        if self.round(task_id, round_id).state == RoundState.FAILED:
            return _already()
        return self._transport.send(self.ledger.functions.failRound(task_id, round_id, reason))

    def claim(self, token: str | None = None) -> tuple[int, TxResult]:
        """Pull everything this account is owed in ``token``; returns the amount paid."""
        token_address = _address(token or self.token.address)
        amount = self.owed(self.account.address, token_address)
        if amount == 0:
            return 0, _already()
        return amount, self._transport.send(self.ledger.functions.claim(token_address))

    # ------------------------------------------------------------------ transport

    def check_durable(self) -> None:
        """Check that the node still holds the last transaction this gateway got mined.

        Raises
        ------
        ChainReset
            When it does not: the node restarted from an older state and lost it (and
            possibly more); the caller sends its writes again.
        """
        self._transport.check_durable()


@cache
def _task_layout() -> tuple[int, dict[str, tuple[int, int, int]]]:
    """The ``_tasks`` mapping's slot and its struct members: label -> (slot, offset, bytes)."""
    return _struct_layout("_tasks", nesting=1)


@cache
def _struct_layout(label: str, nesting: int) -> tuple[int, dict[str, tuple[int, int, int]]]:
    """The slot of the mapping ``label`` (of ``nesting`` keys) and the members of the struct it
    maps to: label -> (slot, offset, bytes)."""
    layout = load_artifact("Ledger")["storageLayout"]
    (entry,) = [s for s in layout["storage"] if s["label"] == label]
    struct = entry["type"]
    for _ in range(nesting):
        struct = layout["types"][struct]["value"]
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


def _membership_slot(task_id: int, address: str) -> int:
    """The first storage slot of ``_members[task_id][address]``."""
    base_slot, _ = _struct_layout("_members", nesting=2)
    inner = keccak(abi_encode(["uint256", "uint256"], [task_id, base_slot]))
    outer = keccak(abi_encode(["address", "bytes32"], [address, inner]))
    return int.from_bytes(outer, "big")


#: The Membership fields in ``Membership``'s order, as ``getMembership`` returns them.
_MEMBERSHIP_FIELDS = ("joinedRound", "leftRound", "index", "datasetSize", "epsilonSpent")


def _membership_from_words(words: Sequence[int]) -> Membership:
    """A ``Ledger.Membership`` from its storage words (see ``_struct_layout``)."""
    _, members = _struct_layout("_members", nesting=2)
    values = []
    for name in _MEMBERSHIP_FIELDS:
        slot, offset, size = members[name]
        values.append((words[slot] >> (8 * offset)) & ((1 << (8 * size)) - 1))
    data_hash = words[members["dataHash"][0]].to_bytes(32, "big")
    joined, left, index, size, spent = values
    return Membership(joined, left, index, size, data_hash, spent)


def _participant_record(fields: Sequence[Any]) -> ParticipantRecord:
    """An ``OrganisationRegistry.Participant`` tuple as returned by a call."""
    return ParticipantRecord(
        ParticipantStatus(fields[0]),
        int(fields[1]),
        int(fields[2]),
        bytes(fields[3]),
        str(fields[4]),
        str(fields[5]),
    )


def _membership(fields: Sequence[Any]) -> Membership:
    """A ``Ledger.Membership`` tuple as returned by a call."""
    joined, left, index, size, spent, data_hash = fields
    return Membership(int(joined), int(left), int(index), int(size), bytes(data_hash), int(spent))


def _consent_tuple(signed: SignedConsent) -> tuple[Any, ...]:
    """A signed consent as the ABI tuple ``Ledger.SignedConsent``."""
    c = signed.consent
    return (_address(signed.participant), c.dataset_size, c.data_hash, *signed.compact())


def _leaf_tuple(leaf: RewardLeaf) -> tuple[Any, ...]:
    """A reward leaf as the ABI tuple ``Ledger.RewardLeaf``."""
    participant, *rest = leaf.struct()
    return (_address(participant), *rest)


def _address(value: str) -> Any:
    return to_checksum_address(value)


def _already() -> TxResult:
    return TxResult(tx_hash="", block_number=0, gas_used=0, already_recorded=True)
