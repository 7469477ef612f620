"""Validation of netDb records, in tiers, and the newest-wins rule (SPEC §4.3, §5).

Every record that reaches the netDb from outside — a STORE, a lookup answer, a row read back from
the database — goes through :func:`validate`, cheapest tier first, and is refused at the first
tier it fails with :class:`~petranode.net.netdb.errors.RecordInvalid`:

1. size, before any parsing (``OVERSIZED``), then decoding (``GARBAGE``);
2. the key it was offered under is the SHA-256 of its identity or destination (``WRONG_KEY``);
3. its own signature, domain-tagged with this network's id (``UNSIGNED``, ``BAD_SIGNATURE``);
4. RouterInfos only: a certificate for exactly this identity from one of the genesis
   authorities, valid now (``NOT_MEMBER``);
5. time: published no later than ``now`` plus the allowed clock skew (``FUTURE``); a RouterInfo
   no older than the maximum age, a LeaseSet not past its expiry (``EXPIRED``), and a LeaseSet
   not claiming a lifetime longer than tunnels live (``FUTURE``).

Which of two valid records under one key wins is :func:`supersedes`: the later ``published_ms``;
on a tie, the larger encoding, so that every node converges on the same record whatever order
the copies arrive in (a router that signs two different records in one millisecond is not
trusted to pick). These are pure functions of their arguments; ``now`` is Unix seconds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, assert_never, final

from petranode.net import signing
from petranode.net.cert import CertificateInvalid
from petranode.net.netdb.errors import RecordInvalid, RejectReason
from petranode.net.netdb.leaseset import (
    LEASESET_DOMAIN,
    LEASESET_KIND,
    MAX_LEASESET_BYTES,
    LeaseSet,
)
from petranode.net.netdb.routerinfo import (
    MAX_ROUTERINFO_BYTES,
    ROUTERINFO_DOMAIN,
    ROUTERINFO_KIND,
    RouterInfo,
)
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

Record = RouterInfo | LeaseSet
#: The largest record of any kind; a longer value is refused before it is parsed.
MAX_RECORD_BYTES: Final = max(MAX_ROUTERINFO_BYTES, MAX_LEASESET_BYTES)
#: The DHT addresses a record by the first 160 bits of its key (Kademlia's id length); a key
#: shorter than that would not pin the record down.
MIN_KEY_BYTES: Final = 20
#: Every record encoding is an 8-element array whose first element is its kind:
#: ``0x98`` (fixarray of 8) then a positive fixint. Used to apply the per-kind size bound
#: before parsing.
_LEASESET_PREFIX: Final = bytes([0x98, LEASESET_KIND])


class RecordKind(enum.Enum):
    ROUTERINFO = "routerinfo"
    LEASESET = "leaseset"


def kind_of(record: Record) -> RecordKind:
    match record:
        case RouterInfo():
            return RecordKind.ROUTERINFO
        case LeaseSet():
            return RecordKind.LEASESET
        case _:
            assert_never(record)


@final
@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What a record is checked against: the network and its time limits."""

    network_id: str
    #: The genesis directory authorities' Ed25519 keys.
    authorities: frozenset[bytes]
    #: Genesis ``params.max_clock_skew_s``.
    max_clock_skew_s: float
    #: A RouterInfo older than this is dropped; its router republishes well within it.
    max_routerinfo_age_s: float
    #: Longest ``expires - published`` a LeaseSet may claim.
    max_leaseset_lifetime_s: float


def decode_record(data: bytes) -> Record:
    """A RouterInfo or LeaseSet from its canonical encoding (tier 1); signature not checked."""
    limit = MAX_LEASESET_BYTES if data[:2] == _LEASESET_PREFIX else MAX_RECORD_BYTES
    if len(data) > limit:
        raise RecordInvalid(RejectReason.OVERSIZED, f"{len(data)} > {limit} bytes")
    try:
        fields = codec.expect_list(codec.decode_canonical(data, max_size=limit), 8, what="record")
        kind = codec.expect_int(fields[0], 0, 255, what="record.kind")
        if kind == ROUTERINFO_KIND:
            return RouterInfo.from_fields(fields)
        if kind == LEASESET_KIND:
            return LeaseSet.from_fields(fields)
        raise DecodeError(DecodeFault.WRONG_SHAPE, "record: unknown kind")
    except DecodeError as exc:
        raise RecordInvalid(RejectReason.GARBAGE, exc.reason.value) from exc


