"""Three services on one garlic protocol: ``market`` messages split by type (SPEC §4.7, §4.8).

The garlic service gives each protocol one receiver. The market service (asset requests), the
metering service (commitments, shares, bills, policies) and the settlement service (delivery
reports, tier lists) all speak ``market``, so the node subscribes a :class:`MarketChannel`
once and hands each service one of its ports: a message whose type is in
:data:`~petranode.market.messages.METERING_KINDS` goes to the metering port's handler, one in
:data:`~petranode.market.messages.SETTLEMENT_KINDS` to the settlement port's, every other
message (including undecodable ones, which the market service counts) to the market port's.
Sending goes straight to garlic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, final

from petranode.market.messages import METERING_KINDS, SETTLEMENT_KINDS, message_kind
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

    __slots__ = ("_channel", "_route")

    def __init__(self, channel: MarketChannel, route: str) -> None:
        self._channel = channel
        self._route = route

    def subscribe(self, protocol: GarlicProtocol, handler: Handler) -> None:
        if protocol is not GarlicProtocol.MARKET:
            raise ValueError("a market channel port carries only the market protocol")
        self._channel.attach(self._route, handler)

    def send(self, to: bytes, data: bytes,
             protocol: GarlicProtocol = GarlicProtocol.MARKET) -> Awaitable[bytes]:
        return self._channel.garlic.send(to, data, protocol)


@final
class MarketChannel:
    """Routes garlic ``market`` messages by type: metering kinds to the metering service,
    settlement kinds (delivery reports, tier lists) to the settlement service, the rest to
    the market service."""

    __slots__ = ("_handlers", "_subscribed", "garlic", "market", "metering", "settlement")

    def __init__(self, garlic: Garlic) -> None:
        self.garlic = garlic
        self._handlers: dict[str, Handler] = {}
        self._subscribed = False
        self.market = ChannelPort(self, "market")
        self.metering = ChannelPort(self, "metering")
        self.settlement = ChannelPort(self, "settlement")

    def attach(self, route: str, handler: Handler) -> None:
        if route in self._handlers:
            raise ValueError("this port already has a receiver")
        self._handlers[route] = handler
        if not self._subscribed:
            self.garlic.subscribe(GarlicProtocol.MARKET, self._dispatch)
            self._subscribed = True

    def _dispatch(self, sender: bytes, data: bytes) -> None:
        kind = message_kind(data)
        route = ("metering" if kind in METERING_KINDS else
                 "settlement" if kind in SETTLEMENT_KINDS else "market")
        handler = self._handlers.get(route)
        if handler is not None:
            handler(sender, data)
