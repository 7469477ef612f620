"""Block sync, in memory with no event loop: a new node against honest, lying and silent
peers (STYLE: tests)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.ledger.gossip import SendTo
from petranode.ledger.p2p_errors import PeerFault, PeerMessageRejected
from petranode.ledger.sync import (
    MAX_BATCH,
    MAX_BLOCKS_MESSAGE_BYTES,
    MSG_BLOCKS,
    MSG_BLOCKS_REQUEST,
    MSG_STATUS,
    MSG_STATUS_REQUEST,
    Apply,
    Blocks,
    BlocksRequest,
    BlockSync,
    PeerFaulted,
    ServeBlocks,
    Status,
    StatusRequest,
    SyncAction,
    SyncParams,
    blocks_message,
    decode_certified_block,
    decode_message,
    encode_certified_block,
    encode_message,
)
from petranode.wire import codec
from petranode.wire.codec import Value

GENESIS_HASH = b"\x00" * 32


class BadBlock(PeerMessageRejected):
    pass


class FakeVerifier:
    """A block is ``height ‖ prev_hash ‖ payload``; its certificate is H("cert" ‖ hash)."""

    def verify(self, height: int, prev_hash: bytes, block: bytes, certificate: bytes) -> bytes:
        digest = hashlib.sha256(block).digest()
        if block[:8] != height.to_bytes(8, "big") or block[8:40] != prev_hash:
            raise BadBlock(PeerFault.BAD_BLOCK, "does not follow")
        if certificate != hashlib.sha256(b"cert" + digest).digest():
            raise BadBlock(PeerFault.BAD_BLOCK, "certificate")
        return digest


def make_chain(length: int, payload: bytes = b"") -> list[tuple[bytes, bytes, bytes]]:
    """(block, certificate, hash) for heights 1 … length."""
    chain = []
    prev = GENESIS_HASH
    for height in range(1, length + 1):
        block = height.to_bytes(8, "big") + prev + payload
        digest = hashlib.sha256(block).digest()
        chain.append((block, hashlib.sha256(b"cert" + digest).digest(), digest))
        prev = digest
    return chain


def _peer(i: int) -> bytes:
    return bytes([i]) * 32


@dataclass
class Net:
    """One syncing node and peers that serve ``chains[i]``; ``behaviour[i]`` may be
    ``"silent"`` (never answers blocks) or ``"forge"`` (bad certificates)."""

    chains: dict[int, list[tuple[bytes, bytes, bytes]]]
    behaviour: dict[int, str] = field(default_factory=dict)
    params: SyncParams = field(default_factory=SyncParams)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.node = BlockSync(FakeVerifier(), height=0, head_hash=GENESIS_HASH,
                              params=self.params, rng=random.Random(3))
        self.applied: list[Apply] = []
        self.faults: list[PeerFaulted] = []
        self.queue: list[tuple[int, dict[str, Value]]] = []
        self.asked: list[int] = []
        for i in self.chains:
            self.handle(self.node.on_peer_change(_peer(i), True, self.now))

    def handle(self, actions: list[SyncAction]) -> None:
        for action in actions:
            match action:
                case SendTo(peer, message):
                    self.serve(peer[0], codec.expect_map(
                        codec.decode(codec.encode(message), max_size=1 << 21)))
                case Apply():
                    self.applied.append(action)
                case PeerFaulted():
                    self.faults.append(action)
                case ServeBlocks():
                    raise AssertionError("the syncing node has nothing to serve")

    def serve(self, i: int, message: dict[str, Value]) -> None:
        """Peer ``i`` answers (queued, so answers interleave)."""
        chain = self.chains[i]
        request = decode_message(message)
        if isinstance(request, StatusRequest):
            self.queue.append((i, dict(encode_message(Status(len(chain))))))  # type: ignore[arg-type]
        elif isinstance(request, BlocksRequest):
            self.asked.append(i)
            if self.behaviour.get(i) == "silent":
                return
            pairs = [(b, c) for b, c, _ in chain[request.start - 1:request.start - 1 + request.count]]
            if self.behaviour.get(i) == "forge":
                pairs = [(b, b"\x00" * 32) for b, _ in pairs]
            self.queue.append((i, dict(blocks_message(request.start, pairs))))  # type: ignore[arg-type]

    def run(self, until: float = 60.0) -> None:
        rng = random.Random(7)
        while self.now < until:
            while self.queue:
                i, message = self.queue.pop(rng.randrange(len(self.queue)))
                wire = codec.expect_map(codec.decode(codec.encode(message), max_size=1 << 21))
                self.handle(self.node.on_message(_peer(i), wire, self.now))
            self.now += 0.5
            self.handle(self.node.tick(self.now))


def _assert_applied_in_order(net: Net, chain: list[tuple[bytes, bytes, bytes]]) -> None:
    assert [a.height for a in net.applied] == list(range(1, len(chain) + 1))
    assert [a.block_hash for a in net.applied] == [h for _, _, h in chain]
    assert net.node.height == len(chain) and net.node.head_hash == chain[-1][2]
    assert not net.node.behind


def test_a_new_node_syncs_every_block_in_order_from_several_peers() -> None:
    chain = make_chain(150)
    net = Net({1: chain, 2: chain, 3: chain[:90]})
    net.run()
    _assert_applied_in_order(net, chain)
    assert set(net.asked) == {1, 2, 3}  # the work was spread
    assert net.node.stats()["buffered"] == 0


def test_a_forging_peer_is_set_aside_and_nothing_unverified_is_applied() -> None:
    chain = make_chain(40)
    net = Net({1: chain, 2: chain, 3: chain}, behaviour={2: "forge"})
    net.run()
    _assert_applied_in_order(net, chain)
    assert net.faults and all(f.peer == _peer(2) for f in net.faults)
    assert net.node.stats()["bad_blocks"] >= 1


def test_a_forged_chain_alone_is_never_applied() -> None:
    chain = make_chain(10)
    net = Net({1: chain}, behaviour={1: "forge"}, params=SyncParams(fault_ban_s=1000))
    net.run(until=20)
    assert net.applied == [] and net.node.height == 0


def test_a_fork_that_does_not_follow_our_head_is_refused() -> None:
    ours = make_chain(5)
    theirs = make_chain(8, payload=b"other")
    net = Net({1: theirs})
    net.node = BlockSync(FakeVerifier(), height=5, head_hash=ours[-1][2], rng=random.Random(1))
    net.handle(net.node.on_peer_change(_peer(1), True, 0.0))
    net.run(until=10)
    assert net.applied == [] and net.faults


def test_a_silent_peer_times_out_and_others_serve() -> None:
    chain = make_chain(30)
    net = Net({1: chain}, behaviour={1: "silent"}, params=SyncParams(request_timeout_s=1.0))
    net.run(until=0.5)
    assert net.asked == [1, 1] and net.applied == []
    net.chains[2] = chain
    net.handle(net.node.on_peer_change(_peer(2), True, net.now))
    net.run()
    _assert_applied_in_order(net, chain)
    assert net.node.stats()["request_timeouts"] >= 1


def test_the_buffer_is_bounded_by_the_window() -> None:
    chain = make_chain(200)
    params = SyncParams(window=20)
    node = BlockSync(FakeVerifier(), height=0, head_hash=GENESIS_HASH, params=params)
    node.add_peer(_peer(1), 200)
    actions = node.tick(0.0)
    requests = [decode_message(codec.expect_map(codec.decode(codec.encode(a.message),
                                                             max_size=1 << 20)))
                for a in actions if isinstance(a, SendTo) and a.message["t"] == MSG_BLOCKS_REQUEST]
    assert sum(r.count for r in requests if isinstance(r, BlocksRequest)) == 20
    assert all(isinstance(r, BlocksRequest) and r.count <= MAX_BATCH for r in requests)
    assert chain  # the peer has more; we only ask the window


def test_gossiped_blocks_apply_when_next_and_start_a_sync_when_ahead() -> None:
    chain = make_chain(5)
    node = BlockSync(FakeVerifier(), height=0, head_hash=GENESIS_HASH)
    block, cert, digest = chain[0]
    assert node.offer(_peer(1), 1, block, cert, 0.0) == [Apply(1, block, cert, digest)]
    assert node.offer(_peer(1), 1, block, cert, 0.0) == []  # old news
    block5, cert5, _ = chain[4]
    ahead = node.offer(_peer(1), 5, block5, cert5, 0.0)
    assert [a.message["t"] for a in ahead if isinstance(a, SendTo)] == [MSG_BLOCKS_REQUEST]
    assert node.target == 5 and node.behind


def test_committed_by_consensus_advances_and_must_be_next() -> None:
    chain = make_chain(3)
    node = BlockSync(FakeVerifier(), height=0, head_hash=GENESIS_HASH)
    node.committed(1, chain[0][2], 0.0)
    assert node.height == 1 and node.head_hash == chain[0][2]
    with pytest.raises(ValueError):
        node.committed(3, chain[2][2], 0.0)


def test_serving_peers() -> None:
    node = BlockSync(FakeVerifier(), height=10, head_hash=GENESIS_HASH)
    status = node.on_message(_peer(1), {"t": MSG_STATUS_REQUEST}, 0.0)
    assert status == [SendTo(_peer(1), {"t": MSG_STATUS, "height": 10})]
    serve = node.on_message(_peer(1), {"t": MSG_BLOCKS_REQUEST, "from": 8, "count": 16}, 0.0)
    assert serve == [ServeBlocks(_peer(1), 8, 3)]
    empty = node.on_message(_peer(1), {"t": MSG_BLOCKS_REQUEST, "from": 11, "count": 1}, 0.0)
    assert empty == [SendTo(_peer(1), {"t": MSG_BLOCKS, "from": 11, "blocks": []})]


def test_unsolicited_blocks_are_ignored() -> None:
    chain = make_chain(2)
    node = BlockSync(FakeVerifier(), height=0, head_hash=GENESIS_HASH)
    message = codec.expect_map(codec.decode(codec.encode(
        blocks_message(1, [(b, c) for b, c, _ in chain])), max_size=1 << 20))
    assert node.on_message(_peer(1), message, 0.0) == []
    assert node.height == 0 and node.stats()["unsolicited"] == 1


def test_blocks_message_fits_one_link_message() -> None:
    big = bytes(400 * 1024)
    message = blocks_message(1, [(big, b"c")] * 5)
    assert len(message["blocks"]) == 2  # type: ignore[arg-type]
    assert len(codec.encode(message)) <= MAX_BLOCKS_MESSAGE_BYTES + 1024
    assert len(blocks_message(1, [(bytes(900 * 1024), b"c")])["blocks"]) == 1  # type: ignore[arg-type]


def test_certified_block_items_round_trip_and_refuse_garbage() -> None:
    data = encode_certified_block(7, b"block", b"cert")
    assert decode_certified_block(data) == (7, b"block", b"cert")
    for bad in (b"", b"\xc1", codec.encode([0, b"b", b"c"]), codec.encode([1, b"b"])):
        with pytest.raises(PeerMessageRejected):
            decode_certified_block(bad)


MESSAGES = [
    StatusRequest(), Status(0), Status(12), BlocksRequest(1, 16),
    Blocks(3, ((b"b", b"c"), (b"d", b"e"))), Blocks(1, ()),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_messages_round_trip(message: StatusRequest | Status | BlocksRequest | Blocks) -> None:
    wire = codec.expect_map(codec.decode(codec.encode(encode_message(message)), max_size=1 << 20))
    assert decode_message(wire) == message


BAD: list[tuple[dict[str, Value], PeerFault]] = [
    ({"t": "ledger.nope"}, PeerFault.UNKNOWN_TYPE),
    ({"t": MSG_STATUS_REQUEST, "x": 1}, PeerFault.MALFORMED),
    ({"t": MSG_STATUS, "height": -1}, PeerFault.MALFORMED),
    ({"t": MSG_BLOCKS_REQUEST, "from": 0, "count": 1}, PeerFault.MALFORMED),
    ({"t": MSG_BLOCKS_REQUEST, "from": 1, "count": 17}, PeerFault.MALFORMED),
    ({"t": MSG_BLOCKS, "from": 1, "blocks": [[b"b"]]}, PeerFault.MALFORMED),
    ({"t": MSG_BLOCKS, "from": 1, "blocks": [[b"b", b"c"]] * 17}, PeerFault.OVERSIZED),
    ({"t": MSG_BLOCKS, "from": 1, "blocks": [["b", b"c"]]}, PeerFault.MALFORMED),
]


@pytest.mark.parametrize(("message", "fault"), BAD)
def test_bad_messages_are_typed_errors(message: dict[str, Value], fault: PeerFault) -> None:
    node = BlockSync(FakeVerifier(), height=0, head_hash=GENESIS_HASH)
    with pytest.raises(PeerMessageRejected) as info:
        node.on_message(_peer(1), message, 0.0)
    assert info.value.reason is fault


_values: st.SearchStrategy[Value] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12,
)


@settings(max_examples=50, deadline=None)
@given(
    t=st.sampled_from([MSG_STATUS_REQUEST, MSG_STATUS, MSG_BLOCKS_REQUEST, MSG_BLOCKS]),
    fields=st.dictionaries(st.sampled_from(["height", "from", "count", "blocks"]), _values,
                           max_size=3),
)
def test_arbitrary_message_maps_give_actions_or_a_typed_error(
    t: str, fields: dict[str, Value]
) -> None:
    node = BlockSync(FakeVerifier(), height=3, head_hash=GENESIS_HASH)
    try:
        node.on_message(_peer(1), {"t": t, **fields}, 0.0)
    except PeerMessageRejected:
        pass
