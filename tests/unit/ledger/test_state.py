"""The pure state transition: global indices, double spends within and across blocks."""

from __future__ import annotations

import pytest
from ledger_helpers import ENERGY, MONEY_EACH, MONEY_SPLIT, NETWORK, dso, funded, pay, wallet_keys

from petranode.crypto.errors import CryptoError
from petranode.ledger.assets import MONEY
from petranode.ledger.state import LedgerSnapshot, StateDelta, apply_block_txs
from petranode.ledger.tx import encode_tx, tx_hash
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.ledger.wallet import Payment, build_issuance

MONEY_ID = MONEY.asset_id


def test_funding_gives_per_asset_global_indices() -> None:
    f = funded()
    view = f.chain.view
    assert view.height() == 2
    assert view.output_count(MONEY_ID) == len(MONEY_SPLIT) == 16
    assert view.output_count(ENERGY.asset_id) == 5
    assert [o.global_index for o in view.outputs_of(MONEY_ID)] == list(range(16))
    first, second = f.chain.deltas
    assert {o.height for o in first.outputs} == {1} and {o.height for o in second.outputs} == {2}
    assert first.txs[0].global_indices == tuple(range(16))
    assert second.txs[0].global_indices == tuple(range(5))
    assert [o.output_index for o in first.outputs] == list(range(16))
    assert all(o.tx_hash == first.txs[0].tx_hash for o in first.outputs)
    assert f.wallets["a"].balance(MONEY_ID) == 3 * MONEY_EACH
    assert f.wallets["b"].balance(MONEY_ID) == 2 * MONEY_EACH
    assert f.wallets["c"].balance(MONEY_ID) == 2 * MONEY_EACH


def test_payment_block_continues_the_indices_and_spends_a_key_image() -> None:
    f = funded()
    tx = pay(f, "a", "b", 250)
    delta = f.chain.commit([tx])
    assert delta.height == 3
    assert delta.txs[0].tx_hash == tx_hash(tx)
    assert delta.txs[0].global_indices == (16, 17)
    assert delta.spent == tuple((ki, tx_hash(tx)) for ki in tx.key_images())
    assert f.chain.view.key_image_spent(tx.key_images()[0])
    assert f.chain.view.has_tx(tx_hash(tx))


def test_apply_changes_nothing_it_is_given() -> None:
    f = funded()
    before = (f.chain.view.height(), f.chain.view.output_count(MONEY_ID))
    apply_block_txs(f.chain.view, [encode_tx(pay(f, "a", "b", 5))], f.chain.params)
    assert (f.chain.view.height(), f.chain.view.output_count(MONEY_ID)) == before


def test_double_spend_within_one_block() -> None:
    f = funded()
    coin = f.wallets["a"].unspent(MONEY_ID)[:1]
    first = pay(f, "a", "b", 100, owned=coin, seed=1)
    second = pay(f, "a", "c", 200, owned=coin, seed=2)
    assert first.key_images() == second.key_images() and tx_hash(first) != tx_hash(second)
    with pytest.raises(TxRejected) as info:
        f.chain.commit([first, second])
    assert info.value.reason is TxReject.KEY_IMAGE_CONFLICT
    assert info.value.detail == "transaction 1"
    assert f.chain.view.height() == 2


def test_double_spend_across_blocks() -> None:
    f = funded()
    coin = f.wallets["a"].unspent(MONEY_ID)[:1]
    first = pay(f, "a", "b", 100, owned=coin, seed=1)
    second = pay(f, "a", "c", 200, owned=coin, seed=2)
    f.chain.commit([first])
    with pytest.raises(TxRejected) as info:
        f.chain.commit([second])
    assert info.value.reason is TxReject.KEY_IMAGE_SPENT


def test_same_transaction_twice() -> None:
    f = funded()
    tx = pay(f, "a", "b", 100)
    with pytest.raises(TxRejected) as info:
        f.chain.commit([tx, tx])
    assert info.value.reason is TxReject.ALREADY_ON_LEDGER
    f.chain.commit([tx])
    with pytest.raises(TxRejected) as info:
        f.chain.commit([tx])
    assert info.value.reason in (TxReject.ALREADY_ON_LEDGER, TxReject.KEY_IMAGE_SPENT)


def test_replayed_issuance_is_refused() -> None:
    f = funded()
    issuance = build_issuance(dso(), [Payment(wallet_keys("c").address, MONEY_ID, 7)],
                              network_id=NETWORK)
    f.chain.commit([issuance])
    with pytest.raises(TxRejected) as info:
        f.chain.commit([issuance])
    assert info.value.reason is TxReject.ALREADY_ON_LEDGER


def test_outputs_of_the_same_block_are_not_ring_members() -> None:
    f = funded()
    issuance = build_issuance(dso(), [Payment(wallet_keys("a").address, MONEY_ID, 7)],
                              network_id=NETWORK)
    delta = apply_block_txs(f.chain.view, [encode_tx(issuance)], f.chain.params)
    assert delta.outputs[0].global_index == 16
    # Applying the delta makes output 16 exist at height 3; a ring naming it is valid only
    # in a later block, and the snapshot refuses a delta for the wrong height.
    with pytest.raises(ValueError):
        LedgerSnapshot().apply(delta)


def test_empty_block() -> None:
    f = funded()
    delta = f.chain.commit([])
    assert delta == StateDelta(3, (), (), ())


def test_ring_of_sixteen() -> None:
    f = funded(min_ring_size=16)
    tx = pay(f, "b", "c", 1_500)
    assert all(len(i.ring) == 16 for i in tx.inputs)  # type: ignore[attr-defined]
    f.chain.commit([tx])
    with pytest.raises(CryptoError, match="minimum"):
        pay(f, "c", "b", 100, ring_size=8)  # the builder refuses rings below the minimum
