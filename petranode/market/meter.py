"""The simulated smart meter: readings, per-interval signed commitments (SPEC §4.8).

Theory of operation
-------------------
A meter is the DSO-certified measuring device of one prosumer (``registry.Registration``
certifies its Ed25519 key). Each interval it takes a :class:`~petranode.market.profiles.Reading`
(average consumption and production, W) from its profile and publishes only a signed
:class:`MeterCommitment`: two Pedersen commitments (``crypto/pedersen.py``)

    Cc_i = r_c,i·G + consumption_i·H        Cp_i = r_p,i·G + production_i·H

Readings themselves never leave the meter except as these commitments, as a bill
(``billing.py``: price-weighted sums and their aggregated masks) and as masked aggregate
shares (``aggregate.py``).

Masks are derived, not stored (so the meter can recompute them for a bill months later
and keeps no per-interval secret state)::

    mask_key = BLAKE2b-256(key = meter seed, "petranode/market/meter-mask-key/v1")
    r_q,i    = BLAKE2b-512(key = mask_key, msgpack([domain, network id, q, i])) mod ℓ

``q`` is ``"consumption"`` or ``"production"``. BLAKE2b keyed with a secret is a PRF, and a
64-byte output reduced mod ℓ is uniform to within 2⁻²⁵⁰, so every mask is independent and
uniform to anyone without the seed: a commitment reveals nothing about its reading.

The meter key is also its key-agreement key for aggregation: its X25519 secret and every
peer's X25519 public key are the Montgomery forms of the Ed25519 keys (libsodium's
``crypto_sign_ed25519_*_to_curve25519``), so the roster of certified meter keys is all a
meter needs. Using one key pair for Ed25519 and X25519 is what libsodium offers for this
and has been analysed (Thormarker, "On using the same key pair for Ed25519 and an X25519
based KEM", 2021); the signatures here are over domain-tagged msgpack, never over a DH value.

The commitment record is ``[version, meter_key, interval, Cc, Cp, signature]``; the meter
signs ``[version, meter_key, interval, Cc, Cp]`` under :data:`COMMITMENT_DOMAIN` and the
network id (``net/signing.py``). A commitment binds the reading under the discrete-log
assumption (nobody knows log_G H). The meter is trusted to commit to its true readings
(in 0 … 2³²−1 W): that is what a certified meter is for; no range proof accompanies them.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.crypto.group import ZERO, Point, Scalar
from petranode.crypto.pedersen import commit
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import MarketRecordInvalid, RecordFault
from petranode.market.profiles import Profile, Reading
from petranode.market.registry import (
    KEY_BYTES,
    RECORD_VERSION,
    SIGNATURE_BYTES,
    check_public_key,
    decoding,
    record_fields,
)
from petranode.net import signing
from petranode.net.signing import signing_bytes
from petranode.wire import codec
from petranode.wire.codec import Encodable

log = logging.getLogger(__name__)

COMMITMENT_DOMAIN: Final = "petranode/market/meter-commitment/v1"
MASK_DOMAIN: Final = "petranode/market/meter-commitment-mask/v1"
MASK_KEY_PERSONAL: Final = b"petranode/market/meter-mask-key/v1"
SEED_BYTES: Final = na.SIGN_SEED_BYTES
#: Net loads and masked shares live in Z/2⁶⁴ (``aggregate.py``).
SHARE_MODULUS: Final = 2**64
#: [1 B header, version 1, 2+32 key, interval ≤ 9, 2×(2+32) commitments, 2+64 signature] = 179.
MAX_COMMITMENT_BYTES: Final = 192


class Quantity(enum.Enum):
    """Which of a meter's two readings a commitment or a mask is for."""

    CONSUMPTION = "consumption"
    PRODUCTION = "production"


def check_interval_index(interval: int) -> None:
    if not 0 <= interval <= MAX_INTERVAL:
        raise ValueError(f"interval must be 0..{MAX_INTERVAL}")


# -- keys ----------------------------------------------------------------------------------------


