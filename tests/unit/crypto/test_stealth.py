"""One-time outputs, scanning with the view key, view tags (SPEC §2, §4.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto import stealth
from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point, Scalar
from petranode.crypto.keyimage import generate_key_image
from petranode.crypto.keys import WalletKeys
from petranode.crypto.stealth import (
    KeyDerivation,
    StealthOutput,
    TxSecret,
    create_output,
    derivation_to_scalar,
    derive_public_key,
    derive_secret_key,
    derive_view_tag,
    generate_key_derivation,
    one_time_secret_key,
    scan_output,
    scan_transaction,
    underive_public_key,
)

TORSION_ORDER_8 = Point.from_bytes(
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    allow_torsion=True)

ALICE = WalletKeys.generate()
BOB = WalletKeys.generate()


def test_sender_and_recipient_share_the_derivation() -> None:
    tx = TxSecret.generate()
    assert generate_key_derivation(ALICE.view_public, tx.secret) == generate_key_derivation(
        tx.public, ALICE.view_secret)


def test_owner_finds_the_output_and_recovers_its_key() -> None:
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 3)
    found = scan_output(ALICE.view_keys, tx.public, 3, sent.output)
    assert found is not None
    assert found.shared_secret == sent.shared_secret  # opens the amount (ecdh)
    x = one_time_secret_key(ALICE, found)
    assert x.mul_base() == sent.output.one_time_key
    assert generate_key_image(found.one_time_key, x).point.in_subgroup


def test_someone_else_does_not_find_it() -> None:
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 0)
    assert scan_output(BOB.view_keys, tx.public, 0, sent.output) is None
    # Right view key but wrong index: not found either (the index is bound into P).
    assert scan_output(ALICE.view_keys, tx.public, 1, sent.output) is None


def test_view_tag_mismatch_skips_the_key_check(monkeypatch: pytest.MonkeyPatch) -> None:
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 0)
    wrong_tag = StealthOutput(sent.output.one_time_key, sent.output.view_tag ^ 1)

    def no_key_check(*_: object) -> Scalar:
        raise AssertionError("key check reached despite a wrong view tag")

    monkeypatch.setattr(stealth, "derivation_to_scalar", no_key_check)
    assert scan_output(ALICE.view_keys, tx.public, 0, wrong_tag) is None


def test_matching_tag_with_a_foreign_key_is_not_found() -> None:
    # 1 in 256 foreign outputs pass the tag; the key comparison must still reject them.
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 0)
    forged = StealthOutput(BOB.spend_public, sent.output.view_tag)
    assert scan_output(ALICE.view_keys, tx.public, 0, forged) is None


def test_scan_transaction_picks_out_own_outputs() -> None:
    tx = TxSecret.generate()
    recipients = [ALICE, BOB, ALICE, BOB, BOB]
    outputs = [create_output(tx, w.address, i).output for i, w in enumerate(recipients)]
    assert [r.output_index for r in scan_transaction(ALICE.view_keys, tx.public, outputs)] == [0, 2]
    assert [r.output_index for r in scan_transaction(BOB.view_keys, tx.public, outputs)] == [1, 3, 4]


def test_torsion_on_the_tx_key_does_not_change_the_derivation() -> None:
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 0)
    torsioned = tx.public + TORSION_ORDER_8
    assert not torsioned.in_subgroup
    assert scan_output(ALICE.view_keys, torsioned, 0, sent.output) is not None


def test_one_time_secret_for_someone_elses_output_is_refused() -> None:
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 0)
    found = scan_output(ALICE.view_keys, tx.public, 0, sent.output)
    assert found is not None
    with pytest.raises(CryptoError):
        one_time_secret_key(BOB, found)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 2**40))
def test_derive_underive_and_secret_agree(raw: bytes, index: int) -> None:
    d = KeyDerivation(raw)
    p = derive_public_key(d, index, ALICE.spend_public)
    assert underive_public_key(d, index, p) == ALICE.spend_public
    assert derive_secret_key(d, index, ALICE.spend_secret).mul_base() == p
    assert p == derivation_to_scalar(d, index).mul_base() + ALICE.spend_public
    assert 0 <= derive_view_tag(d, index) <= 255


def test_view_tag_known_answer() -> None:
    # First derive_view_tag record of Monero's tests.txt.
    d = KeyDerivation(bytes.fromhex(
        "0fc47054f355ced4d67de73bfa12e4c78ff19089548fffa7d07a674741860f97"))
    assert derive_view_tag(d, 0) == 0x76


def test_values_are_validated_and_secrets_not_shown() -> None:
    with pytest.raises(CryptoError):
        KeyDerivation(b"\0" * 31)
    with pytest.raises(CryptoError):
        StealthOutput(ALICE.spend_public, 256)
    with pytest.raises(CryptoError):
        TxSecret(Scalar(bytes(32)))
    tx = TxSecret.generate()
    sent = create_output(tx, ALICE.address, 0)
    for text in (repr(tx), repr(sent), repr(generate_key_derivation(tx.public, ALICE.view_secret))):
        assert tx.secret.hex() not in text
        assert sent.shared_secret.hex() not in text
        assert generate_key_derivation(tx.public, ALICE.view_secret).raw.hex() not in text
