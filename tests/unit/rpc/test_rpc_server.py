"""The control socket end to end over real Unix sockets in tmp_path (SPEC §4.9, §5)."""

import asyncio
import json
import os
import socket
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rpc_test_methods import CUSTOM_CODE, ORDER_LATE_CODE, SECRET, Recorder, make_table

from petranode.rpc import client
from petranode.rpc.errors import ErrorCode, JsonValue, RpcError, RpcUnavailable, SocketInUse
from petranode.rpc.protocol import MethodTable, Plan
from petranode.rpc.server import RpcServer, ServerLimits

GOOD_CALL = ("test.echo", {"text": "ok"})


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "rpc.sock"


@pytest.fixture
async def server(socket_path: Path, table: MethodTable) -> AsyncIterator[RpcServer]:
    async with RpcServer(socket_path, table) as running:
        yield running


async def good_call_succeeds(path: Path) -> None:
    assert await client.call(path, *GOOD_CALL) == "ok"


async def raw(path: Path, document: object) -> object:
    """Send one JSON document as a line; the decoded answer, or None."""
    answer = await client.call_raw(path, json.dumps(document).encode() + b"\n")
    return None if answer is None else json.loads(answer)


# --- the socket ------------------------------------------------------------------------------


async def test_socket_is_owner_only(server: RpcServer) -> None:
    mode = os.stat(server.path).st_mode

    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


async def test_exit_removes_the_socket(socket_path: Path, table: MethodTable) -> None:
    async with RpcServer(socket_path, table):
        await good_call_succeeds(socket_path)

    assert not socket_path.exists()
    with pytest.raises(RpcUnavailable):
        await client.call(socket_path, *GOOD_CALL)


async def test_stale_socket_file_is_replaced(socket_path: Path, table: MethodTable) -> None:
    # A socket file nobody listens on: what a kill -9'd server leaves behind.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(socket_path))

    async with RpcServer(socket_path, table):
        await good_call_succeeds(socket_path)


async def test_refuses_to_start_over_a_live_server(server: RpcServer, table: MethodTable) -> None:
    with pytest.raises(SocketInUse):
        async with RpcServer(server.path, table):
            pass

    await good_call_succeeds(server.path)


async def test_refuses_to_replace_a_file_that_is_not_a_socket(
    socket_path: Path, table: MethodTable
) -> None:
    socket_path.write_text("keep me")

    with pytest.raises(SocketInUse):
        async with RpcServer(socket_path, table):
            pass

    assert socket_path.read_text() == "keep me"


async def test_unreachable_socket_is_rpc_unavailable(socket_path: Path) -> None:
    with pytest.raises(RpcUnavailable):
        await client.call(socket_path, *GOOD_CALL)


# --- every error code ------------------------------------------------------------------------

ERROR_CALLS: list[tuple[str, dict[str, JsonValue] | None, int]] = [
    ("test.nothing", None, ErrorCode.METHOD_NOT_FOUND),
    ("test.echo", {}, ErrorCode.INVALID_PARAMS),
    ("test.echo", {"text": 1}, ErrorCode.INVALID_PARAMS),
    ("test.echo", {"text": "a", "extra": 1}, ErrorCode.INVALID_PARAMS),
    ("test.crash", None, ErrorCode.INTERNAL_ERROR),
    ("test.unencodable", None, ErrorCode.INTERNAL_ERROR),
    ("test.refuse", None, ErrorCode.PETRANODE_ERROR),
    ("test.storage", None, ErrorCode.STORAGE_ERROR),
    ("test.late", None, ORDER_LATE_CODE),
    ("test.custom", None, CUSTOM_CODE),
]


@pytest.mark.parametrize(("method", "params", "code"), ERROR_CALLS)
async def test_failing_call_raises_rpc_error_with_its_code_and_server_keeps_serving(
    server: RpcServer, method: str, params: dict[str, JsonValue] | None, code: int
) -> None:
    with pytest.raises(RpcError) as raised:
        await client.call(server.path, method, params)

    assert raised.value.code == code
    assert SECRET not in raised.value.message
    await good_call_succeeds(server.path)


async def test_rpc_error_data_reaches_the_caller(server: RpcServer) -> None:
    with pytest.raises(RpcError) as raised:
        await client.call(server.path, "test.custom")

    assert (raised.value.message, raised.value.data) == ("custom failure", {"hint": "retry"})


BAD_LINES: list[tuple[str, bytes, int]] = [
    ("malformed JSON", b'{"jsonrpc": "2.0", "method": "test.echo", "params": [\n', -32700),
    ("not UTF-8", b"\xff\xfe\n", -32700),
    ("wrong version", b'{"jsonrpc": "1.0", "method": "test.echo", "id": 1}\n', -32600),
    ("not an object", b"42\n", -32600),
    ("empty batch", b"[]\n", -32600),
    (
        "params not structured",
        b'{"jsonrpc":"2.0","method":"test.echo","params":1,"id":1}\n',
        -32600,
    ),
]


@pytest.mark.parametrize(
    ("text", "code"), [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES]
)
async def test_bad_input_is_answered_and_server_keeps_serving(
    server: RpcServer, text: bytes, code: int
) -> None:
    answer = await client.call_raw(server.path, text)

    assert answer is not None
    assert json.loads(answer)["error"]["code"] == code
    await good_call_succeeds(server.path)


# --- notifications and batches ---------------------------------------------------------------


async def test_notification_runs_and_gets_no_response(
    server: RpcServer, recorder: Recorder
) -> None:
    answer = await raw(
        server.path, {"jsonrpc": "2.0", "method": "test.note", "params": {"text": "hello"}}
    )

    assert answer is None
    assert recorder.notes == ["hello"]


