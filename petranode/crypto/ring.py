"""CryptoNote one-time ring signatures: GEN, SIG, VER, LNK of SPEC §2 (SPEC §4.5).

The original scheme of the CryptoNote whitepaper (v2, §4.4), byte for byte as Monero's
``crypto::generate_ring_signature`` / ``crypto::check_ring_signature``
(``src/crypto/crypto.cpp``) compute it. For a ring ``P_0…P_{n−1}``, key image ``I`` and a
32-byte prefix hash ``h``::

    L_i = c_i·P_i + r_i·G        R_i = r_i·Hp(P_i) + c_i·I
    valid  ⇔  Σ c_i = Hs(h ‖ L_0 ‖ R_0 ‖ … ‖ L_{n−1} ‖ R_{n−1})   (mod l)

* GEN — a key pair (:func:`petranode.crypto.keys.generate_keys`) and its key image
  (:func:`petranode.crypto.keyimage.generate_key_image`).
* SIG — :func:`generate_ring_signature`: for ``i ≠ s`` draw ``c_i, r_i``; at the signer's
  index ``s`` commit ``L_s = k·G``, ``R_s = k·Hp(P_s)``; then ``c_s = Hs(…) − Σ_{i≠s} c_i`` and
  ``r_s = k − c_s·x``. Draw order (``k`` at ``s``, else ``c_i`` then ``r_i``) is Monero's, so
  its test RNG reproduces its vectors.
* VER — :func:`check_ring_signature` is the reference check on raw bytes: it requires only
  that ``I`` and every ``P_i`` decode and every scalar is < l. Like Monero's it does **not**
  check that ``I`` is in the prime-order subgroup (Monero does that elsewhere, in
  ``check_tx_inputs_keyimages_domain``) nor that ring members are distinct (Monero enforces
  that on key offsets). :func:`verify_ring_signature` is the check petranode's ledger uses:
  a :class:`KeyImage` (canonical, prime-order, not identity — SPEC §4.5), ring members that
  are distinct prime-order points, then the same equation.
* LNK — :func:`petranode.crypto.keyimage.linked`: equal key images.

Signing touches the secret only in libsodium scalar arithmetic and constant-time
multiplications by ``k`` of prime-order points; which index is real is not hidden from a
timing observer of this process (the loop is Python).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import CryptoError, NonCanonicalEncoding, VerificationFailed
from petranode.crypto.group import (
    IDENTITY,
    ZERO,
    Point,
    Rng,
    Scalar,
    hash_to_point,
    hash_to_scalar,
    os_rng,
    random_scalar,
    scalar_mult,
)
from petranode.crypto.keyimage import KeyImage, generate_key_image

log = logging.getLogger(__name__)

HASH_BYTES: Final = 32
PAIR_BYTES: Final = 64
_INV_EIGHT: Final = Scalar.from_int(8).invert()


@final
@dataclass(frozen=True, slots=True)
class RingSignature:
    """One ``(c_i, r_i)`` per ring member, serialized ``c_0 ‖ r_0 ‖ c_1 ‖ r_1 ‖ …``."""

    pairs: tuple[tuple[Scalar, Scalar], ...]

    def __post_init__(self) -> None:
        if not self.pairs:
            raise CryptoError("empty ring signature")

    @classmethod
    def from_bytes(cls, data: bytes, ring_size: int) -> RingSignature:
        """Decode a signature for a ring of ``ring_size``; every scalar must be < l."""
        if ring_size < 1 or len(data) != PAIR_BYTES * ring_size:
            raise NonCanonicalEncoding("ring signature length does not match the ring")
        return cls(tuple(
            (Scalar.from_bytes(data[i:i + 32]), Scalar.from_bytes(data[i + 32:i + 64]))
            for i in range(0, len(data), PAIR_BYTES)))

    def __bytes__(self) -> bytes:
        return b"".join(c.raw + r.raw for c, r in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"RingSignature(ring_size={len(self.pairs)})"


def _check_hash(prefix_hash: bytes) -> None:
    if len(prefix_hash) != HASH_BYTES:
        raise CryptoError("prefix hash must be 32 bytes")


def generate_ring_signature(prefix_hash: bytes, key_image: KeyImage, pubs: Sequence[Point],
                            secret_key: Scalar, secret_index: int,
                            rng: Rng = os_rng) -> RingSignature:
    """Sign ``prefix_hash`` as ``pubs[secret_index]``, hidden among ``pubs`` (SIG)."""
    _check_hash(prefix_hash)
    n = len(pubs)
    if not 0 <= secret_index < n:
        raise CryptoError("secret index outside the ring")
    # Monero asserts both in debug builds; a mismatch gives a signature nobody accepts.
    signer = pubs[secret_index]
    if secret_key.mul_base() != signer:
        raise CryptoError("secret key does not match the ring member at secret_index")
    if generate_key_image(signer, secret_key) != key_image:
        raise CryptoError("key image does not belong to the secret key")
    image = key_image.point
    pairs: list[tuple[Scalar, Scalar]] = []
    commitments: list[bytes] = []
    total = ZERO
    k = ZERO
    for i, pub in enumerate(pubs):
        hp = hash_to_point(pub.raw)
        if i == secret_index:
            k = random_scalar(rng)
            commitments += (k.mul_base().raw, (k * hp).raw)
            pairs.append((ZERO, ZERO))  # filled in once the challenge is known
        else:
            c = random_scalar(rng)
            r = random_scalar(rng)
            commitments += ((scalar_mult(c, pub) + r.mul_base()).raw,
                            (scalar_mult(r, hp) + scalar_mult(c, image)).raw)
            pairs.append((c, r))
            total = total + c
    c_s = hash_to_scalar(prefix_hash, *commitments) - total
    pairs[secret_index] = (c_s, k - c_s * secret_key)
    return RingSignature(tuple(pairs))


@final
class _FixedBase:
    """``c ↦ c·I`` for one point used with every ring member (Monero's ``ge_dsm_precomp``).

    A key image given to the reference check may carry torsion; splitting it once into its
    prime-order part ``I'`` and the multiples ``m·T`` of its torsion part ``T`` makes each
    product one constant-time multiplication and one addition: ``c·I = c·I' + (c mod 8)·T``.
    """

    def __init__(self, point: Point) -> None:
        self._prime = point
        self._torsion = [IDENTITY]
        if not point.in_subgroup:
            self._prime = _INV_EIGHT * point.mul8()
            t = point - self._prime
            for _ in range(7):
                self._torsion.append(self._torsion[-1] + t)

    def times(self, c: Scalar) -> Point:
        product = c * self._prime
        return product if len(self._torsion) == 1 else product + self._torsion[int(c) % 8]


def _equation_holds(prefix_hash: bytes, image: Point, pubs: Sequence[Point],
                    pairs: Sequence[tuple[Scalar, Scalar]]) -> bool:
    commitments: list[bytes] = []
    total = ZERO
    image_base = _FixedBase(image)
    for pub, (c, r) in zip(pubs, pairs, strict=True):
        commitments.append((scalar_mult(c, pub) + r.mul_base()).raw)
        commitments.append((r * hash_to_point(pub.raw) + image_base.times(c)).raw)
        total = total + c
    return hash_to_scalar(prefix_hash, *commitments) == total


def check_ring_signature(prefix_hash: bytes, key_image: bytes, pubs: Sequence[bytes],
                         signature: bytes) -> bool:
    """Monero's ``check_ring_signature`` on raw bytes (VER, reference semantics).

    No subgroup check on the key image and no distinctness check on the ring: use
    :func:`verify_ring_signature` for anything that accepts spends.
    """
    _check_hash(prefix_hash)
    n = len(pubs)
    if n < 1 or len(signature) != PAIR_BYTES * n:
        return False
    try:
        image = Point.from_bytes(key_image, allow_torsion=True, allow_identity=True)
        sig = RingSignature.from_bytes(signature, n)
        ring = [Point.from_bytes(p, allow_torsion=True, allow_identity=True) for p in pubs]
    except CryptoError:
        return False
    return _equation_holds(prefix_hash, image, ring, sig.pairs)


def verify_ring_signature(prefix_hash: bytes, key_image: KeyImage, ring: Sequence[Point],
                          signature: RingSignature) -> None:
    """petranode's strict VER; raises :class:`VerificationFailed` unless the spend is valid.

    Beyond the reference check: the key image is a :class:`KeyImage` (so canonical and in the
    prime-order subgroup), and the ring members are distinct non-identity prime-order points
    — a repeated member would let a signer shrink the real anonymity set while appearing to
    use a full ring.
    """
    _check_hash(prefix_hash)
    if not ring or len(signature) != len(ring):
        raise VerificationFailed("ring and signature sizes differ")
    if len({p.raw for p in ring}) != len(ring):
        raise VerificationFailed("ring has a repeated member")
    if any(not p.in_subgroup or p.is_identity() for p in ring):
        raise VerificationFailed("ring member outside the prime-order subgroup")
    if not _equation_holds(prefix_hash, key_image.point, ring, signature.pairs):
        raise VerificationFailed("ring signature does not verify")
