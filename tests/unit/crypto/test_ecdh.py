"""RingCT v2 compact ecdhInfo: amount XOR Keccak("amount" ‖ k), mask Hs("commitment_mask" ‖ k)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto import ecdh
from petranode.crypto.ecdh import EcdhInfo
from petranode.crypto.errors import CryptoError, VerificationFailed
from petranode.crypto.group import Scalar, cn_fast_hash, hash_to_scalar
from petranode.crypto.pedersen import MAX_AMOUNT, commit

amounts = st.integers(0, MAX_AMOUNT)
scalars = st.binary(min_size=64, max_size=64).map(Scalar.reduce)


def test_formulas_match_monero() -> None:
    k = Scalar.from_int(123456789)
    # ecdhHash: the first 8 bytes of Keccak("amount" ‖ k); genCommitmentMask: Hs(tag ‖ k).
    assert ecdh.amount_key(k) == cn_fast_hash(b"amount" + k.raw)[:8]
    assert ecdh.commitment_mask(k) == hash_to_scalar(b"commitment_mask" + k.raw)
    info = ecdh.encrypt(1, k)
    assert info.amount[0] == ecdh.amount_key(k)[0] ^ 1
    assert info.amount[1:] == ecdh.amount_key(k)[1:]


@settings(max_examples=50, deadline=None)
@given(amounts, scalars)
def test_round_trip(amount: int, k: Scalar) -> None:
    info, mask, commitment = ecdh.make_output(amount, k)
    assert commitment == commit(amount, mask)
    decoded = EcdhInfo.decode(info.encode())
    assert ecdh.open_output(decoded, k, commitment) == (amount, mask)


@settings(max_examples=25, deadline=None)
@given(amounts, scalars, scalars)
def test_wrong_shared_secret_is_detected(amount: int, k: Scalar, other: Scalar) -> None:
    info, _, commitment = ecdh.make_output(amount, k)
    if other == k:
        return
    with pytest.raises(VerificationFailed):
        ecdh.open_output(info, other, commitment)


@settings(max_examples=25, deadline=None)
@given(amounts, scalars, st.integers(0, 63))
def test_corrupted_amount_is_detected(amount: int, k: Scalar, bit: int) -> None:
    info, _, commitment = ecdh.make_output(amount, k)
    raw = bytearray(info.amount)
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(VerificationFailed):
        ecdh.open_output(EcdhInfo(bytes(raw)), k, commitment)


def test_amount_range() -> None:
    k = Scalar.from_int(5)
    with pytest.raises(CryptoError):
        ecdh.encrypt(MAX_AMOUNT + 1, k)
    with pytest.raises(CryptoError):
        ecdh.encrypt(-1, k)


@given(st.binary(max_size=16))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    try:
        info = EcdhInfo.decode(data)
    except CryptoError:
        assert len(data) != 8
        return
    assert info.encode() == data
