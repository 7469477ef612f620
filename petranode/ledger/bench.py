"""``petranode bench ledger``: finalized private transfers per second and finality latency on a
4-validator localhost testnet, beside the cost of verifying one transfer on one core (SPEC §6;
issue 6 benchmark).

Two figures measured in the same run:

* **Verification bound.** One private transfer (one money input with a ring of the genesis
  ``min_ring_size``, two outputs) is verified — every tier of ``validate_tx``: CLSAG, range
  proof, balance, state checks — best of several batches on one core. ``1 / cost`` is how many
  transfers per second one core could admit if it did nothing else; every validator verifies
  each transaction at least twice (pool admission and the proposal's block).
* **Network.** A testnet of the DSO, three more validators and three prosumers; the DSO's
  first issuance pays each prosumer ``OUTPUTS_PER_PROSUMER`` outputs, so each can have that
  many transfers in flight. Transfers are submitted by ``wallet.transfer`` from several
  threads; each one's finality latency runs from the RPC call to ``ledger.tx`` reporting it
  final on the submitting node (so it includes building the transfer: a CLSAG and a
  Bulletproofs+ proof). Throughput is transfers finalized over the span from the first
  submission to the last finality.

The ratio of the two shows how far consensus (a 1 s block interval, gossip, two voting
phases, one SQL transaction per block) runs below the CPU bound of verification.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TextIO

from petranode.config import Role, render_config
from petranode.crypto.keys import WalletKeys
from petranode.ledger.assets import MONEY
from petranode.ledger.state import LedgerSnapshot, OutputRecord, apply_block_txs
from petranode.ledger.tx import BASE_REGISTRY, LedgerParams, encode_tx, validate_tx
from petranode.ledger.wallet import Payment, Wallet, build_issuance, build_transfer
from petranode.market.settings import MarketConfig
from petranode.net.identity import RouterKeys
from petranode.rpc.client import call_sync
from petranode.testnet import Testnet, default_layout

NETWORK: Final = "bench-ledger"
NODES: Final = 7
OUTPUTS_PER_PROSUMER: Final = 16
TRANSFERS: Final = 96
QUICK_TRANSFERS: Final = 24
VERIFY_BATCHES: Final = 5
#: Seconds between finality polls of one transfer: fine beside finality of seconds, and
#: coarse enough that two dozen pollers do not load the nodes they measure.
POLL_S: Final = 0.25
FINALITY_TIMEOUT_S: Final = 120.0


# -- the verification bound ----------------------------------------------------------------------


class _Decoys:
    def __init__(self, view: LedgerSnapshot) -> None:
        self._view = view

    def output_times(self, asset_id: bytes) -> list[float]:
        return [float(o.height) for o in self._view.outputs_of(asset_id)]

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self._view.output(asset_id, global_index)


def verification_cost(min_ring_size: int, batches: int = VERIFY_BATCHES) -> float:
    """Seconds to verify one private transfer (all tiers), best of ``batches`` on one core."""
    dso = RouterKeys.generate()
    params = LedgerParams(NETWORK, dso.signing_key, min_ring_size=min_ring_size)
    payer, payee = WalletKeys.generate(), WalletKeys.generate()
    view = LedgerSnapshot()
    payments = [Payment(payer.address, MONEY.asset_id, 1000)] * min_ring_size
    wallet = Wallet(payer)
    for start in range(0, len(payments), 16):
        issuance = build_issuance(dso, payments[start:start + 16], network_id=NETWORK)
        delta = apply_block_txs(view, [encode_tx(issuance)], params)
        view.apply(delta)
        wallet.scan(delta)
    transfer = build_transfer(
        payer, wallet.unspent(MONEY.asset_id)[:1], payee.address, 10, MONEY.asset_id, 0,
        _Decoys(view), network_id=NETWORK, min_ring_size=min_ring_size,
        now=float(view.height()), unlock_time=0.0, random_source=random.Random(1),
    )
    data = encode_tx(transfer)
    best = float("inf")
    for _ in range(batches):
        began = time.perf_counter()
        validate_tx(BASE_REGISTRY.decode(data), view, params)
        best = min(best, time.perf_counter() - began)
    return best


# -- the network ---------------------------------------------------------------------------------


def _prepare(directory: Path) -> Testnet:
    """A testnet whose first issuance pays each prosumer several outputs."""
    net = Testnet(directory)
    specs = default_layout(NODES)
    # Cover transactions off: the figure is the rate of the benchmark's own transfers.
    net.generate(specs, market={s.name: MarketConfig(cover_tx_interval_s=0) for s in specs})
    dso = next(s for s in specs if Role.DSO in s.roles)
    config = net.config(dso.name)
    ledger = dataclasses.replace(
        config.ledger,
        genesis_issuance=tuple(a for a in config.ledger.genesis_issuance
                               for _ in range(OUTPUTS_PER_PROSUMER)),
    )
    net.config_path(dso.name).write_text(
        render_config(dataclasses.replace(config, ledger=ledger)), encoding="utf-8")
    return net


def _wait(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what}")
        time.sleep(POLL_S)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rpc(net: Testnet, name: str, method: str, params: dict[str, Any] | None = None) -> Any:
    return call_sync(net.socket_path(name), method, params, timeout=30.0)


def run_network(count: int, directory: Path) -> tuple[int, float, list[float]]:
    """(transfers finalized, seconds from first submission to last finality, latencies)."""
    net = _prepare(directory)
    try:
        net.up()
        prosumers = [s.name for s in net.nodes() if Role.PROSUMER in s.roles]
        need = OUTPUTS_PER_PROSUMER * 1_000_000
        _wait("first issuance", lambda: all(
            int(_rpc(net, p, "wallet.balance")["money"]) >= need for p in prosumers), 60)
        addresses = {p: _rpc(net, p, "wallet.address") for p in prosumers}
        latencies: list[float] = []
        lock = threading.Lock()

        def one(i: int) -> float:
            payer = prosumers[i % len(prosumers)]
            payee = prosumers[(i + 1) % len(prosumers)]
            start = time.perf_counter()
            digest = _rpc(net, payer, "wallet.transfer",
                          {"to": addresses[payee], "amount": 1 + i, "asset": "money"})
            _wait("finality", lambda: (_rpc(net, payer, "ledger.tx", {"hash": digest}) or {})
                  .get("status") == "final", FINALITY_TIMEOUT_S)
            done = time.perf_counter()
            with lock:
                latencies.append(done - start)
            return done

        began = time.perf_counter()
        # One worker per output a prosumer can spend at once: no transfer waits for change.
        with ThreadPoolExecutor(max_workers=len(prosumers) * OUTPUTS_PER_PROSUMER // 2) as pool:
            finished = list(pool.map(one, range(count)))
        return len(latencies), max(finished) - began, latencies
    finally:
        net.down()


def run_ledger_bench(out: TextIO, quick: bool = False) -> None:
    """Print transfers/s and finality p50/p99 beside the one-core verification bound."""
    min_ring_size = 16
    cost = verification_cost(min_ring_size, batches=2 if quick else VERIFY_BATCHES)
    out.write(f"verify one private transfer (ring {min_ring_size}, 2 outputs), one core: "
              f"{cost * 1e3:.1f} ms -> bound {1 / cost:.0f} transfers/s\n")
    directory = Path(tempfile.mkdtemp(prefix="pn-bench-"))
    try:
        count = QUICK_TRANSFERS if quick else TRANSFERS
        finalized, span, latencies = run_network(count, directory / "net")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    rate = finalized / span
    out.write(
        f"4 validators + 3 prosumers on localhost: {finalized} transfers finalized in "
        f"{span:.1f} s = {rate:.1f} transfers/s ({rate * cost * 100:.1f}% of one core's "
        f"verification bound); finality p50 {_percentile(latencies, 0.5) * 1e3:.0f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1e3:.0f} ms\n"
    )
