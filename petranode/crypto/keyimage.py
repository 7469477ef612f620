"""Key images: the linking tag of CryptoNote's one-time ring signatures (SPEC §2 LNK, §4.5).

A key image is ``I = x·Hp(P)`` for a one-time output key ``P = x·G`` and Monero's
``hash_to_ec`` as ``Hp`` (``crypto::generate_key_image`` in ``src/crypto/crypto.cpp``). It is
the same for every signature by the same output, whatever ring hides it, so a second spend of
an output shows up as a repeated key image (LNK: two signatures link iff their images are
equal).

Why the subgroup check matters: ``Hp(P)`` is in the prime-order subgroup, so an honest image
is too. An image ``I + T`` with a small-order ``T`` is a different encoding, yet it passes the
original CryptoNote ring check whenever the signer's own challenge is a multiple of ``T``'s
order (the ``c·T`` term vanishes — a signer can grind for that), so accepting it would let
one output be spent up to eight times under eight distinct images. Monero closes this in
``core::check_tx_inputs_keyimages_domain`` (``l·I = 0``); here :meth:`KeyImage.from_bytes`
accepts only canonical, non-identity encodings of prime-order-subgroup points (libsodium's
``crypto_core_ed25519_is_valid_point``), so no other representation of a spent output exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import final

from petranode.crypto.errors import CryptoError, NotInSubgroup
from petranode.crypto.group import Point, Scalar, hash_to_point

log = logging.getLogger(__name__)

KEY_IMAGE_BYTES = 32


@final
@dataclass(frozen=True, slots=True)
class KeyImage:
    """A key image known to be a non-identity point of the prime-order subgroup."""

    point: Point

    def __post_init__(self) -> None:
        if not self.point.in_subgroup or self.point.is_identity():
            raise NotInSubgroup("key image must be a non-identity prime-order point")

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyImage:
        """Decode; raises :class:`CryptoError` unless canonical, in the subgroup, not identity."""
        if len(data) != KEY_IMAGE_BYTES:
            raise CryptoError("key image must be 32 bytes")
        return cls(Point.from_bytes(data))

    def __bytes__(self) -> bytes:
        return self.point.raw

    def hex(self) -> str:
        return self.point.raw.hex()

    def __repr__(self) -> str:
        # Key images are public (they are published in every input).
        return f"KeyImage({self.point.raw.hex()})"


def generate_key_image(public_key: Point, secret_key: Scalar) -> KeyImage:
    """``I = x·Hp(P)`` (Monero's ``generate_key_image``).

    ``Hp(P)`` is in the prime-order subgroup, so the multiplication is libsodium's
    constant-time one. A zero secret would give the identity and is refused.
    """
    if secret_key.is_zero():
        raise CryptoError("zero secret key")
    return KeyImage(secret_key * hash_to_point(public_key.raw))


def linked(a: KeyImage, b: KeyImage) -> bool:
    """SPEC §2 LNK: two ring signatures were made with the same output iff their images match."""
    return a.point.raw == b.point.raw
