"""Decoding the ledger's logs into event names and arguments, with eth_abi directly.

web3's ``process_log`` rebuilds its decoders and walks each argument through its normalisers
for every log: reading back a 100-client run's 1,200 events took half a second that way, at the
end of every run. Here each event's types are resolved once per ABI. Bytes arguments become
0x-hex strings and addresses are checksummed, as web3 gives them; indexed arguments come first,
then the data, in ABI order, as web3 orders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from fedchain.chain.errors import EventDecodeError

__all__ = ["LogDecoder"]


@dataclass(frozen=True)
class _EventLayout:
    name: str
    topics: tuple[tuple[str, str], ...]  # (argument, type) of the indexed arguments
    data: tuple[tuple[str, str], ...]  # (argument, type) of the others


class LogDecoder:
    """Decodes the logs of one contract ABI's events."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._layouts: dict[bytes, _EventLayout] = {}
        for entry in abi:
            if entry["type"] != "event" or entry.get("anonymous"):
                continue
            inputs = entry["inputs"]
            for i in inputs:  # a dynamic indexed argument is stored as its hash: not decodable
                dynamic = i["type"] in ("string", "bytes", "tuple") or "[" in i["type"]
                if i["indexed"] and dynamic:
                    raise EventDecodeError(f"{entry['name']}: indexed {i['type']} is stored hashed")
            signature = f"{entry['name']}({','.join(i['type'] for i in inputs)})"
            self._layouts[keccak(text=signature)] = _EventLayout(
                str(entry["name"]),
                tuple((i["name"], i["type"]) for i in inputs if i["indexed"]),
                tuple((i["name"], i["type"]) for i in inputs if not i["indexed"]),
            )

    def decode(self, log: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(event name, arguments) of a log, as web3 formats it or as a node sends it (hex
        strings); None for a log of no event in the ABI."""
        topics = [bytes(HexBytes(t)) for t in log["topics"]]
        layout = self._layouts.get(topics[0]) if topics else None
        if layout is None:
            return None
        if len(topics) != 1 + len(layout.topics):
            raise EventDecodeError(
                f"{layout.name}: {len(topics) - 1} topics, expected {len(layout.topics)}"
            )
        args: dict[str, Any] = {}
        for (name, kind), topic in zip(layout.topics, topics[1:], strict=True):
            (args[name],) = abi_decode([kind], topic)
        values = abi_decode([kind for _, kind in layout.data], bytes(HexBytes(log["data"])))
        args.update(zip((name for name, _ in layout.data), values, strict=True))
        kinds = dict(layout.topics + layout.data)
        return layout.name, {k: _plain(kinds[k], v) for k, v in args.items()}


def _plain(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
