"""CryptoNote one-time ring signatures: GEN, SIG, VER, LNK (SPEC §2, §4.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.errors import CryptoError, NotInSubgroup, VerificationFailed
from petranode.crypto.group import (
    ZERO,
    Point,
    Scalar,
    hash_to_point,
    hash_to_scalar,
    random_scalar,
    scalar_mult,
)
from petranode.crypto.keyimage import KeyImage, generate_key_image, linked
from petranode.crypto.keys import generate_keys
from petranode.crypto.ring import (
    RingSignature,
    check_ring_signature,
    generate_ring_signature,
    verify_ring_signature,
)

MESSAGE = bytes(range(32))
ORDER_2 = Point.from_bytes(bytes.fromhex("ec" + "ff" * 30 + "7f"), allow_torsion=True)
ORDER_8 = Point.from_bytes(
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    allow_torsion=True)


def make_ring(n: int, index: int) -> tuple[list[Point], Scalar, KeyImage]:
    pairs = [generate_keys() for _ in range(n)]
    pub, sec = pairs[index]
    return [p for p, _ in pairs], sec, generate_key_image(pub, sec)


def raw(ring: list[Point]) -> list[bytes]:
    return [p.raw for p in ring]


RING, SEC, IMAGE = make_ring(3, 1)
SIG = generate_ring_signature(MESSAGE, IMAGE, RING, SEC, 1)


@pytest.mark.parametrize(("n", "index"), [(1, 0), (2, 0), (2, 1), (5, 3), (16, 15)])
def test_sign_and_verify(n: int, index: int) -> None:
    ring, sec, image = make_ring(n, index)
    sig = generate_ring_signature(MESSAGE, image, ring, sec, index)
    assert len(sig) == n
    assert check_ring_signature(MESSAGE, bytes(image), raw(ring), bytes(sig))
    verify_ring_signature(MESSAGE, image, ring, sig)
    assert RingSignature.from_bytes(bytes(sig), n) == sig


def test_wrong_message_image_or_ring_fails() -> None:
    other_ring, _other_sec, other_image = make_ring(3, 0)
    assert not check_ring_signature(bytes(32), bytes(IMAGE), raw(RING), bytes(SIG))
    assert not check_ring_signature(MESSAGE, bytes(other_image), raw(RING), bytes(SIG))
    assert not check_ring_signature(MESSAGE, bytes(IMAGE), raw(other_ring), bytes(SIG))
    assert not check_ring_signature(MESSAGE, bytes(IMAGE), raw(RING[::-1]), bytes(SIG))
    with pytest.raises(VerificationFailed):
        verify_ring_signature(MESSAGE, other_image, RING, SIG)


@settings(max_examples=100)
@given(st.integers(0, 3 * 64 * 8 - 1))
def test_any_flipped_bit_fails(bit: int) -> None:
    data = bytearray(bytes(SIG))
    data[bit // 8] ^= 1 << (bit % 8)
    assert not check_ring_signature(MESSAGE, bytes(IMAGE), raw(RING), bytes(data))
    try:
        sig = RingSignature.from_bytes(bytes(data), 3)
    except CryptoError:
        return  # a scalar pushed to ≥ l
    with pytest.raises(VerificationFailed):
        verify_ring_signature(MESSAGE, IMAGE, RING, sig)


@settings(max_examples=100)
@given(st.integers(0, 32 * 8 - 1))
def test_flipped_bit_in_key_image_or_message_fails(bit: int) -> None:
    image = bytearray(bytes(IMAGE))
    image[bit // 8] ^= 1 << (bit % 8)
    assert not check_ring_signature(MESSAGE, bytes(image), raw(RING), bytes(SIG))
    message = bytearray(MESSAGE)
    message[bit // 8] ^= 1 << (bit % 8)
    assert not check_ring_signature(bytes(message), bytes(IMAGE), raw(RING), bytes(SIG))


def test_repeated_ring_member_is_rejected_by_the_strict_check() -> None:
    ring = [RING[0], RING[1], RING[0]]
    sig = generate_ring_signature(MESSAGE, IMAGE, ring, SEC, 1)
    # The reference check (like Monero's) does not look for repeats ...
    assert check_ring_signature(MESSAGE, bytes(IMAGE), raw(ring), bytes(sig))
    # ... petranode's does.
    with pytest.raises(VerificationFailed, match="repeated"):
        verify_ring_signature(MESSAGE, IMAGE, ring, sig)


def test_torsioned_ring_member_is_rejected_by_the_strict_check() -> None:
    ring = [RING[0] + ORDER_8, RING[1], RING[2]]
    sig = generate_ring_signature(MESSAGE, IMAGE, ring, SEC, 1)
    assert check_ring_signature(MESSAGE, bytes(IMAGE), raw(ring), bytes(sig))
    with pytest.raises(VerificationFailed, match="subgroup"):
        verify_ring_signature(MESSAGE, IMAGE, ring, sig)


def _sign_with_any_image(image: Point, ring: list[Point], sec: Scalar, index: int) -> bytes:
    """generate_ring_signature without the key-image checks, as an attacker would run it."""
    pairs: list[tuple[Scalar, Scalar]] = []
    parts: list[bytes] = []
    total, k = ZERO, ZERO
    for i, pub in enumerate(ring):
        hp = hash_to_point(pub.raw)
        if i == index:
            k = random_scalar()
            parts += [k.mul_base().raw, (k * hp).raw]
            pairs.append((ZERO, ZERO))
        else:
            c, r = random_scalar(), random_scalar()
            parts += [(scalar_mult(c, pub) + r.mul_base()).raw,
                      (scalar_mult(r, hp) + scalar_mult(c, image)).raw]
            pairs.append((c, r))
            total = total + c
    c_s = hash_to_scalar(MESSAGE, *parts) - total
    pairs[index] = (c_s, k - c_s * sec)
    return b"".join(c.raw + r.raw for c, r in pairs)


def test_torsioned_key_image_double_spend_is_caught() -> None:
    """Why SPEC §4.5 insists on the subgroup: I + T is a second image of the same output.

    The reference check accepts it whenever the signer's challenge kills T (c even for an
    order-2 T: half the attempts), so without the subgroup check one output could be spent
    once under I and again under I + T.
    """
    shifted = IMAGE.point + ORDER_2
    for _ in range(64):
        forged = _sign_with_any_image(shifted, RING, SEC, 1)
        if check_ring_signature(MESSAGE, shifted.raw, raw(RING), forged):
            break
    else:
        pytest.fail("no forgery in 64 attempts (probability 2^-64)")
    assert shifted.raw != bytes(IMAGE)  # not linked by byte equality
    with pytest.raises(NotInSubgroup):
        KeyImage.from_bytes(shifted.raw)  # the strict path never sees it


def test_every_torsion_point_on_the_image_is_refused() -> None:
    for t in ("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
              "0000000000000000000000000000000000000000000000000000000000000000",
              "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
              "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
              "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
              "0000000000000000000000000000000000000000000000000000000000000080",
              "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"):
        point = Point.from_bytes(bytes.fromhex(t), allow_torsion=True)
        with pytest.raises(NotInSubgroup):
            KeyImage.from_bytes((IMAGE.point + point).raw)


def test_linkability_across_rings() -> None:
    ring2 = [RING[1], *make_ring(4, 0)[0]]
    sig2 = generate_ring_signature(bytes(32), IMAGE, ring2, SEC, 0)
    verify_ring_signature(bytes(32), IMAGE, ring2, sig2)
    _other_ring, _other_sec, other_image = make_ring(3, 2)
    assert linked(IMAGE, generate_key_image(RING[1], SEC))  # same output, same image
    assert not linked(IMAGE, other_image)


def test_signing_misuse_raises() -> None:
    with pytest.raises(CryptoError):
        generate_ring_signature(MESSAGE, IMAGE, RING, SEC, 0)  # wrong index
    with pytest.raises(CryptoError):
        generate_ring_signature(MESSAGE, IMAGE, RING, SEC, 3)
    _, _, other_image = make_ring(1, 0)
    with pytest.raises(CryptoError):
        generate_ring_signature(MESSAGE, other_image, RING, SEC, 1)


def test_size_mismatches_fail() -> None:
    assert not check_ring_signature(MESSAGE, bytes(IMAGE), raw(RING[:2]), bytes(SIG))
    assert not check_ring_signature(MESSAGE, bytes(IMAGE), [], b"")
    short = RingSignature(SIG.pairs[:2])
    with pytest.raises(VerificationFailed):
        verify_ring_signature(MESSAGE, IMAGE, RING, short)


@settings(max_examples=100)
@given(st.binary(max_size=200), st.integers(0, 4))
def test_ring_signature_decoder_gives_value_or_crypto_error(data: bytes, n: int) -> None:
    try:
        sig = RingSignature.from_bytes(data, n)
    except CryptoError:
        return
    assert bytes(sig) == data and len(sig) == n


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.lists(st.binary(min_size=32, max_size=32),
                                                     min_size=1, max_size=3),
       st.binary(min_size=0, max_size=200))
def test_reference_check_on_arbitrary_bytes_returns_a_bool(
        image: bytes, pubs: list[bytes], sig: bytes) -> None:
    assert check_ring_signature(MESSAGE, image, pubs, sig) in (True, False)
