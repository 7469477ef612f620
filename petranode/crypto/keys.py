"""Wallet keys and addresses: CryptoNote's spend/view key pairs (SPEC §2, §4.5).

A wallet holds two secret scalars (Monero's ``account_keys``): the *spend* key ``b``, needed
to sign (and so to spend), and the *view* key ``a``, enough to recognise incoming outputs and
decrypt their amounts — the "tracking key" a prosumer may hand to the DSO for audit (SPEC §2).
The public address is the pair ``(B, A) = (b·G, a·G)``.

Following Monero's ``account_base::generate`` (``src/cryptonote_basic/account.cpp``), the view
key can be derived from the spend key as ``a = Hs(b)`` (``keccak`` of ``b`` then
``sc_reduce32``), so one secret restores the whole wallet; an independent random view key is
the other option.

Address strings
---------------
``base58(varint(prefix) ‖ B ‖ A ‖ Keccak-256(varint(prefix) ‖ B ‖ A)[0:4])`` with Monero's
block-wise base58 (``src/common/base58.cpp``: 8-byte blocks → 11 characters, a short last
block by the ``encoded_block_sizes`` table), as in ``get_account_address_as_str``. Block-wise
base58 makes the length a function of the payload only and every valid string the unique
encoding of its bytes, so decoding can insist on an exact round trip.

The network prefixes are ours: two-byte varints that no CryptoNote coin we know uses, picked
so that a mainnet address starts ``Pe`` and a testnet one ``PT``; a Monero address (one-byte
prefix) never decodes as a petranode one, nor the reverse. :meth:`PublicAddress.decode` is
stricter than Monero's, which only calls ``check_key``: both keys must be canonical
non-identity points of the prime-order subgroup. Honest keys always are, and a torsion
component in a recipient key would only make the sender's outputs malleable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto.errors import CryptoError, InvalidAddress
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

log = logging.getLogger(__name__)

#: Address prefix of the petranode main network (encodes as a leading ``Pe``).
MAINNET_ADDRESS_PREFIX: Final = 0x2C07
#: Address prefix of test networks (encodes as a leading ``PT``).
TESTNET_ADDRESS_PREFIX: Final = 0x1B06

CHECKSUM_BYTES: Final = 4
KEY_BYTES: Final = 32

# -- Monero's block-wise base58 ---------------------------------------------------------

_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_DIGITS: Final = {ch: i for i, ch in enumerate(_ALPHABET)}
_FULL_BLOCK: Final = 8
_FULL_ENCODED_BLOCK: Final = 11
#: Characters needed for a block of 0…8 bytes (``encoded_block_sizes`` in base58.cpp).
_ENCODED_BLOCK_SIZES: Final = (0, 2, 3, 5, 6, 7, 9, 10, 11)
#: Longest string :func:`base58_decode` accepts; an address is under 100 characters, and the
#: bound keeps the decoder's work proportional to sane input.
MAX_BASE58_CHARS: Final = 1024


def _encode_block(block: bytes) -> str:
    num = int.from_bytes(block, "big")
    out = []
    for _ in range(_ENCODED_BLOCK_SIZES[len(block)]):
        num, digit = divmod(num, 58)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def base58_encode(data: bytes) -> str:
    """Monero's base58: each 8-byte block (big-endian) as exactly 11 characters."""
    return "".join(
        _encode_block(data[i : i + _FULL_BLOCK]) for i in range(0, len(data), _FULL_BLOCK)
    )


def base58_decode(text: str) -> bytes:
    """Inverse of :func:`base58_encode`; raises :class:`InvalidAddress` on any other string."""
    if len(text) > MAX_BASE58_CHARS:
        raise InvalidAddress("base58 string too long")
    last = len(text) % _FULL_ENCODED_BLOCK
    if last not in _ENCODED_BLOCK_SIZES:
        raise InvalidAddress("base58 string has an impossible length")
    out = bytearray()
    for start in range(0, len(text), _FULL_ENCODED_BLOCK):
        chunk = text[start : start + _FULL_ENCODED_BLOCK]
        size = _ENCODED_BLOCK_SIZES.index(len(chunk))
        num = 0
        for ch in chunk:
            digit = _DIGITS.get(ch)
            if digit is None:
                raise InvalidAddress("character outside the base58 alphabet")
            num = num * 58 + digit
        # base58.cpp decode_block: a full block must fit 64 bits, a short one its byte count.
        if num >> (8 * size):
            raise InvalidAddress("base58 block overflows")
        out += num.to_bytes(size, "big")
    return bytes(out)


# -- keys -------------------------------------------------------------------------------


def generate_keys(rng: Rng = os_rng) -> tuple[Point, Scalar]:
    """A random key pair ``(x·G, x)``, drawn as Monero's ``generate_keys`` draws it."""
    secret = random_scalar(rng)
    return secret.mul_base(), secret


