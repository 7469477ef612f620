"""The participant table: relaying, bounds, drops, and what a hop keeps (no event loop)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from petranode.net.identity import RouterKeys
from petranode.net.tunnel.build import (
    BuildReplyCode,
    BuildRequest,
    Direction,
    HopConfig,
    HopRole,
    TunnelSecrets,
    process_build,
    read_replies,
)
from petranode.net.tunnel.fragment import (
    Delivery,
    DeliveryKind,
    Reassembler,
    decode_payload,
    fragment_message,
    padding_payload,
)
from petranode.net.tunnel.layer import CreatorEndpoint, CreatorGateway
from petranode.net.tunnel.transit import EndpointOut, Relay, TransitEntry, TransitTable

NOW = 1_800_000_000


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _admitter(table: TransitTable, previous: bytes) -> Callable[[HopConfig], BuildReplyCode]:
    def admit(config: HopConfig) -> BuildReplyCode:
        return table.admit(config, previous, NOW)

    return admit


class World:
    """Routers with a transit table each; a sender and a receiver router."""

    def __init__(self, size: int = 8, seed: int = 3, **table_kw: int) -> None:
        r = _rng(seed)
        self.routers = [RouterKeys.generate(r.randbytes) for _ in range(size)]
        self.sender = RouterKeys.generate(r.randbytes)
        self.receiver = RouterKeys.generate(r.randbytes)
        self.tables = {k.router_hash: TransitTable(**table_kw) for k in self.routers}
        self.keys = {k.router_hash: k for k in self.routers}
        self.rng = r.randbytes

    def build(self, creator: RouterKeys, hops: list[RouterKeys], direction: Direction,
              reply_router: bytes | None = None,
              reply_tunnel_id: int | None = None) -> tuple[TunnelSecrets, list[BuildReplyCode]]:
        request, secrets = BuildRequest.create(
            [h.identity for h in hops], direction, creator_hash=creator.router_hash, now=NOW,
            rng=self.rng, reply_router=reply_router, reply_tunnel_id=reply_tunnel_id)
        data, previous = request.encode(), creator.router_hash
        for hop in hops:
            table = self.tables[hop.router_hash]
            data = process_build(data, hop, NOW, _admitter(table, previous)).forward
            previous = hop.router_hash
        return secrets, list(read_replies(secrets, data))

    def carry(self, target: bytes, message: bytes, sender: bytes) -> list[EndpointOut | bytes]:
        """Relay until the message leaves the routers; endpoint outputs or bytes for others."""
        out: list[EndpointOut | bytes] = []
        pending = [(target, message, sender)]
        while pending:
            target, message, sender = pending.pop()
            if target not in self.tables:
                out.append(message)
                continue
            tid = int.from_bytes(message[:4], "big")
            for action in self.tables[target].receive(tid, message, sender, NOW):
                match action:
                    case Relay(router_hash=nxt, message=m):
                        pending.append((nxt, m, target))
                    case EndpointOut():
                        out.append(action)
        return out


def test_outbound_tunnel_delivers_through_three_hops() -> None:
    w = World()
    secrets, codes = w.build(w.sender, w.routers[:3], Direction.OUTBOUND,
                             reply_router=w.routers[5].router_hash, reply_tunnel_id=77)
    assert codes == [BuildReplyCode.ACCEPTED] * 3
    gateway = CreatorGateway(secrets)
    delivery = Delivery(DeliveryKind.TUNNEL, w.routers[6].router_hash, 99)
    message = bytes(range(256)) * 10
    outputs = []
    for fragment in fragment_message(message, delivery, rng=w.rng):
        forward = gateway.wrap(fragment.encode(), NOW, w.rng)
        outputs += w.carry(forward.router_hash, forward.message, w.sender.router_hash)
    assert outputs == [EndpointOut(delivery, message)]
    assert sum(t.relayed for t in w.tables.values()) == 2 * len(
        fragment_message(message, delivery, rng=w.rng))


def test_inbound_gateway_to_creator_endpoint() -> None:
    w = World()
    secrets, codes = w.build(w.receiver, w.routers[:3], Direction.INBOUND)
    assert codes == [BuildReplyCode.ACCEPTED] * 3
    gw = secrets.hops[0]
    actions = w.tables[gw.router_hash].gateway(gw.config.receive_tunnel_id, b"hello garlic",
                                               NOW, w.rng)
    assert len(actions) == 1 and isinstance(actions[0], Relay)
    arrived = w.carry(actions[0].router_hash, actions[0].message, gw.router_hash)
    assert len(arrived) == 1 and isinstance(arrived[0], bytes)
    payload = CreatorEndpoint(secrets).unwrap(arrived[0], NOW).payload
    fragment = decode_payload(payload)
    assert fragment is not None
    whole = Reassembler().receive(fragment, NOW)
    assert whole is not None and whole.payload == b"hello garlic"


def test_tampered_and_replayed_messages_are_dropped() -> None:
    w = World()
    secrets, _ = w.build(w.sender, w.routers[:3], Direction.OUTBOUND,
                         reply_router=w.routers[5].router_hash, reply_tunnel_id=77)
    gateway = CreatorGateway(secrets)
    fragment = fragment_message(b"x" * 100, Delivery(DeliveryKind.LOCAL), rng=w.rng)[0]
    tampered = bytearray(gateway.wrap(fragment.encode(), NOW, w.rng).message)
    tampered[500] ^= 1
    forward = gateway.wrap(fragment.encode(), NOW, w.rng)
    assert w.carry(forward.router_hash, bytes(tampered), w.sender.router_hash) == []
    endpoint_table = w.tables[secrets.hops[2].router_hash]
    assert endpoint_table.dropped["auth_failed"] == 1
    # The original passes once; the same bytes again are a replay at the first hop.
    assert len(w.carry(forward.router_hash, forward.message, w.sender.router_hash)) == 1
    assert w.carry(forward.router_hash, forward.message, w.sender.router_hash) == []
    assert w.tables[secrets.hops[0].router_hash].dropped["replay"] == 1


def test_padding_ends_at_the_outbound_endpoint() -> None:
    w = World()
    secrets, _ = w.build(w.sender, w.routers[:2], Direction.OUTBOUND,
                         reply_router=w.routers[5].router_hash, reply_tunnel_id=77)
    forward = CreatorGateway(secrets).wrap(padding_payload(), NOW, w.rng)
    assert w.carry(forward.router_hash, forward.message, w.sender.router_hash) == []
    assert w.tables[secrets.hops[1].router_hash].dropped["padding"] == 1


def test_wrong_previous_hop_and_unknown_tunnel_are_dropped() -> None:
    w = World()
    secrets, _ = w.build(w.sender, w.routers[:2], Direction.OUTBOUND,
                         reply_router=w.routers[5].router_hash, reply_tunnel_id=77)
    forward = CreatorGateway(secrets).wrap(padding_payload(), NOW, w.rng)
    table = w.tables[forward.router_hash]
    tid = int.from_bytes(forward.message[:4], "big")
    assert table.receive(tid, forward.message, w.routers[7].router_hash, NOW) == []
    assert table.receive(tid ^ 1, forward.message, w.sender.router_hash, NOW) == []
    assert table.dropped == {"wrong_previous_hop": 1, "unknown_tunnel": 1}


def test_bounds_on_tunnels_and_bytes() -> None:
    w = World(max_tunnels=1, max_bytes_per_tunnel=2048)
    _, first = w.build(w.sender, w.routers[:1], Direction.OUTBOUND,
                       reply_router=w.routers[5].router_hash, reply_tunnel_id=77)
    _, second = w.build(w.sender, w.routers[:1], Direction.OUTBOUND,
                        reply_router=w.routers[5].router_hash, reply_tunnel_id=78)
    assert first == [BuildReplyCode.ACCEPTED]
    assert second == [BuildReplyCode.REJECTED_BANDWIDTH]
    table = w.tables[w.routers[0].router_hash]
    assert len(table) == 1 and table.rejected == 1
    secrets = w.build(w.sender, w.routers[1:2], Direction.OUTBOUND,
                      reply_router=w.routers[5].router_hash, reply_tunnel_id=79)[0]
    gateway = CreatorGateway(secrets)
    for _ in range(3):
        forward = gateway.wrap(padding_payload(), NOW, w.rng)
        w.carry(forward.router_hash, forward.message, w.sender.router_hash)
    assert w.tables[w.routers[1].router_hash].dropped["byte_limit"] == 1


def test_expiry_forgets_tunnels() -> None:
    w = World()
    w.build(w.sender, w.routers[:1], Direction.OUTBOUND,
            reply_router=w.routers[5].router_hash, reply_tunnel_id=77)
    table = w.tables[w.routers[0].router_hash]
    assert table.expire(NOW + 599) == 0 and table.expire(NOW + 600) == 1 and len(table) == 0


def test_a_hop_keeps_only_neighbours_and_keys_nothing_links_sender_to_destination() -> None:
    """Sender's 3-hop outbound tunnel → receiver's 3-hop inbound tunnel: assert on every
    participant's table that no entry names both routers, and none names the destination."""
    assert {f.name for f in dataclasses.fields(TransitEntry)} == {
        "receive_tunnel_id", "previous_hop", "next_hop", "next_tunnel_id", "keys", "role",
        "expiry", "bytes_relayed", "messages_relayed"}
    w = World(size=8)
    inbound, _ = w.build(w.receiver, w.routers[4:7], Direction.INBOUND)
    gw = inbound.hops[0]
    # The sender's reply tunnel gateway is another router: the endpoint never learns the sender.
    outbound, _ = w.build(w.sender, w.routers[:3], Direction.OUTBOUND,
                          reply_router=w.routers[7].router_hash, reply_tunnel_id=5)
    destination_hash = b"\xdd" * 32  # what a LeaseSet would be stored under
    entries = [e for t in w.tables.values() for e in t.entries.values()]
    assert len(entries) == 6
    for entry in entries:
        values = [getattr(entry, f.name) for f in dataclasses.fields(TransitEntry)]
        named = {v for v in values if isinstance(v, bytes)}
        assert not {w.sender.router_hash, w.receiver.router_hash} <= named
        assert destination_hash not in named
        assert entry.keys.aead_key == b"" or entry.role is not HopRole.PARTICIPANT
        assert "…" in repr(entry.keys)
    # The inbound gateway keeps no previous hop at all: it takes messages from anyone.
    gw_entry = w.tables[gw.router_hash].entries[gw.config.receive_tunnel_id]
    assert gw_entry.role is HopRole.INBOUND_GATEWAY and gw_entry.previous_hop is None
    # Only the first hop of the sender's tunnel names the sender; only the last hop of the
    # receiver's names the receiver — their neighbours, as in I2P.
    senders = [e for e in entries if w.sender.router_hash in (e.previous_hop, e.next_hop)]
    receivers = [e for e in entries if w.receiver.router_hash in (e.previous_hop, e.next_hop)]
    assert len(senders) == 1 and len(receivers) == 1
    assert outbound.hops[0].config.receive_tunnel_id == senders[0].receive_tunnel_id
