"""Settlement messages (delivery reports, verdicts, tier lists): round trips, strict decoding,
and the market channel's routing of them to the settlement port only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from market_helpers import FakeGarlic

from petranode.market.errors import MarketRecordInvalid, RecordFault
from petranode.market.messages import (
    MAX_METERING_MESSAGE_BYTES,
    MAX_REASON_CHARS,
    MAX_TIER_LISTS,
    MESSAGE_VERSION,
    METERING_KINDS,
    SETTLEMENT_KINDS,
    AnswerMessage,
    BilledMessage,
    DeliveredMessage,
    DeliveryMessage,
    RequestMessage,
    SettlementMessage,
    TiersMessage,
    TiersQuery,
    decode_settlement_message,
    message_kind,
)
from petranode.market.metering.channel import MarketChannel
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.wire import codec

MAX_INTERVAL = 2**63 - 1
INTERVALS = st.integers(0, MAX_INTERVAL)
REASONS = st.text(max_size=MAX_REASON_CHARS)
RECORDS = st.binary(max_size=512)

DELIVERY = st.builds(DeliveryMessage, RECORDS)
DELIVERED = st.builds(DeliveredMessage, INTERVALS, st.booleans(), REASONS)
TIERS_QUERY = st.builds(TiersQuery, INTERVALS)
TIERS = st.builds(TiersMessage, INTERVALS,
                  st.lists(st.binary(max_size=128), max_size=MAX_TIER_LISTS).map(tuple))
MESSAGES: st.SearchStrategy[SettlementMessage] = st.one_of(DELIVERY, DELIVERED, TIERS_QUERY,
                                                          TIERS)

#: One valid message of each kind, as the value ``codec.encode`` writes.
SAMPLES: dict[str, list[codec.Encodable]] = {
    "delivery": [MESSAGE_VERSION, "delivery", b"report"],
    "delivered": [MESSAGE_VERSION, "delivered", 7, False, "no_trades"],
    "tiers?": [MESSAGE_VERSION, "tiers?", 3],
    "tiers": [MESSAGE_VERSION, "tiers", 3, [b"gold", b"silver"]],
}


def refused(data: bytes) -> RecordFault:
    """The fault ``decode_settlement_message`` refuses ``data`` with (it must refuse it)."""
    with pytest.raises(MarketRecordInvalid) as info:
        decode_settlement_message(data)
    return info.value.reason


# -- round trips ----------------------------------------------------------------------------------


@given(DELIVERY)
def test_delivery_round_trip(message: DeliveryMessage) -> None:
    assert decode_settlement_message(message.encode()) == message


@given(DELIVERED)
def test_delivered_round_trip(message: DeliveredMessage) -> None:
    assert decode_settlement_message(message.encode()) == message


@given(TIERS_QUERY)
def test_tiers_query_round_trip(message: TiersQuery) -> None:
    assert decode_settlement_message(message.encode()) == message


@given(TIERS)
def test_tiers_round_trip(message: TiersMessage) -> None:
    decoded = decode_settlement_message(message.encode())
    assert decoded == message
    assert isinstance(decoded, TiersMessage) and isinstance(decoded.tier_lists, tuple)


def test_sample_values_are_the_encodings() -> None:
    assert decode_settlement_message(codec.encode(SAMPLES["delivery"])) == DeliveryMessage(
        b"report")
    assert decode_settlement_message(codec.encode(SAMPLES["delivered"])) == DeliveredMessage(
        7, False, "no_trades")
    assert decode_settlement_message(codec.encode(SAMPLES["tiers?"])) == TiersQuery(3)
    assert decode_settlement_message(codec.encode(SAMPLES["tiers"])) == TiersMessage(
        3, (b"gold", b"silver"))
    for kind, value in SAMPLES.items():
        assert message_kind(codec.encode(value)) == kind


def test_kinds_are_disjoint_from_metering() -> None:
    assert SETTLEMENT_KINDS == {"delivery", "delivered", "tiers?", "tiers"}
    assert not SETTLEMENT_KINDS & METERING_KINDS
    assert not SETTLEMENT_KINDS & {"request", "answer"}


def test_edges_decode() -> None:
    for message in (DeliveredMessage(MAX_INTERVAL, True), TiersQuery(0), TiersQuery(MAX_INTERVAL),
                    TiersMessage(0, ()), TiersMessage(1, (b"",) * MAX_TIER_LISTS),
                    DeliveredMessage(0, False, "x" * MAX_REASON_CHARS), DeliveryMessage(b"")):
        assert decode_settlement_message(message.encode()) == message


# -- refusals -------------------------------------------------------------------------------------


def test_too_many_tier_lists() -> None:
    with pytest.raises(ValueError):
        TiersMessage(1, (b"t",) * (MAX_TIER_LISTS + 1))
    data = codec.encode([MESSAGE_VERSION, "tiers", 1, [b"t"] * (MAX_TIER_LISTS + 1)])
    assert refused(data) is RecordFault.MALFORMED


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("version", [0, MESSAGE_VERSION + 1, 255])
def test_wrong_version(kind: str, version: int) -> None:
    value = [version, *SAMPLES[kind][1:]]
    assert refused(codec.encode(value)) is RecordFault.UNSUPPORTED_VERSION


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_wrong_arity(kind: str) -> None:
    value = SAMPLES[kind]
    assert refused(codec.encode(value[:-1])) is RecordFault.MALFORMED
    assert refused(codec.encode([*value, b"extra"])) is RecordFault.MALFORMED


@pytest.mark.parametrize("value", [
    [MESSAGE_VERSION, "delivery", "text"],
    [MESSAGE_VERSION, "delivery", None],
    [MESSAGE_VERSION, "delivery", b"\x00" * (MAX_METERING_MESSAGE_BYTES + 1)],
    [MESSAGE_VERSION, "delivered", -1, True, ""],
    [MESSAGE_VERSION, "delivered", 2**63, True, ""],
    [MESSAGE_VERSION, "delivered", 1, 1, ""],
    [MESSAGE_VERSION, "delivered", 1, True, b""],
    [MESSAGE_VERSION, "delivered", 1, False, "x" * (MAX_REASON_CHARS + 1)],
    [MESSAGE_VERSION, "delivered", True, True, ""],
    [MESSAGE_VERSION, "tiers?", -1],
    [MESSAGE_VERSION, "tiers?", b"\x01"],
    [MESSAGE_VERSION, "tiers?", 2**63],
    [MESSAGE_VERSION, "tiers", 1, b"not a list"],
    [MESSAGE_VERSION, "tiers", 1, ["text"]],
    [MESSAGE_VERSION, "tiers", 1, [[b"nested"]]],
    [MESSAGE_VERSION, "tiers", -1, []],
    [MESSAGE_VERSION, "tier", 1, []],
    [MESSAGE_VERSION, "policy?", b"\x01" * 32, 1, b"\x02" * 64],  # metering, not settlement
    [MESSAGE_VERSION, "request", b"r"],
    [MESSAGE_VERSION, 5, 1],
    [MESSAGE_VERSION],
    ["1", "tiers?", 1],
    [-1, "tiers?", 1],
    [256, "tiers?", 1],
    [],
    {"v": 1},
    b"bytes",
    7,
    None,
])
def test_malformed_values(value: codec.Encodable) -> None:
    assert refused(codec.encode(value)) in (RecordFault.MALFORMED,
                                            RecordFault.UNSUPPORTED_VERSION)


def test_non_canonical_and_trailing_bytes() -> None:
    data = TiersQuery(5).encode()
    assert refused(data + b"\x00") is RecordFault.MALFORMED
    # 5 as a uint8 (0xcc 0x05) instead of a positive fixint: the same value, not canonical.
    assert data.endswith(b"\x05")
    assert refused(data[:-1] + b"\xcc\x05") is RecordFault.MALFORMED
    assert refused(b"\x00" * (MAX_METERING_MESSAGE_BYTES + 1)) is RecordFault.MALFORMED


@given(MESSAGES, st.data())
def test_truncations_are_refused(message: SettlementMessage, data: st.DataObject) -> None:
    encoded = message.encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    refused(encoded[:cut])


@given(MESSAGES, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(message: SettlementMessage, tail: bytes) -> None:
    refused(message.encode() + tail)


def _value_or_refusal(data: bytes) -> None:
    try:
        message = decode_settlement_message(data)
    except MarketRecordInvalid:
        return
    assert message.encode() == data


@given(st.binary(max_size=128))
def test_random_bytes_give_a_message_or_the_error(data: bytes) -> None:
    _value_or_refusal(data)


@given(MESSAGES, st.integers(0, 2**16), st.integers(1, 255))
def test_corrupted_encodings_give_a_message_or_the_error(message: SettlementMessage,
                                                         position: int, flip: int) -> None:
    encoded = bytearray(message.encode())
    encoded[position % len(encoded)] ^= flip
    _value_or_refusal(bytes(encoded))


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                   st.text(max_size=70), st.binary(max_size=40))
VALUES: st.SearchStrategy[codec.Encodable] = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=18) | st.dictionaries(
        st.text(max_size=4), inner, max_size=3), max_leaves=24)


@given(st.sampled_from([*sorted(SETTLEMENT_KINDS), "other"]), st.lists(VALUES, max_size=5),
       st.integers(0, 2))
def test_shaped_garbage_gives_a_message_or_the_error(kind: str, rest: list[codec.Encodable],
                                                     version: int) -> None:
    _value_or_refusal(codec.encode([version, kind, *rest]))


# -- the channel ----------------------------------------------------------------------------------

Handler = Callable[[bytes, bytes], None]



def _wired() -> tuple[Handler, dict[str, list[tuple[bytes, bytes]]]]:
    garlic = FakeGarlic()
    channel = MarketChannel(garlic)
    got: dict[str, list[tuple[bytes, bytes]]] = {"market": [], "metering": [], "settlement": []}
    for name, port in (("market", channel.market), ("metering", channel.metering),
                       ("settlement", channel.settlement)):
        port.subscribe(GarlicProtocol.MARKET, _recorder(got[name]))
    return garlic.handlers[GarlicProtocol.MARKET], got


def _recorder(into: list[tuple[bytes, bytes]]) -> Handler:
    def handler(sender: bytes, data: bytes) -> None:
        into.append((sender, data))
    return handler


@given(MESSAGES)
def test_channel_routes_settlement_kinds_to_settlement_only(message: SettlementMessage) -> None:
    deliver, got = _wired()
    data = message.encode()
    deliver(b"sender", data)
    assert got["settlement"] == [(b"sender", data)]
    assert got["market"] == [] and got["metering"] == []
    assert decode_settlement_message(got["settlement"][0][1]) == message


def test_channel_routes_each_kind_to_its_port() -> None:
    deliver, got = _wired()
    for value in SAMPLES.values():
        deliver(b"s", codec.encode(value))
    others = [RequestMessage(b"r").encode(),
              AnswerMessage(b"\x01" * 32, False, reason="x").encode(),
              b"\xc1garbage", codec.encode([MESSAGE_VERSION])]
    for data in others:
        deliver(b"s", data)
    deliver(b"s", BilledMessage(b"\x02" * 32, True).encode())
    assert [message_kind(d) for _, d in got["settlement"]] == list(SAMPLES)
    assert [d for _, d in got["market"]] == others
    assert len(got["metering"]) == 1


def test_channel_without_settlement_receiver_drops_settlement_messages() -> None:
    garlic = FakeGarlic()
    channel = MarketChannel(garlic)
    market: list[bytes] = []
    metering: list[bytes] = []
    channel.market.subscribe(GarlicProtocol.MARKET, lambda s, d: market.append(d))
    channel.metering.subscribe(GarlicProtocol.MARKET, lambda s, d: metering.append(d))
    deliver = garlic.handlers[GarlicProtocol.MARKET]
    for value in SAMPLES.values():
        deliver(b"s", codec.encode(value))
    assert market == [] and metering == []


def test_settlement_port_has_one_receiver_and_only_the_market_protocol() -> None:
    garlic = FakeGarlic()
    channel = MarketChannel(garlic)
    channel.settlement.subscribe(GarlicProtocol.MARKET, lambda s, d: None)
    with pytest.raises(ValueError):
        channel.settlement.subscribe(GarlicProtocol.MARKET, lambda s, d: None)
    with pytest.raises(ValueError):
        channel.settlement.subscribe(GarlicProtocol.LEDGER, lambda s, d: None)
    channel.market.subscribe(GarlicProtocol.MARKET, lambda s, d: None)
    assert list(garlic.handlers) == [GarlicProtocol.MARKET]  # subscribed to garlic once
