"""Transactions: exact bytes, decoders (value or TxRejected), and every validation tier."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import (
    ENERGY,
    NETWORK,
    Funded,
    det_rng,
    dso,
    forge_transfer,
    funded,
    params,
    pay,
    wallet_keys,
)

from petranode.crypto import bpplus
from petranode.crypto.clsag import Clsag
from petranode.crypto.ecdh import EcdhInfo, open_output
from petranode.crypto.group import ONE, G, Scalar
from petranode.crypto.keys import WalletKeys
from petranode.crypto.pedersen import H
from petranode.crypto.stealth import StealthOutput, scan_transaction
from petranode.genesis import Authority, Dso, Genesis, Validator
from petranode.genesis import Params as GenesisParams
from petranode.ledger.assets import MONEY, Asset, AssetKind
from petranode.ledger.state import LedgerSnapshot, OutputRecord
from petranode.ledger.tx import (
    BASE_REGISTRY,
    MAX_TX_BYTES,
    Issuance,
    LedgerParams,
    Transfer,
    Tx,
    TxOutput,
    decode_ring,
    encode_ring,
    encode_tx,
    prefix_hash,
    tx_hash,
    validate_tx,
)
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.ledger.wallet import Payment, build_issuance
from petranode.net.identity import RouterKeys
from petranode.wire import codec

MONEY_ID = MONEY.asset_id

# -- exact bytes ----------------------------------------------------------------------------

def test_asset_exact_bytes_both_ways() -> None:
    assert MONEY.encode().hex() == "9401a56d6f6e6579c0c0"
    assert MONEY.asset_id.hex() == (
        "c2787fe9472eb859bdef7eb1abbe09f2f927c3c05a790f4579bd5ae85cbc3d5e"
    )
    production = Asset(AssetKind.PRODUCTION, 3, 5)
    assert production.encode().hex() == "9401aa70726f64756374696f6e0305"
    consumption = Asset(AssetKind.CONSUMPTION, 0, 2**32)
    assert consumption.encode().hex() == "9401ab636f6e73756d7074696f6e00cf0000000100000000"
    for asset in (MONEY, production, consumption):
        assert Asset.decode(asset.encode()) == asset
        assert asset.asset_id == hashlib.sha256(asset.encode()).digest()
    assert MONEY.kind.unit == "cent" and production.kind.unit == "W"


@pytest.mark.parametrize(
    ("hex_bytes", "reason"),
    [
        ("9402a56d6f6e6579c0c0", TxReject.UNSUPPORTED_VERSION),
        ("9401a56d6f6e657901c0", TxReject.MALFORMED),  # money with an interval
        ("9401aa70726f64756374696f6e0503", TxReject.MALFORMED),  # first > last
        ("9401a3666f6fc0c0", TxReject.MALFORMED),  # unknown kind
        ("9401a56d6f6e6579c0", TxReject.MALFORMED),  # short
        ("9401aa70726f64756374696f6e00d00005", TxReject.MALFORMED),  # non-canonical int
    ],
)
def test_asset_refusals(hex_bytes: str, reason: TxReject) -> None:
    with pytest.raises(TxRejected) as info:
        Asset.decode(bytes.fromhex(hex_bytes))
    assert info.value.reason is reason


@st.composite
def assets(draw: st.DrawFn) -> Asset:
    kind = draw(st.sampled_from(AssetKind))
    if kind is AssetKind.MONEY:
        return MONEY
    first = draw(st.integers(0, 2**63 - 1))
    return Asset(kind, first, draw(st.integers(first, 2**63 - 1)))


@given(assets())
def test_asset_round_trip(asset: Asset) -> None:
    assert Asset.decode(asset.encode()) == asset


@given(st.binary(max_size=80))
def test_asset_arbitrary_bytes(data: bytes) -> None:
    try:
        asset = Asset.decode(data)
    except TxRejected:
        return
    assert asset.encode() == data


G_HEX = "58" + "66" * 31
H_HEX = "8b655970153799af2aeadc9ff1add0ea6c7251d54154cfa92c173a0dd39c1f94"


def test_output_exact_bytes_both_ways() -> None:
    output = TxOutput(MONEY_ID, G, 7, H, EcdhInfo(bytes(range(8))))
    expected = (
        "95c420" + MONEY_ID.hex() + "c420" + G_HEX + "07c420" + H_HEX + "c408" + "0001020304050607"
    )
    assert codec.encode(output.to_value()).hex() == expected
    assert TxOutput.from_value(codec.decode(bytes.fromhex(expected), max_size=200)) == output


@given(st.integers(1, 2**32), st.integers(1, 2**32), st.integers(0, 255), st.binary(min_size=8, max_size=8))
def test_output_round_trip(k: int, m: int, tag: int, ecdh: bytes) -> None:
    key = Scalar.from_int(k).mul_base()
    output = TxOutput(hashlib.sha256(ecdh).digest(), key, tag, Scalar.from_int(m) * H,
                      EcdhInfo(ecdh[:8]))
    assert TxOutput.from_value(codec.decode(codec.encode(output.to_value()), max_size=300)) == output


def test_ring_offsets_table() -> None:
    assert encode_ring([5, 9, 10, 400]) == [5, 4, 1, 390]
    assert decode_ring([5, 4, 1, 390]) == (5, 9, 10, 400)
    assert encode_ring([0]) == [0]


@given(st.sets(st.integers(0, 2**40), min_size=1, max_size=64))
def test_ring_offsets_round_trip(members: set[int]) -> None:
    ring = sorted(members)
    offsets = encode_ring(ring)
    assert all(o >= 1 for o in offsets[1:])
    assert decode_ring(offsets) == tuple(ring)


def _vector_issuance() -> Issuance:
    keys = RouterKeys.from_secrets(signing_seed=bytes(range(32)),
                                   static_secret=bytes(range(32, 64)))
    alice = WalletKeys.from_spend_secret(Scalar.from_int(12345))
    return build_issuance(keys, [Payment(alice.address, MONEY_ID, 1500)], network_id=NETWORK,
                          rng=det_rng(b"vector"))


def test_issuance_vector_is_pinned() -> None:
    """A deterministic issuance: the encoding, hash and prefix hash must never drift."""
    tx = _vector_issuance()
    data = encode_tx(tx)
    assert len(data) == 807
    # [1, "issuance", [[[asset id, …
    assert data[:24].hex() == "9401a869737375616e6365929195c420c2787fe9472eb859"
    assert tx_hash(tx).hex() == "b03b180c838b75a913e90d09035715b8b1246e474eb02e404b8644ca0aa5c65a"
    assert prefix_hash(tx, NETWORK).hex() == (
        "f0aa27b91f0ed15a32a081a556e1817e4d2a41c8165c1f65fb95bc3f97682000"
    )
    assert prefix_hash(tx, "other-net") != prefix_hash(tx, NETWORK)
    assert BASE_REGISTRY.decode(data) == tx


def test_a_re_proved_range_proof_breaks_the_signature() -> None:
    """The recipient of a one-output issuance knows its mask and can make a second valid
    proof; the DSO's signature covers the proof, so the copy (another tx hash) is refused."""
    tx = _vector_issuance()
    alice = WalletKeys.from_spend_secret(Scalar.from_int(12345))
    [received] = scan_transaction(
        alice.view_keys, tx.tx_public,
        [StealthOutput(o.one_time_key, o.view_tag) for o in tx.outputs],
    )
    amount, mask = open_output(tx.outputs[0].ecdh, received.shared_secret,
                               tx.outputs[0].commitment)
    _, proof = bpplus.prove([amount], [mask])
    assert bpplus.verify([tx.outputs[0].commitment], proof) and proof != tx.range_proof
    copy = dataclasses.replace(tx, range_proof=proof)
    assert tx_hash(copy) != tx_hash(tx) and prefix_hash(copy, NETWORK) == prefix_hash(tx, NETWORK)
    vector_dso = RouterKeys.from_secrets(signing_seed=bytes(range(32)),
                                         static_secret=bytes(range(32, 64)))
    p = LedgerParams(NETWORK, vector_dso.signing_key, min_ring_size=4)
    validate_tx(tx, LedgerSnapshot(), p)
    with pytest.raises(TxRejected) as info:
        validate_tx(copy, LedgerSnapshot(), p)
    assert info.value.reason is TxReject.NOT_DSO


