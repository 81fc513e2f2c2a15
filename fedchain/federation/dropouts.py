"""Simulated dropouts: which sampled clients fail or time out in a round, and how they do it.

With ``dropout`` P > 0 each sampled client, in each round, drops out with probability P: half of
the dropped ones fail (the ClientApp raises, Flower hands the server an error reply), the other
half time out (the ClientApp answers only after the round's timeout, so the server never sees the
reply). The draw depends only on the run's seed, the round and the client's partition, so a run,
and a resumed run, drop the same clients in the same rounds.

A real node that drops out (a hospital's SuperNode stops) is reported by Flower's SuperLink,
which answers in its place with an error reply; :func:`lost_node_reason` says what it means.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time

from flwr.common.constant import ErrorCode

from fedchain.errors import FedchainError

__all__ = ["NO_REPLY", "DropoutError", "Fate", "act_out", "fate", "lost_node_reason"]

log = logging.getLogger(__name__)

#: How long after the round's timeout a timed-out client gives up (it never answers in time).
TIMEOUT_MARGIN_S = 1.0


class Fate(enum.Enum):
    """What a dropped client does."""

    FAIL = "fail"
    TIMEOUT = "timeout"


class DropoutError(FedchainError, RuntimeError):
    """A simulated client dropped out of a round (the ``dropout`` setting)."""


def _uniforms(seed: int, server_round: int, partition_id: int) -> tuple[float, float]:
    """Two uniform draws in [0, 1), a pure function of (seed, round, partition)."""
    digest = hashlib.sha256(f"fedchain-dropout:{seed}:{server_round}:{partition_id}".encode())
    raw = digest.digest()
    scale = float(1 << 64)
    return int.from_bytes(raw[:8], "big") / scale, int.from_bytes(raw[8:16], "big") / scale


def fate(seed: int, server_round: int, partition_id: int, probability: float) -> Fate | None:
    """Whether, and how, simulated client ``partition_id`` drops out of ``server_round``.

    Parameters
    ----------
    seed : int
        The run's seed.
    server_round : int
        The round (from 1).
    partition_id : int
        The simulated client's partition.
    probability : float
        The ``dropout`` setting, in [0, 1).

    Returns
    -------
    Fate or None
        None when the client takes part, else how it drops out.
    """
    if probability <= 0:
        return None
    drop, kind = _uniforms(seed, server_round, partition_id)
    if drop >= probability:
        return None
    return Fate.FAIL if kind < 0.5 else Fate.TIMEOUT


def act_out(dropped: Fate, server_round: int, partition_id: int, round_timeout_s: float) -> None:
    """Play the dropout: raise at once (fail), or after the round's timeout (time out).

    Raises
    ------
    DropoutError
        Always: a dropped client sends no update.
    """
    if dropped is Fate.TIMEOUT:
        log.info(
            "simulated dropout: client %d stays silent in round %d", partition_id, server_round
        )
        time.sleep(round_timeout_s + TIMEOUT_MARGIN_S)
        raise DropoutError(
            f"simulated dropout: client {partition_id} timed out in round {server_round}"
        )
    raise DropoutError(f"simulated dropout: client {partition_id} failed in round {server_round}")


# ---------------------------------------------------------------------- a real node dropping out

#: What Flower's SuperLink means when it answers in a lost node's place (its ``Error`` codes).
_LOST = {
    ErrorCode.NODE_UNAVAILABLE: (
        "node unavailable: its SuperNode missed its heartbeats (stopped, or lost its "
        "connection to the SuperLink)"
    ),
    ErrorCode.REPLY_MESSAGE_UNAVAILABLE: (
        "its reply expired on the SuperLink before the server read it"
    ),
    ErrorCode.MESSAGE_UNAVAILABLE: (
        "the round's message to it expired or was deleted on the SuperLink (the node removed?)"
    ),
}
#: Why a sampled node is absent when nothing at all came back for it.
NO_REPLY = "no reply within the round timeout"


def lost_node_reason(code: int, reason: str) -> str:
    """Why a node is absent, from the error the SuperLink sent in its place (Flower's ``Error``
    code and reason), in the words a hospital's operator acts on."""
    known = _LOST.get(code)
    if known is not None:
        return known
    first = next((line.strip() for line in reason.splitlines() if line.strip()), "")
    return f"lost by the SuperLink (Flower error {code}: {first or 'no reason given'})"
