"""Runner for Monero's CryptoNote test vectors, ``tests/crypto/tests.txt`` (SPEC §4.5).

Each line is one record: a kind, then whitespace-separated fields (formats in
``../shared/vectors/README.md``). Every record is recomputed with petranode's own functions
and counted passed, failed or skipped per kind; the CLI verb ``petranode vectors FILE`` prints
the counts (:func:`main_vectors`). Kinds and the function each exercises, as Monero's harness
``tests/crypto/main.cpp`` pairs them:

=========================== ===========================================================
check_scalar                ``Scalar.from_bytes`` (``sc_check``)
hash_to_scalar              ``group.hash_to_scalar``
check_key                   ``group.is_curve_point`` (``check_key``)
secret_key_to_public_key    ``Scalar.mul_base``
generate_key_derivation     ``stealth.generate_key_derivation``
derive_public_key           ``stealth.derive_public_key``
derive_secret_key           ``stealth.derive_secret_key``
check_signature             ``schnorr.check_signature``
hash_to_point               ``group.hash_to_point_raw`` (``ge_fromfe_frombytes_vartime``)
hash_to_ec                  ``group.hash_to_point`` (also as ``biased_hash_to_ec``)
generate_key_image          ``keyimage.generate_key_image``
check_ring_signature        ``ring.check_ring_signature``
derive_view_tag             ``stealth.derive_view_tag``
point_to_wei_x_y            Edwards → short Weierstrass (Wei25519) coordinates
derive_key_image_generator  biased: ``hash_to_point``; unbiased: two BLAKE2b halves mapped
random_scalar               ``group.random_scalar``                          (RNG)
generate_keys               ``keys.generate_keys``                           (RNG)
generate_signature          ``schnorr.generate_signature``                   (RNG)
generate_ring_signature     ``ring.generate_ring_signature``                 (RNG)
check_ge_p3_identity        skipped: a property of ref10's limb representation
=========================== ===========================================================

The RNG kinds
-------------
Monero's harness draws from a deterministic test RNG shared by all records in file order. The
v0.18 one (``tests/crypto/random.c`` over ``crypto/random.c``) is a 200-byte Keccak state
filled with ``0x2a``; each request permutes the state with Keccak-f[1600] and hands out the
first bytes of the rate (136 at a time). :class:`KeccakTestRng` is that RNG, so for a v0.18
file the RNG records are *reproduced* exactly. Monero's 2026 master changed the RNG; a file
from that revision (recognised by the kinds it introduced: ``biased_hash_to_ec``,
``point_to_wei_x_y``, ``derive_key_image_generator``) has its RNG records *verified* instead:
``pub = sec·G``, the signature verifies, the ring signature verifies and its secret key owns
the signer's ring member and the key image. ``random_scalar`` has nothing to verify there and
is skipped.

Keccak-f[1600] is written out here (pycryptodome exposes only the sponge, not the bare
permutation); it is used only by this runner and is checked against Keccak-256 in the tests.

This module is the one place in ``crypto/`` that reads a file: :func:`run_vectors` reads the
vector file and hands its lines to the pure :func:`check_lines`.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO, final

from petranode.crypto import _sodium as na
from petranode.crypto.errors import CryptoError
from petranode.crypto.group import (
    P,
    Point,
    Rng,
    Scalar,
    affine_xy,
    hash_to_point,
    hash_to_point_raw,
    hash_to_scalar,
    is_curve_point,
    random_scalar,
)
from petranode.crypto.keyimage import KeyImage, generate_key_image
from petranode.crypto.keys import generate_keys
from petranode.crypto.ring import check_ring_signature, generate_ring_signature
from petranode.crypto.schnorr import check_signature, generate_signature
from petranode.crypto.stealth import (
    KeyDerivation,
    derive_public_key,
    derive_secret_key,
    derive_view_tag,
    generate_key_derivation,
)

log = logging.getLogger(__name__)

# -- Keccak-f[1600] and Monero's test RNG -----------------------------------------------

_MASK64: Final = (1 << 64) - 1
_KECCAK_STATE_BYTES: Final = 200
#: Bytes handed out per permutation: the Keccak-256 rate (``HASH_DATA_AREA`` in hash-ops.h).
_KECCAK_RATE_BYTES: Final = 136


def _round_constants() -> tuple[int, ...]:
    # The LFSR of the Keccak reference ("CompactFIPS202.py"), computed rather than pasted.
    out = []
    state = 1
    for _ in range(24):
        rc = 0
        for j in range(7):
            state = ((state << 1) ^ ((state >> 7) * 0x71)) % 256
            if state & 2:
                rc ^= 1 << ((1 << j) - 1)
        out.append(rc)
    return tuple(out)


def _rho_pi() -> tuple[tuple[int, int, int], ...]:
    # (source lane, destination lane, rotation) of the combined ρ and π steps, lane = x + 5y.
    steps = []
    x, y = 1, 0
    for t in range(24):
        nx, ny = y, (2 * x + 3 * y) % 5
        steps.append((x + 5 * y, nx + 5 * ny, ((t + 1) * (t + 2) // 2) % 64))
        x, y = nx, ny
    return tuple(steps)


_RC: Final = _round_constants()
_RHO_PI: Final = _rho_pi()


def keccak_f1600(state: bytes) -> bytes:
    """The Keccak-f[1600] permutation (24 rounds) of a 200-byte state, lanes little-endian."""
    if len(state) != _KECCAK_STATE_BYTES:
        raise CryptoError("Keccak state is 200 bytes")
    a = list(struct.unpack("<25Q", state))
    for rc in _RC:
        # θ
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ (((c[(x + 1) % 5] << 1) | (c[(x + 1) % 5] >> 63)) & _MASK64)
             for x in range(5)]
        a = [a[i] ^ d[i % 5] for i in range(25)]
        # ρ and π (lane 0 stays, unrotated)
        b = [a[0]] * 25
        for src, dst, rot in _RHO_PI:
            v = a[src]
            b[dst] = ((v << rot) | (v >> (64 - rot))) & _MASK64
        # χ
        a = [b[i] ^ (~b[(i + 1) % 5 + i - i % 5] & b[(i + 2) % 5 + i - i % 5])
             for i in range(25)]
        # ι
        a[0] ^= rc
    return struct.pack("<25Q", *a)


@final
class KeccakTestRng:
    """Monero v0.18's test RNG (``generate_random_bytes_not_thread_safe`` after ``setup_random``).

    Callable as an :data:`~petranode.crypto.group.Rng`. Deterministic and public: for vectors
    only, never for keys.
    """

    def __init__(self) -> None:
        self._state = b"\x2a" * _KECCAK_STATE_BYTES

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while True:
            self._state = keccak_f1600(self._state)
            if n <= _KECCAK_RATE_BYTES:
                out += self._state[:n]
                return bytes(out)
            out += self._state[:_KECCAK_RATE_BYTES]
            n -= _KECCAK_RATE_BYTES


# -- the report -------------------------------------------------------------------------

class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class RngMode(enum.Enum):
    """How records of the RNG kinds are checked."""

    REPRODUCE = "reproduce"  # v0.18 file: recompute with KeccakTestRng, compare exactly
    VERIFY = "verify"        # newer file: check what does not depend on the RNG


@final
@dataclass(slots=True)
class KindCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, outcome: Outcome) -> None:
        match outcome:
            case Outcome.PASSED:
                self.passed += 1
            case Outcome.FAILED:
                self.failed += 1
            case Outcome.SKIPPED:
                self.skipped += 1


#: Failure messages kept in a report; the counts are always complete.
MAX_MESSAGES: Final = 50


@final
@dataclass(slots=True)
class Report:
    """Per-kind counts in order of first appearance, and the first failure messages."""

    rng_mode: RngMode
    kinds: dict[str, KindCounts] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    #: Lines that are not records at all (too few fields, cut-off hex): a damaged file, not a
    #: verdict on the code. Listed line by line and counted apart from failed records.
    malformed: int = 0

    def record_malformed(self, message: str) -> None:
        self.malformed += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(message)

    def record(self, kind: str, outcome: Outcome, message: str | None = None) -> None:
        self.kinds.setdefault(kind, KindCounts()).add(outcome)
        if message is not None and len(self.messages) < MAX_MESSAGES:
            self.messages.append(message)

    @property
    def passed(self) -> int:
        return sum(k.passed for k in self.kinds.values())

    @property
    def failed(self) -> int:
        return sum(k.failed for k in self.kinds.values())

    @property
    def skipped(self) -> int:
        return sum(k.skipped for k in self.kinds.values())

    def lines(self) -> list[str]:
        """The CLI's output: messages, one line per kind, then the totals line."""
        out = list(self.messages)
        hidden = self.failed + self.malformed - len(self.messages)
        if hidden > 0:
            out.append(f"({hidden} more failures or malformed lines not shown)")
        out += [f"{kind}: {c.passed} passed, {c.failed} failed, {c.skipped} skipped"
                for kind, c in self.kinds.items()]
        totals = f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
        if self.malformed:
            totals += f", {self.malformed} malformed lines"
        out.append(totals)
        return out