# -- decoding transfers -------------------------------------------------------------------


@cache
def _ledger() -> Funded:
    return funded()


@cache
def _transfer() -> Transfer:
    tx = pay(_ledger(), "a", "b", 250)
    assert isinstance(tx, Transfer)
    return tx


@cache
def _transfer_bytes() -> bytes:
    return encode_tx(_transfer())


def test_transfer_round_trip() -> None:
    tx = _transfer()
    data = encode_tx(tx)
    decoded = BASE_REGISTRY.decode(data)
    assert decoded == tx and encode_tx(decoded) == data
    assert data[:1] == b"\x94" and codec.decode(data, max_size=MAX_TX_BYTES)[:2] == [1, "transfer"]


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_tx_or_tx_rejected(data: bytes) -> None:
    try:
        tx = BASE_REGISTRY.decode(data)
    except TxRejected:
        return
    assert encode_tx(tx) == data


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_transfer_gives_a_tx_or_tx_rejected(data: st.DataObject) -> None:
    original = bytearray(_transfer_bytes())
    position = data.draw(st.integers(0, len(original) - 1))
    original[position] ^= data.draw(st.integers(1, 255))
    try:
        tx = BASE_REGISTRY.decode(bytes(original))
    except TxRejected:
        return
    assert encode_tx(tx) == bytes(original)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_truncated_transfer_is_rejected(data: st.DataObject) -> None:
    whole = _transfer_bytes()
    cut = data.draw(st.integers(0, len(whole) - 1))
    with pytest.raises(TxRejected) as info:
        BASE_REGISTRY.decode(whole[:cut])
    assert info.value.reason is TxReject.MALFORMED


