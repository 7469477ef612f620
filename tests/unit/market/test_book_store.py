"""The market book on a real SQLite store: offers and trades written per block, the queries
the market service answers from, and the view block validation reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from market_helpers import (
    CLOCK,
    CONSUMPTION,
    CONSUMPTION_ID,
    INTERVAL,
    MONEY_ID,
    NETWORK,
    PRODUCTION,
    PRODUCTION_ID,
    T0,
    MarketChain,
    funded,
)

from petranode.crypto.group import Point, Scalar
from petranode.crypto.keys import PublicAddress, WalletKeys
from petranode.ledger.state import LedgerSnapshot, StateDelta, apply_block_txs
from petranode.ledger.store import LEDGER_MIGRATIONS
from petranode.ledger.tx import Tx, encode_tx, tx_hash
from petranode.ledger.tx_errors import TxRejected
from petranode.market.book.store import (
    BOOK_MIGRATIONS,
    BookEffects,
    MarketLedger,
    OfferRow,
    TradeRow,
)
from petranode.market.errors import MarketReject, MarketTxRejected
from petranode.market.trade_builder import build_accept, build_cancel, build_offer
from petranode.market.trade_kinds import (
    MARKET_REGISTRY,
    MarketBook,
    MarketDelta,
    MarketSnapshot,
    OfferState,
    OfferTerms,
    Side,
    Trade,
)
from petranode.store.errors import StorageError
from petranode.store.store import Store
from petranode.wire import codec

FAR = 2**40


@cache
def payout() -> PublicAddress:
    return WalletKeys.generate().address


@cache
def cancel_key() -> Point:
    return Scalar.random().mul_base()


def terms(side: Side = Side.SELL, interval: int = INTERVAL, power_w: int = 300,
          price: int = 3) -> OfferTerms:
    return OfferTerms(side, interval, power_w, price, FAR, interval, interval, payout(),
                      cancel_key())


def oid(n: int) -> bytes:
    return bytes([n]) * 32


def opened(*states: OfferState, time_ms: int = T0) -> BookEffects:
    return BookEffects(MarketDelta(states, (), (), states), time_ms)


def changed(states: Sequence[OfferState], trades: Sequence[Trade] = (),
            cancelled: Sequence[bytes] = (), time_ms: int = T0) -> BookEffects:
    return BookEffects(MarketDelta((), tuple(trades), tuple(cancelled), tuple(states)), time_ms)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "node.db", (*LEDGER_MIGRATIONS, *BOOK_MIGRATIONS)) as opened_:
        yield opened_


async def write(store: Store, book: MarketLedger, height: int, effects: object) -> None:
    async with store.transaction() as tx:
        await book.write(tx, height, effects)


async def state_of(book: MarketLedger, offer_id: bytes) -> OfferState:
    row = await book.offer(offer_id)
    assert row is not None
    return row.state


# -- written rows and the queries -----------------------------------------------------------------


async def test_opened_offers_read_back(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    assert book.clock is CLOCK and book.registry is MARKET_REGISTRY
    sell = OfferState(oid(1), terms(Side.SELL, price=5), 300)
    buy = OfferState(oid(2), terms(Side.BUY, price=4, power_w=200), 200)
    await write(store, book, 7, opened(sell, buy))
    assert await book.offer(oid(1)) == OfferRow(sell, 7)
    assert await book.offer(oid(2)) == OfferRow(buy, 7)
    assert await book.offer(oid(3)) is None
    # Ordered by interval, then price, then id.
    assert await book.open_offers(INTERVAL, INTERVAL) == [OfferRow(buy, 7), OfferRow(sell, 7)]
    assert await book.open_offers(INTERVAL + 1, INTERVAL + 5) == []
    assert await book.open_offers(0, INTERVAL - 1) == []
    assert await book.trades_of(oid(1)) == []


async def test_open_offers_range_and_order(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    states = [OfferState(oid(10 + i), terms(interval=interval, price=price), 100)
              for i, (interval, price) in enumerate([(12, 2), (10, 9), (11, 1), (10, 3), (13, 1)])]
    same_price = [OfferState(oid(n), terms(interval=10, price=3), 100) for n in (40, 30)]
    await write(store, book, 1, opened(*states, *same_price))
    rows = await book.open_offers(10, 12)
    assert [(r.state.terms.interval, r.state.terms.price, r.state.offer_id) for r in rows] == [
        (10, 3, oid(13)), (10, 3, oid(30)), (10, 3, oid(40)), (10, 9, oid(11)),
        (11, 1, oid(12)), (12, 2, oid(10))]
    assert [r.state.offer_id for r in await book.open_offers(13, 13)] == [oid(14)]


async def test_fill_then_cancel_updates_the_offer(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    sell = OfferState(oid(1), terms(power_w=300, price=3), 300)
    other = OfferState(oid(2), terms(power_w=100, price=6), 100)
    await write(store, book, 2, opened(sell, other))

    fill = Trade(oid(0xA1), oid(1), INTERVAL, 100, 3, Side.SELL)
    filled = replace(sell, remaining_w=200, seq=1)
    await write(store, book, 3, changed([filled], [fill], time_ms=T0 + 30_000))
    assert await book.offer(oid(1)) == OfferRow(filled, 2)  # the height it was opened at
    assert await book.trades_of(oid(1)) == [TradeRow(fill, 3, T0 + 30_000)]
    assert await book.trade(oid(0xA1)) == TradeRow(fill, 3, T0 + 30_000)
    assert await book.trade(oid(0xA2)) is None
    updated = await store.fetchone(
        "SELECT height, updated_height FROM offers WHERE offer_id = ?", (oid(1),))
    assert updated == (2, 3)

    # The other offer is filled completely: no longer open, still readable.
    whole = Trade(oid(0xB1), oid(2), INTERVAL, 100, 6, Side.SELL)
    await write(store, book, 4, changed([replace(other, remaining_w=0, seq=1)], [whole]))
    assert [r.state.offer_id for r in await book.open_offers(INTERVAL, INTERVAL)] == [oid(1)]
    assert not (await state_of(book, oid(2))).is_open

    cancelled = replace(filled, seq=2, cancelled=True)
    await write(store, book, 5, changed([cancelled], cancelled=[oid(1)]))
    assert await state_of(book, oid(1)) == cancelled
    assert await book.open_offers(0, 2**62) == []
    assert await book.trades_of(oid(1)) == [TradeRow(fill, 3, T0 + 30_000)]


async def test_trades_and_interval_summary(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    a = OfferState(oid(1), terms(interval=10, power_w=1000, price=3), 1000)
    b = OfferState(oid(2), terms(Side.BUY, interval=10, power_w=1000, price=7), 1000)
    c = OfferState(oid(3), terms(interval=11, power_w=1000, price=5), 1000)
    await write(store, book, 1, opened(a, b, c))
    t1 = Trade(oid(0x21), oid(1), 10, 100, 3, Side.SELL)
    t2 = Trade(oid(0x22), oid(2), 10, 300, 7, Side.BUY)
    t3 = Trade(oid(0x23), oid(3), 11, 50, 5, Side.SELL)
    await write(store, book, 2, changed([replace(a, remaining_w=900, seq=1),
                                         replace(c, remaining_w=950, seq=1)], [t1, t3],
                                        time_ms=T0 + 20_000))
    t4 = Trade(oid(0x20), oid(1), 10, 200, 3, Side.SELL)
    await write(store, book, 3, changed([replace(b, remaining_w=700, seq=1),
                                         replace(a, remaining_w=700, seq=2)], [t2, t4],
                                        time_ms=T0 + 30_000))
    assert await book.trades_of(oid(1)) == [TradeRow(t1, 2, T0 + 20_000),
                                            TradeRow(t4, 3, T0 + 30_000)]
    assert await book.trade(t3.trade_id) == TradeRow(t3, 2, T0 + 20_000)

    summary = await book.interval_summary(10)
    volume = 100 + 300 + 200
    value = 100 * 3 + 300 * 7 + 200 * 3
    assert summary == {"interval": 10, "trades": 3, "volume_w": volume, "value_cents": value,
                       "avg_price": value / volume}
    assert summary["avg_price"] == pytest.approx(5.0)
    assert await book.interval_summary(11) == {"interval": 11, "trades": 1, "volume_w": 50,
                                               "value_cents": 250, "avg_price": 5.0}
    assert await book.interval_summary(12) == {"interval": 12, "trades": 0, "volume_w": 0,
                                               "value_cents": 0, "avg_price": None}


async def test_a_failed_block_writes_nothing(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    state = OfferState(oid(1), terms(), 300)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await book.write(tx, 1, opened(state))
            raise RuntimeError("the ledger's part of the block failed")
    assert await book.offer(oid(1)) is None


async def test_write_refuses_other_effects(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    with pytest.raises(TypeError):
        await write(store, book, 1, object())
    with pytest.raises(TypeError):
        await write(store, book, 1, None)


# -- corrupt rows ---------------------------------------------------------------------------------


async def _corrupt_terms(store: Store, book: MarketLedger, blob: bytes) -> None:
    await write(store, book, 1, opened(OfferState(oid(1), terms(), 300)))
    async with store.transaction() as tx:
        await tx.execute("UPDATE offers SET terms = ? WHERE offer_id = ?", (blob, oid(1)))


def _terms_value(**change: codec.Encodable) -> list[codec.Encodable]:
    value = terms().to_value()
    fields = ["side", "interval", "power", "price", "expiry", "first", "last", "payout",
              "cancel_key", "tier"]
    for name, new in change.items():
        value[fields.index(name)] = new
    return value


@pytest.mark.parametrize("blob", [
    b"\xc1",
    b"",
    codec.encode(_terms_value())[:-1],  # cut short
    codec.encode(_terms_value()) + b"\x00",  # trailing bytes
    codec.encode(_terms_value()[:-1]),  # nine fields
    codec.encode(_terms_value(side="HOLD")),
    codec.encode(_terms_value(power=0)),
    codec.encode(_terms_value(price=2**40)),
    codec.encode(_terms_value(first=INTERVAL + 1)),  # energy range not covering
    codec.encode(_terms_value(cancel_key=b"\x01" * 31)),
    codec.encode(_terms_value(payout=[b"\x01" * 32])),
    codec.encode(_terms_value(tier=-1)),
    b"\x00" * 600,  # over the bound on stored terms
])
async def test_corrupt_terms_are_a_storage_error(store: Store, blob: bytes) -> None:
    book = MarketLedger(store, CLOCK)
    await _corrupt_terms(store, book, blob)
    with pytest.raises(StorageError):
        await book.offer(oid(1))
    with pytest.raises(StorageError):
        await book.open_offers(INTERVAL, INTERVAL)


#: 32 bytes that are no canonical curve point (y = 2²⁵⁵ − 1 ≥ p).
NOT_A_POINT = b"\xff" * 32
#: The identity point: canonical, but not an allowed key.
IDENTITY = b"\x01" + b"\x00" * 31


@pytest.mark.parametrize("change", [{"cancel_key": NOT_A_POINT}, {"cancel_key": IDENTITY},
                                    {"payout": [NOT_A_POINT, NOT_A_POINT]}])
async def test_terms_with_a_bad_point_are_a_storage_error(
        store: Store, change: dict[str, codec.Encodable]) -> None:
    book = MarketLedger(store, CLOCK)
    await _corrupt_terms(store, book, codec.encode(_terms_value(**change)))
    with pytest.raises(StorageError):
        await book.offer(oid(1))


async def test_corrupt_remaining_power_is_a_storage_error(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    await write(store, book, 1, opened(OfferState(oid(1), terms(power_w=300), 300)))
    async with store.transaction() as tx:
        await tx.execute("UPDATE offers SET remaining_w = 301 WHERE offer_id = ?", (oid(1),))
    with pytest.raises(StorageError):
        await book.offer(oid(1))


async def test_corrupt_trade_side_is_a_storage_error(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    state = OfferState(oid(1), terms(), 300)
    await write(store, book, 1, opened(state))
    trade = Trade(oid(9), oid(1), INTERVAL, 10, 3, Side.SELL)
    await write(store, book, 2, changed([replace(state, remaining_w=290, seq=1)], [trade]))
    async with store.transaction() as tx:
        await tx.execute("UPDATE trades SET maker_side = 'hold'")
    with pytest.raises(StorageError):
        await book.trade(oid(9))


# -- the extension: view, effects, write, over real transactions ---------------------------------


async def test_effects_need_a_market_view(store: Store) -> None:
    book = MarketLedger(store, CLOCK)
    with pytest.raises(MarketTxRejected) as info:
        book.effects(LedgerSnapshot(), [])
    assert info.value.reason is MarketReject.NO_MARKET_STATE
    assert isinstance(info.value, TxRejected)
    snapshot = MarketSnapshot(LedgerSnapshot(), MarketBook(), CLOCK, T0 + 5)
    assert book.effects(snapshot, []) == BookEffects(MarketDelta((), (), (), ()), T0 + 5)


async def _block(chain: MarketChain, store: Store, book: MarketLedger,
                 txs: Sequence[Tx]) -> tuple[MarketSnapshot, StateDelta]:
    """Validate ``txs`` as the node does, against the store's book, then write and replay."""
    time_ms = T0 + 10_000 * chain.ledger.height()
    view = await book.view(chain.ledger, txs, time_ms)
    assert isinstance(view, MarketSnapshot)
    delta = apply_block_txs(view, [encode_tx(t) for t in txs], chain.params, MARKET_REGISTRY)
    effects = book.effects(view, delta.txs)
    assert effects.time_ms == time_ms
    async with store.transaction() as tx:
        await book.write(tx, delta.height, effects)
    chain.replay(delta)
    assert effects.delta == chain.market_deltas[-1]
    return view, delta


