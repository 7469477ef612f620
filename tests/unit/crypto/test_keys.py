"""Wallet keys, Monero base58 and address strings (SPEC §4.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.errors import CryptoError, InvalidAddress
from petranode.crypto.group import (
    IDENTITY,
    Point,
    Rng,
    Scalar,
    cn_fast_hash,
    hash_to_scalar,
    os_rng,
    random_scalar,
    varint,
)
from petranode.crypto.keys import (
    MAINNET_ADDRESS_PREFIX,
    TESTNET_ADDRESS_PREFIX,
    PublicAddress,
    ViewKeys,
    WalletKeys,
    base58_decode,
    base58_encode,
    generate_keys,
)

TORSION_ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa")


def seeded_rng(seed: bytes) -> Rng:
    """A deterministic byte stream for reproducible keys in tests."""
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += cn_fast_hash(seed, counter.to_bytes(8, "little"))
            counter += 1
        return out[:n]

    return draw


# Monero's tests/unit_tests/base58.cpp encode_block cases (block → string).
BASE58_BLOCKS = [
    ("", ""), ("00", "11"), ("39", "1z"), ("ff", "5Q"), ("0000", "111"), ("0039", "11z"),
    ("0100", "15R"), ("ffff", "LUv"), ("000000", "11111"), ("000039", "1111z"),
    ("010000", "11LUw"), ("ffffff", "2UzHL"), ("00000039", "11111z"), ("ffffffff", "7YXq9G"),
    ("0000000039", "111111z"), ("ffffffffff", "VtB5VXc"), ("000000000039", "11111111z"),
    ("ffffffffffff", "3CUsUpv9t"), ("00000000000039", "111111111z"),
    ("ffffffffffffff", "Ahg1opVcGW"), ("0000000000000039", "1111111111z"),
    ("ffffffffffffffff", "jpXCZedGfVQ"),
]


@pytest.mark.parametrize(("hex_block", "text"), BASE58_BLOCKS)
def test_base58_blocks_match_monero(hex_block: str, text: str) -> None:
    assert base58_encode(bytes.fromhex(hex_block)) == text
    assert base58_decode(text) == bytes.fromhex(hex_block)


@pytest.mark.parametrize("text", ["1", "1111", "5R", "zzzzzzzzzzz", "0", "O1", "Il", "11111111111z"])
def test_base58_rejects_impossible_strings(text: str) -> None:
    # bad lengths (1, 4, 12 chars), block overflow (5R = 256, zzz… > 2⁶⁴), characters 0 O I l
    with pytest.raises(InvalidAddress):
        base58_decode(text)


@settings(max_examples=100)
@given(st.binary(max_size=100))
def test_base58_round_trip(data: bytes) -> None:
    assert base58_decode(base58_encode(data)) == data


@settings(max_examples=100)
@given(st.text(max_size=120))
def test_base58_decode_gives_bytes_or_invalid_address(text: str) -> None:
    try:
        data = base58_decode(text)
    except InvalidAddress:
        return
    assert base58_encode(data) == text  # the block-wise encoding is unique


def test_monero_donation_address_decodes_with_monero_prefix() -> None:
    # A real mainnet address (prefix 18): exercises base58, the Keccak checksum and the
    # point checks against bytes we did not produce.
    text = ("44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wf"
            "n3RVGQBEP3A")
    address = PublicAddress.decode(text, prefix=18)
    assert address.spend.hex() == "42f18fc61586554095b0799b5c4b6f00cdeb26a93b20540d366932c6001617b7"
    assert address.encode(prefix=18) == text
    with pytest.raises(InvalidAddress):
        PublicAddress.decode(text)  # not a petranode address


def test_address_prefixes_give_readable_leading_characters() -> None:
    address = WalletKeys.generate(seeded_rng(b"prefix")).address
    assert address.encode(MAINNET_ADDRESS_PREFIX).startswith("Pe")
    assert address.encode(TESTNET_ADDRESS_PREFIX).startswith("PT")
    assert len(address.encode()) == 97  # 2 + 64 + 4 bytes: 8 full blocks and one of 6


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=8, max_size=8), st.sampled_from([MAINNET_ADDRESS_PREFIX,
                                                           TESTNET_ADDRESS_PREFIX, 18]))
def test_address_round_trip(seed: bytes, prefix: int) -> None:
    address = WalletKeys.generate(seeded_rng(seed)).address
    assert PublicAddress.decode(address.encode(prefix), prefix) == address


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_corrupted_address_is_rejected(data: st.DataObject) -> None:
    text = WalletKeys.generate(seeded_rng(b"corrupt")).address.encode()
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from(
        "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl").filter(
            lambda ch: ch != text[position]))
    corrupted = text[:position] + replacement + text[position + 1:]
    with pytest.raises(InvalidAddress):
        PublicAddress.decode(corrupted)


def test_truncated_extended_and_foreign_addresses_are_rejected() -> None:
    text = WalletKeys.generate(seeded_rng(b"x")).address.encode()
    for bad in (text[:-1], text[:-11], text + "1", text + "11", ""):
        with pytest.raises(InvalidAddress):
            PublicAddress.decode(bad)
    testnet = PublicAddress.decode(text).encode(TESTNET_ADDRESS_PREFIX)
    with pytest.raises(InvalidAddress, match="another network"):
        PublicAddress.decode(testnet, MAINNET_ADDRESS_PREFIX)


def _address_with_keys(spend: bytes, view: bytes, prefix: int = MAINNET_ADDRESS_PREFIX) -> str:
    body = varint(prefix) + spend + view
    return base58_encode(body + cn_fast_hash(body)[:4])


@pytest.mark.parametrize("bad_key", [
    TORSION_ORDER_8,                                       # small order
    IDENTITY.raw,                                          # identity
    bytes.fromhex("ee" + "ff" * 30 + "7f"),                # y = p + 1: non-canonical
    bytes.fromhex("02" + "00" * 31),                       # y = 2: not on the curve
])
def test_address_with_a_bad_key_is_rejected(bad_key: bytes) -> None:
    good = WalletKeys.generate(seeded_rng(b"k")).address
    for spend, view in ((bad_key, good.view.raw), (good.spend.raw, bad_key)):
        with pytest.raises(InvalidAddress, match="valid public key"):
            PublicAddress.decode(_address_with_keys(spend, view))


def test_address_with_torsioned_key_is_rejected() -> None:
    good = WalletKeys.generate(seeded_rng(b"t")).address
    torsioned = good.spend + Point.from_bytes(TORSION_ORDER_8, allow_torsion=True)
    with pytest.raises(InvalidAddress):
        PublicAddress.decode(_address_with_keys(torsioned.raw, good.view.raw))


@settings(max_examples=100)
@given(st.text(max_size=120))
def test_decode_gives_an_address_or_invalid_address(text: str) -> None:
    try:
        PublicAddress.decode(text)
    except InvalidAddress:
        pass


def test_derived_view_key_is_hash_of_spend_key() -> None:
    keys = WalletKeys.generate(seeded_rng(b"derive"))
    assert keys.view_secret == hash_to_scalar(keys.spend_secret.raw)
    assert WalletKeys.from_spend_secret(keys.spend_secret) == keys
    assert keys.spend_public == keys.spend_secret.mul_base()
    assert keys.view_public == keys.view_secret.mul_base()


def test_independent_view_key_option() -> None:
    keys = WalletKeys.generate(seeded_rng(b"two"), derive_view=False)
    assert keys.view_secret != hash_to_scalar(keys.spend_secret.raw)
    assert keys.view_keys == ViewKeys(keys.view_secret, keys.spend_public)
    assert keys.view_keys.address == keys.address


def test_generate_keys_is_a_key_pair() -> None:
    pub, sec = generate_keys()
    assert pub == sec.mul_base()


def test_zero_secrets_are_refused() -> None:
    zero = Scalar(bytes(32))
    with pytest.raises(CryptoError):
        WalletKeys(zero, random_scalar())
    with pytest.raises(CryptoError):
        ViewKeys(zero, random_scalar().mul_base())


def test_repr_never_shows_secrets() -> None:
    keys = WalletKeys.generate(os_rng)
    for text in (repr(keys), str(keys), repr(keys.view_keys), repr(keys.address)):
        assert keys.spend_secret.hex() not in text
        assert keys.view_secret.hex() not in text
    assert keys.spend_public.hex() in repr(keys)