def view_secret_from_spend(spend_secret: Scalar) -> Scalar:
    """Monero's deterministic view key: ``a = Hs(b)`` (keccak of b, ``sc_reduce32``)."""
    view = hash_to_scalar(spend_secret.raw)
    if view.is_zero():  # probability 2⁻²⁵², but a zero key would be public
        raise CryptoError("derived view key is zero")
    return view


def _check_public_key(p: Point, what: str) -> None:
    if not p.in_subgroup or p.is_identity():
        raise CryptoError(f"{what} must be a non-identity prime-order point")


@final
@dataclass(frozen=True, slots=True)
class PublicAddress:
    """A recipient: public spend key ``B`` and public view key ``A``."""

    spend: Point
    view: Point

    def __post_init__(self) -> None:
        _check_public_key(self.spend, "spend key")
        _check_public_key(self.view, "view key")

    def encode(self, prefix: int = MAINNET_ADDRESS_PREFIX) -> str:
        """The address string for the network with this prefix."""
        body = varint(prefix) + self.spend.raw + self.view.raw
        return base58_encode(body + cn_fast_hash(body)[:CHECKSUM_BYTES])

    @classmethod
    def decode(cls, text: str, prefix: int = MAINNET_ADDRESS_PREFIX) -> PublicAddress:
        """Parse an address of the network with this prefix; raises :class:`InvalidAddress`."""
        data = base58_decode(text)
        tag = varint(prefix)
        if len(data) != len(tag) + 2 * KEY_BYTES + CHECKSUM_BYTES:
            raise InvalidAddress("address has the wrong length")
        body, checksum = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
        if cn_fast_hash(body)[:CHECKSUM_BYTES] != checksum:
            raise InvalidAddress("address checksum mismatch")
        if body[: len(tag)] != tag:
            raise InvalidAddress("address is for another network")
        keys = body[len(tag) :]
        try:
            spend = Point.from_bytes(keys[:KEY_BYTES])
            view = Point.from_bytes(keys[KEY_BYTES:])
        except CryptoError as exc:
            raise InvalidAddress("address key is not a valid public key") from exc
        return cls(spend, view)

    def __repr__(self) -> str:
        return f"PublicAddress(spend={self.spend.raw.hex()}, view={self.view.raw.hex()})"


@final
@dataclass(frozen=True, slots=True)
class ViewKeys:
    """What scanning needs: the secret view key ``a`` and the public spend key ``B``.

    This is the tracking key of SPEC §2: it finds every output paid to the address and opens
    its amount, but cannot sign.
    """

    view_secret: Scalar
    spend_public: Point
    view_public: Point = field(init=False)

    def __post_init__(self) -> None:
        if self.view_secret.is_zero():
            raise CryptoError("zero view key")
        _check_public_key(self.spend_public, "spend key")
        object.__setattr__(self, "view_public", self.view_secret.mul_base())

    @property
    def address(self) -> PublicAddress:
        return PublicAddress(self.spend_public, self.view_public)

    def __repr__(self) -> str:
        return f"ViewKeys(address={self.address!r})"


@final
@dataclass(frozen=True, slots=True)
class WalletKeys:
    """A wallet's two secret keys and the public keys they determine."""

    spend_secret: Scalar
    view_secret: Scalar
    spend_public: Point = field(init=False)
    view_public: Point = field(init=False)

    def __post_init__(self) -> None:
        if self.spend_secret.is_zero() or self.view_secret.is_zero():
            raise CryptoError("zero secret key")
        object.__setattr__(self, "spend_public", self.spend_secret.mul_base())
        object.__setattr__(self, "view_public", self.view_secret.mul_base())

    @classmethod
    def generate(cls, rng: Rng = os_rng, *, derive_view: bool = True) -> WalletKeys:
        """A new wallet; by default the view key is ``Hs(spend)`` as in Monero's wallets."""
        spend = random_scalar(rng)
        if derive_view:
            return cls.from_spend_secret(spend)
        return cls(spend, random_scalar(rng))

    @classmethod
    def from_spend_secret(cls, spend_secret: Scalar) -> WalletKeys:
        """Restore a wallet whose view key was derived: ``a = Hs(b)``."""
        return cls(spend_secret, view_secret_from_spend(spend_secret))

    @property
    def address(self) -> PublicAddress:
        return PublicAddress(self.spend_public, self.view_public)

    @property
    def view_keys(self) -> ViewKeys:
        """The tracking key to hand to an auditor (SPEC §2)."""
        return ViewKeys(self.view_secret, self.spend_public)

    def __repr__(self) -> str:
        # Public halves only: a repr ends up in logs and tracebacks.
        return f"WalletKeys(address={self.address!r})"
