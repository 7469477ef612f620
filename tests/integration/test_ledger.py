"""Issue 6 fault tests on real processes: 4 validators, 3 prosumers (SPEC §4.6, §5).

One network, perturbed in turn (CometBFT ``test/e2e`` ``runner/perturb.go``): a transfer lands
and both balances change; a double spend is refused across blocks and within one block; a
transfer with an invalid CLSAG or range proof is refused by every validator; one validator
killed leaves the chain growing, two killed stop it without a fork, restarting them resumes it
with every node agreeing on every height, and a validator killed with SIGKILL mid-run syncs and
loses nothing. Everything is observed through RPC and waited for with deadlines, never with
sleeps. (A validator signing two conflicting votes is recorded as evidence: that needs a
validator made to equivocate, so it is tested at the service level, ``test_ledger_service``.)

The invalid and conflicting transfers are built here, outside the nodes: a prosumer's wallet
is rebuilt from its keystore and the blocks RPC serves, like a light wallet would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from polling import POLL_S, rpc, wait_for

from petranode.crypto.clsag import Clsag
from petranode.crypto.group import ONE
from petranode.crypto.keys import PublicAddress, WalletKeys
from petranode.genesis import load_genesis
from petranode.keystore import load_keys
from petranode.ledger.assets import MONEY
from petranode.ledger.state import LedgerSnapshot, OutputRecord, apply_block_txs
from petranode.ledger.tx import BASE_REGISTRY, LedgerParams, Transfer, encode_tx
from petranode.ledger.wallet import Wallet, build_transfer
from petranode.rpc.errors import RpcError
from petranode.testnet import Testnet

pytestmark = pytest.mark.integration

#: dso + validator1..3 + prosumer1..3 (testnet.default_layout).
NODES = 7
VALIDATORS = ("dso", "validator1", "validator2", "validator3")



def height(net: Testnet, name: str) -> int:
    return int(rpc(net, name, "ledger.status")["height"])



def wait_heights(net: Testnet, names: list[str], at_least: int, timeout: float) -> None:
    wait_for(f"{names} at height {at_least}",
             lambda: all(height(net, n) >= at_least for n in names), timeout)


def hashes(net: Testnet, name: str, up_to: int) -> list[str]:
    out = []
    for h in range(1, up_to + 1):
        block = rpc(net, name, "ledger.block", {"height": h})
        assert block is not None, f"{name} lacks block {h}"
        out.append(block["hash"])
    return out


def money(net: Testnet, name: str) -> int:
    return int(rpc(net, name, "wallet.balance")["money"])


def test_ledger_survives_validator_faults_and_moves_money(
    testnet_factory: Callable[..., Testnet], short_tmp: Path
) -> None:
    # No cover transactions: the test spends prosumers' outputs itself, behind their backs.
    net = testnet_factory(NODES, cover=False)
    everyone = [s.name for s in net.nodes()]
    assert [n for n in everyone if n in VALIDATORS] == list(VALIDATORS)
    status = rpc(net, "prosumer1", "ledger.status")
    assert status["validators"] == list(VALIDATORS)

    # The DSO's first issuance funds every prosumer.
    wait_for("genesis money", lambda: all(money(net, p) > 0 for p in
                                          ("prosumer1", "prosumer2", "prosumer3")), 30)
    before1, before2 = money(net, "prosumer1"), money(net, "prosumer2")

    # -- a private transfer lands and both balances change ---------------------------------
    address2 = rpc(net, "prosumer2", "wallet.address")
    digest = rpc(net, "prosumer1", "wallet.transfer",
                 {"to": address2, "amount": 1234, "asset": "money"})
    wait_for("the transfer to be final everywhere", lambda: all(
        (rpc(net, n, "ledger.tx", {"hash": digest}) or {}).get("status") == "final"
        for n in everyone), 20)
    wait_for("both balances", lambda: money(net, "prosumer2") == before2 + 1234
             and money(net, "prosumer1") == before1 - 1234, 10)
    # It reached the validators through prosumer1's garlic tunnels, not its links.
    assert sum(rpc(net, v, "ledger.status")["counters"].get("garlic_submissions", 0)
               for v in VALIDATORS) >= 1

    # -- a double spend is refused: the same inputs again, by a validator and a prosumer ----
    data = bytes.fromhex(rpc(net, "prosumer1", "ledger.tx", {"hash": digest})["data"])
    spent = BASE_REGISTRY.decode(data)
    assert isinstance(spent, Transfer)
    again = encode_tx(dataclasses.replace(spent, fee=spent.fee + 1))  # same key images
    for name, payload in (("validator2", data), ("validator1", again), ("prosumer3", again)):
        assert refusal(net, name, payload) in ("ALREADY_ON_LEDGER", "KEY_IMAGE_SPENT")

    # -- invalid CLSAG / range proof: refused by every validator -----------------------------
    make = light_wallet(net, "prosumer3", rpc(net, "prosumer1", "wallet.address"))
    valid = make(11)
    inp = valid.inputs[0]
    raw = bytearray(inp.signature.encode())
    raw[0] ^= 1  # the lowest bit of s_0: still a canonical scalar, no longer a signature
    bad_clsag = dataclasses.replace(valid, inputs=(dataclasses.replace(
        inp, signature=Clsag.decode(bytes(raw), len(inp.ring))),))
    bad_proof = dataclasses.replace(valid, range_proof=dataclasses.replace(
        valid.range_proof, r1=valid.range_proof.r1 + ONE))
    for name in VALIDATORS:
        assert refusal(net, name, encode_tx(bad_clsag)) == "BAD_RING_SIGNATURE"
        assert refusal(net, name, encode_tx(bad_proof)) == "BAD_RANGE_PROOF"

    # -- a double spend within one block: two transfers of one output, to two validators -----
    first, second = encode_tx(valid), encode_tx(make(22))
    outcomes = [submit(net, "validator1", first), submit(net, "validator2", second)]
    assert None in outcomes, outcomes  # at least one was pooled
    assert all(o in (None, "KEY_IMAGE_CONFLICT") for o in outcomes), outcomes
    digests = [hashlib.sha256(p).hexdigest() for p in (first, second)]  # the tx hash
    wait_for("one of the two to be final", lambda: any(
        tx_status(net, "dso", d) == "final" for d in digests), 20)
    final = [d for d in digests if tx_status(net, "dso", d) == "final"]
    assert len(final) == 1
    loser = (second, first)[digests.index(final[0])]
    wait_for("validator3 to have it final",
             lambda: tx_status(net, "validator3", final[0]) == "final", 10)
    assert refusal(net, "validator3", loser) == "KEY_IMAGE_SPENT"
    assert tx_status(net, "validator3", digests[1 - digests.index(final[0])]) is None

    # -- one validator down: blocks keep being finalized -------------------------------------
    net.kill("validator3")
    alive = [n for n in everyone if n != "validator3"]
    h = max(height(net, n) for n in alive)
    wait_heights(net, alive, h + 3, 20)

    # -- two down: nothing final, and no fork ------------------------------------------------
    net.kill("validator2")
    alive = [n for n in alive if n != "validator2"]
    wait_for("the chain to stall", lambda: _stalled(net, alive, 3.0), 20)
    stalled_at = max(height(net, n) for n in alive)
    assert all(height(net, n) == stalled_at for n in alive)

    # -- restart them: progress resumes and every node agrees at every height ---------------
    net.up()
    wait_heights(net, everyone, stalled_at + 2, 30)
    common = min(height(net, n) for n in everyone)
    reference = hashes(net, "dso", common)
    for name in everyone:
        assert hashes(net, name, common) == reference, f"{name} disagrees"

    # -- kill -9 a validator mid-run, restart: it syncs and nothing final is lost ---------------
    kept = hashes(net, "validator1", height(net, "validator1"))
    net.kill("validator1")
    wait_heights(net, ["dso", "validator2"], len(kept) + 2, 20)
    net.start("validator1")
    net.wait_ready()
    target = height(net, "dso")
    wait_heights(net, ["validator1"], target, 30)
    assert hashes(net, "validator1", len(kept)) == kept
    assert hashes(net, "validator1", target) == hashes(net, "dso", target)


def refusal(net: Testnet, name: str, payload: bytes) -> str:
    """The reason ``name`` refuses to pool ``payload`` (it must refuse)."""
    with pytest.raises(RpcError) as refused:
        rpc(net, name, "ledger.submit", {"tx": payload.hex()})
    assert refused.value.data is not None
    return str(refused.value.data["reason"])


def submit(net: Testnet, name: str, payload: bytes) -> str | None:
    """None if ``name`` pooled ``payload``, else its refusal reason."""
    try:
        rpc(net, name, "ledger.submit", {"tx": payload.hex()})
    except RpcError as exc:
        assert exc.data is not None
        return str(exc.data["reason"])
    return None


def tx_status(net: Testnet, name: str, digest: str) -> str | None:
    found = rpc(net, name, "ledger.tx", {"hash": digest})
    return None if found is None else str(found["status"])


class _SnapshotDecoys:
    def __init__(self, view: LedgerSnapshot) -> None:
        self._view = view

    def output_times(self, asset_id: bytes) -> list[float]:
        return [float(o.height) for o in self._view.outputs_of(asset_id)]

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self._view.output(asset_id, global_index)


def light_wallet(net: Testnet, name: str, to: str) -> Callable[[int], Transfer]:
    """Transfers of ``amount`` to ``to`` spending the first unspent money output of ``name``'s
    wallet, which is rebuilt from its keystore and the blocks served by RPC (not submitted)."""
    genesis = load_genesis(net.genesis_path)
    params = LedgerParams.from_genesis(genesis)
    keys = WalletKeys(*load_keys(net.node_dir(name)).wallet())
    wallet, view = Wallet(keys), LedgerSnapshot()
    for h in range(1, height(net, name) + 1):
        block = rpc(net, name, "ledger.block", {"height": h})
        txs = [bytes.fromhex(rpc(net, name, "ledger.tx", {"hash": t})["data"])
               for t in block["txs"]]
        delta = apply_block_txs(view, txs, params)
        view.apply(delta)
        wallet.scan(delta)
    owned = wallet.unspent(MONEY.asset_id)[:1]
    assert owned, f"{name} has no money"
    recipient = PublicAddress.decode(to)

    def make(amount: int) -> Transfer:
        return build_transfer(
            keys, owned, recipient, amount, MONEY.asset_id, 0, _SnapshotDecoys(view),
            network_id=genesis.network_id, min_ring_size=params.min_ring_size,
            now=float(view.height()), unlock_time=0.0, random_source=random.Random(amount),
        )

    return make


def _stalled(net: Testnet, names: list[str], quiet_s: float) -> bool:
    """No node's height moves for ``quiet_s`` seconds."""
    start = [height(net, n) for n in names]
    deadline = time.monotonic() + quiet_s
    while time.monotonic() < deadline:
        if [height(net, n) for n in names] != start:
            return False
        time.sleep(POLL_S)
    return True
