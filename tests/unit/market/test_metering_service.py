"""The metering service end to end in one event loop (SPEC §4.8; issue 7 tests): a DSO and
three meters linked by an in-memory garlic hub through the market channel, a virtual clock
advanced interval by interval, a real SQLite store per node.

Checked: each feeder aggregate the DSO stores equals the sum of the meters' readings; every
bill verifies; a tampered bill is rejected; the DSO's database and the logs hold no reading.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from petranode.crypto.keys import WalletKeys
from petranode.genesis import Authority, Dso, Genesis, Validator
from petranode.market.billing import BILL_DOMAIN, Bill, PricePolicy, make_bill, sign_bill
from petranode.market.messages import RecordMessage
from petranode.market.meter import Meter, MeterKeys
from petranode.market.metering.channel import Handler, MarketChannel
from petranode.market.metering.periods import registrations_of
from petranode.market.metering.service import MeteringService
from petranode.market.metering.store import METERING_MIGRATIONS
from petranode.market.profiles import SyntheticProfile
from petranode.market.registry import CapacityBook, Registration
from petranode.market.settings import MarketConfig
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.net.identity import RouterKeys
from petranode.store.store import Store

NET = "metering-service-test"
T0 = 1_800_000_000
#: Long wall-clock intervals: the services' own deadline loops never fire during the test;
#: the test moves the virtual clock and calls ``run_due``.
INTERVAL_S = 3600
DSO_KEYS = RouterKeys.from_secrets(signing_seed=b"\x11" * 32, static_secret=b"\x22" * 32)
DSO_DEST = b"\xd5" * 32
#: A cheap tariff (1 and 0.5 c/kWh) keeps a day's bill in cents far below the readings in W,
#: so the database scan below cannot mistake a legitimate bill total for a reading.
CONFIG = MarketConfig(intervals_per_day=4, billing_period_intervals=4, solar_peak_w=5000,
                      aggregate_grace_intervals=1, import_prices=(1000,), export_prices=(500,))
METERS = [MeterKeys(bytes([n]) * 32) for n in (1, 2, 3)]


def genesis() -> Genesis:
    wallet = WalletKeys.generate()
    return Genesis(
        network_id=NET, genesis_time=T0, interval_s=INTERVAL_S,
        authorities=(Authority("a", DSO_KEYS.signing_key, DSO_KEYS.identity.static_key,
                               "127.0.0.1", 1),),
        validators=(Validator("v", DSO_KEYS.signing_key),),
        dso=Dso(DSO_KEYS.signing_key, wallet.spend_public.raw, wallet.view_public.raw,
                destination=DSO_DEST))


class VirtualClock:
    def __init__(self) -> None:
        self.now = float(T0)

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@dataclass
class Hub:
    """Garlic in memory: ``send`` hands the bytes to the recipient's ``market`` handler."""

    handlers: dict[bytes, Handler] = field(default_factory=dict)
    sent: int = 0

    def port(self, destination: bytes) -> Port:
        return Port(self, destination)


@dataclass
class Port:
    hub: Hub
    destination: bytes

    def subscribe(self, protocol: GarlicProtocol, handler: Handler) -> None:
        assert protocol is GarlicProtocol.MARKET
        self.hub.handlers[self.destination] = handler

    async def send(self, to: bytes, data: bytes,
                   protocol: GarlicProtocol = GarlicProtocol.APP) -> bytes:
        assert protocol is GarlicProtocol.MARKET
        self.hub.sent += 1
        self.hub.handlers[to](self.destination, data)
        return b"\x00" * 8


@dataclass
class Network:
    clock: VirtualClock
    hub: Hub
    dso: MeteringService
    meters: list[MeteringService]

    @property
    def all(self) -> list[MeteringService]:
        return [self.dso, *self.meters]

    async def settle(self) -> None:
        """Until no service has a message left (handling one may queue others)."""
        while any(s.queued for s in self.all):
            for service in self.all:
                await service.settled()

    async def end_interval(self, interval: int) -> None:
        """Move the clock just past the end of ``interval`` and run every deadline."""
        self.clock.now = T0 + (interval + 1) * INTERVAL_S + 1
        for service in self.all:
            await service.run_due()
        await self.settle()


def book() -> CapacityBook:
    book = CapacityBook()
    for keys in METERS:
        book.register(Registration.issue(
            DSO_KEYS, NET, meter_key=keys.meter_key,
            credential_key=RouterKeys.generate().signing_key, max_generation_w=5000,
            max_consumption_w=8000, feeder="f1"))
    return book


@contextlib.asynccontextmanager
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    clock = VirtualClock()
    hub = Hub()
    g = genesis()
    registry = book()
    async with contextlib.AsyncExitStack() as stack:
        async def node(name: str, destination: bytes, meter: MeterKeys | None) -> MeteringService:
            store = await stack.enter_async_context(
                Store(tmp_path / f"{name}.db", METERING_MIGRATIONS))
            channel = MarketChannel(hub.port(destination))
            is_dso = meter is None
            return await stack.enter_async_context(MeteringService(
                genesis=g, garlic=channel.metering, store=store, clock=clock, config=CONFIG,
                meter_keys=meter, dso=DSO_KEYS if is_dso else None,
                registrations=(lambda: registrations_of(registry)) if is_dso else None))

        dso = await node("dso", DSO_DEST, None)
        meters = [await node(f"meter{n}", bytes([n]) * 32, keys)
                  for n, keys in enumerate(METERS, 1)]
        net = Network(clock, hub, dso, meters)
        clock.now = T0 + 1
        for service in net.all:
            await service.run_due()
        await net.settle()
        yield net


