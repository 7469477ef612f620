"""State a higher layer keeps with the ledger (SPEC §4.6-§4.7): the market's offer book.

The ledger validates and commits transactions of kinds it does not know (offers, accepts,
cancels) without importing the layer that defines them: that layer hands the ledger service a
:class:`LedgerExtension`. Per block the service

1. decodes the transactions with :attr:`LedgerExtension.registry`;
2. asks :meth:`LedgerExtension.view` for the view to validate them against: the ledger's
   snapshot plus what the kinds read (the open offers they name) at the block's time;
3. runs the pure :func:`~petranode.ledger.state.apply_block_txs`, then
   :meth:`LedgerExtension.effects`, which computes what the block changes in the extension's
   state (or raises ``TxRejected``: the block is refused like any invalid block);
4. writes both in the block's one SQL transaction (:meth:`LedgerExtension.write`), so
   ``kill -9`` leaves the block with its offers and trades, or neither.

The block's time (its header's ``time_ms``, proposer-set, checked by every validator against
its clock and strictly increasing) is the time the kinds' windows are judged at; the mempool
judges at the current time, the time of the next block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from petranode.ledger.state import AppliedTx, LedgerSnapshot, LedgerView
from petranode.ledger.tx import Tx, TxRegistry
from petranode.store.store import Transaction


class LedgerExtension(Protocol):
    """What the ledger service asks of a layer that adds transaction kinds and their state."""

    @property
    def registry(self) -> TxRegistry:
        """The ledger's kinds plus the extension's."""
        ...

    async def view(self, base: LedgerSnapshot, txs: Sequence[Tx], block_time_ms: int
                   ) -> LedgerView:
        """``base`` plus the extension's state ``txs`` read, validated at ``block_time_ms``."""
        ...

    def effects(self, view: LedgerView, txs: Sequence[AppliedTx]) -> object:
        """What a validated block's ``txs`` change in the extension's state (pure; raises
        ``TxRejected`` if the block breaks one of the extension's rules)."""
        ...

    async def write(self, tx: Transaction, height: int, effects: object) -> None:
        """Persist ``effects`` inside the block's SQL transaction."""
        ...
