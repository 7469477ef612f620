"""The ledger store: one SQL transaction per block, reads as a LedgerView, reopen."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from ledger_helpers import Funded, funded, pay

from petranode.ledger.assets import MONEY
from petranode.ledger.state import StateDelta, apply_block_txs
from petranode.ledger.store import LEDGER_MIGRATIONS, LedgerStore
from petranode.ledger.tx import encode_tx, tx_hash, validate_tx
from petranode.store.errors import ConstraintViolated
from petranode.store.store import Store

MONEY_ID = MONEY.asset_id


def _block(delta: StateDelta) -> tuple[bytes, bytes, bytes]:
    """Stand-ins for the consensus layer's block, hash and certificate."""
    body = b"block-%d" % delta.height
    return body, hashlib.sha256(body).digest(), b"cert-%d" % delta.height


async def _commit(ledger: LedgerStore, delta: StateDelta) -> None:
    block, block_hash, certificate = _block(delta)
    await ledger.commit_block(block=block, block_hash=block_hash, certificate=certificate,
                              delta=delta, round=1)


async def _commit_all(ledger: LedgerStore, f: Funded) -> None:
    for delta in f.chain.deltas:
        await _commit(ledger, delta)


async def test_commit_and_read_back(tmp_path: Path) -> None:
    f = funded()
    tx = pay(f, "a", "b", 250)
    f.chain.commit([tx])
    async with Store(tmp_path / "node.db", LEDGER_MIGRATIONS) as store:
        ledger = LedgerStore(store)
        assert await ledger.height() == 0
        await _commit_all(ledger, f)
        assert await ledger.height() == 3
        block, block_hash, certificate = _block(f.chain.deltas[2])
        assert await ledger.block_at(3) == block
        assert await ledger.block_hash_at(3) == block_hash
        assert await ledger.certificate_at(3) == certificate
        assert await ledger.block_at(4) is None
        assert await ledger.tx(tx_hash(tx)) == encode_tx(tx)
        assert await ledger.block_tx_hashes(3) == [tx_hash(tx)]
        assert await ledger.has_tx(tx_hash(tx))
        assert await ledger.key_image_spent(tx.key_images()[0])
        assert await ledger.output_count(MONEY_ID) == f.chain.view.output_count(MONEY_ID) == 18
        for index in range(18):
            assert await ledger.output(MONEY_ID, index) == f.chain.view.output(MONEY_ID, index)
        assert await ledger.outputs_of(MONEY_ID, 16) == f.chain.view.outputs_of(MONEY_ID)[16:]


async def test_snapshot_validates_like_the_whole_ledger(tmp_path: Path) -> None:
    f = funded()
    pending = pay(f, "a", "b", 250)
    async with Store(tmp_path / "node.db", LEDGER_MIGRATIONS) as store:
        ledger = LedgerStore(store)
        await _commit_all(ledger, f)
        snapshot = await ledger.snapshot_for([pending])
        validate_tx(pending, snapshot, f.chain.params)
        delta = apply_block_txs(snapshot, [encode_tx(pending)], f.chain.params)
        assert delta == apply_block_txs(f.chain.view, [encode_tx(pending)], f.chain.params)
        await _commit(ledger, delta)
        again = await ledger.snapshot_for([pending])
        assert again.has_tx(tx_hash(pending)) and again.key_image_spent(pending.key_images()[0])


async def test_failed_commit_leaves_nothing(tmp_path: Path) -> None:
    f = funded()
    f.chain.commit([pay(f, "a", "b", 250)])
    async with Store(tmp_path / "node.db", LEDGER_MIGRATIONS) as store:
        ledger = LedgerStore(store)
        for delta in f.chain.deltas[:2]:
            await _commit(ledger, delta)
        good = f.chain.deltas[2]
        # The key image twice: the last statement of the block's transaction fails, after
        # the block, certificate, transactions and outputs were written.
        broken = dataclasses.replace(good, spent=good.spent * 2)
        with pytest.raises(ConstraintViolated):
            await _commit(ledger, broken)
        assert await ledger.height() == 2
        assert await ledger.block_at(3) is None and await ledger.certificate_at(3) is None
        assert await ledger.output_count(MONEY_ID) == 16
        assert not await ledger.has_tx(good.txs[0].tx_hash)
        assert not await ledger.key_image_spent(good.spent[0][0])
        await _commit(ledger, good)  # and the real block still goes in
        assert await ledger.height() == 3


async def test_heights_must_follow(tmp_path: Path) -> None:
    f = funded()
    async with Store(tmp_path / "node.db", LEDGER_MIGRATIONS) as store:
        ledger = LedgerStore(store)
        with pytest.raises(ValueError, match="does not follow"):
            await _commit(ledger, f.chain.deltas[1])
        await _commit(ledger, f.chain.deltas[0])
        with pytest.raises(ValueError, match="does not follow"):
            await _commit(ledger, f.chain.deltas[0])
        assert await ledger.height() == 1


async def test_survives_reopen(tmp_path: Path) -> None:
    f = funded()
    path = tmp_path / "node.db"
    async with Store(path, LEDGER_MIGRATIONS) as store:
        await _commit_all(LedgerStore(store), f)
        assert await LedgerStore(store).add_evidence(2, b"two votes")
        assert not await LedgerStore(store).add_evidence(2, b"two votes")
    async with Store(path, LEDGER_MIGRATIONS) as store:
        ledger = LedgerStore(store)
        assert await store.schema_version("ledger") == 1
        assert await ledger.height() == 2
        assert await ledger.output(MONEY_ID, 15) == f.chain.view.output(MONEY_ID, 15)
        assert await ledger.evidence() == [b"two votes"]
