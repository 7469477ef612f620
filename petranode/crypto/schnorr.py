"""CryptoNote's Schnorr signature over a 32-byte prefix hash (SPEC §4.5).

Monero's ``crypto::generate_signature`` / ``crypto::check_signature``
(``src/crypto/crypto.cpp``), byte for byte::

    sign:   k ← random_scalar;  c = Hs(h ‖ P ‖ k·G)  (again if c = 0);
            r = k − c·x          (again if r = 0);   signature = c ‖ r
    verify: P decodes; c, r < l; c ≠ 0;  R = c·P + r·G;  R ≠ identity;  Hs(h ‖ P ‖ R) = c

:func:`check_signature` is the reference check on raw bytes: the public key may carry a
torsion component (Monero only requires that it decodes), which is what its test vectors
exercise. :func:`verify_signature` is petranode's strict form over typed values, raising
instead of returning False.

The nonce comes from an ``rng`` (the OS CSPRNG by default). :func:`deterministic_nonce_rng`
gives an RFC 6979-style alternative: a BLAKE2b stream keyed by the secret key over the
message, so a broken system RNG cannot leak the key through a repeated nonce.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.crypto.errors import CryptoError, NonCanonicalEncoding, VerificationFailed
from petranode.crypto.group import (
    Point,
    Rng,
    Scalar,
    hash_to_scalar,
    os_rng,
    random_scalar,
    scalar_mult,
)

log = logging.getLogger(__name__)

HASH_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
_NONCE_DOMAIN: Final = b"petranode/schnorr-nonce/v1"


def _check_hash(prefix_hash: bytes) -> None:
    if len(prefix_hash) != HASH_BYTES:
        raise CryptoError("prefix hash must be 32 bytes")


@final
@dataclass(frozen=True, slots=True)
class Signature:
    """``(c, r)``, serialized ``c ‖ r`` as Monero's ``crypto::signature``."""

    c: Scalar
    r: Scalar

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        """Decode; raises :class:`CryptoError` on a wrong length or a scalar ≥ l."""
        if len(data) != SIGNATURE_BYTES:
            raise NonCanonicalEncoding("signature must be 64 bytes")
        return cls(Scalar.from_bytes(data[:32]), Scalar.from_bytes(data[32:]))

    def __bytes__(self) -> bytes:
        return self.c.raw + self.r.raw

    def hex(self) -> str:
        return bytes(self).hex()

    def __repr__(self) -> str:
        return f"Signature({self.hex()})"  # public


def _challenge(prefix_hash: bytes, public_raw: bytes, commitment: Point) -> Scalar:
    # s_comm { hash h; ec_point key; ec_point comm; }
    return hash_to_scalar(prefix_hash, public_raw, commitment.raw)


def generate_signature(prefix_hash: bytes, public_key: Point, secret_key: Scalar,
                       rng: Rng = os_rng) -> Signature:
    """Sign ``prefix_hash`` with ``secret_key``; ``public_key`` must be ``secret_key·G``."""
    _check_hash(prefix_hash)
    # Monero asserts this in debug builds; a mismatch would yield a signature nobody accepts.
    if secret_key.mul_base() != public_key:
        raise CryptoError("secret key does not match public key")
    while True:
        k = random_scalar(rng)
        c = _challenge(prefix_hash, public_key.raw, k.mul_base())
        if c.is_zero():
            continue
        r = k - c * secret_key
        if r.is_zero():
            continue
        return Signature(c, r)


def _verifies(prefix_hash: bytes, public_key: Point, c: Scalar, r: Scalar) -> bool:
    if c.is_zero():
        return False
    commitment = scalar_mult(c, public_key) + r.mul_base()
    if commitment.is_identity():
        return False
    return _challenge(prefix_hash, public_key.raw, commitment) == c


def check_signature(prefix_hash: bytes, public_key: bytes, signature: bytes) -> bool:
    """Monero's ``check_signature`` on raw bytes (a torsioned public key is allowed)."""
    _check_hash(prefix_hash)
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        pub = Point.from_bytes(public_key, allow_torsion=True, allow_identity=True)
        sig = Signature.from_bytes(signature)
    except CryptoError:
        return False
    return _verifies(prefix_hash, pub, sig.c, sig.r)


def verify_signature(prefix_hash: bytes, public_key: Point, signature: Signature) -> None:
    """Strict check: the key must be a non-identity prime-order point; raises on failure."""
    _check_hash(prefix_hash)
    if not public_key.in_subgroup or public_key.is_identity():
        raise VerificationFailed("public key outside the prime-order subgroup")
    if not _verifies(prefix_hash, public_key, signature.c, signature.r):
        raise VerificationFailed("signature does not verify")


def deterministic_nonce_rng(secret_key: Scalar, prefix_hash: bytes) -> Rng:
    """An RNG whose stream is BLAKE2b(key = secret, domain ‖ hash ‖ counter) blocks.

    Pass it as ``rng`` to :func:`generate_signature` for a deterministic nonce: the same key
    and message always give the same signature, different messages unrelated nonces.
    """
    _check_hash(prefix_hash)
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        out = bytearray()
        while len(out) < n:
            out += na.crypto_generichash(
                _NONCE_DOMAIN + prefix_hash + counter.to_bytes(8, "little"),
                key=secret_key.raw, digest_size=64)
            counter += 1
        return bytes(out[:n])

    return draw
