"""Why a peer's gossip or block-sync message was refused (SPEC §5: a typed error per decoder).

The ledger's peer protocols (:mod:`petranode.ledger.gossip`, :mod:`petranode.ledger.sync`)
turn every malformed, oversized or out-of-place message into :class:`PeerMessageRejected`
with a :class:`PeerFault` reason — an enum, not prose (CometBFT ``types/errors.go``), so the
service counts them and logs at a bounded rate without a peer's bytes ever reaching a log line.
The link layer treats a :class:`~petranode.errors.PetranodeError` from a handler as "refuse
this message, keep the link".
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError


class PeerFault(enum.Enum):
    """The rule a peer's message broke."""

    #: Not a map of the expected shape: a field missing, of the wrong type, or extra.
    MALFORMED = "malformed"
    #: A message type this protocol does not define.
    UNKNOWN_TYPE = "unknown_type"
    #: An item kind the gossip does not carry.
    UNKNOWN_KIND = "unknown_kind"
    #: More hashes, blocks or bytes than one message may carry.
    OVERSIZED = "oversized"
    #: A block or certificate that does not verify against the genesis validators.
    BAD_BLOCK = "bad_block"
    #: Blocks that were not asked for, or not the heights that were.
    UNSOLICITED = "unsolicited"


class PeerMessageRejected(PetranodeError):
    """A peer's message was refused; ``reason`` says which rule it broke."""

    def __init__(self, reason: PeerFault, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
