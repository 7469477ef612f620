"""The DSO's prosumer registry and capacity accounting (SPEC §2 PETra workflow, §4.7).

Theory of operation
-------------------
Registration is off-chain: the DSO certifies a prosumer's smart-meter key together with its
maximum generation capacity, maximum consumption (both watts) and feeder, by an Ed25519
signature over the canonical encoding (:class:`Registration`). The meter key is also the
prosumer's *registration key*: it signs every :class:`AssetRequest`, so a request that
arrives anonymously through garlic routing is authenticated to the DSO — and only to it,
since the request travels encrypted end to end to the DSO's destination.

:class:`CapacityBook` is the DSO's state. Every granted request becomes a :class:`Grant`.
An energy grant for intervals ``first … last`` with power ``p`` counts ``p`` toward *each*
interval of its range. For a request of power ``p`` over ``[a, b]`` the book refuses unless,
for every interval ``i`` in ``[a, b]``::

    Σ{ g.power : g a grant of this prosumer, this kind, g.first ≤ i ≤ g.last } + p
        ≤ registered maximum (generation for production, consumption for consumption)
    Σ{ g.power : g a grant on this feeder, this kind,  g.first ≤ i ≤ g.last } + p
        ≤ the feeder's posted per-interval limit for that kind

Grants are never returned by trading: a production asset that changes hands still commits
its issuer's generator, so capacity counts *issued* assets, outstanding or not. Only
:meth:`CapacityBook.release` (the issuance never reached the ledger) and
:meth:`CapacityBook.prune` (intervals long past) remove grants. Money requests are signed
and de-duplicated like the rest but have no capacity rule here (money is bought off-chain).

Replay: a request's id (SHA-256 of its signed body) is remembered while the request could
still be granted. An energy request is grantable only while its first interval's gate is
open and any request only until its ``expires`` interval, so after ``prune(before)`` with
``before`` at most the first open interval, a replay of a forgotten request is refused as
``GATE_CLOSED`` or ``EXPIRED`` instead.

Persistence: :meth:`CapacityBook.to_rows` gives plain ``(key, encoded record)`` rows for
the service's SQLite store; :meth:`CapacityBook.from_rows` rebuilds the book through the
same bounded decoders that guard the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point, Rng, os_rng
from petranode.crypto.keys import PublicAddress
from petranode.crypto.pedersen import MAX_AMOUNT
from petranode.ledger.assets import MAX_INTERVAL, Asset, AssetKind
from petranode.market.errors import (
    MarketRecordInvalid,
    RecordFault,
    RequestRefused,
    RequestReject,
)
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

RECORD_VERSION: Final = 1
KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
NONCE_BYTES: Final = 16
ID_BYTES: Final = 32
#: Largest power a registration, request or feeder limit may name: 2³²−1 W (≈ 4.3 GW) is far
#: beyond any microgrid feeder, and keeps every power a msgpack uint32.
MAX_POWER_W: Final = 2**32 - 1
#: Feeder ids are short ASCII names (a substation's own label), so their size is fixed.
FEEDER_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")
#: Default longest energy request, in intervals: a week of 15-minute intervals. It bounds
#: the work of one request and how far ahead a prosumer can commit its capacity.
DEFAULT_MAX_SPAN_INTERVALS: Final = 7 * 96

REGISTRATION_DOMAIN: Final = "petranode/market/registration/v1"
REQUEST_DOMAIN: Final = "petranode/market/asset-request/v1"

# Largest canonical encodings (docs/market.md has the field tables), rounded up: bounds
# checked before any decoding work.
#: [1 B header, version 1, 2×(2+32) keys, 2×5 powers, feeder ≤ 2+32, 2+64 signature] = 180.
MAX_REGISTRATION_BYTES: Final = 192
#: [1, 1, 34 key, kind ≤ 12, 2×9 intervals, 5 power, 9 expires, 18 nonce, 2×34 address,
#: 66 signature] = 232 (a money request: nil intervals, 9-byte amount, 214).
MAX_REQUEST_BYTES: Final = 256
#: [1, 1, feeder ≤ 34, 2×5 powers] = 46.
MAX_FEEDER_LIMIT_BYTES: Final = 64
#: [1, 1, 34 id, 34 key, feeder ≤ 34, kind ≤ 12, 2×9 intervals, 5 power, 9 expires] = 148.
MAX_GRANT_BYTES: Final = 192


# -- decoding helpers shared by the market's records ---------------------------------------------


@contextlib.contextmanager
def decoding(what: str) -> Iterator[None]:
    """Turn every lower-layer or validation error inside into ``MarketRecordInvalid``."""
    try:
        yield
    except MarketRecordInvalid:
        raise
    except (DecodeError, CryptoError, ValueError) as exc:
        raise MarketRecordInvalid(RecordFault.MALFORMED, what) from exc


def record_fields(data: bytes, *, max_size: int, length: int, what: str) -> list[Value]:
    """The fields of a versioned record array; inside :func:`decoding`."""
    fields = codec.expect_list(codec.decode_canonical(data, max_size=max_size), length, what=what)
    if codec.expect_int(fields[0], 0, 255, what=f"{what} version") != RECORD_VERSION:
        raise MarketRecordInvalid(RecordFault.UNSUPPORTED_VERSION, what)
    return fields


def check_public_key(raw: bytes, what: str) -> None:
    """A 32-byte canonical non-identity point of the prime-order subgroup (Ed25519 or CN)."""
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes")
    try:
        Point.from_bytes(raw)
    except CryptoError as exc:
        raise ValueError(f"{what} is not a valid public key") from exc


def check_power(power: int, what: str, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not low <= power <= MAX_POWER_W:
        raise ValueError(f"{what} must be {low}..{MAX_POWER_W} W")


def check_feeder(feeder: str) -> None:
    if FEEDER_PATTERN.fullmatch(feeder) is None:
        raise ValueError("feeder id must be 1..32 characters of A-Z a-z 0-9 . _ -")


def _check_signature_shape(signature: bytes) -> None:
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")


# -- registration -----------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Registration:
    """A prosumer as the DSO certified it: meter key, capacities, feeder, DSO signature."""

    #: The smart meter's Ed25519 key; also the key that signs the prosumer's asset requests.
    meter_key: bytes
    #: The prosumer's long-term reputation credential (a CryptoNote point, ``reputation.py``).
    #: Known only to the prosumer and the DSO: registrations are never published.
    credential_key: bytes
    max_generation_w: int
    max_consumption_w: int
    feeder: str
    dso_signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported registration version {self.version}")
        check_public_key(self.meter_key, "meter key")
        check_public_key(self.credential_key, "credential key")
        check_power(self.max_generation_w, "max_generation_w", allow_zero=True)
        check_power(self.max_consumption_w, "max_consumption_w", allow_zero=True)
        check_feeder(self.feeder)
        _check_signature_shape(self.dso_signature)

    @staticmethod
    def body(
        meter_key: bytes, credential_key: bytes, max_generation_w: int, max_consumption_w: int,
        feeder: str,
    ) -> list[Encodable]:
        return [RECORD_VERSION, meter_key, credential_key, max_generation_w, max_consumption_w,
                feeder]

    @classmethod
    def issue(
        cls, dso: Signer, network_id: str, *, meter_key: bytes, credential_key: bytes,
        max_generation_w: int, max_consumption_w: int, feeder: str,
    ) -> Registration:
        """The DSO certifies a prosumer: signs the body under :data:`REGISTRATION_DOMAIN`."""
        body = cls.body(meter_key, credential_key, max_generation_w, max_consumption_w, feeder)
        signature = dso.sign(REGISTRATION_DOMAIN, network_id, codec.encode(body))
        return cls(meter_key, credential_key, max_generation_w, max_consumption_w, feeder,
                   signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.meter_key, self.credential_key,
                                      self.max_generation_w, self.max_consumption_w, self.feeder))

    def verify(self, dso_key: bytes, network_id: str) -> None:
        """Raise ``MarketRecordInvalid(BAD_SIGNATURE)`` unless the DSO signed this."""
        if not signing.verify(dso_key, self.dso_signature, REGISTRATION_DOMAIN, network_id,
                              self.signed_body()):
            raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "registration")

    def capacity(self, kind: AssetKind) -> int:
        """The registered maximum for an energy kind, watts per interval."""
        if kind is AssetKind.PRODUCTION:
            return self.max_generation_w
        if kind is AssetKind.CONSUMPTION:
            return self.max_consumption_w
        raise ValueError("money has no capacity")

    def encode(self) -> bytes:
        return codec.encode([self.version, self.meter_key, self.credential_key,
                             self.max_generation_w, self.max_consumption_w, self.feeder,
                             self.dso_signature])

    @classmethod
    def decode(cls, data: bytes) -> Registration:
        """The registration of ``data`` (signature not checked: see :meth:`verify`)."""
        with decoding("registration"):
            f = record_fields(data, max_size=MAX_REGISTRATION_BYTES, length=7,
                              what="registration")
            return cls(
                meter_key=codec.expect_bytes(f[1], KEY_BYTES, what="meter key"),
                credential_key=codec.expect_bytes(f[2], KEY_BYTES, what="credential key"),
                max_generation_w=codec.expect_int(f[3], 0, MAX_POWER_W, what="generation"),
                max_consumption_w=codec.expect_int(f[4], 0, MAX_POWER_W, what="consumption"),
                feeder=codec.expect_str(f[5], min_len=1, max_len=32, what="feeder"),
                dso_signature=codec.expect_bytes(f[6], SIGNATURE_BYTES, what="signature"),
            )

    @property
    def registration_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


# -- feeder limits -------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class FeederLimit:
    """The most production and consumption the DSO issues on one feeder per interval (W)."""

    feeder: str
    max_production_w: int
    max_consumption_w: int
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported feeder limit version {self.version}")
        check_feeder(self.feeder)
        check_power(self.max_production_w, "max_production_w", allow_zero=True)
        check_power(self.max_consumption_w, "max_consumption_w", allow_zero=True)

    def limit(self, kind: AssetKind) -> int:
        if kind is AssetKind.PRODUCTION:
            return self.max_production_w
        if kind is AssetKind.CONSUMPTION:
            return self.max_consumption_w
        raise ValueError("money has no feeder limit")

    def encode(self) -> bytes:
        return codec.encode([self.version, self.feeder, self.max_production_w,
                             self.max_consumption_w])

    @classmethod
    def decode(cls, data: bytes) -> FeederLimit:
        with decoding("feeder limit"):
            f = record_fields(data, max_size=MAX_FEEDER_LIMIT_BYTES, length=4,
                              what="feeder limit")
            return cls(
                feeder=codec.expect_str(f[1], min_len=1, max_len=32, what="feeder"),
                max_production_w=codec.expect_int(f[2], 0, MAX_POWER_W, what="production"),
                max_consumption_w=codec.expect_int(f[3], 0, MAX_POWER_W, what="consumption"),
            )


# -- asset requests --------------------------------------------------------------------------------


def _check_amount(kind: AssetKind, amount: int) -> None:
    if kind is AssetKind.MONEY:
        if not 1 <= amount <= MAX_AMOUNT:
            raise ValueError("a money request is for 1 .. 2^64-1 cents")
    else:
        check_power(amount, "power")


@final
@dataclass(frozen=True, slots=True)
class AssetRequest:
    """A prosumer's signed request for production, consumption or money assets.

    ``amount`` is watts per interval for energy (every interval ``first … last``) and cents
    for money. The DSO pays the assets to one-time keys derived from ``address``.
    """

    meter_key: bytes
    kind: AssetKind
    first_interval: int | None
    last_interval: int | None
    amount: int
    #: Last interval index at whose gate-open time the DSO may still grant the request.
    expires: int
    #: Random, so that two otherwise equal requests have different ids.
    nonce: bytes
    address: PublicAddress
    signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported request version {self.version}")
        check_public_key(self.meter_key, "meter key")
        Asset(self.kind, self.first_interval, self.last_interval)  # validates the range
        _check_amount(self.kind, self.amount)
        if not 0 <= self.expires <= MAX_INTERVAL:
            raise ValueError("expires must be an interval index")
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        _check_signature_shape(self.signature)

    @staticmethod
    def body(meter_key: bytes, kind: AssetKind, first_interval: int | None,
             last_interval: int | None, amount: int, expires: int, nonce: bytes,
             address: PublicAddress) -> list[Encodable]:
        return [RECORD_VERSION, meter_key, kind.value, first_interval, last_interval, amount,
                expires, nonce, address.spend.raw, address.view.raw]

    @classmethod
    def create(
        cls, prosumer: Signer, network_id: str, *, kind: AssetKind, amount: int, expires: int,
        address: PublicAddress, first_interval: int | None = None,
        last_interval: int | None = None, rng: Rng = os_rng,
    ) -> AssetRequest:
        """A request signed by ``prosumer`` (its registered meter key)."""
        nonce = rng(NONCE_BYTES)
        body = cls.body(prosumer.signing_key, kind, first_interval, last_interval, amount,
                        expires, nonce, address)
        signature = prosumer.sign(REQUEST_DOMAIN, network_id, codec.encode(body))
        return cls(prosumer.signing_key, kind, first_interval, last_interval, amount, expires,
                   nonce, address, signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.meter_key, self.kind, self.first_interval,
                                      self.last_interval, self.amount, self.expires,
                                      self.nonce, self.address))

    @property
    def request_id(self) -> bytes:
        """SHA-256 of the signed body: the request's name, stable under re-signing."""
        return hashlib.sha256(self.signed_body()).digest()

    @property
    def asset(self) -> Asset:
        return Asset(self.kind, self.first_interval, self.last_interval)

    def signature_valid(self, network_id: str) -> bool:
        return signing.verify(self.meter_key, self.signature, REQUEST_DOMAIN, network_id,
                              self.signed_body())

    def encode(self) -> bytes:
        return codec.encode([*self.body(self.meter_key, self.kind, self.first_interval,
                                        self.last_interval, self.amount, self.expires,
                                        self.nonce, self.address), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> AssetRequest:
        """The request of ``data`` (signature checked by :meth:`CapacityBook.admit`)."""
        with decoding("asset request"):
            f = record_fields(data, max_size=MAX_REQUEST_BYTES, length=11, what="asset request")
            first, last = (None if v is None else codec.expect_int(v, 0, MAX_INTERVAL,
                                                                  what="interval")
                           for v in f[3:5])
            address = PublicAddress(
                Point.from_bytes(codec.expect_bytes(f[8], KEY_BYTES, what="spend key")),
                Point.from_bytes(codec.expect_bytes(f[9], KEY_BYTES, what="view key")),
            )
            return cls(
                meter_key=codec.expect_bytes(f[1], KEY_BYTES, what="meter key"),
                kind=AssetKind(codec.expect_str(f[2], max_len=16, what="kind")),
                first_interval=first,
                last_interval=last,
                amount=codec.expect_int(f[5], 1, MAX_AMOUNT, what="amount"),
                expires=codec.expect_int(f[6], 0, MAX_INTERVAL, what="expires"),
                nonce=codec.expect_bytes(f[7], NONCE_BYTES, what="nonce"),
                address=address,
                signature=codec.expect_bytes(f[10], SIGNATURE_BYTES, what="signature"),
            )


# -- grants and the book -------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Grant:
    """A granted request as the book remembers it (one persisted row)."""

    request_id: bytes
    meter_key: bytes
    feeder: str
    kind: AssetKind
    first_interval: int | None
    last_interval: int | None
    amount: int
    expires: int
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported grant version {self.version}")
        if len(self.request_id) != ID_BYTES or len(self.meter_key) != KEY_BYTES:
            raise ValueError("request id and meter key are 32 bytes")
        check_feeder(self.feeder)
        Asset(self.kind, self.first_interval, self.last_interval)
        _check_amount(self.kind, self.amount)
        if not 0 <= self.expires <= MAX_INTERVAL:
            raise ValueError("expires must be an interval index")

    @classmethod
    def of(cls, request: AssetRequest, feeder: str) -> Grant:
        return cls(request.request_id, request.meter_key, feeder, request.kind,
                   request.first_interval, request.last_interval, request.amount,
                   request.expires)

    def covers(self, interval: int) -> bool:
        first, last = self.first_interval, self.last_interval
        return first is not None and last is not None and first <= interval <= last

    def encode(self) -> bytes:
        return codec.encode([self.version, self.request_id, self.meter_key, self.feeder,
                             self.kind.value, self.first_interval, self.last_interval,
                             self.amount, self.expires])

    @classmethod
    def decode(cls, data: bytes) -> Grant:
        with decoding("grant"):
            f = record_fields(data, max_size=MAX_GRANT_BYTES, length=9, what="grant")
            first, last = (None if v is None else codec.expect_int(v, 0, MAX_INTERVAL,
                                                                  what="interval")
                           for v in f[5:7])
            return cls(
                request_id=codec.expect_bytes(f[1], ID_BYTES, what="request id"),
                meter_key=codec.expect_bytes(f[2], KEY_BYTES, what="meter key"),
                feeder=codec.expect_str(f[3], min_len=1, max_len=32, what="feeder"),
                kind=AssetKind(codec.expect_str(f[4], max_len=16, what="kind")),
                first_interval=first,
                last_interval=last,
                amount=codec.expect_int(f[7], 1, MAX_AMOUNT, what="amount"),
                expires=codec.expect_int(f[8], 0, MAX_INTERVAL, what="expires"),
            )


def peak_load(grants: Iterable[Grant], first: int, last: int) -> int:
    """The largest total power of ``grants`` in any one interval of ``first … last``.

    A sweep over the grants' clipped endpoints: O(g log g), independent of the span length.
    """
    deltas: dict[int, int] = {}
    for g in grants:
        if g.first_interval is None or g.last_interval is None:
            continue
        lo, hi = max(g.first_interval, first), min(g.last_interval, last)
        if lo > hi:
            continue
        deltas[lo] = deltas.get(lo, 0) + g.amount
        deltas[hi + 1] = deltas.get(hi + 1, 0) - g.amount
    peak = running = 0
    for at in sorted(deltas):
        running += deltas[at]
        peak = max(peak, running)
    return peak


@final
@dataclass(frozen=True, slots=True)
class BookRows:
    """The book as rows of ``(key, encoded record)``, one table each, for the store."""

    registrations: tuple[tuple[bytes, bytes], ...] = ()
    feeder_limits: tuple[tuple[str, bytes], ...] = ()
    grants: tuple[tuple[bytes, bytes], ...] = ()


@final
class CapacityBook:
    """The DSO's registrations, feeder limits and grants; refuses over-capacity requests.

    A data structure, not a service: no I/O, no clock. The caller passes the network id and
    the first interval whose gate is still open (``MarketClock.first_open_interval``).
    """

    __slots__ = ("_by_feeder", "_by_prosumer", "_grants", "_limits", "_registrations",
                 "max_span_intervals")

    def __init__(self, *, max_span_intervals: int = DEFAULT_MAX_SPAN_INTERVALS) -> None:
        if max_span_intervals < 1:
            raise ValueError("max_span_intervals must be at least 1")
        self.max_span_intervals = max_span_intervals
        self._registrations: dict[bytes, Registration] = {}
        self._limits: dict[str, FeederLimit] = {}
        self._grants: dict[bytes, Grant] = {}
        self._by_prosumer: dict[tuple[bytes, AssetKind], list[Grant]] = {}
        self._by_feeder: dict[tuple[str, AssetKind], list[Grant]] = {}

    def __repr__(self) -> str:
        return (f"CapacityBook(prosumers={len(self._registrations)}, "
                f"feeders={len(self._limits)}, grants={len(self._grants)})")

    # -- registrations and limits --------------------------------------------------------------

    def register(self, registration: Registration) -> None:
        """Add a prosumer; a meter key registers once (capacities never change under grants)."""
        if registration.meter_key in self._registrations:
            raise ValueError("meter key already registered")
        self._registrations[registration.meter_key] = registration

    def registration(self, meter_key: bytes) -> Registration | None:
        return self._registrations.get(meter_key)

    def set_feeder_limit(self, limit: FeederLimit) -> None:
        """Post or replace a feeder's limit; grants already made are kept."""
        self._limits[limit.feeder] = limit

    def feeder_limit(self, feeder: str) -> FeederLimit | None:
        return self._limits.get(feeder)

    # -- loads ---------------------------------------------------------------------------------

    def load(self, meter_key: bytes, kind: AssetKind, interval: int) -> int:
        """Power of ``kind`` granted to one prosumer for one interval."""
        return sum(g.amount for g in self._by_prosumer.get((meter_key, kind), ())
                   if g.covers(interval))

    def feeder_load(self, feeder: str, kind: AssetKind, interval: int) -> int:
        """Power of ``kind`` granted on one feeder for one interval."""
        return sum(g.amount for g in self._by_feeder.get((feeder, kind), ())
                   if g.covers(interval))

    def grant(self, request_id: bytes) -> Grant | None:
        return self._grants.get(request_id)

    # -- requests ------------------------------------------------------------------------------

    def check(self, request: AssetRequest, *, network_id: str, first_open_interval: int) -> Grant:
        """The grant ``request`` would get, or ``RequestRefused``; changes nothing."""
        registration = self._registrations.get(request.meter_key)
        if registration is None:
            raise RequestRefused(RequestReject.UNKNOWN_PROSUMER)
        if not request.signature_valid(network_id):
            raise RequestRefused(RequestReject.BAD_SIGNATURE)
        request_id = request.request_id
        if request_id in self._grants:
            raise RequestRefused(RequestReject.DUPLICATE)
        if request.expires < first_open_interval:
            raise RequestRefused(RequestReject.EXPIRED)
        grant = Grant.of(request, registration.feeder)
        if request.kind is not AssetKind.MONEY:
            self._check_energy(grant, registration, first_open_interval)
        return grant

    def admit(self, request: AssetRequest, *, network_id: str, first_open_interval: int) -> Grant:
        """Check ``request`` and record its grant; the caller then issues the assets."""
        grant = self.check(request, network_id=network_id,
                           first_open_interval=first_open_interval)
        self._add(grant)
        log.debug("request.granted id=%s kind=%s", grant.request_id.hex()[:16], grant.kind.value)
        return grant

    def release(self, request_id: bytes) -> bool:
        """Forget a grant whose issuance never reached the ledger; whether there was one."""
        grant = self._grants.pop(request_id, None)
        if grant is None:
            return False
        for index in self._indexes(grant):
            index.remove(grant)
        return True

    def prune(self, before_interval: int) -> int:
        """Drop energy grants ending before ``before_interval`` and requests expired before
        it; returns how many. Safe while ``before_interval`` ≤ every later admit's
        ``first_open_interval`` (module docstring: replay)."""
        stale = [g.request_id for g in self._grants.values() if _stale(g, before_interval)]
        for request_id in stale:
            self.release(request_id)
        return len(stale)

    # -- persistence ---------------------------------------------------------------------------

    def to_rows(self) -> BookRows:
        return BookRows(
            registrations=tuple((k, r.encode()) for k, r in sorted(self._registrations.items())),
            feeder_limits=tuple((k, v.encode()) for k, v in sorted(self._limits.items())),
            grants=tuple((k, g.encode()) for k, g in sorted(self._grants.items())),
        )

    @classmethod
    def from_rows(cls, rows: BookRows, *,
                  max_span_intervals: int = DEFAULT_MAX_SPAN_INTERVALS) -> CapacityBook:
        """Rebuild a book; a row whose key does not match its record is ``MALFORMED``."""
        book = cls(max_span_intervals=max_span_intervals)
        for key, data in rows.registrations:
            registration = Registration.decode(data)
            _row_key_matches(key, registration.meter_key)
            book.register(registration)
        for feeder, data in rows.feeder_limits:
            limit = FeederLimit.decode(data)
            _row_key_matches(feeder, limit.feeder)
            book.set_feeder_limit(limit)
        for key, data in rows.grants:
            grant = Grant.decode(data)
            _row_key_matches(key, grant.request_id)
            book._add(grant)
        return book

    # -- internals -----------------------------------------------------------------------------

    def _check_energy(self, grant: Grant, registration: Registration,
                      first_open_interval: int) -> None:
        first, last = grant.first_interval, grant.last_interval
        assert first is not None and last is not None  # Asset validated an energy range
        if first < first_open_interval:
            raise RequestRefused(RequestReject.GATE_CLOSED, f"interval {first}")
        if last - first + 1 > self.max_span_intervals:
            raise RequestRefused(RequestReject.SPAN_TOO_LONG)
        limit = self._limits.get(grant.feeder)
        if limit is None:
            raise RequestRefused(RequestReject.UNKNOWN_FEEDER)
        own = self._by_prosumer.get((grant.meter_key, grant.kind), ())
        if peak_load(own, first, last) + grant.amount > registration.capacity(grant.kind):
            raise RequestRefused(RequestReject.OVER_CAPACITY)
        on_feeder = self._by_feeder.get((grant.feeder, grant.kind), ())
        if peak_load(on_feeder, first, last) + grant.amount > limit.limit(grant.kind):
            raise RequestRefused(RequestReject.OVER_FEEDER_LIMIT)

    def _indexes(self, grant: Grant) -> list[list[Grant]]:
        if grant.kind is AssetKind.MONEY:
            return []
        return [self._by_prosumer.setdefault((grant.meter_key, grant.kind), []),
                self._by_feeder.setdefault((grant.feeder, grant.kind), [])]

    def _add(self, grant: Grant) -> None:
        if grant.request_id in self._grants:
            raise ValueError("grant already recorded")
        self._grants[grant.request_id] = grant
        for index in self._indexes(grant):
            index.append(grant)


def _stale(grant: Grant, before_interval: int) -> bool:
    if grant.last_interval is None:
        return grant.expires < before_interval
    return grant.last_interval < before_interval


def _row_key_matches(key: bytes | str, expected: bytes | str) -> None:
    if key != expected:
        raise MarketRecordInvalid(RecordFault.MALFORMED, "row key does not match its record")
