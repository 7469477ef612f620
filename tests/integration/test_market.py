"""Issue 7 on real processes: registration, asset requests through garlic, issuance on the
ledger, and the capacity rule (SPEC §4.7).

A 7-node testnet (DSO, 3 validators, 3 prosumers). The DSO registers prosumer1 and posts its
feeder's limit; prosumer1 asks, through its tunnels, for production within its capacity (the
DSO grants it and the asset reaches prosumer1's wallet on the ledger), then for more than its
capacity leaves (refused, nothing issued); an unregistered prosumer is refused; a request for
an interval whose gate has closed is refused. Everything through RPC, polled with deadlines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import rpc, wait_for

from petranode.ledger.assets import Asset, AssetKind
from petranode.testnet import Testnet

pytestmark = pytest.mark.integration

NODES = 7
CAPACITY_W = 5000




@pytest.fixture
def net(short_tmp: Path) -> Iterator[Testnet]:
    testnet = Testnet(short_tmp / "net")
    try:
        testnet.up(NODES)
        yield testnet
    finally:
        testnet.down()


def _dso_reachable(net: Testnet, name: str) -> bool:
    dso_destination = rpc(net, "dso", "dest.address")
    return rpc(net, name, "netdb.lookup", {"key": dso_destination}) is not None


def _register_prosumer1(net: Testnet) -> None:
    identity = rpc(net, "prosumer1", "market.identity")
    rpc(net, "dso", "dso.register", {**identity, "max_generation_w": CAPACITY_W,
                                     "max_consumption_w": 8000, "feeder": "f1"})
    rpc(net, "dso", "dso.feeder_limit", {"feeder": "f1", "max_production_w": 100_000,
                                         "max_consumption_w": 100_000})
    wait_for("the DSO's LeaseSet", lambda: _dso_reachable(net, "prosumer1")
             and _dso_reachable(net, "prosumer2"), 60)


def test_requests_breaking_a_rule_are_refused_through_garlic(net: Testnet) -> None:
    _register_prosumer1(net)
    interval = rpc(net, "dso", "market.stats")["first_open_interval"] + 2

    over = rpc(net, "prosumer1", "market.request", {
        "kind": "production", "amount": CAPACITY_W + 1, "first_interval": interval,
        "last_interval": interval})
    assert over == {**over, "granted": False, "reason": "over_capacity", "tx": None}

    stranger = rpc(net, "prosumer2", "market.request", {
        "kind": "production", "amount": 10, "first_interval": interval,
        "last_interval": interval})
    assert stranger["granted"] is False and stranger["reason"] == "unknown_prosumer"

    closed = rpc(net, "prosumer1", "market.request", {
        "kind": "consumption", "amount": 10, "first_interval": 0, "last_interval": 0})
    assert closed["granted"] is False and closed["reason"] == "gate_closed"

    stats = rpc(net, "dso", "market.stats")
    assert stats["registrations"] == 1 and stats["grants"] == 0
    assert stats["refused_over_capacity"] == 1 and stats["refused_unknown_prosumer"] == 1


def test_a_granted_request_is_issued_on_the_ledger_within_capacity(net: Testnet) -> None:
    _register_prosumer1(net)
    interval = rpc(net, "dso", "market.stats")["first_open_interval"] + 2
    granted = rpc(net, "prosumer1", "market.request", {
        "kind": "production", "amount": 3000, "first_interval": interval,
        "last_interval": interval + 1})
    assert granted["granted"] is True and len(granted["tx"]) == 64
    asset = Asset(AssetKind.PRODUCTION, interval, interval + 1).asset_id.hex()
    wait_for("the production asset in prosumer1's wallet",
             lambda: rpc(net, "prosumer1", "wallet.balance").get(asset) == 3000, 60)

    # 3000 W of 5000 W are granted over both intervals: 2500 W more would exceed capacity in
    # the overlapping interval, even though the request names one new interval too.
    refused = rpc(net, "prosumer1", "market.request", {
        "kind": "production", "amount": 2500, "first_interval": interval + 1,
        "last_interval": interval + 2})
    assert refused["granted"] is False and refused["reason"] == "over_capacity"
    assert rpc(net, "dso", "market.stats")["grants"] == 1
