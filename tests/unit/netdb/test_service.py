"""NetDbService over real UDP on 127.0.0.1: a Mesh of in-process nodes (SPEC §4.3, §5)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import umsgpack  # type: ignore[import-untyped]
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.storage import ForgetfulStorage
from netdb_helpers import (
    AUTHORITY,
    NOW,
    NOW_MS,
    certificate,
    genesis,
    leaseset,
    router_keys,
    routerinfo,
    unsigned,
)

from petranode.net.identity import RouterKeys
from petranode.net.netdb.datagram import Method
from petranode.net.netdb.errors import RecordInvalid
from petranode.net.netdb.leaseset import LeaseSet
from petranode.net.netdb.routerinfo import RouterInfo
from petranode.net.netdb.service import NETDB_MIGRATIONS, NetDbService
from petranode.net.netdb.settings import NetDbConfig
from petranode.store.store import Store

CONFIG = NetDbConfig(rpc_timeout_s=0.5, lookup_timeout_s=3.0, refresh_s=0.3, sweep_s=0.2,
                     republish_s=600.0, max_routerinfo_age_s=3600.0)
DEADLINE_S = 15.0


class FixedClock:
    """Wall time pinned near NOW (so the test certificates are valid); advance() jumps it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return NOW + self.offset

    def monotonic(self) -> float:
        return time.monotonic()


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Mesh:
    """An authority and N routers, each a NetDbService on its own UDP port."""

    def __init__(self, stack: contextlib.AsyncExitStack, clock: FixedClock) -> None:
        self.stack = stack
        self.clock = clock
        self.nodes: list[NetDbService] = []
        self.auth_port = 0

    async def start(self, keys: RouterKeys, *, store: Store | None = None) -> NetDbService:
        service = NetDbService(config=CONFIG, keys=keys, certificate=certificate(keys),
                               genesis=genesis(netdb_port=self.auth_port or 9), clock=self.clock,
                               store=store, roles=("prosumer",),
                               link_address=("127.0.0.1", 7000))
        await self.stack.enter_async_context(service)
        if keys is AUTHORITY:
            self.auth_port = service.port
        self.nodes.append(service)
        return service


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    async with contextlib.AsyncExitStack() as stack:
        net = Mesh(stack, FixedClock())
        await net.start(AUTHORITY)
        yield net


async def test_every_node_finds_every_other_routerinfo(mesh: Mesh) -> None:
    for n in range(1, 7):
        await mesh.start(router_keys(n))

    async def all_found() -> bool:
        for node in mesh.nodes:
            for other in mesh.nodes:
                found = await node.lookup(other.router_hash)
                if not isinstance(found, RouterInfo):
                    return False
                udp = found.address("udp")
                assert udp is not None and udp.port == other.port
        return True

    await _until(all_found, "every RouterInfo everywhere")
    node = mesh.nodes[3]
    assert {r.key for r in node.routers()} == {n.router_hash for n in mesh.nodes}
    chosen = node.select_routers(3, exclude=[mesh.nodes[0].router_hash])
    assert len(chosen) == 3
    assert not {c.key for c in chosen} & {node.router_hash, mesh.nodes[0].router_hash}
    stats = node.stats()
    assert stats["records"]["routerinfo"] == len(mesh.nodes)
    assert stats["contacts"] >= 1 and stats["published"] >= 1
    assert sum(stats["rejections"].values()) == 0


async def test_leaseset_published_by_one_is_found_by_another(mesh: Mesh) -> None:
    a = await mesh.start(router_keys(1))
    b = await mesh.start(router_keys(2))
    await _until(lambda: _has(b, a.router_hash), "b knows a")
    ls = leaseset(4)
    await _until(lambda: _published(a, ls), "leaseset stored at some router")
    await _until(lambda: _is(b.lookup(ls.key), ls), "b finds the leaseset")
    newer = leaseset(4, published_ms=NOW_MS + 1000)
    assert await a.publish_leaseset(newer) >= 1
    assert b.get_local(ls.key) in (ls, newer)
    with pytest.raises(RecordInvalid):
        await a.publish_leaseset(dataclasses.replace(ls, signature=b""))


