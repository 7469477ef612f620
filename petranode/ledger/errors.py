"""Why a block, a vote, a proposal or a commit certificate was refused (SPEC §4.6, §5).

Reasons are enums, not prose (CometBFT ``types/errors.go``), so the consensus service counts
them and scores the peer that sent the bytes without parsing messages, and a peer's bytes never
reach a log line through the message. Decoders raise the wire layer's
:class:`~petranode.wire.errors.DecodeError`; the errors here are the tiers above decoding —
``validate_basic()``, signatures, and consensus rules (who may propose, which block a hash
names). A transaction's refusals live in :mod:`petranode.ledger.tx_errors`
(:class:`~petranode.ledger.tx_errors.TxRejected`), re-exported here so the ledger's errors have
one import point.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError
from petranode.ledger.tx_errors import TxReject, TxRejected

__all__ = [
    "BlockFault",
    "BlockInvalid",
    "TxReject",
    "TxRejected",
    "VoteFault",
    "VoteInvalid",
]


class BlockFault(enum.Enum):
    """The rule a block (or its header) broke."""

    #: A field of the wrong type, size or range (a 31-byte hash, a negative height).
    MALFORMED = "malformed"
    #: A block version this node does not know.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: More transactions than :data:`petranode.ledger.block.MAX_BLOCK_TXS`.
    TOO_MANY_TXS = "too_many_txs"
    #: Transactions larger in total than :data:`petranode.ledger.block.MAX_BLOCK_TX_BYTES`.
    OVERSIZED = "oversized"
    #: The header's transaction Merkle root is not the root of the block's transactions.
    BAD_TX_ROOT = "bad_tx_root"
    #: The block's hash is not the hash its proposal (or certificate) names.
    HASH_MISMATCH = "hash_mismatch"
    #: The header says it was made in a later round than the proposal carrying it.
    ROUND_MISMATCH = "round_mismatch"


class BlockInvalid(PetranodeError):
    """A block was refused; ``reason`` says which rule it broke."""

    def __init__(self, reason: BlockFault, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


class VoteFault(enum.Enum):
    """The rule a vote, a proposal or a commit certificate broke."""

    #: A field of the wrong type, size or range.
    MALFORMED = "malformed"
    #: A version this node does not know.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: A validator index outside the validator set.
    UNKNOWN_VALIDATOR = "unknown_validator"
    #: The signature does not verify under the validator's key.
    BAD_SIGNATURE = "bad_signature"
    #: A proposal signed by a validator that is not the proposer of its (height, round).
    WRONG_PROPOSER = "wrong_proposer"
    #: A certificate whose signers are not strictly increasing validator indices.
    DUPLICATE_SIGNER = "duplicate_signer"
    #: A certificate signed by two thirds of the validators or fewer.
    NO_QUORUM = "no_quorum"
    #: A certificate for nil: only a block can be committed.
    NIL_COMMIT = "nil_commit"
    #: A vote or proposal for a height other than the one being decided (or the next).
    WRONG_HEIGHT = "wrong_height"


class VoteInvalid(PetranodeError):
    """A vote, proposal or commit certificate was refused; ``reason`` says which rule it broke."""

    def __init__(self, reason: VoteFault, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
