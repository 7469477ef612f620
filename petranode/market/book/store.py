"""The market's offer book on the ledger: the :class:`~petranode.ledger.extension.LedgerExtension`
that adds the offer, accept and cancel kinds to a node's ledger (SPEC §4.7; docs/market.md).

Tables (component ``market_book``), written in each block's SQL transaction:

* ``offers(offer_id PK, terms, side, interval, power_w, price, expiry_ms, remaining_w, seq,
  cancelled, height, updated_height)`` — every offer ever opened; ``terms`` is the canonical
  msgpack of :class:`~petranode.market.trade_kinds.OfferTerms` (what validation reads back),
  the other columns are for queries;
* ``trades(trade_id PK, offer_id, interval, power_w, price, maker_side, height, time_ms)`` —
  every fill, with the block (height and time) that made it final;
* ``notices(tx_hash PK, topic, key, issued_ms, body, height)`` — the DSO's price policies and
  feeder limits (:mod:`petranode.market.notices`); the latest per key is in force.

Validation of a block reads only the offers its transactions name (:meth:`MarketLedger.view`);
the pure rules are in :mod:`petranode.market.trade_kinds`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from petranode.crypto.errors import CryptoError
from petranode.ledger.state import AppliedTx, LedgerSnapshot, LedgerView
from petranode.ledger.tx import Tx, TxRegistry
from petranode.ledger.tx_errors import TxRejected
from petranode.market.errors import MarketReject, MarketTxRejected
from petranode.market.intervals import MarketClock
from petranode.market.notices import Notice, NoticeTopic
from petranode.market.trade_kinds import (
    MARKET_REGISTRY,
    Accept,
    Cancel,
    MarketBook,
    MarketDelta,
    MarketSnapshot,
    OfferState,
    OfferTerms,
    Side,
    Trade,
)
from petranode.store.errors import StorageError
from petranode.store.store import Migration, Row, Store, Transaction, as_blob, as_int
from petranode.wire import codec
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

BOOK_MIGRATIONS: Final = (
    Migration(
        "market_book",
        1,
        """
        CREATE TABLE offers (
            offer_id BLOB PRIMARY KEY, terms BLOB NOT NULL, side TEXT NOT NULL,
            interval INTEGER NOT NULL, power_w INTEGER NOT NULL, price INTEGER NOT NULL,
            expiry_ms INTEGER NOT NULL, remaining_w INTEGER NOT NULL, seq INTEGER NOT NULL,
            cancelled INTEGER NOT NULL, height INTEGER NOT NULL,
            updated_height INTEGER NOT NULL) STRICT;
        CREATE INDEX offers_by_interval ON offers (interval);
        CREATE TABLE trades (
            trade_id BLOB PRIMARY KEY, offer_id BLOB NOT NULL REFERENCES offers (offer_id),
            interval INTEGER NOT NULL, power_w INTEGER NOT NULL, price INTEGER NOT NULL,
            maker_side TEXT NOT NULL, height INTEGER NOT NULL, time_ms INTEGER NOT NULL) STRICT;
        CREATE INDEX trades_by_interval ON trades (interval);
        CREATE INDEX trades_by_offer ON trades (offer_id);
        CREATE TABLE notices (
            tx_hash BLOB PRIMARY KEY, topic TEXT NOT NULL, key TEXT NOT NULL,
            issued_ms INTEGER NOT NULL, body BLOB NOT NULL, height INTEGER NOT NULL) STRICT;
        CREATE INDEX notices_by_key ON notices (topic, key, issued_ms);
        """,
    ),
)

_OFFER_COLUMNS: Final = "offer_id, terms, remaining_w, seq, cancelled, height"
_TRADE_COLUMNS: Final = "trade_id, offer_id, interval, power_w, price, maker_side, height, time_ms"
#: Bound on stored offer terms: nine short fields.
_MAX_TERMS_BYTES: Final = 512
#: Most offers or trades one query returns (RPC listings).
MAX_ROWS: Final = 10_000


@final
@dataclass(frozen=True, slots=True)
class BookEffects:
    """What one block changes in the book, and the block time it was judged at."""

    delta: MarketDelta
    time_ms: int
    #: The block's notices with their transaction hashes.
    notices: tuple[tuple[Notice, bytes], ...] = ()


@final
@dataclass(frozen=True, slots=True)
class TradeRow:
    """A final fill, with the block that made it final."""

    trade: Trade
    height: int
    time_ms: int


@final
@dataclass(frozen=True, slots=True)
class OfferRow:
    """An offer as stored, with the height it was opened at."""

    state: OfferState
    height: int


def _offer(row: Row) -> OfferRow:
    # Our own rows, but a corrupt one must not become validation input: decode strictly.
    try:
        terms = OfferTerms.from_value(codec.decode_canonical(as_blob(row[1]), max_size=_MAX_TERMS_BYTES))
        state = OfferState(as_blob(row[0]), terms, as_int(row[2]), as_int(row[3]),
                           bool(as_int(row[4])))
    except (TxRejected, DecodeError, ValueError, CryptoError) as exc:
        raise StorageError("corrupt offer row") from exc
    return OfferRow(state, as_int(row[5]))


def _trade(row: Row) -> TradeRow:
    try:
        trade = Trade(as_blob(row[0]), as_blob(row[1]), as_int(row[2]), as_int(row[3]),
                      as_int(row[4]), Side(row[5]))
    except ValueError as exc:
        raise StorageError("corrupt trade row") from exc
    return TradeRow(trade, as_int(row[6]), as_int(row[7]))


class MarketLedger:
    """The offer book as a ledger extension, and its queries for the market service."""

    def __init__(self, store: Store, clock: MarketClock) -> None:
        self._store = store
        self.clock = clock

    @property
    def registry(self) -> TxRegistry:
        return MARKET_REGISTRY

    # -- the extension --------------------------------------------------------------------------

    async def view(self, base: LedgerSnapshot, txs: Sequence[Tx], block_time_ms: int
                   ) -> LedgerView:
        named = {tx.offer_id for tx in txs if isinstance(tx, Accept | Cancel)}
        offers = [row.state for offer_id in named
                  if (row := await self.offer(offer_id)) is not None]
        return MarketSnapshot(base, MarketBook(offers), self.clock, block_time_ms)

    def effects(self, view: LedgerView, txs: Sequence[AppliedTx]) -> BookEffects:
        if not isinstance(view, MarketSnapshot):
            raise MarketTxRejected(MarketReject.NO_MARKET_STATE)
        notices = tuple((a.tx, a.tx_hash) for a in txs if isinstance(a.tx, Notice))
        return BookEffects(view.book.delta_for(txs), view.block_time_ms(), notices)

    async def write(self, tx: Transaction, height: int, effects: object) -> None:
        if not isinstance(effects, BookEffects):
            raise TypeError("not the market book's effects")
        opened = {state.offer_id for state in effects.delta.opened}
        for state in effects.delta.updated:
            if state.offer_id in opened:
                await tx.execute(
                    "INSERT INTO offers (offer_id, terms, side, interval, power_w, price, "
                    "expiry_ms, remaining_w, seq, cancelled, height, updated_height) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (state.offer_id, codec.encode(state.terms.to_value()),
                     state.terms.side.value, state.terms.interval, state.terms.power_w,
                     state.terms.price, state.terms.expiry_ms, state.remaining_w, state.seq,
                     int(state.cancelled), height, height),
                )
            else:
                await tx.execute(
                    "UPDATE offers SET remaining_w = ?, seq = ?, cancelled = ?, "
                    "updated_height = ? WHERE offer_id = ?",
                    (state.remaining_w, state.seq, int(state.cancelled), height,
                     state.offer_id),
                )
        await tx.executemany(
            f"INSERT INTO trades ({_TRADE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.trade_id, t.offer_id, t.interval, t.power_w, t.price, t.maker_side.value,
              height, effects.time_ms) for t in effects.delta.trades],
        )
        await tx.executemany(
            "INSERT INTO notices (tx_hash, topic, key, issued_ms, body, height) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(digest, n.topic.value, n.key, n.issued_ms, n.body, height)
             for n, digest in effects.notices],
        )

    # -- queries ----------------------------------------------------------------------------------

    async def offer(self, offer_id: bytes) -> OfferRow | None:
        row = await self._store.fetchone(
            f"SELECT {_OFFER_COLUMNS} FROM offers WHERE offer_id = ?", (offer_id,))
        return None if row is None else _offer(row)

    async def open_offers(self, first_interval: int, last_interval: int) -> list[OfferRow]:
        """Offers still open for intervals in the range (the gate may have closed since)."""
        rows = await self._store.fetchall(
            f"SELECT {_OFFER_COLUMNS} FROM offers WHERE interval BETWEEN ? AND ? "
            "AND cancelled = 0 AND remaining_w > 0 ORDER BY interval, price, offer_id LIMIT ?",
            (first_interval, last_interval, MAX_ROWS))
        return [_offer(r) for r in rows]

    async def trades_of(self, offer_id: bytes) -> list[TradeRow]:
        rows = await self._store.fetchall(
            f"SELECT {_TRADE_COLUMNS} FROM trades WHERE offer_id = ? ORDER BY height",
            (offer_id,))
        return [_trade(r) for r in rows]

    async def trade(self, trade_id: bytes) -> TradeRow | None:
        row = await self._store.fetchone(
            f"SELECT {_TRADE_COLUMNS} FROM trades WHERE trade_id = ?", (trade_id,))
        return None if row is None else _trade(row)

    async def notices(self, topic: NoticeTopic) -> list[tuple[str, int, bytes, int]]:
        """``(key, issued_ms, body, height)`` of the notice in force per key of ``topic``:
        the latest the DSO issued."""
        rows = await self._store.fetchall(
            "SELECT key, issued_ms, body, height FROM notices WHERE topic = ? "
            "ORDER BY key, issued_ms", (topic.value,))
        latest = {str(r[0]): (str(r[0]), as_int(r[1]), as_blob(r[2]), as_int(r[3]))
                  for r in rows}
        return list(latest.values())

    async def interval_summary(self, interval: int) -> dict[str, Any]:
        """Cleared volume (W) and volume-weighted price of one interval's final trades."""
        row = await self._store.fetchone(
            "SELECT count(*), coalesce(sum(power_w), 0), coalesce(sum(power_w * price), 0) "
            "FROM trades WHERE interval = ?", (interval,))
        count, volume, value = (0, 0, 0) if row is None else (as_int(row[0]), as_int(row[1]),
                                                               as_int(row[2]))
        return {"interval": interval, "trades": count, "volume_w": volume,
                "value_cents": value, "avg_price": value / volume if volume else None}
