"""The metering service's tables in the node database (SPEC §4.8).

On the DSO: the meters' signed commitments (Pedersen commitments, not readings) per meter and
interval, the rosters and price policies it signed per billing period, feeder aggregates
(totals only, NULL when unavailable), verified bill totals, and counts of rejected bills by
reason. On a meter: three progress marks in ``meta`` (``metering.meter.*``). Nothing here
holds one meter's reading of one interval.
"""

from __future__ import annotations

import logging
from typing import Final

from petranode.market.aggregate import FeederLoad, FeederRoster
from petranode.market.billing import PricePolicy, VerifiedBill
from petranode.market.meter import MeterCommitment
from petranode.store.store import Migration, Store, as_blob, as_int

log = logging.getLogger(__name__)

METERING_MIGRATIONS: Final = (
    Migration(
        "metering",
        1,
        "CREATE TABLE metering_commitments (meter_key BLOB NOT NULL, interval INTEGER NOT NULL,"
        " record BLOB NOT NULL, PRIMARY KEY (meter_key, interval)) STRICT, WITHOUT ROWID;"
        "CREATE TABLE metering_rosters (feeder TEXT NOT NULL, period INTEGER NOT NULL,"
        " record BLOB NOT NULL, PRIMARY KEY (feeder, period)) STRICT;"
        "CREATE TABLE metering_policies (period INTEGER PRIMARY KEY, policy_id BLOB NOT NULL"
        " UNIQUE, record BLOB NOT NULL) STRICT;"
        "CREATE TABLE metering_aggregates (feeder TEXT NOT NULL, interval INTEGER NOT NULL,"
        " net_load_w INTEGER, meters INTEGER NOT NULL, PRIMARY KEY (feeder, interval)) STRICT;"
        "CREATE TABLE metering_bills (meter_key BLOB NOT NULL, first_interval INTEGER NOT NULL,"
        " last_interval INTEGER NOT NULL, policy_id BLOB NOT NULL,"
        " import_cents INTEGER NOT NULL, export_cents INTEGER NOT NULL,"
        " total_cents INTEGER NOT NULL, PRIMARY KEY (meter_key, first_interval)) STRICT;"
        "CREATE TABLE metering_bill_rejections (reason TEXT PRIMARY KEY,"
        " count INTEGER NOT NULL) STRICT;",
    ),
)

META_NEXT_INTERVAL: Final = "metering.meter.next_interval"
META_FIRST_INTERVAL: Final = "metering.meter.first_interval"
META_BILLED_THROUGH: Final = "metering.meter.billed_through"


# -- meter -------------------------------------------------------------------------------------


async def get_mark(store: Store, key: str) -> int | None:
    raw = await store.get_meta(key)
    return None if raw is None else int.from_bytes(raw, "big", signed=True)


async def put_mark(store: Store, key: str, value: int) -> None:
    await store.put_meta(key, value.to_bytes(8, "big", signed=True))


# -- DSO ---------------------------------------------------------------------------------------


async def save_commitment(store: Store, commitment: MeterCommitment) -> bool:
    """Keep the first commitment of a meter for an interval; whether this one was new."""
    async with store.transaction() as tx:
        changed = await tx.execute(
            "INSERT OR IGNORE INTO metering_commitments (meter_key, interval, record)"
            " VALUES (?, ?, ?)", (commitment.meter_key, commitment.interval, commitment.encode()))
    return changed > 0


async def load_commitments(store: Store, meter_key: bytes, first: int,
                           last: int) -> list[MeterCommitment]:
    rows = await store.fetchall(
        "SELECT record FROM metering_commitments WHERE meter_key = ? AND interval BETWEEN ? AND ?"
        " ORDER BY interval", (meter_key, first, last))
    return [MeterCommitment.decode(as_blob(row[0])) for row in rows]


async def save_roster(store: Store, period: int, roster: FeederRoster) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO metering_rosters (feeder, period, record) VALUES (?, ?, ?)",
                         (roster.feeder, period, roster.encode()))


