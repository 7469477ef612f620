"""CryptoNote Schnorr signatures (SPEC §4.5): round trip, strictness, bit flips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.errors import CryptoError, VerificationFailed
from petranode.crypto.group import L, Point, Scalar, os_rng
from petranode.crypto.keys import generate_keys
from petranode.crypto.schnorr import (
    Signature,
    check_signature,
    deterministic_nonce_rng,
    generate_signature,
    verify_signature,
)

PUB, SEC = generate_keys()
MESSAGE = bytes(range(32))
SIG = generate_signature(MESSAGE, PUB, SEC)
TORSION_ORDER_8 = Point.from_bytes(
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    allow_torsion=True)


def test_sign_and_check() -> None:
    assert check_signature(MESSAGE, PUB.raw, bytes(SIG))
    verify_signature(MESSAGE, PUB, SIG)
    assert Signature.from_bytes(bytes(SIG)) == SIG


def test_wrong_message_or_key_fails() -> None:
    other_pub, _ = generate_keys()
    assert not check_signature(bytes(32), PUB.raw, bytes(SIG))
    assert not check_signature(MESSAGE, other_pub.raw, bytes(SIG))
    with pytest.raises(VerificationFailed):
        verify_signature(MESSAGE, other_pub, SIG)


@settings(max_examples=100)
@given(st.integers(0, 64 * 8 - 1))
def test_any_flipped_bit_fails(bit: int) -> None:
    raw = bytearray(bytes(SIG))
    raw[bit // 8] ^= 1 << (bit % 8)
    assert not check_signature(MESSAGE, PUB.raw, bytes(raw))
    try:
        sig = Signature.from_bytes(bytes(raw))
    except CryptoError:
        return  # a scalar pushed to ≥ l: rejected at decoding
    with pytest.raises(VerificationFailed):
        verify_signature(MESSAGE, PUB, sig)


@settings(max_examples=100)
@given(st.binary(min_size=0, max_size=70))
def test_signature_decoder_gives_value_or_crypto_error(data: bytes) -> None:
    try:
        sig = Signature.from_bytes(data)
    except CryptoError:
        return
    assert bytes(sig) == data


def test_non_canonical_scalars_are_rejected() -> None:
    c, r = bytes(SIG)[:32], bytes(SIG)[32:]
    c_plus_l = (int.from_bytes(c, "little") + L).to_bytes(32, "little")
    r_plus_l = (int.from_bytes(r, "little") + L).to_bytes(32, "little")
    for bad in (c_plus_l + r, c + r_plus_l):
        assert not check_signature(MESSAGE, PUB.raw, bad)
        with pytest.raises(CryptoError):
            Signature.from_bytes(bad)


def test_zero_challenge_and_identity_commitment_are_rejected() -> None:
    assert not check_signature(MESSAGE, PUB.raw, bytes(64))
    # c = 1, r = −x gives R = P − x·G = identity: refused before hashing (Monero's rule).
    one = Scalar.from_int(1)
    assert not check_signature(MESSAGE, PUB.raw, one.raw + (-SEC).raw)


def test_undecodable_public_key_fails() -> None:
    assert not check_signature(MESSAGE, bytes.fromhex("02" + "00" * 31), bytes(SIG))


def test_strict_verify_refuses_a_torsioned_key() -> None:
    torsioned = PUB + TORSION_ORDER_8
    sig = Signature.from_bytes(bytes(SIG))
    with pytest.raises(VerificationFailed):
        verify_signature(MESSAGE, torsioned, sig)


def test_deterministic_nonce() -> None:
    a = generate_signature(MESSAGE, PUB, SEC, deterministic_nonce_rng(SEC, MESSAGE))
    b = generate_signature(MESSAGE, PUB, SEC, deterministic_nonce_rng(SEC, MESSAGE))
    c = generate_signature(bytes(32), PUB, SEC, deterministic_nonce_rng(SEC, bytes(32)))
    assert a == b
    assert a.c != c.c and a.r != c.r
    assert check_signature(MESSAGE, PUB.raw, bytes(a))
    assert generate_signature(MESSAGE, PUB, SEC, os_rng) != a


def test_misuse_raises() -> None:
    other_pub, _ = generate_keys()
    with pytest.raises(CryptoError):
        generate_signature(MESSAGE, other_pub, SEC)
    with pytest.raises(CryptoError):
        generate_signature(b"short", PUB, SEC)
    assert "Scalar" not in repr(SIG) and SEC.hex() not in repr(SIG)
