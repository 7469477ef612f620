"""Issue 3 acceptance: the netDb on real processes (SPEC §4.3, §5).

A 20-node testnet: every node finds every other node's RouterInfo through ``netdb.lookup``
within 20 s of ``up``; then a forged kademlia client (the stock package's own protocol, as an
attacker would run it) STOREs every kind of invalid record at a running node, and none of them
is ever returned by any node, while each shows in that node's ``netdb.stats``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.storage import ForgetfulStorage

from petranode.net import cert as certificates
from petranode.net.cert import RouterCertificate
from petranode.net.identity import RouterKeys
from petranode.net.netdb.routerinfo import Address, RouterInfo, sign_routerinfo
from petranode.node import CERTIFICATE_FILE
from petranode.rpc.client import call_sync
from petranode.testnet import Testnet

pytestmark = pytest.mark.integration

NODES = 20
FIND_ALL_WITHIN_S = 20.0


def _lookup(net: Testnet, name: str, key: str) -> Any:
    return call_sync(net.socket_path(name), "netdb.lookup", {"key": key})


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_twenty_nodes_find_each_other_and_forged_stores_never_surface(
    testnet_factory: Callable[[int], Testnet],
) -> None:
    net = testnet_factory(NODES)
    started = time.monotonic()
    names = [spec.name for spec in net.nodes()]
    hashes = {n: net.node_keys(n).router().router_hash.hex() for n in names}
    latencies: list[float] = []
    pending = {(a, b) for a in names for b in names if a != b}
    while pending:
        for a, b in sorted(pending):
            t0 = time.perf_counter()
            found = _lookup(net, a, hashes[b])
            latencies.append(time.perf_counter() - t0)
            if found is not None:
                assert found["kind"] == "routerinfo" and found["key"] == hashes[b]
                pending.discard((a, b))
        assert time.monotonic() - started < FIND_ALL_WITHIN_S, f"{len(pending)} still missing"
    converged = time.monotonic() - started
    # A key nobody holds: a full iterative crawl before the answer "none".
    misses = []
    for name in names[:10]:
        t0 = time.perf_counter()
        assert _lookup(net, name, "ab" * 32) is None
        misses.append(time.perf_counter() - t0)
    print(f"\nnetdb: all {len(names) * (len(names) - 1)} RouterInfos found {converged:.2f}s "
          f"after up; lookup RPC p50 {_percentile(latencies, 0.5) * 1e3:.1f} ms "
          f"p99 {_percentile(latencies, 0.99) * 1e3:.1f} ms ({len(latencies)} calls); "
          f"miss (full crawl) p50 {_percentile(misses, 0.5) * 1e3:.1f} ms "
          f"p99 {_percentile(misses, 0.99) * 1e3:.1f} ms")

    target, victim = "prosumer3", "prosumer5"
    forged = _forged_records(net, victim)
    port = _netdb_port(net, target)
    replies = asyncio.run(_attack(port, forged))
    assert all(reply == (True, False) for reply in replies.values()), replies

    stats = call_sync(net.socket_path(target), "netdb.stats")
    assert isinstance(stats, dict)
    for reason in ("unsigned", "bad_signature", "wrong_key", "expired", "future", "oversized",
                   "not_member", "replayed", "garbage"):
        assert stats["rejections"][reason] >= 1, (reason, stats["rejections"])
    assert stats["bad_datagrams"]["malformed"] >= 1

    forged_signatures = {key_sig for key_sig in _signatures(forged)}
    for name in names:
        genuine = _lookup(net, name, hashes[victim])
        assert genuine is not None and (genuine["key"], genuine["signature"]) not in \
            forged_signatures
        assert genuine["published_ms"] > forged["replayed"][1].published_ms  # type: ignore[union-attr]
        for label, (key, _) in forged.items():
            found = _lookup(net, name, key.hex())
            if found is not None:
                assert (found["key"], found["signature"]) not in forged_signatures, (label, name)


def _netdb_port(net: Testnet, name: str) -> int:
    status = call_sync(net.socket_path(name), "node.status")
    assert isinstance(status, dict)
    return next(int(entry["port"]) for entry in status["listen"] if entry["kind"] == "netdb")


def _forged_records(net: Testnet, victim: str) -> dict[str, tuple[bytes, RouterInfo | bytes]]:
    """Each attack: the DHT key it is stored under and the value (a record or raw bytes)."""
    keys = net.node_keys(victim).router()
    cert = RouterCertificate.decode((net.node_dir(victim) / CERTIFICATE_FILE).read_bytes())
    genesis = net.genesis()
    now_ms = int(time.time() * 1000)
    stranger = RouterKeys.generate()
    outsider = RouterKeys.generate()
    outsider_cert = certificates.issue(stranger, outsider.identity, network_id=genesis.network_id,
                                       valid_from=int(time.time()) - 60,
                                       valid_until=int(time.time()) + 3600)

    def signed(published_ms: int, signer: RouterKeys = keys, who: RouterKeys = keys,
               certificate: RouterCertificate = cert) -> RouterInfo:
        return sign_routerinfo(signer, genesis.network_id, identity=who.identity,
                               addresses=(Address("udp", "127.0.0.1", 9),),
                               roles=("prosumer",), published_ms=published_ms,
                               certificate=certificate)

    victim_key = keys.router_hash
    other_key = net.node_keys("prosumer6").router().router_hash
    return {
        "unsigned": (victim_key, dataclasses.replace(signed(now_ms + 5000), signature=b"")),
        "bad_signature": (victim_key, signed(now_ms + 5000, signer=stranger)),
        "wrong_key": (other_key, signed(now_ms + 5000)),
        "expired": (victim_key, signed(now_ms - 2 * 3600 * 1000)),
        "future": (victim_key, signed(now_ms + 3600 * 1000)),
        "oversized": (victim_key, b"\x98\x00" + b"\x00" * 3000),
        "not_member": (outsider.router_hash, signed(now_ms, signer=outsider, who=outsider,
                                                   certificate=outsider_cert)),
        # Genuinely signed by the victim, but older than what it has published since.
        "replayed": (victim_key, signed(now_ms - 60_000)),
        "garbage": (victim_key, b"\x00not a record at all"),
    }


def _signatures(forged: dict[str, tuple[bytes, RouterInfo | bytes]]) -> set[tuple[str, str]]:
    return {(key.hex(), value.signature.hex()) for key, value in forged.values()
            if isinstance(value, RouterInfo)}


async def _attack(port: int, forged: dict[str, tuple[bytes, RouterInfo | bytes]]
                  ) -> dict[str, Any]:
    """STORE each forged value through a stock kademlia node; return each (ok, answer)."""
    protocol = KademliaProtocol(Node(b"\x66" * 20), ForgetfulStorage(), 20)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol,
                                                       local_addr=("127.0.0.1", 0))
    try:
        address = ("127.0.0.1", port)
        replies = {}
        for label, (key, value) in forged.items():
            data = value.encode() if isinstance(value, RouterInfo) else value
            replies[label] = tuple(await protocol.store(address, b"\x66" * 20, key[:20], data))
        transport.sendto(b"\x00" + b"\x01" * 20 + b"\xc1\xc1", address)
        answered, _ = await protocol.ping(address, b"\x66" * 20)
        assert answered
        return replies
    finally:
        transport.close()


def test_restarted_node_knows_its_routers_without_the_dht(
    testnet_factory: Callable[[int], Testnet],
) -> None:
    """Every other node is down when it restarts: what it lists comes from its database."""
    net = testnet_factory(4)
    names = [spec.name for spec in net.nodes()]
    wanted = {net.node_keys(n).router().router_hash.hex() for n in names}
    deadline = time.monotonic() + FIND_ALL_WITHIN_S
    while set(call_sync(net.socket_path("prosumer1"), "netdb.routers")) != wanted:  # type: ignore[arg-type]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for name in names:
        if name != "prosumer1":
            net.stop(name)
    net.stop("prosumer1")
    net.start("prosumer1")
    deadline = time.monotonic() + 30
    while net.try_status("prosumer1") is None:
        assert time.monotonic() < deadline and net.alive("prosumer1"), net.log_tail("prosumer1")
        time.sleep(0.1)
    assert set(call_sync(net.socket_path("prosumer1"), "netdb.routers")) == wanted  # type: ignore[arg-type]