# -- field parsing ----------------------------------------------------------------------

class _Malformed(Exception):
    """A record that does not have the shape its kind requires."""


def _hex(token: str, size: int | None = 32) -> bytes:
    try:
        data = bytes.fromhex(token)
    except ValueError as exc:
        raise _Malformed(f"not hex: {token[:16]!r}") from exc
    if size is not None and len(data) != size:
        raise _Malformed(f"expected {size} bytes, got {len(data)}")
    return data


def _bool(token: str) -> bool:
    if token == "true":
        return True
    if token == "false":
        return False
    raise _Malformed(f"not a boolean: {token[:16]!r}")


#: Decimal digits of the largest field the files hold (a size_t / uint64 index).
_MAX_UINT_DIGITS: Final = 20


def _uint(token: str) -> int:
    if not token.isascii() or not token.isdigit() or len(token) > _MAX_UINT_DIGITS:
        raise _Malformed(f"not a 64-bit decimal integer: {token[:16]!r}")
    return int(token)


def _arity(fields: Sequence[str], *allowed: int) -> None:
    if len(fields) not in allowed:
        raise _Malformed(f"{len(fields)} fields, expected {' or '.join(map(str, allowed))}")


def _loose_point(raw: bytes) -> Point:
    """A point as Monero's ``ge_frombytes_vartime`` accepts it (torsion, identity)."""
    return Point.from_bytes(raw, allow_torsion=True, allow_identity=True)


