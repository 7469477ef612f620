"""Errors of the garlic layer (SPEC §4.4, §5: every decoder gives a value or a typed error).

A garlic message from outside is either opened or refused with :class:`GarlicError` whose
``reason`` is a :class:`GarlicFault`; the service counts refusals by reason and never logs the
message. Limits we hit ourselves (a full queue) use the same class with their own reasons, so a
caller can tell "the peer sent garbage" from "we are saturated" by the reason alone.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError


class GarlicFault(enum.Enum):
    """Why a garlic message, clove or request was refused."""

    # -- theirs: bytes from the network --------------------------------------------------
    #: Longer than the largest garlic message; refused before any work.
    OVERSIZED = "oversized"
    #: Too short to be either message type.
    TRUNCATED = "truncated"
    #: The AEAD refused it: tampered, addressed to another destination, or an unknown tag.
    DECRYPTION_FAILED = "decryption_failed"
    #: The sender's ephemeral or static key is a low-order point.
    BAD_KEY = "bad_key"
    #: Decrypted, but the plaintext is not a canonical garlic message.
    MALFORMED = "malformed"
    #: A New Session message whose ephemeral key was already used.
    REPLAYED = "replayed"
    #: Created further in the past or future than the replay window allows.
    STALE = "stale"
    # -- ours: local limits and misuse ---------------------------------------------------
    #: Too many cloves outstanding or queued; retry later (back-pressure).
    QUEUE_FULL = "queue_full"
    #: No live lease to build a LeaseSet from.
    NO_LEASES = "no_leases"
    #: A ``[garlic]`` setting is out of range.
    BAD_SETTING = "bad_setting"


class GarlicError(PetranodeError):
    """A garlic operation was refused; ``reason`` says why."""

    def __init__(self, reason: GarlicFault, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
