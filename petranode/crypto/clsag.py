"""CLSAG ring signatures over (one-time key, amount commitment) pairs (SPEC §4.5).

Implements the Concise Linkable Spontaneous Anonymous Group signature of Goodell, Noether and
RandomRun, "Concise Linkable Ring Signatures and Forgery Against Adversarial Keys" (2019), §3,
byte for byte as Monero deploys it: ``CLSAG_Gen`` / ``proveRctCLSAGSimple`` and
``verRctCLSAGSimple`` in ``src/ringct/rctSigs.cpp``.

Theory of operation
-------------------
A ring is ``n`` pairs ``(P_i, C_i)`` of output keys and amount commitments. The signer knows,
at index ``l``, the secret ``p`` with ``P_l = p·G`` and the difference ``z`` of the input
mask and the pseudo-output mask, so that ``C_l − C_offset = z·G`` (the amounts cancel). With
``Hp = hash_to_point(P_l)`` (Monero's ``hash_to_p3``) it publishes the key image
``I = p·Hp`` (linkability: one output, one image) and the auxiliary image ``D = z·Hp``.

Both keys are folded into one by the aggregation coefficients::

    mu_P = Hs("CLSAG_agg_0" ‖ P_0..P_{n-1} ‖ C_0..C_{n-1} ‖ I ‖ D·8⁻¹ ‖ C_offset)
    mu_C = Hs("CLSAG_agg_1" ‖ …same…)

and the ring is closed with the round hash::

    c_{i+1} = Hs("CLSAG_round" ‖ P_* ‖ C_* ‖ C_offset ‖ m ‖ L_i ‖ R_i)
    L_i = s_i·G + c_i·mu_P·P_i + c_i·mu_C·(C_i − C_offset)
    R_i = s_i·Hp(P_i) + c_i·mu_P·I + c_i·mu_C·D

Domain separators are the ASCII tags zero-padded to 32 bytes (Monero's
``config::HASH_KEY_CLSAG_*`` copied into a ``key``). The ``C_i`` hashed are the ring's own
commitments, not the offset ones.

``D`` is stored (and hashed) as ``D·8⁻¹``; the verifier multiplies by 8, which clears any
torsion an adversary might add, so ``D`` as used is always in the prime-order subgroup. The
key image is not part of the signature (Monero keeps it in the transaction input); it is
passed to :func:`verify` and must be a canonical, non-identity point of the prime-order
subgroup — the check Monero makes in ``check_tx_inputs_keyimages_domain``.

Deliberate strictness beyond Monero (honest signatures always pass): the stored ``D·8⁻¹``
and ``C_offset`` must be in the prime-order subgroup (so every encoding has one meaning), and
ring members must be distinct one-time keys (Monero enforces this on the key offsets).

Signing runs on secrets only through libsodium scalar arithmetic and constant-time
multiplication; which ring index is real is not hidden from a timing observer of this
process (the loop is Python), as in any host-side wallet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import CryptoError, NonCanonicalEncoding
from petranode.crypto.group import (
    IDENTITY,
    L,
    Point,
    Rng,
    Scalar,
    cn_fast_hash,
    hash_to_point,
    os_rng,
)
from petranode.crypto.keyimage import KeyImage, generate_key_image

log = logging.getLogger(__name__)

#: Largest ring accepted. Verification costs about six scalar multiplications per member,
#: so this bounds the work a single signature can demand (Monero's ring size is 16).
MAX_RING_SIZE: Final = 256

_KEY = 32


def _domain(tag: bytes) -> bytes:
    # Monero copies the tag into a zeroed 32-byte key (sizeof(HASH_KEY_CLSAG_*) - 1 bytes).
    return tag.ljust(_KEY, b"\0")


HASH_KEY_CLSAG_ROUND: Final = _domain(b"CLSAG_round")
HASH_KEY_CLSAG_AGG_0: Final = _domain(b"CLSAG_agg_0")
HASH_KEY_CLSAG_AGG_1: Final = _domain(b"CLSAG_agg_1")

_INV_EIGHT: Final = Scalar.from_int(8).invert()

Ring = Sequence[tuple[Point, Point]]
"""Ring members as (one-time public key P_i, amount commitment C_i), in ring order."""


@final
@dataclass(frozen=True, slots=True)
class Clsag:
    """A CLSAG signature: responses ``s``, first challenge ``c1`` and ``D·8⁻¹``.

    ``encode()`` is Monero's serialization: ``s_0 … s_{n-1} ‖ c1 ‖ D·8⁻¹``, 32 bytes each.
    """

    s: tuple[Scalar, ...]
    c1: Scalar
    D: Point

    def __post_init__(self) -> None:
        if not 1 <= len(self.s) <= MAX_RING_SIZE:
            raise CryptoError("CLSAG ring size out of range")
        if not self.D.in_subgroup or self.D.is_identity():
            raise CryptoError("CLSAG D outside the prime-order subgroup")

    @property
    def ring_size(self) -> int:
        return len(self.s)

    def encode(self) -> bytes:
        return b"".join(s.raw for s in self.s) + self.c1.raw + self.D.raw

    @classmethod
    def decode(cls, data: bytes, ring_size: int) -> Clsag:
        """Decode a signature for a ring of ``ring_size``; exact length, canonical values."""
        if not 1 <= ring_size <= MAX_RING_SIZE:
            raise CryptoError("CLSAG ring size out of range")
        data = bytes(data)
        if len(data) != _KEY * (ring_size + 2):
            raise NonCanonicalEncoding("CLSAG length does not match the ring size")
        chunks = [data[i : i + _KEY] for i in range(0, len(data), _KEY)]
        s = tuple(Scalar.from_bytes(c) for c in chunks[:ring_size])
        c1 = Scalar.from_bytes(chunks[ring_size])
        d = Point.from_bytes(chunks[ring_size + 1])
        return cls(s, c1, d)

    @staticmethod
    def encoded_size(ring_size: int) -> int:
        return _KEY * (ring_size + 2)


def _aggregation(
    ring: Ring, key_image: Point, d_inv8: Point, c_offset: Point
) -> tuple[Scalar, Scalar]:
    body = (
        b"".join(p.raw for p, _ in ring)
        + b"".join(c.raw for _, c in ring)
        + key_image.raw
        + d_inv8.raw
        + c_offset.raw
    )
    mu_p = Scalar.reduce(cn_fast_hash(HASH_KEY_CLSAG_AGG_0, body))
    mu_c = Scalar.reduce(cn_fast_hash(HASH_KEY_CLSAG_AGG_1, body))
    return mu_p, mu_c


def _round_prefix(ring: Ring, c_offset: Point, message: bytes) -> bytes:
    return (
        HASH_KEY_CLSAG_ROUND
        + b"".join(p.raw for p, _ in ring)
        + b"".join(c.raw for _, c in ring)
        + c_offset.raw
        + message
    )


def _check_ring(ring: Ring) -> None:
    if not 1 <= len(ring) <= MAX_RING_SIZE:
        raise CryptoError("CLSAG ring size out of range")
    if len({p.raw for p, _ in ring}) != len(ring):
        raise CryptoError("repeated ring member")


def sign(
    message: bytes,
    ring: Ring,
    c_offset: Point,
    secret_index: int,
    p: Scalar,
    z: Scalar,
    rng: Rng = os_rng,
) -> tuple[Clsag, KeyImage]:
    """Sign ``message`` (32 bytes) as ring member ``secret_index``; return (signature, I).

    ``p`` is the one-time secret key of ``ring[secret_index][0]`` and ``z`` the input mask
    minus the pseudo-output mask, so ``ring[secret_index][1] − c_offset = z·G``.
    """
    if len(message) != _KEY:
        raise CryptoError("CLSAG message must be 32 bytes")
    _check_ring(ring)
    n = len(ring)
    if not 0 <= secret_index < n:
        raise CryptoError("secret index outside the ring")
    if not c_offset.in_subgroup or c_offset.is_identity():
        raise CryptoError("pseudo-output commitment outside the prime-order subgroup")
    p_l, c_l = ring[secret_index]
    # A wrong key would yield a signature that never verifies; refuse it here instead.
    if p.is_zero() or z.is_zero():
        raise CryptoError("CLSAG secrets must be non-zero")
    if p.mul_base() != p_l or z.mul_base() != c_l - c_offset:
        raise CryptoError("secrets do not match the ring member")

    hp_l = hash_to_point(p_l.raw)
    key_image = generate_key_image(p_l, p).point
    d_full = z * hp_l
    d_inv8 = _INV_EIGHT * d_full
    mu_p, mu_c = _aggregation(ring, key_image, d_inv8, c_offset)
    prefix = _round_prefix(ring, c_offset, message)

    a = Scalar.random(rng)
    c = Scalar.reduce(cn_fast_hash(prefix, a.mul_base().raw, (a * hp_l).raw))
    s: list[Scalar | None] = [None] * n
    c1: Scalar | None = None
    i = (secret_index + 1) % n
    if i == 0:
        c1 = c
    while i != secret_index:
        s_i = Scalar.random(rng)
        s[i] = s_i
        c = _next_challenge(prefix, ring[i], c_offset, key_image, d_full, mu_p, mu_c, c, s_i)
        i = (i + 1) % n
        if i == 0:
            c1 = c
    s[secret_index] = a - c * (mu_p * p + mu_c * z)
    assert c1 is not None  # the loop passes index 0 exactly once
    return Clsag(tuple(x for x in s if x is not None), c1, d_inv8), KeyImage(key_image)


def _next_challenge(
    prefix: bytes,
    member: tuple[Point, Point],
    c_offset: Point,
    key_image: Point,
    d_full: Point,
    mu_p: Scalar,
    mu_c: Scalar,
    c: Scalar,
    s_i: Scalar,
) -> Scalar:
    p_i, c_i = member
    c_p = mu_p * c
    c_c = mu_c * c
    l_i = s_i.mul_base() + c_p * p_i + c_c * (c_i - c_offset)
    r_i = s_i * hash_to_point(p_i.raw) + c_p * key_image + c_c * d_full
    return Scalar.reduce(cn_fast_hash(prefix, l_i.raw, r_i.raw))


def verify(
    message: bytes, ring: Ring, c_offset: Point, key_image: KeyImage | Point, sig: Clsag
) -> bool:
    """``verRctCLSAGSimple`` plus the key-image domain check; False on any failure."""
    if isinstance(key_image, KeyImage):
        key_image = key_image.point
    try:
        _check_ring(ring)
    except CryptoError:
        return False
    if len(message) != _KEY or len(ring) != sig.ring_size:
        return False
    if not key_image.in_subgroup or key_image.is_identity():
        return False
    if not c_offset.in_subgroup or c_offset.is_identity():
        return False
    # Scalars of a Clsag are canonical by construction (Scalar.from_bytes / arithmetic);
    # recheck anyway so a hand-built Scalar(raw) cannot smuggle in a value >= l.
    if any(int(x) >= L for x in sig.s) or int(sig.c1) >= L:
        return False
    d_full = sig.D.mul8()
    if d_full == IDENTITY:
        return False
    mu_p, mu_c = _aggregation(ring, key_image, sig.D, c_offset)
    prefix = _round_prefix(ring, c_offset, message)
    c = sig.c1
    try:
        for member, s_i in zip(ring, sig.s, strict=True):
            c = _next_challenge(prefix, member, c_offset, key_image, d_full, mu_p, mu_c, c, s_i)
            if c.is_zero():
                return False
    except CryptoError:
        # libsodium refuses e.g. an identity product from a hostile ring member: not valid.
        return False
    return c == sig.c1
