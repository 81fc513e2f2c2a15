"""Helpers shared by the chain tests: hashes, a scripted federation, a flaky JSON-RPC proxy."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address

from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.chain.records import (
    Commitment,
    Consent,
    Reward,
    RoundId,
    RoundOutcome,
    SignedCommitment,
    TaskId,
)
from fedchain.chain.signing import LedgerDomain, sign_commitment, sign_consent

DEFAULT_BUDGET = 1_000
DEFAULT_FUNDING = 10_000
#: The dataset size a test participant consents with: above any example count the tests sign.
DATASET_SIZE = 1_000_000


def h(tag: str) -> bytes:
    """A 32-byte SHA-256 standing in for a model, update or spec hash."""
    return hashlib.sha256(tag.encode()).digest()


def hex32(tag: str) -> str:
    """``h(tag)`` as the 0x-hex string events carry."""
    return "0x" + h(tag).hex()


def checksummed(arguments: dict[str, Any]) -> dict[str, Any]:
    """Revert arguments with every address checksummed, to compare them with account addresses.

    The decoder's own address format is asserted once, in ``test_ledger_gateway``.
    """
    return {
        k: to_checksum_address(v) if isinstance(v, str) and is_hex_address(v) else v
        for k, v in arguments.items()
    }


def names(events: list[LedgerEvent], *keep: str) -> list[str]:
    """The event names, restricted to ``keep`` when given."""
    return [e.name for e in events if not keep or e.name in keep]


@dataclass
class Federation:
    """A coordinator gateway plus the small vocabulary the tests speak."""

    gw: LedgerGateway
    members: list[LocalAccount] = field(default_factory=list)
    tasks: list[TaskId] = field(default_factory=list)

    def task(
        self,
        budget: int = DEFAULT_BUDGET,
        funding: int = DEFAULT_FUNDING,
        spec: str = "spec",
        initial: str = "init",
    ) -> TaskId:
        task_id, _ = self.gw.create_task(h(spec), h(initial), budget)
        if funding:
            self.gw.fund_task(task_id, funding)
        self.tasks.append(task_id)
        if self.members:
            self.join(task_id, *self.members)
        return task_id

    def register(self, *accounts: LocalAccount) -> None:
        """Register the accounts' organisations and join them to every task created so far
        (and, through :meth:`task`, to every task created later)."""
        self.gw.register_organisations(
            [(a.address, f"Org {a.address[:8]}", h(f"org-{a.address}"), "") for a in accounts]
        )
        self.members.extend(accounts)
        for task_id in self.tasks:
            self.join(task_id, *accounts)

    def join(
        self, task_id: TaskId, *accounts: LocalAccount, dataset_size: int = DATASET_SIZE
    ) -> Any:
        """Relay the accounts' signed consents to ``task_id`` (each signs with its own key)."""
        spec_hash = self.gw.task(task_id).spec_hash
        consents = [
            sign_consent(
                a,
                self.gw.domain,
                Consent(task_id, spec_hash, dataset_size, h(f"data-{a.address}")),
            )
            for a in accounts
        ]
        return self.gw.join_task_for(task_id, consents)

    def open(self, task_id: TaskId, round_id: int, parent: str = "init") -> RoundId:
        self.gw.open_round(task_id, RoundId(round_id), h(parent))
        return RoundId(round_id)

    def sign(
        self,
        account: LocalAccount,
        task_id: TaskId,
        round_id: int,
        update: str | None = None,
        num_examples: int = 10,
        domain: LedgerDomain | None = None,
    ) -> SignedCommitment:
        tag = update or f"update-{task_id}-{round_id}-{account.address}"
        commitment = Commitment(task_id, RoundId(round_id), h(tag), num_examples)
        return sign_commitment(account, domain or self.gw.domain, commitment)

    def commit(
        self,
        task_id: TaskId,
        round_id: int,
        signers: list[LocalAccount] | list[SignedCommitment],
        model: str = "global",
        rewards: dict[str, int] | None = None,
    ) -> Any:
        signed = [
            s if isinstance(s, SignedCommitment) else self.sign(s, task_id, round_id)
            for s in signers
        ]
        paid = [Reward(a, 1_000_000, amount) for a, amount in (rewards or {}).items()]
        return self.gw.commit_round(task_id, RoundId(round_id), signed, outcome(model), paid)


def outcome(model: str = "global", accuracy_ppm: int = 900_000) -> RoundOutcome:
    return RoundOutcome(h(model), accuracy_ppm, 250_000, h(f"scoring-{model}"))


# ---------------------------------------------------------------------- the flaky proxy

PASS, FAIL_503, CLOSE, FORWARD_THEN_CLOSE = "pass", "503", "close", "forward-then-close"
UNKNOWN_METHOD = "unknown-method"  # answer as a node without that method does (-32601)
Rule = Callable[[int, str, int], str]
"""(request number from 1, JSON-RPC method, occurrence of that method from 1) -> action."""


@dataclass
class FlakyProxy:
    """A JSON-RPC proxy on 127.0.0.1 in front of ``upstream`` that fails requests on purpose.

    ``rule`` decides per request: pass it on, answer HTTP 503, close the connection without
    forwarding, forward it and close the connection instead of answering (the node acted,
    the client never heard), or answer that the node has no such method.
    """

    upstream: str
    rule: Rule = lambda n, method, k: PASS
    requests: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    forwarded_then_dropped: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self, rule: Rule) -> None:
        with self._lock:
            self.rule = rule
            self.requests = 0
            self.methods.clear()
            self.injected.clear()
            self.forwarded_then_dropped.clear()

    def decide(self, method: str) -> str:
        with self._lock:
            self.requests += 1
            self.methods[method] += 1
            action = self.rule(self.requests, method, self.methods[method])
            if action != PASS:
                self.injected[action] += 1
            return action

    def forward(self, body: bytes) -> bytes:
        parts = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            connection.request("POST", "/", body, {"Content-Type": "application/json"})
            return connection.getresponse().read()
        finally:
            connection.close()

    def start(self) -> FlakyProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    request = json.loads(body)
                    method = str(request.get("method"))
                except (ValueError, AttributeError):
                    request, method = {}, "?"
                action = proxy.decide(method)
                if action == FAIL_503:
                    self._answer(503, b"injected failure")
                    return
                if action == UNKNOWN_METHOD:
                    error = {"code": -32601, "message": f"the method {method} does not exist"}
                    answer = {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
                    self._answer(200, json.dumps(answer).encode())
                    return
                if action == CLOSE:
                    self.close_connection = True
                    return
                answer = proxy.forward(body)
                if action == FORWARD_THEN_CLOSE:
                    with proxy._lock:
                        proxy.forwarded_then_dropped.append(method)
                    self.close_connection = True
                    return
                self._answer(200, answer)

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(0.05), daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def running_proxy(upstream: str) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.close()
