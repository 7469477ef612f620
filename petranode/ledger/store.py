"""The ledger's persistence: blocks, certificates and state in SQLite (SPEC §4.6, §5).

:meth:`LedgerStore.commit_block` writes a final block — its bytes, its commit certificate, its
transactions and the :class:`~petranode.ledger.state.StateDelta` (new outputs, spent key
images) — in ONE SQL transaction (CometBFT ``store/store.go`` ``SaveBlock`` plus
``state/store.go``, here made atomic together). With the store's WAL and
``synchronous=FULL``, ``kill -9`` at any moment leaves either the whole block or none of it;
a block whose commit returned is never lost.

Blocks and certificates are opaque bytes here (the consensus layer owns their formats); the
store checks only that heights are consecutive. Schema (component ``ledger``, version 1):

* ``blocks(height PK, hash UNIQUE, block, round)``, ``certificates(height PK, certificate)``;
* ``txs(hash PK, tx, height, tx_index)`` and ``block_txs(height, tx_index, tx_hash)``;
* ``outputs((asset_id, global_index) PK, one_time_key, commitment, height, tx_hash,
  output_index)``: the ring members of every input;
* ``key_images(key_image PK, tx_hash, height)``: the primary key is the double-spend rule's
  last line of defence;
* ``evidence(id PK, height, evidence UNIQUE)``: conflicting signed votes, opaque.

Reads serve the pure code through :meth:`LedgerStore.snapshot_for`: it loads exactly what a
list of transactions refers to (ring members, key images, hashes, output counts of the assets
they create) into a :class:`~petranode.ledger.state.LedgerSnapshot`. The ledger service is
the only writer and takes the snapshot, validates and commits in one task, so no commit
lands between the reads of one snapshot. A :class:`~petranode.ledger.extension.LedgerExtension`
(the market's book) adds its view to the snapshot and writes its tables in the block's
transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point
from petranode.ledger.extension import LedgerExtension
from petranode.ledger.state import LedgerSnapshot, LedgerView, OutputRecord, StateDelta
from petranode.ledger.tx import Tx, settled_height, tx_hash
from petranode.store.errors import StorageError
from petranode.store.store import Migration, Row, Store, as_blob, as_int

log = logging.getLogger(__name__)

LEDGER_MIGRATIONS: Final = (
    Migration(
        "ledger",
        1,
        """
        CREATE TABLE blocks (
            height INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, block BLOB NOT NULL,
            round INTEGER NOT NULL) STRICT;
        CREATE TABLE certificates (
            height INTEGER PRIMARY KEY REFERENCES blocks (height),
            certificate BLOB NOT NULL) STRICT;
        CREATE TABLE txs (
            hash BLOB PRIMARY KEY, tx BLOB NOT NULL,
            height INTEGER NOT NULL REFERENCES blocks (height),
            tx_index INTEGER NOT NULL) STRICT;
        CREATE TABLE block_txs (
            height INTEGER NOT NULL REFERENCES blocks (height), tx_index INTEGER NOT NULL,
            tx_hash BLOB NOT NULL REFERENCES txs (hash),
            PRIMARY KEY (height, tx_index)) STRICT;
        CREATE TABLE outputs (
            asset_id BLOB NOT NULL, global_index INTEGER NOT NULL,
            one_time_key BLOB NOT NULL, commitment BLOB NOT NULL,
            height INTEGER NOT NULL REFERENCES blocks (height),
            tx_hash BLOB NOT NULL REFERENCES txs (hash), output_index INTEGER NOT NULL,
            PRIMARY KEY (asset_id, global_index)) STRICT;
        CREATE INDEX outputs_by_tx ON outputs (tx_hash, output_index);
        CREATE TABLE key_images (
            key_image BLOB PRIMARY KEY, tx_hash BLOB NOT NULL REFERENCES txs (hash),
            height INTEGER NOT NULL REFERENCES blocks (height)) STRICT;
        CREATE TABLE evidence (
            id INTEGER PRIMARY KEY, height INTEGER NOT NULL,
            evidence BLOB NOT NULL UNIQUE) STRICT;
        """,
    ),
)

_OUTPUT_COLUMNS: Final = (
    "asset_id, global_index, one_time_key, commitment, height, tx_hash, output_index"
)
BLOCK_HASH_BYTES: Final = 32


def _output(row: Row) -> OutputRecord:
    # The database is ours, but a corrupt row must not become a ring member: decode strictly.
    try:
        return OutputRecord(
            as_blob(row[0]), as_int(row[1]), Point.from_bytes(as_blob(row[2])),
            Point.from_bytes(as_blob(row[3])), as_int(row[4]), as_blob(row[5]), as_int(row[6]),
        )
    except CryptoError as exc:
        raise StorageError("corrupt output row") from exc


class LedgerStore:
    """The ledger's tables in the node's :class:`~petranode.store.store.Store`."""

    def __init__(self, store: Store, extension: LedgerExtension | None = None) -> None:
        self._store = store
        self._extension = extension

    # -- writing ---------------------------------------------------------------------------

    async def commit_block(
        self,
        *,
        block: bytes,
        block_hash: bytes,
        certificate: bytes,
        delta: StateDelta,
        round: int = 0,
    ) -> None:
        """Persist a final block and everything it changes, all or nothing.

        ``delta.height`` must be the stored height plus one (``ValueError`` otherwise: the
        caller applied the block to the wrong state).
        """
        if len(block_hash) != BLOCK_HASH_BYTES:
            raise ValueError("block hash is 32 bytes")
        log.debug("ledger.commit.started height=%d hash=%s", delta.height, block_hash.hex())
        async with self._store.transaction() as tx:
            row = await tx.fetchone("SELECT coalesce(max(height), 0) FROM blocks")
            stored = 0 if row is None else as_int(row[0])
            if delta.height != stored + 1:
                raise ValueError(f"block {delta.height} does not follow stored {stored}")
            await tx.execute(
                "INSERT INTO blocks (height, hash, block, round) VALUES (?, ?, ?, ?)",
                (delta.height, block_hash, block, round),
            )
            await tx.execute(
                "INSERT INTO certificates (height, certificate) VALUES (?, ?)",
                (delta.height, certificate),
            )
            await tx.executemany(
                "INSERT INTO txs (hash, tx, height, tx_index) VALUES (?, ?, ?, ?)",
                [(a.tx_hash, a.data, delta.height, i) for i, a in enumerate(delta.txs)],
            )
            await tx.executemany(
                "INSERT INTO block_txs (height, tx_index, tx_hash) VALUES (?, ?, ?)",
                [(delta.height, i, a.tx_hash) for i, a in enumerate(delta.txs)],
            )
            await tx.executemany(
                f"INSERT INTO outputs ({_OUTPUT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (o.asset_id, o.global_index, o.one_time_key.raw, o.commitment.raw,
                     o.height, o.tx_hash, o.output_index)
                    for o in delta.outputs
                ],
            )
            await tx.executemany(
                "INSERT INTO key_images (key_image, tx_hash, height) VALUES (?, ?, ?)",
                [(ki, digest, delta.height) for ki, digest in delta.spent],
            )
            if self._extension is not None and delta.effects is not None:
                await self._extension.write(tx, delta.height, delta.effects)
        log.debug("ledger.commit.complete height=%d", delta.height)

    async def add_evidence(self, height: int, evidence: bytes) -> bool:
        """Keep conflicting signed messages (SPEC §4.6); False if already kept."""
        async with self._store.transaction() as tx:
            changed = await tx.execute(
                "INSERT INTO evidence (height, evidence) VALUES (?, ?) "
                "ON CONFLICT (evidence) DO NOTHING",
                (height, evidence),
            )
        return changed == 1

    # -- reading ---------------------------------------------------------------------------

    async def height(self) -> int:
        """Height of the last committed block; 0 before the first."""
        row = await self._store.fetchone("SELECT coalesce(max(height), 0) FROM blocks")
        return 0 if row is None else as_int(row[0])

    async def block_at(self, height: int) -> bytes | None:
        return await self._blob_or_none("SELECT block FROM blocks WHERE height = ?", height)

    async def block_hash_at(self, height: int) -> bytes | None:
        return await self._blob_or_none("SELECT hash FROM blocks WHERE height = ?", height)

    async def certificate_at(self, height: int) -> bytes | None:
        return await self._blob_or_none(
            "SELECT certificate FROM certificates WHERE height = ?", height
        )

    async def tx(self, digest: bytes) -> bytes | None:
        return await self._blob_or_none("SELECT tx FROM txs WHERE hash = ?", digest)

    async def block_tx_hashes(self, height: int) -> list[bytes]:
        rows = await self._store.fetchall(
            "SELECT tx_hash FROM block_txs WHERE height = ? ORDER BY tx_index", (height,)
        )
        return [as_blob(r[0]) for r in rows]

    async def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        row = await self._store.fetchone(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE asset_id = ? AND global_index = ?",
            (asset_id, global_index),
        )
        return None if row is None else _output(row)

    async def outputs_of(self, asset_id: bytes, start: int = 0, limit: int = 10_000
                         ) -> list[OutputRecord]:
        """Outputs of one asset from global index ``start``, in order (decoy sources)."""
        rows = await self._store.fetchall(
            f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE asset_id = ? AND global_index >= ? "
            "ORDER BY global_index LIMIT ?",
            (asset_id, start, limit),
        )
        return [_output(r) for r in rows]

    async def output_count(self, asset_id: bytes) -> int:
        row = await self._store.fetchone(
            "SELECT coalesce(max(global_index) + 1, 0) FROM outputs WHERE asset_id = ?",
            (asset_id,),
        )
        return 0 if row is None else as_int(row[0])

    async def key_image_spent(self, key_image: bytes) -> bool:
        row = await self._store.fetchone(
            "SELECT 1 FROM key_images WHERE key_image = ?", (key_image,)
        )
        return row is not None

    async def has_tx(self, digest: bytes) -> bool:
        return await self._store.fetchone("SELECT 1 FROM txs WHERE hash = ?", (digest,)) is not None

    async def evidence(self) -> list[bytes]:
        rows = await self._store.fetchall("SELECT evidence FROM evidence ORDER BY id")
        return [as_blob(r[0]) for r in rows]

    async def view_for(self, txs: Sequence[Tx], block_time_ms: int) -> LedgerView:
        """What validating ``txs`` at ``block_time_ms`` reads: the snapshot, plus the
        extension's state when there is one."""
        snapshot = await self.snapshot_for(txs)
        if self._extension is None:
            return snapshot
        return await self._extension.view(snapshot, txs, block_time_ms)

    async def snapshot_for(self, txs: Sequence[Tx]) -> LedgerSnapshot:
        """What validating ``txs`` reads, as a snapshot the pure code can use."""
        height = await self.height()
        outputs: dict[tuple[bytes, int], OutputRecord] = {}
        counts: dict[bytes, int] = {}
        settled: dict[bytes, int] = {}
        spent: list[bytes] = []
        known: list[bytes] = []
        for t in txs:
            for asset_id, index in t.ring_members():
                if asset_id not in settled:
                    settled[asset_id] = await self._output_count_until(
                        asset_id, settled_height(height))
                if (asset_id, index) not in outputs:
                    record = await self.output(asset_id, index)
                    if record is not None:
                        outputs[(asset_id, index)] = record
            for key_image in t.key_images():
                if await self.key_image_spent(key_image):
                    spent.append(key_image)
            digest = tx_hash(t)
            if await self.has_tx(digest):
                known.append(digest)
            for out in t.outputs:
                if out.asset_id not in counts:
                    counts[out.asset_id] = await self.output_count(out.asset_id)
        return LedgerSnapshot(height, outputs.values(), counts, spent, known, settled)

    async def _output_count_until(self, asset_id: bytes, height: int) -> int:
        """Outputs of ``asset_id`` created at ``height`` or before."""
        row = await self._store.fetchone(
            "SELECT count(*) FROM outputs WHERE asset_id = ? AND height <= ?",
            (asset_id, height))
        return 0 if row is None else as_int(row[0])

    async def _blob_or_none(self, sql: str, key: int | bytes) -> bytes | None:
        row = await self._store.fetchone(sql, (key,))
        return None if row is None else as_blob(row[0])
