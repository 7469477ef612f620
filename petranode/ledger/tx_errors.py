"""Why a transaction was refused (SPEC §4.6 validation, §5 bad input).

Every refusal of a transaction — by its decoder, by :meth:`validate_basic`, by the signature
and proof checks or by the stateful checks against the ledger — raises :class:`TxRejected`
with a :class:`TxReject` reason. Reasons are an enum, not prose (CometBFT ``types/errors.go``),
so the mempool and the gossip layer can count them and score the peer that sent the bytes
without parsing messages; a peer's bytes never reach a log line through the message.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError


class TxReject(enum.Enum):
    """The rule a transaction broke, grouped by validation tier."""

    # -- decoding and validate_basic (no state, no signatures) ---------------------------
    #: Not the canonical encoding of a transaction, or a field of the wrong shape.
    MALFORMED = "malformed"
    #: Larger than :data:`petranode.ledger.tx.MAX_TX_BYTES`.
    OVERSIZED = "oversized"
    #: A transaction version this node does not know.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: A ``kind`` the registry does not know.
    UNKNOWN_KIND = "unknown_kind"
    #: No inputs, no outputs, or more than the limits allow.
    BAD_COUNT = "bad_count"
    #: One key image spent twice within the transaction.
    DUPLICATE_KEY_IMAGE = "duplicate_key_image"
    #: A ring smaller than the network's minimum or larger than the maximum.
    BAD_RING_SIZE = "bad_ring_size"
    #: Ring members not strictly increasing (repeated or unsorted).
    RING_NOT_SORTED = "ring_not_sorted"
    #: A fee outside 0 … 2⁶⁴−1.
    BAD_FEE = "bad_fee"
    # -- signatures and proofs ------------------------------------------------------------
    #: A CLSAG ring signature does not verify.
    BAD_RING_SIGNATURE = "bad_ring_signature"
    #: The Bulletproofs+ range proof does not verify.
    BAD_RANGE_PROOF = "bad_range_proof"
    #: Inputs and outputs (plus fee) of some asset do not balance.
    IMBALANCED = "imbalanced"
    #: A DSO-only kind not signed by the genesis DSO key.
    NOT_DSO = "not_dso"
    # -- stateful checks against the ledger -----------------------------------------------
    #: A key image already spent on the ledger (double spend).
    KEY_IMAGE_SPENT = "key_image_spent"
    #: A key image already spent by another transaction of the same block or pool.
    KEY_IMAGE_CONFLICT = "key_image_conflict"
    #: The ledger already holds a transaction with this hash (a replay).
    ALREADY_ON_LEDGER = "already_on_ledger"
    #: A ring member that is not an output on the ledger.
    UNKNOWN_RING_MEMBER = "unknown_ring_member"
    #: A ring member of another asset than its input.
    RING_ASSET_MISMATCH = "ring_asset_mismatch"
    #: A ring member younger than the network's spendable age.
    IMMATURE_RING_MEMBER = "immature_ring_member"
    # -- mempool ------------------------------------------------------------------------------
    #: The same transaction (same hash) is already in the pool.
    DUPLICATE = "duplicate"
    #: The pool is full and the transaction pays no more per byte than what it holds.
    POOL_FULL = "pool_full"


class TxRejected(PetranodeError):
    """A transaction was refused; ``reason`` says which rule it broke.

    The ledger's own rules give a :class:`TxReject`; a transaction kind of a higher layer
    (the market's) subclasses this with its own reason enum, so the ledger, which cannot
    import that layer, still counts and refuses its transactions by ``reason.value``.
    """

    def __init__(self, reason: enum.Enum, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class InsufficientFunds(PetranodeError):
    """A wallet asked to spend more of an asset than its unspent outputs hold (local)."""
