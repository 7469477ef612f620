"""Meter delivery reports and the DSO's settlement desk: the record, its signatures, the
desk's refusals, settlement into debt and reputation, and persistence."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.group import Point, Scalar
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.delivery import (
    MAX_CLAIMS,
    MAX_REPORT_BYTES,
    DeliveryReport,
    DeskRows,
    OfferClaim,
    PendingRow,
    SettlementDesk,
    claim_message,
)
from petranode.market.errors import (
    DeliveryReject,
    DeliveryRejected,
    MarketRecordInvalid,
    RecordFault,
)
from petranode.market.meter import MeterKeys
from petranode.market.registry import MAX_POWER_W, Registration
from petranode.market.reputation import ReputationBook, ReputationPolicy
from petranode.market.settlement import SettlementTerms, ShortfallPolicy
from petranode.market.trade_kinds import Side, Trade
from petranode.net.identity import RouterKeys
from petranode.wire import codec

NETWORK = "petranode-test"
INTERVAL = 42
DSO = RouterKeys.from_secrets(signing_seed=bytes([1]) * 32, static_secret=bytes([1]) * 32)
CREDENTIAL = Scalar.from_int(99).mul_base().raw
POLICY = ReputationPolicy()
#: 2.5 cents per missing W·interval.
TERMS = SettlementTerms(penalty_millicents_per_w=2_500, policy=ShortfallPolicy.DEBT)
SIG = bytes(64)


def meter(n: int) -> MeterKeys:
    return MeterKeys(bytes([n]) * 32)


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def secret(label: str) -> Scalar:
    return Scalar.reduce(hashlib.sha512(label.encode()).digest())


class Ledger:
    """What the desk asks of the ledger and the registry: trades and cancel keys per offer,
    registered meters."""

    def __init__(self) -> None:
        self.trades: dict[bytes, list[Trade]] = {}
        self.cancel_keys: dict[bytes, Point] = {}
        self.meters: set[bytes] = set()

    def offer(self, label: str, *powers: int, side: Side = Side.SELL,
              interval: int = INTERVAL) -> tuple[bytes, Scalar]:
        """An offer filled by one trade per power; returns its id and cancel secret."""
        offer_id, cancel = digest(f"offer {label}"), secret(f"cancel {label}")
        self.cancel_keys[offer_id] = cancel.mul_base()
        self.trades[offer_id] = [
            Trade(digest(f"trade {label} {k}"), offer_id, interval, power, 10, side)
            for k, power in enumerate(powers)]
        return offer_id, cancel

    def trades_of(self, offer_id: bytes) -> Sequence[Trade]:
        return self.trades.get(offer_id, [])

    def cancel_key_of(self, offer_id: bytes) -> Point | None:
        return self.cancel_keys.get(offer_id)

    def registered(self, meter_key: bytes) -> bool:
        return meter_key in self.meters


class World:
    def __init__(self) -> None:
        self.ledger = Ledger()
        self.book = ReputationBook(POLICY)
        self.desk = SettlementDesk(TERMS, self.book)

    def prosumer(self, n: int) -> MeterKeys:
        keys = meter(n)
        self.ledger.meters.add(keys.meter_key)
        self.book.enroll(Registration.issue(
            DSO, NETWORK, meter_key=keys.meter_key, credential_key=CREDENTIAL,
            max_generation_w=10_000, max_consumption_w=10_000, feeder="F1"))
        return keys

    def submit(self, report: DeliveryReport) -> None:
        self.desk.accept_report(report, registered=self.ledger.registered,
                                trades_of=self.ledger.trades_of,
                                cancel_key_of=self.ledger.cancel_key_of, network_id=NETWORK)

    def refused(self, report: DeliveryReport) -> DeliveryReject:
        with pytest.raises(DeliveryRejected) as info:
            self.submit(report)
        return info.value.reason


def report(keys: MeterKeys, claims: Sequence[tuple[bytes, Scalar]], delivered_w: int, *,
           interval: int = INTERVAL) -> DeliveryReport:
    return DeliveryReport.create(keys, NETWORK, interval, claims, delivered_w)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- the record ---------------------------------------------------------------------------------

claims_st = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=MAX_CLAIMS,
                     unique=True).map(lambda ids: tuple(OfferClaim(i, SIG) for i in sorted(ids)))
reports_st = st.builds(
    DeliveryReport,
    interval=st.integers(0, MAX_INTERVAL),
    meter_key=st.sampled_from([meter(n).meter_key for n in range(2, 5)]),
    claims=claims_st,
    delivered_w=st.integers(0, MAX_POWER_W),
    signature=st.binary(min_size=64, max_size=64),
)


@settings(max_examples=60, deadline=None)
@given(reports_st)
def test_encoding_round_trips(rep: DeliveryReport) -> None:
    data = rep.encode()
    assert len(data) <= MAX_REPORT_BYTES
    assert DeliveryReport.decode(data) == rep


@settings(max_examples=10, deadline=None)
@given(st.integers(0, MAX_INTERVAL), st.integers(0, MAX_POWER_W), st.integers(1, 4))
def test_signed_report_round_trips_and_verifies(interval: int, delivered: int, n: int) -> None:
    ledger = Ledger()
    claims = [ledger.offer(f"{k}", 1) for k in range(n)]
    rep = report(meter(2), claims, delivered, interval=interval)
    decoded = DeliveryReport.decode(rep.encode())
    assert decoded == rep
    decoded.verify(NETWORK, ledger.cancel_key_of)
    assert rep.offer_ids == tuple(sorted(offer_id for offer_id, _ in claims))


def test_largest_report_fits_the_bound() -> None:
    claims = tuple(OfferClaim(bytes([k]) * 32, b"\xff" * 64) for k in range(MAX_CLAIMS))
    rep = DeliveryReport(MAX_INTERVAL, meter(2).meter_key, claims, MAX_POWER_W, b"\xff" * 64)
    assert len(rep.encode()) <= MAX_REPORT_BYTES < len(rep.encode()) + 128


def test_version_is_the_first_field() -> None:
    rep = report(meter(2), [Ledger().offer("a", 5)], 5)
    fields = codec.expect_list(codec.decode(rep.encode(), max_size=MAX_REPORT_BYTES))
    assert fields[0] == 1
    fields[0] = 2
    with pytest.raises(MarketRecordInvalid) as info:
        DeliveryReport.decode(codec.encode(fields))
    assert info.value.reason is RecordFault.UNSUPPORTED_VERSION


def _reencoded(rep: DeliveryReport, index: int, value: codec.Encodable) -> bytes:
    fields: list[codec.Encodable] = list(
        codec.expect_list(codec.decode(rep.encode(), max_size=MAX_REPORT_BYTES)))
    fields[index] = value
    return codec.encode(fields)


def _malformed(data: bytes) -> None:
    with pytest.raises(MarketRecordInvalid) as info:
        DeliveryReport.decode(data)
    assert info.value.reason is RecordFault.MALFORMED


def test_decoder_refuses_bad_shapes() -> None:
    ledger = Ledger()
    rep = report(meter(2), [ledger.offer("a", 5), ledger.offer("b", 5)], 5)
    claims = [c.to_value() for c in rep.claims]
    _malformed(_reencoded(rep, 3, []))  # no claims
    _malformed(_reencoded(rep, 3, list(reversed(claims))))  # not in offer-id order
    _malformed(_reencoded(rep, 3, [claims[0], claims[0]]))  # the same offer twice
    _malformed(_reencoded(rep, 3, [[rep.claims[0].offer_id, b"x" * 63]]))
    _malformed(_reencoded(rep, 2, bytes(32)))  # the identity is no meter key
    _malformed(_reencoded(rep, 4, MAX_POWER_W + 1))
    _malformed(_reencoded(rep, 1, -1))
    _malformed(rep.encode() + b"\x00")
    _malformed(bytes(MAX_REPORT_BYTES + 1))
    for cut in range(len(rep.encode())):
        _malformed(rep.encode()[:cut])


def test_too_many_claims_are_refused() -> None:
    too_many = [OfferClaim(k.to_bytes(32, "big"), SIG) for k in range(MAX_CLAIMS + 1)]
    with pytest.raises(ValueError):
        DeliveryReport(INTERVAL, meter(2).meter_key, tuple(too_many), 0, SIG)
    fields: list[codec.Encodable] = [1, INTERVAL, meter(2).meter_key,
                                     [c.to_value() for c in too_many], 0, SIG]
    _malformed(codec.encode(fields))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_REPORT_BYTES + 16))
def test_arbitrary_bytes_give_a_report_or_market_record_invalid(data: bytes) -> None:
    try:
        DeliveryReport.decode(data)
    except MarketRecordInvalid:
        pass


_VALID = report(meter(3), [Ledger().offer("fuzz", 7)], 7).encode()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_VALID) * 8 - 1), st.integers(0, len(_VALID)))
def test_mutated_reports_give_a_report_or_market_record_invalid(bit: int, cut: int) -> None:
    for data in (flip(_VALID, bit), _VALID[:cut], flip(_VALID, bit)[:cut]):
        try:
            DeliveryReport.decode(data)
        except MarketRecordInvalid:
            pass


# -- signatures ---------------------------------------------------------------------------------


def _bad_signature(rep: DeliveryReport, ledger: Ledger, network: str = NETWORK) -> None:
    with pytest.raises(MarketRecordInvalid) as info:
        rep.verify(network, ledger.cancel_key_of)
    assert info.value.reason is RecordFault.BAD_SIGNATURE


def test_flipped_bits_fail_verification() -> None:
    ledger = Ledger()
    rep = report(meter(2), [ledger.offer("a", 5), ledger.offer("b", 5)], 5)
    rep.verify(NETWORK, ledger.cancel_key_of)
    for bit in (0, 7, 255, 256, 511):
        _bad_signature(dataclasses.replace(rep, signature=flip(rep.signature, bit)), ledger)
        for k in range(len(rep.claims)):
            claims = list(rep.claims)
            claims[k] = OfferClaim(claims[k].offer_id, flip(claims[k].signature, bit))
            _bad_signature(dataclasses.replace(rep, claims=tuple(claims)), ledger)


def test_a_claim_by_another_cancel_key_fails() -> None:
    ledger = Ledger()
    offer_id, _ = ledger.offer("a", 5)
    rep = report(meter(2), [(offer_id, secret("someone else"))], 5)
    _bad_signature(rep, ledger)


def test_an_unknown_offer_or_another_network_fails() -> None:
    ledger = Ledger()
    rep = report(meter(2), [ledger.offer("a", 5)], 5)
    _bad_signature(rep, Ledger())
    _bad_signature(rep, ledger, network="another-network")


def test_a_claim_cannot_move_to_another_meter_or_interval() -> None:
    ledger = Ledger()
    offer_id, cancel = ledger.offer("a", 5)
    claim = OfferClaim.sign(NETWORK, meter(2).meter_key, INTERVAL, offer_id, cancel)
    thief = meter(3)
    for interval in (INTERVAL, INTERVAL + 1):
        body = DeliveryReport.body(interval, thief.meter_key, (claim,), 5)
        signature = thief.sign("petranode/market/delivery-report/v1", NETWORK,
                               codec.encode(body))
        _bad_signature(DeliveryReport(interval, thief.meter_key, (claim,), 5, signature), ledger)


def test_claim_message_binds_every_field() -> None:
    key, offer = meter(2).meter_key, digest("offer")
    base = claim_message(NETWORK, key, INTERVAL, offer)
    assert len({base, claim_message("other", key, INTERVAL, offer),
                claim_message(NETWORK, meter(3).meter_key, INTERVAL, offer),
                claim_message(NETWORK, key, INTERVAL + 1, offer),
                claim_message(NETWORK, key, INTERVAL, digest("other"))}) == 5


# -- the settlement desk ------------------------------------------------------------------------


def test_short_seller_pays_debt_and_loses_reputation() -> None:
    world = World()
    short, honest = world.prosumer(2), world.prosumer(3)
    world.submit(report(short, [world.ledger.offer("short", 1000)], 600))
    world.submit(report(honest, [world.ledger.offer("honest", 1000)], 1000))
    settlement = world.desk.settle(INTERVAL)

    by_seller = {o.prosumer: o for o in settlement.outcomes}
    assert by_seller[short.meter_key].shortfall_w == 400
    assert by_seller[honest.meter_key].shortfall_w == 0
    assert settlement.total_shortfall_w == 400
    penalty = TERMS.penalty(400)
    assert penalty == 1000  # 400 W × 2.5 cents
    assert settlement.total_penalty_cents == penalty
    # No escrow stands behind an obligation: the whole penalty is debt.
    assert all(t.from_escrow_cents == 0 and t.debt_cents == t.penalty_cents
               for t in settlement.trades)
    assert world.desk.debt(short.meter_key) == penalty
    assert world.desk.debt(honest.meter_key) == 0
    assert world.book.score(short.meter_key) < POLICY.initial < world.book.score(
        honest.meter_key)
    assert world.desk.settled_intervals == 1
    assert world.desk.summary() == {
        "intervals_settled": 1, "trades_settled": 2, "shortfall_w": 400,
        "penalty_cents": penalty, "pending_reports": 0, "refused": {},
    }


def test_debt_accumulates_over_intervals_and_offers() -> None:
    world = World()
    seller = world.prosumer(2)
    first = [world.ledger.offer("a", 300, 200), world.ledger.offer("b", 500)]
    world.submit(report(seller, first, 900))
    world.submit(report(seller, [world.ledger.offer("c", 100, interval=INTERVAL + 1)], 0,
                        interval=INTERVAL + 1))
    one = world.desk.settle(INTERVAL)
    assert len(one.trades) == 3 and one.total_shortfall_w == 100
    two = world.desk.settle(INTERVAL + 1)
    assert two.total_shortfall_w == 100
    assert world.desk.debt(seller.meter_key) == TERMS.penalty(100) + TERMS.penalty(100)
    assert world.desk.settled_intervals == 2


def test_an_interval_without_reports_settles_empty() -> None:
    world = World()
    settlement = world.desk.settle(INTERVAL)
    assert settlement.interval == INTERVAL
    assert settlement.trades == () and settlement.outcomes == ()
    assert world.desk.settled_intervals == 1


def test_refusals() -> None:
    world = World()
    seller, other = world.prosumer(2), world.prosumer(3)
    sold = world.ledger.offer("sold", 1000)
    world.submit(report(seller, [sold], 1000))

    assert world.refused(report(other, [sold], 0)) is DeliveryReject.DUPLICATE_CLAIM
    assert world.refused(report(seller, [world.ledger.offer("x", 5)], 0)) is (
        DeliveryReject.DUPLICATE_REPORT)
    later = world.ledger.offer("later", 5, interval=INTERVAL + 1)
    assert world.refused(report(other, [later], 0)) is DeliveryReject.NO_TRADES
    assert world.refused(report(other, [world.ledger.offer("unfilled")], 0)) is (
        DeliveryReject.NO_TRADES)
    assert world.refused(report(other, [world.ledger.offer("small", 300)], 301)) is (
        DeliveryReject.DELIVERED_ABOVE_SOLD)
    bought = world.ledger.offer("bought", 300, side=Side.BUY)
    assert world.refused(report(other, [bought], 0)) is DeliveryReject.NOT_SELLER
    assert world.refused(report(meter(9), [world.ledger.offer("y", 5)], 0)) is (
        DeliveryReject.UNKNOWN_METER)
    forged = world.ledger.offer("forged", 5)
    assert world.refused(report(other, [(forged[0], secret("not mine"))], 0)) is (
        DeliveryReject.BAD_SIGNATURE)

    world.desk.settle(INTERVAL)
    assert world.refused(report(other, [world.ledger.offer("z", 5)], 5)) is (
        DeliveryReject.ALREADY_SETTLED)
    with pytest.raises(DeliveryRejected) as info:
        world.desk.settle(INTERVAL)
    assert info.value.reason is DeliveryReject.ALREADY_SETTLED

    summary = world.desk.summary()
    assert summary["refused"] == {
        "already_settled": 1, "bad_signature": 1, "delivered_above_sold": 1,
        "duplicate_claim": 1, "duplicate_report": 1, "no_trades": 2, "not_seller": 1,
        "unknown_meter": 1,
    }
    # A refused report recorded nothing: its offers stay claimable.
    world.submit(report(other, [later], 5, interval=INTERVAL + 1))


def test_registered_but_not_enrolled_meter_is_unknown() -> None:
    world = World()
    stranger = meter(9)
    world.ledger.meters.add(stranger.meter_key)
    assert world.refused(report(stranger, [world.ledger.offer("a", 5)], 5)) is (
        DeliveryReject.UNKNOWN_METER)


def test_desk_needs_the_debt_policy() -> None:
    with pytest.raises(ValueError):
        SettlementDesk(SettlementTerms(penalty_millicents_per_w=1), ReputationBook(POLICY))


# -- persistence --------------------------------------------------------------------------------


def test_rows_round_trip_and_settle_alike() -> None:
    world = World()
    a, b = world.prosumer(2), world.prosumer(3)
    world.submit(report(a, [world.ledger.offer("a1", 1000)], 600))
    world.desk.settle(INTERVAL)
    world.submit(report(a, [world.ledger.offer("a2", 400, interval=INTERVAL + 1)], 100,
                        interval=INTERVAL + 1))
    world.submit(report(b, [world.ledger.offer("b2", 400, interval=INTERVAL + 1)], 400,
                        interval=INTERVAL + 1))

    rows = world.desk.to_rows()
    copy_book = ReputationBook.from_rows(POLICY, world.book.to_rows())
    copy = SettlementDesk.from_rows(TERMS, copy_book, rows)
    assert copy.to_rows() == rows
    assert copy.summary() == {**world.desk.summary(), "refused": {}}
    assert copy.settle(INTERVAL + 1) == world.desk.settle(INTERVAL + 1)
    assert copy.to_rows() == world.desk.to_rows()
    assert copy.debt(a.meter_key) == world.desk.debt(a.meter_key) > 0
    assert copy_book.to_rows() == world.book.to_rows()


@pytest.mark.parametrize("rows", [
    DeskRows(debts=((bytes(32), 5),)),
    DeskRows(debts=((meter(2).meter_key, 0),)),
    DeskRows(claimed_offers=(digest("a"), digest("a"))),
    DeskRows(claimed_offers=(b"short",)),
    DeskRows(settled_intervals=(MAX_INTERVAL + 1,)),
    DeskRows(settled_intervals=(INTERVAL,),
             pending=(PendingRow(INTERVAL, meter(2).meter_key, 0, ((digest("t"), 5),)),)),
    DeskRows(pending=(PendingRow(INTERVAL, meter(2).meter_key, 6, ((digest("t"), 5),)),)),
    DeskRows(pending=(PendingRow(INTERVAL, meter(2).meter_key, 0, ((digest("t"), 0),)),)),
    DeskRows(pending=(PendingRow(INTERVAL, meter(9).meter_key, 0, ((digest("t"), 5),)),)),
    DeskRows(trades_settled=-1),
])
def test_from_rows_refuses_bad_rows(rows: DeskRows) -> None:
    book = ReputationBook(POLICY)
    book.enroll(Registration.issue(
        DSO, NETWORK, meter_key=meter(2).meter_key, credential_key=CREDENTIAL,
        max_generation_w=1, max_consumption_w=1, feeder="F1"))
    with pytest.raises(MarketRecordInvalid) as info:
        SettlementDesk.from_rows(TERMS, book, rows)
    assert info.value.reason is RecordFault.MALFORMED
