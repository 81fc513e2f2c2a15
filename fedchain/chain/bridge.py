"""A JSON-RPC endpoint on 127.0.0.1 for the embedded chain, so other processes can reach it.

Flower's simulation runs each ClientApp in a Ray worker process; the embedded chain lives in the
ServerApp's process. The bridge lets those clients read the chain (the committed global model they
verify against) and submit their own commitments, over the standard JSON-RPC they would use with
any node. Requests go through web3's own request formatting into eth-tester; results are encoded
back into JSON-RPC's hex conventions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from web3 import Web3

__all__ = ["RpcBridge"]

#: What a client needs: chain id, reads, and sending its own transaction.
_ALLOWED = frozenset(
    {
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_call",
        "eth_getBalance",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getLogs",
        "eth_getBlockByNumber",
        "eth_getTransactionCount",
        "eth_estimateGas",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
    }
)
_INVALID_REQUEST = -32600
_METHOD_NOT_FOUND = -32601
_EXECUTION_ERROR = 3
_SERVER_ERROR = -32000


def _to_rpc(value: Any) -> Any:
    """web3's Python values back to JSON-RPC's: quantities and bytes as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _to_rpc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_rpc(v) for v in value]
    return value


class RpcBridge:
    """Serve ``w3``'s chain as JSON-RPC at ``url`` (127.0.0.1, a free port) until :meth:`close`."""

    def __init__(self, w3: Web3, host: str = "127.0.0.1", port: int = 0) -> None:
        self._w3 = w3
        handler = self._handler_class()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, request: Any) -> dict[str, Any]:
        """The JSON-RPC response to one decoded request."""
        if not isinstance(request, dict) or "method" not in request:
            return _error(None, _INVALID_REQUEST, "not a JSON-RPC request")
        rid, method = request.get("id"), request["method"]
        if method not in _ALLOWED:
            return _error(rid, _METHOD_NOT_FOUND, f"{method} is not served by the bridge")
        try:
            result = self._w3.manager.request_blocking(method, request.get("params", []))
        except Exception as exc:  # every failure becomes a JSON-RPC error for the client
            return _revert_or_error(rid, exc)
        return {"jsonrpc": "2.0", "id": rid, "result": _to_rpc(result)}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError:
                    reply: Any = _error(None, _INVALID_REQUEST, "body is not JSON")
                else:
                    reply = (
                        [bridge.answer(r) for r in body]
                        if isinstance(body, list)
                        else bridge.answer(body)
                    )
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: requests are not logged."""

        return Handler


def _error(rid: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def _revert_or_error(rid: Any, exc: Exception) -> dict[str, Any]:
    from fedchain.chain._reverts import revert_data

    raw = revert_data(exc)
    if raw is not None:
        return _error(rid, _EXECUTION_ERROR, "execution reverted", "0x" + raw.hex())
    return _error(rid, _SERVER_ERROR, str(exc))