async def load_rosters(store: Store, since_period: int) -> list[tuple[int, FeederRoster]]:
    rows = await store.fetchall(
        "SELECT period, record FROM metering_rosters WHERE period >= ?", (since_period,))
    return [(as_int(p), FeederRoster.decode(as_blob(r))) for p, r in rows]


async def save_policy(store: Store, period: int, policy: PricePolicy) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT OR IGNORE INTO metering_policies (period, policy_id, record) VALUES (?, ?, ?)",
            (period, policy.policy_id, policy.encode()))


async def load_policy(store: Store, *, period: int | None = None,
                      policy_id: bytes | None = None) -> PricePolicy | None:
    if period is not None:
        row = await store.fetchone("SELECT record FROM metering_policies WHERE period = ?",
                                   (period,))
    else:
        row = await store.fetchone("SELECT record FROM metering_policies WHERE policy_id = ?",
                                   (policy_id,))
    return None if row is None else PricePolicy.decode(as_blob(row[0]))


async def save_aggregate(store: Store, feeder: str, interval: int, load: FeederLoad | None,
                         meters: int) -> None:
    """A feeder's total for an interval, or NULL: unavailable (a meter did not report)."""
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT OR IGNORE INTO metering_aggregates (feeder, interval, net_load_w, meters)"
            " VALUES (?, ?, ?, ?)",
            (feeder, interval, None if load is None else load.net_load_w, meters))


async def load_aggregate(store: Store, feeder: str, interval: int) -> tuple[int | None, int] | None:
    row = await store.fetchone(
        "SELECT net_load_w, meters FROM metering_aggregates WHERE feeder = ? AND interval = ?",
        (feeder, interval))
    if row is None:
        return None
    return (None if row[0] is None else as_int(row[0])), as_int(row[1])


async def save_bill(store: Store, bill: VerifiedBill) -> bool:
    async with store.transaction() as tx:
        changed = await tx.execute(
            "INSERT OR IGNORE INTO metering_bills (meter_key, first_interval, last_interval,"
            " policy_id, import_cents, export_cents, total_cents) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bill.meter_key, bill.first_interval, bill.last_interval, bill.policy_id,
             bill.import_cents, bill.export_cents, bill.total_cents))
    return changed > 0


async def count_rejection(store: Store, reason: str) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO metering_bill_rejections (reason, count) VALUES (?, 1)"
            " ON CONFLICT (reason) DO UPDATE SET count = count + 1", (reason,))


#: Verified bills listed by ``dso.bills`` at most (newest first).
MAX_LISTED_BILLS: Final = 1000


async def load_bills(store: Store) -> list[dict[str, str | int]]:
    rows = await store.fetchall(
        "SELECT meter_key, first_interval, last_interval, import_cents, export_cents,"
        " total_cents FROM metering_bills ORDER BY last_interval DESC, meter_key LIMIT ?",
        (MAX_LISTED_BILLS,))
    return [{"meter_key": as_blob(k).hex(), "first_interval": as_int(a),
             "last_interval": as_int(b), "import_cents": as_int(i),
             "export_cents": as_int(e), "total_cents": as_int(t)}
            for k, a, b, i, e, t in rows]


async def metering_counts(store: Store) -> dict[str, object]:
    async def scalar(sql: str) -> int:
        row = await store.fetchone(sql)
        return 0 if row is None else as_int(row[0])

    rejections = await store.fetchall(
        "SELECT reason, count FROM metering_bill_rejections ORDER BY reason")
    return {
        "commitments": await scalar("SELECT count(*) FROM metering_commitments"),
        "aggregates_complete": await scalar(
            "SELECT count(*) FROM metering_aggregates WHERE net_load_w IS NOT NULL"),
        "aggregates_unavailable": await scalar(
            "SELECT count(*) FROM metering_aggregates WHERE net_load_w IS NULL"),
        "bills_verified": await scalar("SELECT count(*) FROM metering_bills"),
        "bills_rejected": {str(reason): as_int(count) for reason, count in rejections},
    }