def _reencode(fields: list[codec.Value]) -> bytes:
    return codec.encode(fields)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: [2, *f[1:]], TxReject.UNSUPPORTED_VERSION),
        (lambda f: [f[0], "offer", *f[2:]], TxReject.UNKNOWN_KIND),
        (lambda f: f[:3], TxReject.MALFORMED),
        (lambda f: [*f[:3], [[], f[3][1]]], TxReject.MALFORMED),  # no CLSAG for the input
    ],
)
def test_envelope_refusals(
    mutate: Callable[[list[codec.Value]], list[codec.Value]], reason: TxReject
) -> None:
    fields = codec.decode(_transfer_bytes(), max_size=MAX_TX_BYTES)
    assert isinstance(fields, list)
    with pytest.raises(TxRejected) as info:
        BASE_REGISTRY.decode(_reencode(mutate(fields)))
    assert info.value.reason is reason


def test_oversized_and_non_canonical_are_refused() -> None:
    with pytest.raises(TxRejected) as info:
        BASE_REGISTRY.decode(b"\x00" * (MAX_TX_BYTES + 1))
    assert info.value.reason is TxReject.OVERSIZED
    # The version as a 2-byte uint8 instead of a fixint: same value, another encoding.
    data = _transfer_bytes()
    with pytest.raises(TxRejected) as info:
        BASE_REGISTRY.decode(b"\x94\xcc\x01" + data[2:])
    assert info.value.reason is TxReject.MALFORMED


def test_zero_ring_offset_is_malformed() -> None:
    fields = codec.decode(_transfer_bytes(), max_size=MAX_TX_BYTES)
    assert isinstance(fields, list)
    ring = fields[2][0][0][1]  # type: ignore[index]
    ring[1] = 0  # a repeated member
    with pytest.raises(TxRejected) as info:
        BASE_REGISTRY.decode(codec.encode(fields))
    assert info.value.reason is TxReject.MALFORMED


