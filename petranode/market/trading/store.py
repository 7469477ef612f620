"""A prosumer's own offers and trades (component ``market_trading``; SPEC §4.7).

What only this node knows — which offers on the ledger are its own (with the nonce their keys
derive from), which accepts it submitted, and how each of its trades ended — kept so that a
restart (or ``kill -9``) reports every trade by its deadline all the same. A row is written
before its transaction leaves the node.

* ``own_offers(offer_id PK, nonce, side, interval, power_w, price, submitted_ms, status,
  final_ms)`` — ``status``: ``submitted``, ``open`` (final on the ledger), ``failed`` (not
  final by the interval's deadline), ``cancelled``;
* ``own_trades(trade_id PK, offer_id, role, side, interval, power_w, price, submitted_ms,
  status, final_ms, height, proceeds_cents, nonce)`` — ``role`` ``maker`` or ``taker``,
  ``side`` what this node did (``sell``/``buy``), ``status`` ``pending``, ``cleared`` or
  ``failed``; ``submitted_ms`` is when the offer (maker) or the accept (taker) was submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.store.store import Migration, Row, SqlValue, Store, as_blob, as_int

TRADING_MIGRATIONS: Final = (
    Migration(
        "market_trading",
        1,
        """
        CREATE TABLE own_offers (
            offer_id BLOB PRIMARY KEY, nonce BLOB NOT NULL, side TEXT NOT NULL,
            interval INTEGER NOT NULL, power_w INTEGER NOT NULL, price INTEGER NOT NULL,
            submitted_ms INTEGER NOT NULL, status TEXT NOT NULL, final_ms INTEGER) STRICT;
        CREATE TABLE own_trades (
            trade_id BLOB PRIMARY KEY, offer_id BLOB NOT NULL, role TEXT NOT NULL,
            side TEXT NOT NULL, interval INTEGER NOT NULL, power_w INTEGER NOT NULL,
            price INTEGER NOT NULL, submitted_ms INTEGER NOT NULL, status TEXT NOT NULL,
            final_ms INTEGER, height INTEGER, proceeds_cents INTEGER NOT NULL DEFAULT 0,
            nonce BLOB) STRICT;
        CREATE INDEX own_trades_by_interval ON own_trades (interval);
        """,
    ),
)

_OFFER_COLUMNS: Final = "offer_id, nonce, side, interval, power_w, price, submitted_ms, status"
_TRADE_COLUMNS: Final = (
    "trade_id, offer_id, role, side, interval, power_w, price, submitted_ms, status, final_ms, "
    "height, proceeds_cents, nonce"
)


@final
@dataclass(frozen=True, slots=True)
class OwnOffer:
    offer_id: bytes
    nonce: bytes
    side: str
    interval: int
    power_w: int
    price: int
    submitted_ms: int
    status: str


@final
@dataclass(frozen=True, slots=True)
class OwnTrade:
    trade_id: bytes
    offer_id: bytes
    role: str
    side: str
    interval: int
    power_w: int
    price: int
    submitted_ms: int
    status: str
    final_ms: int | None = None
    height: int | None = None
    proceeds_cents: int = 0
    nonce: bytes | None = None


def _opt_int(value: SqlValue) -> int | None:
    return None if value is None else as_int(value)


def _own_offer(row: Row) -> OwnOffer:
    return OwnOffer(as_blob(row[0]), as_blob(row[1]), str(row[2]), as_int(row[3]),
                    as_int(row[4]), as_int(row[5]), as_int(row[6]), str(row[7]))


def _own_trade(row: Row) -> OwnTrade:
    return OwnTrade(as_blob(row[0]), as_blob(row[1]), str(row[2]), str(row[3]), as_int(row[4]),
                    as_int(row[5]), as_int(row[6]), as_int(row[7]), str(row[8]),
                    _opt_int(row[9]), _opt_int(row[10]), as_int(row[11]),
                    None if row[12] is None else as_blob(row[12]))


class TradingStore:
    """The ``market_trading`` tables."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add_offer(self, offer: OwnOffer) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                f"INSERT INTO own_offers ({_OFFER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (offer.offer_id, offer.nonce, offer.side, offer.interval, offer.power_w,
                 offer.price, offer.submitted_ms, offer.status))

    async def set_offer_status(self, offer_id: bytes, status: str,
                               final_ms: int | None = None) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE own_offers SET status = ?, final_ms = coalesce(?, final_ms) "
                "WHERE offer_id = ?", (status, final_ms, offer_id))

    async def offers(self, statuses: Sequence[str] | None = None) -> list[OwnOffer]:
        if statuses is None:
            rows = await self._store.fetchall(
                f"SELECT {_OFFER_COLUMNS} FROM own_offers ORDER BY interval, submitted_ms")
        else:
            marks = ", ".join("?" * len(statuses))
            rows = await self._store.fetchall(
                f"SELECT {_OFFER_COLUMNS} FROM own_offers WHERE status IN ({marks}) "
                "ORDER BY interval, submitted_ms", tuple(statuses))
        return [_own_offer(r) for r in rows]

    async def add_trade(self, trade: OwnTrade) -> bool:
        """Record a trade once; False if it was recorded already."""
        async with self._store.transaction() as tx:
            changed = await tx.execute(
                f"INSERT INTO own_trades ({_TRADE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (trade.trade_id, trade.offer_id, trade.role, trade.side, trade.interval,
                 trade.power_w, trade.price, trade.submitted_ms, trade.status, trade.final_ms,
                 trade.height, trade.proceeds_cents, trade.nonce))
        return changed == 1

    async def settle_trade(self, trade_id: bytes, status: str, final_ms: int | None = None,
                           height: int | None = None) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE own_trades SET status = ?, final_ms = ?, height = ? "
                "WHERE trade_id = ?", (status, final_ms, height, trade_id))

    async def add_proceeds(self, trade_id: bytes, cents: int) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE own_trades SET proceeds_cents = proceeds_cents + ? WHERE trade_id = ?",
                (cents, trade_id))

    async def trades(self, status: str | None = None) -> list[OwnTrade]:
        if status is None:
            rows = await self._store.fetchall(
                f"SELECT {_TRADE_COLUMNS} FROM own_trades ORDER BY interval, submitted_ms")
        else:
            rows = await self._store.fetchall(
                f"SELECT {_TRADE_COLUMNS} FROM own_trades WHERE status = ? "
                "ORDER BY interval, submitted_ms", (status,))
        return [_own_trade(r) for r in rows]
