"""An in-process federation: the same ServerApp logic and ClientApp, without the Ray engine.

``fedchain simulate`` runs the apps under Flower's simulation engine, which starts Ray and one
worker process per core; on a small machine that start costs tens of seconds per run, far more
than a few rounds of a small model. Benchmarks that run hundreds of small federations (the
robustness matrix) use :func:`run_inprocess` instead: an :class:`InProcessGrid` delivers each
message to the very ClientApp ``fedchain simulate`` uses, one client after the other, in this
process, and :func:`fedchain.federation.coordinator.run_federation` drives the rounds as the
ServerApp does.
Replies are aggregated in a canonical order (by update hash), so a seed gives the same models
and hashes as under the simulation engine (a test checks it).
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedchain.federation.round_report import RoundReport
from fedchain.federation.run_artifacts import RunRecord
from fedchain.record_keys import NODE_NUM_PARTITIONS, NODE_PARTITION_ID
from fedchain.settings import RunSettings

__all__ = ["InProcessGrid", "run_inprocess"]

log = logging.getLogger(__name__)

#: The server's node id in Flower (``SUPERLINK_NODE_ID``); clients are numbered after it.
_SERVER_NODE_ID = 1
_RUN_ID = 1
#: Flower's error code for an exception raised in a ClientApp.
_CLIENT_APP_RAISED = 300


class InProcessGrid(Grid):
    """A Flower Grid whose nodes are ``num_nodes`` copies of ``client_app`` in this process.

    Node ``k`` (``k = 0 .. num_nodes - 1``) has node id ``k + 2`` and the node config Flower's
    simulation gives it: ``partition-id = k``, ``num-partitions = num_nodes``. Messages are
    copied on the way in and out, as a transport would. A ClientApp that raises answers with an
    error reply, as under the simulation engine. Clients run one after the other; a reply that
    took a client longer than ``send_and_receive``'s ``timeout`` is dropped, as if it arrived
    after the server stopped waiting.
    """

    def __init__(
        self, client_app: ClientApp, num_nodes: int, run_config: dict[str, object] | None = None
    ) -> None:
        self._app = client_app
        self._run = Run.create_empty(_RUN_ID)
        self._contexts = {
            k + _SERVER_NODE_ID + 1: Context(
                run_id=_RUN_ID,
                node_id=k + _SERVER_NODE_ID + 1,
                node_config={
                    NODE_PARTITION_ID: k,
                    NODE_NUM_PARTITIONS: num_nodes,
                },
                state=RecordDict(),
                run_config=dict(run_config or {}),  # type: ignore[arg-type]
            )
            for k in range(num_nodes)
        }

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("the in-process grid only answers send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("the in-process grid only answers send_and_receive")

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver each message to its node's ClientApp; return the replies in time."""
        replies = []
        for message in messages:
            sent = copy.deepcopy(message)
            sent.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            context = self._contexts.get(sent.metadata.dst_node_id)
            if context is None:
                continue  # no such node: no reply, as on a real grid
            started = time.monotonic()
            try:
                reply = self._app(sent, context)
            except Exception as exc:  # a failing client answers with an error, as in Flower
                log.warning("node %d raised: %s", sent.metadata.dst_node_id, exc)
                reply = Message(Error(_CLIENT_APP_RAISED, f"{type(exc).__name__}: {exc}"),
                                reply_to=sent)  # fmt: skip
            if timeout is not None and time.monotonic() - started > timeout:
                log.warning("node %d answered after the %.0f s timeout", context.node_id, timeout)
                continue  # too late: the server never sees it
            replies.append(copy.deepcopy(reply))
        return replies


def run_inprocess(
    settings: RunSettings, on_round: Callable[[RoundReport], None] | None = None
) -> RunRecord:
    """Run the federation of ``settings`` in this process; return its record.

    The same rounds, checks, ledger records and artifacts as ``fedchain simulate``, without
    Flower's simulation engine: clients train one after the other.
    """
    from fedchain.client_app import make_client_app
    from fedchain.federation.coordinator import run_federation

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, _RUN_ID, _SERVER_NODE_ID
    grid = InProcessGrid(make_client_app(settings), settings.num_clients)
    return run_federation(grid, settings, on_round)
