"""The market's ledger kinds on an in-memory ledger: offer, accept, cancel; their rules,
their encodings, and the wallet side (issue 7 items 3-4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from market_helpers import (
    CLOCK,
    CONSUMPTION,
    CONSUMPTION_ID,
    GATE,
    INTERVAL,
    MONEY_ID,
    NAMES,
    NETWORK,
    PRODUCTION,
    PRODUCTION_ID,
    T0,
    MarketChain,
    dso,
    funded,
    params,
)

from petranode.crypto.group import Point, Scalar
from petranode.crypto.keys import PublicAddress
from petranode.crypto.schnorr import generate_signature
from petranode.ledger.assets import Asset, AssetKind
from petranode.ledger.mempool import Mempool
from petranode.ledger.state import AppliedTx, LedgerSnapshot
from petranode.ledger.tx import Tx, encode_tx, prefix_digest, prefix_hash, tx_hash, validate_tx
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.ledger.wallet import OwnedOutput, Payment, build_transfer
from petranode.market.errors import (
    MarketReject,
    MarketTxRejected,
    ProofReject,
    ReputationProofRejected,
)
from petranode.market.reputation import (
    Credential,
    ReputationProof,
    TierList,
    epoch_credential_key,
)
from petranode.market.trade_builder import (
    OfferKeys,
    assemble_ring_tx,
    build_accept,
    build_cancel,
    build_offer,
    derive_offer_keys,
    scan_payouts,
    scan_public_outputs,
)
from petranode.market.trade_kinds import (
    MARKET_REGISTRY,
    Accept,
    Cancel,
    Offer,
    OfferGate,
    OfferState,
    OfferTerms,
    Side,
    Trade,
    cancel_message,
    cancel_outputs,
    cancel_prefix,
    nullifier,
    offer_prefix,
    public_output,
    public_tx_secret,
)
from petranode.net.identity import RouterKeys
from petranode.wire import codec

FAR = GATE + 10**9
#: ``OfferTerms(BUY, 10, 1500 W, 3 ¢, 2⁴⁰ ms, [10, 11], (2G, 3G), 5G, tier 0)``.
TERMS_HEX = (
    "9aa36275790acd05dc03cf00000100000000000a0b92"
    "c420c9a3f86aae465f0e56513864510f3997561fa2c9e85ea21dc2292309f3cd6022"
    "c420d4b4f5784868c3020403246717ec169ff79e26608ea126a1ab69ee77d1b16712"
    "c420edc876d6831fd2105d0b4389ca2e283166469289146e2ce06faefe98b22548df"
    "00"
)
#: The same terms gated at tier 7500: the last element is ``cd1d4c``.
GATED_TERMS_HEX = TERMS_HEX[:-2] + "cd1d4c"


def sell_offer(chain: MarketChain, power: int = 300, *, price: int = 3, fee: int = 0,
               expiry_ms: int = FAR, interval: int = INTERVAL, seed: int = 1,
               owned: Sequence[OwnedOutput] | None = None) -> tuple[Offer, OfferKeys]:
    w = chain.wallets["seller"]
    return build_offer(
        w.keys, w.unspent(PRODUCTION_ID) + w.unspent(MONEY_ID) if owned is None else owned,
        side=Side.SELL, interval=interval, power_w=power, price=price, expiry_ms=expiry_ms,
        energy=PRODUCTION, fee=fee, decoys=chain, opts=chain.opts(seed))


def buy_offer(chain: MarketChain, power: int = 200, *, price: int = 4,
              fee: int = 0) -> tuple[Offer, OfferKeys]:
    w = chain.wallets["buyer"]
    return build_offer(
        w.keys, w.unspent(CONSUMPTION_ID) + w.unspent(MONEY_ID), side=Side.BUY,
        interval=INTERVAL, power_w=power, price=price, expiry_ms=FAR, energy=CONSUMPTION,
        fee=fee, decoys=chain, opts=chain.opts(3))


def accept(chain: MarketChain, offer_id: bytes, power: int, *, fee: int = 0, seed: int = 2,
           owned: Sequence[OwnedOutput] | None = None) -> Accept:
    state = chain.book.offer(offer_id)
    assert state is not None
    selling = state.terms.side is Side.SELL
    w = chain.wallets["buyer" if selling else "seller"]
    energy = CONSUMPTION if selling else PRODUCTION
    if owned is None:
        owned = w.unspent(energy.asset_id) + w.unspent(MONEY_ID)
    tx, _ = build_accept(w.keys, owned, state, power_w=power, energy=energy, fee=fee,
                         decoys=chain, opts=chain.opts(seed))
    return tx


def market_refusal(reason: MarketReject, action: Callable[[], object]) -> None:
    with pytest.raises(MarketTxRejected) as info:
        action()
    assert info.value.reason is reason


def ledger_refusal(reason: TxReject, action: Callable[[], object]) -> None:
    with pytest.raises(TxRejected) as info:
        action()
    assert info.value.reason is reason


def offer_state(chain: MarketChain, offer_id: bytes) -> OfferState:
    state = chain.book.offer(offer_id)
    assert state is not None
    return state


# -- round trips ----------------------------------------------------------------------------------


def test_sell_offer_partial_fills_then_the_remainder() -> None:
    chain = funded()
    offer, keys = sell_offer(chain)
    assert MARKET_REGISTRY.decode(encode_tx(offer)) == offer
    chain.commit([offer])
    oid = tx_hash(offer)
    state = offer_state(chain, oid)
    assert (state.remaining_w, state.seq, state.escrow) == (300, 0, {PRODUCTION_ID: 300})
    assert chain.market_deltas[-1].opened == (state,)
    assert chain.wallets["seller"].balance(PRODUCTION_ID) == 2_000 - 300  # change came back

    first = accept(chain, oid, 100, fee=5)
    assert MARKET_REGISTRY.decode(encode_tx(first)) == first
    block = chain.commit([first])
    state = offer_state(chain, oid)
    assert (state.remaining_w, state.seq) == (200, 1)
    assert chain.market_deltas[-1].trades == (
        Trade(tx_hash(first), oid, INTERVAL, 100, 3, Side.SELL),)
    buyer = chain.wallets["buyer"]
    assert buyer.balance(MONEY_ID) == 10_000 - 300 - 5
    assert buyer.balance(CONSUMPTION_ID) == 2_000 - 100
    paid = scan_payouts(keys, oid, block)
    assert [(o.asset_id, o.amount) for o in paid] == [(MONEY_ID, 300)]

    rest = accept(chain, oid, 200, seed=4)
    block = chain.commit([rest])
    paid += scan_payouts(keys, oid, block)
    assert not offer_state(chain, oid).is_open
    assert offer_state(chain, oid).escrow == {}
    market_refusal(MarketReject.OFFER_CLOSED, lambda: chain.validate(accept(chain, oid, 1)))

    # The maker spends what its payout address received like any other output.
    sweep = build_transfer(keys.payout, paid, chain.wallets["seller"].keys.address, 900,
                           MONEY_ID, 0, chain, network_id=NETWORK, min_ring_size=4,
                           now=chain.now, unlock_time=0.0)
    before = chain.wallets["seller"].balance(MONEY_ID)
    chain.commit([sweep])
    assert chain.wallets["seller"].balance(MONEY_ID) == before + 900


def test_buy_offer_fill_pays_the_taker_from_escrow_and_cancel_returns_the_rest() -> None:
    chain = funded()
    offer, keys = buy_offer(chain)
    chain.commit([offer])
    oid = tx_hash(offer)
    assert offer_state(chain, oid).escrow == {CONSUMPTION_ID: 200, MONEY_ID: 800}
    assert chain.wallets["buyer"].balance(MONEY_ID) == 10_000 - 800

    seller = chain.wallets["seller"]
    state = offer_state(chain, oid)
    fill, proceeds_keys = build_accept(
        seller.keys, seller.unspent(PRODUCTION_ID), state, power_w=50, energy=PRODUCTION,
        fee=10, decoys=chain, opts=chain.opts(5))
    assert proceeds_keys is not None and fill.proceeds_to == proceeds_keys.address
    block = chain.commit([fill])
    [applied] = block.txs
    got = scan_public_outputs(proceeds_keys, applied, block.height)
    assert [(o.asset_id, o.amount) for o in got] == [(MONEY_ID, 4 * 50 - 10)]
    assert seller.balance(PRODUCTION_ID) == 2_000 - 50
    assert offer_state(chain, oid).escrow == {CONSUMPTION_ID: 150, MONEY_ID: 600}

    cancel = build_cancel(keys, offer_state(chain, oid), network_id=NETWORK)
    assert MARKET_REGISTRY.decode(encode_tx(cancel)) == cancel
    block = chain.commit([cancel])
    returned = scan_payouts(keys, oid, block)
    assert sorted((o.asset_id, o.amount) for o in returned) == sorted(
        [(CONSUMPTION_ID, 150), (MONEY_ID, 600)])
    assert chain.market_deltas[-1].cancelled == (oid,)
    assert offer_state(chain, oid).escrow == {}
    market_refusal(MarketReject.OFFER_CLOSED, lambda: chain.validate(accept(chain, oid, 1)))


# -- refusals -------------------------------------------------------------------------------------


def test_the_same_backing_offered_twice_is_refused() -> None:
    chain = funded()
    backing = chain.wallets["seller"].unspent(PRODUCTION_ID)[:1]
    first, _ = sell_offer(chain, owned=backing, seed=1)
    second, _ = sell_offer(chain, 200, owned=backing, seed=7)
    ledger_refusal(TxReject.KEY_IMAGE_CONFLICT, lambda: chain.commit([first, second]))
    chain.commit([first])
    ledger_refusal(TxReject.KEY_IMAGE_SPENT, lambda: chain.validate(second))


def test_offers_and_accepts_only_before_gate_closure_and_expiry() -> None:
    chain = funded()
    production = chain.wallets["seller"].unspent(PRODUCTION_ID)
    late, late_keys = sell_offer(chain, owned=production[:1])
    market_refusal(MarketReject.GATE_CLOSED, lambda: chain.validate(late, time_ms=GATE))
    short, _ = sell_offer(chain, 100, owned=production[1:], expiry_ms=T0 + 100_000, seed=3)
    chain.commit([late, short])
    oid, short_id = tx_hash(late), tx_hash(short)

    fill = accept(chain, oid, 100)
    chain.validate(fill, time_ms=GATE - 1)
    market_refusal(MarketReject.GATE_CLOSED, lambda: chain.validate(fill, time_ms=GATE))
    market_refusal(MarketReject.GATE_CLOSED, lambda: chain.commit([fill], time_ms=GATE + 5))
    market_refusal(MarketReject.OFFER_EXPIRED,
                   lambda: chain.validate(accept(chain, short_id, 50), time_ms=T0 + 100_000))
    # After gate closure the maker still reclaims what was not sold.
    # The builder's default nonce is the key image of the first input it chose, so a maker
    # re-derives its offer keys from its own outputs.
    backing = production[0].key_image.point.raw
    assert derive_offer_keys(chain.wallets["seller"].keys, backing) == late_keys
    chain.commit([build_cancel(late_keys, offer_state(chain, oid), network_id=NETWORK)],
                 time_ms=GATE + 10)
    assert offer_state(chain, oid).cancelled


def test_over_fill_and_two_fills_at_one_sequence_are_refused() -> None:
    chain = funded()
    offer, _ = sell_offer(chain)
    chain.commit([offer])
    oid = tx_hash(offer)
    market_refusal(MarketReject.OVER_FILL, lambda: chain.validate(accept(chain, oid, 301)))

    buyer = chain.wallets["buyer"]
    cons, money = buyer.unspent(CONSUMPTION_ID), buyer.unspent(MONEY_ID)
    one = accept(chain, oid, 100, owned=[cons[0], money[0]], seed=8)
    two = accept(chain, oid, 100, owned=[cons[1], money[1]], seed=9)
    assert set(one.key_images()) & set(two.key_images()) == {nullifier(oid, 0)}
    # Disjoint inputs, one nullifier: never both in a block or in a pool.
    ledger_refusal(TxReject.KEY_IMAGE_CONFLICT, lambda: chain.commit([one, two]))
    pool = Mempool(chain.params, registry=MARKET_REGISTRY)
    chain.view.time_ms = T0 + 10_000 * chain.ledger.height()
    pool.add(encode_tx(one), chain.view)
    ledger_refusal(TxReject.KEY_IMAGE_CONFLICT, lambda: pool.add(encode_tx(two), chain.view))
    chain.commit([one])
    market_refusal(MarketReject.STALE_SEQUENCE, lambda: chain.validate(two))


def test_cancel_by_the_wrong_key_or_to_another_address_is_refused() -> None:
    chain = funded()
    offer, keys = sell_offer(chain)
    chain.commit([offer])
    oid = tx_hash(offer)
    state = offer_state(chain, oid)
    outputs = cancel_outputs(state, 0)
    message = cancel_message(
        prefix_digest(Cancel.KIND, cancel_prefix(oid, 0, outputs), NETWORK), NETWORK)
    thief = derive_offer_keys(chain.wallets["buyer"].keys, b"nonce")
    forged = Cancel(oid, 0, outputs, generate_signature(message, thief.cancel_key,
                                                        thief.cancel_secret))
    market_refusal(MarketReject.BAD_CANCEL_SIGNATURE, lambda: chain.validate(forged))
    with pytest.raises(ValueError):
        build_cancel(thief, state, network_id=NETWORK)

    # Signed by the right key but paying someone else: the outputs are recomputed.
    elsewhere = (public_output(public_tx_secret(nullifier(oid, 0)), 0,
                               chain.wallets["buyer"].keys.address, PRODUCTION_ID, 300)[0],)
    message = cancel_message(
        prefix_digest(Cancel.KIND, cancel_prefix(oid, 0, elsewhere), NETWORK), NETWORK)
    redirected = Cancel(oid, 0, elsewhere,
                        generate_signature(message, keys.cancel_key, keys.cancel_secret))
    market_refusal(MarketReject.BAD_PUBLIC_OUTPUT, lambda: chain.validate(redirected))

    cancel = build_cancel(keys, state, network_id=NETWORK)
    block = chain.commit([cancel])
    assert [(o.asset_id, o.amount) for o in scan_payouts(keys, oid, block)] == [
        (PRODUCTION_ID, 300)]
    # Cancels are deterministic: the same one again is a replay; a later one finds it closed.
    again = build_cancel(keys, state, network_id=NETWORK)
    ledger_refusal(TxReject.ALREADY_ON_LEDGER, lambda: chain.validate(again))
    later = build_cancel(keys, dataclasses.replace(state, seq=1), network_id=NETWORK)
    market_refusal(MarketReject.OFFER_CLOSED, lambda: chain.validate(later))


def _forged_offer(chain: MarketChain, side: Side, escrowed: dict[bytes, int]) -> Offer:
    """An offer declaring ``side``'s usual escrow whose change keeps back only ``escrowed``."""
    name, energy = ("seller", PRODUCTION) if side is Side.SELL else ("buyer", CONSUMPTION)
    w = chain.wallets[name]
    spends = [w.unspent(energy.asset_id)[0]] + (
        [w.unspent(MONEY_ID)[0]] if side is Side.BUY else [])
    keys = derive_offer_keys(w.keys, b"forged")
    terms = OfferTerms(side, INTERVAL, 300, 3, FAR, INTERVAL, INTERVAL, keys.payout.address,
                       keys.cancel_key)
    change = [Payment(w.keys.address, s.asset_id, s.amount - escrowed[s.asset_id])
              for s in spends]
    parts = assemble_ring_tx(
        w.keys, spends, change, (),
        lambda inputs, hidden, r: offer_prefix(terms, inputs, hidden, r, 0),
        Offer.KIND, chain, network_id=NETWORK, min_ring_size=4, now=chain.now,
        unlock_time=0.0)
    return Offer(terms, parts.inputs, parts.hidden_outputs, parts.tx_public, 0,
                 parts.range_proof)


