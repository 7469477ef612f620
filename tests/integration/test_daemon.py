"""The daemon as systemd and an operator see it: notifications, signals, bad input (SPEC §4.1, §5)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petranode.rpc.client import call, call_raw, call_sync
from petranode.testnet import Testnet, default_layout

pytestmark = pytest.mark.integration


@pytest.fixture
def lone_node(short_tmp: Path) -> Testnet:
    net = Testnet(short_tmp / "net")
    net.generate(default_layout(1))
    return net


def _receive(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            datagram = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.extend(datagram.splitlines())
        if wanted in seen:
            return seen
    raise AssertionError(f"no {wanted} within the deadline; got {seen}")


@pytest.fixture
def notify_socket(short_tmp: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = short_tmp / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield sock, path
    finally:
        sock.close()


def test_systemd_notifications_and_sigterm_exit_0(
        lone_node: Testnet, notify_socket: tuple[socket.socket, Path]) -> None:
    sock, path = notify_socket
    env = dict(os.environ, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="2000000")
    process = subprocess.Popen(
        [sys.executable, "-m", "petranode", "run", "--config", str(lone_node.config_path("dso"))],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = _receive(sock, "READY=1", time.monotonic() + 30)
        assert call_sync(lone_node.socket_path("dso"), "node.status")["name"] == "dso"
        _receive(sock, "WATCHDOG=1", time.monotonic() + 5)
        process.send_signal(signal.SIGTERM)
        seen += _receive(sock, "STOPPING=1", time.monotonic() + 5)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert "node.ready" in stderr and "node.stopped" in stderr
    assert seen.index("READY=1") < seen.index("STOPPING=1")
    assert not lone_node.socket_path("dso").exists(), "the control socket is removed on exit"


def test_sigint_also_stops_cleanly(lone_node: Testnet) -> None:
    lone_node.start("dso")
    lone_node.wait_ready(timeout=30)
    assert lone_node.stop("dso", sig=signal.SIGINT, timeout=5.0)


def test_control_socket_is_private(testnet_factory: Callable[[int], Testnet]) -> None:
    net = testnet_factory(1)
    assert os.stat(net.socket_path("dso")).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("request_text", [
    b"{not json\n",
    b'{"jsonrpc": "1.0", "method": "node.status", "id": 1}\n',
    b'{"jsonrpc": "2.0", "method": "node.nope", "id": 1}\n',
    b'{"jsonrpc": "2.0", "method": "node.status", "params": {"verbose": true}, "id": 1}\n',
    b"[]\n",
    b"\xff\xfe\x00garbage\n",
    b'{"jsonrpc": "2.0", "method": "node.status"}\n',
    b"[" + b'{"jsonrpc": "2.0", "method": "node.status", "id": 1},' * 3 + b"1]\n",
])
def test_bad_rpc_input_gets_an_error_and_the_node_keeps_serving(
        testnet_factory: Callable[[int], Testnet], request_text: bytes) -> None:
    net = testnet_factory(1)
    path = net.socket_path("dso")
    asyncio.run(call_raw(path, request_text))
    assert call_sync(path, "node.status")["name"] == "dso"


def test_garbage_and_stalled_handshakes_on_the_link_port(
        testnet_factory: Callable[[int], Testnet]) -> None:
    net = testnet_factory(2)
    status = call_sync(net.socket_path("dso"), "node.status")
    port = status["listen"][0]["port"]
    peers_before = set(status["peers"])

    async def abuse() -> None:
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for payload in (b"\x00" * 4096, os.urandom(300), b"\xff\xff" + os.urandom(64), b"GET / HTTP/1.1\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            async with asyncio.timeout(15):
                assert await reader.read() == b"", "garbage must get the connection closed"
            writer.close()
        assert (await call(net.socket_path("dso"), "node.status"))["peers"]
        for _, writer in stalled:
            writer.close()

    asyncio.run(abuse())
    after = call_sync(net.socket_path("dso"), "node.status")
    assert set(after["peers"]) == peers_before


def test_router_without_a_genesis_certificate_is_refused(
        testnet_factory: Callable[[int], Testnet]) -> None:
    """A stranger with a self-made authority cannot link to a running node; members still can."""
    from petranode.net import cert
    from petranode.net.identity import RouterKeys
    from petranode.net.link.errors import LinkError
    from petranode.net.link.service import LinkService
    from petranode.net.link.settings import LinkConfig

    net = testnet_factory(2)
    genesis = net.genesis()
    dso = genesis.authorities[0]
    stranger = RouterKeys.generate()
    fake_authority = RouterKeys.generate()
    now = int(time.time())
    forged = cert.issue(fake_authority, stranger.identity, network_id=genesis.network_id,
                        valid_from=now - 60, valid_until=now + 3600)

    async def try_to_join() -> None:
        async with LinkService(config=LinkConfig(), keys=stranger, certificate=forged,
                               authorities=genesis.authority_keys | {fake_authority.signing_key},
                               network_id=genesis.network_id) as links:
            with pytest.raises(LinkError):
                async with asyncio.timeout(15):
                    await links.connect(dso.host, dso.port, dso.static_key)
            assert links.peers() == []

    asyncio.run(try_to_join())
    status = call_sync(net.socket_path("dso"), "node.status")
    assert stranger.identity.router_hash.hex() not in status["peers"]
    assert status["peers"], "the member prosumer stays linked"