async def test_view_holds_exactly_the_named_offers(store: Store) -> None:
    chain = funded()
    book = MarketLedger(store, CLOCK)
    seller, buyer = chain.wallets["seller"], chain.wallets["buyer"]
    sell, _ = build_offer(
        seller.keys, seller.unspent(PRODUCTION_ID) + seller.unspent(MONEY_ID), side=Side.SELL,
        interval=INTERVAL, power_w=300, price=3, expiry_ms=FAR, energy=PRODUCTION, fee=0,
        decoys=chain, opts=chain.opts(1))
    buy, buy_keys = build_offer(
        buyer.keys, buyer.unspent(CONSUMPTION_ID)[:1] + buyer.unspent(MONEY_ID)[:1],
        side=Side.BUY, interval=INTERVAL, power_w=200, price=4, expiry_ms=FAR,
        energy=CONSUMPTION, fee=0, decoys=chain, opts=chain.opts(3))
    view, delta = await _block(chain, store, book, [sell, buy])
    assert view.book.offers() == []  # offers name no existing offer
    assert view.market_clock() is CLOCK and delta.height == 3
    sell_id, buy_id = tx_hash(sell), tx_hash(buy)
    for offer_id in (sell_id, buy_id):
        in_memory = chain.book.offer(offer_id)
        assert in_memory is not None and await book.offer(offer_id) == OfferRow(in_memory, 3)

    sell_state, buy_state = await state_of(book, sell_id), await state_of(book, buy_id)
    fill, _ = build_accept(
        buyer.keys, buyer.unspent(CONSUMPTION_ID) + buyer.unspent(MONEY_ID), sell_state,
        power_w=100, energy=CONSUMPTION, fee=0, decoys=chain, opts=chain.opts(2))
    cancel = build_cancel(buy_keys, buy_state, network_id=NETWORK)

    empty = await book.view(chain.ledger, [], T0)
    assert isinstance(empty, MarketSnapshot) and empty.book.offers() == []
    only_fill = await book.view(chain.ledger, [fill, sell], T0 + 1)
    assert isinstance(only_fill, MarketSnapshot)
    assert only_fill.book.offers() == [sell_state] and only_fill.block_time_ms() == T0 + 1
    assert only_fill.ledger is chain.ledger
    both = await book.view(chain.ledger, [cancel, fill, fill], T0)
    assert isinstance(both, MarketSnapshot)
    assert sorted(o.offer_id for o in both.book.offers()) == sorted([sell_id, buy_id])
    assert both.offer(sell_id) == sell_state and both.offer(buy_id) == buy_state

    view, delta = await _block(chain, store, book, [fill, cancel])
    assert view.book.offers() != [] and delta.height == 4
    after = await state_of(book, sell_id)
    assert (after.remaining_w, after.seq, after.cancelled) == (200, 1, False)
    assert (await state_of(book, buy_id)).cancelled
    time_ms = T0 + 30_000
    assert await book.trades_of(sell_id) == [
        TradeRow(Trade(tx_hash(fill), sell_id, INTERVAL, 100, 3, Side.SELL), 4, time_ms)]
    assert await book.open_offers(INTERVAL, INTERVAL) == [OfferRow(after, 3)]
    assert await book.interval_summary(INTERVAL) == {
        "interval": INTERVAL, "trades": 1, "volume_w": 100, "value_cents": 300,
        "avg_price": 3.0}
    assert chain.book.offer(sell_id) == after
