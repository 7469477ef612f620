"""The DSO's market state in the node database: registrations, feeder limits and grants
(SPEC §4.7), one table each, every change in one SQL transaction with what caused it.

The rows are :meth:`CapacityBook.to_rows`' ``(key, encoded record)``; loading goes through
:meth:`CapacityBook.from_rows`, whose bounded decoders refuse a corrupt row.
"""

from __future__ import annotations

from typing import Final

from petranode.market.registry import BookRows, CapacityBook, FeederLimit, Grant, Registration
from petranode.store.store import Migration, Store, as_blob

MARKET_MIGRATIONS: Final = (
    Migration(
        "market",
        1,
        "CREATE TABLE market_registrations (meter_key BLOB PRIMARY KEY, record BLOB NOT NULL)"
        " STRICT;"
        "CREATE TABLE market_feeder_limits (feeder TEXT PRIMARY KEY, record BLOB NOT NULL)"
        " STRICT;"
        "CREATE TABLE market_grants (request_id BLOB PRIMARY KEY, record BLOB NOT NULL)"
        " STRICT;",
    ),
)


async def load_book(store: Store) -> CapacityBook:
    registrations = await store.fetchall("SELECT meter_key, record FROM market_registrations")
    limits = await store.fetchall("SELECT feeder, record FROM market_feeder_limits")
    grants = await store.fetchall("SELECT request_id, record FROM market_grants")
    return CapacityBook.from_rows(BookRows(
        registrations=tuple((as_blob(k), as_blob(v)) for k, v in registrations),
        feeder_limits=tuple((str(k), as_blob(v)) for k, v in limits),
        grants=tuple((as_blob(k), as_blob(v)) for k, v in grants),
    ))


async def save_registration(store: Store, registration: Registration) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO market_registrations (meter_key, record) VALUES (?, ?)",
                         (registration.meter_key, registration.encode()))


async def save_feeder_limit(store: Store, limit: FeederLimit) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT OR REPLACE INTO market_feeder_limits (feeder, record) VALUES (?, ?)",
            (limit.feeder, limit.encode()))


async def save_grant(store: Store, grant: Grant) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO market_grants (request_id, record) VALUES (?, ?)",
                         (grant.request_id, grant.encode()))


async def delete_grant(store: Store, request_id: bytes) -> None:
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM market_grants WHERE request_id = ?", (request_id,))
