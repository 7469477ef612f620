"""Bulletproofs+ aggregated 64-bit range proofs, as Monero's RingCT makes them (SPEC §4.5).

A proof shows that each of m Pedersen commitments ``C_j = γ_j·G + v_j·H`` (``pedersen.H``)
opens to an amount ``0 <= v_j < 2^64``, without revealing ``v_j`` or ``γ_j``. It follows
Chung, Han, Ju, Kim and Seo, "Bulletproofs+: Shorter Proofs for Privacy-Enhanced Distributed
Ledger" (eprint 2020/735): the zero-knowledge weighted inner-product argument (§3), the
aggregated range proof built on it (§4), and verification as a single multi-exponentiation,
batched over many proofs with random weights (§6.1, as Monero's comments cite it). It is
byte-compatible with Monero's ``src/ringct/bulletproofs_plus.cc``:

* Monero swaps the paper's roles of g and h: amounts go on ``H``, blinding on ``G``.
* Generators: ``Hi[i] = get_exponent(H, 2i)``, ``Gi[i] = get_exponent(H, 2i+1)`` with
  ``get_exponent(H, k) = hash_to_p3(Keccak(H ‖ "bulletproof_plus" ‖ varint(k)))`` and
  ``hash_to_p3(x) = 8·map(Keccak(x))`` = :func:`group.hash_to_point` (``init_exponents``).
* Transcript: starts at the *point* ``hash_to_p3(Keccak("bulletproof_plus_transcript"))``;
  each update is ``t ← Hs(t ‖ x ‖ …)`` (``transcript_update``); the first absorbs
  ``Hs(V_0 ‖ … ‖ V_{m-1})``, then ``y = Hs(t ‖ A)``, ``z = Hs(y)``, one challenge per
  inner-product round from ``(L_k, R_k)``, and ``e`` from ``(A1, B)``.
* Every proof point is stored times 8⁻¹ (``V_j = C_j·8⁻¹`` too, and V is not serialised: it
  is recomputed from the commitments). The verifier multiplies by 8, which Monero does to land
  in the prime-order subgroup cheaply. We go further and *reject* points with a torsion
  component outright (Monero relies on the transcript hashing the raw bytes instead), so here
  ``s·(8P) = (8s)·P`` and the factor 8 is folded into scalars at no cost.

Amounts are padded to ``M = 2^⌈log2 m⌉`` slots of 64 bits (padding slots prove 0 with no
commitment), at most 16 outputs (Monero's ``BULLETPROOF_PLUS_MAX_OUTPUTS``), so a proof has
``6 + log2 M`` (L, R) pairs and is ``32·(6 + 2·(6 + log2 M))`` bytes: 576 for one output.

Cost: every group operation is a libsodium call (``crypto_scalarmult_ed25519_noclamp`` ≈ 60 µs
including its subgroup check, ``crypto_core_ed25519_add`` ≈ 11 µs), and libsodium has no
multi-scalar multiplication, so a multi-exponentiation costs one call per term. What we save
is terms: the verifier, like Monero's ``bulletproof_plus_VERIFY``, sums the scalars of the
shared generators (Gi, Hi, G, H) over a whole batch, so the 2·MN generator multiplications
are paid once per batch, not once per proof; the prover folds generator vectors with one
multiplication per element instead of two (a deferred common factor, see ``_prove_attempt``)
and computes ``A`` with MN multiplications instead of 2·MN.

Secrets (amount bits, masks, blinding scalars, the folded witness) only meet libsodium's
constant-time scalar arithmetic and ``noclamp`` multiplication; nothing here logs them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import CryptoError, NonCanonicalEncoding, NotInSubgroup
from petranode.crypto.group import (
    IDENTITY,
    ONE,
    ZERO,
    Point,
    Rng,
    Scalar,
    cn_fast_hash,
    hash_to_point,
    hash_to_scalar,
    multiexp,
    os_rng,
    varint,
)
from petranode.crypto.pedersen import AMOUNT_BITS, H, amount_scalar, commit

log = logging.getLogger(__name__)

#: Monero's ``BULLETPROOF_PLUS_MAX_OUTPUTS`` (cryptonote_config.h).
MAX_OUTPUTS: Final = 16
_LOG_N: Final = 6  # log2(AMOUNT_BITS)
_N: Final = AMOUNT_BITS
_MAX_LOG_M: Final = 4  # log2(MAX_OUTPUTS)
_MAX_MN: Final = _N * MAX_OUTPUTS
_FIXED_FIELDS: Final = 6  # A, A1, B, r1, s1, d1

# Domain strings of Monero's cryptonote_config.h (HASH_KEY_BULLETPROOF_PLUS_*).
_EXPONENT_DOMAIN: Final = b"bulletproof_plus"
_TRANSCRIPT_DOMAIN: Final = b"bulletproof_plus_transcript"

_EIGHT: Final = Scalar.from_int(8)
_INV_EIGHT: Final = _EIGHT.invert()
_TWO: Final = Scalar.from_int(2)
_TWO_64_MINUS_ONE: Final = Scalar.from_int((1 << AMOUNT_BITS) - 1)

#: The transcript's starting value: a point encoding, used as 32 opaque bytes (Monero's
#: ``initial_transcript``).
INITIAL_TRANSCRIPT: Final = hash_to_point(cn_fast_hash(_TRANSCRIPT_DOMAIN)).raw


# -- sizes ------------------------------------------------------------------------------


def _log_m(n_outputs: int) -> int:
    """log2 of the padded output count; refuses counts outside [1, MAX_OUTPUTS]."""
    if not 1 <= n_outputs <= MAX_OUTPUTS:
        raise CryptoError(f"a range proof covers 1 to {MAX_OUTPUTS} outputs")
    return (n_outputs - 1).bit_length()


def rounds_for(n_outputs: int) -> int:
    """Number of (L, R) pairs in a proof for ``n_outputs`` outputs: log2(64·M)."""
    return _LOG_N + _log_m(n_outputs)


def proof_size(n_outputs: int) -> int:
    """Encoded size in bytes of a proof for ``n_outputs`` outputs."""
    return 32 * (_FIXED_FIELDS + 2 * rounds_for(n_outputs))


# -- generators -------------------------------------------------------------------------


@functools.cache
def _exponent(index: int) -> Point:
    """Monero's ``get_exponent(H, index)``; computed once per index, on first use."""
    point = hash_to_point(cn_fast_hash(H.raw + _EXPONENT_DOMAIN + varint(index)))
    if point.is_identity():  # as Monero checks; never happens for indices below 2048
        raise CryptoError("generator is the identity")
    return point


