"""One-time (stealth) output keys and scanning with the view key (SPEC §2, §4.5).

CryptoNote's Diffie-Hellman derived destinations, as Monero's ``src/crypto/crypto.cpp``
computes them:

* ``generate_key_derivation(R, a) = 8·(a·R)`` — the shared secret ``D`` of a transaction key
  ``R = r·G`` and a view key ``a``; the sender computes the same ``D = 8·(r·A)``. The factor 8
  (``ge_mul8``) removes any small-order component a hostile ``R`` carries.
* ``derivation_to_scalar(D, i) = Hs(D ‖ varint(i))`` — per output index ``i``.
* ``derive_public_key(D, i, B) = Hs(D ‖ i)·G + B`` — the one-time output key ``P``.
* ``derive_secret_key(D, i, b) = Hs(D ‖ i) + b`` — its secret ``x`` with ``P = x·G``.
* ``underive_public_key(D, i, P) = P − Hs(D ‖ i)·G`` — Monero's
  ``derive_subaddress_public_key``: recovers ``B`` from an output.
* ``derive_view_tag(D, i) = Keccak("view_tag" ‖ D ‖ varint(i))[0]`` — one byte that lets a
  scanner discard 255/256 of foreign outputs after a hash instead of a scalar multiplication
  (Monero v15, ``crypto::derive_view_tag``).

The secret multiplication ``a·R`` runs as ``a·(8·R)``: the same point (scalar multiplication
commutes), but ``8·R`` is in the prime-order subgroup, so libsodium's constant-time
multiplication applies even when ``R`` carries torsion.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.crypto.errors import CryptoError
from petranode.crypto.group import (
    Point,
    Rng,
    Scalar,
    cn_fast_hash,
    hash_to_scalar,
    os_rng,
    random_scalar,
    varint,
)
from petranode.crypto.keys import PublicAddress, ViewKeys, WalletKeys

log = logging.getLogger(__name__)

DERIVATION_BYTES: Final = 32
_VIEW_TAG_DOMAIN: Final = b"view_tag"  # config::HASH_KEY_VIEW_TAG, no terminator


@final
@dataclass(frozen=True, slots=True, eq=False)
class KeyDerivation:
    """The 32-byte shared secret ``D`` (Monero's ``key_derivation``).

    Kept as bytes: it is only ever hashed, and Monero's functions accept any 32 bytes here.
    """

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != DERIVATION_BYTES:
            raise CryptoError("key derivation must be 32 bytes")

    def __bytes__(self) -> bytes:
        return self.raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyDerivation):
            return NotImplemented
        return na.sodium_memcmp(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return "KeyDerivation(…)"  # a shared secret


def generate_key_derivation(public_key: Point, secret_key: Scalar) -> KeyDerivation:
    """``D = 8·(secret·public)`` — recipient: ``(R, a)``; sender: ``(A, r)``."""
    return KeyDerivation((secret_key * public_key.mul8()).raw)


def derivation_to_scalar(derivation: KeyDerivation, output_index: int) -> Scalar:
    """``Hs(D ‖ varint(i))``: the per-output shared scalar (also keys the amount encryption)."""
    return hash_to_scalar(derivation.raw, varint(output_index))


def derive_public_key(derivation: KeyDerivation, output_index: int, spend_public: Point) -> Point:
    """The one-time output key ``P = Hs(D ‖ i)·G + B``."""
    return derivation_to_scalar(derivation, output_index).mul_base() + spend_public


def derive_secret_key(derivation: KeyDerivation, output_index: int,
                      spend_secret: Scalar) -> Scalar:
    """The one-time secret ``x = Hs(D ‖ i) + b``."""
    return derivation_to_scalar(derivation, output_index) + spend_secret


def underive_public_key(derivation: KeyDerivation, output_index: int,
                        one_time_key: Point) -> Point:
    """``P − Hs(D ‖ i)·G``: the spend key an output was sent to (``derive_subaddress_public_key``)."""
    return one_time_key - derivation_to_scalar(derivation, output_index).mul_base()


def derive_view_tag(derivation: KeyDerivation, output_index: int) -> int:
    """The output's view tag: first byte of ``Keccak("view_tag" ‖ D ‖ varint(i))``."""
    return cn_fast_hash(_VIEW_TAG_DOMAIN, derivation.raw, varint(output_index))[0]


# -- sending ----------------------------------------------------------------------------

@final
@dataclass(frozen=True, slots=True)
class TxSecret:
    """A transaction's random ``r`` and its published key ``R = r·G``.

    Disclosing ``r`` proves a payment (SPEC §2), so it is kept, never printed.
    """

    secret: Scalar
    public: Point = field(init=False)

    def __post_init__(self) -> None:
        if self.secret.is_zero():
            raise CryptoError("zero transaction secret")
        object.__setattr__(self, "public", self.secret.mul_base())

    @classmethod
    def generate(cls, rng: Rng = os_rng) -> TxSecret:
        return cls(random_scalar(rng))

    def __repr__(self) -> str:
        return f"TxSecret(public={self.public.raw.hex()})"


@final
@dataclass(frozen=True, slots=True)
class StealthOutput:
    """What a transaction publishes for one output: its one-time key and view tag."""

    one_time_key: Point
    view_tag: int

    def __post_init__(self) -> None:
        if not 0 <= self.view_tag <= 0xFF:
            raise CryptoError("view tag is one byte")


@final
@dataclass(frozen=True, slots=True)
class SentOutput:
    """The sender's side of one output: what to publish and the shared scalar for its amount."""

    output_index: int
    output: StealthOutput
    shared_secret: Scalar

    def __repr__(self) -> str:
        return f"SentOutput(output_index={self.output_index}, output={self.output!r})"


def create_output(tx_secret: TxSecret, recipient: PublicAddress, output_index: int) -> SentOutput:
    """Output ``i`` to ``recipient = (B, A)``: ``P = Hs(8·r·A ‖ i)·G + B`` and its view tag."""
    derivation = generate_key_derivation(recipient.view, tx_secret.secret)
    shared = derivation_to_scalar(derivation, output_index)
    one_time_key = shared.mul_base() + recipient.spend
    tag = derive_view_tag(derivation, output_index)
    return SentOutput(output_index, StealthOutput(one_time_key, tag), shared)


# -- receiving --------------------------------------------------------------------------

@final
@dataclass(frozen=True, slots=True)
class ReceivedOutput:
    """An output the view key recognised, with the shared scalar that opens its amount."""

    output_index: int
    one_time_key: Point
    shared_secret: Scalar

    def __repr__(self) -> str:
        return (f"ReceivedOutput(output_index={self.output_index}, "
                f"one_time_key={self.one_time_key.raw.hex()})")


def _match(view_keys: ViewKeys, derivation: KeyDerivation, output_index: int,
           output: StealthOutput) -> ReceivedOutput | None:
    # The tag costs one Keccak; the key check costs a scalar multiplication. Checking the
    # tag first is the whole point of view tags.
    if derive_view_tag(derivation, output_index) != output.view_tag:
        return None
    shared = derivation_to_scalar(derivation, output_index)
    if shared.mul_base() + view_keys.spend_public != output.one_time_key:
        return None
    return ReceivedOutput(output_index, output.one_time_key, shared)


def scan_output(view_keys: ViewKeys, tx_public: Point, output_index: int,
                output: StealthOutput) -> ReceivedOutput | None:
    """The output if it pays ``view_keys``' address, else None."""
    derivation = generate_key_derivation(tx_public, view_keys.view_secret)
    return _match(view_keys, derivation, output_index, output)


def scan_transaction(view_keys: ViewKeys, tx_public: Point,
                     outputs: Sequence[StealthOutput]) -> list[ReceivedOutput]:
    """Every output of one transaction (indices 0…n−1) that pays ``view_keys``' address.

    The derivation is computed once per transaction; each output then costs one hash, plus a
    scalar multiplication only when its view tag matches.
    """
    derivation = generate_key_derivation(tx_public, view_keys.view_secret)
    found = []
    for index, output in enumerate(outputs):
        match = _match(view_keys, derivation, index, output)
        if match is not None:
            found.append(match)
    return found


def one_time_secret_key(wallet: WalletKeys, received: ReceivedOutput) -> Scalar:
    """``x = Hs(D ‖ i) + b``, checked against the output key (``x·G = P``)."""
    secret = received.shared_secret + wallet.spend_secret
    if secret.mul_base() != received.one_time_key:
        raise CryptoError("output does not belong to this wallet's spend key")
    return secret
