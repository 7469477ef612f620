"""The link service over real sockets on 127.0.0.1 (petranode.net.link.service).

Ports are OS-assigned; nothing sleeps to synchronise — conditions are polled with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import pytest
from link_fixtures import AUTHORITIES, NETWORK, NOW, Router, certificate, keys, router

from petranode.errors import PetranodeError
from petranode.net.cert import CertificateFault
from petranode.net.link.errors import (
    CloseReason,
    ConnectionLost,
    HandshakeFailed,
    HandshakeFault,
    LinkClosed,
    PeerNotAdmitted,
)
from petranode.net.link.noise import LinkHandshake
from petranode.net.link.service import LinkService
from petranode.net.link.session import CELL_BYTES, LinkSession, Message
from petranode.net.link.settings import LinkConfig
from petranode.wire.frame import FrameReader, encode_frame

FAST = LinkConfig(handshake_timeout_s=2.0, idle_timeout_s=5.0, keepalive_s=1.0)


@contextlib.asynccontextmanager
async def running(r: Router, config: LinkConfig = FAST) -> AsyncIterator[LinkService]:
    async with LinkService(
        config=config,
        keys=r.keys,
        certificate=r.certificate,
        authorities=AUTHORITIES,
        network_id=NETWORK,
        clock=lambda: float(NOW),
    ) as service:
        yield service


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Message]] = []

    async def __call__(self, router_hash: bytes, message: Message) -> None:
        self.messages.append((router_hash, message))


async def raw_handshake(
    port: int, me: Router, static_key: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, LinkSession]:
    """Complete a handshake by hand, as a peer that then does whatever the test wants."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hs = LinkHandshake.initiator(
        keys=me.keys,
        certificate=me.certificate,
        authorities=AUTHORITIES,
        network_id=NETWORK,
        remote_static=static_key,
    )
    writer.write(encode_frame(hs.write_message()))
    frames = FrameReader(1024)
    while (frame := frames.next_frame()) is None:
        frames.feed(await reader.read(4096))
    hs.read_message(frame, now=NOW)
    writer.write(encode_frame(hs.write_message()))
    session = LinkSession(hs.result.sender, hs.result.receiver, max_message_bytes=2**20)
    return reader, writer, session


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``timeout``."""
    async with asyncio.timeout(timeout):
        try:
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass
    return True


# -- linking and messaging -------------------------------------------------------------------


async def test_two_services_link_and_exchange_messages() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    async with running(alice) as a, running(bob) as b:
        inbox_a, inbox_b = Inbox(), Inbox()
        a.register("hello", inbox_a)
        b.register("hello", inbox_b)
        changes: list[tuple[bytes, bool]] = []
        a.on_peer_change(lambda h, up: changes.append((h, up)))

        _, port = b.listen_address
        assert await b_hash_of(a, port, bob) == bob.keys.router_hash
        await eventually(lambda: alice.keys.router_hash in b.peers())
        assert a.peers() == [bob.keys.router_hash]
        assert a.peer_identity(bob.keys.router_hash) == bob.keys.identity
        assert a.peer_identity(b"\x00" * 32) is None
        # A second connect reuses the live link.
        assert await b_hash_of(a, port, bob) == bob.keys.router_hash
        assert a.stats()["handshakes_ok"] == 1

        big = {"t": "hello", "blob": bytes(range(256)) * 40}  # several cells
        await a.send(bob.keys.router_hash, big)
        await b.send(alice.keys.router_hash, {"t": "hello", "n": 1})
        await eventually(lambda: len(inbox_b.messages) == 1 and len(inbox_a.messages) == 1)
        assert inbox_b.messages == [(alice.keys.router_hash, big)]
        assert inbox_a.messages == [(bob.keys.router_hash, {"t": "hello", "n": 1})]
        assert changes == [(bob.keys.router_hash, True)]

        stats = a.stats()
        assert stats["links"] == 1 and stats["links_outbound"] == 1
        assert isinstance(stats["cells_out"], int) and stats["cells_out"] >= 4
        assert stats["bytes_out"] == stats["cells_out"] * CELL_BYTES + initiator_handshake_bytes(
            alice
        )

    assert changes[-1] == (bob.keys.router_hash, False)


def initiator_handshake_bytes(initiator: Router) -> int:
    """Framed messages 1 and 3 (2-byte prefixes) that an initiator writes."""
    return (2 + 48) + (2 + 48 + len(initiator.certificate.encode()) + 16)


async def b_hash_of(service: LinkService, port: int, target: Router) -> bytes:
    return await service.connect("127.0.0.1", port, target.keys.static_key)


async def test_unknown_types_are_counted_and_dropped_and_handler_refusals_keep_the_link() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    async with running(alice) as a, running(bob) as b:
        inbox = Inbox()

        async def refuse(router_hash: bytes, message: Message) -> None:
            raise PetranodeError("refused")

        b.register("refuse", refuse)
        b.register("ok", inbox)
        with pytest.raises(ValueError):
            b.register("ok", inbox)
        peer = await b_hash_of(a, b.listen_address[1], bob)
        for t in ("nobody-handles-this", "refuse", "ok"):
            await a.send(peer, {"t": t})
        await eventually(lambda: len(inbox.messages) == 1)
        assert b.stats()["drops"] == {"refused_by_handler": 1, "unknown_type": 1}
        assert alice.keys.router_hash in b.peers()


async def test_send_without_a_link_or_with_a_bad_message_raises() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    async with running(alice) as a, running(bob) as b:
        with pytest.raises(LinkClosed) as raised:
            await a.send(bob.keys.router_hash, {"t": "x"})
        assert raised.value.reason is CloseReason.NOT_CONNECTED
        peer = await b_hash_of(a, b.listen_address[1], bob)
        with pytest.raises(ValueError):
            await a.send(peer, {"no": "type"})
        with pytest.raises(ValueError):
            await a.send(peer, {"t": "x", "b": bytes(FAST.max_message_bytes)})


async def test_connect_to_nowhere_is_a_typed_error() -> None:
    alice = router("svc-alice")
    async with running(alice) as a:
        probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(ConnectionLost):
            await a.connect("127.0.0.1", port, keys("nobody").static_key)


# -- admission --------------------------------------------------------------------------------


async def test_a_router_without_a_genesis_certificate_is_refused_both_ways() -> None:
    alice = router("svc-alice")
    rogue_keys = keys("svc-rogue")
    rogue = Router(rogue_keys, certificate(rogue_keys, authority=keys("not-genesis")))
    async with running(alice) as a, running(rogue) as r:
        # The rogue dials: alice refuses it after message 3 and never confirms.
        with pytest.raises(HandshakeFailed) as dial_in:
            await r.connect("127.0.0.1", a.listen_address[1], alice.keys.static_key)
        assert dial_in.value.reason is HandshakeFault.CLOSED_BY_PEER
        await eventually(lambda: a.stats()["handshakes_failed"] == {"unknown_authority": 1})
        # Alice dials the rogue: she refuses its certificate in message 2.
        with pytest.raises(PeerNotAdmitted) as dial_out:
            await a.connect("127.0.0.1", r.listen_address[1], rogue.keys.static_key)
        assert dial_out.value.reason is CertificateFault.UNKNOWN_AUTHORITY
        assert a.peers() == [] and r.peers() == []


async def test_a_wrong_static_key_fails_the_dial() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    async with running(alice) as a, running(bob) as b:
        with pytest.raises(HandshakeFailed):
            await a.connect("127.0.0.1", b.listen_address[1], keys("not-bob").static_key)
        await eventually(lambda: b.stats()["handshakes_failed"] == {"decryption_failed": 1})


async def test_bad_connections_are_closed_while_a_good_peer_is_served() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    config = dataclasses.replace(FAST, handshake_timeout_s=0.5)
    async with running(alice, config) as a, running(bob) as b:
        port = a.listen_address[1]
        inbox = Inbox()
        a.register("ping", inbox)

        garbage = await asyncio.open_connection("127.0.0.1", port)
        garbage[1].write(b"\xff\xff" + bytes(range(256)) * 4)
        truncated = await asyncio.open_connection("127.0.0.1", port)
        truncated[1].write(encode_frame(bytes(48))[:20])
        truncated[1].close()
        stalled = await asyncio.open_connection("127.0.0.1", port)  # says nothing

        peer = await b.connect("127.0.0.1", port, alice.keys.static_key)
        await b.send(peer, {"t": "ping"})
        await eventually(lambda: len(inbox.messages) == 1)

        assert await closed_by_server(garbage[0])
        started = time.monotonic()
        assert await closed_by_server(stalled[0])
        assert time.monotonic() - started < 2.0
        await eventually(
            lambda: (
                a.stats()["handshakes_failed"]
                == {"frame_too_large": 1, "closed_by_peer": 1, "handshake_timeout": 1}
            )
        )
        assert a.peers() == [bob.keys.router_hash]
        for _, writer in (garbage, stalled):
            writer.close()
        await b.send(peer, {"t": "ping"})
        await eventually(lambda: len(inbox.messages) == 2)


async def test_limits_on_inbound_connections() -> None:
    alice = router("svc-alice")
    config = dataclasses.replace(FAST, max_inbound_per_ip=2)
    async with running(alice, config) as a:
        port = a.listen_address[1]
        first = await asyncio.open_connection("127.0.0.1", port)
        second = await asyncio.open_connection("127.0.0.1", port)
        await eventually(lambda: a.stats()["pending_inbound_handshakes"] == 2)
        third = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_by_server(third[0], timeout=2.0)
        assert a.stats()["refused"] == {"max_inbound_per_ip": 1}
        for _, writer in (first, second, third):
            writer.close()


async def test_max_peers_refuses_a_link_beyond_the_limit() -> None:
    alice, bob, carol = router("svc-alice"), router("svc-bob"), router("svc-carol")
    config = dataclasses.replace(FAST, max_peers=1)
    async with running(alice, config) as a, running(bob) as b, running(carol) as c:
        await b.connect("127.0.0.1", a.listen_address[1], alice.keys.static_key)
        with pytest.raises(HandshakeFailed):
            await c.connect("127.0.0.1", a.listen_address[1], alice.keys.static_key)
        assert a.peers() == [bob.keys.router_hash]
        assert a.stats()["refused"] == {"max_peers": 1}


async def test_simultaneous_dials_leave_one_link() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    async with running(alice) as a, running(bob) as b:
        hashes = await asyncio.gather(
            a.connect("127.0.0.1", b.listen_address[1], bob.keys.static_key),
            b.connect("127.0.0.1", a.listen_address[1], alice.keys.static_key),
        )
        assert hashes == [bob.keys.router_hash, alice.keys.router_hash]
        await eventually(
            lambda: a.peers() == [bob.keys.router_hash] and b.peers() == [alice.keys.router_hash]
        )
        inbox = Inbox()
        b.register("x", inbox)
        await eventually(lambda: a.stats()["links"] == 1 and b.stats()["links"] == 1)
        await a.send(bob.keys.router_hash, {"t": "x"})
        await eventually(lambda: len(inbox.messages) == 1)


# -- timeouts -----------------------------------------------------------------------------------


async def test_keepalives_hold_an_idle_link_and_silence_closes_it() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    config = dataclasses.replace(FAST, idle_timeout_s=0.6, keepalive_s=0.1)
    async with running(alice, config) as a, running(bob, config) as b:
        peer = await a.connect("127.0.0.1", b.listen_address[1], bob.keys.static_key)
        # Many idle timeouts pass; keep-alive cells hold the link.
        await eventually(lambda: int(str(a.stats()["cells_out"])) >= 15)
        assert a.peers() == [peer]

        # A peer that completes the handshake and then says nothing is closed as idle.
        mallory = router("svc-mallory")
        reader, writer, _ = await raw_handshake(b.listen_address[1], mallory, bob.keys.static_key)
        await eventually(lambda: mallory.keys.router_hash in b.peers())
        assert await closed_by_server(reader, timeout=3.0)
        await eventually(lambda: b.stats()["closed"] == {"idle_timeout": 1})
        writer.close()


async def test_an_authenticated_peer_sending_bad_cells_is_closed() -> None:
    alice, mallory = router("svc-alice"), router("svc-mallory")
    async with running(alice) as a:
        reader, writer, session = await raw_handshake(
            a.listen_address[1], mallory, alice.keys.static_key
        )
        await eventually(lambda: mallory.keys.router_hash in a.peers())
        cell = session.padding_cell()
        writer.write(cell + cell)  # the second is a replay
        assert await closed_by_server(reader)
        await eventually(lambda: a.stats()["closed"] == {"authentication_failed": 1})
        assert a.peers() == []
        writer.close()


# -- what the wire shows ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def relay(target_port: int) -> AsyncIterator[tuple[int, list[bytes], list[bytes]]]:
    """A TCP relay in the middle: (port, bytes towards the target, bytes back)."""
    forward: list[bytes] = []
    backward: list[bytes] = []
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: list[bytes]) -> None:
        try:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    log.append(data)
                    dst.write(data)
                    await dst.drain()
        finally:
            dst.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            async with asyncio.TaskGroup() as group:
                group.create_task(pipe(reader, up_writer, forward))
                group.create_task(pipe(up_reader, writer, backward))
        finally:
            writer.close()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(accept(reader, writer))
        tasks.add(task)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], forward, backward
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def test_loopback_bytes_carry_no_plaintext_and_fixed_size_cells() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    secret = b"meter reading 4242 Wh at house 17"
    async with running(alice) as a, running(bob) as b:
        inbox = Inbox()
        b.register("reading", inbox)
        async with relay(b.listen_address[1]) as (port, forward, backward):
            peer = await a.connect("127.0.0.1", port, bob.keys.static_key)
            await a.send(peer, {"t": "reading", "text": secret, "again": secret.decode()})
            await eventually(lambda: len(inbox.messages) == 1)
            await b.send(alice.keys.router_hash, {"t": "reading", "text": secret})
            await eventually(lambda: len(b"".join(backward)) >= 2 * CELL_BYTES + 100)
            sent, returned = b"".join(forward), b"".join(backward)
            for captured in (sent, returned):
                assert secret not in captured
                assert secret[:8] not in captured
                assert b"reading" not in captured
            # After the framed handshake, everything is whole 1136-byte cells.
            handshake_out = initiator_handshake_bytes(alice)
            handshake_back = 2 + 32 + len(bob.certificate.encode()) + 16
            assert (len(sent) - handshake_out) % CELL_BYTES == 0
            assert (len(returned) - handshake_back) % CELL_BYTES == 0


async def test_shutdown_closes_everything_quickly() -> None:
    alice, bob = router("svc-alice"), router("svc-bob")
    async with running(bob) as b:
        a_context = running(alice)
        a = await a_context.__aenter__()
        await a.connect("127.0.0.1", b.listen_address[1], bob.keys.static_key)
        stalled = await asyncio.open_connection("127.0.0.1", a.listen_address[1])
        started = time.monotonic()
        await a_context.__aexit__(None, None, None)
        assert time.monotonic() - started < 2.0
        await eventually(lambda: b.peers() == [])
        assert await closed_by_server(stalled[0], timeout=1.0)
        stalled[1].close()
        with pytest.raises(LinkClosed):
            await a.connect("127.0.0.1", b.listen_address[1], bob.keys.static_key)


async def test_a_handler_bug_closes_only_that_link() -> None:
    alice, bob, carol = router("svc-alice"), router("svc-bob"), router("svc-carol")
    async with running(alice) as a, running(bob) as b, running(carol) as c:
        inbox = Inbox()

        async def buggy(router_hash: bytes, message: Message) -> None:
            if router_hash == bob.keys.router_hash:
                raise KeyError("our bug")
            await inbox(router_hash, message)

        a.register("m", buggy)
        port = a.listen_address[1]
        to_a_from_b = await b.connect("127.0.0.1", port, alice.keys.static_key)
        to_a_from_c = await c.connect("127.0.0.1", port, alice.keys.static_key)
        await b.send(to_a_from_b, {"t": "m"})
        await eventually(lambda: a.stats()["closed"] == {"internal_error": 1})
        await c.send(to_a_from_c, {"t": "m"})
        await eventually(lambda: len(inbox.messages) == 1)
        assert a.peers() == [carol.keys.router_hash]