async def test_unknown_key_lookup_returns_none(mesh: Mesh) -> None:
    a = await mesh.start(router_keys(1))
    await _until(lambda: _has(a, AUTHORITY.router_hash), "a knows the authority")
    assert await a.lookup(b"\x42" * 32) is None
    assert a.stats()["lookups"]["not_found"] == 1
    with pytest.raises(ValueError):
        await a.lookup(b"short")


async def test_forged_stores_are_refused_counted_and_never_served(mesh: Mesh) -> None:
    target = mesh.nodes[0]
    honest = routerinfo(7)
    forged: dict[str, tuple[bytes, bytes | int]] = {
        "unsigned": (honest.key, unsigned(honest).encode()),
        "bad_signature": (honest.key, routerinfo(7, signer=router_keys(9)).encode()),
        "wrong_key": (routerinfo(8).key, honest.encode()),
        "expired": (honest.key, routerinfo(7, published_ms=NOW_MS - 7_200_000).encode()),
        "future": (honest.key, routerinfo(7, published_ms=NOW_MS + 3_600_000).encode()),
        "oversized": (honest.key, b"\x98\x00" + b"\x00" * 2000),
        "not_member": (honest.key, routerinfo(
            7, certificate_of=certificate(router_keys(7), authority=router_keys(9))).encode()),
        "garbage": (honest.key, 12345),
    }
    async with _raw_client() as client:
        for key, value in forged.values():
            ok, accepted = await client.store(("127.0.0.1", target.port), b"\x01" * 20,
                                               key[:20], value)
            assert ok and accepted is False
        # Replayed-older: the newer record first, then an older genuine one.
        newer = routerinfo(7, published_ms=NOW_MS)
        older = routerinfo(7, published_ms=NOW_MS - 10_000)
        for record, expected in ((newer, True), (older, False)):
            ok, accepted = await client.store(("127.0.0.1", target.port), b"\x01" * 20,
                                               record.key[:20], record.encode())
            assert ok and accepted is expected
        ok, answer = await client.find_value(("127.0.0.1", target.port), b"\x01" * 20,
                                             honest.key[:20])
        assert ok and answer == {"value": newer.encode()}
        # Datagrams that are not kademlia messages at all.
        client.transport.sendto(b"\x00" * 30, ("127.0.0.1", target.port))
        client.transport.sendto(b"\x00" + b"\x01" * 20 + umsgpack.packb(["getattr", [1]]),
                                ("127.0.0.1", target.port))
        assert await client.ping(("127.0.0.1", target.port), b"\x01" * 20) == (
            True, target.router_hash[:20])
    stats = target.stats()
    for reason in (*forged, "replayed"):
        assert stats["rejections"][reason] == 1, reason
    assert stats["bad_datagrams"]["malformed"] + stats["bad_datagrams"]["unknown_method"] == 2
    assert target.get_local(honest.key) == newer


async def test_invalid_lookup_answers_are_not_returned(mesh: Mesh) -> None:
    """A peer that answers FIND_VALUE with a forged record is treated as having nothing."""
    victim = await mesh.start(router_keys(1))
    await _until(lambda: _has(victim, AUTHORITY.router_hash), "victim knows the authority")
    honest = routerinfo(7)
    async with _raw_client(serve={honest.key[:20]: unsigned(honest).encode()}) as liar:
        ok, _ = await liar.ping(("127.0.0.1", victim.port), b"\x05" * 20)
        assert ok
        assert await victim.lookup(honest.key) is None
    assert victim.stats()["rejections"]["unsigned"] >= 1