def generators(n: int) -> tuple[tuple[Point, ...], tuple[Point, ...]]:
    """The first ``n`` of Monero's vector generators, as ``(Gi, Hi)``."""
    if not 0 <= n <= _MAX_MN:
        raise CryptoError("at most 64·16 generators exist")
    return (
        tuple(_exponent(2 * i + 1) for i in range(n)),
        tuple(_exponent(2 * i) for i in range(n)),
    )


@functools.cache
def _gi_plus_hi(i: int) -> Point:
    return _exponent(2 * i + 1) + _exponent(2 * i)


@functools.cache
def _a_offset(mn: int) -> Point:
    """8⁻¹·(ΣGi + 2·ΣHi) over the first ``mn`` generators; see ``_commit_bits``."""
    gi, hi = generators(mn)
    acc = IDENTITY
    for g, h in zip(gi, hi, strict=True):
        acc = acc + g + h + h
    return _INV_EIGHT * acc


# -- the proof record -------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class BulletproofPlus:
    """One aggregated proof. Points are stored times 8⁻¹, as Monero serialises them.

    Construction checks the shape (as many L as R, 7 to 10 of each) and that every point lies
    in the prime-order subgroup and is not the identity.
    """

    A: Point
    A1: Point
    B: Point
    r1: Scalar
    s1: Scalar
    d1: Scalar
    L: tuple[Point, ...]
    R: tuple[Point, ...]

    def __post_init__(self) -> None:
        if len(self.L) != len(self.R):
            raise CryptoError("L and R differ in length")
        if not _LOG_N <= len(self.L) <= _LOG_N + _MAX_LOG_M:
            raise CryptoError("wrong number of inner-product rounds")
        for p in (self.A, self.A1, self.B, *self.L, *self.R):
            if not p.in_subgroup or p.is_identity():
                raise NotInSubgroup("proof point outside the prime-order subgroup")

    @property
    def size(self) -> int:
        """Encoded size in bytes."""
        return 32 * (_FIXED_FIELDS + 2 * len(self.L))

    def encode(self) -> bytes:
        """A ‖ A1 ‖ B ‖ r1 ‖ s1 ‖ d1 ‖ L… ‖ R…, 32 bytes each (Monero's order, no counts)."""
        parts = [self.A.raw, self.A1.raw, self.B.raw, self.r1.raw, self.s1.raw, self.d1.raw]
        parts += [p.raw for p in self.L]
        parts += [p.raw for p in self.R]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes, n_outputs: int) -> BulletproofPlus:
        """Decode a proof for ``n_outputs`` outputs; any deviation raises ``CryptoError``."""
        rounds = rounds_for(n_outputs)
        data = bytes(data)
        # Size first: the length is fixed by n_outputs, so nothing is parsed from a wrong one.
        if len(data) != 32 * (_FIXED_FIELDS + 2 * rounds):
            raise NonCanonicalEncoding("range proof has the wrong length")
        f = [data[i : i + 32] for i in range(0, len(data), 32)]
        pts = [Point.from_bytes(f[i]) for i in (0, 1, 2)]
        lr = [Point.from_bytes(x) for x in f[_FIXED_FIELDS:]]
        return cls(
            A=pts[0],
            A1=pts[1],
            B=pts[2],
            r1=Scalar.from_bytes(f[3]),
            s1=Scalar.from_bytes(f[4]),
            d1=Scalar.from_bytes(f[5]),
            L=tuple(lr[:rounds]),
            R=tuple(lr[rounds:]),
        )