@pytest.mark.parametrize(("side", "escrowed"), [
    (Side.SELL, {PRODUCTION_ID: 299}),
    (Side.BUY, {CONSUMPTION_ID: 300, MONEY_ID: 899}),
])
def test_escrow_that_differs_from_the_terms_is_refused(side: Side,
                                                       escrowed: dict[bytes, int]) -> None:
    chain = funded()
    ledger_refusal(TxReject.IMBALANCED,
                   lambda: chain.validate(_forged_offer(chain, side, escrowed)))


def test_backing_of_the_wrong_asset_or_without_market_state_is_refused() -> None:
    chain = funded()
    # The production asset covers interval 10 only.
    wrong, _ = sell_offer(chain, interval=INTERVAL + 1)
    market_refusal(MarketReject.WRONG_ASSET, lambda: chain.validate(wrong))
    offer, _ = sell_offer(chain)
    market_refusal(MarketReject.NO_MARKET_STATE,
                   lambda: validate_tx(offer, LedgerSnapshot(), params()))
    with pytest.raises(ValueError):
        w = chain.wallets["seller"]
        build_offer(w.keys, w.unspent(PRODUCTION_ID), side=Side.SELL, interval=INTERVAL,
                    power_w=1, price=1, expiry_ms=FAR, energy=Asset(CONSUMPTION.kind, 10, 10),
                    fee=0, decoys=chain, opts=chain.opts())


