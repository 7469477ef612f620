"""The settlement tables on a real SQLite store: the DSO's scores and desk, tier lists, and a
prosumer's report statuses."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petranode.crypto.keys import WalletKeys
from petranode.market.delivery import DeskRows, PendingRow
from petranode.market.reputation import ReputationRow
from petranode.market.settling.store import SETTLEMENT_MIGRATIONS, SettlementStore
from petranode.store.errors import StorageError
from petranode.store.store import Store
from petranode.wire import codec

KEYS = st.binary(min_size=32, max_size=32)
U63 = st.integers(0, 2**63)
PAIRS = st.lists(st.tuples(KEYS, st.integers(0, 2**64 - 1)), max_size=4).map(tuple)
PENDING = st.builds(PendingRow, U63, KEYS, st.integers(0, 2**32), PAIRS)
DESKS = st.builds(
    DeskRows,
    debts=PAIRS,
    claimed_offers=st.lists(KEYS, max_size=4).map(tuple),
    settled_intervals=st.lists(U63, max_size=4).map(tuple),
    pending=st.lists(PENDING, max_size=3).map(tuple),
    trades_settled=U63,
    shortfall_w=U63,
    penalty_cents=U63,
)
SCORES = st.lists(
    st.builds(ReputationRow, KEYS, KEYS, st.integers(0, 2**32)),
    max_size=4, unique_by=lambda r: r.prosumer,
).map(tuple)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "node.db", SETTLEMENT_MIGRATIONS) as opened:
        yield opened


def _sorted(rows: list[ReputationRow] | tuple[ReputationRow, ...]) -> list[ReputationRow]:
    return sorted(rows, key=lambda r: r.prosumer)


async def _round_trip(scores: tuple[ReputationRow, ...], desk: DeskRows,
                      ) -> tuple[list[ReputationRow], DeskRows]:
    with tempfile.TemporaryDirectory() as folder:
        async with Store(Path(folder) / "node.db", SETTLEMENT_MIGRATIONS) as opened:
            settlement = SettlementStore(opened)
            await settlement.save_dso(scores, desk)
            return await settlement.load_dso()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCORES, DESKS)
def test_dso_state_round_trip(scores: tuple[ReputationRow, ...], desk: DeskRows) -> None:
    # A fresh store per example: hypothesis runs the body many times, a fixture once.
    loaded_scores, loaded_desk = asyncio.run(_round_trip(scores, desk))
    assert loaded_desk == desk
    assert _sorted(loaded_scores) == _sorted(scores)


async def test_empty_store_has_an_empty_desk(store: Store) -> None:
    assert await SettlementStore(store).load_dso() == ([], DeskRows())


async def test_real_keys_and_a_second_save_replaces_the_desk_and_updates_scores(
        store: Store) -> None:
    settlement = SettlementStore(store)
    alice, bob = (WalletKeys.generate().address for _ in range(2))
    first = (ReputationRow(alice.spend.raw, alice.view.raw, 5000),
             ReputationRow(bob.spend.raw, bob.view.raw, 7000))
    pending = PendingRow(10, alice.spend.raw, 250, ((b"\x07" * 32, 300),))
    await settlement.save_dso(first, DeskRows(pending=(pending,), trades_settled=1))
    desk = DeskRows(debts=((alice.spend.raw, 42),), claimed_offers=(b"\x09" * 32,),
                    settled_intervals=(10,), trades_settled=2, shortfall_w=50,
                    penalty_cents=42)
    await settlement.save_dso((ReputationRow(alice.spend.raw, alice.view.raw, 4500),), desk)
    scores, loaded = await settlement.load_dso()
    assert loaded == desk
    # Scores are upserted: alice's changed, bob's (not in the second save) kept.
    assert _sorted(scores) == _sorted([ReputationRow(alice.spend.raw, alice.view.raw, 4500),
                                       first[1]])


async def test_dso_state_survives_reopening(tmp_path: Path) -> None:
    desk = DeskRows(settled_intervals=(1, 2, 3), trades_settled=9)
    rows = (ReputationRow(b"\x01" * 32, b"\x02" * 32, 10),)
    async with Store(tmp_path / "node.db", SETTLEMENT_MIGRATIONS) as opened:
        await SettlementStore(opened).save_dso(rows, desk)
    async with Store(tmp_path / "node.db", SETTLEMENT_MIGRATIONS) as opened:
        assert await SettlementStore(opened).load_dso() == (list(rows), desk)


@pytest.mark.parametrize("blob", [
    b"\xc1",  # not msgpack
    codec.encode([[], [], [], []]),  # too few fields
    codec.encode([[], [], [], [], 0, 0, -1]),  # a negative penalty
    codec.encode([[[b"\x01" * 31, 5]], [], [], [], 0, 0, 0]),  # a 31-byte meter key
    codec.encode([[], [b"\x01" * 32], [], [[1, b"\x02" * 32, 5]], 0, 0, 0]),  # short pending
    codec.encode([[], [], ["one"], [], 0, 0, 0]),  # an interval that is text
    codec.encode({"rows": 1}),
    codec.encode([[], [], [], [], 0, 0, 0]) + b"\x00",  # trailing bytes
])
async def test_corrupt_desk_blob_is_a_storage_error(store: Store, blob: bytes) -> None:
    settlement = SettlementStore(store)
    await settlement.save_dso((), DeskRows(trades_settled=1))
    async with store.transaction() as tx:
        await tx.execute("UPDATE settlement_desk SET rows = ? WHERE id = 1", (blob,))
    with pytest.raises(StorageError):
        await settlement.load_dso()


async def test_tier_lists_by_epoch_in_tier_order_first_write_wins(store: Store) -> None:
    settlement = SettlementStore(store)
    assert await settlement.tiers(3) == []
    await settlement.save_tiers(3, [(7500, b"gold"), (2500, b"bronze"), (5000, b"silver")])
    await settlement.save_tiers(4, [(2500, b"next")])
    assert await settlement.tiers(3) == [b"bronze", b"silver", b"gold"]
    assert await settlement.tiers(4) == [b"next"]
    # A published list is signed and final: saving the epoch again changes nothing.
    await settlement.save_tiers(3, [(2500, b"other"), (9000, b"platinum")])
    assert await settlement.tiers(3) == [b"bronze", b"silver", b"gold", b"platinum"]
    await settlement.save_tiers(5, [])
    assert await settlement.tiers(5) == []


async def test_report_statuses_are_upserted(store: Store) -> None:
    settlement = SettlementStore(store)
    assert await settlement.reports() == {}
    await settlement.set_report(10, "sent")
    await settlement.set_report(11, "sent")
    await settlement.set_report(10, "refused", "no_trades")
    await settlement.set_report(11, "accepted")
    assert await settlement.reports() == {10: "refused", 11: "accepted"}
    reasons = await store.fetchall(
        "SELECT interval, reason FROM settlement_reports ORDER BY interval")
    assert reasons == [(10, "no_trades"), (11, "")]
    await settlement.set_report(10, "accepted")
    assert await store.fetchone(
        "SELECT status, reason FROM settlement_reports WHERE interval = 10") == ("accepted", "")
