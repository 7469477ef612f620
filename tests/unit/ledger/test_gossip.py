"""The gossip machine, wired N-to-N in memory with no event loop (STYLE: tests, Mesh)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.ledger.gossip import (
    MAX_HASHES_PER_MESSAGE,
    MAX_ITEM_BYTES,
    MAX_REQUEST_ATTEMPTS,
    MSG_HAVE,
    MSG_ITEM,
    MSG_WANT,
    Deliver,
    Gossip,
    GossipAction,
    GossipParams,
    Have,
    Item,
    ItemKind,
    SendTo,
    Want,
    decode_message,
    encode_message,
    item_hash,
)
from petranode.ledger.p2p_errors import PeerFault, PeerMessageRejected
from petranode.wire import codec
from petranode.wire.codec import Value

TICK_S = 0.1


def _peer(i: int) -> bytes:
    return bytes([i]) * 32


@dataclass
class Mesh:
    """N gossip machines over in-memory links; the 'layer above' accepts every item it gets
    unless told to refuse it, and then publishes it, as the service does."""

    n: int
    params: GossipParams
    links: set[frozenset[int]]
    seed: int = 0
    now: float = 0.0
    refuse: set[int] = field(default_factory=set)
    drop: set[tuple[int, int, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.nodes = [Gossip(self.params, rng=random.Random(self.seed + i)) for i in range(self.n)]
        self.delivered: list[Counter[bytes]] = [Counter() for _ in range(self.n)]
        self.items_received: Counter[int] = Counter()
        self.sent: list[tuple[int, int, str]] = []
        self.queue: list[tuple[int, int, SendTo]] = []
        for link in self.links:
            a, b = sorted(link)
            self.nodes[a].on_peer_change(_peer(b), True, self.now)
            self.nodes[b].on_peer_change(_peer(a), True, self.now)

    @classmethod
    def full(cls, n: int, params: GossipParams, seed: int = 0) -> Mesh:
        return cls(n, params, {frozenset((a, b)) for a in range(n) for b in range(a + 1, n)}, seed)

    def index(self, peer: bytes) -> int:
        return peer[0]

    def feed(self, src: int, actions: list[GossipAction]) -> None:
        for action in actions:
            match action:
                case SendTo(peer, _):
                    dst = self.index(peer)
                    assert frozenset((src, dst)) in self.links, "sent over a link that is not up"
                    self.queue.append((src, dst, action))
                case Deliver(kind, digest, data, _):
                    assert item_hash(data) == digest
                    self.delivered[src][digest] += 1
                    if src not in self.refuse:
                        self.feed(src, self.nodes[src].publish(kind, data, self.now))

    def publish(self, node: int, kind: ItemKind, data: bytes) -> None:
        self.feed(node, self.nodes[node].publish(kind, data, self.now))

    def run(self, max_steps: int = 100_000) -> None:
        """Deliver messages in a random order; tick when the network is quiet; stop when a
        tick produces nothing."""
        for _ in range(max_steps):
            if self.queue:
                src, dst, send = self.queue.pop(self.rng.randrange(len(self.queue)))
                t = str(send.message["t"])
                self.sent.append((src, dst, t))
                if (src, dst, t) in self.drop:
                    continue
                if t == MSG_ITEM:
                    self.items_received[dst] += 1
                # Through the real codec, as the link carries it.
                wire = codec.expect_map(codec.decode(codec.encode(send.message), max_size=1 << 20))
                self.feed(dst, self.nodes[dst].on_message(_peer(src), wire, self.now))
                continue
            self.now += TICK_S
            for i, node in enumerate(self.nodes):
                self.feed(i, node.tick(self.now))
            if not self.queue and not any(node.stats()["wants"] for node in self.nodes):
                # One more quiet tick settles every pending announcement.
                self.now += TICK_S
                for i, node in enumerate(self.nodes):
                    self.feed(i, node.tick(self.now))
                if not self.queue:
                    return
        raise AssertionError("the mesh did not settle")


@pytest.mark.parametrize("fanout", [1, 3, 16])
@pytest.mark.parametrize("topology", ["full", "ring", "star"])
def test_every_item_reaches_every_node_exactly_once(fanout: int, topology: str) -> None:
    n = 9
    if topology == "full":
        mesh = Mesh.full(n, GossipParams(fanout=fanout), seed=fanout)
    elif topology == "ring":
        mesh = Mesh(n, GossipParams(fanout=fanout), {frozenset((i, (i + 1) % n)) for i in range(n)})
    else:
        mesh = Mesh(n, GossipParams(fanout=fanout), {frozenset((0, i)) for i in range(1, n)})
    items = [(ItemKind.TX, b"tx%d" % i) for i in range(5)] + [
        (ItemKind.VOTE, b"vote"), (ItemKind.BLOCK, b"block" * 100), (ItemKind.PROPOSAL, b"p"),
    ]
    for i, (kind, data) in enumerate(items):
        mesh.publish(i % n, kind, data)
    mesh.run()
    for i in range(n):
        origin_items = {item_hash(d) for j, (_, d) in enumerate(items) if j % n == i}
        expected = {item_hash(d) for _, d in items} - origin_items
        assert set(mesh.delivered[i]) == expected
        assert all(count == 1 for count in mesh.delivered[i].values())
    # Each node downloads each item once: nothing is lost in this mesh, so no re-request.
    assert sum(mesh.items_received.values()) == (n - 1) * len(items)


def test_fan_out_is_bounded_per_publication_and_per_tick() -> None:
    node = Gossip(GossipParams(fanout=3), rng=random.Random(1))
    for i in range(1, 11):
        node.on_peer_change(_peer(i), True, 0.0)
    told: set[bytes] = set()
    actions = node.publish(ItemKind.TX, b"hello", 0.0)
    assert len(actions) == 3
    for step in range(1, 5):
        for action in actions:
            assert isinstance(action, SendTo) and action.message["t"] == MSG_HAVE
            assert action.peer not in told, "a peer was told twice"
            told.add(action.peer)
        actions = node.tick(step * TICK_S)
        assert len(actions) <= 3
    assert len(told) == 10 and actions == []


def test_peers_that_announced_an_item_are_not_told_of_it() -> None:
    node = Gossip(GossipParams(fanout=8))
    for i in (1, 2, 3):
        node.on_peer_change(_peer(i), True, 0.0)
    data = b"block"
    digest = item_hash(data)
    want = node.on_announce(_peer(1), ItemKind.BLOCK, [digest], 0.0)
    assert want == [SendTo(_peer(1), encode_message(Want(ItemKind.BLOCK, (digest,))))]
    assert node.on_announce(_peer(2), ItemKind.BLOCK, [digest], 0.0) == []  # already asked
    delivered = node.on_item(_peer(1), ItemKind.BLOCK, data, 0.1)
    assert delivered == [Deliver(ItemKind.BLOCK, digest, data, _peer(1))]
    relay = node.publish(ItemKind.BLOCK, data, 0.2)
    assert [a.peer for a in relay if isinstance(a, SendTo)] == [_peer(3)]
    assert node.publish(ItemKind.BLOCK, data, 0.3) == []  # idempotent


def test_duplicates_are_suppressed() -> None:
    node = Gossip()
    for i in (1, 2):
        node.on_peer_change(_peer(i), True, 0.0)
    data = b"vote"
    digest = item_hash(data)
    node.on_announce(_peer(1), ItemKind.VOTE, [digest], 0.0)
    node.on_announce(_peer(2), ItemKind.VOTE, [digest], 0.0)
    assert len(node.on_item(_peer(1), ItemKind.VOTE, data, 0.0)) == 1
    assert node.on_item(_peer(2), ItemKind.VOTE, data, 0.0) == []
    assert node.on_item(_peer(1), ItemKind.VOTE, data, 0.0) == []
    assert node.on_announce(_peer(2), ItemKind.VOTE, [digest], 0.0) == []
    assert node.stats()["duplicates"] == 2


def test_unsolicited_items_are_not_delivered() -> None:
    node = Gossip()
    node.on_peer_change(_peer(1), True, 0.0)
    assert node.on_item(_peer(1), ItemKind.TX, b"push", 0.0) == []
    assert node.stats()["unsolicited"] == 1
    assert not node.holds(ItemKind.TX, item_hash(b"push"))


def test_the_same_bytes_under_another_kind_are_another_item() -> None:
    node = Gossip()
    node.on_peer_change(_peer(1), True, 0.0)
    digest = item_hash(b"x")
    node.on_announce(_peer(1), ItemKind.TX, [digest], 0.0)
    assert node.on_item(_peer(1), ItemKind.VOTE, b"x", 0.0) == []  # asked as a TX
    assert len(node.on_item(_peer(1), ItemKind.TX, b"x", 0.0)) == 1


def test_timed_out_request_goes_to_the_next_announcer() -> None:
    mesh = Mesh.full(3, GossipParams(fanout=8, request_timeout_s=0.5))
    # Node 2 asks whichever of 0 and 1 announced first; that peer's answer is lost.
    mesh.publish(0, ItemKind.TX, b"tx")
    mesh.drop = {(0, 2, MSG_ITEM), (1, 2, MSG_ITEM)}
    # Let 1 learn the item and announce it, while 2's first answer is dropped.
    mesh.run()
    assert mesh.delivered[2] == Counter()
    assert mesh.nodes[2].stats()["wants_dropped"] == 1
    # With answers flowing again, a fresh announcement is fetched.
    mesh.drop = {(0, 2, MSG_ITEM)}
    mesh.nodes[0].on_peer_change(_peer(2), False, mesh.now)
    mesh.nodes[1].on_peer_change(_peer(2), False, mesh.now)
    mesh.nodes[0].on_peer_change(_peer(2), True, mesh.now)
    mesh.nodes[1].on_peer_change(_peer(2), True, mesh.now)
    mesh.run()
    assert mesh.delivered[2] == Counter({item_hash(b"tx"): 1})
    assert mesh.nodes[2].stats()["request_timeouts"] >= 1


def test_re_request_after_timeout_from_a_candidate() -> None:
    node = Gossip(GossipParams(request_timeout_s=1.0))
    for i in (1, 2):
        node.on_peer_change(_peer(i), True, 0.0)
    digest = item_hash(b"tx")
    assert node.on_announce(_peer(1), ItemKind.TX, [digest], 0.0)
    assert node.on_announce(_peer(2), ItemKind.TX, [digest], 0.1) == []
    assert node.tick(0.5) == []
    again = node.tick(1.0)
    assert again == [SendTo(_peer(2), encode_message(Want(ItemKind.TX, (digest,))))]
    # The first peer's late answer is still welcome: we still want the item.
    assert len(node.on_item(_peer(1), ItemKind.TX, b"tx", 1.1)) == 1


def test_a_lone_announcer_that_answers_late_is_asked_again_then_given_up() -> None:
    node = Gossip(GossipParams(request_timeout_s=1.0))
    node.on_peer_change(_peer(1), True, 0.0)
    digest = item_hash(b"tx")
    want = [SendTo(_peer(1), encode_message(Want(ItemKind.TX, (digest,))))]
    assert node.on_announce(_peer(1), ItemKind.TX, [digest], 0.0) == want
    for attempt in range(1, MAX_REQUEST_ATTEMPTS):
        assert node.tick(float(attempt)) == want  # it will not announce it to us again
    assert node.tick(float(MAX_REQUEST_ATTEMPTS)) == []
    assert node.stats()["wants_dropped"] == 1


def test_link_down_moves_the_request_to_the_next_announcer() -> None:
    node = Gossip()
    for i in (1, 2, 3):
        node.on_peer_change(_peer(i), True, 0.0)
    digest = item_hash(b"tx")
    node.on_announce(_peer(1), ItemKind.TX, [digest], 0.0)
    node.on_announce(_peer(2), ItemKind.TX, [digest], 0.0)
    node.on_announce(_peer(3), ItemKind.TX, [digest], 0.0)
    node.on_peer_change(_peer(2), False, 0.1)  # a candidate goes: skipped
    moved = node.on_peer_change(_peer(1), False, 0.1)
    assert moved == [SendTo(_peer(3), encode_message(Want(ItemKind.TX, (digest,))))]
    assert node.on_peer_change(_peer(3), False, 0.2) == []
    assert node.stats()["wants"] == 0


def test_a_refused_item_is_neither_relayed_nor_served() -> None:
    mesh = Mesh(3, GossipParams(), {frozenset((0, 1)), frozenset((1, 2))}, refuse={1})
    mesh.publish(0, ItemKind.TX, b"invalid")
    mesh.run()
    assert mesh.delivered[1] == Counter({item_hash(b"invalid"): 1})
    assert mesh.delivered[2] == Counter()
    assert mesh.nodes[1].on_request(_peer(2), ItemKind.TX, [item_hash(b"invalid")], 9.0) == []


def test_a_relinked_peer_is_told_everything_again() -> None:
    node = Gossip(GossipParams(fanout=8))
    node.on_peer_change(_peer(1), True, 0.0)
    node.publish(ItemKind.VOTE, b"v1", 0.0)
    node.publish(ItemKind.VOTE, b"v2", 0.0)
    assert node.tick(0.1) == []
    node.on_peer_change(_peer(1), False, 0.2)
    node.on_peer_change(_peer(1), True, 0.3)
    again = node.tick(0.4)
    assert [a.peer for a in again if isinstance(a, SendTo)] == [_peer(1)]
    (send,) = again
    assert isinstance(send, SendTo)
    decoded = decode_message(dict(send.message))  # type: ignore[arg-type]
    assert isinstance(decoded, Have)
    assert set(decoded.hashes) == {item_hash(b"v1"), item_hash(b"v2")}


def test_seen_cache_expires_and_is_bounded() -> None:
    node = Gossip(GossipParams(ttl_s=10.0, max_items=4))
    node.on_peer_change(_peer(1), True, 0.0)
    for i in range(10):
        node.publish(ItemKind.TX, b"tx%d" % i, float(i) * 0.01)
    assert node.stats()["items"] == 4 and node.stats()["evicted"] == 6
    assert node.holds(ItemKind.TX, item_hash(b"tx9"))
    node.tick(20.0)
    assert node.stats()["items"] == 0 and node.stats()["bytes"] == 0
    # Expired: seen again, it is fetched (and would be delivered) again.
    assert node.on_announce(_peer(1), ItemKind.TX, [item_hash(b"tx9")], 20.0)


def test_wants_are_bounded() -> None:
    node = Gossip()
    node.on_peer_change(_peer(1), True, 0.0)
    for start in range(0, 5000, MAX_HASHES_PER_MESSAGE):
        hashes = [i.to_bytes(32, "big") for i in range(start, start + MAX_HASHES_PER_MESSAGE)]
        node.on_announce(_peer(1), ItemKind.TX, hashes, 0.0)
    assert node.stats()["wants"] == 4096
    assert node.stats()["wants_refused"] > 0


def test_oversized_items_are_refused() -> None:
    node = Gossip()
    with pytest.raises(PeerMessageRejected) as info:
        node.on_item(_peer(1), ItemKind.VOTE, bytes(MAX_ITEM_BYTES[ItemKind.VOTE] + 1), 0.0)
    assert info.value.reason is PeerFault.OVERSIZED
    with pytest.raises(ValueError):
        node.publish(ItemKind.TX, b"", 0.0)


# -- messages -----------------------------------------------------------------------------------

MESSAGES = [
    Have(ItemKind.TX, (b"\x01" * 32,)),
    Want(ItemKind.BLOCK, (b"\x02" * 32, b"\x03" * 32)),
    Item(ItemKind.VOTE, b"vote bytes"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_messages_round_trip(message: Have | Want | Item) -> None:
    encoded = encode_message(message)
    assert decode_message(dict(encoded)) == message  # type: ignore[arg-type]


BAD: list[tuple[dict[str, Value], PeerFault]] = [
    ({}, PeerFault.UNKNOWN_TYPE),
    ({"t": "ledger.nope"}, PeerFault.UNKNOWN_TYPE),
    ({"t": MSG_HAVE, "k": "tx"}, PeerFault.MALFORMED),
    ({"t": MSG_HAVE, "k": "tx", "h": [b"\x00" * 32], "x": 1}, PeerFault.MALFORMED),
    ({"t": MSG_HAVE, "k": "coin", "h": [b"\x00" * 32]}, PeerFault.UNKNOWN_KIND),
    ({"t": MSG_HAVE, "k": 1, "h": [b"\x00" * 32]}, PeerFault.MALFORMED),
    ({"t": MSG_WANT, "k": "tx", "h": []}, PeerFault.OVERSIZED),
    ({"t": MSG_WANT, "k": "tx", "h": [b"\x00" * 32] * 257}, PeerFault.OVERSIZED),
    ({"t": MSG_WANT, "k": "tx", "h": [b"\x00" * 31]}, PeerFault.MALFORMED),
    ({"t": MSG_WANT, "k": "tx", "h": b"\x00" * 32}, PeerFault.MALFORMED),
    ({"t": MSG_ITEM, "k": "tx", "d": ""}, PeerFault.MALFORMED),
    ({"t": MSG_ITEM, "k": "tx", "d": b""}, PeerFault.OVERSIZED),
    ({"t": MSG_ITEM, "k": "vote", "d": bytes(5000)}, PeerFault.OVERSIZED),
]


@pytest.mark.parametrize(("message", "fault"), BAD)
def test_bad_messages_are_typed_errors(message: dict[str, Value], fault: PeerFault) -> None:
    with pytest.raises(PeerMessageRejected) as info:
        Gossip().on_message(_peer(1), message, 0.0)
    assert info.value.reason is fault


_values: st.SearchStrategy[Value] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=12)
    | st.binary(max_size=40) | st.sampled_from(["tx", "vote", "block", "proposal"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12,
)


@settings(max_examples=50, deadline=None)
@given(
    t=st.sampled_from([MSG_HAVE, MSG_WANT, MSG_ITEM, "x"]) | st.integers() | st.none(),
    fields=st.dictionaries(st.sampled_from(["k", "h", "d", "z"]), _values, max_size=4),
)
def test_arbitrary_message_maps_give_an_action_list_or_a_typed_error(
    t: Value, fields: dict[str, Value]
) -> None:
    node = Gossip()
    node.on_peer_change(_peer(1), True, 0.0)
    try:
        actions = node.on_message(_peer(1), {"t": t, **fields}, 0.0)
    except PeerMessageRejected:
        return
    assert all(isinstance(a, (SendTo, Deliver)) for a in actions)


def test_params_are_checked() -> None:
    with pytest.raises(ValueError):
        GossipParams(fanout=0)
    with pytest.raises(ValueError):
        GossipParams(max_bytes=10)
