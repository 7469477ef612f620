"""The first issuance: deterministic, valid, and enough outputs for rings at once."""

from __future__ import annotations

import pytest
from ledger_helpers import NETWORK, Chain, dso, params

from petranode.crypto.keys import WalletKeys
from petranode.ledger.assets import MONEY
from petranode.ledger.genesis_money import first_issuance
from petranode.ledger.tx import encode_tx
from petranode.ledger.wallet import Wallet

SEED = b"\x07" * 32


def test_pays_every_recipient_plus_ring_decoys_and_is_deterministic() -> None:
    prosumers = [WalletKeys.generate() for _ in range(6)]
    dso_wallet = WalletKeys.generate()
    txs = first_issuance(dso(), [k.address for k in prosumers], dso_wallet.address, 500,
                         min_ring_size=16, network_id=NETWORK, seed=SEED)
    assert len(txs) == 2  # 22 outputs, 16 per issuance
    again = first_issuance(dso(), [k.address for k in prosumers], dso_wallet.address, 500,
                           min_ring_size=16, network_id=NETWORK, seed=SEED)
    assert [encode_tx(t) for t in txs] == [encode_tx(t) for t in again]

    chain = Chain(params(min_ring_size=16))
    delta = chain.commit(txs)
    assert chain.view.output_count(MONEY.asset_id) == 6 + 16
    for keys in prosumers:
        wallet = Wallet(keys)
        wallet.scan(delta)
        assert wallet.balance(MONEY.asset_id) == 500
    dso_own = Wallet(dso_wallet)
    dso_own.scan(delta)
    assert dso_own.balance(MONEY.asset_id) == 16 * 500


def test_refuses_nonsense() -> None:
    address = WalletKeys.generate().address
    with pytest.raises(ValueError):
        first_issuance(dso(), [address], address, 0, min_ring_size=4, network_id=NETWORK,
                       seed=SEED)
    with pytest.raises(ValueError):
        first_issuance(dso(), [address], address, 1, min_ring_size=4, network_id=NETWORK,
                       seed=b"short")