def validate(data: bytes, key: bytes, now: float, policy: ValidationPolicy) -> Record:
    """The record ``data`` encodes, if it is valid under ``key`` at ``now``; else RecordInvalid.

    ``key`` is the record's netDb key or, as the DHT addresses it, a prefix of at least
    :data:`MIN_KEY_BYTES` of it.
    """
    record = decode_record(data)
    check(record, key, now, policy)
    return record


def check(record: Record, key: bytes, now: float, policy: ValidationPolicy) -> None:
    """Tiers 2–5 of :func:`validate` on an already decoded record."""
    if len(key) < MIN_KEY_BYTES or record.key[: len(key)] != key:
        raise RecordInvalid(RejectReason.WRONG_KEY)
    if not record.signature:
        raise RecordInvalid(RejectReason.UNSIGNED)
    match record:
        case RouterInfo():
            _check_signature(record.identity.signing_key, record.signature, ROUTERINFO_DOMAIN,
                             policy.network_id, record.signed_payload())
            _check_membership(record, now, policy)
        case LeaseSet():
            _check_signature(record.destination.signing_key, record.signature, LEASESET_DOMAIN,
                             policy.network_id, record.signed_payload())
        case _:
            assert_never(record)
    _check_times(record, now, policy)


def is_expired(record: Record, now: float, policy: ValidationPolicy) -> bool:
    """Whether tier 5 would now refuse ``record`` as EXPIRED (the table's sweep)."""
    now_ms = _ms(now)
    match record:
        case RouterInfo():
            return record.published_ms < now_ms - _ms(policy.max_routerinfo_age_s)
        case LeaseSet():
            return record.expires_ms <= now_ms
        case _:
            assert_never(record)


def supersedes(new: Record, old: Record) -> bool:
    """Whether ``new`` replaces ``old`` under their (shared) key: newer wins, ties by bytes."""
    return (new.published_ms, new.encode()) > (old.published_ms, old.encode())


def newest(records: Iterable[Record]) -> Record | None:
    """The record that wins among ``records`` (all under one key), or None if there are none."""
    best: Record | None = None
    for record in records:
        if best is None or supersedes(record, best):
            best = record
    return best


def _check_signature(signing_key: bytes, signature: bytes, domain: str, network_id: str,
                     payload: bytes) -> None:
    if not signing.verify(signing_key, signature, domain, network_id, payload):
        raise RecordInvalid(RejectReason.BAD_SIGNATURE)


def _check_membership(info: RouterInfo, now: float, policy: ValidationPolicy) -> None:
    certificate = info.certificate
    if certificate.identity != info.identity:
        raise RecordInvalid(RejectReason.NOT_MEMBER, "certificate is for another router")
    try:
        certificate.verify(policy.authorities, policy.network_id, now)
    except CertificateInvalid as exc:
        raise RecordInvalid(RejectReason.NOT_MEMBER, exc.reason.value) from exc


def _check_times(record: Record, now: float, policy: ValidationPolicy) -> None:
    now_ms = _ms(now)
    if record.published_ms > now_ms + _ms(policy.max_clock_skew_s):
        raise RecordInvalid(RejectReason.FUTURE, "published in the future")
    if is_expired(record, now, policy):
        raise RecordInvalid(RejectReason.EXPIRED)
    if (isinstance(record, LeaseSet)
            and record.expires_ms - record.published_ms > _ms(policy.max_leaseset_lifetime_s)):
        raise RecordInvalid(RejectReason.FUTURE, "expires beyond the longest lifetime")


def _ms(seconds: float) -> int:
    return int(seconds * 1000)

