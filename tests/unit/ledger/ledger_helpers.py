"""An in-memory ledger for the ledger tests: a DSO, funded wallets and block application."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from petranode.crypto import bpplus, clsag, ecdh
from petranode.crypto.balance import pseudo_out_masks
from petranode.crypto.decoys import select_ring
from petranode.crypto.keys import WalletKeys
from petranode.crypto.pedersen import commit
from petranode.crypto.stealth import TxSecret, create_output
from petranode.ledger.assets import MONEY, Asset, AssetKind
from petranode.ledger.state import LedgerSnapshot, OutputRecord, StateDelta, apply_block_txs
from petranode.ledger.tx import (
    LedgerParams,
    Transfer,
    Tx,
    TxInput,
    TxOutput,
    encode_tx,
    input_prefix,
    prefix_digest,
    signed_message,
    transfer_prefix,
)
from petranode.ledger.wallet import (
    DecoySource,
    OwnedOutput,
    Payment,
    Wallet,
    build_issuance,
    build_transfer,
)
from petranode.net.identity import RouterKeys

NETWORK = "petranode-test"
BLOCK_SECONDS = 10.0
ENERGY = Asset(AssetKind.PRODUCTION, 7, 7)


@cache
def dso() -> RouterKeys:
    return RouterKeys.generate()


@cache
def wallet_keys(name: str) -> WalletKeys:
    return WalletKeys.generate()


def params(min_ring_size: int = 4, spendable_age: int = 1) -> LedgerParams:
    return LedgerParams(NETWORK, dso().signing_key, min_ring_size=min_ring_size,
                        spendable_age=spendable_age)


class Chain:
    """A whole ledger in memory, and a :class:`DecoySource` over it (one block per 10 s)."""

    def __init__(self, params: LedgerParams) -> None:
        self.params = params
        self.view = LedgerSnapshot()
        self.deltas: list[StateDelta] = []

    def commit(self, txs: Sequence[Tx | bytes]) -> StateDelta:
        data = [t if isinstance(t, bytes) else encode_tx(t) for t in txs]
        delta = apply_block_txs(self.view, data, self.params)
        self.replay(delta)
        return delta

    def replay(self, delta: StateDelta) -> None:
        self.view.apply(delta)
        self.deltas.append(delta)

    @property
    def now(self) -> float:
        return self.view.height() * BLOCK_SECONDS

    def output_times(self, asset_id: bytes) -> list[float]:
        return [o.height * BLOCK_SECONDS for o in self.view.outputs_of(asset_id)]

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self.view.output(asset_id, global_index)


@dataclass
class Funded:
    chain: Chain
    wallets: dict[str, Wallet]


#: Who gets the 16 money outputs of the first issuance (and 4 energy outputs of the second).
MONEY_SPLIT = ("a", "a", "a", "b", "b", "c", "c") + ("filler",) * 9
MONEY_EACH = 1_000


@cache
def _funding_deltas() -> tuple[StateDelta, ...]:
    chain = Chain(params())
    money = [Payment(wallet_keys(n).address, MONEY.asset_id, MONEY_EACH) for n in MONEY_SPLIT]
    energy = [Payment(wallet_keys(n).address, ENERGY.asset_id, 500) for n in
              ("a", "filler", "filler", "filler", "filler")]
    chain.commit([build_issuance(dso(), money, network_id=NETWORK)])
    chain.commit([build_issuance(dso(), energy, network_id=NETWORK)])
    return tuple(chain.deltas)


def funded(min_ring_size: int = 4, spendable_age: int = 1) -> Funded:
    """A fresh ledger where the DSO has funded wallets a, b, c (and filler outputs)."""
    chain = Chain(params(min_ring_size, spendable_age))
    wallets = {n: Wallet(wallet_keys(n)) for n in ("a", "b", "c", "filler")}
    for delta in _funding_deltas():
        chain.replay(delta)
        for w in wallets.values():
            w.scan(delta)
    return Funded(chain, wallets)


def det_rng(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic byte source (SHAKE-256 of seed ‖ counter) to pin vectors."""
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "little")).digest(n)

    return rng


def pay(f: Funded, payer: str, payee: str, amount: int, *, fee: int = 10,
        ring_size: int | None = None, asset: bytes = MONEY.asset_id, seed: int = 1,
        owned: Sequence[OwnedOutput] | None = None, decoys: DecoySource | None = None) -> Tx:
    w = f.wallets[payer]
    return build_transfer(
        w.keys, w.unspent(asset) if owned is None else owned, f.wallets[payee].keys.address,
        amount, asset, fee, f.chain if decoys is None else decoys, network_id=NETWORK,
        min_ring_size=f.chain.params.min_ring_size, ring_size=ring_size, now=f.chain.now,
        unlock_time=0.0, random_source=random.Random(seed),
    )


def forge_transfer(f: Funded, payer: str, payee: str, out_amounts: Sequence[int],
                   fee: int) -> Transfer:
    """One money input, outputs of ``out_amounts``: the CLSAG and the range proof are valid
    whatever the amounts, so a transfer that does not balance fails on the balance alone."""
    money = MONEY.asset_id
    w = f.wallets[payer]
    spend = w.unspent(money)[0]
    chosen = select_ring(f.chain.output_times(money), spend.global_index, 4, now=f.chain.now,
                         min_ring_size=4, unlock_time=0.0, rng=random.Random(3))
    members = []
    for index in chosen.indices:
        record = f.chain.output(money, index)
        assert record is not None
        members.append((record.one_time_key, record.commitment))
    secret = TxSecret.generate()
    outputs, masks = [], []
    for i, amount in enumerate(out_amounts):
        sent = create_output(secret, f.wallets[payee].keys.address, i)
        info, mask, commitment = ecdh.make_output(amount, sent.shared_secret)
        outputs.append(TxOutput(money, sent.output.one_time_key, sent.output.view_tag,
                                commitment, info))
        masks.append(mask)
    _, proof = bpplus.prove(list(out_amounts), masks)
    [p_mask] = pseudo_out_masks(masks, 1)
    pseudo = commit(spend.amount, p_mask)
    prefix = transfer_prefix([input_prefix(money, chosen.indices, spend.key_image, pseudo)],
                             outputs, secret.public, fee)
    message = signed_message(prefix_digest(Transfer.KIND, prefix, NETWORK), proof, NETWORK)
    signature, key_image = clsag.sign(message, members, pseudo, chosen.real_position,
                                      spend.shared_secret + w.keys.spend_secret,
                                      spend.mask - p_mask)
    return Transfer((TxInput(money, chosen.indices, key_image, pseudo, signature),),
                    tuple(outputs), secret.public, fee, proof)
