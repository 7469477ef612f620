"""The ed25519 group as CryptoNote uses it (SPEC §4.5): scalars, points, hashes into both.

Theory of operation
-------------------
Arithmetic runs in libsodium (``crypto_core_ed25519_*``, ``crypto_scalarmult_ed25519_*``),
which works in the prime-order subgroup and refuses anything else. Monero's data is not so
tidy: public keys in its test vectors (and on a hostile network) may carry a small-order
(torsion) component, and its hash-to-point map lands anywhere on the curve. So:

* :class:`Point` holds any canonical encoding of a curve point and remembers whether it is in
  the prime-order subgroup. Decoding (``y < p``, a square root exists, no "negative zero"
  ``x``) follows Monero's ``ge_frombytes_vartime`` and is done here in Python on public data;
  membership in the subgroup is libsodium's ``crypto_core_ed25519_is_valid_point``.
* ``s·P`` for ``P`` in the subgroup is libsodium's constant-time ``noclamp`` multiplication.
  For ``P = P' + T`` with a torsion part ``T`` we split it: ``8P`` kills ``T``, so
  ``P' = 8⁻¹·(8P)`` and ``T = P − P'``; then ``s·P = s·P' + (s mod 8)·T``. The ``s mod 8``
  branch is variable-time, which is acceptable only because torsion points arise from
  *public* inputs (verification, test vectors); secret-key code multiplies ``8·R`` instead.
* Addition and subtraction accept any curve point (libsodium checks only that it decodes).

Hashes: ``cn_fast_hash`` is Keccak-256 with the original padding (pycryptodome's
``keccak``), ``hash_to_scalar`` is that hash reduced mod l, and ``hash_to_point`` is Monero's
``ge_fromfe_frombytes_vartime`` (an Elligator-2 variant), computed over field integers here
because libsodium's ``from_uniform`` is a different map.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, final, overload

from Crypto.Hash import keccak

from petranode.crypto import _sodium as na
from petranode.crypto.errors import CryptoError, NonCanonicalEncoding, NotInSubgroup

#: Order of the prime-order subgroup.
L: Final = 2**252 + 27742317777372353535851937790883648493
#: The field prime.
P: Final = 2**255 - 19
_D: Final = (-121665 * pow(121666, P - 2, P)) % P
_SQRT_M1: Final = pow(2, (P - 1) // 4, P)
_A: Final = 486662

Rng = Callable[[int], bytes]
"""A source of uniformly random bytes; the OS CSPRNG unless a test pins it."""


def os_rng(n: int) -> bytes:
    return na.randombytes(n)


def cn_fast_hash(*parts: bytes) -> bytes:
    """Keccak-256 (original Keccak padding, not SHA3) of the concatenated parts."""
    h = keccak.new(digest_bits=256)
    for part in parts:
        h.update(part)
    return h.digest()


def varint(n: int) -> bytes:
    """CryptoNote's varint: 7-bit little-endian groups, high bit set while more follow."""
    if n < 0:
        raise CryptoError("varint of a negative number")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# -- scalars ----------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True, eq=False)
