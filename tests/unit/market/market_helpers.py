"""An in-memory ledger with the market's kinds: a DSO, funded prosumers, blocks with times."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import cache

from petranode.crypto.keys import WalletKeys
from petranode.ledger.assets import MONEY, Asset, AssetKind
from petranode.ledger.state import LedgerSnapshot, OutputRecord, StateDelta, apply_block_txs
from petranode.ledger.tx import LedgerParams, Tx, encode_tx, validate_tx
from petranode.ledger.wallet import Payment, Wallet, build_issuance
from petranode.market.intervals import MarketClock
from petranode.market.trade_builder import RingOptions
from petranode.market.trade_kinds import (
    MARKET_REGISTRY,
    MarketBook,
    MarketDelta,
    MarketSnapshot,
)
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.net.identity import RouterKeys

NETWORK = "petranode-test"
BLOCK_SECONDS = 10.0
RING = 4
INTERVAL = 10
#: 15-minute intervals from the epoch; gates close 5 minutes before an interval starts.
CLOCK = MarketClock(genesis_ms=0, interval_ms=900_000, gate_lead_ms=300_000,
                    clearing_ms=60_000, settlement_lag_ms=120_000)
GATE = CLOCK.gate_closure(INTERVAL)
#: Block times start an hour before the gate closes.
T0 = GATE - 3_600_000
PRODUCTION = Asset(AssetKind.PRODUCTION, INTERVAL, INTERVAL)
CONSUMPTION = Asset(AssetKind.CONSUMPTION, INTERVAL, INTERVAL)
PRODUCTION_ID = PRODUCTION.asset_id
CONSUMPTION_ID = CONSUMPTION.asset_id
MONEY_ID = MONEY.asset_id
NAMES = ("seller", "buyer", "filler")


@cache
def dso() -> RouterKeys:
    return RouterKeys.generate()


@cache
def wallet_keys(name: str) -> WalletKeys:
    return WalletKeys.generate()


def params() -> LedgerParams:
    return LedgerParams(NETWORK, dso().signing_key, min_ring_size=RING)


class MarketChain:
    """A whole ledger and market book in memory; also the wallets' decoy source."""

    def __init__(self) -> None:
        self.params = params()
        self.ledger = LedgerSnapshot()
        self.book = MarketBook()
        self.view = MarketSnapshot(self.ledger, self.book, CLOCK, T0)
        self.wallets = {n: Wallet(wallet_keys(n)) for n in NAMES}
        self.market_deltas: list[MarketDelta] = []

    def commit(self, txs: Sequence[Tx | bytes], *, time_ms: int | None = None) -> StateDelta:
        """Validate and apply one block at ``time_ms`` (default: 10 s after the last)."""
        self.view.time_ms = T0 + 10_000 * self.ledger.height() if time_ms is None else time_ms
        data = [t if isinstance(t, bytes) else encode_tx(t) for t in txs]
        delta = apply_block_txs(self.view, data, self.params, MARKET_REGISTRY)
        self.replay(delta)
        return delta

    def replay(self, delta: StateDelta) -> None:
        self.market_deltas.append(self.book.apply_block(delta.txs))
        self.ledger.apply(delta)
        for wallet in self.wallets.values():
            wallet.scan(delta)

    def validate(self, tx: Tx, *, time_ms: int | None = None) -> None:
        """Validate ``tx`` for the next block (at ``time_ms``) without applying it."""
        self.view.time_ms = T0 + 10_000 * self.ledger.height() if time_ms is None else time_ms
        validate_tx(tx, self.view, self.params)

    @property
    def now(self) -> float:
        return self.ledger.height() * BLOCK_SECONDS

    def output_times(self, asset_id: bytes) -> list[float]:
        return [o.height * BLOCK_SECONDS for o in self.ledger.outputs_of(asset_id)]

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self.ledger.output(asset_id, global_index)

    def opts(self, seed: int = 1) -> RingOptions:
        return RingOptions(NETWORK, RING, self.now, unlock_time=0.0,
                           random_source=random.Random(seed))


#: (recipient, asset, amount) of the two funding issuances.
_MONEY = [("seller", 1_000), ("seller", 1_000), ("buyer", 5_000), ("buyer", 5_000)] + [
    ("filler", 700)] * 4
_ENERGY = ([("seller", PRODUCTION_ID, 1_000)] * 2 + [("buyer", CONSUMPTION_ID, 1_000)] * 2
           + [("filler", PRODUCTION_ID, 500)] * 3 + [("filler", CONSUMPTION_ID, 500)] * 3)


@cache
def _funding() -> tuple[StateDelta, ...]:
    chain = MarketChain()
    money = [Payment(wallet_keys(n).address, MONEY_ID, a) for n, a in _MONEY]
    energy = [Payment(wallet_keys(n).address, asset, a) for n, asset, a in _ENERGY]
    return (chain.commit([build_issuance(dso(), money, network_id=NETWORK)]),
            chain.commit([build_issuance(dso(), energy, network_id=NETWORK)]))


def funded() -> MarketChain:
    """A fresh ledger where the DSO funded the seller (production, money), the buyer
    (consumption, money) and filler outputs of every asset for rings."""
    chain = MarketChain()
    for delta in _funding():
        chain.replay(delta)
    return chain


class FakeGarlic:
    """What the market channel needs of the garlic service: one receiver per protocol."""

    def __init__(self) -> None:
        self.handlers: dict[GarlicProtocol, Callable[[bytes, bytes], None]] = {}

    def subscribe(self, protocol: GarlicProtocol, handler: Callable[[bytes, bytes], None]) -> None:
        assert protocol not in self.handlers
        self.handlers[protocol] = handler

    async def send(self, to: bytes, data: bytes,
                   protocol: GarlicProtocol = GarlicProtocol.APP) -> bytes:
        return b""
