"""Wallets: scanning, balances per asset, spends, change, and multi-asset transfers."""

from __future__ import annotations

import random

import pytest
from ledger_helpers import ENERGY, MONEY_EACH, NETWORK, Funded, dso, funded, pay, wallet_keys

from petranode.ledger.assets import MONEY
from petranode.ledger.tx import Transfer
from petranode.ledger.tx_errors import InsufficientFunds
from petranode.ledger.wallet import Payment, Wallet, build_issuance, build_payments

MONEY_ID = MONEY.asset_id
ENERGY_ID = ENERGY.asset_id


def _commit_and_scan(f: Funded, tx: Transfer) -> None:
    delta = f.chain.commit([tx])
    for w in f.wallets.values():
        w.scan(delta)


def test_a_pays_b_and_b_sees_the_amount() -> None:
    f = funded()
    a, b, c = (f.wallets[n] for n in "abc")
    tx = pay(f, "a", "b", 250, fee=10)
    assert isinstance(tx, Transfer)
    delta = f.chain.commit([tx])
    found_b = b.scan(delta)
    found_a = a.scan(delta)
    assert [o.amount for o in found_b] == [250]
    assert [o.amount for o in found_a] == [MONEY_EACH - 250 - 10]  # change
    assert c.scan(delta) == []
    assert b.balance(MONEY_ID) == 2 * MONEY_EACH + 250
    assert a.balance(MONEY_ID) == 3 * MONEY_EACH - 250 - 10
    assert c.balance(MONEY_ID) == 2 * MONEY_EACH
    # The spent output is gone from a's unspent set; the found one carries its index.
    assert found_b[0].global_index in (16, 17)
    assert f.chain.view.output(MONEY_ID, found_b[0].global_index) == found_b[0].record


def test_received_output_can_be_spent_onwards() -> None:
    f = funded()
    _commit_and_scan(f, pay(f, "a", "b", 250))  # type: ignore[arg-type]
    b_outputs = f.wallets["b"].unspent(MONEY_ID)
    received = [o for o in b_outputs if o.amount == 250]
    _commit_and_scan(f, pay(f, "b", "c", 240, owned=received))  # type: ignore[arg-type]
    assert f.wallets["c"].balance(MONEY_ID) == 2 * MONEY_EACH + 240
    assert f.wallets["b"].balance(MONEY_ID) == 2 * MONEY_EACH


def test_paying_more_than_owned() -> None:
    f = funded()
    with pytest.raises(InsufficientFunds):
        pay(f, "c", "a", 2 * MONEY_EACH, fee=1)


def test_atomic_trade_of_energy_for_money() -> None:
    """a sells 300 W of interval-7 production to b for 120 cents: one transfer, two assets,
    built here by a single wallet paying both legs (the market's two-party build is its own)."""
    f = funded()
    a = f.wallets["a"]
    assert a.balance(ENERGY_ID) == 500
    tx = build_payments(
        a.keys, a.unspent(ENERGY_ID) + a.unspent(MONEY_ID),
        [Payment(f.wallets["b"].keys.address, ENERGY_ID, 300),
         Payment(f.wallets["b"].keys.address, MONEY_ID, 120)],
        10, f.chain, network_id=NETWORK, min_ring_size=4, now=f.chain.now, unlock_time=0.0,
        random_source=random.Random(5),
    )
    assert {i.asset_id for i in tx.inputs} == {ENERGY_ID, MONEY_ID}
    _commit_and_scan(f, tx)
    assert f.wallets["b"].balance(ENERGY_ID) == 300
    assert a.balance(ENERGY_ID) == 200
    assert a.balance(MONEY_ID) == 3 * MONEY_EACH - 130


def test_issuance_to_a_fresh_wallet_and_view_only_scan() -> None:
    f = funded()
    d = Wallet(wallet_keys("d"))
    issuance = build_issuance(
        dso(), [Payment(wallet_keys("d").address, ENERGY_ID, 42),
                Payment(wallet_keys("d").address, MONEY_ID, 9)], network_id=NETWORK)
    delta = f.chain.commit([issuance])
    assert sorted(o.amount for o in d.scan(delta)) == [9, 42]
    assert d.balance(ENERGY_ID) == 42 and d.balance(MONEY_ID) == 9
    # Scanning the same block twice finds nothing new.
    assert d.scan(delta) == []
