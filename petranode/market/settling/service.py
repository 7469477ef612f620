"""Settlement after each interval, reputation, and the tier lists gated offers prove against
(SPEC §4.7; issue 7 items 5-6). The pure rules are :mod:`petranode.market.delivery`,
:mod:`petranode.market.settlement` and :mod:`petranode.market.reputation`.

Theory of operation
-------------------
* **Seller (prosumer node).** Once interval ``i`` has ended, if this node's offers sold in
  ``i`` (cleared maker SELL trades), its meter sends the DSO one signed
  :class:`~petranode.market.delivery.DeliveryReport` through garlic: the offers, each claimed
  with its cancel key, and the credited delivery ``min(export, sold)`` where export is the
  meter's production minus consumption over ``i``. Unanswered reports are sent again every
  tick until the DSO's verdict arrives or ``i`` settles.
* **DSO.** Checks a report against the registry and the ledger's offer book (cancel keys,
  trades) and the desk's rules; answers ``delivered``. At ``settlement_time(i)`` it settles
  ``i``: shortfalls become penalties (debt collected with the bill) and every reporting seller's
  reputation moves (``ReputationPolicy``). At the start of each reputation epoch it signs the
  epoch's tier lists from the scores of that moment and answers ``tiers?`` with them.
* **Gated offers.** A prosumer asks the DSO for the current epoch's tier lists (cached per
  epoch) and proves membership in the one it needs without saying which member it is.

State is written before it is acted on: the desk and the scores in one transaction per
accepted report and per settled interval; a prosumer's report status per interval. Logs carry
intervals, counts and reasons, never a meter's values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, final

from petranode.clock import Clock
from petranode.crypto.group import Point
from petranode.crypto.keys import WalletKeys
from petranode.errors import PetranodeError
from petranode.market.book.store import MarketLedger
from petranode.market.delivery import DeliveryReport, SettlementDesk
from petranode.market.errors import DeliveryReject, DeliveryRejected, MarketRecordInvalid
from petranode.market.intervals import MarketClock, to_ms
from petranode.market.messages import (
    DeliveredMessage,
    DeliveryMessage,
    TiersMessage,
    TiersQuery,
    decode_settlement_message,
)
from petranode.market.registry import Registration
from petranode.market.reputation import ReputationBook, ReputationPolicy, TierList
from petranode.market.settlement import SettlementTerms, ShortfallPolicy
from petranode.market.settling.store import SettlementStore
from petranode.market.trade_builder import derive_offer_keys
from petranode.market.trade_kinds import Trade
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.net.signing import Signer
from petranode.store.store import Store

log = logging.getLogger(__name__)

TICK_S: Final = 0.5
#: Seconds a prosumer waits for the DSO's tier lists.
TIERS_TIMEOUT_S: Final = 30.0
MAX_QUEUED: Final = 1024
#: Intervals back a prosumer still reports after a restart.
MAX_REPORT_BACKLOG: Final = 64
#: Seconds a prosumer waits for the DSO's verdict before it sends a report again.
REPORT_RETRY_S: Final = 5.0


class SettlementUnavailable(PetranodeError):
    """Not the DSO, no DSO destination, or no tier lists from the DSO in time."""


class Port(Protocol):
    def subscribe(self, protocol: GarlicProtocol, handler: Callable[[bytes, bytes], None]
                  ) -> None: ...

    def send(self, to: bytes, data: bytes,
             protocol: GarlicProtocol = ...) -> Awaitable[bytes]: ...


#: ``(offer id, nonce of its keys, W sold)`` of each of our offers that sold in an interval.
Sales = Callable[[int], Awaitable[list[tuple[bytes, bytes, int]]]]


@final
class SettlementService:
    """The DSO's settlement desk and tier lists, or a prosumer's delivery reports."""

    def __init__(self, *, network_id: str, dso_key: bytes, dso_destination: bytes, garlic: Port,
                 store: Store, clock: Clock, market_clock: MarketClock, book: MarketLedger,
                 terms: SettlementTerms, policy: ReputationPolicy, dso: Signer | None,
                 registrations: Callable[[], Sequence[Registration]],
                 meter: Signer | None, wallet_keys: WalletKeys | None, sales: Sales | None,
                 export_w: Callable[[int], int] | None) -> None:
        self._network_id = network_id
        self._dso_key = dso_key
        self._dso_destination = dso_destination
        self._garlic = garlic
        self._store = SettlementStore(store)
        self._clock = clock
        self.market_clock = market_clock
        self._book = book
        self._terms = terms
        self._policy = policy
        self._dso = dso
        self._registrations = registrations
        self._meter = meter
        self._wallet_keys = wallet_keys
        self._sales = sales
        self._export_w = export_w
        self._desk = SettlementDesk(terms, ReputationBook(policy))
        self._next_settle: int | None = None
        self._published_epoch = -1
        self._reports: dict[int, str] = {}
        self._report_sent_at: dict[int, float] = {}
        self._tiers: dict[int, tuple[TierList, ...]] = {}
        self._tiers_waiting: dict[int, asyncio.Future[tuple[TierList, ...]]] = {}
        self._queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(MAX_QUEUED)
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self.counters: dict[str, int] = {}

    async def __aenter__(self) -> SettlementService:
        if self._dso is not None:
            scores, desk = await self._store.load_dso()
            book = ReputationBook.from_rows(self._policy, scores)
            self._desk = SettlementDesk.from_rows(self._terms, book, desk)
        self._reports = await self._store.reports()
        self._garlic.subscribe(GarlicProtocol.MARKET, self._on_message)
        await self._group.__aenter__()
        self._tasks = [self._group.create_task(self._work(), name="settlement-worker"),
                       self._group.create_task(self._ticks(), name="settlement-ticks")]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    # -- API --------------------------------------------------------------------------------------

    async def tier_list(self, tier: int) -> TierList:
        """The current epoch's DSO-signed list of ``tier`` (asked of the DSO once per epoch)."""
        epoch = self.market_clock.epoch_at(self._now_ms())
        lists = self._tiers.get(epoch)
        if lists is None:
            lists = await self._ask_tiers(epoch)
        for tier_list in lists:
            if tier_list.tier == tier:
                return tier_list
        raise SettlementUnavailable(f"the DSO publishes no tier {tier}")

    def summary(self) -> dict[str, Any]:
        """DSO: the desk's totals and every registered prosumer's score and debt."""
        if self._dso is None:
            return {"reports": dict(sorted(self._reports.items())),
                    "counters": dict(self.counters)}
        self._enroll_new()
        return {**self._desk.summary(),
                "epoch_published": self._published_epoch,
                "prosumers": [{"meter_key": row.prosumer.hex(), "score": row.score,
                               "debt_cents": self._desk.debt(row.prosumer)}
                              for row in self._desk.book.to_rows()],
                "counters": dict(self.counters)}

    # -- messages ---------------------------------------------------------------------------------

    def _on_message(self, sender: bytes, data: bytes) -> None:
        try:
            self._queue.put_nowait((sender, data))
        except asyncio.QueueFull:
            self._count("dropped")

    async def _work(self) -> None:
        while True:
            sender, data = await self._queue.get()
            try:
                message = decode_settlement_message(data)
            except MarketRecordInvalid as exc:
                self._count(f"refused_{exc.reason.value}")
                continue
            match message:
                case DeliveryMessage(report) if self._dso is not None:
                    await self._on_report(sender, report)
                case TiersQuery(epoch) if self._dso is not None:
                    await self._answer_tiers(sender, epoch)
                case DeliveredMessage(interval, accepted, reason) if self._meter is not None:
                    if self._reports.get(interval) != "sent":
                        continue  # a verdict on a resent copy: the first one stands
                    status = "accepted" if accepted else "refused"
                    self._reports[interval] = status
                    await self._store.set_report(interval, status, reason)
                    self._count(f"reports_{status}")
                case TiersMessage(epoch, lists):
                    self._on_tiers(epoch, lists)
                case _:
                    self._count("unexpected")

    # -- DSO --------------------------------------------------------------------------------------

    async def _on_report(self, sender: bytes, data: bytes) -> None:
        try:
            report = DeliveryReport.decode(data)
        except MarketRecordInvalid as exc:
            self._count(f"reports_refused_{exc.reason.value}")
            return
        self._enroll_new()
        cancel_keys: dict[bytes, Point] = {}
        trades: dict[bytes, list[Trade]] = {}
        for offer_id in report.offer_ids:
            row = await self._book.offer(offer_id)
            if row is not None:
                cancel_keys[offer_id] = row.state.terms.cancel_key
                trades[offer_id] = [t.trade for t in await self._book.trades_of(offer_id)]
        registered = {r.meter_key for r in self._registrations()}
        try:
            self._desk.accept_report(
                report, registered=registered.__contains__,
                trades_of=lambda offer_id: trades.get(offer_id, []),
                cancel_key_of=cancel_keys.get, network_id=self._network_id)
        except (DeliveryRejected, MarketRecordInvalid) as exc:
            if exc.reason is DeliveryReject.DUPLICATE_REPORT:
                # The seller sent it again before our verdict arrived: it was taken.
                self._count("reports_repeated")
                await self._reply(sender, DeliveredMessage(report.interval, True))
            else:
                await self._refuse(sender, report, exc)
            return
        await self._save_dso()
        self._count("reports_accepted")
        await self._reply(sender, DeliveredMessage(report.interval, True))

    async def _refuse(self, sender: bytes, report: DeliveryReport,
                      exc: DeliveryRejected | MarketRecordInvalid) -> None:
        self._count(f"reports_refused_{exc.reason.value}")
        log.info("settlement.report.refused interval=%d reason=%s", report.interval,
                 exc.reason.value)
        await self._reply(sender, DeliveredMessage(report.interval, False,
                                                   str(exc.reason.value)))

    def _enroll_new(self) -> None:
        known = {row.prosumer for row in self._desk.book.to_rows()}
        for registration in self._registrations():
            if registration.meter_key not in known:
                self._desk.book.enroll(registration)

    async def _settle_due(self, now_ms: int) -> None:
        last = self.market_clock.last_settleable_interval(now_ms)
        if last is None:
            return
        if self._next_settle is None:
            # Resume after the last interval settled; a fresh DSO settles from now on.
            settled = self._desk.to_rows().settled_intervals
            self._next_settle = max(settled) + 1 if settled else last
        while self._next_settle <= last:
            interval = self._next_settle
            self._next_settle += 1
            if self._desk.is_settled(interval):
                continue
            self._enroll_new()
            result = self._desk.settle(interval)
            await self._save_dso()
            if result.trades:
                log.info("settlement.settled interval=%d trades=%d shortfall_w=%d "
                         "penalty_cents=%d", interval, len(result.trades),
                         result.total_shortfall_w, result.total_penalty_cents)

    async def _publish_due(self, now_ms: int) -> None:
        assert self._dso is not None
        epoch = self.market_clock.epoch_at(now_ms)
        if epoch <= self._published_epoch:
            return
        stored = await self._store.tiers(epoch)
        if not stored:
            self._enroll_new()
            lists = self._desk.book.publish(self._dso, self._network_id, epoch)
            await self._store.save_tiers(epoch, [(t.tier, t.encode()) for t in lists])
            log.info("settlement.tiers.published epoch=%d lists=%d", epoch, len(lists))
        self._published_epoch = epoch

    async def _answer_tiers(self, sender: bytes, epoch: int) -> None:
        # A prosumer whose clock turned the epoch a moment before ours asks before our tick
        # published it: publish now rather than answer with nothing.
        await self._publish_due(self._now_ms())
        lists = await self._store.tiers(epoch)
        await self._reply(sender, TiersMessage(epoch, tuple(lists)))
        self._count("tiers_answered")

    async def _save_dso(self) -> None:
        await self._store.save_dso(self._desk.book.to_rows(), self._desk.to_rows())

    # -- prosumer ---------------------------------------------------------------------------------

    async def _report_due(self, now_ms: int) -> None:
        assert self._sales is not None and self._export_w is not None
        clock = self.market_clock
        ended = clock.interval_at(now_ms) - 1
        oldest = max(0, ended - MAX_REPORT_BACKLOG)
        for table in (self._reports, self._report_sent_at):
            for old in [i for i in table if i < oldest]:
                del table[old]
        for interval in range(oldest, ended + 1):
            if self._reports.get(interval) in ("accepted", "refused", "none"):
                continue
            if now_ms >= clock.settlement_time(interval):
                continue  # too late: the DSO settled it without us
            sent_at = self._report_sent_at.get(interval)
            if sent_at is not None and now_ms / 1000 - sent_at < REPORT_RETRY_S:
                continue
            sales = await self._sales(interval)
            if not sales:
                self._reports[interval] = "none"  # nothing sold: nothing to report
                continue
            await self._send_report(interval, sales)

    async def _send_report(self, interval: int, sales: list[tuple[bytes, bytes, int]]) -> None:
        assert self._meter is not None and self._wallet_keys is not None
        assert self._export_w is not None
        sold = sum(w for _, _, w in sales)
        credited = min(max(0, self._export_w(interval)), sold)
        claims = [(offer_id, derive_offer_keys(self._wallet_keys, nonce).cancel_secret)
                  for offer_id, nonce, _ in sales]
        report = DeliveryReport.create(self._meter, self._network_id, interval, claims,
                                       credited)
        if self._reports.get(interval) != "sent":
            self._reports[interval] = "sent"
            await self._store.set_report(interval, "sent")
        self._report_sent_at[interval] = self._clock.time()
        if await self._send(DeliveryMessage(report.encode()).encode()):
            self._count("reports_sent")

    async def _ask_tiers(self, epoch: int) -> tuple[TierList, ...]:
        future = self._tiers_waiting.get(epoch)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._tiers_waiting[epoch] = future
        try:
            if not await self._send(TiersQuery(epoch).encode()):
                raise SettlementUnavailable("the DSO cannot be reached")
            async with asyncio.timeout(TIERS_TIMEOUT_S):
                return await asyncio.shield(future)
        except TimeoutError:
            raise SettlementUnavailable("no tier lists from the DSO") from None
        finally:
            if future.done():
                self._tiers_waiting.pop(epoch, None)

    def _on_tiers(self, epoch: int, encoded: Sequence[bytes]) -> None:
        try:
            lists = tuple(TierList.decode(data) for data in encoded)
        except MarketRecordInvalid:
            self._count("tiers_malformed")
            return
        if any(t.epoch != epoch or not t.signature_valid(self._dso_key, self._network_id)
               for t in lists):
            self._count("tiers_bad_signature")
            return
        if lists:
            self._tiers = {e: t for e, t in self._tiers.items() if e >= epoch - 1}
            self._tiers[epoch] = lists
        future = self._tiers_waiting.get(epoch)
        if future is not None and not future.done():
            future.set_result(lists)

    # -- plumbing ---------------------------------------------------------------------------------

    async def _ticks(self) -> None:
        while True:
            now_ms = self._now_ms()
            if self._dso is not None:
                await self._settle_due(now_ms)
                await self._publish_due(now_ms)
            elif self._meter is not None and self._sales is not None:
                await self._report_due(now_ms)
            await asyncio.sleep(TICK_S)

    async def _send(self, data: bytes) -> bool:
        if not self._dso_destination:
            raise SettlementUnavailable("the genesis names no DSO destination")
        try:
            await self._garlic.send(self._dso_destination, data, GarlicProtocol.MARKET)
        except PetranodeError as exc:
            self._count("send_failed")
            log.debug("settlement.send_failed error=%s", type(exc).__name__)
            return False
        return True

    async def _reply(self, to: bytes, message: DeliveredMessage | TiersMessage) -> None:
        try:
            await self._garlic.send(to, message.encode(), GarlicProtocol.MARKET)
        except PetranodeError as exc:
            self._count("reply_failed")
            log.debug("settlement.reply_failed error=%s", type(exc).__name__)

    def _now_ms(self) -> int:
        return to_ms(self._clock.time())

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1


def settlement_terms(penalty_millicents_per_w: int) -> SettlementTerms:
    """Penalties become debt: a SELL offer's energy is burnt at acceptance, so there is no
    escrow to take them from (``delivery.py``)."""
    return SettlementTerms(penalty_millicents_per_w, ShortfallPolicy.DEBT)
