"""Schema migrations per component: applied once, atomically, never downgraded (SPEC §5)."""

import sqlite3
from pathlib import Path

import pytest

from petranode.store.errors import MigrationFailed, MigrationsInvalid, SchemaTooNew
from petranode.store.store import Migration, Store, split_statements

# Not "IF NOT EXISTS": applying it a second time would fail, so idempotence is observable.
LEDGER_V1 = Migration("ledger", 1, "CREATE TABLE blocks (height INTEGER PRIMARY KEY, id BLOB);")
LEDGER_V2 = Migration(
    "ledger",
    2,
    """
    CREATE TABLE txs (id BLOB PRIMARY KEY, height INTEGER REFERENCES blocks (height));
    CREATE INDEX txs_by_height ON txs (height);
    """,
)
NETDB_V1 = Migration("netdb", 1, "CREATE TABLE routers (hash BLOB PRIMARY KEY, info BLOB);")


async def tables(store: Store) -> set[str]:
    rows = await store.fetchall("SELECT name FROM sqlite_schema WHERE type = 'table'")
    return {str(row[0]) for row in rows}


async def test_migrations_apply_once_and_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    for _ in range(2):
        async with Store(path, [LEDGER_V1, LEDGER_V2, NETDB_V1]) as store:
            assert {"blocks", "txs", "routers", "meta", "schema_versions"} <= await tables(store)
            assert await store.schema_version("ledger") == 2
            assert await store.schema_version("netdb") == 1
            assert await store.schema_version("market") == 0


async def test_new_migration_is_applied_on_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    async with Store(path, [LEDGER_V1]) as store, store.transaction() as tx:
        await tx.execute("INSERT INTO blocks VALUES (1, x'01')")

    async with Store(path, [LEDGER_V1, LEDGER_V2]) as store:
        assert await store.schema_version("ledger") == 2
        assert await store.fetchall("SELECT height FROM blocks") == [(1,)]


async def test_failing_migration_rolls_back_and_keeps_the_version(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    broken = Migration(
        "ledger", 2, "CREATE TABLE txs (id BLOB); INSERT INTO no_such_table VALUES (1);"
    )
    async with Store(path, [LEDGER_V1]):
        pass

    with pytest.raises(MigrationFailed) as raised:
        async with Store(path, [LEDGER_V1, broken]):
            pass

    assert (raised.value.component, raised.value.version) == ("ledger", 2)
    assert isinstance(raised.value.__cause__.__cause__, sqlite3.OperationalError)  # type: ignore[union-attr]
    async with Store(path, [LEDGER_V1]) as store:
        assert await store.schema_version("ledger") == 1
        assert "txs" not in await tables(store)


async def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    async with Store(path, [LEDGER_V1, LEDGER_V2]):
        pass

    with pytest.raises(SchemaTooNew) as raised:
        async with Store(path, [LEDGER_V1]):
            pass

    assert (raised.value.component, raised.value.found, raised.value.known) == ("ledger", 2, 1)


@pytest.mark.parametrize(
    "migrations",
    [
        [LEDGER_V1, Migration("ledger", 3, "SELECT 1;")],
        [LEDGER_V1, LEDGER_V1],
        [LEDGER_V2],
    ],
    ids=["gap", "duplicate", "not from 1"],
)
async def test_gap_or_duplicate_is_refused_before_touching_the_file(
    tmp_path: Path, migrations: list[Migration]
) -> None:
    path = tmp_path / "node.db"

    with pytest.raises(MigrationsInvalid):
        async with Store(path, migrations):
            pass

    assert not path.exists()


@pytest.mark.parametrize(
    ("component", "version", "sql"),
    [("Ledger", 1, "SELECT 1;"), ("ledger", 0, "SELECT 1;"), ("ledger", 1, " -- nothing\n")],
)
def test_malformed_migration_is_refused(component: str, version: int, sql: str) -> None:
    with pytest.raises(ValueError):
        Migration(component, version, sql)


async def test_store_runs_with_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.db", []) as store, store.transaction() as tx:
        assert await tx.fetchone("PRAGMA journal_mode") == ("wal",)
        assert await tx.fetchone("PRAGMA synchronous") == (2,)
        assert await tx.fetchone("PRAGMA foreign_keys") == (1,)


def test_statements_split_where_sqlite_ends_them() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE a (x TEXT DEFAULT 'semi;colon');
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            UPDATE a SET x = 'y;' WHERE rowid = new.rowid;
        END;
        /* trailing; comment */
    """

    statements = split_statements(script)

    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_unterminated_statement_is_refused() -> None:
    with pytest.raises(ValueError):
        split_statements("CREATE TABLE a (x); CREATE TABLE b (y)")