# -- scalar vector helpers (libsodium arithmetic) ---------------------------------------


def _powers(x: Scalar, n: int) -> list[Scalar]:
    """[1, x, x², …, x^(n-1)]."""
    out = [ONE]
    for _ in range(n - 1):
        out.append(out[-1] * x)
    return out


def _weighted_inner_product(a: Sequence[Scalar], b: Sequence[Scalar], y: Scalar) -> Scalar:
    """Σ a_i·b_i·y^(i+1), the paper's a ⊙_y b."""
    acc = ZERO
    y_power = ONE
    for ai, bi in zip(a, b, strict=True):
        y_power = y_power * y
        acc = acc + ai * bi * y_power
    return acc


def _d_vector(z: Scalar, m_padded: int) -> list[Scalar]:
    """d[j·64 + i] = z^(2(j+1))·2^i: the paper's windowed vector for aggregation."""
    z2 = z * z
    d = [z2]
    for _ in range(1, _N):
        d.append(d[-1] * _TWO)
    for _ in range(1, m_padded):
        d.extend(x * z2 for x in d[-_N:])
    return d


def _transcript_update(transcript: bytes, *parts: bytes) -> Scalar:
    return hash_to_scalar(transcript, *parts)


def _hash_commitments(v: Sequence[Point]) -> bytes:
    """``rct::hash_to_scalar(V)``: Hs of the concatenated (8⁻¹-scaled) commitments."""
    return hash_to_scalar(*(p.raw for p in v)).raw


def _sum(pairs: Sequence[tuple[Scalar, Point]], g_scalar: Scalar) -> Point:
    """Σ s·P + g_scalar·G, using libsodium's fixed-base table for G."""
    return multiexp(pairs) + g_scalar.mul_base()


# -- prover -----------------------------------------------------------------------------


def prove(
    amounts: Sequence[int], masks: Sequence[Scalar], rng: Rng = os_rng
) -> tuple[tuple[Point, ...], BulletproofPlus]:
    """Commit to each amount with its mask and prove all amounts lie in [0, 2^64).

    Returns the full commitments ``C_j = mask_j·G + amount_j·H`` (what the ledger stores) and
    one aggregated proof. Raises ``CryptoError`` for no or more than 16 amounts, a count
    mismatch, an amount outside [0, 2^64) or a zero mask (it would hide nothing).
    """
    if len(amounts) != len(masks):
        raise CryptoError("one mask per amount")
    _log_m(len(amounts))
    values = [amount_scalar(a) for a in amounts]
    for mask in masks:
        if mask.is_zero():
            raise CryptoError("zero mask")
    commitments = tuple(commit(a, mask) for a, mask in zip(amounts, masks, strict=True))
    return commitments, _prove(values, masks, commitments, rng)


