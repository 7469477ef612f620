"""Amounts and masks encrypted to the recipient: RingCT v2 "compact" ``ecdhInfo`` (SPEC §4.5).

Follows Monero's ``rct::ecdhEncode`` / ``rct::ecdhDecode`` with ``v2 = true`` and
``rct::genCommitmentMask`` (``src/ringct/rctOps.cpp``), as used since RCTTypeBulletproof2.
Sender and recipient share ``k = Hs(D ‖ varint(i))`` — ``derivation_to_scalar`` of the ECDH
derivation ``D = 8·r·A = 8·a·R`` and the output index ``i`` (``stealth.derivation_to_scalar``).
From it:

* the amount travels as ``amount XOR Keccak("amount" ‖ k)[0:8]`` (8 bytes, little-endian);
* the commitment mask is not transmitted at all: ``mask = Hs("commitment_mask" ‖ k)``.

The recipient recovers both and recomputes ``mask·G + amount·H``; an output whose commitment
does not match was not meant for this shared secret or was corrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import NonCanonicalEncoding, VerificationFailed
from petranode.crypto.group import Point, Scalar, cn_fast_hash, hash_to_scalar
from petranode.crypto.pedersen import amount_scalar, commit

log = logging.getLogger(__name__)

ENCRYPTED_AMOUNT_BYTES: Final = 8
_AMOUNT_TAG: Final = b"amount"
_MASK_TAG: Final = b"commitment_mask"


def amount_key(shared: Scalar) -> bytes:
    """The 8-byte pad for the amount: Keccak("amount" ‖ k), truncated (``ecdhHash``)."""
    return cn_fast_hash(_AMOUNT_TAG, shared.raw)[:ENCRYPTED_AMOUNT_BYTES]


def commitment_mask(shared: Scalar) -> Scalar:
    """The output's commitment mask, Hs("commitment_mask" ‖ k) (``genCommitmentMask``)."""
    return hash_to_scalar(_MASK_TAG, shared.raw)


def _xor8(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@final
@dataclass(frozen=True, slots=True)
class EcdhInfo:
    """The encrypted amount of one output (8 bytes, as serialized in ``ecdhInfo``)."""

    amount: bytes

    def __post_init__(self) -> None:
        if len(self.amount) != ENCRYPTED_AMOUNT_BYTES:
            raise NonCanonicalEncoding("encrypted amount must be 8 bytes")

    def encode(self) -> bytes:
        return self.amount

    @classmethod
    def decode(cls, data: bytes) -> EcdhInfo:
        return cls(bytes(data))


def encrypt(amount: int, shared: Scalar) -> EcdhInfo:
    """Encrypt ``amount`` (0 ≤ amount < 2⁶⁴) under the output's shared scalar."""
    amount_scalar(amount)  # range check
    plain = amount.to_bytes(ENCRYPTED_AMOUNT_BYTES, "little")
    return EcdhInfo(_xor8(plain, amount_key(shared)))


def decrypt_amount(info: EcdhInfo, shared: Scalar) -> int:
    """The amount, unauthenticated: check it with :func:`open_output`."""
    return int.from_bytes(_xor8(info.amount, amount_key(shared)), "little")


def make_output(amount: int, shared: Scalar) -> tuple[EcdhInfo, Scalar, Point]:
    """Sender side: (encrypted amount, mask, commitment ``mask·G + amount·H``)."""
    mask = commitment_mask(shared)
    return encrypt(amount, shared), mask, commit(amount, mask)


def open_output(info: EcdhInfo, shared: Scalar, commitment: Point) -> tuple[int, Scalar]:
    """Recipient side: (amount, mask), or VerificationFailed if the commitment disagrees."""
    amount = decrypt_amount(info, shared)
    mask = commitment_mask(shared)
    if commit(amount, mask) != commitment:
        raise VerificationFailed("commitment does not open to the decrypted amount")
    return amount, mask