def distinctive_readings(net: Network, last: int) -> set[int]:
    """Every reading value of every meter large enough not to be a count or an index."""
    values: set[int] = set()
    for meter in net.meters:
        for r in meter.readings(0, last):
            values |= {abs(r["consumption_w"]), abs(r["production_w"]), abs(r["net_w"])}
    return {v for v in values if v >= 100}


def integers_in_database(path: Path) -> set[int]:
    found: set[int] = set()
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                for cell in row:
                    if isinstance(cell, int):
                        found.add(abs(cell))
                    elif isinstance(cell, str):
                        found |= {int(t) for t in re.findall(r"\d+", cell)}
    return found


async def test_aggregates_bills_and_privacy(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="petranode")
    async with network(tmp_path) as net:
        for interval in range(4):  # one billing period = one simulated day of 4 intervals
            await net.end_interval(interval)
        await net.end_interval(4)  # the grace of interval 3 passes

        # Aggregates: the DSO's total per interval is the sum of the meters' readings.
        for interval in range(4):
            expected = sum(m.readings(interval, interval)[0]["net_w"] for m in net.meters)
            assert await net.dso.aggregate("f1", interval) == expected
        assert await net.dso.aggregate("f1", 99) is None

        # Bills: one per meter for intervals 0..3, all verified, acknowledged to the meters.
        bills = await net.dso.bills()
        assert sorted(b["meter_key"] for b in bills) == sorted(k.meter_key.hex() for k in METERS)
        assert {(b["first_interval"], b["last_interval"]) for b in bills} == {(0, 3)}
        for meter in net.meters:
            status = meter.meter_status()
            assert status["bills_sent"] == status["bills_verified"] == 1
            assert status["intervals_committed"] == 5

        counts = await net.dso.metering()
        assert counts["commitments"] == 15
        assert counts["aggregates_complete"] == 5
        assert counts["bills_verified"] == 3
        assert counts["bills_rejected"] == {}

        # A tampered bill (Wc raised by one, re-signed by the meter's own key) is rejected.
        keys = METERS[0]
        honest = Meter(keys, SyntheticProfile(NET.encode(), keys.meter_key, CONFIG.solar_peak_w,
                                              intervals_per_day=4), NET)
        policy = PricePolicy.issue(DSO_KEYS, NET, first_interval=0, last_interval=3,
                                   intervals_per_day=4,
                                   import_prices=CONFIG.slot_prices(CONFIG.import_prices),
                                   export_prices=CONFIG.slot_prices(CONFIG.export_prices))
        for interval in range(4):
            honest.commit(interval)
        bill = make_bill(honest, policy, DSO_KEYS.signing_key, 0, 3)
        assert any(b["total_cents"] == bill.total_cents for b in bills)  # same as the service's
        forged = Bill(bill.meter_key, bill.policy_id, 0, 3, bill.consumption_total + 1,
                            bill.production_total, bill.total_cents, bill.consumption_mask,
                            bill.production_mask, bytes(64))
        forged = sign_bill(forged, keys.sign(BILL_DOMAIN, NET, forged.signed_body()))
        await Port(net.hub, bytes([1]) * 32).send(
            DSO_DEST, RecordMessage("bill", forged.encode()).encode(), GarlicProtocol.MARKET)
        await net.settle()
        counts = await net.dso.metering()
        assert counts["bills_rejected"] == {"opening_mismatch": 1}
        assert counts["bills_verified"] == 3
        assert net.meters[0].meter_status()["bills_rejected"] == 1

        secrets = distinctive_readings(net, 4)
    assert secrets
    # Nothing per meter and interval in clear: not in the DSO's database ...
    assert not secrets & integers_in_database(tmp_path / "dso.db")
    # ... nor in any log line of any node.
    logged = {int(t) for rec in caplog.records for t in re.findall(r"(?<![0-9a-f])\d+(?![0-9a-f])",
                                                                   rec.getMessage())}
    assert not secrets & logged
    assert caplog.records  # the services did log


async def test_a_missing_meter_makes_the_aggregate_unavailable(tmp_path: Path) -> None:
    async with network(tmp_path) as net:
        silent = net.meters[2]
        await net.end_interval(0)
        # Meter 3 stops reporting: its deadlines no longer run.
        net.meters.remove(silent)
        await net.end_interval(1)
        await net.end_interval(2)  # interval 1's grace has passed
        assert await net.dso.aggregate("f1", 0) is not None
        assert await net.dso.aggregate("f1", 1) is None
        counts = await net.dso.metering()
        assert counts["aggregates_unavailable"] >= 1


async def test_meter_readings_are_for_committed_intervals_only(tmp_path: Path) -> None:
    async with network(tmp_path) as net:
        await net.end_interval(0)
        meter = net.meters[0]
        assert [r["interval"] for r in meter.readings(0, 10)] == [0]
        status = meter.meter_status()
        assert status["first_interval"] == 0 and status["last_interval"] == 0