def test_the_payout_address_is_derived_and_unlinkable() -> None:
    chain = funded()
    w = chain.wallets["seller"]
    one, other = derive_offer_keys(w.keys, b"a"), derive_offer_keys(w.keys, b"b")
    assert one == derive_offer_keys(w.keys, b"a")
    addresses = {w.keys.address, one.payout.address, other.payout.address}
    assert len({a.spend.raw for a in addresses} | {a.view.raw for a in addresses}) == 6
    assert one.cancel_key != other.cancel_key


# -- encodings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tier", "expected"), [(0, TERMS_HEX), (7500, GATED_TERMS_HEX)])
def test_offer_terms_exact_bytes(tier: int, expected: str) -> None:
    terms = OfferTerms(Side.BUY, 10, 1500, 3, 2**40, 10, 11,
                       PublicAddress(Scalar.from_int(2).mul_base(),
                                     Scalar.from_int(3).mul_base()),
                       Scalar.from_int(5).mul_base(), tier)
    encoded = codec.encode(terms.to_value())
    assert encoded.hex() == expected
    assert OfferTerms.from_value(codec.decode_canonical(encoded, max_size=256)) == terms
    consumption = Asset(AssetKind.CONSUMPTION, 10, 11).asset_id
    assert terms.escrow(1500) == {consumption: 1500, MONEY_ID: 4500}



