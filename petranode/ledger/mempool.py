"""The pool of valid transactions waiting for a block, sans I/O (SPEC §4.6; CometBFT ``mempool/``).

Rules:

* **Admission** (:meth:`Mempool.add`): a transaction enters only if it is new (by hash), passes
  every tier of :func:`~petranode.ledger.tx.validate_tx` against the ledger view, and spends no
  key image another pooled transaction spends (first seen wins, as in Monero's pool). So any
  subset of the pool is a conflict-free block.
* **Bounds**: at most ``max_txs`` transactions and ``max_bytes`` encoded bytes (CometBFT's
  ``size`` and ``max_txs_bytes``), so a flood costs memory up to a known ceiling. When full, a
  newcomer must pay a strictly higher fee rate (fee per encoded byte) than the worst pooled
  transaction; the worst — lowest fee rate, and among equal rates the oldest — are evicted
  until it fits. Age is arrival order: no clock.
* **Commit** (:meth:`Mempool.update`): after a block, the transactions it included and those
  whose key images it spent leave the pool.
* **Reap** (:meth:`Mempool.reap`): a proposer takes transactions by fee rate, then age, up to a
  count and a byte budget.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, final

from petranode.ledger.state import LedgerView, StateDelta
from petranode.ledger.tx import BASE_REGISTRY, LedgerParams, TxRegistry, validate_tx
from petranode.ledger.tx_errors import TxReject, TxRejected

log = logging.getLogger(__name__)

#: CometBFT's default mempool ``size``.
DEFAULT_MAX_TXS: Final = 5000
#: CometBFT's default ``max_txs_bytes`` is 1 GiB for any chain; petranode transactions are
#: ~1–70 KiB and a microgrid's load small, so 64 MiB holds thousands of the largest.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024


@final
@dataclass(frozen=True, slots=True)
class PoolEntry:
    tx_hash: bytes
    data: bytes
    key_images: tuple[bytes, ...]
    fee: int
    #: Arrival order, the pool's notion of age.
    seq: int

    @property
    def fee_rate(self) -> Fraction:
        return Fraction(self.fee, len(self.data))


def _priority(entry: PoolEntry) -> tuple[Fraction, int]:
    """Higher fee rate first, then older first; the pool evicts from the other end."""
    return (-entry.fee_rate, entry.seq)


class Mempool:
    """Validated transactions, without I/O: the service feeds it bytes and ledger views."""

    def __init__(
        self,
        params: LedgerParams,
        *,
        max_txs: int = DEFAULT_MAX_TXS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        registry: TxRegistry = BASE_REGISTRY,
    ) -> None:
        if max_txs < 1 or max_bytes < 1:
            raise ValueError("mempool bounds must be positive")
        self._params = params
        self._max_txs = max_txs
        self._max_bytes = max_bytes
        self._registry = registry
        self._entries: dict[bytes, PoolEntry] = {}
        self._by_key_image: dict[bytes, bytes] = {}
        self._bytes = 0
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._entries

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_hash: bytes) -> bytes | None:
        entry = self._entries.get(tx_hash)
        return None if entry is None else entry.data

    def add(self, data: bytes, view: LedgerView) -> bytes:
        """Validate and admit ``data``; returns its hash or raises ``TxRejected``."""
        digest = hashlib.sha256(data).digest()
        if digest in self._entries:
            raise TxRejected(TxReject.DUPLICATE)
        tx = self._registry.decode(data)
        tx.validate_basic(self._params)
        key_images = tx.key_images()
        # Before the signatures: a conflict is cheap to find and common under replay.
        if any(ki in self._by_key_image for ki in key_images):
            raise TxRejected(TxReject.KEY_IMAGE_CONFLICT)
        entry = PoolEntry(digest, data, key_images, tx.fee, self._seq)
        victims = self._victims_for(entry)
        validate_tx(tx, view, self._params)
        for victim in victims:
            self._remove(victim.tx_hash)
            log.debug("mempool.evicted tx=%s", victim.tx_hash.hex())
        self._seq += 1
        self._entries[digest] = entry
        self._by_key_image.update((ki, digest) for ki in key_images)
        self._bytes += len(data)
        return digest

    def _victims_for(self, entry: PoolEntry) -> list[PoolEntry]:
        """Entries to evict so ``entry`` fits; ``POOL_FULL`` if it does not outbid them."""
        if len(entry.data) > self._max_bytes:
            raise TxRejected(TxReject.POOL_FULL)
        count, size = len(self._entries) + 1, self._bytes + len(entry.data)
        victims: list[PoolEntry] = []
        # Lowest fee rate first; among equal rates the oldest, which has had its chance.
        worst_first = sorted(self._entries.values(), key=lambda e: (e.fee_rate, e.seq))
        for candidate in worst_first:
            if count <= self._max_txs and size <= self._max_bytes:
                break
            victims.append(candidate)
            count -= 1
            size -= len(candidate.data)
        if count > self._max_txs or size > self._max_bytes:
            raise TxRejected(TxReject.POOL_FULL)
        if any(v.fee_rate >= entry.fee_rate for v in victims):
            raise TxRejected(TxReject.POOL_FULL)
        return victims

    def update(self, delta: StateDelta) -> list[bytes]:
        """Drop what a committed block included or made invalid; returns the dropped hashes."""
        gone = {applied.tx_hash for applied in delta.txs if applied.tx_hash in self._entries}
        for key_image, _ in delta.spent:
            holder = self._by_key_image.get(key_image)
            if holder is not None:
                gone.add(holder)
        for digest in gone:
            self._remove(digest)
        return sorted(gone)

    def evict(self, tx_hash: bytes) -> bool:
        """Forget a transaction that no longer applies; False if it was not pooled."""
        if tx_hash not in self._entries:
            return False
        self._remove(tx_hash)
        return True

    def reap(self, max_txs: int, max_bytes: int) -> list[bytes]:
        """Encoded transactions for a proposal: best fee rate first, within both budgets."""
        chosen: list[bytes] = []
        used = 0
        for entry in sorted(self._entries.values(), key=_priority):
            if len(chosen) >= max_txs:
                break
            if used + len(entry.data) > max_bytes:
                continue  # a smaller one further down may still fit
            chosen.append(entry.data)
            used += len(entry.data)
        return chosen

    def _remove(self, digest: bytes) -> None:
        entry = self._entries.pop(digest)
        for key_image in entry.key_images:
            del self._by_key_image[key_image]
        self._bytes -= len(entry.data)