def _ring_fields(fields: Sequence[str], trailing: int) -> tuple[bytes, bytes, list[bytes]]:
    # h I n P_0 … P_{n−1} <trailing fields>
    if len(fields) < 3:
        raise _Malformed("too few fields")
    n = _uint(fields[2])
    if n < 1:
        raise _Malformed("empty ring")
    _arity(fields, 3 + n + trailing)
    return _hex(fields[0]), _hex(fields[1]), [_hex(f) for f in fields[3:3 + n]]


def _ok(condition: bool) -> Outcome:
    return Outcome.PASSED if condition else Outcome.FAILED


# -- one checker per kind ---------------------------------------------------------------

@final
@dataclass(slots=True)
class _Context:
    mode: RngMode
    rng: Rng


def _check_scalar(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 2)
    raw, ok = _hex(f[0]), _bool(f[1])
    try:
        Scalar.from_bytes(raw)
        accepted = True
    except CryptoError:
        accepted = False
    return _ok(accepted == ok)


def _random_scalar(f: Sequence[str], ctx: _Context) -> Outcome:
    _arity(f, 1)
    expected = _hex(f[0])
    if ctx.mode is RngMode.VERIFY:
        return Outcome.SKIPPED
    return _ok(random_scalar(ctx.rng).raw == expected)


