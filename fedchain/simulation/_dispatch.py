"""Message dispatch of Flower's simulation engine in one pass over the pending messages.

Flower 1.41's simulation runtime hands messages to its backend from a thread that, ten times a
second, asks the link state for the next message of *every* node, and each ask scans *every*
stored message (``vce_api.add_messages_to_queue`` -> ``InMemoryLinkState.get_message_ins``).
That is nodes x messages checks per sweep: with 1,000 simulated clients and 50 sampled a round,
50,000 checks ten times a second, holding the GIL, and py-spy showed that thread taking half the
server process while the rounds crawled. :func:`install` replaces that thread's function with
one that scans the stored messages once per sweep and hands out, as Flower's does, at most one
undelivered message per node, after the same validity check (expired or orphaned messages are
deleted by the link state's own ``_check_stored_messages``) and with the same ``delivered_at``
stamp. Any other link state keeps Flower's function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from queue import Queue
from typing import Any

__all__ = ["install", "pending_messages"]

#: The Flower version whose internals this module was written against.
FLOWER_VERSION = "1.41.0"
_SWEEP_S = 0.1  # Flower's own pause between sweeps


def pending_messages(state: Any, nodes: Mapping[int, Any] | set[int]) -> list[Any]:
    """At most one undelivered message per node of ``nodes``, marked delivered (one pass)."""
    from flwr.supercore.date import now

    with state.lock:
        pending = [
            message_id
            for message_id, message in state.message_ins_store.items()
            if message.metadata.delivered_at == "" and message.metadata.dst_node_id in nodes
        ]
        if not pending:
            return []
        state._check_stored_messages(set(pending))  # drops expired or orphaned messages
        chosen: list[Any] = []
        served: set[int] = set()
        for message_id in pending:
            message = state.message_ins_store.get(message_id)
            if message is None or message.metadata.dst_node_id in served:
                continue
            served.add(message.metadata.dst_node_id)
            chosen.append(message)
        delivered_at = now().isoformat()
        for message in chosen:
            message.metadata.delivered_at = delivered_at
        return chosen


def _add_messages_to_queue(
    original: Callable[..., None],
) -> Callable[[Any, Queue[Any], Mapping[int, Any], threading.Event], None]:
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    def add_messages_to_queue(
        state: Any, queue: Queue[Any], nodes_mapping: Mapping[int, Any], f_stop: threading.Event
    ) -> None:
        if not isinstance(state, InMemoryLinkState):
            original(state, queue, nodes_mapping, f_stop)
            return
        nodes = set(nodes_mapping)
        while not f_stop.is_set():
            for message in pending_messages(state, nodes):
                queue.put(message)
            f_stop.wait(_SWEEP_S)

    add_messages_to_queue.fedchain_dispatch = True  # type: ignore[attr-defined]
    return add_messages_to_queue


def install() -> bool:
    """Use the one-pass dispatch in this process; False (Flower's kept) on another Flower."""
    import flwr
    from flwr.server.superlink.fleet.vce import vce_api

    if getattr(vce_api.add_messages_to_queue, "fedchain_dispatch", False):
        return True
    if flwr.__version__ != FLOWER_VERSION:
        return False
    vce_api.add_messages_to_queue = _add_messages_to_queue(  # type: ignore[assignment]
        vce_api.add_messages_to_queue
    )
    return True
