"""Errors of the netDb layer (SPEC §4.3, §5: forged records are refused with a typed reason).

A record from the network is either valid or refused with a :class:`RejectReason`; the service
counts refusals by reason (``netdb.stats``) and never logs the record itself.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError


class RejectReason(enum.Enum):
    """Why a record offered to the netDb was refused, in the order the tiers check."""

    #: Longer than the record's size limit; refused before any parsing.
    OVERSIZED = "oversized"
    #: Not a RouterInfo or LeaseSet encoding at all (or not canonical, or out of range).
    GARBAGE = "garbage"
    #: Stored or found under a key that is not the SHA-256 of its identity or destination.
    WRONG_KEY = "wrong_key"
    #: Carries no signature.
    UNSIGNED = "unsigned"
    #: The signature does not verify under the record's own signing key and this network.
    BAD_SIGNATURE = "bad_signature"
    #: A RouterInfo without a valid certificate from one of this network's authorities.
    NOT_MEMBER = "not_member"
    #: Published further in the future than the allowed clock skew.
    FUTURE = "future"
    #: Older than the maximum age (RouterInfo) or past its expiry (LeaseSet).
    EXPIRED = "expired"
    #: Valid, but not newer than the record already held under its key.
    REPLAYED = "replayed"
    #: Valid and new, but the table is at its bound for records of this kind.
    TABLE_FULL = "table_full"


class NetDbError(PetranodeError):
    """Base class of netDb errors."""


class RecordInvalid(NetDbError):
    """A netDb record was refused; ``reason`` says which validation tier refused it."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


class NetDbConfigInvalid(NetDbError):
    """A ``[netdb]`` setting is out of range; the message names the dotted key."""