def _prove(
    values: Sequence[Scalar], gammas: Sequence[Scalar], commitments: Sequence[Point], rng: Rng
) -> BulletproofPlus:
    """Monero's ``bulletproof_plus_PROVE``: like it, uses only the low 64 bits of each value.

    The caller vouches that ``commitments`` open to ``values`` with ``gammas`` and that the
    values are below 2^64; otherwise the result simply fails to verify (tests use this to
    forge proofs for out-of-range amounts).
    """
    v = [_INV_EIGHT * c for c in commitments]
    while True:
        # Monero restarts on a zero challenge (probability ~2^-252); so do we.
        proof = _prove_attempt(values, gammas, v, rng)
        if proof is not None:
            return proof


def _bit(value: Scalar, i: int) -> Scalar:
    """Bit i of a secret value, as a scalar, without branching on it."""
    return Scalar(bytes([(value.raw[i >> 3] >> (i & 7)) & 1]) + bytes(31))


def _commit_bits(a_l: Sequence[Scalar], alpha: Scalar) -> Point:
    """A = 8⁻¹·(Σ aL_i·Gi + aR_i·Hi + α·G) with aR = aL − 1, in MN multiplications.

    ``aL_i·Gi + (aL_i − 1)·Hi = (aL_i + 1)·(Gi + Hi) − Gi − 2·Hi``: the secret factor
    ``aL_i + 1`` is 1 or 2, never 0, so every term is a constant-time libsodium multiplication
    (a 0 would hit the identity shortcut and leak the bit), and the public remainder
    ``Σ(Gi + 2·Hi)`` is cached per size.
    """
    terms = [((bit + ONE) * _INV_EIGHT, _gi_plus_hi(i)) for i, bit in enumerate(a_l)]
    return _sum(terms, alpha * _INV_EIGHT) - _a_offset(len(a_l))


def _prove_attempt(
    values: Sequence[Scalar], gammas: Sequence[Scalar], v: Sequence[Point], rng: Rng
) -> BulletproofPlus | None:
    m = len(values)
    m_padded = 1 << _log_m(m)
    mn = m_padded * _N
    # Bit decomposition (padding slots hold 0). aR = aL − 1.
    a_l = [_bit(values[j], i) if j < m else ZERO for j in range(m_padded) for i in range(_N)]
    a_r = [x - ONE for x in a_l]

    transcript = _transcript_update(INITIAL_TRANSCRIPT, _hash_commitments(v)).raw
    alpha = Scalar.random(rng)
    a_point = _commit_bits(a_l, alpha)

    y = _transcript_update(transcript, a_point.raw)
    if y.is_zero():
        return None
    z = hash_to_scalar(y.raw)
    transcript = z.raw
    if z.is_zero():
        return None
    z2 = z * z
    d = _d_vector(z, m_padded)
    y_powers = _powers(y, mn + 2)

    # The weighted inner-product witness (paper §4): â = aL − z·1, b̂ = aR + z·1 + d ∘ ←y.
    a = [x - z for x in a_l]
    b = [a_r[i] + z + d[i] * y_powers[mn - i] for i in range(mn)]
    alpha1 = alpha
    z_power = ONE
    for gamma in gammas:
        z_power = z_power * z2
        alpha1 = alpha1 + y_powers[mn + 1] * z_power * gamma

    y_inv = y.invert()
    y_inv_powers = _powers(y_inv, mn)
    # The folded generators are G' = f_g·sg and H' = f_h·sh: keeping the common factor
    # apart turns each fold ``G'_i = c⁻¹·G'_i + (y^-n'·c)·G'_{n'+i}`` into one
    # multiplication and one addition (sg_i + (y^-n'·c²)·sg_{n'+i}) instead of two
    # multiplications (Monero's ``hadamard_fold``); the factor rides on the scalars.
    gi, hi = generators(mn)
    sg, sh = list(gi), list(hi)
    f_g = f_h = ONE
    l_points: list[Point] = []
    r_points: list[Point] = []
    n = mn
    while n > 1:
        n //= 2
        c_l = _weighted_inner_product(a[:n], b[n:], y)
        c_r = _weighted_inner_product([x * y_powers[n] for x in a[n:]], b[:n], y)
        d_l = Scalar.random(rng)
        d_r = Scalar.random(rng)
        g_l = y_inv_powers[n] * _INV_EIGHT * f_g
        g_r = y_powers[n] * _INV_EIGHT * f_g
        h8 = _INV_EIGHT * f_h
        l_pt = _sum(
            [(a[i] * g_l, sg[n + i]) for i in range(n)]
            + [(b[n + i] * h8, sh[i]) for i in range(n)]
            + [(c_l * _INV_EIGHT, H)],
            d_l * _INV_EIGHT,
        )
        r_pt = _sum(
            [(a[n + i] * g_r, sg[i]) for i in range(n)]
            + [(b[i] * h8, sh[n + i]) for i in range(n)]
            + [(c_r * _INV_EIGHT, H)],
            d_r * _INV_EIGHT,
        )
        l_points.append(l_pt)
        r_points.append(r_pt)

        challenge = _transcript_update(transcript, l_pt.raw, r_pt.raw)
        transcript = challenge.raw
        if challenge.is_zero():
            return None
        c_inv = challenge.invert()
        c2 = challenge * challenge
        c_inv2 = c_inv * c_inv

        k_g = y_inv_powers[n] * c2
        sg = [sg[i] + k_g * sg[n + i] for i in range(n)]
        f_g = f_g * c_inv
        sh = [sh[i] + c_inv2 * sh[n + i] for i in range(n)]
        f_h = f_h * challenge

        a_scale = c_inv * y_powers[n]
        a = [a[i] * challenge + a[n + i] * a_scale for i in range(n)]
        b = [b[i] * c_inv + b[n + i] * challenge for i in range(n)]
        alpha1 = alpha1 + d_l * c2 + d_r * c_inv2

    # Final round (paper §3, the zk-WIP's last step with n = 1).
    r = Scalar.random(rng)
    s = Scalar.random(rng)
    d_ = Scalar.random(rng)
    eta = Scalar.random(rng)
    a0, b0 = a[0], b[0]
    a1_point = _sum(
        [
            (r * _INV_EIGHT * f_g, sg[0]),
            (s * _INV_EIGHT * f_h, sh[0]),
            ((r * y * b0 + s * y * a0) * _INV_EIGHT, H),
        ],
        d_ * _INV_EIGHT,
    )
    b_point = _sum([(r * y * s * _INV_EIGHT, H)], eta * _INV_EIGHT)
    e = _transcript_update(transcript, a1_point.raw, b_point.raw)
    if e.is_zero():
        return None
    return BulletproofPlus(
        A=a_point,
        A1=a1_point,
        B=b_point,
        r1=r + a0 * e,
        s1=s + b0 * e,
        d1=eta + d_ * e + alpha1 * e * e,
        L=tuple(l_points),
        R=tuple(r_points),
    )


