"""The mempool: admission, conflicts, bounds with eviction by fee rate, reaping, commit."""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from ledger_helpers import Funded, funded, params, pay

from petranode.ledger.assets import MONEY
from petranode.ledger.mempool import Mempool
from petranode.ledger.tx import encode_tx
from petranode.ledger.tx_errors import TxReject, TxRejected

MONEY_ID = MONEY.asset_id


@cache
def _ledger() -> Funded:
    return funded()


@cache
def _spends() -> tuple[bytes, ...]:
    """Three independent payments by a (one per coin) with fees 10, 30, 20, and a fourth
    spending the first coin again."""
    f = _ledger()
    coins = f.wallets["a"].unspent(MONEY_ID)
    txs = [pay(f, "a", "b", 100, fee=fee, owned=[coin], seed=i)
           for i, (coin, fee) in enumerate(zip(coins, (10, 30, 20), strict=True))]
    txs.append(pay(f, "a", "c", 100, fee=50, owned=[coins[0]], seed=9))
    return tuple(encode_tx(t) for t in txs)


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _pool(**bounds: int) -> Mempool:
    return Mempool(params(), **bounds)


def _reason(pool: Mempool, data: bytes) -> TxReject:
    with pytest.raises(TxRejected) as info:
        pool.add(data, _ledger().chain.view)
    return info.value.reason


def test_add_dedup_and_conflict() -> None:
    pool = _pool()
    view = _ledger().chain.view
    low, _high, _mid, conflicting = _spends()
    digest = pool.add(low, view)
    assert digest in pool and pool.get(digest) == low and len(pool) == 1
    assert _reason(pool, low) is TxReject.DUPLICATE
    assert _reason(pool, conflicting) is TxReject.KEY_IMAGE_CONFLICT
    assert pool.size_bytes == len(low)


def test_invalid_transactions_stay_out() -> None:
    pool = _pool()
    assert _reason(pool, b"\x00garbage") is TxReject.MALFORMED
    tampered = bytearray(_spends()[0])
    tampered[-40] ^= 1  # inside the range proof's last point or scalar
    assert _reason(pool, bytes(tampered)) in (TxReject.MALFORMED, TxReject.BAD_RANGE_PROOF)
    assert len(pool) == 0


def test_reap_by_fee_rate_within_budgets() -> None:
    pool = _pool()
    view = _ledger().chain.view
    low, high, mid, _ = _spends()
    for data in (low, high, mid):
        pool.add(data, view)
    assert pool.reap(10, 10**6) == [high, mid, low]
    assert pool.reap(2, 10**6) == [high, mid]
    assert pool.reap(10, len(high) + len(mid)) == [high, mid]
    assert pool.reap(10, 0) == []


def test_bounded_pool_evicts_the_lowest_fee_rate() -> None:
    pool = _pool(max_txs=2)
    view = _ledger().chain.view
    low, high, mid, _ = _spends()
    pool.add(mid, view)
    pool.add(low, view)
    pool.add(high, view)  # evicts low
    assert set(pool.reap(10, 10**6)) == {high, mid}
    assert _reason(pool, low) is TxReject.POOL_FULL
    assert len(pool) == 2


def test_update_removes_included_and_conflicting() -> None:
    f = funded()
    pool = _pool()
    low, high, _mid, conflicting = _spends()
    pool.add(low, f.chain.view)
    pool.add(high, f.chain.view)
    delta = f.chain.commit([conflicting, high])
    # high was included; low spends the coin the block's other transaction spent.
    assert pool.update(delta) == sorted([_hash(low), _hash(high)])
    assert len(pool) == 0 and pool.size_bytes == 0
    # Now the key image is spent on the ledger, the pool refuses the loser outright.
    with pytest.raises(TxRejected) as info:
        pool.add(low, f.chain.view)
    assert info.value.reason is TxReject.KEY_IMAGE_SPENT
