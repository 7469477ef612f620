"""The ledger's state transition, sans I/O (SPEC §4.6; CometBFT ``state/execution.go``).

The state a transaction is checked against is small: outputs by (asset, global index), spent
key images, transaction hashes and the height. :class:`LedgerView` is that read interface;
:func:`apply_block_txs` validates a block's transactions against a view and returns the
:class:`StateDelta` the block makes — new outputs with their global indices, spent key
images, the transactions in order — without changing anything. The store writes a delta in
one SQL transaction (:mod:`petranode.ledger.store`); :class:`LedgerSnapshot` applies it in
memory.

Rules of a block, beyond each transaction's own (:func:`petranode.ledger.tx.validate_tx`):

* every transaction is checked against the state *before* the block: outputs created in the
  block cannot be ring members in it (``spendable_age`` ≥ 1 says so anyway);
* a key image spent twice in the block, or a transaction included twice, fails the block;
* global output indices are per asset, counted from 0 in ledger order: each new output of
  asset ``a`` gets ``output_count(a)`` at that point, transactions and outputs in order.

The view is synchronous: the service loads into a :class:`LedgerSnapshot` what a block or a
transaction refers to (``LedgerStore.snapshot_for``) and runs the pure code over it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, final

from petranode.crypto.group import Point
from petranode.ledger.tx import (
    BASE_REGISTRY,
    LedgerParams,
    Tx,
    TxRegistry,
    settled_height,
    validate_tx,
)
from petranode.ledger.tx_errors import TxReject, TxRejected

log = logging.getLogger(__name__)


@final
@dataclass(frozen=True, slots=True)
class OutputRecord:
    """An output as the ledger indexes it: what rings and scanning need to find it."""

    asset_id: bytes
    global_index: int
    one_time_key: Point
    commitment: Point
    height: int
    tx_hash: bytes
    output_index: int


class LedgerView(Protocol):
    """Read access to the committed ledger state."""

    def height(self) -> int:
        """Height of the last committed block; 0 before the first."""
        ...

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None: ...

    def output_count(self, asset_id: bytes) -> int:
        """Outputs of ``asset_id`` on the ledger; the next one gets this global index."""
        ...

    def settled_output_count(self, asset_id: bytes) -> int:
        """Outputs of ``asset_id`` created at least ``tx.RING_GRACE_BLOCKS`` blocks before the
        next one: what a ring of that asset must cover, up to the minimum ring size."""
        ...

    def key_image_spent(self, key_image: bytes) -> bool: ...

    def has_tx(self, tx_hash: bytes) -> bool: ...


@final
@dataclass(frozen=True, slots=True)
class AppliedTx:
    """One transaction of a block, with the global index each of its outputs received."""

    tx_hash: bytes
    data: bytes
    tx: Tx
    global_indices: tuple[int, ...]


@final
@dataclass(frozen=True, slots=True)
class StateDelta:
    """Everything one block changes: written by the store in one SQL transaction."""

    height: int
    txs: tuple[AppliedTx, ...]
    outputs: tuple[OutputRecord, ...]
    #: (key image, hash of the spending transaction), in block order.
    spent: tuple[tuple[bytes, bytes], ...]
    #: What the block changes in a ledger extension's state (``extension.py``), if any.
    effects: object = None


def apply_block_txs(
    view: LedgerView,
    txs: Sequence[bytes],
    params: LedgerParams,
    registry: TxRegistry = BASE_REGISTRY,
    verified: Container[bytes] = frozenset(),
) -> StateDelta:
    """Validate the encoded ``txs`` of the next block against ``view``; return its delta.

    Transactions whose hash is in ``verified`` (the node's pool: it verified them on entry)
    skip signature verification; every other rule is checked again.

    Raises ``TxRejected`` for the first transaction that fails, its position in ``detail``;
    the caller turns that into a refusal of the block.
    """
    height = view.height() + 1
    builder = _DeltaBuilder(height, view.output_count)
    for position, data in enumerate(txs):
        try:
            tx = registry.decode(data)
            # Decoding is canonical, so the hash of the bytes is the hash of the record.
            digest = hashlib.sha256(data).digest()
            if digest in builder.hashes:
                raise TxRejected(TxReject.ALREADY_ON_LEDGER, "twice in the block")
            validate_tx(tx, view, params, signatures_verified=digest in verified)
            for key_image in tx.key_images():
                if key_image in builder.spent:
                    raise TxRejected(TxReject.KEY_IMAGE_CONFLICT)
        except TxRejected as exc:
            log.debug("state.tx_rejected position=%d reason=%s", position, exc.reason.value)
            # Same class: a higher layer's refusal keeps its type and reason enum.
            raise type(exc)(exc.reason, f"transaction {position}") from exc
        builder.add(digest, data, tx)
    return builder.delta()


def replay_block_txs(
    height: int,
    txs: Sequence[bytes],
    output_count: Callable[[bytes], int],
    registry: TxRegistry = BASE_REGISTRY,
) -> StateDelta:
    """The delta of a block this node validated and stored before, without validating it
    again (a restart's wallet rescan); ``output_count`` answers for the state before it."""
    builder = _DeltaBuilder(height, output_count)
    for data in txs:
        builder.add(hashlib.sha256(data).digest(), data, registry.decode(data))
    return builder.delta()


class _DeltaBuilder:
    """Collects a block's transactions in order, numbering their outputs per asset."""

    def __init__(self, height: int, output_count: Callable[[bytes], int]) -> None:
        self.height = height
        self._output_count = output_count
        self.counts: dict[bytes, int] = {}
        self.spent: dict[bytes, bytes] = {}
        self.hashes: set[bytes] = set()
        self.applied: list[AppliedTx] = []
        self.outputs: list[OutputRecord] = []

    def add(self, digest: bytes, data: bytes, tx: Tx) -> None:
        self.hashes.add(digest)
        self.spent.update((key_image, digest) for key_image in tx.key_images())
        indices = []
        for output_index, out in enumerate(tx.outputs):
            if out.asset_id not in self.counts:
                self.counts[out.asset_id] = self._output_count(out.asset_id)
            index = self.counts[out.asset_id]
            self.counts[out.asset_id] = index + 1
            indices.append(index)
            self.outputs.append(
                OutputRecord(out.asset_id, index, out.one_time_key, out.commitment,
                             self.height, digest, output_index)
            )
        self.applied.append(AppliedTx(digest, data, tx, tuple(indices)))

    def delta(self) -> StateDelta:
        return StateDelta(self.height, tuple(self.applied), tuple(self.outputs),
                          tuple(self.spent.items()))


class LedgerSnapshot:
    """A :class:`LedgerView` held in memory: the whole ledger (tests, light wallets) or the part
    of it a block refers to, loaded by the store.

    A partial snapshot answers only for what was loaded: an output it does not hold reads as
    absent, so it is correct for exactly the transactions it was loaded for.
    """

    def __init__(
        self,
        height: int = 0,
        outputs: Iterable[OutputRecord] = (),
        counts: dict[bytes, int] | None = None,
        spent: Iterable[bytes] = (),
        txs: Iterable[bytes] = (),
        settled_counts: dict[bytes, int] | None = None,
    ) -> None:
        self._height = height
        self._outputs = {(o.asset_id, o.global_index): o for o in outputs}
        self._counts = dict(counts or {})
        #: Loaded by the store for a partial snapshot; a whole one counts its own outputs.
        self._settled = dict(settled_counts or {})
        self._spent = set(spent)
        self._txs = set(txs)

    def height(self) -> int:
        return self._height

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self._outputs.get((asset_id, global_index))

    def output_count(self, asset_id: bytes) -> int:
        return self._counts.get(asset_id, 0)

    def settled_output_count(self, asset_id: bytes) -> int:
        if asset_id in self._settled:
            return self._settled[asset_id]
        newest = settled_height(self._height)
        return sum(1 for (a, _), o in self._outputs.items()
                   if a == asset_id and o.height <= newest)

    def key_image_spent(self, key_image: bytes) -> bool:
        return key_image in self._spent

    def has_tx(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def outputs_of(self, asset_id: bytes) -> list[OutputRecord]:
        """The loaded outputs of ``asset_id`` in global index order."""
        return sorted(
            (o for (a, _), o in self._outputs.items() if a == asset_id),
            key=lambda o: o.global_index,
        )

    def apply(self, delta: StateDelta) -> None:
        """Advance by one block's delta (which must be for the next height)."""
        if delta.height != self._height + 1:
            raise ValueError(f"delta for height {delta.height}, snapshot at {self._height}")
        for out in delta.outputs:
            self._outputs[(out.asset_id, out.global_index)] = out
            self._counts[out.asset_id] = max(
                self._counts.get(out.asset_id, 0), out.global_index + 1
            )
        self._spent.update(key_image for key_image, _ in delta.spent)
        self._txs.update(applied.tx_hash for applied in delta.txs)
        self._height = delta.height
