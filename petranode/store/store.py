"""The node's SQLite database, shared by every layer that persists (SPEC §3, §5).

One file per node, opened with WAL journaling and ``synchronous=FULL``: a transaction whose commit
has returned survives ``kill -9`` and power loss, which is what "a killed node restarts with
nothing final lost" (SPEC §5) requires of ledger blocks and wallet state.

Writes go through :meth:`Store.transaction` on a dedicated writer connection, one at a time
(an asyncio.Lock; SQLite has a single writer anyway) and ``BEGIN IMMEDIATE`` so the write lock is
taken up front rather than on the first write. Reads through :meth:`Store.fetchone` and
:meth:`Store.fetchall` use a second, query-only connection: under WAL they see the last committed
state and never a transaction in progress.

Schemas evolve by :class:`Migration` s: each component (``netdb``, ``ledger``, ``market``, …)
numbers its own from 1 without gaps; ``schema_versions`` records how far each has got; each
migration runs in one transaction together with its version bump. sqlite3 errors are translated
into :mod:`petranode.store.errors` here and nowhere else.
"""

import asyncio
import contextlib
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeAlias, final

import aiosqlite

from petranode.store.errors import (
    ConstraintViolated,
    MigrationFailed,
    MigrationsInvalid,
    SchemaTooNew,
    StorageError,
    StoreClosed,
)

log = logging.getLogger(__name__)

SqlValue: TypeAlias = None | int | float | str | bytes
SqlParams: TypeAlias = Sequence[SqlValue] | Mapping[str, SqlValue]
Row: TypeAlias = tuple[SqlValue, ...]

_COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_]*")

_SCHEMA_VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT"
)


def split_statements(sql: str) -> list[str]:
    """The complete statements of a script, split where SQLite itself would end them.

    ``sqlite3.complete_statement`` knows about string literals, comments and trigger bodies,
    so a ``;`` inside any of them does not split. Trailing text that is not a complete
    statement is refused: it would otherwise be silently dropped.
    """
    statements: list[str] = []
    *terminated, pending = sql.split(";")
    candidate = ""
    for piece in terminated:
        candidate += piece + ";"
        if sqlite3.complete_statement(candidate):
            if not _only_comments(candidate.removesuffix(";")):
                statements.append(candidate.strip())
            candidate = ""
    leftover = candidate + pending
    if not _only_comments(leftover):
        raise ValueError(f"unterminated SQL statement: {leftover.strip()[:60]!r}")
    return statements


def _only_comments(text: str) -> bool:
    without_block = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return all(
        not line.strip() or line.strip().startswith("--") for line in without_block.splitlines()
    )


@final
@dataclass(frozen=True, slots=True)
class Migration:
    """Step ``version`` of ``component``'s schema: SQL statements run in one transaction.

    ``sql`` may hold several ``;``-separated statements but no transaction control and no PRAGMA
    that is a no-op inside a transaction (``foreign_keys``, ``journal_mode``).
    """

    component: str
    version: int
    sql: str

    def __post_init__(self) -> None:
        if not _COMPONENT_NAME.fullmatch(self.component):
            raise ValueError(f"component name {self.component!r} must match [a-z][a-z0-9_]*")
        if self.version < 1:
            raise ValueError(f"{self.component}: migration versions start at 1")
        if not split_statements(self.sql):
            raise ValueError(f"{self.component} v{self.version}: migration has no statement")


# The store's own tables go through the same mechanism as every other component's.
STORE_MIGRATIONS = (
    Migration(
        "store",
        1,
        # Small node metadata (node id, last seen height, …); values are opaque bytes.
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;",
    ),
)


