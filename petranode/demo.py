"""``petranode demo``: a day of private peer-to-peer energy trading on a fresh local testnet
(SPEC §2, §4.7, §4.8, §4.10; issue 7 item 10).

Ten real node processes: the DSO (also a validator), three validators, six households —
three with solar panels that sell their surplus, three that buy. The households' energy
managers are played by this driver, through each node's control socket only; everything
between nodes goes over Noise links, garlic tunnels and the ledger.

For every trading interval ``t`` (one simulated hour, accelerated to a few seconds), starting
a few intervals ahead of delivery:

1. each household reads its own meter's forecast (``meter.forecast``, never sent anywhere);
2. sellers ask the DSO, through garlic, for production assets for ``t`` (their surplus;
   ``prosumer3`` promises two and a half times its surplus, the household that will
   under-deliver),
   buyers for consumption assets (their deficit);
3. sellers post reputation-gated SELL offers (tier 5000: an anonymous proof that their score
   is at least 5000);
4. each buyer accepts a different offer, cheapest first, for what it needs;
5. after gate closure every node reports each of its trades cleared or failed.

After each interval the sellers' meters report delivery to the DSO, which settles (a shortfall
is a penalty and costs reputation); at each reputation epoch the DSO signs new tier lists, so
the over-promising seller drops out of tier 5000 and its next gated offer is refused. Meters
commit every interval, bill the billing period and mask their shares for the feeders'
aggregates all along. The driver then prints what every household ended with and what the DSO
saw, and last ``demo: N trades cleared, M failed, K bills verified``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from petranode.config import Role
from petranode.errors import PetranodeError
from petranode.genesis import Params
from petranode.keystore import load_keys
from petranode.ledger.assets import Asset, AssetKind
from petranode.market.meter import MeterKeys
from petranode.market.service import credential_from_spend
from petranode.market.settings import MarketConfig
from petranode.rpc.client import call_sync
from petranode.rpc.errors import RpcError, RpcUnavailable
from petranode.rpc.methods.ledger import INSUFFICIENT_FUNDS
from petranode.testnet import Testnet, default_layout

DSO: Final = "dso"
#: Seconds per interval (one simulated hour).
DEMO_INTERVAL_S: Final = 6
DEMO_INTERVALS: Final = 24
#: Intervals ahead of delivery the driver starts trading one.
LEAD_INTERVALS: Final = 4
GATED_TIER: Final = 5000
#: The synthetic profiles' weather: a sunny day 1 (the day the demo trades), a fair day 2.
WEATHER_SEED: Final = "petranode-demo"
#: Hour of the simulated day trading starts at.
DAWN_HOUR: Final = 6
#: Intervals the start-up (processes, registration, first money) takes, about.
SETUP_INTERVALS: Final = 4
#: Below this forecast surplus or deficit a household does not trade (W).
MIN_TRADE_W: Final = 100
OVERSELL_PERCENT: Final = 250
POLL_S: Final = 0.25
RPC_TIMEOUT_S: Final = 45.0
#: Seconds the report waits for the bills of every ended billing period.
BILL_WAIT_S: Final = 90


@dataclass(frozen=True, slots=True)
class Household:
    name: str
    solar_peak_w: int
    base_load_w: int
    feeder: str
    #: Cents per W·interval a seller asks; 0 for a buyer.
    price: int = 0
    oversells: bool = False

    @property
    def sells(self) -> bool:
        return self.price > 0


HOUSEHOLDS: Final = (
    Household("prosumer1", 5000, 300, "north", price=2),
    Household("prosumer2", 4500, 350, "north", price=3),
    # Small, shaded panels behind a large inverter, a cheap price and big promises.
    Household("prosumer3", 3000, 300, "south", price=1, oversells=True),
    # Charges an electric car during the day.
    Household("prosumer4", 0, 2500, "north"),
    Household("prosumer5", 0, 800, "south"),
    Household("prosumer6", 800, 900, "south"),
)


@dataclass
class IntervalLog:
    """What happened to one trading interval, as the driver saw it."""

    interval: int
    offers: int = 0
    accepts: int = 0
    refused: list[str] = field(default_factory=list)


class DemoError(PetranodeError):
    pass


class Demo:
    """Drives a fresh testnet through ``intervals`` trading intervals; see the module docs."""

    def __init__(self, directory: Path, *, intervals: int = DEMO_INTERVALS,
                 interval_s: int = DEMO_INTERVAL_S, out: TextIO) -> None:
        self.net = Testnet(directory)
        self.intervals = intervals
        self.interval_s = interval_s
        self.out = out
        self.logs: dict[int, IntervalLog] = {}
        self._printed: set[int] = set()
        self._billing_period = MarketConfig().billing_period_intervals
        self._lock = threading.Lock()
        self._genesis_ms = 0
        self._gate_lead_ms = 0
        self._clearing_ms = 0

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        started = time.monotonic()
        self._up()
        try:
            self._setup()
            first = self._interval_at(self._now_ms()) + LEAD_INTERVALS + 1
            last = first + self.intervals - 1
            self._say(f"trading intervals {first}..{last} ({self.interval_s}s each, "
                      f"one simulated hour)")
            self._trade(first, last)
            summary = self._report(first, last)
        finally:
            self.net.down()
        self._say(f"run time {time.monotonic() - started:.0f}s")
        self._say(f"demo: {summary['cleared']} trades cleared, {summary['failed']} failed, "
                  f"{summary['bills']} bills verified")
        return summary

    def _up(self) -> None:
        specs = default_layout(4 + len(HOUSEHOLDS))
        if [s.name for s in specs if Role.PROSUMER in s.roles] != [h.name for h in HOUSEHOLDS]:
            raise DemoError("the testnet layout does not match the demo's households")
        # Cover traffic every 20 s per household on average: steady, and light enough for
        # ten processes on two cores.
        market = {h.name: MarketConfig(solar_peak_w=h.solar_peak_w, base_load_w=h.base_load_w,
                                       profile_seed=WEATHER_SEED, cover_tx_interval_s=20.0)
                  for h in HOUSEHOLDS}
        # Interval i is hour i mod 24 of the simulated day. The genesis is dated back so that
        # trading starts at dawn, after setup and the trading lead.
        intervals_before_dawn = (DAWN_HOUR - SETUP_INTERVALS - LEAD_INTERVALS - 1) % 24
        genesis = self.net.generate(
            # A reputation epoch per interval: a settled shortfall shows in the next lists.
            specs, interval_s=self.interval_s, params=Params(reputation_epoch_intervals=1),
            market=market,
            genesis_time=int(time.time()) - intervals_before_dawn * self.interval_s)
        self._genesis_ms = genesis.genesis_time * 1000
        self._gate_lead_ms = genesis.params.gate_lead_ms
        self._clearing_ms = genesis.params.clearing_ms
        t0 = time.monotonic()
        self._register_before_meters_start()
        self.net.up(len(specs))
        self._say(f"testnet: {len(specs)} nodes up in {time.monotonic() - t0:.1f}s "
                  f"({self.net.dir}): 1 DSO, 3 validators, {len(HOUSEHOLDS)} households")

    def _register_before_meters_start(self) -> None:
        """The DSO comes up first and registers every household from the keys it was handed
        at installation, so each meter's first commitments already find it registered (the
        DSO keeps commitments of registered meters only)."""
        self.net.start(DSO)
        self._wait("the DSO's control socket", lambda: self.net.try_status(DSO) is not None,
                   30)
        for h in HOUSEHOLDS:
            keys = load_keys(self.net.node_dir(h.name))
            spend, _ = keys.wallet()
            self.rpc(DSO, "dso.register", {
                "meter_key": MeterKeys(keys.meter_seed()).signing_key.hex(),
                "credential_key": credential_from_spend(spend).public.raw.hex(),
                "max_generation_w": self._capacity(h), "max_consumption_w": 10_000,
                "feeder": h.feeder})
        for feeder in {h.feeder for h in HOUSEHOLDS}:
            self.rpc(DSO, "dso.feeder_limit", {"feeder": feeder, "max_production_w": 50_000,
                                               "max_consumption_w": 50_000})

    def _setup(self) -> None:
        for h in HOUSEHOLDS:
            # What the DSO registered is what each node reports as its own identity.
            identity = self.rpc(h.name, "market.identity")
            registered = self.rpc(DSO, "dso.settlement")["prosumers"]
            if identity["meter_key"] not in {r["meter_key"] for r in registered}:
                raise DemoError(f"{h.name}'s meter is not the one the DSO registered")
        dso_destination = self.rpc(DSO, "dest.address")
        self._wait("every household finds the DSO's destination", lambda: all(
            self.rpc(h.name, "netdb.lookup", {"key": dso_destination}) is not None
            for h in HOUSEHOLDS), 60)
        self._wait("the first issuance in every wallet", lambda: all(
            self.rpc(h.name, "wallet.balance").get("money", 0) > 0 for h in HOUSEHOLDS), 60)
        self._split_money()
        self._say(f"DSO registered {len(HOUSEHOLDS)} households on 2 feeders; "
                  f"every wallet holds its first money")

    def _split_money(self) -> None:
        """Two self-payments per household, so concurrent offers and accepts (and cover
        transactions) do not wait for each other's change."""
        for _ in range(2):
            for h in HOUSEHOLDS:
                balance = self.rpc(h.name, "wallet.balance")["money"]
                address = self.rpc(h.name, "wallet.address")
                self._retry(lambda h=h, a=address, b=balance: self.rpc(  # type: ignore[misc]
                    h.name, "wallet.transfer", {"to": a, "amount": b // 3}), 30)
            self._wait("split money final", lambda: all(
                self.rpc(h.name, "ledger.status")["mempool"] == 0 for h in HOUSEHOLDS), 60)

    def _trade(self, first: int, last: int) -> None:
        lead_ms = LEAD_INTERVALS * self.interval_s * 1000
        with ThreadPoolExecutor(max_workers=LEAD_INTERVALS + 2) as pool:
            jobs: list[Future[None]] = []
            for interval in range(first, last + 1):
                self._sleep_until(self._start_ms(interval) - lead_ms)
                jobs.append(pool.submit(self._trade_interval, interval))
                self._print_finished(first, interval - LEAD_INTERVALS - 1)
            for job in jobs:
                job.result()
        for interval in range(max(first, last - LEAD_INTERVALS - 1), last + 1):
            self._sleep_until(self._deadline_ms(interval) + 1000)
            self._print_finished(first, interval)

    def _trade_interval(self, interval: int) -> None:
        log = IntervalLog(interval)
        with self._lock:
            self.logs[interval] = log
        forecasts = {h.name: self.rpc(h.name, "meter.forecast",
                                      {"first": interval, "last": interval})[0]
                     for h in HOUSEHOLDS}
        sellers = {h.name: self._offer_power(h, forecasts[h.name]) for h in HOUSEHOLDS
                   if h.sells}
        sellers = {name: power for name, power in sellers.items() if power >= MIN_TRADE_W}
        buyers = {h.name: forecasts[h.name]["net_w"] for h in HOUSEHOLDS if not h.sells}
        buyers = {name: need for name, need in buyers.items() if need >= MIN_TRADE_W}
        if not sellers or not buyers:
            return
        with ThreadPoolExecutor(max_workers=len(sellers) + len(buyers)) as pool:
            asks = [pool.submit(self._request, name, AssetKind.PRODUCTION, power, interval)
                    for name, power in sellers.items()]
            bids = [pool.submit(self._request, name, AssetKind.CONSUMPTION, need, interval)
                    for name, need in buyers.items()]
            granted_sellers = [name for name, job in zip(sellers, asks) if job.result()]
            granted_buyers = [name for name, job in zip(buyers, bids) if job.result()]
            offers = [pool.submit(self._post_offer, name, sellers[name], interval, log)
                      for name in granted_sellers]
            posted = [job.result() for job in offers]
        offer_ids = [o for o in posted if o is not None]
        if not offer_ids:
            return
        for observer in granted_buyers:
            self._wait_offers_final(observer, offer_ids, interval)
        self._accept_offers(granted_buyers, buyers, interval, log)

    @staticmethod
    def _capacity(household: Household) -> int:
        """Registered generation capacity: the panels' peak (an over-promising household's
        inverter is larger than its shaded panels deliver)."""
        peak = max(1, household.solar_peak_w)
        return peak * OVERSELL_PERCENT // 100 if household.oversells else peak

    def _offer_power(self, household: Household, forecast: dict[str, int]) -> int:
        surplus = max(0, -forecast["net_w"])
        if household.oversells:
            surplus = surplus * OVERSELL_PERCENT // 100
        return min(surplus, self._capacity(household))

    def _request(self, name: str, kind: AssetKind, amount: int, interval: int) -> bool:
        try:
            answer = self.rpc(name, "market.request", {"kind": kind.value, "amount": amount,
                                                      "first_interval": interval,
                                                      "last_interval": interval})
        except RpcError as exc:
            self._note(interval, f"{name} request: {exc.message}")
            return False
        if not answer["granted"]:
            self._note(interval, f"{name} request refused: {answer['reason']}")
            return False
        asset = Asset(kind, interval, interval).asset_id.hex()
        if self._poll(lambda: self.rpc(name, "wallet.balance").get(asset, 0) >= amount,
                      self._gate_ms(interval) - 1500):
            return True
        self._note(interval, f"{name}'s {kind.value} not final in time")
        return False

    def _post_offer(self, name: str, power: int, interval: int, log: IntervalLog) -> str | None:
        price = next(h.price for h in HOUSEHOLDS if h.name == name)
        params = {"side": "sell", "interval": interval, "power_w": power, "price": price,
                  "tier": GATED_TIER}
        try:
            offer = self.rpc(name, "market.offer", params)
        except RpcError as exc:
            self._note(interval, f"{name}'s gated offer refused: {exc.message}")
            return None
        with self._lock:
            log.offers += 1
        return str(offer["offer_id"])

    def _wait_offers_final(self, observer: str, offer_ids: Sequence[str], interval: int) -> None:
        wanted = set(offer_ids)

        def visible() -> bool:
            seen = {o["offer_id"] for o in self.rpc(observer, "market.offers", {
                "first_interval": interval, "last_interval": interval})}
            return wanted <= seen
        self._poll(visible, self._gate_ms(interval) - 1000)

    def _accept_offers(self, buyers: Sequence[str], needs: dict[str, int], interval: int,
                       log: IntervalLog) -> None:
        """Each buyer takes a different offer, the largest need the cheapest offer (two accepts
        of one offer in one block would conflict, and the second would fail)."""
        if not buyers:
            return
        buyers = sorted(buyers, key=lambda b: -needs[b])
        offers = self.rpc(buyers[0], "market.offers",
                          {"first_interval": interval, "last_interval": interval})
        offers = sorted((o for o in offers if o["remaining_w"] > 0),
                        key=lambda o: (o["price"], -o["remaining_w"]))
        with ThreadPoolExecutor(max_workers=len(buyers)) as pool:
            jobs = [pool.submit(self._accept, buyer, offer,
                                min(needs[buyer], offer["remaining_w"]), interval)
                    for buyer, offer in zip(buyers, offers)]
            accepted = sum(1 for job in jobs if job.result())
        with self._lock:
            log.accepts += accepted

    def _accept(self, buyer: str, offer: dict[str, Any], power: int, interval: int) -> bool:
        def attempt() -> bool:
            try:
                self.rpc(buyer, "market.accept", {"offer_id": offer["offer_id"],
                                                  "power_w": power})
                return True
            except RpcError as exc:
                if exc.code == INSUFFICIENT_FUNDS:
                    return False  # our money is in a pooled transaction: try again
                self._note(interval, f"{buyer} accept refused: {exc.message}")
                raise
        try:
            if self._poll(attempt, self._gate_ms(interval) - 500):
                return True
        except RpcError:
            return False
        self._note(interval, f"{buyer} had no free money before the gate")
        return False

    # -- reporting ----------------------------------------------------------------------------

    def _print_finished(self, first: int, interval: int) -> None:
        if interval < first or interval not in self.logs or interval in self._printed:
            return
        self._printed.add(interval)
        log = self.logs[interval]
        ledger = self.rpc(DSO, "market.interval", {"interval": interval})
        price = (f"{ledger['avg_price']:.2f} c/W" if ledger["avg_price"] is not None
                 else "–")
        hour = interval % 24
        latencies = [t["latency_ms"] for h in HOUSEHOLDS if h.sells
                     for t in self.rpc(h.name, "market.trades", {"interval": interval})
                     if t["role"] == "maker" and t["latency_ms"] is not None]
        latency = (f", offer→final {statistics.median(latencies) / 1000:.1f}s"
                   if latencies else "")
        self._say(f"interval {interval:3d} ({hour:02d}:00): {log.offers} offers, "
                  f"{ledger['trades']} trades cleared, {ledger['volume_w']:5d} W at {price}"
                  f"{latency}" + (f"; {'; '.join(log.refused)}" if log.refused else ""))

    def _report(self, first: int, last: int) -> dict[str, int]:
        # Bills go out when the billing period's last interval is committed; settlement
        # after each interval's settlement lag.
        # Meters bill every period that has ended (they meter from period 0).
        periods = (last + 1) // self._billing_period
        expected = periods * len(HOUSEHOLDS)
        if not self._poll(lambda: len(self.rpc(DSO, "dso.bills")) >= expected,
                          self._now_ms() + BILL_WAIT_S * 1000):
            self._say(f"(only {len(self.rpc(DSO, 'dso.bills'))} of {expected} bills verified "
                      f"after {BILL_WAIT_S}s; meter status: "
                      + ", ".join(f"{h.name} {self.rpc(h.name, 'meter.status')['counters']}"
                                  for h in HOUSEHOLDS) + ")")
        cleared: set[str] = set()
        failed: set[str] = set()
        latencies: list[int] = []
        self._say("")
        self._say("households (final wallets, own trades as their nodes report them):")
        for h in HOUSEHOLDS:
            trades = [t for t in self.rpc(h.name, "market.trades") if first <= t["interval"] <= last]
            ok = [t for t in trades if t["status"] == "cleared"]
            bad = [t for t in trades if t["status"] == "failed"]
            cleared.update(t["trade_id"] for t in ok)
            failed.update(t["trade_id"] for t in bad)
            latencies += [t["latency_ms"] for t in ok if t["role"] == "maker"]
            balance = self.rpc(h.name, "wallet.balance")
            proceeds = sum(t["proceeds_cents"] for t in ok)
            bought = sum(t["power_w"] for t in ok if t["side"] == "buy")
            sold = sum(t["power_w"] for t in ok if t["side"] == "sell")
            meter = self.rpc(h.name, "meter.status")
            self._say(f"  {h.name}: money {balance['money']} c + proceeds {proceeds} c; sold {sold} W, bought {bought} W; "
                      f"trades {len(ok)} cleared, {len(bad)} failed; "
                      f"bills verified {meter['bills_verified']}")
        bills = self.rpc(DSO, "dso.bills")
        settlement = self.rpc(DSO, "dso.settlement")
        metering = self.rpc(DSO, "dso.metering")
        self._say("")
        self._say("what the DSO saw:")
        notices = {topic: self.rpc(DSO, "market.notices", {"topic": topic})
                   for topic in ("feeder_limit", "price_policy")}
        self._say(f"  registrations {len(HOUSEHOLDS)}, asset grants "
                  f"{self.rpc(DSO, 'market.stats')['grants']}; on the ledger: "
                  f"{len(notices['feeder_limit'])} feeder limits, "
                  f"{len(notices['price_policy'])} price policies")
        self._say(f"  bills verified {len(bills)}: totals per household and period only, "
                  f"e.g. {bills[0]['total_cents'] if bills else '–'} c")
        for feeder in sorted({h.feeder for h in HOUSEHOLDS}):
            totals = [self.rpc(DSO, "dso.aggregate", {"feeder": feeder, "interval": i})
                      for i in range(first, min(last, first + 23) + 1)]
            known = [t for t in totals if t is not None]
            self._say(f"  feeder {feeder}: net load per interval (masked sum of meters), "
                      f"{len(known)} of {len(totals)} intervals, e.g. "
                      f"{', '.join(str(t) for t in known[:6])} W")
        self._say(f"  settlement: {settlement['intervals_settled']} intervals, "
                  f"{settlement['trades_settled']} trades, shortfall "
                  f"{settlement['shortfall_w']} W, penalties {settlement['penalty_cents']} c")
        for row in settlement["prosumers"]:
            self._say(f"    meter {row['meter_key'][:12]}…: reputation {row['score']}, "
                      f"debt {row['debt_cents']} c")
        self._say(f"  per meter and interval the DSO holds only hiding commitments "
                  f"({metering['commitments']}); feeder totals "
                  f"{metering['aggregates_complete']} (unavailable "
                  f"{metering['aggregates_unavailable']}); bill totals per period "
                  f"{metering['bills_verified']}")
        if latencies:
            self._say(f"clearing latency (offer posted → trade final): p50 "
                      f"{statistics.median(latencies) / 1000:.1f}s, max "
                      f"{max(latencies) / 1000:.1f}s over {len(latencies)} trades")
        return {"cleared": len(cleared), "failed": len(failed), "bills": len(bills)}

    # -- helpers ------------------------------------------------------------------------------

    def rpc(self, name: str, method: str, params: dict[str, Any] | None = None) -> Any:
        return call_sync(self.net.socket_path(name), method, params, timeout=RPC_TIMEOUT_S)

    def _note(self, interval: int, text: str) -> None:
        with self._lock:
            self.logs.setdefault(interval, IntervalLog(interval)).refused.append(text)

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    def _start_ms(self, interval: int) -> int:
        return self._genesis_ms + interval * self.interval_s * 1000

    def _gate_ms(self, interval: int) -> int:
        return self._start_ms(interval) - self._gate_lead_ms

    def _deadline_ms(self, interval: int) -> int:
        return self._gate_ms(interval) + self._clearing_ms

    def _interval_at(self, now_ms: int) -> int:
        return (now_ms - self._genesis_ms) // (self.interval_s * 1000)

    def _sleep_until(self, at_ms: int) -> None:
        delay = (at_ms - self._now_ms()) / 1000
        if delay > 0:
            time.sleep(delay)

    def _poll(self, condition: Callable[[], bool], until_ms: int) -> bool:
        """Poll ``condition`` until it holds (True) or the wall clock passes ``until_ms``."""
        while True:
            try:
                if condition():
                    return True
            except RpcUnavailable:
                pass
            if self._now_ms() >= until_ms:
                return False
            time.sleep(POLL_S)

    def _wait(self, what: str, condition: Callable[[], bool], timeout_s: float) -> None:
        if not self._poll(condition, self._now_ms() + int(timeout_s * 1000)):
            raise DemoError(f"timed out waiting for {what}")

    def _retry(self, action: Callable[[], object], timeout_s: float) -> None:
        def attempt() -> bool:
            try:
                action()
                return True
            except RpcError:
                return False
        if not self._poll(attempt, self._now_ms() + int(timeout_s * 1000)):
            raise DemoError("an action kept failing")


def run_demo(directory: Path, *, intervals: int, interval_s: int, out: TextIO) -> dict[str, int]:
    if Testnet(directory).exists():
        raise DemoError(f"{directory} already holds a testnet: the demo needs a fresh one")
    return Demo(directory, intervals=intervals, interval_s=interval_s, out=out).run()

