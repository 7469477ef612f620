"""Transactions and reads of the shared store (SPEC §5)."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from petranode.store.errors import ConstraintViolated, StorageError, StoreClosed
from petranode.store.store import Migration, Row, Store

ACCOUNTS = Migration(
    "wallet",
    1,
    """
    CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE transfers (id INTEGER PRIMARY KEY, account TEXT NOT NULL REFERENCES accounts (name));
    """,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "node.db", [ACCOUNTS]) as opened:
        yield opened


async def balances(store: Store) -> list[Row]:
    return await store.fetchall("SELECT name, balance FROM accounts ORDER BY name")


async def test_committed_transaction_is_visible(store: Store) -> None:
    async with store.transaction() as tx:
        changed = await tx.executemany(
            "INSERT INTO accounts VALUES (?, ?)", [("alice", 5), ("bob", 7)]
        )
        assert await tx.fetchall("SELECT name FROM accounts ORDER BY name") == [
            ("alice",),
            ("bob",),
        ]

    assert changed == 2
    assert await balances(store) == [("alice", 5), ("bob", 7)]
    assert await store.fetchone("SELECT balance FROM accounts WHERE name = ?", ("bob",)) == (7,)
    assert await store.fetchone("SELECT balance FROM accounts WHERE name = 'carol'") is None


class Abort(Exception):
    pass


async def test_exception_rolls_back_everything_and_propagates(store: Store) -> None:
    with pytest.raises(Abort):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO accounts VALUES ('alice', 5)")
            await tx.execute("UPDATE accounts SET balance = 0")
            raise Abort

    assert await balances(store) == []


async def test_cancellation_rolls_back_and_the_store_stays_usable(store: Store) -> None:
    inside = asyncio.Event()

    async def write_then_hang() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO accounts VALUES ('alice', 5)")
            inside.set()
            await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        task = group.create_task(write_then_hang())
        await inside.wait()
        task.cancel()

    assert task.cancelled()
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO accounts VALUES ('bob', 1)")
    assert await balances(store) == [("bob", 1)]


async def test_readers_see_only_committed_state(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO accounts VALUES ('alice', 5)")
        assert await balances(store) == []

    assert await balances(store) == [("alice", 5)]


async def test_concurrent_transactions_are_serialised(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO accounts VALUES ('alice', 0)")

    async def increment() -> None:
        async with store.transaction() as tx:
            row = await tx.fetchone("SELECT balance FROM accounts WHERE name = 'alice'")
            assert row is not None
            await asyncio.sleep(0)  # let the other writers try to interleave
            await tx.execute("UPDATE accounts SET balance = ? WHERE name = 'alice'", (row[0] + 1,))  # type: ignore[operator]

    async with asyncio.TaskGroup() as group:
        for _ in range(20):
            group.create_task(increment())

    assert await balances(store) == [("alice", 20)]


async def test_constraint_violation_is_translated_once(store: Store) -> None:
    with pytest.raises(ConstraintViolated) as raised:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO accounts VALUES ('alice', 5)")
            await tx.execute("INSERT INTO accounts VALUES ('alice', 6)")

    assert isinstance(raised.value.__cause__, sqlite3.IntegrityError)
    assert await balances(store) == []


async def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(ConstraintViolated):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO transfers (account) VALUES ('nobody')")


async def test_bad_sql_is_a_storage_error(store: Store) -> None:
    with pytest.raises(StorageError):
        await store.fetchall("SELECT nothing FROM nowhere")


async def test_reads_cannot_write(store: Store) -> None:
    with pytest.raises(StorageError):
        await store.fetchall("INSERT INTO accounts VALUES ('mallory', 1000) RETURNING name")


async def test_transaction_cannot_be_used_after_it_ends(store: Store) -> None:
    async with store.transaction() as tx:
        pass

    with pytest.raises(StoreClosed):
        await tx.execute("INSERT INTO accounts VALUES ('late', 1)")


async def test_closed_store_refuses_use(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.db", []) as store:
        pass

    with pytest.raises(StoreClosed):
        await store.fetchone("SELECT 1")
    with pytest.raises(StoreClosed):
        async with store.transaction():
            pass


async def test_meta_values_round_trip_and_overwrite(store: Store) -> None:
    assert await store.get_meta("node_id") is None

    await store.put_meta("node_id", b"\x01\x02")
    await store.put_meta("node_id", b"\x03")

    assert await store.get_meta("node_id") == b"\x03"