@final
class MeterKeys:
    """A meter's secrets, all from one 32-byte seed; they never leave this object.

    Implements :class:`~petranode.net.signing.Signer`. Its repr shows only the public key.
    """

    __slots__ = ("_dh_secret", "_mask_key", "_signing_secret", "meter_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"meter seed must be {SEED_BYTES} bytes")
        self.meter_key, self._signing_secret = na.crypto_sign_seed_keypair(seed)
        self._dh_secret = na.crypto_sign_ed25519_sk_to_curve25519(self._signing_secret)
        self._mask_key = na.crypto_generichash(MASK_KEY_PERSONAL, key=seed)

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] = na.randombytes) -> MeterKeys:
        return cls(rng(SEED_BYTES))

    @property
    def signing_key(self) -> bytes:
        return self.meter_key

    def sign(self, domain: str, network_id: str, payload: bytes) -> bytes:
        return na.crypto_sign_detached(signing_bytes(domain, network_id, payload),
                                       self._signing_secret)

    def commitment_mask(self, network_id: str, quantity: Quantity, interval: int) -> Scalar:
        """``r_q,i``: see the module notes. Secret."""
        data = codec.encode([MASK_DOMAIN, network_id, quantity.value, interval])
        return Scalar.reduce(na.crypto_generichash(data, key=self._mask_key, digest_size=64))

    def shared_secret(self, peer_meter_key: bytes) -> bytes:
        """X25519 of our secret and a peer meter key's Montgomery form; the same both ways.

        Raises ``SodiumError`` (a ``CryptoError``) for a key that is not a valid point or
        that gives the all-zero (low-order) result.
        """
        peer = na.crypto_sign_ed25519_pk_to_curve25519(peer_meter_key)
        return na.crypto_scalarmult(self._dh_secret, peer)

    def __repr__(self) -> str:
        return f"MeterKeys(meter_key={self.meter_key.hex()[:16]}…)"


# -- the commitment record -----------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class MeterCommitment:
    """One interval's signed commitments to a meter's consumption and production."""

    meter_key: bytes
    interval: int
    #: 32-byte encoding of ``Cc`` (a non-identity point of the prime-order subgroup).
    consumption: bytes
    #: 32-byte encoding of ``Cp``.
    production: bytes
    signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported commitment version {self.version}")
        check_public_key(self.meter_key, "meter key")
        check_interval_index(self.interval)
        check_public_key(self.consumption, "consumption commitment")
        check_public_key(self.production, "production commitment")
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @staticmethod
    def body(meter_key: bytes, interval: int, consumption: bytes,
             production: bytes) -> list[Encodable]:
        return [RECORD_VERSION, meter_key, interval, consumption, production]

    @classmethod
    def create(cls, keys: MeterKeys, network_id: str, interval: int,
               reading: Reading) -> MeterCommitment:
        """Commit to ``reading`` with the derived masks and sign."""
        cc = commit(reading.consumption_w,
                    keys.commitment_mask(network_id, Quantity.CONSUMPTION, interval))
        cp = commit(reading.production_w,
                    keys.commitment_mask(network_id, Quantity.PRODUCTION, interval))
        body = cls.body(keys.meter_key, interval, cc.raw, cp.raw)
        signature = keys.sign(COMMITMENT_DOMAIN, network_id, codec.encode(body))
        return cls(keys.meter_key, interval, cc.raw, cp.raw, signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.meter_key, self.interval, self.consumption,
                                      self.production))

    def verify(self, meter_key: bytes, network_id: str) -> None:
        """Raise ``MarketRecordInvalid(BAD_SIGNATURE)`` unless ``meter_key`` signed this."""
        if self.meter_key != meter_key or not signing.verify(
            meter_key, self.signature, COMMITMENT_DOMAIN, network_id, self.signed_body()
        ):
            raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "meter commitment")

    def point(self, quantity: Quantity) -> Point:
        raw = self.consumption if quantity is Quantity.CONSUMPTION else self.production
        return Point.from_bytes(raw)

    def encode(self) -> bytes:
        return codec.encode([self.version, self.meter_key, self.interval, self.consumption,
                             self.production, self.signature])

    @classmethod
    def decode(cls, data: bytes) -> MeterCommitment:
        """The record of ``data`` (signature not checked: see :meth:`verify`)."""
        with decoding("meter commitment"):
            f = record_fields(data, max_size=MAX_COMMITMENT_BYTES, length=6,
                              what="meter commitment")
            return cls(
                meter_key=codec.expect_bytes(f[1], KEY_BYTES, what="meter key"),
                interval=codec.expect_int(f[2], 0, MAX_INTERVAL, what="interval"),
                consumption=codec.expect_bytes(f[3], KEY_BYTES, what="consumption"),
                production=codec.expect_bytes(f[4], KEY_BYTES, what="production"),
                signature=codec.expect_bytes(f[5], SIGNATURE_BYTES, what="signature"),
            )

    @property
    def record_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