# -- verifier ---------------------------------------------------------------------------


def verify(commitments: Sequence[Point], proof: BulletproofPlus) -> bool:
    """True iff ``proof`` shows every commitment opens to an amount in [0, 2^64)."""
    return batch_verify([(commitments, proof)])


def batch_verify(
    items: Sequence[tuple[Sequence[Point], BulletproofPlus]], rng: Rng = os_rng
) -> bool:
    """True iff every (commitments, proof) pair verifies; one multi-exponentiation in all.

    Each proof's verification equation is weighted by a fresh random scalar before they are
    summed (Monero's ``bulletproof_plus_VERIFY``), so a bad proof cannot be cancelled by
    another except with probability ~1/l. An empty batch is vacuously valid.
    """
    try:
        ok = _batch_verify(items, rng)
    except CryptoError:
        ok = False
    if not ok:
        log.debug("bpplus.verify.failed batch=%d", len(items))
    return ok


@dataclass(slots=True)
class _Accumulator:
    """Weighted scalars of the generators every proof shares, summed over the batch."""

    gi: list[Scalar]
    hi: list[Scalar]
    g: Scalar = ZERO
    h: Scalar = ZERO


def _batch_verify(items: Sequence[tuple[Sequence[Point], BulletproofPlus]], rng: Rng) -> bool:
    acc = _Accumulator(gi=[ZERO] * _MAX_MN, hi=[ZERO] * _MAX_MN)
    terms: list[tuple[Scalar, Point]] = []
    max_mn = 0
    for commitments, proof in items:
        # A single proof needs no weight: its own equation is checked exactly.
        weight = ONE if len(items) == 1 else Scalar.random(rng)
        mn = _add_proof(acc, terms, commitments, proof, weight)
        if mn is None:
            return False
        max_mn = max(max_mn, mn)
    if max_mn == 0:
        return True
    gi, hi = generators(max_mn)
    terms.extend(zip(acc.gi[:max_mn], gi, strict=True))
    terms.extend(zip(acc.hi[:max_mn], hi, strict=True))
    terms.append((acc.h, H))
    return _sum(terms, acc.g).is_identity()