@dataclass
class _Scenario:
    chain: MarketChain
    txs: dict[str, bytes]


@cache
def _scenario() -> _Scenario:
    """One committed SELL offer, and a valid new offer, accept and cancel against it."""
    chain = funded()
    production = chain.wallets["seller"].unspent(PRODUCTION_ID)
    offer, keys = sell_offer(chain, owned=production[:1])
    chain.commit([offer])
    state = offer_state(chain, tx_hash(offer))
    txs: dict[str, Tx] = {
        "offer": sell_offer(chain, 100, owned=production[1:], seed=11)[0],
        "accept": accept(chain, state.offer_id, 100, fee=3),
        "cancel": build_cancel(keys, state, network_id=NETWORK),
    }
    for tx in txs.values():
        chain.validate(tx)
    return _Scenario(chain, {kind: encode_tx(tx) for kind, tx in txs.items()})


@pytest.mark.parametrize("kind", ["offer", "accept", "cancel"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_flipped_bit_anywhere_is_refused(kind: str, data: st.DataObject) -> None:
    scenario = _scenario()
    encoded = scenario.txs[kind]
    position = data.draw(st.integers(0, 8 * len(encoded) - 1), label="bit")
    flipped = bytearray(encoded)
    flipped[position // 8] ^= 1 << (position % 8)
    with pytest.raises((TxRejected, MarketTxRejected)):
        tx = MARKET_REGISTRY.decode(bytes(flipped))
        scenario.chain.validate(tx)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_to_a_transaction_or_tx_rejected(data: bytes) -> None:
    try:
        MARKET_REGISTRY.decode(data)
    except TxRejected:
        pass


@pytest.mark.parametrize("kind", ["offer", "accept", "cancel"])
def test_every_market_kind_round_trips_and_keeps_its_hash(kind: str) -> None:
    encoded = _scenario().txs[kind]
    tx = MARKET_REGISTRY.decode(encoded)
    assert tx.KIND == kind
    assert encode_tx(tx) == encoded
    for bad in (encoded + b"\x00", encoded[:-1]):
        with pytest.raises(TxRejected):
            MARKET_REGISTRY.decode(bad)


def test_the_book_refuses_two_acts_on_one_offer_in_one_block() -> None:
    scenario = _scenario()
    book = scenario.chain.book
    fill = MARKET_REGISTRY.decode(scenario.txs["accept"])
    cancel = MARKET_REGISTRY.decode(scenario.txs["cancel"])
    assert isinstance(fill, Accept)

    def applied(tx: Tx) -> AppliedTx:
        return AppliedTx(tx_hash(tx), encode_tx(tx), tx, (0,) * len(tx.outputs))

    delta = book.delta_for([applied(fill)])
    assert [t.power_w for t in delta.trades] == [100] and delta.opened == ()
    market_refusal(MarketReject.CONFLICT,
                   lambda: book.delta_for([applied(fill), applied(cancel)]))
    assert offer_state(scenario.chain, fill.offer_id).seq == 0  # delta_for changed nothing


# -- reputation-gated offers (SPEC §4.7) ------------------------------------------------------------

TIER = 5_000
#: The test chain's blocks (from T0) are in reputation epoch 1; GATE − 1 is in epoch 2.
EPOCH = CLOCK.epoch_at(T0)
LATE = GATE - 1


@cache
def credential(name: str) -> Credential:
    return Credential(Scalar.from_int(7_000 + NAMES.index(name)))


def tier_list(*names: str, epoch: int = EPOCH, tier: int = TIER,
              signer: RouterKeys | None = None) -> TierList:
    """The list of ``tier`` for ``epoch``: both slots of each named prosumer."""
    members = [epoch_credential_key(credential(n).public, NETWORK, epoch, slot).raw
               for n in names for slot in (0, 1)]
    return TierList.issue(dso() if signer is None else signer, NETWORK, epoch=epoch, tier=tier,
                          members=members)


def gated_offer(chain: MarketChain, listed: TierList, *, tier: int = TIER, maker: str = "seller",
                gate: bool = True, slot: int = 0, seed: int = 1) -> Offer:
    w = chain.wallets["seller"]
    offer, _ = build_offer(
        w.keys, w.unspent(PRODUCTION_ID), side=Side.SELL, interval=INTERVAL, power_w=300,
        price=3, expiry_ms=FAR, energy=PRODUCTION, fee=0, decoys=chain, opts=chain.opts(seed),
        tier=tier, gate=(credential(maker), listed) if gate else None, gate_slot=slot)
    return offer


def test_a_gated_offer_from_a_listed_prosumer_is_valid_applies_and_filters() -> None:
    chain = funded()
    listed = tier_list("buyer", "seller", "filler")
    offer = gated_offer(chain, listed, slot=1)
    assert offer.gate is not None and offer.gate.tier_list == listed
    assert offer.gate.proof.ring_size == 6
    assert MARKET_REGISTRY.decode(encode_tx(offer)) == offer
    plain, _ = buy_offer(chain)
    chain.commit([offer, plain])
    gated = [o for o in chain.book.offers() if o.terms.tier >= TIER]  # a buyer's filter
    assert [o.offer_id for o in gated] == [tx_hash(offer)]
    assert offer_state(chain, tx_hash(offer)).terms.tier == TIER
    # An accept of a gated offer is an ordinary accept.
    chain.commit([accept(chain, tx_hash(offer), 100)])
    assert offer_state(chain, tx_hash(offer)).remaining_w == 200


def test_a_prosumer_not_in_the_tier_cannot_build_a_gated_offer() -> None:
    chain = funded()
    with pytest.raises(ReputationProofRejected) as info:
        gated_offer(chain, tier_list("buyer", "filler"))
    assert info.value.reason is ProofReject.NOT_IN_TIER
    with pytest.raises(ReputationProofRejected):  # the DSO lists slots 0 and 1 only
        gated_offer(chain, tier_list("seller", "filler"), slot=2)


def test_a_gated_offer_with_a_flipped_proof_bit_or_another_offers_proof_is_refused() -> None:
    chain = funded()
    listed = tier_list("buyer", "seller")
    offer = gated_offer(chain, listed)
    assert offer.gate is not None
    proof = offer.gate.proof
    for bit in (0, 8 * 40 + 3, 8 * len(proof.signature) - 1):
        signature = bytearray(proof.signature)
        signature[bit // 8] ^= 1 << (bit % 8)
        bad = dataclasses.replace(proof, signature=bytes(signature))
        forged = dataclasses.replace(offer, gate=OfferGate(listed, bad))
        market_refusal(MarketReject.BAD_REPUTATION_PROOF, lambda f=forged: chain.validate(f))
    # A valid proof of one offer does not gate another: it signs the prefix hash.
    other = gated_offer(chain, listed, seed=9)
    assert prefix_hash(other, NETWORK) != prefix_hash(offer, NETWORK)
    moved = dataclasses.replace(other, gate=offer.gate)
    market_refusal(MarketReject.BAD_REPUTATION_PROOF, lambda: chain.validate(moved))
    chain.validate(offer)


def test_a_tier_list_not_signed_by_the_dso_is_refused() -> None:
    chain = funded()
    rogue = tier_list("buyer", "seller", signer=RouterKeys.generate())
    market_refusal(MarketReject.BAD_TIER_LIST,
                   lambda: chain.validate(gated_offer(chain, rogue)))


def test_only_a_tier_list_of_the_blocks_epoch_or_the_one_before_is_accepted() -> None:
    chain = funded()
    assert (EPOCH, CLOCK.epoch_at(LATE)) == (1, 2)
    current = gated_offer(chain, tier_list("seller", epoch=EPOCH))
    previous = gated_offer(chain, tier_list("seller", epoch=EPOCH - 1))
    ahead = gated_offer(chain, tier_list("seller", epoch=EPOCH + 1))
    chain.validate(current)
    chain.validate(previous)  # published at the boundary, still in flight
    market_refusal(MarketReject.STALE_TIER_LIST, lambda: chain.validate(ahead))
    chain.validate(current, time_ms=LATE)
    market_refusal(MarketReject.STALE_TIER_LIST,
                   lambda: chain.validate(previous, time_ms=LATE))
    chain.validate(ahead, time_ms=LATE)


def test_tier_and_gate_must_agree() -> None:
    chain = funded()
    listed = tier_list("seller")
    market_refusal(MarketReject.GATE_MISSING,
                   lambda: chain.validate(gated_offer(chain, listed, gate=False)))
    market_refusal(MarketReject.GATE_UNEXPECTED,
                   lambda: chain.validate(gated_offer(chain, listed, tier=0)))
    market_refusal(MarketReject.TIER_MISMATCH,
                   lambda: chain.validate(gated_offer(chain, listed, tier=2_500)))
    # A relay stripping the gate leaves an offer that claims a tier it does not prove.
    offer = gated_offer(chain, listed)
    market_refusal(MarketReject.GATE_MISSING,
                   lambda: chain.validate(dataclasses.replace(offer, gate=None)))
    with pytest.raises(TxRejected):
        dataclasses.replace(offer.terms, tier=2**32)


_points = st.integers(1, 2**64).map(lambda k: Scalar.from_int(k).mul_base())


@settings(max_examples=50, deadline=None)
@given(side=st.sampled_from(Side), interval=st.integers(0, 2**63 - 1),
       power=st.integers(1, 2**32 - 1), price=st.integers(1, 2**32 - 1),
       expiry=st.integers(0, 2**63 - 1), tier=st.integers(0, 2**32 - 1),
       keys=st.tuples(_points, _points, _points))
def test_offer_terms_with_a_tier_round_trip(side: Side, interval: int, power: int, price: int,
                                            expiry: int, tier: int,
                                            keys: tuple[Point, Point, Point]) -> None:
    terms = OfferTerms(side, interval, power, price, expiry, interval, interval,
                       PublicAddress(keys[0], keys[1]), keys[2], tier)
    encoded = codec.encode(terms.to_value())
    assert OfferTerms.from_value(codec.decode_canonical(encoded, max_size=256)) == terms


@settings(max_examples=30, deadline=None)
@given(epoch=st.integers(0, 2**63 - 1), tier=st.integers(0, 2**32 - 1),
       members=st.lists(_points, min_size=1, max_size=8), image=_points,
       signature=st.binary(min_size=64, max_size=64), pairs=st.binary(min_size=64, max_size=64))
def test_offer_gate_round_trips(epoch: int, tier: int, members: list[Point], image: Point,
                                signature: bytes, pairs: bytes) -> None:
    listed = TierList(epoch, tier, tuple(sorted({m.raw for m in members})), signature)
    ring = len(listed.members)
    proof = ReputationProof(epoch, tier, listed.list_id, image.raw, pairs * ring)
    gate = OfferGate(listed, proof)
    encoded = codec.encode(gate.to_value())
    assert OfferGate.from_value(codec.decode_canonical(encoded, max_size=2**16)) == gate


@cache
def _gated_encoding() -> tuple[MarketChain, bytes]:
    chain = funded()
    offer = gated_offer(chain, tier_list("buyer", "seller"))
    chain.validate(offer)
    return chain, encode_tx(offer)


_garbage_gate = st.one_of(
    st.binary(max_size=64),
    st.lists(st.binary(max_size=200), min_size=0, max_size=3),
    st.integers(-(2**63), 2**64 - 1),
    st.tuples(st.binary(max_size=64), st.binary(max_size=64)).map(list),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=_garbage_gate)
def test_garbage_gate_bytes_decode_to_tx_rejected_only(garbage: object) -> None:
    _, encoded = _gated_encoding()
    version, kind, prefix, witness = codec.decode_canonical(encoded, max_size=2**17)
    witness[2] = garbage
    with pytest.raises(TxRejected):
        MARKET_REGISTRY.decode(codec.encode([version, kind, prefix, witness]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_flipped_bit_anywhere_in_a_gated_offer_is_refused(data: st.DataObject) -> None:
    chain, encoded = _gated_encoding()
    gate = MARKET_REGISTRY.decode(encoded).witness_fields()[2]
    # Half the draws land in the gate (the encoding's tail), where the list and proof are.
    lo = data.draw(st.sampled_from([0, len(encoded) - len(codec.encode(gate))]), label="region")
    position = data.draw(st.integers(8 * lo, 8 * len(encoded) - 1), label="bit")
    flipped = bytearray(encoded)
    flipped[position // 8] ^= 1 << (position % 8)
    with pytest.raises(TxRejected):
        chain.validate(MARKET_REGISTRY.decode(bytes(flipped)))
