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
    CONSUMPTION,
    CONSUMPTION_ID,
    GATE,
    INTERVAL,
    MONEY_ID,
    NETWORK,
    PRODUCTION,
    PRODUCTION_ID,
    T0,
    MarketChain,
    funded,
    params,
)

from petranode.crypto.group import Scalar
from petranode.crypto.keys import PublicAddress
from petranode.crypto.schnorr import generate_signature
from petranode.ledger.assets import Asset, AssetKind
from petranode.ledger.mempool import Mempool
from petranode.ledger.state import AppliedTx, LedgerSnapshot
from petranode.ledger.tx import Tx, encode_tx, prefix_digest, tx_hash, validate_tx
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.ledger.wallet import OwnedOutput, Payment, build_transfer
from petranode.market.errors import MarketReject, MarketTxRejected
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
from petranode.wire import codec

FAR = GATE + 10**9
#: ``OfferTerms(BUY, 10, 1500 W, 3 ¢, 2⁴⁰ ms, [10, 11], (2G, 3G), 5G)``.
TERMS_HEX = (
    "99a36275790acd05dc03cf00000100000000000a0b92"
    "c420c9a3f86aae465f0e56513864510f3997561fa2c9e85ea21dc2292309f3cd6022"
    "c420d4b4f5784868c3020403246717ec169ff79e26608ea126a1ab69ee77d1b16712"
    "c420edc876d6831fd2105d0b4389ca2e283166469289146e2ce06faefe98b22548df"
)


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


def test_offer_terms_exact_bytes() -> None:
    terms = OfferTerms(Side.BUY, 10, 1500, 3, 2**40, 10, 11,
                       PublicAddress(Scalar.from_int(2).mul_base(),
                                     Scalar.from_int(3).mul_base()),
                       Scalar.from_int(5).mul_base())
    encoded = codec.encode(terms.to_value())
    assert encoded.hex() == TERMS_HEX
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
