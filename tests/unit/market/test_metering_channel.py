"""The market channel: one garlic ``market`` receiver, messages routed by type."""

from __future__ import annotations

import pytest
from market_helpers import FakeGarlic

from petranode.market.messages import (
    AnswerMessage,
    BilledMessage,
    PolicyAnswer,
    PolicyQuery,
    RecordMessage,
    RequestMessage,
    decode_metering_message,
)
from petranode.market.meter import MeterKeys
from petranode.market.metering.channel import MarketChannel
from petranode.net.garlic.envelope import Protocol as GarlicProtocol

NET = "channel-test"


def test_messages_go_to_their_service() -> None:
    garlic = FakeGarlic()
    channel = MarketChannel(garlic)
    market: list[bytes] = []
    metering: list[bytes] = []
    channel.market.subscribe(GarlicProtocol.MARKET, lambda s, d: market.append(d))
    channel.metering.subscribe(GarlicProtocol.MARKET, lambda s, d: metering.append(d))
    deliver = garlic.handlers[GarlicProtocol.MARKET]
    query = PolicyQuery.create(MeterKeys(b"\x01" * 32), NET, 5)
    for message in (query, PolicyAnswer(None, b"p"), RecordMessage("bill", b"b"),
                    BilledMessage(b"\x02" * 32, False, "opening_mismatch")):
        deliver(b"s", message.encode())
        assert decode_metering_message(metering[-1]) == message
    for data in (RequestMessage(b"r").encode(),
                 AnswerMessage(b"\x01" * 32, False, reason="x").encode(), b"\xc1garbage"):
        deliver(b"s", data)
        assert market[-1] == data
    assert len(metering) == 4 and len(market) == 3
    assert query.signature_valid(NET) and not query.signature_valid("other")


def test_one_receiver_per_port() -> None:
    channel = MarketChannel(FakeGarlic())
    channel.metering.subscribe(GarlicProtocol.MARKET, lambda s, d: None)
    with pytest.raises(ValueError):
        channel.metering.subscribe(GarlicProtocol.MARKET, lambda s, d: None)
    with pytest.raises(ValueError):
        channel.market.subscribe(GarlicProtocol.LEDGER, lambda s, d: None)