def test_registry_takes_new_kinds_without_changing_the_base() -> None:
    @dataclasses.dataclass(frozen=True)
    class Probe:
        KIND = "probe"

    def decode_probe(prefix: codec.Value, witness: codec.Value) -> Tx:
        raise TxRejected(TxReject.MALFORMED, "probe")

    extended = BASE_REGISTRY.with_kind("probe", decode_probe)
    assert "probe" in extended.decoders and "probe" not in BASE_REGISTRY.decoders
    with pytest.raises(ValueError, match="already registered"):
        extended.with_kind("transfer", decode_probe)
    data = codec.encode([1, "probe", [], []])
    with pytest.raises(TxRejected) as info:
        BASE_REGISTRY.decode(data)
    assert info.value.reason is TxReject.UNKNOWN_KIND
    with pytest.raises(TxRejected) as info:
        extended.decode(data)
    assert info.value.reason is TxReject.MALFORMED


# -- validate_basic -------------------------------------------------------------------------


def _reason(tx: Tx, view: LedgerSnapshot | None = None, p: LedgerParams | None = None
            ) -> TxReject:
    with pytest.raises(TxRejected) as info:
        validate_tx(tx, _ledger().chain.view if view is None else view, p or params())
    return info.value.reason


def test_honest_transfer_validates() -> None:
    validate_tx(_transfer(), _ledger().chain.view, params())


def test_duplicate_key_image_within_a_tx() -> None:
    tx = _transfer()
    doubled = dataclasses.replace(tx, inputs=(tx.inputs[0], tx.inputs[0]))
    assert _reason(doubled) is TxReject.DUPLICATE_KEY_IMAGE


def test_ring_below_the_network_minimum() -> None:
    assert _reason(_transfer(), p=params(min_ring_size=5)) is TxReject.BAD_RING_SIZE


def test_unsorted_ring_is_refused_on_construction() -> None:
    inp = _transfer().inputs[0]
    with pytest.raises(TxRejected) as info:
        dataclasses.replace(inp, ring=tuple(reversed(inp.ring)))
    assert info.value.reason is TxReject.RING_NOT_SORTED


def test_output_of_an_asset_no_input_spends() -> None:
    tx = _transfer()
    stray = dataclasses.replace(tx.outputs[0], asset_id=ENERGY.asset_id)
    forged = dataclasses.replace(tx, outputs=(stray, *tx.outputs[1:]))
    assert _reason(forged) is TxReject.IMBALANCED


# -- signatures and proofs ------------------------------------------------------------------


def test_flipped_clsag_bit_is_refused() -> None:
    tx = _transfer()
    inp = tx.inputs[0]
    raw = bytearray(inp.signature.encode())
    raw[0] ^= 1  # lowest bit of s_0: still a canonical scalar
    bad = dataclasses.replace(inp, signature=Clsag.decode(bytes(raw), len(inp.ring)))
    assert _reason(dataclasses.replace(tx, inputs=(bad, *tx.inputs[1:]))) is (
        TxReject.BAD_RING_SIGNATURE
    )


def test_invalid_range_proof_is_refused() -> None:
    tx = _transfer()
    proof = dataclasses.replace(tx.range_proof, r1=tx.range_proof.r1 + ONE)
    assert _reason(dataclasses.replace(tx, range_proof=proof)) is TxReject.BAD_RANGE_PROOF


def test_imbalanced_amounts_are_refused() -> None:
    f = funded()
    # 1000 in: 990 + 10 fee balances; 995 + 10 creates 5 cents.
    validate_tx(forge_transfer(f, "a", "b", [600, 390], 10), f.chain.view, params())
    assert _reason(forge_transfer(f, "a", "b", [600, 395], 10), f.chain.view) is (
        TxReject.IMBALANCED
    )


def test_fee_is_part_of_the_signed_prefix() -> None:
    tx = _transfer()
    assert _reason(dataclasses.replace(tx, fee=tx.fee - 1)) in (
        TxReject.IMBALANCED, TxReject.BAD_RING_SIGNATURE,
    )


