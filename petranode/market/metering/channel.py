"""Two services on one garlic protocol: ``market`` messages split by type (SPEC §4.7, §4.8).

The garlic service gives each protocol one receiver. The market service (asset requests) and
the metering service (commitments, shares, bills, policies) both speak ``market``, so the
node subscribes a :class:`MarketChannel` once and hands each service one of its ports: a
message whose type is in :data:`~petranode.market.messages.METERING_KINDS` goes to the
metering port's handler, every other message (including undecodable ones, which the market
service counts) to the market port's. Sending goes straight to garlic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, final

from petranode.market.messages import METERING_KINDS, message_kind
from petranode.net.garlic.envelope import Protocol as GarlicProtocol

log = logging.getLogger(__name__)

Handler = Callable[[bytes, bytes], None]


class Garlic(Protocol):
    """What the channel needs of ``GarlicService``."""

    def subscribe(self, protocol: GarlicProtocol, handler: Handler) -> None: ...

    def send(self, to: bytes, data: bytes,
             protocol: GarlicProtocol = ...) -> Awaitable[bytes]: ...


@final
class ChannelPort:
    """One service's view of the channel: the ``subscribe``/``send`` of a garlic service."""

    __slots__ = ("_channel", "_metering")

    def __init__(self, channel: MarketChannel, metering: bool) -> None:
        self._channel = channel
        self._metering = metering

    def subscribe(self, protocol: GarlicProtocol, handler: Handler) -> None:
        if protocol is not GarlicProtocol.MARKET:
            raise ValueError("a market channel port carries only the market protocol")
        self._channel.attach(self._metering, handler)

    def send(self, to: bytes, data: bytes,
             protocol: GarlicProtocol = GarlicProtocol.MARKET) -> Awaitable[bytes]:
        return self._channel.garlic.send(to, data, protocol)


@final
class MarketChannel:
    """Routes garlic ``market`` messages to the market or the metering service by type."""

    __slots__ = ("_handlers", "_subscribed", "garlic", "market", "metering")

    def __init__(self, garlic: Garlic) -> None:
        self.garlic = garlic
        self._handlers: dict[bool, Handler] = {}
        self._subscribed = False
        self.market = ChannelPort(self, metering=False)
        self.metering = ChannelPort(self, metering=True)

    def attach(self, metering: bool, handler: Handler) -> None:
        if metering in self._handlers:
            raise ValueError("this port already has a receiver")
        self._handlers[metering] = handler
        if not self._subscribed:
            self.garlic.subscribe(GarlicProtocol.MARKET, self._dispatch)
            self._subscribed = True

    def _dispatch(self, sender: bytes, data: bytes) -> None:
        handler = self._handlers.get(message_kind(data) in METERING_KINDS)
        if handler is not None:
            handler(sender, data)
