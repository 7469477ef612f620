"""Persistence of validated netDb records in the node's database (SPEC §4.3, §5).

A restart should know its routers without asking the DHT: every record the table accepts is
written to ``netdb_records`` (key, kind, canonical encoding, published time) and read back at
start. What is read back is validated again like any other offer — the database is a cache,
not an authority — so a row that has expired, or that a newer genesis no longer admits, is
dropped rather than served.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from petranode.net.netdb.table import Entry
from petranode.store.errors import StorageError
from petranode.store.store import Migration, Store

NETDB_MIGRATIONS: Final = (
    Migration(
        "netdb",
        1,
        "CREATE TABLE netdb_records ("
        "key BLOB PRIMARY KEY, kind TEXT NOT NULL, record BLOB NOT NULL, "
        "published_ms INTEGER NOT NULL) STRICT;",
    ),
)


async def load_records(store: Store) -> list[tuple[bytes, bytes]]:
    """Every stored ``(key, encoded record)``, oldest publication first."""
    rows = await store.fetchall("SELECT key, record FROM netdb_records ORDER BY published_ms")
    records = []
    for key, record in rows:
        if not isinstance(key, bytes) or not isinstance(record, bytes):
            raise StorageError("netdb_records holds a non-blob key or record")
        records.append((key, record))
    return records


async def save_records(store: Store, entries: Sequence[Entry]) -> None:
    """Insert or replace ``entries`` in one transaction."""
    if not entries:
        return
    async with store.transaction() as tx:
        await tx.executemany(
            "INSERT INTO netdb_records (key, kind, record, published_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, record = excluded.record, "
            "published_ms = excluded.published_ms",
            [(e.record.key, e.kind.value, e.data, e.record.published_ms) for e in entries],
        )


async def delete_records(store: Store, keys: Collection[bytes]) -> None:
    """Remove the rows of ``keys`` in one transaction."""
    if not keys:
        return
    async with store.transaction() as tx:
        await tx.executemany("DELETE FROM netdb_records WHERE key = ?", [(k,) for k in keys])