class Scalar:
    """An integer mod l in its canonical 32-byte little-endian encoding."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise NonCanonicalEncoding("scalar must be 32 bytes")

    @classmethod
    def from_bytes(cls, data: bytes) -> Scalar:
        """Decode, refusing any encoding of a value >= l (CryptoNote's ``sc_check``)."""
        if len(data) != 32:
            raise NonCanonicalEncoding("scalar must be 32 bytes")
        if int.from_bytes(data, "little") >= L:
            raise NonCanonicalEncoding("scalar is not reduced mod l")
        return cls(bytes(data))

    @classmethod
    def reduce(cls, data: bytes) -> Scalar:
        """Reduce 32 or 64 little-endian bytes mod l (``sc_reduce32`` / ``sc_reduce``)."""
        if len(data) not in (32, 64):
            raise CryptoError("reduce takes 32 or 64 bytes")
        return cls(na.crypto_core_ed25519_scalar_reduce(data.ljust(64, b"\0")))

    @classmethod
    def from_int(cls, n: int) -> Scalar:
        """A public integer mod l (amounts, indices, constants; never a secret)."""
        return cls((n % L).to_bytes(32, "little"))

    @classmethod
    def random(cls, rng: Rng = os_rng) -> Scalar:
        """A uniform non-zero scalar: 64 random bytes reduced mod l (bias < 2⁻²⁵⁰)."""
        while True:
            s = cls.reduce(rng(64))
            if not s.is_zero():
                return s

    def __bytes__(self) -> bytes:
        return self.raw

    def __int__(self) -> int:
        return int.from_bytes(self.raw, "little")

    def hex(self) -> str:
        return self.raw.hex()

    def __repr__(self) -> str:
        # Scalars are often secret keys: never print the value.
        return "Scalar(…)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scalar):
            return NotImplemented
        return na.sodium_memcmp(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash(self.raw)

    def is_zero(self) -> bool:
        return na.sodium_is_zero(self.raw)

    def __add__(self, other: Scalar) -> Scalar:
        return Scalar(na.crypto_core_ed25519_scalar_add(self.raw, other.raw))

    def __sub__(self, other: Scalar) -> Scalar:
        return Scalar(na.crypto_core_ed25519_scalar_sub(self.raw, other.raw))

    @overload
    def __mul__(self, other: Scalar) -> Scalar: ...

    @overload
    def __mul__(self, other: Point) -> Point: ...

    def __mul__(self, other: Scalar | Point) -> Scalar | Point:
        if isinstance(other, Point):
            return scalar_mult(self, other)
        return Scalar(na.crypto_core_ed25519_scalar_mul(self.raw, other.raw))

    def __neg__(self) -> Scalar:
        return Scalar(na.crypto_core_ed25519_scalar_negate(self.raw))

    def invert(self) -> Scalar:
        if self.is_zero():
            raise CryptoError("zero has no inverse")
        return Scalar(na.crypto_core_ed25519_scalar_invert(self.raw))

    def mul_base(self) -> Point:
        """self·G in constant time."""
        if self.is_zero():
            return IDENTITY
        return Point(na.crypto_scalarmult_ed25519_base_noclamp(self.raw), True)


ZERO: Final = Scalar(bytes(32))
ONE: Final = Scalar.from_int(1)
_INV_EIGHT: Final = Scalar.from_int(8).invert()


def hash_to_scalar(*parts: bytes) -> Scalar:
    """CryptoNote's Hs: Keccak-256 of the parts, read little-endian, mod l."""
    return Scalar.reduce(cn_fast_hash(*parts))


# -- field helpers for decoding and for the hash-to-point map (public data only) --------


def _inv(x: int) -> int:
    return pow(x, P - 2, P)


def _is_negative(x: int) -> bool:
    return bool(x & 1)


def _sqrt_ratio(u: int, v: int) -> int | None:
    """A square root of u/v mod p, or None."""
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    check = (v * x * x) % P
    if check == u % P:
        return x
    if check == (-u) % P:
        return (x * _SQRT_M1) % P
    return None


def _decode_x(data: bytes) -> tuple[int, int] | None:
    """(x, y) per Monero's ``ge_frombytes_vartime``, or None if not a canonical curve point."""
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little") & ((1 << 255) - 1)
    sign = data[31] >> 7
    if y >= P:
        return None
    yy = y * y % P
    x = _sqrt_ratio((yy - 1) % P, (_D * yy + 1) % P)
    if x is None:
        return None
    if x == 0 and sign:
        return None
    if _is_negative(x) != bool(sign):
        x = (-x) % P
    return x, y


def _encode_xy(x: int, y: int) -> bytes:
    return (y | (int(_is_negative(x)) << 255)).to_bytes(32, "little")


def is_curve_point(data: bytes) -> bool:
    """Monero's ``check_key``: a canonical encoding of some curve point (torsion allowed)."""
    return _decode_x(data) is not None


# -- points -----------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Point:
    """A canonical encoding of a curve point, and whether it lies in the prime-order subgroup.

    Construct with :meth:`from_bytes` (validates) or through arithmetic; the constructor
    trusts its caller.
    """

    raw: bytes
    in_subgroup: bool = field(compare=False)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, allow_torsion: bool = False, allow_identity: bool = False
    ) -> Point:
        """Decode; by default only non-identity points of the prime-order subgroup pass."""
        data = bytes(data)
        if len(data) == 32 and na.crypto_core_ed25519_is_valid_point(data):
            return cls(data, True)
        if _decode_x(data) is None:
            raise NonCanonicalEncoding("not a canonical curve point")
        if data == _IDENTITY_RAW:
            if not allow_identity:
                raise NotInSubgroup("identity point")
            return IDENTITY
        if not allow_torsion:
            raise NotInSubgroup("point has a small-order component")
        return cls(data, False)

    def __bytes__(self) -> bytes:
        return self.raw

    def hex(self) -> str:
        return self.raw.hex()

    def __repr__(self) -> str:
        return f"Point({self.raw.hex()})"

    def is_identity(self) -> bool:
        return self.raw == _IDENTITY_RAW

    def __add__(self, other: Point) -> Point:
        if self.is_identity():
            return other
        if other.is_identity():
            return self
        raw = na.crypto_core_ed25519_add(self.raw, other.raw)
        return _from_arithmetic(raw, self.in_subgroup, other.in_subgroup)

    def __sub__(self, other: Point) -> Point:
        if other.is_identity():
            return self
        raw = na.crypto_core_ed25519_sub(self.raw, other.raw)
        return _from_arithmetic(raw, self.in_subgroup, other.in_subgroup)

    def __neg__(self) -> Point:
        return IDENTITY - self

    def mul8(self) -> Point:
        """8·self: clears any torsion component (``ge_mul8``)."""
        # Raw doublings: the result is in the subgroup by construction, so the per-addition
        # subgroup bookkeeping of ``__add__`` (a libsodium validity check each) is skipped.
        raw = self.raw
        for _ in range(3):
            raw = na.crypto_core_ed25519_add(raw, raw)
        return Point(raw, True)


def _from_arithmetic(raw: bytes, a_sub: bool, b_sub: bool) -> Point:
    if a_sub and b_sub:
        return Point(raw, True)
    if a_sub != b_sub:
        return Point(raw, False)
    # Two torsion-carrying points may sum into the subgroup; ask.
    return Point(raw, raw == _IDENTITY_RAW or na.crypto_core_ed25519_is_valid_point(raw))


_IDENTITY_RAW: Final = (1).to_bytes(32, "little")
IDENTITY: Final = Point(_IDENTITY_RAW, True)
#: The ed25519 base point G.
G: Final = ONE.mul_base()


def scalar_mult(s: Scalar, p: Point) -> Point:
    """s·p. Constant time for p in the subgroup; see the module notes for torsion points."""
    if s.is_zero() or p.is_identity():
        return IDENTITY
    if p.in_subgroup:
        return Point(na.crypto_scalarmult_ed25519_noclamp(s.raw, p.raw), True)
    p8 = p.mul8()
    if p8.is_identity():
        prime_part = IDENTITY
        torsion = p
    else:
        prime_part = Point(na.crypto_scalarmult_ed25519_noclamp(_INV_EIGHT.raw, p8.raw), True)
        torsion = p - prime_part
    result = scalar_mult(s, prime_part)
    for _ in range(int(s) % 8):
        result = result + torsion
    return result


def multiexp(pairs: Iterable[tuple[Scalar, Point]]) -> Point:
    """Σ sᵢ·Pᵢ (public data: verification equations)."""
    acc = IDENTITY
    for s, p in pairs:
        acc = acc + scalar_mult(s, p)
    return acc


def hash_to_point_raw(data: bytes) -> Point:
    """Monero's ``ge_fromfe_frombytes_vartime`` of 32 bytes: a curve point, not cofactor-cleared."""
    if len(data) != 32:
        raise CryptoError("hash_to_point takes 32 bytes")
    u = int.from_bytes(data, "little") % P
    v = 2 * u * u % P
    w = (v + 1) % P
    x = (w * w - 2 * _A * _A * u * u) % P
    # r = (w/x)^((p+3)/8), Monero's fe_divpowm1
    r = (w * pow(x, 3, P) * pow(w * pow(x, 7, P), (P - 5) // 8, P)) % P
    x_check = r * r * x % P
    z = (-_A) % P
    if (w - x_check) % P == 0:
        r = r * _FFFB2 % P
        negative = False
    elif (w + x_check) % P == 0:
        r = r * _FFFB1 % P
        negative = False
    else:
        x_check = x_check * _SQRT_M1 % P
        if (w - x_check) % P == 0:
            r = r * _FFFB4 % P
        else:
            r = r * _FFFB3 % P
        negative = True
    if not negative:
        r = r * u % P
        z = z * v % P
    if _is_negative(r) != negative:
        r = (-r) % P
    big_z = (z + w) % P
    big_y = (z - w) % P
    big_x = r * big_z % P
    zi = _inv(big_z)
    raw = _encode_xy(big_x * zi % P, big_y * zi % P)
    return Point(raw, raw == _IDENTITY_RAW or na.crypto_core_ed25519_is_valid_point(raw))


def _fe_sqrt(x: int) -> int:
    r = _sqrt_ratio(x % P, 1)
    if r is None:
        raise AssertionError("constant has no square root")
    return r


# The four square roots fe_fffb1..4 of Monero's crypto-ops-data.c. Which of ± is taken does
# not matter: the sign of the result is fixed afterwards ("setsign").
_FFFB1: Final = _fe_sqrt(-2 * _A * (_A + 2))
_FFFB2: Final = _fe_sqrt(2 * _A * (_A + 2))
_FFFB3: Final = _fe_sqrt(-_SQRT_M1 * _A * (_A + 2))
_FFFB4: Final = _fe_sqrt(_SQRT_M1 * _A * (_A + 2))


def hash_to_point(data: bytes) -> Point:
    """Monero's ``hash_to_ec``: 8·map(Keccak(data)), always in the prime-order subgroup."""
    return hash_to_point_raw(cn_fast_hash(data)).mul8()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Equality that does not leak where two secrets first differ."""
    return hmac.compare_digest(a, b)


def points(raws: Sequence[bytes], **kw: bool) -> list[Point]:
    return [Point.from_bytes(r, **kw) for r in raws]


#: 15·l, the largest multiple of l below 2²⁵⁶ (Monero's ``limit`` in ``random32_unbiased``).
_UNBIASED_LIMIT: Final = 15 * L


def random_scalar(rng: Rng = os_rng) -> Scalar:
    """A uniform non-zero scalar drawn exactly as Monero's ``random_scalar`` draws it.

    ``random32_unbiased``: take 32 bytes, reject while ≥ 15·l, reduce, reject zero. Signing
    code that must consume an RNG the way Monero does (so that its test RNG reproduces the
    reference vectors byte for byte) draws through this rather than :meth:`Scalar.random`.
    """
    while True:
        raw = rng(32)
        if len(raw) != 32:
            raise CryptoError("rng returned the wrong number of bytes")
        if int.from_bytes(raw, "little") >= _UNBIASED_LIMIT:
            continue
        s = Scalar.reduce(raw)
        if not s.is_zero():
            return s


def affine_xy(p: Point) -> tuple[int, int]:
    """The affine Edwards coordinates ``(x, y)`` of a point (public data: format conversions)."""
    xy = _decode_x(p.raw)
    if xy is None:
        raise CryptoError("not a canonical curve point")
    return xy