def _hash_to_scalar(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 2)
    data = b"" if f[0] == "x" else _hex(f[0], None)
    return _ok(hash_to_scalar(data).raw == _hex(f[1]))


def _generate_keys(f: Sequence[str], ctx: _Context) -> Outcome:
    _arity(f, 2)
    pub, sec = _hex(f[0]), _hex(f[1])
    if ctx.mode is RngMode.REPRODUCE:
        got_pub, got_sec = generate_keys(ctx.rng)
        return _ok(got_pub.raw == pub and got_sec.raw == sec)
    return _ok(Scalar.from_bytes(sec).mul_base().raw == pub)


def _check_key(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 2)
    return _ok(is_curve_point(_hex(f[0])) == _bool(f[1]))


def _secret_key_to_public_key(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 2, 3)
    sec, ok = _hex(f[0]), _bool(f[1])
    if len(f) != (3 if ok else 2):
        raise _Malformed("public key present iff ok")
    try:
        secret = Scalar.from_bytes(sec)
    except CryptoError:
        return _ok(not ok)
    return _ok(ok and secret.mul_base().raw == _hex(f[2]))


def _generate_key_derivation(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 3, 4)
    pub, sec, ok = _hex(f[0]), _hex(f[1]), _bool(f[2])
    if len(f) != (4 if ok else 3):
        raise _Malformed("derivation present iff ok")
    try:
        point = _loose_point(pub)
    except CryptoError:
        return _ok(not ok)
    # Monero's ge_scalarmult takes the 256-bit secret as is; after the factor 8 only its
    # value mod l matters, so reducing it first gives the same derivation.
    derivation = generate_key_derivation(point, Scalar.reduce(sec))
    return _ok(ok and derivation.raw == _hex(f[3]))


def _derive_public_key(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 4, 5)
    d, i, base, ok = _hex(f[0]), _uint(f[1]), _hex(f[2]), _bool(f[3])
    if len(f) != (5 if ok else 4):
        raise _Malformed("derived key present iff ok")
    try:
        spend = _loose_point(base)
    except CryptoError:
        return _ok(not ok)
    return _ok(ok and derive_public_key(KeyDerivation(d), i, spend).raw == _hex(f[4]))


def _derive_secret_key(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 4)
    d, i, base, expected = _hex(f[0]), _uint(f[1]), _hex(f[2]), _hex(f[3])
    return _ok(derive_secret_key(KeyDerivation(d), i, Scalar.reduce(base)).raw == expected)


def _generate_signature(f: Sequence[str], ctx: _Context) -> Outcome:
    _arity(f, 4)
    h, pub, sec, sig = _hex(f[0]), _hex(f[1]), _hex(f[2]), _hex(f[3], 64)
    secret = Scalar.from_bytes(sec)
    if ctx.mode is RngMode.REPRODUCE:
        return _ok(bytes(generate_signature(h, _loose_point(pub), secret, ctx.rng)) == sig)
    return _ok(secret.mul_base().raw == pub and check_signature(h, pub, sig))


def _check_signature(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 4)
    h, pub, sig, ok = _hex(f[0]), _hex(f[1]), _hex(f[2], 64), _bool(f[3])
    return _ok(check_signature(h, pub, sig) == ok)


def _hash_to_point(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 2)
    return _ok(hash_to_point_raw(_hex(f[0])).raw == _hex(f[1]))


def _hash_to_ec(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 2)
    return _ok(hash_to_point(_hex(f[0])).raw == _hex(f[1]))


