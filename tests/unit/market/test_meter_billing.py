"""The smart meter's signed commitments and the private bill the DSO verifies (SPEC §4.8)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.group import Scalar
from petranode.crypto.pedersen import commit
from petranode.market.billing import (
    BILL_DOMAIN,
    MAX_BILL_BYTES,
    MAX_POLICY_BYTES,
    MAX_PRICE,
    Bill,
    PricePolicy,
    VerifiedBill,
    energy_cents,
    make_bill,
    sign_bill,
    total_cents,
    verify_bill,
)
from petranode.market.errors import (
    BillReject,
    BillRejected,
    MarketError,
    MarketRecordInvalid,
    RecordFault,
)
from petranode.market.meter import (
    COMMITMENT_DOMAIN,
    MAX_COMMITMENT_BYTES,
    Meter,
    MeterCommitment,
    MeterKeys,
    Quantity,
)
from petranode.market.profiles import Reading, RecordedProfile, SyntheticProfile
from petranode.net.identity import RouterKeys
from petranode.wire import codec

NET = "petranode-test"
IPD = 24
DSO = RouterKeys.from_secrets(signing_seed=b"\x11" * 32, static_secret=b"\x22" * 32)
#: Day tariff 30 c/kWh 07:00–22:00, night 20 c/kWh; export 8 c/kWh (millicents per kWh).
IMPORT = [30_000 if 7 <= h < 22 else 20_000 for h in range(IPD)]
EXPORT = [8_000] * IPD
POLICY = PricePolicy.issue(DSO, NET, first_interval=0, last_interval=10 * IPD - 1,
                           intervals_per_day=IPD, import_prices=IMPORT, export_prices=EXPORT)


def meter_keys(n: int) -> MeterKeys:
    return MeterKeys(bytes([n]) * 32)


def make_meter(n: int = 1, capacity_w: int = 5000) -> Meter:
    keys = meter_keys(n)
    profile = SyntheticProfile(b"seed", keys.meter_key, capacity_w, intervals_per_day=IPD)
    return Meter(keys, profile, NET)


def billed(meter: Meter, first: int = 0, last: int = IPD - 1,
           policy: PricePolicy = POLICY) -> tuple[Bill, list[MeterCommitment]]:
    records = [meter.commit(i) for i in range(first, last + 1)]
    return make_bill(meter, policy, DSO.signing_key, first, last), records


def verify(bill: Bill, records: Sequence[MeterCommitment], meter: Meter,
           policy: PricePolicy = POLICY) -> VerifiedBill:
    return verify_bill(bill, policy=policy, commitments=records, meter_key=meter.meter_key,
                       network_id=NET)


def resigned(bill: Bill, meter: Meter, **changes: object) -> Bill:
    """What lying meter software could send: altered fields under a valid meter signature."""
    altered = dataclasses.replace(bill, **changes)
    return sign_bill(altered, meter.keys.sign(BILL_DOMAIN, NET, altered.signed_body()))


# A day of one meter, shared by the read-only tests (commit/sign is a few ms per interval).
METER = make_meter()
BILL, RECORDS = billed(METER)


# -- meter keys and commitments --------------------------------------------------------------------


def test_meter_keys_are_deterministic_and_secret_free_in_repr() -> None:
    a, b = meter_keys(7), meter_keys(7)
    assert a.meter_key == b.meter_key != meter_keys(8).meter_key
    mask = a.commitment_mask(NET, Quantity.CONSUMPTION, 3)
    assert mask == b.commitment_mask(NET, Quantity.CONSUMPTION, 3)
    assert mask != a.commitment_mask(NET, Quantity.PRODUCTION, 3)
    assert mask != a.commitment_mask(NET, Quantity.CONSUMPTION, 4)
    assert mask != a.commitment_mask("other-net", Quantity.CONSUMPTION, 3)
    assert mask.hex() not in repr(a) and "07070707" not in repr(a)
    assert repr(mask) == "Scalar(…)"
    with pytest.raises(ValueError):
        MeterKeys(b"short")


def test_pairwise_secret_is_symmetric() -> None:
    a, b, c = meter_keys(1), meter_keys(2), meter_keys(3)
    assert a.shared_secret(b.meter_key) == b.shared_secret(a.meter_key)
    assert a.shared_secret(b.meter_key) != a.shared_secret(c.meter_key)


def test_commitment_opens_to_the_reading_with_the_derived_mask() -> None:
    record = RECORDS[12]
    reading = METER.profile.reading(12)
    for q, value in ((Quantity.CONSUMPTION, reading.consumption_w),
                     (Quantity.PRODUCTION, reading.production_w)):
        mask = METER.keys.commitment_mask(NET, q, 12)
        assert record.point(q) == commit(value, mask)
    record.verify(METER.meter_key, NET)


def test_commitment_record_layout_and_round_trip() -> None:
    record = RECORDS[5]
    data = record.encode()
    assert len(data) <= MAX_COMMITMENT_BYTES
    assert codec.decode(data, max_size=MAX_COMMITMENT_BYTES) == [
        1, record.meter_key, 5, record.consumption, record.production, record.signature]
    assert MeterCommitment.decode(data) == record
    assert METER.commit(5) == record  # the meter recomputes the same record


def test_commitment_signature_is_bound_to_meter_and_network() -> None:
    record = RECORDS[0]
    with pytest.raises(MarketRecordInvalid) as info:
        record.verify(METER.meter_key, "other-net")
    assert info.value.reason is RecordFault.BAD_SIGNATURE
    with pytest.raises(MarketRecordInvalid):
        record.verify(meter_keys(9).meter_key, NET)
    forged = dataclasses.replace(record, interval=1)
    with pytest.raises(MarketRecordInvalid):
        forged.verify(METER.meter_key, NET)
    assert record.signature == METER.keys.sign(COMMITMENT_DOMAIN, NET, record.signed_body())


def test_commitment_validation() -> None:
    record = RECORDS[0]
    with pytest.raises(ValueError):
        dataclasses.replace(record, consumption=bytes(32))  # not a point of the subgroup
    with pytest.raises(ValueError):
        dataclasses.replace(record, interval=-1)
    with pytest.raises(ValueError):
        dataclasses.replace(record, signature=b"x")
    with pytest.raises(ValueError):
        dataclasses.replace(record, version=2)


def test_commitments_hide_equal_readings() -> None:
    # Same reading in two intervals: different commitments (fresh derived masks).
    keys = meter_keys(4)
    meter = Meter(keys, RecordedProfile(((100, 500),)), NET)
    a, b = meter.commit(0), meter.commit(1)
    assert a.consumption != b.consumption and a.production != b.production


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**63 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_commitment_round_trip(interval: int, consumption: int, production: int) -> None:
    record = MeterCommitment.create(METER.keys, NET, interval, Reading(consumption, production))
    assert MeterCommitment.decode(record.encode()) == record
    record.verify(METER.meter_key, NET)


# -- price policy ----------------------------------------------------------------------------------


def test_policy_round_trip_and_signature() -> None:
    data = POLICY.encode()
    assert len(data) <= MAX_POLICY_BYTES
    assert PricePolicy.decode(data) == POLICY
    POLICY.verify(DSO.signing_key, NET)
    with pytest.raises(MarketRecordInvalid):
        POLICY.verify(DSO.signing_key, "other-net")
    with pytest.raises(MarketRecordInvalid):
        POLICY.verify(METER.meter_key, NET)
    assert POLICY.price(Quantity.CONSUMPTION, 8 + 5 * IPD) == 30_000
    assert POLICY.price(Quantity.CONSUMPTION, 3) == 20_000
    assert POLICY.price(Quantity.PRODUCTION, 13) == 8_000


def test_largest_policy_fits_its_bound() -> None:
    policy = PricePolicy.issue(DSO, NET, first_interval=2**63 - 2, last_interval=2**63 - 1,
                               intervals_per_day=1440, import_prices=[MAX_PRICE] * 1440,
                               export_prices=[MAX_PRICE] * 1440)
    assert len(policy.encode()) <= MAX_POLICY_BYTES
    assert PricePolicy.decode(policy.encode()) == policy


@pytest.mark.parametrize("changes", [
    {"import_prices": (1,) * (IPD - 1)},
    {"export_prices": (MAX_PRICE + 1,) * IPD},
    {"export_prices": (-1,) * IPD},
    {"first_interval": 10, "last_interval": 9},
    {"intervals_per_day": 7},
])
def test_policy_validation(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(POLICY, **changes)


def test_energy_cents_rounding() -> None:
    # 96 intervals/day: 900 s each; cents = W·900 / 3.6e9 = W / 4e6, half up.
    assert energy_cents(0, 96) == 0
    assert energy_cents(1_999_999, 96) == 0
    assert energy_cents(2_000_000, 96) == 1
    assert energy_cents(6_000_000, 96) == 2
    assert energy_cents(5_999_999, 96) == 1
    # 24 intervals/day: one hour each. 1 kW for 1 h at 30 c/kWh = 30 c.
    assert energy_cents(30_000 * 1000, 24) == 30


# -- bills -----------------------------------------------------------------------------------------


def expected_total(meter: Meter, first: int, last: int) -> tuple[int, int, int]:
    wc = wp = 0
    for i in range(first, last + 1):
        r = meter.profile.reading(i)
        wc += POLICY.price(Quantity.CONSUMPTION, i) * r.consumption_w
        wp += POLICY.price(Quantity.PRODUCTION, i) * r.production_w
    # One hour per interval: W·price·3600 / 3.6e9 cents.
    return wc, wp, round_half_up(wc, 1_000_000) - round_half_up(wp, 1_000_000)


def round_half_up(n: int, d: int) -> int:
    return (2 * n + d) // (2 * d)


def test_bill_verifies_and_the_dso_learns_the_total() -> None:
    wc, wp, total = expected_total(METER, 0, IPD - 1)
    assert (BILL.consumption_total, BILL.production_total, BILL.total_cents) == (wc, wp, total)
    verified = verify(BILL, RECORDS, METER)
    assert verified == verify_bill(BILL, policy=POLICY, commitments=reversed(RECORDS),
                                   meter_key=METER.meter_key, network_id=NET)
    assert verified.total_cents == total
    assert verified.import_cents - verified.export_cents == total


def test_bill_record_round_trip_and_private_repr() -> None:
    data = BILL.encode()
    assert len(data) <= MAX_BILL_BYTES
    assert Bill.decode(data) == BILL
    assert BILL.consumption_mask.hex() not in repr(BILL)
    assert str(BILL.consumption_mask) not in repr(BILL)


def test_negative_total_is_a_credit() -> None:
    generous = PricePolicy.issue(DSO, NET, first_interval=0, last_interval=IPD - 1,
                                 intervals_per_day=IPD, import_prices=[1_000] * IPD,
                                 export_prices=[90_000] * IPD)
    meter = make_meter(2, capacity_w=20_000)
    bill, records = billed(meter, policy=generous)
    assert bill.total_cents < 0
    verified = verify(bill, records, meter, generous)
    assert verified.total_cents == bill.total_cents


def test_a_night_with_no_production_bills_zero_export() -> None:
    meter = make_meter(3, capacity_w=0)
    bill, records = billed(meter)
    assert bill.production_total == 0
    verify(bill, records, meter)


def test_meter_bills_the_same_period_identically_and_refuses_overlap() -> None:
    meter = make_meter(5)
    bill, _ = billed(meter)
    assert make_bill(meter, POLICY, DSO.signing_key, 0, IPD - 1) == bill
    for i in range(IPD, 2 * IPD + 5):
        meter.commit(i)
    with pytest.raises(ValueError, match="overlap"):
        make_bill(meter, POLICY, DSO.signing_key, 5, IPD + 4)
    make_bill(meter, POLICY, DSO.signing_key, IPD, 2 * IPD - 1)


def test_meter_refuses_bad_periods_and_unsigned_policies() -> None:
    meter = make_meter(6)
    for i in range(IPD):
        meter.commit(i)
    with pytest.raises(MarketRecordInvalid):
        make_bill(meter, POLICY, METER.meter_key, 0, IPD - 1)  # not the DSO's signature
    with pytest.raises(ValueError):
        make_bill(meter, POLICY, DSO.signing_key, 0, IPD - 2)  # shorter than a day
    with pytest.raises(ValueError):
        make_bill(meter, POLICY, DSO.signing_key, 5, 4)
    with pytest.raises(ValueError):
        make_bill(meter, POLICY, DSO.signing_key, 9 * IPD, 10 * IPD)  # outside the policy
    with pytest.raises(ValueError, match="not metered"):
        make_bill(meter, POLICY, DSO.signing_key, IPD, 2 * IPD - 1)
    assert make_bill(meter, POLICY, DSO.signing_key, 0, 3, min_intervals=4).last_interval == 3


def test_pruned_readings_cannot_be_billed() -> None:
    meter = make_meter(7)
    for i in range(IPD):
        meter.commit(i)
    meter.prune(IPD)
    assert not meter.measured(0)
    with pytest.raises(ValueError):
        make_bill(meter, POLICY, DSO.signing_key, 0, IPD - 1)


# -- every tampering is rejected -------------------------------------------------------------------


def reject(bill: Bill, records: Sequence[MeterCommitment], reason: BillReject, *,
           meter: Meter = METER, policy: PricePolicy = POLICY) -> None:
    with pytest.raises(BillRejected) as info:
        verify(bill, records, meter, policy)
    assert info.value.reason is reason


def test_altered_total_is_rejected() -> None:
    reject(dataclasses.replace(BILL, total_cents=BILL.total_cents - 1), RECORDS,
           BillReject.BAD_SIGNATURE)
    reject(resigned(BILL, METER, total_cents=BILL.total_cents - 1), RECORDS,
           BillReject.TOTAL_MISMATCH)


def test_altered_weighted_sum_is_rejected_even_when_consistent() -> None:
    # Sums the meter did not commit to, with the total recomputed to match them.
    wc = BILL.consumption_total - 30_000_000  # one kWh less at the day price
    lie = resigned(BILL, METER, consumption_total=wc,
                   total_cents=total_cents(POLICY, wc, BILL.production_total))
    assert lie.total_cents == BILL.total_cents - 30
    reject(lie, RECORDS, BillReject.OPENING_MISMATCH)
    wp = BILL.production_total + 8_000
    lie = resigned(BILL, METER, production_total=wp,
                   total_cents=total_cents(POLICY, BILL.consumption_total, wp))
    reject(lie, RECORDS, BillReject.OPENING_MISMATCH)


def test_altered_mask_is_rejected() -> None:
    other = (Scalar.from_bytes(BILL.consumption_mask) + Scalar.from_int(1)).raw
    reject(resigned(BILL, METER, consumption_mask=other), RECORDS, BillReject.OPENING_MISMATCH)


def test_altered_interval_is_rejected() -> None:
    # A commitment replaced by the meter's commitment to another reading for that interval.
    forged = MeterCommitment.create(METER.keys, NET, 10, Reading(1, 0))
    records = [forged if r.interval == 10 else r for r in RECORDS]
    reject(BILL, records, BillReject.OPENING_MISMATCH)
    # A period that is not the one the sums were computed over.
    shifted = resigned(BILL, METER, first_interval=1, last_interval=IPD)
    reject(shifted, [METER.commit(i) for i in range(1, IPD + 1)], BillReject.OPENING_MISMATCH)


def test_missing_extra_and_duplicate_commitments_are_rejected() -> None:
    reject(BILL, RECORDS[:-1], BillReject.MISSING_INTERVAL)
    reject(BILL, RECORDS[1:], BillReject.MISSING_INTERVAL)
    reject(BILL, [*RECORDS, METER.commit(IPD)], BillReject.UNEXPECTED_COMMITMENT)
    reject(BILL, [*RECORDS, RECORDS[3]], BillReject.UNEXPECTED_COMMITMENT)


def test_commitments_of_another_meter_are_rejected() -> None:
    other = make_meter(9)
    records = [other.commit(i) if i == 4 else r for i, r in enumerate(RECORDS)]
    reject(BILL, records, BillReject.BAD_COMMITMENT)
    bad_sig = dataclasses.replace(RECORDS[4], signature=RECORDS[5].signature)
    reject(BILL, [bad_sig if i == 4 else r for i, r in enumerate(RECORDS)],
           BillReject.BAD_COMMITMENT)


def test_wrong_key_wrong_network_wrong_policy() -> None:
    other = make_meter(9)
    reject(BILL, RECORDS, BillReject.WRONG_METER, meter=other)
    # A bill claiming our meter but signed by another key.
    forged = sign_bill(BILL, other.keys.sign(BILL_DOMAIN, NET,
                                             BILL.signed_body()))
    reject(forged, RECORDS, BillReject.BAD_SIGNATURE)
    with pytest.raises(BillRejected) as info:
        verify_bill(BILL, policy=POLICY, commitments=RECORDS, meter_key=METER.meter_key,
                    network_id="other-net")
    assert info.value.reason is BillReject.BAD_SIGNATURE
    cheaper = PricePolicy.issue(DSO, NET, first_interval=0, last_interval=10 * IPD - 1,
                                intervals_per_day=IPD, import_prices=[1] * IPD,
                                export_prices=EXPORT)
    reject(BILL, RECORDS, BillReject.WRONG_POLICY, policy=cheaper)
    short = dataclasses.replace(POLICY, last_interval=IPD - 2)
    reject(resigned(BILL, METER, policy_id=short.policy_id), RECORDS,
           BillReject.WRONG_POLICY, policy=short)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_flipping_any_bit_of_the_bill_fails(data: st.DataObject) -> None:
    encoded = BILL.encode()
    bit = data.draw(st.integers(0, 8 * len(encoded) - 1))
    with pytest.raises(MarketError):
        verify(Bill.decode(flip(encoded, bit)), RECORDS, METER)


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_flipping_any_bit_of_a_commitment_record_fails(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(RECORDS) - 1))
    encoded = RECORDS[index].encode()
    bit = data.draw(st.integers(0, 8 * len(encoded) - 1))
    with pytest.raises(MarketError):
        records = list(RECORDS)
        records[index] = MeterCommitment.decode(flip(encoded, bit))
        verify(BILL, records, METER)


# -- bounded decoding ------------------------------------------------------------------------------


DECODERS = [MeterCommitment.decode, Bill.decode, PricePolicy.decode]


@pytest.mark.parametrize("decode", DECODERS)
def test_oversized_input_is_refused_before_decoding(decode: object) -> None:
    with pytest.raises(MarketRecordInvalid) as info:
        decode(b"\x91" + b"\xc0" * 20_000)  # type: ignore[operator]
    assert info.value.reason is RecordFault.MALFORMED


@pytest.mark.parametrize("record", [RECORDS[0], BILL, POLICY])
def test_trailing_bytes_and_other_versions_are_refused(record: object) -> None:
    encoded: bytes = record.encode()  # type: ignore[attr-defined]
    decode = type(record).decode  # type: ignore[attr-defined]
    with pytest.raises(MarketRecordInvalid):
        decode(encoded + b"\x00")
    fields = codec.decode(encoded, max_size=1 << 16)
    assert isinstance(fields, list)
    with pytest.raises(MarketRecordInvalid) as info:
        decode(codec.encode([2, *fields[1:]]))
    assert info.value.reason is RecordFault.UNSUPPORTED_VERSION


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(DECODERS))
def test_arbitrary_bytes_give_a_record_or_a_market_error(data: bytes, decode: object) -> None:
    try:
        decode(data)  # type: ignore[operator]
    except MarketRecordInvalid:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_encodings_give_a_record_or_a_market_error(data: st.DataObject) -> None:
    record = data.draw(st.sampled_from([RECORDS[0], BILL, POLICY]))
    encoded = bytearray(record.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        type(record).decode(bytes(encoded[:cut]))
    except MarketRecordInvalid:
        pass


def test_overlong_period_is_rejected_before_any_work() -> None:
    everything = PricePolicy.issue(DSO, NET, first_interval=0, last_interval=2**63 - 1,
                                   intervals_per_day=IPD, import_prices=IMPORT,
                                   export_prices=EXPORT)
    bill = resigned(BILL, METER, policy_id=everything.policy_id, last_interval=2**63 - 1)
    reject(bill, RECORDS, BillReject.BAD_PERIOD, policy=everything)
