"""A prosumer's trading: anonymous offers, atomic accepts, and the report of every trade as
cleared or failed by its deadline (SPEC §2 PETra workflow, §4.7; issue 7 items 3-4).

Theory of operation
-------------------
* **Offers and accepts** are ledger transactions (:mod:`petranode.market.trade_kinds`) built
  from this node's wallet (single-interval energy assets, money) and submitted through its
  garlic tunnels to a validator (the ledger service's relay): the offer shows interval,
  power, price and expiry, never who. Before a transaction leaves, its row is written
  (:mod:`.store`), so a crash cannot lose track of a trade.
* **Clearing.** Every committed block is handed to :meth:`TradingService._on_commit`: an
  offer of ours that became final is ``open``; a fill of it is a *maker* trade, cleared; an
  accept of ours in a block is a *taker* trade, cleared. The proceeds paid to an offer's
  payout address (or a BUY offer's taker's proceeds address) are found by scanning the block
  with the keys derived from the stored nonce.
* **Failure is decided, not guessed.** An offer or accept for interval ``i`` is valid only in
  a block whose time is before ``gate_closure(i)``, and block times strictly increase; so once
  the ledger's head has a time at or after the gate closure, whatever of ours is not final for
  ``i`` never will be: it is reported ``failed`` and its inputs are freed. With a live ledger
  (a block every block interval) that happens before ``deadline(i)``
  (``gate_closure + clearing_ms``); a trade still undecided at its deadline is counted
  ``late``.

Logs carry trade and offer id prefixes, intervals and outcomes; never keys or wallet amounts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, final

from petranode.clock import Clock
from petranode.crypto.keys import WalletKeys
from petranode.errors import PetranodeError
from petranode.ledger.assets import MONEY, Asset
from petranode.ledger.state import StateDelta
from petranode.ledger.tx import LedgerParams, Tx
from petranode.ledger.tx_errors import InsufficientFunds
from petranode.ledger.wallet import DecoySource, OwnedOutput, build_transfer
from petranode.market.billing import PricePolicy
from petranode.market.book.store import BookEffects, MarketLedger, OfferRow
from petranode.market.errors import OutOfWindow, WindowFault
from petranode.market.intervals import MarketClock, to_ms
from petranode.market.notices import NoticeTopic
from petranode.market.registry import FeederLimit
from petranode.market.reputation import Credential, TierList
from petranode.market.trade_builder import (
    PROCEEDS_PURPOSE,
    RingOptions,
    build_accept,
    build_cancel,
    build_offer,
    derive_offer_keys,
    derive_wallet_keys,
    scan_payouts,
    scan_public_outputs,
)
from petranode.market.trade_kinds import Accept, Side
from petranode.market.trading.store import OwnOffer, OwnTrade, TradingStore
from petranode.store.store import Store

log = logging.getLogger(__name__)

#: Seconds between checks of deadlines.
TICK_S: Final = 0.25
#: Committed blocks waiting for the worker; beyond this the oldest are dropped and a restart's
#: reconciliation (which reads the book's tables) catches up.
MAX_PENDING_BLOCKS: Final = 1024
NONCE_BYTES: Final = 32


class TradeUnavailable(PetranodeError):
    """The trade cannot be made here: no such offer, not ours, or no asset to back it."""


class TradingLedger(Protocol):
    """What trading needs of the ledger service."""

    @property
    def wallet_keys(self) -> WalletKeys: ...

    @property
    def params(self) -> LedgerParams: ...

    @property
    def head_time_ms(self) -> int: ...

    def wallet_unspent(self, asset_id: bytes) -> list[OwnedOutput]: ...

    def wallet_spend(self, build: Callable[[Sequence[OwnedOutput], DecoySource, float], Tx],
                     assets: Sequence[bytes],
                     before_submit: Callable[[bytes, Tx], Awaitable[None]] | None = None,
                     ) -> Awaitable[bytes]: ...

    def abandon(self, digest: bytes) -> bool: ...

    def on_commit(self, listener: Callable[[StateDelta], None]) -> None: ...


@final
class TradingService:
    """This node's offers and trades on the ledger's market."""

    def __init__(self, *, network_id: str, ledger: TradingLedger, book: MarketLedger,
                 store: Store, clock: Clock, credential: Credential,
                 tier_list: Callable[[int], Awaitable[TierList]],
                 cover_interval_s: float = 0.0) -> None:
        self._network_id = network_id
        self._credential = credential
        self._tier_list = tier_list
        self._cover_interval_s = cover_interval_s
        self._ledger = ledger
        self._book = book
        self._store = TradingStore(store)
        self._clock = clock
        self.market_clock: MarketClock = book.clock
        self._blocks: deque[StateDelta] = deque(maxlen=MAX_PENDING_BLOCKS)
        self._wake = asyncio.Event()
        self._own: dict[bytes, OwnOffer] = {}
        self._accepts: dict[bytes, OwnTrade] = {}
        #: Accepts still undecided at their deadline (the ledger stalled), counted once.
        self._late: set[bytes] = set()
        #: Per reputation epoch, the credential slot the next gated offer uses: a fresh one
        #: each time, so a maker's gated offers of one epoch are not linked (reputation.py).
        self._slots: dict[int, int] = {}
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self.counters: dict[str, int] = {}

    async def __aenter__(self) -> TradingService:
        self._own = {o.offer_id: o for o in await self._store.offers(("submitted", "open"))}
        self._accepts = {t.trade_id: t for t in await self._store.trades("pending")}
        await self._reconcile()
        self._ledger.on_commit(self._on_commit)
        await self._group.__aenter__()
        self._tasks.append(self._group.create_task(self._work(), name="market-trading"))
        if self._cover_interval_s > 0:
            self._tasks.append(self._group.create_task(self._cover(), name="market-cover"))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    # -- API --------------------------------------------------------------------------------------

    async def offer(self, side: Side, interval: int, power_w: int, price: int,
                    expiry_ms: int | None = None, tier: int = 0) -> dict[str, Any]:
        """Post an offer for ``interval`` backed by this wallet's single-interval energy asset
        (and, to buy, money); its id (the transaction hash) once our pool took it.

        ``tier`` > 0 gates it: the offer carries an anonymous proof that its maker's
        reputation is at least ``tier`` (the DSO's tier list of the current epoch); refused
        with ``ReputationProofRejected`` if ours is not."""
        now_ms = self._check_gate(interval)
        energy = Asset(side.maker_asset_kind, interval, interval)
        self._require(energy, power_w)
        gate = None if tier == 0 else (self._credential, await self._tier_list(tier))
        slot = 0
        if gate is not None:
            epoch = gate[1].epoch
            slot = self._slots.get(epoch, 0)
            self._slots = {epoch: slot + 1}  # older epochs are over
        nonce = secrets.token_bytes(NONCE_BYTES)
        expiry = self.market_clock.gate_closure(interval) if expiry_ms is None else expiry_ms

        def build(available: Sequence[OwnedOutput], decoys: DecoySource, now: float) -> Tx:
            offer, _ = build_offer(
                self._ledger.wallet_keys, available, side=side, interval=interval,
                power_w=power_w, price=price, expiry_ms=expiry, energy=energy, fee=0,
                decoys=decoys, opts=self._ring_options(now), nonce=nonce, tier=tier, gate=gate,
                gate_slot=slot)
            return offer

        async def remember(digest: bytes, tx: Tx) -> None:
            own = OwnOffer(digest, nonce, side.value, interval, power_w, price, now_ms,
                           "submitted")
            await self._store.add_offer(own)
            self._own[digest] = own

        digest = await self._ledger.wallet_spend(build, (energy.asset_id, MONEY.asset_id),
                                                 remember)
        self._count("offers_submitted")
        log.info("market.offer.submitted offer=%s side=%s interval=%d", digest.hex()[:16],
                 side.value, interval)
        return {"offer_id": digest.hex(), "interval": interval, "side": side.value,
                "power_w": power_w, "price": price, "expiry_ms": expiry, "tier": tier}

    async def accept(self, offer_id: bytes, power_w: int) -> dict[str, Any]:
        """Fill ``power_w`` W of an open offer on the ledger; the trade id (the accept's
        hash) once our pool took it."""
        row = await self._book.offer(offer_id)
        if row is None or not row.state.is_open:
            raise TradeUnavailable("no open offer with that id on the ledger")
        if offer_id in self._own:
            raise TradeUnavailable("that offer is our own")
        terms = row.state.terms
        now_ms = self._check_gate(terms.interval)
        if not 1 <= power_w <= row.state.remaining_w:
            raise TradeUnavailable(f"power must be 1..{row.state.remaining_w} W")
        energy = Asset(terms.side.taker_asset_kind, terms.interval, terms.interval)
        self._require(energy, power_w)
        nonce = secrets.token_bytes(NONCE_BYTES)
        our_side = Side.BUY if terms.side is Side.SELL else Side.SELL

        def build(available: Sequence[OwnedOutput], decoys: DecoySource, now: float) -> Tx:
            accept, _ = build_accept(
                self._ledger.wallet_keys, available, row.state, power_w=power_w, energy=energy,
                fee=0, decoys=decoys, opts=self._ring_options(now), nonce=nonce)
            return accept

        async def remember(digest: bytes, tx: Tx) -> None:
            trade = OwnTrade(digest, offer_id, "taker", our_side.value, terms.interval, power_w,
                             terms.price, now_ms, "pending", nonce=nonce)
            await self._store.add_trade(trade)
            self._accepts[digest] = trade

        digest = await self._ledger.wallet_spend(build, (energy.asset_id, MONEY.asset_id),
                                                 remember)
        self._count("accepts_submitted")
        log.info("market.accept.submitted trade=%s offer=%s interval=%d", digest.hex()[:16],
                 offer_id.hex()[:16], terms.interval)
        return {"trade_id": digest.hex(), "offer_id": offer_id.hex(),
                "interval": terms.interval, "power_w": power_w, "price": terms.price}

    async def cancel(self, offer_id: bytes) -> dict[str, Any]:
        """Withdraw one of our open offers (or reclaim what its gate left unfilled)."""
        own = self._own.get(offer_id)
        row = await self._book.offer(offer_id)
        if own is None or row is None or not row.state.is_open:
            raise TradeUnavailable("no open offer of ours with that id on the ledger")
        keys = derive_offer_keys(self._ledger.wallet_keys, own.nonce)

        def build(available: Sequence[OwnedOutput], decoys: DecoySource, now: float) -> Tx:
            return build_cancel(keys, row.state, network_id=self._network_id)

        digest = await self._ledger.wallet_spend(build, ())
        self._count("cancels_submitted")
        return {"tx": digest.hex(), "offer_id": offer_id.hex()}

    async def offers(self, first_interval: int | None, last_interval: int | None
                     ) -> list[dict[str, Any]]:
        """Open offers on the ledger for intervals whose gate is still open (by default)."""
        first = (self.market_clock.first_open_interval(to_ms(self._clock.time()))
                 if first_interval is None else first_interval)
        last = first + 1_000 if last_interval is None else last_interval
        return [_offer_summary(row, row.state.offer_id in self._own)
                for row in await self._book.open_offers(first, last)]

    async def trades(self, interval: int | None = None) -> list[dict[str, Any]]:
        """Every trade of ours, with its outcome and clearing latency."""
        return [_trade_summary(t) for t in await self._store.trades()
                if interval is None or t.interval == interval]

    async def own_offers(self) -> list[dict[str, Any]]:
        return [{"offer_id": o.offer_id.hex(), "side": o.side, "interval": o.interval,
                 "power_w": o.power_w, "price": o.price, "status": o.status}
                for o in await self._store.offers()]

    async def sales(self, interval: int) -> list[tuple[bytes, bytes, int]]:
        """``(offer id, nonce, W sold)`` of each of our SELL offers that sold in ``interval``:
        what our meter's delivery report claims."""
        nonces = {o.offer_id: o.nonce for o in await self._store.offers()}
        sold: dict[bytes, int] = {}
        for t in await self._store.trades("cleared"):
            if t.interval == interval and t.role == "maker" and t.side == Side.SELL.value:
                sold[t.offer_id] = sold.get(t.offer_id, 0) + t.power_w
        return [(offer_id, nonces[offer_id], w) for offer_id, w in sorted(sold.items())]

    async def interval(self, interval: int) -> dict[str, Any]:
        """What the ledger shows of one interval: its final trades' volume and price."""
        return await self._book.interval_summary(interval)

    async def notices(self, topic: NoticeTopic) -> list[dict[str, Any]]:
        """The DSO's notices in force on the ledger: feeder limits, or price policies."""
        out: list[dict[str, Any]] = []
        for key, issued_ms, body, height in await self._book.notices(topic):
            entry: dict[str, Any] = {"key": key, "issued_ms": issued_ms, "height": height}
            if topic is NoticeTopic.FEEDER_LIMIT:
                limit = FeederLimit.decode(body)
                entry |= {"feeder": limit.feeder, "max_production_w": limit.max_production_w,
                          "max_consumption_w": limit.max_consumption_w}
            else:
                policy = PricePolicy.decode(body)
                entry |= {"policy_id": policy.policy_id.hex(),
                          "first_interval": policy.first_interval,
                          "last_interval": policy.last_interval,
                          "import_prices": list(policy.import_prices),
                          "export_prices": list(policy.export_prices)}
            out.append(entry)
        return out

    def stats(self) -> dict[str, Any]:
        return {"own_open_offers": len(self._own), "pending_accepts": len(self._accepts),
                "counters": dict(self.counters)}

    # -- clearing -----------------------------------------------------------------------------

    def _on_commit(self, delta: StateDelta) -> None:
        self._blocks.append(delta)
        self._wake.set()

    async def _work(self) -> None:
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            while self._blocks:
                await self._absorb(self._blocks.popleft())
            await self._decide_failures()

    async def _absorb(self, delta: StateDelta) -> None:
        effects = delta.effects
        if not isinstance(effects, BookEffects):
            return
        for state in effects.delta.opened:
            if state.offer_id in self._own:
                await self._offer_final(state.offer_id, effects.time_ms)
        applied_by_hash = {applied.tx_hash: applied for applied in delta.txs}
        for trade in effects.delta.trades:
            pending = self._accepts.pop(trade.trade_id, None)
            if pending is not None:
                await self._store.settle_trade(trade.trade_id, "cleared", effects.time_ms,
                                               delta.height)
                self._reported(pending, "cleared", effects.time_ms)
                if pending.side == Side.SELL.value and pending.nonce is not None:
                    # We sold into a BUY offer: our money is at the derived proceeds address.
                    proceeds = derive_wallet_keys(self._ledger.wallet_keys, PROCEEDS_PURPOSE,
                                                  pending.nonce)
                    found = scan_public_outputs(proceeds, applied_by_hash[trade.trade_id],
                                                delta.height)
                    await self._store.add_proceeds(trade.trade_id,
                                                   sum(o.amount for o in found))
            own = self._own.get(trade.offer_id)
            if own is not None:
                maker = OwnTrade(trade.trade_id, trade.offer_id, "maker", own.side,
                                 trade.interval, trade.power_w, trade.price, own.submitted_ms,
                                 "cleared", effects.time_ms, delta.height)
                if await self._store.add_trade(maker):
                    self._reported(maker, "cleared", effects.time_ms)
        for offer_id in effects.delta.cancelled:
            if offer_id in self._own:
                await self._store.set_offer_status(offer_id, "cancelled")
                del self._own[offer_id]
        await self._collect_proceeds(delta)

    async def _offer_final(self, offer_id: bytes, time_ms: int) -> None:
        own = self._own[offer_id]
        if own.status != "open":
            await self._store.set_offer_status(offer_id, "open", time_ms)
            self._own[offer_id] = OwnOffer(own.offer_id, own.nonce, own.side, own.interval,
                                           own.power_w, own.price, own.submitted_ms, "open")
            self._count("offers_final")

    async def _collect_proceeds(self, delta: StateDelta) -> None:
        """Money the block paid to our offers' payout addresses (found with their keys)."""
        keys = self._ledger.wallet_keys
        for applied in delta.txs:
            tx = applied.tx
            own = self._own.get(tx.offer_id) if isinstance(tx, Accept) else None
            if own is None:
                continue
            found = scan_payouts(derive_offer_keys(keys, own.nonce), own.offer_id, delta)
            paid = sum(o.amount for o in found if o.record.tx_hash == applied.tx_hash)
            await self._store.add_proceeds(applied.tx_hash, paid)

    async def _decide_failures(self) -> None:
        head_ms = self._ledger.head_time_ms
        now_ms = to_ms(self._clock.time())
        for trade in list(self._accepts.values()):
            if head_ms >= self.market_clock.gate_closure(trade.interval):
                del self._accepts[trade.trade_id]
                await self._store.settle_trade(trade.trade_id, "failed", head_ms)
                self._ledger.abandon(trade.trade_id)
                self._reported(trade, "failed", head_ms)
            elif now_ms >= self.market_clock.deadline(trade.interval) and \
                    trade.trade_id not in self._late:
                self._late.add(trade.trade_id)
                self._count("trades_late")
        for own in list(self._own.values()):
            if own.status == "submitted" and \
                    head_ms >= self.market_clock.gate_closure(own.interval):
                del self._own[own.offer_id]
                await self._store.set_offer_status(own.offer_id, "failed", head_ms)
                self._ledger.abandon(own.offer_id)
                self._count("offers_failed")
                log.info("market.offer.failed offer=%s interval=%d", own.offer_id.hex()[:16],
                         own.interval)
            elif own.status == "open" and now_ms >= self.market_clock.settlement_time(
                    own.interval):
                del self._own[own.offer_id]  # nothing more can happen to it

    async def _reconcile(self) -> None:
        """After a restart: what the ledger made final while we were down."""
        for own in list(self._own.values()):
            row = await self._book.offer(own.offer_id)
            if row is None:
                continue
            await self._offer_final(own.offer_id, own.submitted_ms)
            for trade_row in await self._book.trades_of(own.offer_id):
                t = trade_row.trade
                await self._store.add_trade(OwnTrade(
                    t.trade_id, t.offer_id, "maker", own.side, t.interval, t.power_w, t.price,
                    own.submitted_ms, "cleared", trade_row.time_ms, trade_row.height))
        for trade in list(self._accepts.values()):
            found = await self._book.trade(trade.trade_id)
            if found is not None:
                del self._accepts[trade.trade_id]
                await self._store.settle_trade(trade.trade_id, "cleared", found.time_ms,
                                               found.height)

    # -- cover ------------------------------------------------------------------------------------

    async def _cover(self) -> None:
        """Zero-value transfers to ourselves at Poisson times (SPEC §4.7 cover activity): on
        the ledger a transfer like any other — ring inputs, two hidden outputs, a range
        proof — and it leaves through the same tunnels, so an observer cannot tell when this
        household really trades."""
        rng = random.SystemRandom()
        keys = self._ledger.wallet_keys

        def build(available: Sequence[OwnedOutput], decoys: DecoySource, now: float) -> Tx:
            # The smallest money output (after the first cover, a zero one of its own): the
            # large ones stay free for real trades while this one is pending.
            money = [o for o in available if o.asset_id == MONEY.asset_id]
            if not money:
                raise InsufficientFunds("no free money output for a cover transaction")
            smallest = min(money, key=lambda o: o.amount)
            return build_transfer(
                keys, [smallest], keys.address, 0, MONEY.asset_id, 0, decoys,
                network_id=self._network_id, min_ring_size=self._ledger.params.min_ring_size,
                now=now, unlock_time=0.0, random_source=rng)

        while True:
            await asyncio.sleep(rng.expovariate(1 / self._cover_interval_s))
            try:
                await self._ledger.wallet_spend(build, (MONEY.asset_id,))
            except PetranodeError as exc:  # no funds yet, refused by the pool, no tunnel
                self._count(f"cover_failed_{type(exc).__name__}")
                continue
            self._count("cover_sent")

    # -- helpers ----------------------------------------------------------------------------------

    def _reported(self, trade: OwnTrade, outcome: str, at_ms: int) -> None:
        self._count(f"trades_{outcome}")
        log.info("market.trade.%s trade=%s role=%s interval=%d latency_ms=%d", outcome,
                 trade.trade_id.hex()[:16], trade.role, trade.interval,
                 at_ms - trade.submitted_ms)

    def _check_gate(self, interval: int) -> int:
        now_ms = to_ms(self._clock.time())
        if not self.market_clock.gate_open(interval, now_ms):
            raise OutOfWindow(WindowFault.GATE_CLOSED, f"interval {interval}")
        return now_ms

    def _require(self, energy: Asset, power_w: int) -> None:
        have = sum(o.amount for o in self._ledger.wallet_unspent(energy.asset_id))
        if have < power_w:
            raise TradeUnavailable(
                f"this wallet holds {have} W of {energy.kind.value} for interval "
                f"{energy.first_interval}; request it from the DSO first (market.request)")

    def _ring_options(self, now: float) -> RingOptions:
        params = self._ledger.params
        # Every committed output is final and may be a ring member of the next block.
        return RingOptions(network_id=self._network_id, min_ring_size=params.min_ring_size,
                           now=now, unlock_time=0.0)

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1


def _offer_summary(row: OfferRow, mine: bool) -> dict[str, Any]:
    terms = row.state.terms
    return {"offer_id": row.state.offer_id.hex(), "side": terms.side.value, "tier": terms.tier,
            "interval": terms.interval, "power_w": terms.power_w,
            "remaining_w": row.state.remaining_w, "price": terms.price,
            "expiry_ms": terms.expiry_ms, "height": row.height, "mine": mine}


def _trade_summary(t: OwnTrade) -> dict[str, Any]:
    return {"trade_id": t.trade_id.hex(), "offer_id": t.offer_id.hex(), "role": t.role,
            "side": t.side, "interval": t.interval, "power_w": t.power_w, "price": t.price,
            "status": t.status, "height": t.height, "proceeds_cents": t.proceeds_cents,
            "latency_ms": None if t.final_ms is None or t.status != "cleared"
            else t.final_ms - t.submitted_ms}
