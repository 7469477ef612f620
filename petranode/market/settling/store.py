"""Settlement's tables (component ``market_settlement``; docs/market.md "Settlement").

DSO: ``settlement_scores(prosumer PK, credential_key, score)`` — the reputation book;
``settlement_desk(id PK = 1, rows)`` — the desk's state (:class:`~..delivery.DeskRows`, canonical
msgpack), written with the scores in one transaction; ``settlement_tiers(epoch, tier, record)``
— the signed tier lists it published. Prosumer: ``settlement_reports(interval PK, status,
reason)`` — the delivery reports it sent and the DSO's verdicts.
"""

from __future__ import annotations

from typing import Final

from petranode.market.delivery import DeskRows, PendingRow
from petranode.market.reputation import ReputationRow
from petranode.store.errors import StorageError
from petranode.store.store import Migration, Store, as_blob, as_int
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value
from petranode.wire.errors import DecodeError

SETTLEMENT_MIGRATIONS: Final = (
    Migration(
        "market_settlement",
        1,
        """
        CREATE TABLE settlement_scores (
            prosumer BLOB PRIMARY KEY, credential_key BLOB NOT NULL,
            score INTEGER NOT NULL) STRICT;
        CREATE TABLE settlement_desk (id INTEGER PRIMARY KEY, rows BLOB NOT NULL) STRICT;
        CREATE TABLE settlement_tiers (
            epoch INTEGER NOT NULL, tier INTEGER NOT NULL, record BLOB NOT NULL,
            PRIMARY KEY (epoch, tier)) STRICT;
        CREATE TABLE settlement_reports (
            interval INTEGER PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL) STRICT;
        """,
    ),
)

#: The desk's state is bounded by what the network traded; 64 MiB is far beyond a microgrid.
_MAX_DESK_BYTES: Final = 64 * 1024 * 1024


def _desk_value(rows: DeskRows) -> list[Encodable]:
    return [
        [[k, d] for k, d in rows.debts],
        list(rows.claimed_offers),
        list(rows.settled_intervals),
        [[p.interval, p.meter_key, p.delivered_w, [[t, w] for t, w in p.trades]]
         for p in rows.pending],
        rows.trades_settled, rows.shortfall_w, rows.penalty_cents,
    ]


def _pairs(value: Value) -> tuple[tuple[bytes, int], ...]:
    return tuple((codec.expect_bytes(p[0], 32), codec.expect_int(p[1], 0, 2**64))
                 for p in (codec.expect_list(v, 2) for v in codec.expect_list(value)))


def _desk_rows(data: bytes) -> DeskRows:
    """Decoded shapes; the desk's ``from_rows`` checks the meaning."""
    f = codec.expect_list(codec.decode_canonical(data, max_size=_MAX_DESK_BYTES), 7)
    pending = tuple(
        PendingRow(codec.expect_int(p[0], 0, 2**63), codec.expect_bytes(p[1], 32),
                   codec.expect_int(p[2], 0, 2**32), _pairs(p[3]))
        for p in (codec.expect_list(v, 4) for v in codec.expect_list(f[3])))
    return DeskRows(
        debts=_pairs(f[0]),
        claimed_offers=tuple(codec.expect_bytes(v, 32) for v in codec.expect_list(f[1])),
        settled_intervals=tuple(codec.expect_int(v, 0, 2**63) for v in codec.expect_list(f[2])),
        pending=pending,
        trades_settled=codec.expect_int(f[4], 0, 2**63),
        shortfall_w=codec.expect_int(f[5], 0, 2**63),
        penalty_cents=codec.expect_int(f[6], 0, 2**63),
    )


class SettlementStore:
    """The ``market_settlement`` tables."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def save_dso(self, scores: tuple[ReputationRow, ...], desk: DeskRows) -> None:
        """The reputation book and the desk, together (one transaction)."""
        async with self._store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO settlement_scores (prosumer, credential_key, score) "
                "VALUES (?, ?, ?) ON CONFLICT (prosumer) DO UPDATE SET score = excluded.score",
                [(r.prosumer, r.credential_key, r.score) for r in scores])
            await tx.execute(
                "INSERT INTO settlement_desk (id, rows) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET rows = excluded.rows",
                (codec.encode(_desk_value(desk)),))

    async def load_dso(self) -> tuple[list[ReputationRow], DeskRows]:
        rows = await self._store.fetchall(
            "SELECT prosumer, credential_key, score FROM settlement_scores")
        scores = [ReputationRow(as_blob(r[0]), as_blob(r[1]), as_int(r[2])) for r in rows]
        desk = await self._store.fetchone("SELECT rows FROM settlement_desk WHERE id = 1")
        if desk is None:
            return scores, DeskRows()
        try:
            return scores, _desk_rows(as_blob(desk[0]))
        except (DecodeError, IndexError, ValueError) as exc:
            raise StorageError("corrupt settlement desk row") from exc

    async def save_tiers(self, epoch: int, lists: list[tuple[int, bytes]]) -> None:
        async with self._store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO settlement_tiers (epoch, tier, record) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", [(epoch, tier, record) for tier, record in lists])

    async def tiers(self, epoch: int) -> list[bytes]:
        rows = await self._store.fetchall(
            "SELECT record FROM settlement_tiers WHERE epoch = ? ORDER BY tier", (epoch,))
        return [as_blob(r[0]) for r in rows]

    async def set_report(self, interval: int, status: str, reason: str = "") -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO settlement_reports (interval, status, reason) VALUES (?, ?, ?) "
                "ON CONFLICT (interval) DO UPDATE SET status = excluded.status, "
                "reason = excluded.reason", (interval, status, reason))

    async def reports(self) -> dict[int, str]:
        rows = await self._store.fetchall("SELECT interval, status FROM settlement_reports")
        return {as_int(r[0]): str(r[1]) for r in rows}