async def test_records_survive_a_restart_without_the_dht(tmp_path: Path) -> None:
    clock = FixedClock()
    path = tmp_path / "node.db"
    async with contextlib.AsyncExitStack() as stack:
        net = Mesh(stack, clock)
        await net.start(AUTHORITY)
        store = await stack.enter_async_context(Store(path, NETDB_MIGRATIONS))
        a = await net.start(router_keys(1), store=store)
        await net.start(router_keys(2))
        await _until(lambda: _has(a, router_keys(2).router_hash), "a knows router 2")
    async with Store(path, NETDB_MIGRATIONS) as store:
        rows = await store.fetchall("SELECT kind FROM netdb_records")
        assert ("routerinfo",) in rows
        alone = NetDbService(config=CONFIG, keys=router_keys(1),
                             certificate=certificate(router_keys(1)), genesis=genesis(),
                             clock=clock, store=store)
        async with alone:
            assert alone.get_local(router_keys(2).router_hash) is not None
            assert alone.get_local(AUTHORITY.router_hash) is not None
        clock.offset = 7200.0  # everything has aged out: reloaded rows are dropped
        async with NetDbService(config=CONFIG, keys=router_keys(1),
                                certificate=certificate(router_keys(1),
                                                        valid_until=int(NOW) + 86_400),
                                genesis=genesis(), clock=clock, store=store) as aged:
            assert aged.get_local(router_keys(2).router_hash) is None
            assert aged.stats()["rejections"]["expired"] >= 2


async def test_an_invalid_own_certificate_stops_the_service() -> None:
    keys = router_keys(1)
    service = NetDbService(config=CONFIG, keys=keys,
                           certificate=certificate(keys, valid_until=int(NOW) - 1),
                           genesis=genesis(), clock=FixedClock())
    with pytest.raises(RecordInvalid):
        await service.__aenter__()


async def _has(node: NetDbService, key: bytes) -> bool:
    return node.get_local(key) is not None


async def _published(node: NetDbService, ls: LeaseSet) -> bool:
    return await node.publish_leaseset(ls) >= 1


async def _is(found: Awaitable[object], expected: object) -> bool:
    return await found == expected


class _ServingStorage(ForgetfulStorage):  # type: ignore[misc]
    """A stock kademlia storage that also serves a fixed (forged) value."""

    def __init__(self, serve: dict[bytes, bytes]) -> None:
        super().__init__()
        for key, value in serve.items():
            super().__setitem__(key, value)


@contextlib.asynccontextmanager
async def _raw_client(serve: dict[bytes, bytes] | None = None) -> AsyncIterator[KademliaProtocol]:
    """A stock kademlia node (rpcudp RPCs), as an attacker would run it."""
    protocol = KademliaProtocol(Node(b"\x05" * 20), _ServingStorage(serve or {}), 20)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol,
                                                       local_addr=("127.0.0.1", 0))
    try:
        yield protocol
    finally:
        transport.close()


async def test_a_cancelled_lookup_leaves_no_call_behind(mesh: Mesh) -> None:
    """Cancel a lookup while it waits on a peer that never answers; the service carries on."""
    victim = await mesh.start(router_keys(1))
    await _until(lambda: _has(victim, AUTHORITY.router_hash), "victim knows the authority")
    loop = asyncio.get_running_loop()
    silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=("127.0.0.1", 0))
    try:
        # A PING from the silent peer makes the victim add it as a contact; it never answers.
        silent.sendto(b"\x00" + b"\x01" * 20 + umsgpack.packb(["ping", [b"\x07" * 20]]),
                      ("127.0.0.1", victim.port))
        await _until(lambda: _contacts(victim, 2), "victim adds the silent peer")
        lookup = asyncio.ensure_future(victim.lookup(b"\x00" * 32))
        await _until(lambda: _waiting(victim), "the lookup waits on a peer")
        lookup.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lookup
        # Every FIND_VALUE the lookup had in flight was withdrawn (a push to the new contact
        # may still be waiting for its own timeout).
        assert all(m is not Method.FIND_VALUE for _, m, _ in victim._protocol._calls.values())
        assert await victim.lookup(AUTHORITY.router_hash) is not None
    finally:
        silent.close()


async def _contacts(node: NetDbService, n: int) -> bool:
    return bool(node.stats()["contacts"] >= n)


async def _waiting(node: NetDbService) -> bool:
    return any(m is Method.FIND_VALUE for _, m, _ in node._protocol._calls.values())
