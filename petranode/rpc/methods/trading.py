"""``market.*`` RPC methods of trading: offers, accepts and trade outcomes (SPEC §4.7, §4.9).

| method | params | result |
|---|---|---|
| ``market.offer`` | ``{"side", "interval", "power_w", "price", "expiry_ms"?, "tier"?}`` | ``{"offer_id", …}`` once our pool took it |
| ``market.accept`` | ``{"offer_id", "power_w"}`` | ``{"trade_id", "offer_id", "interval", "power_w", "price"}`` |
| ``market.cancel`` | ``{"offer_id"}`` | ``{"tx", "offer_id"}`` |
| ``market.offers`` | ``{"first_interval"?, "last_interval"?}`` | open offers on the ledger (public fields; ``mine``) |
| ``market.own_offers`` | – | this node's offers and their status |
| ``market.trades`` | ``{"interval"?}`` | this node's trades: ``status`` cleared/failed/pending, ``latency_ms``, ``proceeds_cents`` |
| ``market.interval`` | ``{"interval"}`` | the ledger's final trades of one interval: count, volume, value, average price |
| ``market.trading`` | – | counters |
| ``market.notices`` | ``{"topic"}`` | the DSO's feeder limits or price policies in force on the ledger |
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final, Protocol, final

from petranode.market.errors import OutOfWindow, ReputationProofRejected
from petranode.market.notices import NoticeTopic
from petranode.market.trade_kinds import MAX_POWER_W, MAX_PRICE, Side
from petranode.market.trading.service import TradeUnavailable
from petranode.rpc.errors import ErrorCode
from petranode.rpc.params import invalid_params
from petranode.rpc.protocol import MethodTable

TRADE_UNAVAILABLE: Final = ErrorCode.PETRANODE_ERROR - 50
OUT_OF_WINDOW: Final = ErrorCode.PETRANODE_ERROR - 51
REPUTATION_PROOF_REJECTED: Final = ErrorCode.PETRANODE_ERROR - 52


class TradingControl(Protocol):
    def offer(self, side: Side, interval: int, power_w: int, price: int,
              expiry_ms: int | None = None, tier: int = 0) -> Awaitable[dict[str, Any]]: ...

    def accept(self, offer_id: bytes, power_w: int) -> Awaitable[dict[str, Any]]: ...

    def cancel(self, offer_id: bytes) -> Awaitable[dict[str, Any]]: ...

    def offers(self, first_interval: int | None, last_interval: int | None
               ) -> Awaitable[list[dict[str, Any]]]: ...

    def own_offers(self) -> Awaitable[list[dict[str, Any]]]: ...

    def trades(self, interval: int | None = None) -> Awaitable[list[dict[str, Any]]]: ...

    def interval(self, interval: int) -> Awaitable[dict[str, Any]]: ...

    def notices(self, topic: NoticeTopic) -> Awaitable[list[dict[str, Any]]]: ...

    def stats(self) -> dict[str, Any]: ...


@final
@dataclass(frozen=True, slots=True)
class OfferParams:
    #: ``sell`` (backed by production) or ``buy`` (backed by consumption and money).
    side: str
    interval: int
    #: W over the interval.
    power_w: int
    #: Cents per W·interval.
    price: int
    #: Ms since the Unix epoch; default: the interval's gate closure.
    expiry_ms: int | None = None
    #: Minimum reputation the offer proves, anonymously (0: ungated).
    tier: int = 0


@final
@dataclass(frozen=True, slots=True)
class AcceptParams:
    offer_id: str
    power_w: int


@final
@dataclass(frozen=True, slots=True)
class OfferIdParams:
    offer_id: str


@final
@dataclass(frozen=True, slots=True)
class RangeParams:
    first_interval: int | None = None
    last_interval: int | None = None


@final
@dataclass(frozen=True, slots=True)
class TradesParams:
    interval: int | None = None


@final
@dataclass(frozen=True, slots=True)
class IntervalParams:
    interval: int


@final
@dataclass(frozen=True, slots=True)
class NoticesParams:
    #: ``feeder_limit`` or ``price_policy``.
    topic: str


def register(table: MethodTable, trading: TradingControl) -> None:
    table.errors.register(TradeUnavailable, TRADE_UNAVAILABLE)
    table.errors.register(OutOfWindow, OUT_OF_WINDOW)
    table.errors.register(ReputationProofRejected, REPUTATION_PROOF_REJECTED)

    async def offer(side: str, interval: int, power_w: int, price: int,
                    expiry_ms: int | None = None, tier: int = 0) -> dict[str, Any]:
        """Post an anonymous offer through garlic, escrowing its backing; ``tier`` > 0 proves
        the maker's reputation is at least that, without saying who it is."""
        try:
            chosen = Side(side)
        except ValueError:
            raise invalid_params("side", "side is sell or buy") from None
        _check_range("interval", interval, 0, 2**63 - 1)
        _check_range("power_w", power_w, 1, MAX_POWER_W)
        _check_range("price", price, 1, MAX_PRICE)
        _check_range("tier", tier, 0, 2**32 - 1)
        return await trading.offer(chosen, interval, power_w, price, expiry_ms, tier)

    async def accept(offer_id: str, power_w: int) -> dict[str, Any]:
        """Fill part or all of an open offer in one atomic ledger transaction."""
        _check_range("power_w", power_w, 1, MAX_POWER_W)
        return await trading.accept(_offer_id(offer_id), power_w)

    async def cancel(offer_id: str) -> dict[str, Any]:
        """Withdraw one of this node's offers; its remaining escrow returns."""
        return await trading.cancel(_offer_id(offer_id))

    async def offers(first_interval: int | None = None,
                     last_interval: int | None = None) -> list[dict[str, Any]]:
        """Open offers on the ledger (default: intervals whose gate is open)."""
        return await trading.offers(first_interval, last_interval)

    async def own_offers() -> list[dict[str, Any]]:
        """This node's offers and their status."""
        return await trading.own_offers()

    async def trades(interval: int | None = None) -> list[dict[str, Any]]:
        """This node's trades: cleared, failed or pending, with clearing latency."""
        return await trading.trades(interval)

    async def interval_summary(interval: int) -> dict[str, Any]:
        """Final trades of one interval on the ledger: count, volume, value, average price."""
        return await trading.interval(interval)

    async def stats() -> dict[str, Any]:
        """Trading counters of this node."""
        return trading.stats()

    async def notices(topic: str) -> list[dict[str, Any]]:
        """The DSO's feeder limits or price policies in force, as posted on the ledger."""
        try:
            chosen = NoticeTopic(topic)
        except ValueError:
            raise invalid_params("topic", "topic is feeder_limit or price_policy") from None
        return await trading.notices(chosen)

    table.register("market.offer", offer, OfferParams)
    table.register("market.accept", accept, AcceptParams)
    table.register("market.cancel", cancel, OfferIdParams)
    table.register("market.offers", offers, RangeParams)
    table.register("market.own_offers", own_offers)
    table.register("market.trades", trades, TradesParams)
    table.register("market.interval", interval_summary, IntervalParams)
    table.register("market.trading", stats)
    table.register("market.notices", notices, NoticesParams)


def _check_range(param: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise invalid_params(param, f"{param} must be {lo}..{hi}")


def _offer_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise invalid_params("offer_id", "offer_id is not hex") from None
    if len(raw) != 32:
        raise invalid_params("offer_id", "offer_id must be 32 bytes")
    return raw
