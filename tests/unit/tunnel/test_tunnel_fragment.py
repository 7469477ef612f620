"""Fragmentation and reassembly of tunnel payloads (petranode.net.tunnel.fragment)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tunnel_mesh import NOW, Mesh, seeded

from petranode.net.tunnel.build import Direction
from petranode.net.tunnel.errors import MessageFault, TunnelMessageInvalid
from petranode.net.tunnel.fragment import (
    MAX_FRAGMENTS,
    MAX_MESSAGE_BYTES,
    Delivery,
    DeliveryKind,
    Fragment,
    Reassembled,
    Reassembler,
    decode_payload,
    fragment_message,
    padding_payload,
)
from petranode.net.tunnel.layer import TUNNEL_PAYLOAD_BYTES

ROUTER = bytes(range(32))
DELIVERIES = [
    Delivery(DeliveryKind.LOCAL),
    Delivery(DeliveryKind.ROUTER, ROUTER),
    Delivery(DeliveryKind.TUNNEL, ROUTER, 0xDEADBEEF),
]
FIRST = {d.kind: Fragment.capacity(d) for d in DELIVERIES}
FOLLOW = Fragment.capacity(None)


def body(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def reassemble(fragments: list[Fragment], r: Reassembler | None = None) -> list[Reassembled]:
    r = r or Reassembler()
    out = [r.receive(f, NOW) for f in fragments]
    return [m for m in out if m is not None]


def test_capacities() -> None:
    assert FOLLOW == TUNNEL_PAYLOAD_BYTES - 9 == 979
    assert FIRST == {DeliveryKind.LOCAL: 978, DeliveryKind.ROUTER: 946, DeliveryKind.TUNNEL: 942}
    # The largest message fits the fragment numbering.
    assert 1 + -(-(MAX_MESSAGE_BYTES - 942) // FOLLOW) <= MAX_FRAGMENTS


def test_exact_bytes_of_a_fragment_both_ways() -> None:
    fragment = Fragment(0x01020304, 0, True, b"hi", Delivery(DeliveryKind.TUNNEL, ROUTER, 7))
    wire = (
        b"\x01" + b"\x01\x02\x03\x04" + b"\x00" + b"\x01"
        + b"\x02" + ROUTER + b"\x00\x00\x00\x07"
        + b"\x00\x02" + b"hi"
    )  # fmt: skip
    wire += bytes(TUNNEL_PAYLOAD_BYTES - len(wire))
    assert fragment.encode() == wire
    assert decode_payload(wire) == fragment
    follow = Fragment(5, 3, False, b"x")
    wire = b"\x01\x00\x00\x00\x05\x03\x00\x00\x01x"
    assert follow.encode() == wire + bytes(TUNNEL_PAYLOAD_BYTES - len(wire))


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize(
    "size", [0, 1, 941, 942, 943, 978, 979, 942 + FOLLOW, 942 + FOLLOW + 1, 10_000, 65_536]
)
def test_round_trip_in_order(size: int, delivery: Delivery) -> None:
    data = body(size)
    fragments = fragment_message(data, delivery, rng=seeded(size))
    encoded = [f.encode() for f in fragments]
    assert {len(e) for e in encoded} == {TUNNEL_PAYLOAD_BYTES}
    decoded = [decode_payload(e) for e in encoded]
    assert decoded == fragments
    [message] = reassemble(fragments)
    assert message.payload == data and message.delivery == delivery
    assert message.message_id == fragments[0].message_id


@pytest.mark.parametrize("seed", range(5))
def test_out_of_order_with_duplicates(seed: int) -> None:
    shuffle = random.Random(seed)
    messages = [body(n) for n in (65_536, 3000, 10, 50_000)]
    fragments = [f for i, m in enumerate(messages) for f in fragment_message(m, DELIVERIES[i % 3])]
    fragments += shuffle.sample(fragments, 20)  # duplicates
    shuffle.shuffle(fragments)
    r = Reassembler()
    done = reassemble(fragments, r)
    assert sorted(m.payload for m in done) == sorted(messages)
    assert r.pending == 0


def test_a_64_kib_message_through_a_three_hop_tunnel() -> None:
    mesh = Mesh()
    built = mesh.build(3, Direction.OUTBOUND)
    data = body(64 * 1024)
    delivery = Delivery(DeliveryKind.ROUTER, ROUTER)
    fragments = fragment_message(data, delivery, rng=mesh.rng)
    r = Reassembler()
    done: list[Reassembled] = []
    for fragment in reversed(fragments):
        payload = mesh.send(built, fragment.encode())
        got = decode_payload(payload)
        assert got is not None
        result = r.receive(got, NOW)
        if result is not None:
            done.append(result)
    assert done == [Reassembled(fragments[0].message_id, delivery, data)]
    assert {len(m) for _, m in mesh.wire} == {1024}


def test_padding_is_recognised_and_must_be_zero() -> None:
    assert decode_payload(padding_payload()) is None
    with pytest.raises(TunnelMessageInvalid):
        decode_payload(padding_payload()[:-1] + b"\x01")


def test_malformed_payloads_are_refused() -> None:
    good = Fragment(1, 0, True, b"abc", DELIVERIES[0]).encode()
    bad = [
        good[:-1],  # size
        b"\x02" + good[1:],  # kind
        good[:5] + bytes([MAX_FRAGMENTS]) + good[6:],  # number
        good[:6] + b"\x03" + good[7:],  # flags
        good[:7] + b"\x03" + good[8:],  # delivery type
        good[:8] + b"\xff\xff" + good[10:],  # length past the end
        good[:-1] + b"\x01",  # padding
        Fragment(1, 0, True, b"", DELIVERIES[2]).encode()[:40]
        + bytes(TUNNEL_PAYLOAD_BYTES - 40),  # tunnel id 0
    ]
    for payload in bad:
        with pytest.raises(TunnelMessageInvalid) as info:
            decode_payload(payload)
        assert info.value.reason in (MessageFault.WRONG_SIZE, MessageFault.BAD_FRAGMENT)


def test_conflicting_fragments_drop_the_message() -> None:
    d = DELIVERIES[0]
    cases = [
        [Fragment(1, 2, True, b"a"), Fragment(1, 3, True, b"b")],  # two last fragments
        [Fragment(1, 2, True, b"a"), Fragment(1, 3, False, b"b")],  # past the last
        [Fragment(1, 3, False, b"a"), Fragment(1, 2, True, b"b")],  # last before a later one
        [Fragment(1, 0, False, b"a", d), Fragment(1, 0, False, b"b", d)],  # same number
    ]
    for fragments in cases:
        r = Reassembler()
        assert r.receive(fragments[0], NOW) is None
        with pytest.raises(TunnelMessageInvalid) as info:
            r.receive(fragments[1], NOW)
        assert info.value.reason is MessageFault.FRAGMENT_CONFLICT
        assert r.pending == 0


def test_bounds_size_pending_and_expiry() -> None:
    d = DELIVERIES[0]
    r = Reassembler(max_message_bytes=1500)
    r.receive(Fragment(1, 0, False, bytes(900), d), NOW)
    with pytest.raises(TunnelMessageInvalid) as info:
        r.receive(Fragment(1, 1, False, bytes(900)), NOW)
    assert info.value.reason is MessageFault.MESSAGE_TOO_LARGE

    r = Reassembler(max_pending=2, timeout_s=60)
    for mid in (1, 2, 3):  # the third evicts the oldest
        r.receive(Fragment(mid, 1, True, b"tail"), NOW)
    assert r.pending == 2
    assert r.receive(Fragment(1, 0, False, b"head", d), NOW) is None  # 1 was evicted
    done = r.receive(Fragment(3, 0, False, b"head", d), NOW)
    assert done is not None and done.payload == b"headtail"
    assert r.expire(NOW + 59) == 0
    assert r.expire(NOW + 60) == 1 and r.pending == 0  # message 1, evicting 2 on arrival
    with pytest.raises(ValueError):
        Reassembler(max_pending=0)


def test_a_duplicate_after_completion_is_ignored() -> None:
    r = Reassembler()
    [fragment] = fragment_message(b"once", DELIVERIES[0])
    assert r.receive(fragment, NOW) is not None
    assert r.receive(fragment, NOW + 1) is None and r.pending == 0
    # Remembered for the reassembly timeout only.
    assert r.receive(fragment, NOW + 61) is not None


def test_fragmenting_refuses_oversized_messages_and_bad_records() -> None:
    with pytest.raises(ValueError):
        fragment_message(bytes(MAX_MESSAGE_BYTES + 1), DELIVERIES[0])
    with pytest.raises(ValueError):
        Fragment(1, 1, False, b"", DELIVERIES[0])
    with pytest.raises(ValueError):
        Fragment(1, 0, False, bytes(979), DELIVERIES[0])
    with pytest.raises(ValueError):
        Delivery(DeliveryKind.LOCAL, ROUTER)
    with pytest.raises(ValueError):
        Delivery(DeliveryKind.ROUTER, ROUTER, 5)
    with pytest.raises(ValueError):
        Delivery(DeliveryKind.TUNNEL, ROUTER, 0)


# -- hypothesis ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=70_000), st.sampled_from(DELIVERIES), st.randoms(use_true_random=False))
def test_any_payload_round_trips_in_any_order(
    data: bytes, delivery: Delivery, shuffle: random.Random
) -> None:
    if len(data) > MAX_MESSAGE_BYTES:
        with pytest.raises(ValueError):
            fragment_message(data, delivery)
        return
    fragments = [decode_payload(f.encode()) for f in fragment_message(data, delivery)]
    shuffle.shuffle(fragments)
    done = reassemble([f for f in fragments if f is not None])
    assert [m.payload for m in done] == [data]


@settings(max_examples=100)
@given(
    st.binary(max_size=TUNNEL_PAYLOAD_BYTES + 2)
    | st.binary(min_size=TUNNEL_PAYLOAD_BYTES, max_size=TUNNEL_PAYLOAD_BYTES)
    | st.tuples(st.binary(min_size=1, max_size=60), st.sampled_from([b"\x00", b"\x01"])).map(
        lambda t: (t[1] + t[0] + bytes(TUNNEL_PAYLOAD_BYTES))[:TUNNEL_PAYLOAD_BYTES]
    )
)
def test_arbitrary_payloads_give_a_fragment_or_the_message_error(data: bytes) -> None:
    try:
        fragment = decode_payload(data)
    except TunnelMessageInvalid as exc:
        assert exc.reason in (MessageFault.WRONG_SIZE, MessageFault.BAD_FRAGMENT)
        return
    if fragment is not None:
        assert fragment.encode() == data