def _generate_key_image(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 3)
    pub, sec, image = _hex(f[0]), _hex(f[1]), _hex(f[2])
    # hash_to_ec hashes the public key's bytes; they need not decode.
    return _ok((Scalar.reduce(sec) * hash_to_point(pub)).raw == image)


def _generate_ring_signature(f: Sequence[str], ctx: _Context) -> Outcome:
    h, image, pubs = _ring_fields(f, 3)
    sec, index, sigs = _hex(f[-3]), _uint(f[-2]), _hex(f[-1], 64 * len(pubs))
    if index >= len(pubs):
        raise _Malformed("signer index outside the ring")
    secret = Scalar.from_bytes(sec)
    if ctx.mode is RngMode.REPRODUCE:
        ring = [_loose_point(p) for p in pubs]
        sig = generate_ring_signature(h, KeyImage.from_bytes(image), ring, secret, index, ctx.rng)
        return _ok(bytes(sig) == sigs)
    signer = _loose_point(pubs[index])
    return _ok(secret.mul_base() == signer
               and bytes(generate_key_image(signer, secret)) == image
               and check_ring_signature(h, image, pubs, sigs))


def _check_ring_signature(f: Sequence[str], _: _Context) -> Outcome:
    h, image, pubs = _ring_fields(f, 2)
    sigs, ok = _hex(f[-2], 64 * len(pubs)), _bool(f[-1])
    return _ok(check_ring_signature(h, image, pubs, sigs) == ok)


def _check_ge_p3_identity(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 3)
    _hex(f[0])
    _bool(f[1])
    _bool(f[2])
    return Outcome.SKIPPED


def _derive_view_tag(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 3)
    d, i, tag = _hex(f[0]), _uint(f[1]), _hex(f[2], 1)
    return _ok(derive_view_tag(KeyDerivation(d), i) == tag[0])


#: Montgomery A of Curve25519 and Monero's fixed square root of −(A + 2) (FCMP++ constants).
_MONT_A: Final = 486662
_SQRT_NEG_A_PLUS_2: Final = 0x70D9120B9F5FF9442D84F723FC03B0813A5E2C2EB482E57D3391FB5500BA81E7


def point_to_wei_x_y(point: Point) -> tuple[int, int]:
    """Edwards ``(x, y)`` → Wei25519 ``(u + A/3, c·u/x)`` with ``u = (1+y)/(1−y)``.

    Undefined for ``y = 1`` (identity) and ``x = 0``; those raise :class:`CryptoError`.
    """
    x, y = affine_xy(point)
    if y == 1 or x == 0:
        raise CryptoError("point has no Weierstrass image")
    u = (1 + y) * pow(1 - y, -1, P) % P
    wx = (u + _MONT_A * pow(3, -1, P)) % P
    wy = _SQRT_NEG_A_PLUS_2 * u * pow(x, -1, P) % P
    return wx, wy


def _point_to_wei_x_y(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 3)
    raw, wx, wy = _hex(f[0]), _hex(f[1]), _hex(f[2])
    try:
        got_x, got_y = point_to_wei_x_y(_loose_point(raw))
    except CryptoError:
        return Outcome.FAILED  # the reference refused nothing in its own file
    return _ok(got_x.to_bytes(32, "little") == wx and got_y.to_bytes(32, "little") == wy)


def derive_key_image_generator(public_key: bytes, biased: bool) -> Point:
    """The key image generator of a public key (Monero 2026 master, FCMP++).

    Biased: ``hash_to_ec``. Unbiased: ``h = BLAKE2b-512("Monero" personalisation, P)``, then
    ``8·map(h[0:32]) + 8·map(h[32:64])`` — two map outputs summed, so the result is uniform.
    """
    if biased:
        return hash_to_point(public_key)
    h = na.crypto_generichash_personal(public_key, person=b"Monero", digest_size=64)
    return hash_to_point_raw(h[:32]).mul8() + hash_to_point_raw(h[32:]).mul8()


