"""Payment proofs (tx key, OutProofV2/InProofV2), SpendProofV1 and view-key audit."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto import ecdh, proofs, stealth
from petranode.crypto.errors import CryptoError, VerificationFailed
from petranode.crypto.group import Point, Scalar, cn_fast_hash
from petranode.crypto.keyimage import KeyImage, generate_key_image
from petranode.crypto.keys import WalletKeys
from petranode.crypto.proofs import LedgerOutput, SpendInput, SpendProof, TxProof, TxProofKind
from petranode.crypto.stealth import TxSecret

TXID = cn_fast_hash(b"a transaction")
MESSAGE = b"invoice 42"


@cache
def scenario() -> tuple[WalletKeys, WalletKeys, TxSecret, list[LedgerOutput]]:
    """A transaction paying 700 to ``alice`` and 300 change to ``bob`` (the sender)."""
    alice, bob = WalletKeys.generate(), WalletKeys.generate()
    tx = TxSecret.generate()
    outputs = []
    for index, (wallet, amount) in enumerate([(alice, 700), (bob, 300)]):
        sent = stealth.create_output(tx, wallet.address, index)
        info, _, commitment = ecdh.make_output(amount, sent.shared_secret)
        outputs.append(LedgerOutput(tx.public, index, sent.output, commitment, info))
    return alice, bob, tx, outputs


def test_tx_key_shows_what_was_paid() -> None:
    alice, bob, tx, outputs = scenario()
    paid = proofs.check_tx_key(tx.secret, tx.public, alice.address, outputs)
    assert [(o.output_index, o.amount) for o in paid] == [(0, 700)]
    assert proofs.total(proofs.check_tx_key(tx.secret, tx.public, bob.address, outputs)) == 300
    stranger = WalletKeys.generate()
    assert proofs.check_tx_key(tx.secret, tx.public, stranger.address, outputs) == []
    with pytest.raises(VerificationFailed):
        proofs.check_tx_key(Scalar.random(), tx.public, alice.address, outputs)


def test_tx_key_skips_an_output_whose_amount_does_not_open() -> None:
    alice, _, tx, outputs = scenario()
    lying = replace(outputs[0], encrypted_amount=ecdh.encrypt(7000, Scalar.random()))
    assert proofs.check_tx_key(tx.secret, tx.public, alice.address, [lying]) == []


def test_out_proof_round_trip() -> None:
    alice, _, tx, outputs = scenario()
    proof = proofs.prove_payment(TXID, MESSAGE, tx.secret, alice.address)
    text = proof.encode()
    assert text.startswith("OutProofV2") and len(text) == len("OutProofV2") + 44 + 88
    decoded = TxProof.decode(text)
    assert decoded == proof
    paid = proofs.check_tx_proof(TXID, MESSAGE, decoded, alice.address, tx.public, outputs)
    assert proofs.total(paid) == 700
    # D' is r·A, not the derivation: revealing it does not reveal r.
    assert proof.shared == tx.secret * alice.view_public


def test_in_proof_round_trip() -> None:
    alice, _, tx, outputs = scenario()
    proof = proofs.prove_receipt(TXID, MESSAGE, alice.view_keys, tx.public)
    assert proof.kind is TxProofKind.IN
    assert proof.encode().startswith("InProofV2")
    decoded = TxProof.decode(proof.encode())
    paid = proofs.check_tx_proof(TXID, MESSAGE, decoded, alice.address, tx.public, outputs)
    assert [(o.output_index, o.amount) for o in paid] == [(0, 700)]


def test_tx_proof_binds_txid_message_address_and_tx_key() -> None:
    alice, bob, tx, outputs = scenario()
    proof = proofs.prove_payment(TXID, MESSAGE, tx.secret, alice.address)
    for txid, message, address, tx_public in [
        (cn_fast_hash(TXID), MESSAGE, alice.address, tx.public),
        (TXID, b"invoice 43", alice.address, tx.public),
        (TXID, MESSAGE, bob.address, tx.public),
        (TXID, MESSAGE, alice.address, Scalar.random().mul_base()),
    ]:
        with pytest.raises(VerificationFailed):
            proofs.check_tx_proof(txid, message, proof, address, tx_public, outputs)
    # An InProof is not an OutProof.
    flipped = replace(proof, kind=TxProofKind.IN)
    with pytest.raises(VerificationFailed):
        proofs.check_tx_proof(TXID, MESSAGE, flipped, alice.address, tx.public, outputs)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 8 * 96 - 1))
def test_tx_proof_bit_flip_fails(bit: int) -> None:
    alice, _, tx, outputs = scenario()
    proof = _cached_out_proof()
    raw = bytearray(proof.shared.raw + proof.c.raw + proof.r.raw)
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        bad = TxProof(TxProofKind.OUT, Point.from_bytes(bytes(raw[:32])),
                      Scalar.from_bytes(bytes(raw[32:64])), Scalar.from_bytes(bytes(raw[64:])))
    except CryptoError:
        return
    with pytest.raises(VerificationFailed):
        proofs.check_tx_proof(TXID, MESSAGE, bad, alice.address, tx.public, outputs)


@cache
def _cached_out_proof() -> TxProof:
    alice, _, tx, _ = scenario()
    return proofs.prove_payment(TXID, MESSAGE, tx.secret, alice.address)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.text("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
                         min_size=132, max_size=132).map(lambda t: "OutProofV2" + t)))
def test_tx_proof_decoder_gives_value_or_crypto_error(text: str) -> None:
    try:
        proof = TxProof.decode(text)
    except CryptoError:
        return
    assert TxProof.decode(proof.encode()) == proof


def _spend_setup() -> tuple[WalletKeys, list[SpendInput]]:
    alice, _, _, outputs = scenario()
    found = stealth.scan_output(alice.view_keys, outputs[0].tx_public, 0, outputs[0].output)
    assert found is not None
    secret = stealth.one_time_secret_key(alice, found)
    real = found.one_time_key
    ring = (Scalar.random().mul_base(), real, Scalar.random().mul_base(),
            Scalar.random().mul_base())
    image = generate_key_image(real, secret)
    # A second input spending a fresh output alone in a ring of 2.
    x2 = Scalar.random()
    ring2 = (x2.mul_base(), Scalar.random().mul_base())
    return alice, [SpendInput(ring, image, secret, 1),
                   SpendInput(ring2, generate_key_image(ring2[0], x2), x2, 0)]


def test_spend_proof_round_trip() -> None:
    _, inputs = _spend_setup()
    proof = proofs.prove_spend(TXID, MESSAGE, inputs)
    public = [(i.ring, i.key_image) for i in inputs]
    assert proofs.check_spend_proof(TXID, MESSAGE, public, proof)
    text = proof.encode()
    assert text.startswith("SpendProofV1")
    assert len(text) == len("SpendProofV1") + 88 * (4 + 2)
    decoded = SpendProof.decode(text, [4, 2])
    assert decoded == proof
    assert proofs.check_spend_proof(TXID, MESSAGE, public, decoded)
    assert not proofs.check_spend_proof(TXID, b"other", public, proof)
    assert not proofs.check_spend_proof(cn_fast_hash(TXID), MESSAGE, public, proof)
    assert not proofs.check_spend_proof(TXID, MESSAGE, public[:1], proof)
    swapped = [(public[0][0], public[1][1]), (public[1][0], public[0][1])]
    assert not proofs.check_spend_proof(TXID, MESSAGE, swapped, proof)
    repeated = [((public[0][0][1], *public[0][0][1:]), public[0][1]), public[1]]
    assert not proofs.check_spend_proof(TXID, MESSAGE, repeated, proof)
    with pytest.raises(CryptoError):
        SpendProof.decode(text, [4, 3])


def test_spend_proof_refuses_a_key_not_in_the_ring() -> None:
    _, inputs = _spend_setup()
    with pytest.raises(CryptoError):
        proofs.prove_spend(TXID, MESSAGE, [replace(inputs[0], secret_index=0)])


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300), st.lists(st.integers(-1, 3), min_size=0, max_size=3))
def test_spend_proof_decoder_gives_value_or_crypto_error(text: str, sizes: list[int]) -> None:
    try:
        proof = SpendProof.decode("SpendProofV1" + text, sizes)
    except CryptoError:
        return
    assert SpendProof.decode(proof.encode(), sizes) == proof


def test_audit_lists_exactly_the_wallets_outputs() -> None:
    alice, bob, _, outputs = scenario()
    # Two more transactions: one paying alice twice, one paying only bob.
    tx2, tx3 = TxSecret.generate(), TxSecret.generate()
    ledger = list(outputs)
    for tx, payees in [(tx2, [(alice, 5), (alice, 6), (bob, 1)]), (tx3, [(bob, 9)])]:
        for index, (wallet, amount) in enumerate(payees):
            sent = stealth.create_output(tx, wallet.address, index)
            info, _, commitment = ecdh.make_output(amount, sent.shared_secret)
            ledger.append(LedgerOutput(tx.public, index, sent.output, commitment, info))
    seen = proofs.audit(alice.view_keys, ledger)
    assert sorted(o.amount for o in seen) == [5, 6, 700]
    assert proofs.total(proofs.audit(bob.view_keys, ledger)) == 310
    assert proofs.audit(WalletKeys.generate().view_keys, ledger) == []
    corrupted = replace(ledger[0], commitment=ledger[1].commitment)
    assert proofs.audit(alice.view_keys, [corrupted]) == []


def test_key_image_type_is_checked() -> None:
    with pytest.raises(CryptoError):
        KeyImage.from_bytes(bytes(32))