def _add_proof(
    acc: _Accumulator,
    terms: list[tuple[Scalar, Point]],
    commitments: Sequence[Point],
    proof: BulletproofPlus,
    weight: Scalar,
) -> int | None:
    """Add one proof's weighted equation (Monero's per-proof loop); its MN, or None if bad."""
    m = len(commitments)
    if not 1 <= m <= MAX_OUTPUTS or len(proof.L) != rounds_for(m):
        return None
    if any(not c.in_subgroup or c.is_identity() for c in commitments):
        return None
    m_padded = 1 << _log_m(m)
    mn = m_padded * _N

    # Replay the transcript.
    v = [_INV_EIGHT * c for c in commitments]
    transcript = _transcript_update(INITIAL_TRANSCRIPT, _hash_commitments(v)).raw
    y = _transcript_update(transcript, proof.A.raw)
    z = hash_to_scalar(y.raw)
    transcript = z.raw
    challenges: list[Scalar] = []
    for l_pt, r_pt in zip(proof.L, proof.R, strict=True):
        c = _transcript_update(transcript, l_pt.raw, r_pt.raw)
        transcript = c.raw
        challenges.append(c)
    e = _transcript_update(transcript, proof.A1.raw, proof.B.raw)
    if any(x.is_zero() for x in (y, z, e, *challenges)):
        return None
    c_invs = [c.invert() for c in challenges]
    y_inv = y.invert()

    e2 = e * e
    z2 = z * z
    y_mn = y
    for _ in range(mn.bit_length() - 1):
        y_mn = y_mn * y_mn
    y_mn1 = y_mn * y

    # Stored points are P·8⁻¹ in the prime-order subgroup, so (s)·(8P) = (8s)·P. The V_j
    # are not stored: 8·V_j is the commitment itself.
    w8 = weight * _EIGHT
    minus_w_e2 = -(weight * e2)
    v_scalar = minus_w_e2 * y_mn1
    for commitment in commitments:
        v_scalar = v_scalar * z2
        terms.append((v_scalar, commitment))
    terms.append((-w8, proof.B))
    terms.append((-(w8 * e), proof.A1))
    terms.append((minus_w_e2 * _EIGHT, proof.A))
    for c, c_inv, l_pt, r_pt in zip(challenges, c_invs, proof.L, proof.R, strict=True):
        terms.append((minus_w_e2 * _EIGHT * c * c, l_pt))
        terms.append((minus_w_e2 * _EIGHT * c_inv * c_inv, r_pt))

    acc.g = acc.g + weight * proof.d1

    # H: w·(r1·y·s1 + e²·(y^(MN+1)·z·Σd + (z² − z)·Σ_{i=1..MN} y^i))
    z_even = ZERO
    z_power = ONE
    for _ in range(m_padded):
        z_power = z_power * z2
        z_even = z_even + z_power
    sum_d = _TWO_64_MINUS_ONE * z_even
    sum_y = ZERO
    y_power = ONE
    for _ in range(mn):
        y_power = y_power * y
        sum_y = sum_y + y_power
    h_scalar = proof.r1 * y * proof.s1 + e2 * (y_mn1 * z * sum_d + (z2 - z) * sum_y)
    acc.h = acc.h + weight * h_scalar

    # Products of round challenges by index bits (round 0 is the most significant bit):
    # bit 1 takes c_k, bit 0 takes c_k⁻¹ — the scalars of the fully folded generators.
    products = [ONE]
    for c, c_inv in zip(challenges, c_invs, strict=True):
        products = [x for p in products for x in (p * c_inv, p * c)]

    d = _d_vector(z, m_padded)
    e_r1_w = e * proof.r1 * weight  # times y^-i as i advances
    e_s1_w = e * proof.s1 * weight
    e2_z_w = e2 * z * weight
    minus_e2_w_y = minus_w_e2 * y_mn  # times y^-i as i advances
    for i in range(mn):
        acc.gi[i] = acc.gi[i] + e_r1_w * products[i] + e2_z_w
        acc.hi[i] = acc.hi[i] + e_s1_w * products[mn - 1 - i] - e2_z_w + minus_e2_w_y * d[i]
        e_r1_w = e_r1_w * y_inv
        minus_e2_w_y = minus_e2_w_y * y_inv
    return mn
