"""The metering service: simulated smart meters and the DSO's billing and aggregate load
(SPEC §4.8; issue 7 item 8). The I/O edge of ``petranode.market.metering``: the only module
of it that touches asyncio, the clock, files or garlic; the rules live in
:mod:`~petranode.market.meter`, :mod:`~petranode.market.billing`,
:mod:`~petranode.market.aggregate` and :mod:`.periods`, the tables in :mod:`.store`.

Theory of operation
-------------------
Every message goes through garlic, protocol ``market`` (routed here by
:class:`~.channel.MarketChannel`), between a meter's destination and the DSO's (genesis
``[dso] destination``).

**Meter** (a prosumer's node). A :class:`~petranode.market.meter.Meter` with the node's meter
keys and its profile (synthetic from ``[market]``, or a recorded CSV). At the end of each
interval ``i`` (one deadline per interval boundary of the :class:`MarketClock`; the loop
sleeps until the next one) it commits ``i`` and sends the signed
:class:`~petranode.market.meter.MeterCommitment`, then its masked
:class:`~petranode.market.aggregate.LoadShare` for ``i`` once it holds the DSO-signed roster
of ``i``'s billing period. Roster and :class:`~petranode.market.billing.PricePolicy` come
together from the DSO in answer to a signed ``policy?`` query, asked for the interval in
delivery and the next one (so a new period's answer is there before its first interval ends).
When the last interval of a policy's period is committed, the meter sends its
:class:`~petranode.market.billing.Bill` for the period (from the first interval it metered, if
that leaves at least a simulated day). Readings stay in this process; the node's database
keeps only three progress marks. A first start begins at the current billing period's first
interval (the simulated meter "was there"); a restart catches up on missed intervals.

**DSO.** Answers ``policy?`` from registered meters with the period's policy (signed from
``[market]`` prices, stored) and the meter's feeder roster (signed once per feeder and
period from the registrations, stored). Stores each registered meter's verified commitments
(points, not readings). Adds shares to one
:class:`~petranode.market.aggregate.FeederAggregator` per roster, storing a feeder's total
once every roster meter reported, and declaring it unavailable (NULL) when an interval's
grace (``aggregate_grace_intervals``) passes without all shares. Verifies bills against the
stored commitments, stores verified totals, counts rejections by reason, and answers
``billed``.

Nothing per meter and interval is logged or stored in clear; log lines carry counts, ids and
interval numbers only.

Concurrency: garlic handlers only queue; one worker handles messages in order, and the
deadline loop and the worker share one lock, so the state has one writer at a time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, assert_never, final

from petranode.clock import Clock
from petranode.errors import PetranodeError
from petranode.genesis import Genesis
from petranode.market.aggregate import FeederAggregator, FeederRoster, LoadShare, make_share
from petranode.market.billing import (
    MAX_BILL_INTERVALS,
    Bill,
    PricePolicy,
    VerifiedBill,
    make_bill,
    verify_bill,
)
from petranode.market.errors import (
    BillReject,
    BillRejected,
    MarketRecordInvalid,
    MeteringFault,
    MeteringUnavailable,
    ProfileFault,
    ProfileInvalid,
    ShareReject,
    ShareRejected,
)
from petranode.market.intervals import MarketClock, to_ms
from petranode.market.messages import (
    MAX_METERING_MESSAGE_BYTES,
    BilledMessage,
    PolicyAnswer,
    PolicyQuery,
    RecordMessage,
    decode_metering_message,
)
from petranode.market.meter import Meter, MeterCommitment, MeterKeys
from petranode.market.metering import store as db
from petranode.market.metering.periods import (
    PERIODS_AROUND,
    bill_range,
    feeder_keys,
    issue_policy,
    issue_roster,
    period_of,
    period_range,
)
from petranode.market.notices import NoticeTopic
from petranode.market.profiles import Profile, Reading, SyntheticProfile, parse_profile_csv
from petranode.market.registry import Registration
from petranode.market.settings import MarketConfig
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.net.signing import Signer
from petranode.store.store import Store

log = logging.getLogger(__name__)

#: Messages queued for the worker; beyond it they are dropped (garlic is lossy; meters resend
#: what matters), so a flood cannot grow memory.
MAX_QUEUED: Final = 4096
#: Intervals a restarted meter catches up on at most: one longest bill.
MAX_CATCH_UP: Final = MAX_BILL_INTERVALS
#: Sends a meter keeps for retry at most (the DSO's destination was unreachable).
MAX_OUTBOX: Final = 2 * MAX_BILL_INTERVALS
#: Intervals whose share waits for a roster at most.
MAX_PENDING_SHARES: Final = MAX_BILL_INTERVALS
#: Readings ``meter.readings`` returns at once.
MAX_READINGS: Final = MAX_BILL_INTERVALS
#: Seconds between two refreshes of the DSO's registration index on a miss.
REGISTRATION_REFRESH_S: Final = 1.0

Handler = Callable[[bytes, bytes], None]


class GarlicPort(Protocol):
    def subscribe(self, protocol: GarlicProtocol, handler: Handler) -> None: ...

    def send(self, to: bytes, data: bytes,
             protocol: GarlicProtocol = ...) -> Awaitable[bytes]: ...


@dataclass(slots=True)
class _FeederPeriod:
    """The DSO's aggregation of one feeder over one billing period."""

    period: int
    first: int
    last: int
    aggregator: FeederAggregator
    #: Every interval below it has been closed (aggregated or declared unavailable).
    closed_until: int