# -- the meter -----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Opening:
    """``total = Σ wᵢ·vᵢ`` and ``mask = Σ wᵢ·rᵢ mod ℓ`` over some committed intervals."""

    total: int
    mask: Scalar = field(repr=False)


@final
class Meter:
    """One prosumer's simulated smart meter (sans-IO: the caller says which interval ended).

    Keeps each measured interval's reading in memory until :meth:`prune`. Readings leave it
    only as commitments (:meth:`commit`), weighted openings and masked net loads; the last
    two are the meter's internal interface to ``billing.make_bill`` and
    ``aggregate.make_share``, which run in the meter's own process (its trust boundary) and
    turn them into a bill and a share.
    """

    __slots__ = ("_billed", "_readings", "keys", "network_id", "profile")

    def __init__(self, keys: MeterKeys, profile: Profile, network_id: str) -> None:
        self.keys = keys
        self.profile = profile
        self.network_id = network_id
        self._readings: dict[int, Reading] = {}
        #: Billed periods ``(first, last, policy id)``: no interval is opened twice.
        self._billed: list[tuple[int, int, bytes]] = []

    @property
    def meter_key(self) -> bytes:
        return self.keys.meter_key

    def measure(self, interval: int) -> None:
        """Take ``interval``'s reading from the profile, once; later calls keep the first."""
        check_interval_index(interval)
        if interval not in self._readings:
            self._readings[interval] = self.profile.reading(interval)

    def commit(self, interval: int) -> MeterCommitment:
        """Measure ``interval`` (once) and give its signed commitment record."""
        self.measure(interval)
        return MeterCommitment.create(self.keys, self.network_id, interval,
                                      self._readings[interval])

    def measured(self, interval: int) -> bool:
        return interval in self._readings

    def _reading(self, interval: int) -> Reading:
        reading = self._readings.get(interval)
        if reading is None:
            raise ValueError(f"interval {interval} was not metered (or was pruned)")
        return reading

    def opening(self, quantity: Quantity, weights: Iterable[tuple[int, int]]) -> Opening:
        """The weighted sum of committed readings and its aggregated mask.

        ``weights`` are ``(interval, weight)`` pairs with non-negative integer weights.
        Only ``billing.make_bill`` should call this: a weight vector of one non-zero entry
        opens a single interval.
        """
        total = 0
        mask = ZERO
        for interval, weight in weights:
            if weight < 0:
                raise ValueError("weights are non-negative")
            reading = self._reading(interval)
            value = (reading.consumption_w if quantity is Quantity.CONSUMPTION
                     else reading.production_w)
            total += weight * value
            r = self.keys.commitment_mask(self.network_id, quantity, interval)
            mask = mask + Scalar.from_int(weight) * r
        return Opening(total, mask)

    def masked_net_load(self, interval: int, mask: int) -> int:
        """``(consumption − production + mask) mod 2⁶⁴`` of a committed interval."""
        return (self._reading(interval).net_w + mask) % SHARE_MODULUS

    def claim_period(self, first: int, last: int, policy_id: bytes) -> None:
        """Record that ``first … last`` is billed under ``policy_id``.

        The same period under the same policy may be billed again (the bill is identical);
        any other overlap is refused, since two weighted sums over shared intervals would
        tell the DSO more than one total.
        """
        for a, b, pid in self._billed:
            if (a, b, pid) == (first, last, policy_id):
                return
            if a <= last and first <= b:
                raise ValueError(f"intervals {first}..{last} overlap a billed period")
        self._billed.append((first, last, policy_id))

    def prune(self, before: int) -> None:
        """Forget readings of intervals before ``before`` (billed and aggregated)."""
        for interval in [i for i in self._readings if i < before]:
            del self._readings[interval]

    def __repr__(self) -> str:
        return f"Meter(meter_key={self.meter_key.hex()[:16]}…, {len(self._readings)} readings)"