def _derive_key_image_generator(f: Sequence[str], _: _Context) -> Outcome:
    _arity(f, 3)
    pub, biased, expected = _hex(f[0]), _bool(f[1]), _hex(f[2])
    return _ok(derive_key_image_generator(pub, biased).raw == expected)


_Checker = Callable[[Sequence[str], _Context], Outcome]

CHECKERS: Final[dict[str, _Checker]] = {
    "check_scalar": _check_scalar,
    "random_scalar": _random_scalar,
    "hash_to_scalar": _hash_to_scalar,
    "generate_keys": _generate_keys,
    "check_key": _check_key,
    "secret_key_to_public_key": _secret_key_to_public_key,
    "generate_key_derivation": _generate_key_derivation,
    "derive_public_key": _derive_public_key,
    "derive_secret_key": _derive_secret_key,
    "generate_signature": _generate_signature,
    "check_signature": _check_signature,
    "hash_to_point": _hash_to_point,
    "hash_to_ec": _hash_to_ec,
    "biased_hash_to_ec": _hash_to_ec,
    "generate_key_image": _generate_key_image,
    "generate_ring_signature": _generate_ring_signature,
    "check_ring_signature": _check_ring_signature,
    "check_ge_p3_identity": _check_ge_p3_identity,
    "derive_view_tag": _derive_view_tag,
    "point_to_wei_x_y": _point_to_wei_x_y,
    "derive_key_image_generator": _derive_key_image_generator,
}

#: Kinds that exist only in revisions after v0.18, whose harness uses the changed RNG.
_POST_V018_KINDS: Final = frozenset({"biased_hash_to_ec", "point_to_wei_x_y",
                                     "derive_key_image_generator"})


def detect_rng_mode(lines: Sequence[str]) -> RngMode:
    """REPRODUCE for a v0.18 file; VERIFY if any kind of a later revision occurs."""
    for line in lines:
        parts = line.split(maxsplit=1)
        if parts and parts[0] in _POST_V018_KINDS:
            return RngMode.VERIFY
    return RngMode.REPRODUCE


def check_lines(lines: Iterable[str], rng_mode: RngMode) -> Report:
    """Check every record: an unknown kind or a refused or mismatching record is a failure; a
    line without a record's shape is counted as malformed; nothing raises."""
    report = Report(rng_mode)
    ctx = _Context(rng_mode, KeccakTestRng())
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        kind, args = fields[0], fields[1:]
        checker = CHECKERS.get(kind)
        if checker is None:
            report.record("(unknown)", Outcome.FAILED,
                          f"line {number}: unknown kind {kind[:40]!r}")
            continue
        try:
            outcome = checker(args, ctx)
        except _Malformed as exc:
            report.record_malformed(f"line {number}: {kind}: malformed line, not a record: {exc}")
            continue
        except CryptoError as exc:
            # A record our functions refuse although the reference produced it.
            report.record(kind, Outcome.FAILED, f"line {number}: {kind}: refused: {exc}")
            continue
        message = f"line {number}: {kind}: mismatch" if outcome is Outcome.FAILED else None
        report.record(kind, outcome, message)
    return report


def run_vectors(path: str | Path) -> Report:
    """Read a vector file and check it (RNG mode detected from the kinds it holds)."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return check_lines(lines, detect_rng_mode(lines))


def main_vectors(path: str, out: TextIO) -> int:
    """``petranode vectors FILE``: print the report; exit 0 if no record failed, 1 if one did,
    2 if the file cannot be read. Malformed lines are reported and counted, not failed: they
    say the file is damaged (the shared 2026 sample has 12 lines cut mid-record), not that a
    computation disagrees with Monero's."""
    try:
        report = run_vectors(path)
    except OSError as exc:
        out.write(f"cannot read {path}: {exc.strerror or exc}\n")
        return 2
    out.write(f"rng records: {report.rng_mode.value}\n")
    out.writelines(line + "\n" for line in report.lines())
    return 1 if report.failed else 0
