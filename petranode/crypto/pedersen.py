"""Pedersen commitments with Monero's second generator H (SPEC §4.5, RingCT).

``C = mask·G + amount·H``. Nobody knows log_G(H), so a
commitment binds the amount, and the random mask hides it.
"""

from __future__ import annotations

from typing import Final

from petranode.crypto.errors import CryptoError
from petranode.crypto.group import ONE, G, Point, Scalar, cn_fast_hash

#: Monero's H (``rct::H`` = 8b6559…1f94): the Keccak-256 of G's encoding read *as a point
#: encoding* (it happens to decode) times 8 — not ``hash_to_ec``. Derived, not pasted, so a
#: reader can check it; a unit test pins the bytes.
H: Final = Point.from_bytes(cn_fast_hash(G.raw), allow_torsion=True).mul8()

AMOUNT_BITS: Final = 64
MAX_AMOUNT: Final = (1 << AMOUNT_BITS) - 1


def amount_scalar(amount: int) -> Scalar:
    """An amount as a scalar; amounts are unsigned 64-bit integers."""
    if not 0 <= amount <= MAX_AMOUNT:
        raise CryptoError("amount out of range [0, 2^64)")
    return Scalar.from_int(amount)


def commit(amount: int, mask: Scalar) -> Point:
    """mask·G + amount·H."""
    return mask.mul_base() + amount_scalar(amount) * H


def zero_commit(amount: int) -> Point:
    """A commitment with mask 1 to a public amount (Monero's ``zeroCommit``, used for fees)."""
    return commit(amount, ONE)
