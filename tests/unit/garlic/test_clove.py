"""Clove and garlic-message codecs: exact bytes both ways, validation, hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.net.garlic.clove import (
    MAX_CLOVE_OVERHEAD,
    MAX_CLOVE_PAYLOAD,
    MAX_CLOVES,
    MAX_GARLIC_BYTES,
    MESSAGE_OVERHEAD,
    Clove,
    DeliveryInstructions,
    DeliveryKind,
    GarlicMessage,
    PayloadKind,
)
from petranode.wire import codec
from petranode.wire.errors import DecodeError

LOCAL = DeliveryInstructions.local()
IDS = bytes(range(8))
DATA = Clove(LOCAL, IDS, 1000, PayloadKind.DATA, b"hi")

#: (record, exact canonical bytes), used both ways (h11 ``test_io.py``).
CLOVES = [
    (DATA, "959300c40000c4080001020304050607cd03e800c4026869"),
    (Clove(LOCAL, bytes(8), 5, PayloadKind.ACK, bytes(range(16))),
     "959300c40000c40800000000000000000501c410000102030405060708090a0b0c0d0e0f"),
]
MESSAGES = [
    (GarlicMessage(7, 1000, (DATA,)),
     "940107cd03e891959300c40000c4080001020304050607cd03e800c4026869"),
]


@pytest.mark.parametrize(("clove", "hexbytes"), CLOVES)
def test_clove_exact_bytes(clove: Clove, hexbytes: str) -> None:
    assert clove.encode().hex() == hexbytes
    assert Clove.from_value(codec.decode(bytes.fromhex(hexbytes), max_size=100)) == clove


@pytest.mark.parametrize(("message", "hexbytes"), MESSAGES)
def test_message_exact_bytes(message: GarlicMessage, hexbytes: str) -> None:
    assert message.encode().hex() == hexbytes
    assert GarlicMessage.decode(bytes.fromhex(hexbytes)) == message


def test_tunnel_delivery_bytes() -> None:
    tunnel = DeliveryInstructions(DeliveryKind.TUNNEL, b"\xaa" * 32, 77)
    assert codec.encode(tunnel.to_value()).hex() == "9303c420" + "aa" * 32 + "4d"
    assert DeliveryInstructions.from_value(tunnel.to_value()) == tunnel  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [
    lambda: DeliveryInstructions(DeliveryKind.LOCAL, b"x" * 32),
    lambda: DeliveryInstructions(DeliveryKind.DESTINATION, b"x" * 31),
    lambda: DeliveryInstructions(DeliveryKind.ROUTER, b"x" * 32, 5),
    lambda: DeliveryInstructions(DeliveryKind.TUNNEL, b"x" * 32, 0),
    lambda: Clove(LOCAL, b"short", 1, PayloadKind.DATA, b""),
    lambda: Clove(LOCAL, IDS, -1, PayloadKind.DATA, b""),
    lambda: Clove(LOCAL, IDS, 1, PayloadKind.DATA, bytes(MAX_CLOVE_PAYLOAD + 1)),
    lambda: Clove(LOCAL, IDS, 1, PayloadKind.ACK, bytes(15)),
    lambda: Clove(LOCAL, IDS, 1, PayloadKind.LEASESET, b""),
    lambda: Clove(LOCAL, IDS, 1, PayloadKind.PADDING, b"\x01"),
    lambda: GarlicMessage(1, 1, ()),
    lambda: GarlicMessage(1, 1, (DATA, DATA)),
    lambda: GarlicMessage(2**32, 1, (DATA,)),
    lambda: GarlicMessage(1, 1, tuple(
        Clove(LOCAL, bytes([i]) * 8, 1, PayloadKind.DATA, b"") for i in range(MAX_CLOVES + 1))),
    lambda: GarlicMessage(1, 1, tuple(
        Clove(LOCAL, bytes([i]) * 8, 1, PayloadKind.DATA, bytes(MAX_CLOVE_PAYLOAD))
        for i in range(2))),
])
def test_construction_refuses_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


def test_size_bounds_hold() -> None:
    """A maximal clove fits the overhead constant; one maximal clove fits in a message."""
    biggest = Clove(DeliveryInstructions(DeliveryKind.TUNNEL, b"\xff" * 32, 2**32 - 1),
                    b"\xff" * 8, 2**63 - 1, PayloadKind.DATA, bytes(MAX_CLOVE_PAYLOAD))
    assert len(biggest.encode()) == MAX_CLOVE_OVERHEAD + MAX_CLOVE_PAYLOAD
    message = GarlicMessage(2**32 - 1, 2**63 - 1, (biggest,))
    assert len(message.encode()) <= MESSAGE_OVERHEAD + MAX_CLOVE_OVERHEAD + MAX_CLOVE_PAYLOAD
    assert len(message.encode()) <= MAX_GARLIC_BYTES


def test_decode_refuses_non_canonical_and_oversized() -> None:
    good = MESSAGES[0][0].encode()
    with pytest.raises(DecodeError):
        GarlicMessage.decode(good + b"\x00")
    with pytest.raises(DecodeError):
        GarlicMessage.decode(bytes(MAX_GARLIC_BYTES + 1))
    # message id 7 written as uint8 (0xcc 07) instead of a positive fixint
    with pytest.raises(DecodeError):
        GarlicMessage.decode(good[:2] + b"\xcc\x07" + good[3:])


# -- hypothesis -----------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)
deliveries = st.one_of(
    st.just(LOCAL),
    st.builds(DeliveryInstructions, st.sampled_from([DeliveryKind.DESTINATION,
                                                     DeliveryKind.ROUTER]), hashes),
    st.builds(DeliveryInstructions, st.just(DeliveryKind.TUNNEL), hashes,
              st.integers(1, 2**32 - 1)),
)
payloads = st.one_of(
    st.tuples(st.just(PayloadKind.DATA), st.binary(max_size=300)),
    st.tuples(st.just(PayloadKind.ACK), st.binary(min_size=16, max_size=16)),
    st.tuples(st.just(PayloadKind.LEASESET), st.binary(min_size=1, max_size=200)),
    st.tuples(st.just(PayloadKind.PADDING), st.integers(0, 300).map(bytes)),
)
cloves = st.builds(lambda d, i, e, p: Clove(d, i, e, p[0], p[1]), deliveries,
                   st.binary(min_size=8, max_size=8), st.integers(0, 2**63 - 1), payloads)
messages = st.builds(
    GarlicMessage, st.integers(0, 2**32 - 1), st.integers(0, 2**63 - 1),
    st.lists(cloves, min_size=1, max_size=MAX_CLOVES,
             unique_by=lambda c: c.clove_id).map(tuple))


@settings(max_examples=100)
@given(messages)
def test_message_round_trip(message: GarlicMessage) -> None:
    assert GarlicMessage.decode(message.encode()) == message


@settings(max_examples=100)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_decode_error(data: bytes) -> None:
    try:
        GarlicMessage.decode(data)
    except DecodeError:
        pass


@settings(max_examples=100)
@given(messages, st.data())
def test_mutated_encoding_decodes_or_decode_error(message: GarlicMessage,
                                                 data: st.DataObject) -> None:
    """A valid encoding cut, or with one byte changed, still gives a value or DecodeError."""
    encoded = bytearray(message.encode())
    cut = data.draw(st.integers(0, len(encoded)))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    for candidate in (bytes(encoded), bytes(encoded[:cut])):
        try:
            GarlicMessage.decode(candidate)
        except DecodeError:
            pass
