"""Client of the JSON-RPC control socket (SPEC §4.9): what ``petranode rpc`` and the tests use.

One connection per call: send the request line, shut down the write side, read until the server
closes. The EOF tells the server no more requests follow, so a notification or a batch of them
(which get no response) ends cleanly with an empty answer instead of a timeout.

Sending and receiving run concurrently on a plain socket so that a server which answers early
and closes (an oversized line) still has its answer read, even though our send then fails.
"""

import asyncio
import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from petranode.rpc.errors import JsonValue, MalformedResponse, RpcError, RpcUnavailable

log = logging.getLogger(__name__)

# Responses carry ledger and netDb listings, larger than any request; 16 MiB bounds a runaway.
MAX_RESPONSE_BYTES = 16 << 20
_CHUNK = 64 * 1024
_REQUEST_ID = 1

Params = Sequence[JsonValue] | Mapping[str, JsonValue] | None


async def call(
    path: Path, method: str, params: Params = None, *, timeout: float = 10.0
) -> JsonValue:
    """Call ``method`` on the server at ``path`` and return its result.

    Raises :class:`RpcError` with the server's code, message and data if it answers with an
    error, :class:`RpcUnavailable` if it cannot be reached in ``timeout`` seconds, and
    :class:`MalformedResponse` if the answer is not a JSON-RPC 2.0 response to this call.
    """
    request: dict[str, JsonValue] = {"jsonrpc": "2.0", "method": method, "id": _REQUEST_ID}
    if params is not None:
        request["params"] = params
    text = json.dumps(request, separators=(",", ":"), allow_nan=False).encode("ascii")
    response = await call_raw(path, text + b"\n", timeout=timeout)
    if response is None:
        raise MalformedResponse(f"{method}: the server closed without answering")
    return _result_of(response)


def call_sync(
    path: Path, method: str, params: Params = None, *, timeout: float = 10.0
) -> JsonValue:
    """:func:`call` for synchronous callers (the CLI); must not run inside an event loop."""
    return asyncio.run(call(path, method, params, timeout=timeout))


async def call_raw(path: Path, text: bytes, *, timeout: float = 10.0) -> bytes | None:
    """Send ``text`` as is, then EOF; return everything answered, or None if nothing was.

    For tests of malformed input: ``text`` may hold several lines, or a final line without a
    newline. The trailing newline of the answer is removed.
    """
    try:
        async with asyncio.timeout(timeout):
            answer = await _exchange(path, text)
    except TimeoutError as exc:
        raise RpcUnavailable(f"no answer from {path} within {timeout} s") from exc
    except OSError as exc:
        raise RpcUnavailable(f"cannot reach {path}: {exc.strerror or exc}") from exc
    return answer.removesuffix(b"\n") or None


async def _exchange(path: Path, text: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, os.fspath(path))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_send_all(loop, sock, text))
                return await _receive_all(loop, sock)
        except BaseExceptionGroup as failure:
            # The sender never raises, so the group holds exactly the receiver's error.
            raise failure.exceptions[0] from None


async def _send_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, text: bytes) -> None:
    try:
        await loop.sock_sendall(sock, text)
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        # The server stopped reading (an oversized line) or went away; the receiver reports
        # the answer or the failure, so there is nothing to add here.
        log.debug("rpc.client.send_cut_short errno=%s", exc.errno)


async def _receive_all(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        try:
            chunk = await loop.sock_recv(sock, _CHUNK)
        except ConnectionResetError:
            # Linux reports a reset only after every byte the server sent has been read.
            if received:
                return bytes(received)
            raise
        if not chunk:
            return bytes(received)
        received += chunk
        if len(received) > MAX_RESPONSE_BYTES:
            raise MalformedResponse(f"response exceeds {MAX_RESPONSE_BYTES} bytes")


def _result_of(response: bytes) -> JsonValue:
    """The result of a single response to our request, or the RpcError it carries."""
    try:
        document = json.loads(response)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponse("the response is not JSON") from exc
    if not isinstance(document, dict) or document.get("jsonrpc") != "2.0":
        raise MalformedResponse("the response is not a JSON-RPC 2.0 response object")
    if "error" in document:
        raise _error_of(document["error"])
    if "result" not in document or document.get("id") != _REQUEST_ID:
        raise MalformedResponse("the response has no result for this request")
    result: JsonValue = document["result"]
    return result


def _error_of(error: object) -> RpcError:
    if not isinstance(error, dict):
        raise MalformedResponse("the error member is not an object")
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise MalformedResponse("the error object lacks an integer code or a string message")
    data: JsonValue = error.get("data")
    return RpcError(code, message, data)