class Transaction:
    """The open write transaction handed out by :meth:`Store.transaction`."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection: aiosqlite.Connection | None = connection

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with _translated():
            cursor = await self._open().execute(sql, params)
            await cursor.close()
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[SqlParams]) -> int:
        """Run one statement once per parameter set; returns the rows changed in total."""
        with _translated():
            cursor = await self._open().executemany(sql, rows)
            await cursor.close()
        return cursor.rowcount

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        """The first row of a query, seeing this transaction's own writes."""
        with _translated():
            async with self._open().execute(sql, params) as cursor:
                row = await cursor.fetchone()
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        """All rows of a query, seeing this transaction's own writes."""
        with _translated():
            async with self._open().execute(sql, params) as cursor:
                rows = await cursor.fetchall()
        return [tuple(row) for row in rows]

    def end(self) -> None:
        """Refuse further use: the transaction is being committed or rolled back."""
        self._connection = None

    def _open(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise StoreClosed("transaction used after it ended")
        return self._connection


class Store:
    """The node database at ``path``, migrated to ``migrations`` while the context is entered."""

    def __init__(
        self, path: Path, migrations: Sequence[Migration], *, busy_timeout: float = 5.0
    ) -> None:
        self.path = path
        self._migrations = (*STORE_MIGRATIONS, *migrations)
        self._busy_timeout = busy_timeout
        self._write_lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def __aenter__(self) -> Self:
        """Open, configure and migrate; returns once the schema is current."""
        plan = _plan_by_component(self._migrations)
        log.debug("store.open.started path=%s", self.path)
        try:
            self._writer = await self._connect()
            await self._configure_writer(self._writer)
            await self._migrate(plan)
            self._reader = await self._connect()
            await self._execute_on(self._reader, "PRAGMA query_only = ON")
        except BaseException:
            await self._close_connections()
            raise
        log.debug("store.open.complete path=%s", self.path)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Wait for a transaction in progress rather than closing under it.
        async with self._write_lock:
            await self._close_connections()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``async with store.transaction() as tx:`` — commit on success, roll back on exception.

        Transactions are serialised; a rollback runs to completion even if the task is cancelled.
        """
        async with self._write_lock:
            writer = self._open_writer()
            await self._execute_on(writer, "BEGIN IMMEDIATE")
            tx = Transaction(writer)
            try:
                yield tx
                tx.end()
                await _run_to_completion(_commit(writer))
            except BaseException:
                tx.end()
                await _run_to_completion(_rollback(writer))
                raise

    async def fetchone(self, sql: str, params: SqlParams = ()) -> Row | None:
        """The first row of a read-only query over the last committed state."""
        with _translated():
            async with self._open_reader().execute(sql, params) as cursor:
                row = await cursor.fetchone()
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: SqlParams = ()) -> list[Row]:
        """All rows of a read-only query over the last committed state."""
        with _translated():
            async with self._open_reader().execute(sql, params) as cursor:
                rows = await cursor.fetchall()
        return [tuple(row) for row in rows]

    async def get_meta(self, key: str) -> bytes | None:
        """The metadata value stored under ``key``, or None."""
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        if row is None:
            return None
        value = row[0]
        if not isinstance(value, bytes):
            raise StorageError(f"meta value of {key!r} is not a blob")
        return value

    async def put_meta(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value, in its own transaction."""
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def schema_version(self, component: str) -> int:
        """The schema version recorded for ``component``; 0 if it has none."""
        row = await self.fetchone(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        )
        return 0 if row is None else as_int(row[0])

    # --- opening --------------------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        with _translated():
            # isolation_level=None: the sqlite3 module must not open transactions behind our
            # back; every transaction here is an explicit BEGIN IMMEDIATE … COMMIT/ROLLBACK.
            return await aiosqlite.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None
            )

    async def _configure_writer(self, writer: aiosqlite.Connection) -> None:
        busy_ms = int(self._busy_timeout * 1000)
        for pragma in (
            # WAL: readers never block the writer and a commit is one append + fsync.
            "PRAGMA journal_mode = WAL",
            # FULL: fsync the WAL at every commit so committed data survives power loss, not
            # only a process kill (NORMAL would lose the last commits on power loss).
            "PRAGMA synchronous = FULL",
            "PRAGMA foreign_keys = ON",
            f"PRAGMA busy_timeout = {busy_ms}",
        ):
            await self._execute_on(writer, pragma)
        mode = await self._scalar(writer, "PRAGMA journal_mode")
        if mode != "wal":
            raise StorageError(f"{self.path}: the file system does not support WAL ({mode!r})")

    async def _migrate(self, plan: dict[str, tuple[Migration, ...]]) -> None:
        writer = self._open_writer()
        await self._execute_on(writer, _SCHEMA_VERSIONS_DDL)
        for component, migrations in plan.items():
            recorded = as_int(
                await self._scalar(
                    writer,
                    "SELECT coalesce(max(version), 0) FROM schema_versions WHERE component = ?",
                    (component,),
                )
            )
            if recorded > len(migrations):
                raise SchemaTooNew(component, recorded, len(migrations))
            for migration in migrations[recorded:]:
                await self._apply(writer, migration)

    async def _apply(self, writer: aiosqlite.Connection, migration: Migration) -> None:
        await self._execute_on(writer, "BEGIN IMMEDIATE")
        try:
            for statement in split_statements(migration.sql):
                await self._execute_on(writer, statement)
            await self._execute_on(
                writer,
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (migration.component, migration.version),
            )
            await _run_to_completion(_commit(writer))
        except StorageError as exc:
            await _run_to_completion(_rollback(writer))
            raise MigrationFailed(migration.component, migration.version) from exc
        except BaseException:
            await _run_to_completion(_rollback(writer))
            raise
        log.info("store.migrated component=%s version=%d", migration.component, migration.version)

    # --- helpers --------------------------------------------------------------------------

    async def _execute_on(
        self, connection: aiosqlite.Connection, sql: str, params: SqlParams = ()
    ) -> None:
        with _translated():
            cursor = await connection.execute(sql, params)
            await cursor.close()

    async def _scalar(
        self, connection: aiosqlite.Connection, sql: str, params: SqlParams = ()
    ) -> SqlValue:
        with _translated():
            async with connection.execute(sql, params) as cursor:
                row = await cursor.fetchone()
        if row is None:
            raise StorageError("a scalar query returned no row")
        value: SqlValue = row[0]
        return value

    def _open_writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreClosed(f"{self.path} is not open")
        return self._writer

    def _open_reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreClosed(f"{self.path} is not open")
        return self._reader

    async def _close_connections(self) -> None:
        connections = (self._reader, self._writer)
        self._reader = self._writer = None
        for connection in connections:
            if connection is not None:
                with _translated():
                    await connection.close()