async def test_batch_with_valid_invalid_and_notification_members(
    server: RpcServer, recorder: Recorder
) -> None:
    answer = await raw(
        server.path,
        [
            {"jsonrpc": "2.0", "method": "test.echo", "params": ["a", 2], "id": 1},
            {"jsonrpc": "2.0", "method": "test.note", "params": ["in batch"]},
            {"jsonrpc": "2.0", "method": "test.crash", "id": 2},
            {"jsonrpc": "2.0", "method": "test.nothing", "id": 3},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "test.echo", "params": {"txt": "a"}, "id": 4},
        ],
    )

    assert isinstance(answer, list)
    assert [
        (item["id"], item.get("result"), item.get("error", {}).get("code")) for item in answer
    ] == [
        (1, "aa", None),
        (2, None, ErrorCode.INTERNAL_ERROR),
        (3, None, ErrorCode.METHOD_NOT_FOUND),
        (None, None, ErrorCode.INVALID_REQUEST),
        (4, None, ErrorCode.INVALID_PARAMS),
    ]
    assert recorder.notes == ["in batch"]


async def test_batch_of_notifications_gets_no_response(
    server: RpcServer, recorder: Recorder
) -> None:
    batch = [{"jsonrpc": "2.0", "method": "test.note", "params": [str(n)]} for n in range(3)]

    assert await raw(server.path, batch) is None
    assert sorted(recorder.notes) == ["0", "1", "2"]


async def test_batch_members_run_concurrently(server: RpcServer, recorder: Recorder) -> None:
    recorder.together = 3
    batch = [{"jsonrpc": "2.0", "method": "test.meet", "id": n} for n in range(3)]

    answer = await raw(server.path, batch)

    assert isinstance(answer, list)
    assert [item["result"] for item in answer] == [3, 3, 3]


async def test_many_requests_on_one_connection_are_answered_in_order(server: RpcServer) -> None:
    lines = b"".join(
        json.dumps({"jsonrpc": "2.0", "method": "test.echo", "params": [str(n)], "id": n}).encode()
        + b"\n"
        for n in range(5)
    )

    answer = await client.call_raw(server.path, lines + b"{oops\n\n" + lines)

    assert answer is not None
    responses = [json.loads(line) for line in answer.split(b"\n")]
    ids = [response["id"] for response in responses]
    assert ids == [0, 1, 2, 3, 4, None, 0, 1, 2, 3, 4]
    assert responses[5]["error"]["code"] == ErrorCode.PARSE_ERROR


# --- limits ----------------------------------------------------------------------------------


async def test_oversized_line_is_refused_and_the_connection_closed(
    socket_path: Path, table: MethodTable
) -> None:
    limits = ServerLimits(max_line_bytes=1024)
    async with RpcServer(socket_path, table, limits) as server:
        good = json.dumps({"jsonrpc": "2.0", "method": "test.echo", "params": ["x"], "id": 1})
        # The good request after the long line is never read: the connection is closed.
        answer = await client.call_raw(socket_path, b"[" * 4096 + b"\n" + good.encode() + b"\n")

        assert answer is not None
        assert json.loads(answer) == {
            "jsonrpc": "2.0",
            "error": {
                "code": ErrorCode.INVALID_REQUEST,
                "message": "request line exceeds 1024 bytes",
            },
            "id": None,
        }
        await good_call_succeeds(socket_path)
        assert server.stats.connection_failures == 0


async def test_idle_client_is_disconnected(socket_path: Path, table: MethodTable) -> None:
    async with RpcServer(socket_path, table, ServerLimits(idle_timeout=0.05)):
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            async with asyncio.timeout(5):
                assert await reader.read() == b""
        finally:
            writer.close()
        await good_call_succeeds(socket_path)


async def test_connections_beyond_the_bound_wait_for_a_free_slot(
    socket_path: Path, table: MethodTable
) -> None:
    async with RpcServer(socket_path, table, ServerLimits(max_connections=1)):
        reader, writer = await asyncio.open_unix_connection(socket_path)
        writer.write(json.dumps({"jsonrpc": "2.0", "method": "test.refuse", "id": 1}).encode())
        writer.write(b"\n")
        # Once the first connection is answered it certainly holds the only slot.
        await reader.readline()

        with pytest.raises(RpcUnavailable):
            await client.call(socket_path, *GOOD_CALL, timeout=0.2)

        writer.close()
        await good_call_succeeds(socket_path)


class ExplodingTable(MethodTable):
    """A table whose planner fails on one input: stands in for a bug in the server path."""

    def plan(self, text: bytes) -> Plan:
        if text == b"explode":
            raise RuntimeError("bug")
        return super().plan(text)


async def test_connection_failure_is_counted_and_only_closes_that_client(
    socket_path: Path, recorder: Recorder
) -> None:
    table = make_table(recorder, ExplodingTable())
    async with RpcServer(socket_path, table) as server:
        assert await client.call_raw(socket_path, b"explode\n") is None
        assert server.stats.connection_failures == 1
        await good_call_succeeds(socket_path)


async def test_exit_closes_open_connections(socket_path: Path, table: MethodTable) -> None:
    async with RpcServer(socket_path, table):
        reader, writer = await asyncio.open_unix_connection(socket_path)

    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()


def test_call_sync_works_outside_an_event_loop(socket_path: Path, table: MethodTable) -> None:
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with RpcServer(socket_path, table):
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        assert started.wait(5)
        assert client.call_sync(socket_path, *GOOD_CALL) == "ok"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()
