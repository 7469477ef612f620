"""Issue 7 on real processes: anonymous offers, atomic accepts, gate closure, settlement from
the meter's delivery report, reputation and gated offers, cover transactions (SPEC §4.7).

A 7-node testnet (DSO, 3 validators, 3 prosumers) with 4-second intervals and reputation
epochs of two intervals. The DSO's feeder limit and price policy appear on the ledger.
prosumer1's meter plays a recorded profile that exports 1500 W every interval; prosumer2 buys.
prosumer1 sells 2500 W with a reputation-gated offer (tier 5000), prosumer2 takes it all, both
nodes report the trade cleared; the same production cannot be offered twice; an accept after
gate closure is refused. After the interval prosumer1's meter reports 1500 W delivered: the
DSO settles a 1000 W shortfall, a penalty and a lower score, and in the next epoch
prosumer1's gated offer is refused. prosumer3 sends cover transactions. prosumer2 survives
kill -9 with its trade and wallet. Everything through RPC, polled with deadlines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import rpc, wait_for

from petranode.genesis import Params
from petranode.ledger.assets import Asset, AssetKind
from petranode.market.settings import MarketConfig
from petranode.rpc.errors import RpcError
from petranode.rpc.methods.trading import (
    OUT_OF_WINDOW,
    REPUTATION_PROOF_REJECTED,
    TRADE_UNAVAILABLE,
)
from petranode.testnet import Testnet, default_layout

pytestmark = pytest.mark.integration

INTERVAL_S = 4
EXPORT_W = 1500
SOLD_W = 2500
PRICE = 2
TIER = 5000




def rpc_error(net: Testnet, name: str, method: str, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as info:
        rpc(net, name, method, params)
    return info.value


@pytest.fixture
def net(short_tmp: Path) -> Iterator[Testnet]:
    testnet = Testnet(short_tmp / "net")
    specs = default_layout(7)
    profile = "profile.csv"
    market = {
        "prosumer1": MarketConfig(profile_csv=profile, cover_tx_interval_s=0),
        "prosumer2": MarketConfig(cover_tx_interval_s=0),
        "prosumer3": MarketConfig(cover_tx_interval_s=2.0),
    }
    testnet.generate(specs, interval_s=INTERVAL_S, params=Params(reputation_epoch_intervals=2),
                     market=market)
    # Production 2000 W against a 500 W load: 1500 W exported, every interval.
    (testnet.node_dir("prosumer1") / profile).write_text(
        "interval,production_w,consumption_w\n0,2000,500\n", encoding="utf-8")
    try:
        testnet.up(len(specs))
        yield testnet
    finally:
        testnet.down()


def _register(net: Testnet) -> None:
    for name, capacity in (("prosumer1", 5000), ("prosumer2", 100)):
        identity = rpc(net, name, "market.identity")
        rpc(net, "dso", "dso.register", {**identity, "max_generation_w": capacity,
                                         "max_consumption_w": 8000, "feeder": "f1"})
    rpc(net, "dso", "dso.feeder_limit", {"feeder": "f1", "max_production_w": 100_000,
                                         "max_consumption_w": 100_000})
    destination = rpc(net, "dso", "dest.address")
    wait_for("the DSO's destination", lambda: all(
        rpc(net, name, "netdb.lookup", {"key": destination}) is not None
        for name in ("prosumer1", "prosumer2")), 60)


def _grant(net: Testnet, name: str, kind: AssetKind, amount: int, interval: int) -> None:
    answer = rpc(net, name, "market.request", {"kind": kind.value, "amount": amount,
                                               "first_interval": interval,
                                               "last_interval": interval})
    assert answer["granted"], answer
    asset = Asset(kind, interval, interval).asset_id.hex()
    wait_for(f"{kind.value} for {interval} in {name}'s wallet",
             lambda: rpc(net, name, "wallet.balance").get(asset) == amount, 60)


def _gate_closed(net: Testnet, interval: int) -> bool:
    return bool(rpc(net, "dso", "market.stats")["first_open_interval"] > interval)


def _trade_status(net: Testnet, name: str, trade_id: str) -> str | None:
    for trade in rpc(net, name, "market.trades"):
        if trade["trade_id"] == trade_id:
            return str(trade["status"])
    return None


def _seller_score(net: Testnet, meter_key: str) -> int:
    rows = rpc(net, "dso", "dso.settlement")["prosumers"]
    return int(next(r["score"] for r in rows if r["meter_key"] == meter_key))


def test_trade_settlement_and_reputation_gate(net: Testnet) -> None:
    _register(net)
    # The DSO posts its feeder limits and price policies on the ledger.
    wait_for("the feeder limit and a price policy on the ledger", lambda: any(
        n["feeder"] == "f1" and n["max_production_w"] == 100_000
        for n in rpc(net, "prosumer2", "market.notices", {"topic": "feeder_limit"}))
        and rpc(net, "prosumer2", "market.notices", {"topic": "price_policy"}), 30)
    seller_key = rpc(net, "prosumer1", "market.identity")["meter_key"]
    interval = rpc(net, "dso", "market.stats")["first_open_interval"] + 3
    _grant(net, "prosumer1", AssetKind.PRODUCTION, SOLD_W + 500, interval)
    _grant(net, "prosumer2", AssetKind.CONSUMPTION, SOLD_W, interval)

    offer = rpc(net, "prosumer1", "market.offer", {
        "side": "sell", "interval": interval, "power_w": SOLD_W, "price": PRICE,
        "tier": TIER})
    # What backs the offer is escrowed: the same production cannot back a second one.
    twice = rpc_error(net, "prosumer1", "market.offer", {
        "side": "sell", "interval": interval, "power_w": SOLD_W, "price": PRICE})
    assert twice.code == TRADE_UNAVAILABLE

    wait_for("the offer on the ledger", lambda: any(
        o["offer_id"] == offer["offer_id"] and o["tier"] == TIER
        for o in rpc(net, "prosumer2", "market.offers")), 30)
    trade = rpc(net, "prosumer2", "market.accept", {"offer_id": offer["offer_id"],
                                                    "power_w": SOLD_W})
    wait_for("both sides report the trade cleared", lambda: all(
        _trade_status(net, name, trade["trade_id"]) == "cleared"
        for name in ("prosumer1", "prosumer2")), 30)
    summary = rpc(net, "prosumer2", "market.interval", {"interval": interval})
    assert summary["trades"] == 1 and summary["volume_w"] == SOLD_W
    maker = next(t for t in rpc(net, "prosumer1", "market.trades")
                 if t["trade_id"] == trade["trade_id"])
    assert maker["proceeds_cents"] == SOLD_W * PRICE

    # The rest of the production, offered ungated; after gate closure nobody may take it.
    late = rpc(net, "prosumer1", "market.offer", {
        "side": "sell", "interval": interval, "power_w": 500, "price": PRICE})
    wait_for("the second offer on the ledger", lambda: any(
        o["offer_id"] == late["offer_id"] for o in rpc(net, "prosumer2", "market.offers", {
            "first_interval": interval, "last_interval": interval})), 30)
    wait_for("gate closure", lambda: _gate_closed(net, interval), 30)
    closed = rpc_error(net, "prosumer2", "market.accept", {"offer_id": late["offer_id"],
                                                           "power_w": 100})
    assert closed.code == OUT_OF_WINDOW

    # prosumer1 exported 1500 W of the 2500 W it sold: settled as a 1000 W shortfall.
    wait_for("the interval settled", lambda: rpc(net, "dso", "dso.settlement")
             ["trades_settled"] >= 1, 60)
    settlement = rpc(net, "dso", "dso.settlement")
    assert settlement["shortfall_w"] == SOLD_W - EXPORT_W
    assert settlement["penalty_cents"] > 0
    score = _seller_score(net, seller_key)
    assert score < TIER
    assert rpc(net, "prosumer1", "market.settlement")["reports"][str(interval)] == "accepted"

    # In the next reputation epoch prosumer1 is no longer in tier 5000: its gated offer is
    # refused, an ungated one is not.
    epoch = settlement["epoch_published"]
    later = rpc(net, "dso", "market.stats")["first_open_interval"] + 3
    _grant(net, "prosumer1", AssetKind.PRODUCTION, 1000, later)
    wait_for("the next epoch's tier lists", lambda: rpc(net, "dso", "dso.settlement")
             ["epoch_published"] > epoch, 30)
    refused = rpc_error(net, "prosumer1", "market.offer", {
        "side": "sell", "interval": later, "power_w": 500, "price": PRICE, "tier": TIER})
    assert refused.code == REPUTATION_PROOF_REJECTED
    rpc(net, "prosumer1", "market.offer", {"side": "sell", "interval": later, "power_w": 500,
                                           "price": PRICE})

    # Cover: prosumer3 never traded, yet its node sent zero-value transfers to the ledger.
    wait_for("cover transactions", lambda: rpc(net, "prosumer3", "market.trading")
             ["counters"].get("cover_sent", 0) >= 2, 30)

    # kill -9 of a trading node loses nothing final: its trade and wallet come back from disk.
    before = rpc(net, "prosumer2", "market.trades")
    balance = rpc(net, "prosumer2", "wallet.balance")
    net.kill("prosumer2")
    net.start("prosumer2")
    net.wait_ready()
    assert rpc(net, "prosumer2", "market.trades") == before
    wait_for("prosumer2's wallet rescanned", lambda: rpc(
        net, "prosumer2", "wallet.balance") == balance, 30)