def _plan_by_component(migrations: Sequence[Migration]) -> dict[str, tuple[Migration, ...]]:
    """Migrations grouped per component in first-seen order, each numbered 1…n without gaps."""
    grouped: dict[str, list[Migration]] = {}
    for migration in migrations:
        grouped.setdefault(migration.component, []).append(migration)
    plan: dict[str, tuple[Migration, ...]] = {}
    for component, steps in grouped.items():
        ordered = tuple(sorted(steps, key=lambda step: step.version))
        versions = [step.version for step in ordered]
        if versions != list(range(1, len(ordered) + 1)):
            raise MigrationsInvalid(
                f"{component}: migration versions {versions} are not 1…{len(ordered)}"
            )
        plan[component] = ordered
    return plan


def as_int(value: SqlValue) -> int:
    """A column value that must be an integer; anything else means a corrupt database."""
    if not isinstance(value, int):
        raise StorageError(f"expected an integer, found {type(value).__name__}")
    return value


def as_blob(value: SqlValue) -> bytes:
    """A column value that must be a blob; anything else means a corrupt database."""
    if not isinstance(value, bytes):
        raise StorageError(f"expected a blob, found {type(value).__name__}")
    return value


async def _commit(connection: aiosqlite.Connection) -> None:
    with _translated():
        await connection.commit()


async def _rollback(connection: aiosqlite.Connection) -> None:
    # A failed COMMIT or an I/O error may already have ended the transaction.
    if connection.in_transaction:
        with _translated():
            await connection.rollback()


async def _run_to_completion(step: Coroutine[None, None, None]) -> None:
    """Await ``step`` to its end even if this task is cancelled meanwhile, then re-raise that.

    A COMMIT or ROLLBACK abandoned halfway would leave the writer connection inside a
    transaction; like httpcore's shielded cleanup, we finish it and then honour the
    cancellation. The task cannot outlive this function, which awaits it until it is done.
    """
    task = asyncio.ensure_future(step)
    cancellation: asyncio.CancelledError | None = None
    while not task.done():
        try:
            # Unlike awaiting the task, wait() does not cancel it when we are cancelled.
            await asyncio.wait([task])
        except asyncio.CancelledError as exc:
            cancellation = exc
    if cancellation is None:
        task.result()
        return
    if task.exception() is not None:
        log.error("store.cleanup.failed while cancelled", exc_info=task.exception())
    raise cancellation


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Translate sqlite3 errors into storage errors, once, at this boundary."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise ConstraintViolated(str(exc)) from exc
    except sqlite3.Error as exc:
        raise StorageError(str(exc)) from exc