@final
class MeteringService:
    """The meter of a prosumer's node and/or the DSO's metering and billing."""

    def __init__(self, *, genesis: Genesis, garlic: GarlicPort, store: Store, clock: Clock,
                 config: MarketConfig, meter_keys: MeterKeys | None, dso: Signer | None,
                 registrations: Callable[[], Iterable[Registration]] | None = None,
                 profile_path: Path | None = None,
                 publish: Callable[[NoticeTopic, bytes], Awaitable[object]] | None = None,
                 ) -> None:
        if dso is not None and registrations is None:
            raise ValueError("the DSO's metering needs its registrations")
        #: DSO: posts each new price policy on the ledger (``notices.py``).
        self._publish = publish
        self._genesis = genesis
        self._network_id = genesis.network_id
        self._dso_key = genesis.dso.signing_key
        self._garlic = garlic
        self._store = store
        self._clock = clock
        self._config = config
        self._meter_keys = meter_keys
        self._dso = dso
        self._registrations_source = registrations
        self._profile_path = profile_path
        self.market_clock = MarketClock.from_genesis(genesis)
        self._queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(MAX_QUEUED)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        # meter
        self.meter: Meter | None = None
        self._policies: dict[int, tuple[PricePolicy, FeederRoster | None]] = {}
        self._next: int | None = None
        self._first = 0
        self._billed_through = -1
        self._pending_shares: set[int] = set()
        self._asked: dict[int, int] = {}
        self._outbox: dict[tuple[str, int], bytes] = {}
        # DSO
        self._registrations: dict[bytes, Registration] = {}
        self._registrations_at = -REGISTRATION_REFRESH_S
        self._feeders: dict[bytes, _FeederPeriod] = {}
        self._rosters: dict[tuple[str, int], FeederRoster | None] = {}
        self._issued: dict[int, PricePolicy] = {}

    async def __aenter__(self) -> MeteringService:
        if self._meter_keys is not None:
            self.meter = Meter(self._meter_keys, self._load_profile(self._meter_keys),
                               self._network_id)
            self._next = await db.get_mark(self._store, db.META_NEXT_INTERVAL)
            self._first = await db.get_mark(self._store, db.META_FIRST_INTERVAL) or 0
            billed = await db.get_mark(self._store, db.META_BILLED_THROUGH)
            self._billed_through = -1 if billed is None else billed
        if self._dso is not None:
            since = max(0, self._current_period() - PERIODS_AROUND)
            for period, roster in await db.load_rosters(self._store, since):
                self._add_feeder_period(period, roster)
        self._garlic.subscribe(GarlicProtocol.MARKET, self._on_message)
        await self._group.__aenter__()
        self._tasks = [self._group.create_task(self._work(), name="metering-worker"),
                       self._group.create_task(self._deadlines(), name="metering-deadlines")]
        log.info("metering.started meter=%s dso=%s",
                 "-" if self.meter is None else self.meter.meter_key.hex()[:16],
                 self._dso is not None)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    def _load_profile(self, keys: MeterKeys) -> Profile:
        config = self._config
        if self._profile_path is not None:
            try:
                text = self._profile_path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ProfileInvalid(ProfileFault.BAD_SIZE, 0,
                                     f"cannot read {self._profile_path}") from exc
            return parse_profile_csv(text)
        seed = (config.profile_seed or self._network_id).encode()
        return SyntheticProfile(seed, keys.meter_key, config.solar_peak_w,
                                base_load_w=config.base_load_w,
                                intervals_per_day=config.intervals_per_day)

    # -- time ------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self._clock.time())

    def _current_interval(self, now_ms: int) -> int:
        """The interval in delivery at ``now_ms`` (0 before genesis)."""
        return 0 if now_ms < self.market_clock.genesis_ms else self.market_clock.interval_at(now_ms)

    def _current_period(self) -> int:
        return period_of(self._current_interval(self._now_ms()),
                         self._config.billing_period_intervals)

    async def _deadlines(self) -> None:
        """At every interval boundary: commit, share, bill (meter); close aggregates (DSO)."""
        while True:
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:  # our fault (storage, a bug): log, count, try at the next deadline
                log.exception("metering.deadline_failed")
                self.counters["deadline_failed"] += 1
            now = self._now_ms()
            boundary = self.market_clock.start(self._current_interval(now) + 1)
            if now < self.market_clock.genesis_ms:
                boundary = self.market_clock.end(0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, (boundary - now) / 1000)):
                    await self._wake.wait()

    async def run_due(self) -> None:
        """Do everything due at the clock's ``now``; the deadline loop calls it at each
        interval boundary (tests with a virtual clock call it directly)."""
        async with self._lock:
            now = self._now_ms()
            if now < self.market_clock.genesis_ms:
                return
            if self.meter is not None:
                await self._meter_due(now)
            if self._dso is not None:
                await self._dso_due(now)

    # -- messages --------------------------------------------------------------------------

    def _on_message(self, sender: bytes, data: bytes) -> None:
        try:
            self._queue.put_nowait((sender, data))
        except asyncio.QueueFull:
            self.counters["dropped_queue_full"] += 1

    async def _work(self) -> None:
        while True:
            sender, data = await self._queue.get()
            try:
                await self.handle(sender, data)
            except Exception:  # our fault: the peer's input is refused inside handle
                log.exception("metering.handler_failed")
                self.counters["handler_failed"] += 1
            finally:
                self._queue.task_done()

    @property
    def queued(self) -> int:
        """Messages waiting for the worker."""
        return self._queue.qsize()

    async def settled(self) -> None:
        """Return once every message queued so far has been handled."""
        await self._queue.join()

    async def handle(self, sender: bytes, data: bytes) -> None:
        """Handle one message from destination ``sender``."""
        try:
            message = decode_metering_message(data)
        except MarketRecordInvalid:
            self.counters["bad_message"] += 1
            return
        async with self._lock:
            match message:
                case PolicyQuery():
                    if self._dso is not None:
                        await self._answer_policy(sender, message)
                    else:
                        self.counters["query_not_dso"] += 1
                case PolicyAnswer():
                    if self.meter is not None and sender == self._genesis.dso.destination:
                        await self._on_policy(self.meter, message)
                    else:
                        self.counters["policy_unexpected"] += 1
                case RecordMessage():
                    if self._dso is not None:
                        await self._on_record(sender, message)
                    else:
                        self.counters["record_not_dso"] += 1
                case BilledMessage():
                    if self.meter is not None and sender == self._genesis.dso.destination:
                        self.counters["bills_verified" if message.verified
                                      else f"bills_rejected_{message.reason}"] += 1
                    else:
                        self.counters["billed_unexpected"] += 1
                case _:
                    assert_never(message)

    async def _send(self, to: bytes, data: bytes, what: str) -> bool:
        if not to:
            self.counters["no_dso_destination"] += 1
            return False
        try:
            await self._garlic.send(to, data, GarlicProtocol.MARKET)
        except PetranodeError as exc:  # destination unknown or garlic back-pressure
            self.counters[f"send_failed_{what}"] += 1
            log.info("metering.send_failed what=%s error=%s", what, type(exc).__name__)
            return False
        return True

    # -- meter -----------------------------------------------------------------------------

    async def _meter_send(self, kind: str, interval: int, data: bytes) -> None:
        """Send to the DSO; keep for retry at the next deadline if garlic cannot."""
        if await self._send(self._genesis.dso.destination, data, kind):
            self._outbox.pop((kind, interval), None)
            return
        self._outbox[(kind, interval)] = data
        while len(self._outbox) > MAX_OUTBOX:
            del self._outbox[next(iter(self._outbox))]
            self.counters["outbox_dropped"] += 1

    async def _meter_due(self, now: int) -> None:
        meter = self.meter
        assert meter is not None
        for (kind, interval), data in list(self._outbox.items()):
            await self._meter_send(kind, interval, data)
        current = self._current_interval(now)
        if self._next is None:
            self._next = self._first = period_of(
                current, self._config.billing_period_intervals) * self._config.billing_period_intervals
            await db.put_mark(self._store, db.META_FIRST_INTERVAL, self._first)
        if self._next < current - MAX_CATCH_UP:
            self._next = self._first = current - MAX_CATCH_UP
            await db.put_mark(self._store, db.META_FIRST_INTERVAL, self._first)
            self.counters["intervals_skipped"] += 1
        committed = self._next
        while self._next < current:  # end(i) <= now  ⇔  i < interval_at(now)
            interval = self._next
            record = meter.commit(interval)
            await self._meter_send("commitment", interval,
                                   RecordMessage("commitment", record.encode()).encode())
            self._pending_shares.add(interval)
            self._next = interval + 1
            self.counters["intervals_committed"] += 1
        if self._next != committed:
            await db.put_mark(self._store, db.META_NEXT_INTERVAL, self._next)
            log.debug("meter.committed through=%d", self._next - 1)
        while len(self._pending_shares) > MAX_PENDING_SHARES:
            self._pending_shares.discard(min(self._pending_shares))
            self.counters["shares_abandoned"] += 1
        await self._send_shares(meter)
        await self._send_bills(meter)
        await self._ask_policies(meter, now)
        self._prune_meter(meter)

    def _policy_for(self, interval: int) -> tuple[PricePolicy, FeederRoster | None] | None:
        for policy, roster in self._policies.values():
            if policy.first_interval <= interval <= policy.last_interval:
                return policy, roster
        return None

    async def _ask_policies(self, meter: Meter, now: int) -> None:
        assert self._next is not None
        wanted = {self._next, self._next + 1}
        waiting = [i for i in self._pending_shares if self._policy_for(i) is None]
        if waiting:
            wanted.add(min(waiting))
        for interval in sorted(wanted):
            if self._policy_for(interval) is not None:
                continue
            asked = self._asked.get(interval)
            if asked is not None and now - asked < self.market_clock.interval_ms:
                continue
            self._asked[interval] = now
            query = PolicyQuery.create(meter.keys, self._network_id, interval)
            await self._send(self._genesis.dso.destination, query.encode(), "query")
            self.counters["policy_queries"] += 1
        for interval in [i for i in self._asked if i < self._next - 1]:
            del self._asked[interval]

    async def _on_policy(self, meter: Meter, answer: PolicyAnswer) -> None:
        try:
            policy = PricePolicy.decode(answer.policy)
            policy.verify(self._dso_key, self._network_id)
            roster = None if answer.roster is None else FeederRoster.decode(answer.roster)
            if roster is not None:
                roster.verify(self._dso_key, self._network_id)
        except MarketRecordInvalid:
            self.counters["bad_policy"] += 1
            return
        if roster is not None and meter.meter_key not in roster.meter_keys:
            self.counters["roster_without_us"] += 1
            roster = None
        held = self._policies.get(policy.first_interval)
        if held is not None and held[0].policy_id == policy.policy_id:
            return
        if any(p.first_interval <= policy.last_interval and policy.first_interval <= p.last_interval
               for p, _ in self._policies.values()):
            # Two tariffs for one interval: billing under both would open it twice.
            self.counters["policy_conflict"] += 1
            return
        self._policies[policy.first_interval] = (policy, roster)
        self.counters["policies"] += 1
        await self._send_shares(meter)
        await self._send_bills(meter)

    async def _send_shares(self, meter: Meter) -> None:
        for interval in sorted(self._pending_shares):
            held = self._policy_for(interval)
            if held is None:
                continue
            self._pending_shares.discard(interval)
            roster = held[1]
            if roster is None:
                self.counters["shares_without_roster"] += 1
                continue
            share = make_share(meter, roster, self._dso_key, interval)
            await self._meter_send("share", interval, RecordMessage("share",
                                                                    share.encode()).encode())
            self.counters["shares_sent"] += 1

    async def _send_bills(self, meter: Meter) -> None:
        if self._next is None:  # a policy answer before our first deadline: bill later
            return
        for _, (policy, _roster) in sorted(self._policies.items()):
            period = bill_range(policy, self._first, self._billed_through, self._next)
            if period is None:
                continue
            first, last = period
            for interval in range(first, last + 1):
                meter.measure(interval)  # after a restart the readings are taken again
            try:
                bill = make_bill(meter, policy, self._dso_key, first, last)
            except ValueError:
                log.warning("meter.bill_failed first=%d last=%d", first, last)
                self.counters["bill_failed"] += 1
                continue
            finally:
                self._billed_through = last
                await db.put_mark(self._store, db.META_BILLED_THROUGH, last)
            await self._meter_send("bill", first, RecordMessage("bill", bill.encode()).encode())
            self.counters["bills_sent"] += 1
            log.info("meter.billed first=%d last=%d bill=%s", first, last, bill.bill_id.hex()[:16])

    def _prune_meter(self, meter: Meter) -> None:
        assert self._next is not None
        keep_from = min([self._billed_through + 1, self._next, *self._pending_shares])
        meter.prune(keep_from)
        for first in [f for f, (p, _) in self._policies.items() if p.last_interval < keep_from]:
            del self._policies[first]

    # -- meter RPC -------------------------------------------------------------------------

    def _require_meter(self) -> Meter:
        if self.meter is None:
            raise MeteringUnavailable(MeteringFault.NOT_A_METER)
        return self.meter

    def meter_status(self) -> dict[str, Any]:
        meter = self._require_meter()
        following = self._first if self._next is None else self._next
        return {
            "meter_key": meter.meter_key.hex(),
            "first_interval": self._first,
            "last_interval": following - 1 if following > self._first else None,
            "intervals_committed": following - self._first,
            "billed_through": self._billed_through if self._billed_through >= 0 else None,
            "bills_sent": self.counters["bills_sent"],
            "bills_verified": self.counters["bills_verified"],
            "bills_rejected": sum(v for k, v in self.counters.items()
                                  if k.startswith("bills_rejected_")),
            "pending_shares": len(self._pending_shares),
            "counters": dict(sorted(self.counters.items())),
        }

    def forecast(self, first: int, last: int) -> list[dict[str, int]]:
        """This meter's profile for ``first … last``, future intervals included. The synthetic
        profile is deterministic, so this is a perfect forecast: what a household's own
        energy manager would plan its offers with (owner only)."""
        meter = self._require_meter()
        if not 0 <= first <= last or last - first + 1 > MAX_READINGS:
            raise MeteringUnavailable(MeteringFault.BAD_RANGE,
                                      f"first <= last, at most {MAX_READINGS} intervals")
        return [_reading_value(interval, meter.profile.reading(interval))
                for interval in range(first, last + 1)]

    def export_w(self, interval: int) -> int:
        """What this meter exported to the grid over ``interval`` (average W), for delivery
        reports: production above consumption, never negative."""
        return max(0, -self._require_meter().profile.reading(interval).net_w)

    def readings(self, first: int, last: int) -> list[dict[str, int]]:
        """This meter's own readings of committed intervals in ``first … last`` (owner only)."""
        meter = self._require_meter()
        if not 0 <= first <= last or last - first + 1 > MAX_READINGS:
            raise MeteringUnavailable(MeteringFault.BAD_RANGE,
                                      f"first <= last, at most {MAX_READINGS} intervals")
        following = self._first if self._next is None else self._next
        out = []
        for interval in range(max(first, self._first), min(last + 1, following)):
            out.append(_reading_value(interval, meter.profile.reading(interval)))
        return out

    # -- DSO -------------------------------------------------------------------------------

    def _require_dso(self) -> Signer:
        if self._dso is None:
            raise MeteringUnavailable(MeteringFault.NOT_THE_DSO)
        return self._dso

    def _refresh_registrations(self) -> None:
        assert self._registrations_source is not None
        self._registrations = {r.meter_key: r for r in self._registrations_source()}
        self._registrations_at = self._clock.monotonic()

    def _registration(self, meter_key: bytes) -> Registration | None:
        found = self._registrations.get(meter_key)
        if found is None and (self._clock.monotonic() - self._registrations_at
                              >= REGISTRATION_REFRESH_S):
            self._refresh_registrations()
            found = self._registrations.get(meter_key)
        return found

    def _add_feeder_period(self, period: int, roster: FeederRoster) -> None:
        first, last = period_range(period, self._config.billing_period_intervals)
        self._rosters[(roster.feeder, period)] = roster
        self._feeders[roster.roster_id] = _FeederPeriod(
            period, first, last, FeederAggregator(roster, self._network_id), first)

    async def _policy(self, dso: Signer, period: int) -> PricePolicy:
        policy = self._issued.get(period)
        if policy is None:
            policy = await db.load_policy(self._store, period=period)
        if policy is None:
            policy = issue_policy(dso, self._network_id, self._config, period)
            await db.save_policy(self._store, period, policy)
            if self._publish is not None:
                await self._publish(NoticeTopic.PRICE_POLICY, policy.encode())
        self._issued[period] = policy
        for old in [p for p in self._issued if p < period - 2 * PERIODS_AROUND]:
            del self._issued[old]
        return policy

    async def _roster(self, dso: Signer, feeder: str, period: int) -> FeederRoster | None:
        if (feeder, period) in self._rosters:
            return self._rosters[(feeder, period)]
        self._refresh_registrations()
        roster = issue_roster(dso, self._network_id, feeder, period,
                              feeder_keys(self._registrations.values(), feeder))
        self._rosters[(feeder, period)] = roster
        if roster is not None:
            await db.save_roster(self._store, period, roster)
            self._add_feeder_period(period, roster)
            log.info("dso.roster_issued feeder=%s period=%d meters=%d", feeder, period,
                     len(roster.meter_keys))
        return roster

    async def _answer_policy(self, sender: bytes, query: PolicyQuery) -> None:
        dso = self._require_dso()
        registration = self._registration(query.meter_key)
        if registration is None:
            self.counters["query_unknown_meter"] += 1
            return
        if not query.signature_valid(self._network_id):
            self.counters["query_bad_signature"] += 1
            return
        period = period_of(query.interval, self._config.billing_period_intervals)
        if abs(period - self._current_period()) > PERIODS_AROUND:
            self.counters["query_out_of_window"] += 1
            return
        policy = await self._policy(dso, period)
        roster = await self._roster(dso, registration.feeder, period)
        answer = PolicyAnswer(None if roster is None else roster.encode(), policy.encode())
        data = answer.encode()
        if len(data) > MAX_METERING_MESSAGE_BYTES:
            self.counters["roster_too_large"] += 1
            data = PolicyAnswer(None, policy.encode()).encode()
        self.counters["policies_answered"] += 1
        await self._send(sender, data, "policy")

    async def _on_record(self, sender: bytes, message: RecordMessage) -> None:
        match message.kind:
            case "commitment":
                await self._on_commitment(message.record)
            case "share":
                await self._on_share(message.record)
            case "bill":
                await self._on_bill(sender, message.record)
            case _:
                raise AssertionError(message.kind)

    async def _on_commitment(self, data: bytes) -> None:
        try:
            record = MeterCommitment.decode(data)
        except MarketRecordInvalid:
            self.counters["commitment_malformed"] += 1
            return
        if self._registration(record.meter_key) is None:
            self.counters["commitment_unknown_meter"] += 1
            return
        try:
            record.verify(record.meter_key, self._network_id)
        except MarketRecordInvalid:
            self.counters["commitment_bad_signature"] += 1
            return
        now = self._now_ms()
        skew_ms = self._genesis.params.max_clock_skew_s * 1000
        current = self._current_interval(now)
        # Only intervals that have ended, and not older than one longest bill: bounds the table.
        if (self.market_clock.end(record.interval) > now + skew_ms
                or record.interval < current - 2 * MAX_BILL_INTERVALS):
            self.counters["commitment_out_of_window"] += 1
            return
        if await db.save_commitment(self._store, record):
            self.counters["commitments_stored"] += 1
        else:
            self.counters["commitment_duplicate"] += 1

    async def _on_share(self, data: bytes) -> None:
        try:
            share = LoadShare.decode(data)
        except MarketRecordInvalid:
            self.counters["share_malformed"] += 1
            return
        feeder = self._feeders.get(share.roster_id)
        if feeder is None:
            self.counters["share_unknown_roster"] += 1
            return
        if not feeder.first <= share.interval <= feeder.last:
            self.counters["share_wrong_period"] += 1
            return
        try:
            feeder.aggregator.add(share)
        except ShareRejected as exc:
            self.counters[f"share_refused_{exc.reason.value}"] += 1
            return
        self.counters["shares_accepted"] += 1
        if feeder.aggregator.complete(share.interval):
            await self._close(feeder, share.interval)

    async def _close(self, feeder: _FeederPeriod, interval: int) -> None:
        roster = feeder.aggregator.roster
        try:
            load = feeder.aggregator.close(interval)
        except ShareRejected as exc:
            if exc.reason is ShareReject.CLOSED:
                return
            await db.save_aggregate(self._store, roster.feeder, interval, None,
                                    len(roster.meter_keys))
            self.counters["aggregates_unavailable"] += 1
            return
        await db.save_aggregate(self._store, roster.feeder, interval, load, load.meters)
        self.counters["aggregates_complete"] += 1
        log.debug("dso.aggregate feeder=%s interval=%d", roster.feeder, interval)

    async def _dso_due(self, now: int) -> None:
        """Close every interval whose grace has passed: ``end(i) + grace·Δ <= now``."""
        limit = self._current_interval(now) - self._config.aggregate_grace_intervals
        for roster_id, feeder in list(self._feeders.items()):
            start = max(feeder.closed_until, limit - MAX_BILL_INTERVALS)
            for interval in range(start, min(feeder.last + 1, limit)):
                await self._close(feeder, interval)
            feeder.closed_until = max(feeder.closed_until, min(feeder.last + 1, limit))
            if feeder.closed_until > feeder.last:
                del self._feeders[roster_id]
        current_period = self._current_period()
        for key in [k for k in self._rosters if k[1] < current_period - PERIODS_AROUND]:
            del self._rosters[key]

    async def _on_bill(self, sender: bytes, data: bytes) -> None:
        try:
            bill = Bill.decode(data)
        except MarketRecordInvalid:
            self.counters["bill_malformed"] += 1
            return
        try:
            verified = await self._verify(bill)
        except BillRejected as exc:
            await db.count_rejection(self._store, exc.reason.value)
            log.info("dso.bill_rejected bill=%s reason=%s", bill.bill_id.hex()[:16],
                     exc.reason.value)
            await self._send(sender, BilledMessage(bill.bill_id, False,
                                                   exc.reason.value).encode(), "billed")
            return
        if await db.save_bill(self._store, verified):
            log.info("dso.bill_verified bill=%s first=%d last=%d", bill.bill_id.hex()[:16],
                     bill.first_interval, bill.last_interval)
        else:
            self.counters["bill_duplicate"] += 1
        await self._send(sender, BilledMessage(bill.bill_id, True).encode(), "billed")

    async def _verify(self, bill: Bill) -> VerifiedBill:
        registration = self._registration(bill.meter_key)
        if registration is None:
            raise BillRejected(BillReject.WRONG_METER)
        if bill.last_interval - bill.first_interval + 1 > MAX_BILL_INTERVALS:
            raise BillRejected(BillReject.BAD_PERIOD)
        policy = await db.load_policy(self._store, policy_id=bill.policy_id)
        if policy is None:
            raise BillRejected(BillReject.WRONG_POLICY)
        commitments = await db.load_commitments(self._store, bill.meter_key,
                                                bill.first_interval, bill.last_interval)
        return verify_bill(bill, policy=policy, commitments=commitments,
                           meter_key=registration.meter_key, network_id=self._network_id)

    # -- DSO RPC ---------------------------------------------------------------------------

    async def bills(self) -> list[dict[str, str | int]]:
        self._require_dso()
        return await db.load_bills(self._store)

    async def aggregate(self, feeder: str, interval: int) -> int | None:
        """The feeder's total net load for ``interval`` (W), or None if unknown/unavailable."""
        self._require_dso()
        row = await db.load_aggregate(self._store, feeder, interval)
        return None if row is None else row[0]

    async def metering(self) -> dict[str, Any]:
        self._require_dso()
        counts = await db.metering_counts(self._store)
        return {**counts, "open_feeder_periods": len(self._feeders),
                "counters": dict(sorted(self.counters.items()))}


def _reading_value(interval: int, reading: Reading) -> dict[str, int]:
    return {"interval": interval, "consumption_w": reading.consumption_w,
            "production_w": reading.production_w, "net_w": reading.net_w}