def test_non_dso_issuance_is_refused() -> None:
    payment = [Payment(wallet_keys("a").address, MONEY_ID, 10**6)]
    forged = build_issuance(RouterKeys.generate(), payment, network_id=NETWORK)
    assert _reason(forged) is TxReject.NOT_DSO
    other_net = build_issuance(dso(), payment, network_id="another-network")
    assert _reason(other_net) is TxReject.NOT_DSO
    genuine = build_issuance(dso(), payment, network_id=NETWORK)
    validate_tx(genuine, _ledger().chain.view, params())
    bad_sig = dataclasses.replace(genuine, dso_signature=bytes(64))
    assert _reason(bad_sig) is TxReject.NOT_DSO


# -- stateful checks -------------------------------------------------------------------------


def test_ring_member_of_another_asset_fails_the_ring_signature() -> None:
    """The signer puts an energy output into a money ring: the verifier reads money output k
    where the signer used energy output k, so the CLSAG fails."""
    f = funded()
    chain = f.chain

    class Mixed:
        def output_times(self, asset_id: bytes) -> list[float]:
            return chain.output_times(asset_id)

        def output(self, asset_id: bytes, index: int) -> OutputRecord | None:
            real = {o.global_index for o in f.wallets["a"].unspent(asset_id)}
            if index not in real and chain.output(ENERGY.asset_id, index % 5) is not None:
                return chain.output(ENERGY.asset_id, index % 5)
            return chain.output(asset_id, index)

    tx = pay(f, "a", "b", 100, decoys=Mixed())
    assert _reason(tx, chain.view) is TxReject.BAD_RING_SIGNATURE


def test_view_returning_another_asset_is_refused() -> None:
    view = _ledger().chain.view
    energy = ENERGY.asset_id

    class Lying(LedgerSnapshot):
        def output(self, asset_id: bytes, index: int) -> OutputRecord | None:
            record = view.output(asset_id, index)
            return record if record is None else dataclasses.replace(record, asset_id=energy)

    lying = Lying(view.height(), view.outputs_of(MONEY_ID), {MONEY_ID: 16})
    assert _reason(_transfer(), lying) is TxReject.RING_ASSET_MISMATCH


def test_unknown_ring_member() -> None:
    tx = _transfer()
    inp = tx.inputs[0]
    beyond = dataclasses.replace(inp, ring=(*inp.ring[:-1], 10_000))
    assert _reason(dataclasses.replace(tx, inputs=(beyond,))) is TxReject.UNKNOWN_RING_MEMBER


def test_immature_ring_member() -> None:
    # Funding blocks are at heights 1 and 2; with spendable_age 3 nothing is old enough yet.
    assert _reason(_transfer(), p=params(spendable_age=3)) is TxReject.IMMATURE_RING_MEMBER


def test_spent_key_image_and_replayed_tx() -> None:
    view = _ledger().chain.view
    tx = _transfer()
    spent = LedgerSnapshot(view.height(), view.outputs_of(MONEY_ID), {MONEY_ID: 16},
                           spent=tx.key_images())
    assert _reason(tx, spent) is TxReject.KEY_IMAGE_SPENT
    replayed = LedgerSnapshot(view.height(), (), {}, txs=[tx_hash(tx)])
    assert _reason(tx, replayed) is TxReject.ALREADY_ON_LEDGER


def test_params_from_genesis() -> None:
    keys = RouterKeys.generate()
    key = keys.signing_key
    genesis = Genesis(
        network_id=NETWORK, genesis_time=0, interval_s=60,
        authorities=(Authority("auth", key, key, "127.0.0.1", 1),),
        validators=(Validator("v0", key),), dso=Dso(dso().signing_key, key, key),
        params=GenesisParams(min_ring_size=11),
    )
    assert LedgerParams.from_genesis(genesis) == LedgerParams(
        NETWORK, dso().signing_key, min_ring_size=11
    )


def test_params_from_values_are_checked() -> None:
    with pytest.raises(ValueError):
        LedgerParams(NETWORK, bytes(31))
    with pytest.raises(ValueError):
        LedgerParams(NETWORK, bytes(32), min_ring_size=0)
