"""Feeder net load from pairwise-masked meter shares (SPEC §4.8): masks cancel, shares hide."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.market.aggregate import (
    MAX_OPEN_INTERVALS,
    MAX_ROSTER_BYTES,
    MAX_ROSTER_METERS,
    MAX_SHARE_BYTES,
    FeederAggregator,
    FeederRoster,
    LoadShare,
    make_share,
    mask_total,
    pairwise_mask,
)
from petranode.market.errors import (
    MarketRecordInvalid,
    RecordFault,
    ShareReject,
    ShareRejected,
)
from petranode.market.meter import Meter, MeterKeys
from petranode.market.profiles import RecordedProfile, SyntheticProfile
from petranode.net.identity import RouterKeys
from petranode.wire import codec

NET = "petranode-test"
DSO = RouterKeys.from_secrets(signing_seed=b"\x11" * 32, static_secret=b"\x22" * 32)
MAX_W = 2**32 - 1


def keys(n: int) -> MeterKeys:
    return MeterKeys(n.to_bytes(2, "big") * 16)


def fixed_meter(n: int, rows: Sequence[tuple[int, int]]) -> Meter:
    """A meter whose reading in interval i is rows[i % len(rows)] = (production, consumption)."""
    return Meter(keys(n), RecordedProfile(tuple(rows)), NET)


def synthetic_meter(n: int) -> Meter:
    k = keys(n)
    return Meter(k, SyntheticProfile(b"seed", k.meter_key, 4000 * (n % 3)), NET)


def roster_of(meters: Sequence[Meter], feeder: str = "feeder-1", epoch: int = 0) -> FeederRoster:
    return FeederRoster.issue(DSO, NET, feeder=feeder, epoch=epoch,
                              meter_keys=[m.meter_key for m in meters])


def shares(meters: Sequence[Meter], roster: FeederRoster, interval: int) -> list[LoadShare]:
    return [make_share(m, roster, DSO.signing_key, interval) for m in meters]


METERS = [synthetic_meter(n) for n in range(1, 7)]
ROSTER = roster_of(METERS)


def aggregate(meters: Sequence[Meter], roster: FeederRoster, interval: int) -> int:
    agg = FeederAggregator(roster, NET)
    for share in shares(meters, roster, interval):
        agg.add(share)
    assert agg.complete(interval)
    load = agg.close(interval)
    assert (load.feeder, load.interval, load.meters) == (roster.feeder, interval, len(meters))
    return load.net_load_w


# -- the aggregate is the sum ----------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, 30, 48, 60, 76])
def test_aggregate_equals_the_sum_of_readings(interval: int) -> None:
    expected = sum(m.profile.reading(interval).net_w for m in METERS)
    assert aggregate(METERS, ROSTER, interval) == expected


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_aggregate_equals_the_sum_over_random_feeders(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 10), label="meters")
    ids = data.draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n, unique=True))
    readings = data.draw(st.lists(st.tuples(st.integers(0, MAX_W), st.integers(0, MAX_W)),
                                  min_size=n, max_size=n))
    interval = data.draw(st.integers(0, 2**63 - 1), label="interval")
    meters = [fixed_meter(i, [r]) for i, r in zip(ids, readings, strict=True)]
    roster = roster_of(meters, epoch=data.draw(st.integers(0, 9)))
    expected = sum(c - p for p, c in readings)
    assert aggregate(meters, roster, interval) == expected


def test_masks_cancel_and_are_pairwise_symmetric() -> None:
    for interval in (0, 1, 2**40):
        assert sum(mask_total(m, ROSTER, interval) for m in METERS) % 2**64 == 0
    a, b = METERS[0], METERS[1]
    secret = a.keys.shared_secret(b.meter_key)
    assert secret == b.keys.shared_secret(a.meter_key)
    assert (pairwise_mask(secret, NET, ROSTER, 7, a.meter_key, b.meter_key)
            == pairwise_mask(secret, NET, ROSTER, 7, b.meter_key, a.meter_key))
    masks = {pairwise_mask(secret, NET, ROSTER, t, a.meter_key, b.meter_key) for t in range(50)}
    assert len(masks) == 50  # fresh per interval
    other = roster_of(METERS, feeder="feeder-2")
    assert (pairwise_mask(secret, NET, other, 7, a.meter_key, b.meter_key)
            != pairwise_mask(secret, NET, ROSTER, 7, a.meter_key, b.meter_key))


def test_negative_net_load_of_an_exporting_feeder() -> None:
    meters = [fixed_meter(i, [(9000, 100)]) for i in range(1, 4)]
    assert aggregate(meters, roster_of(meters), 5) == -3 * 8900


def test_extreme_readings() -> None:
    meters = [fixed_meter(1, [(MAX_W, 0)]), fixed_meter(2, [(MAX_W, 0)]),
              fixed_meter(3, [(0, MAX_W)])]
    assert aggregate(meters, roster_of(meters), 0) == -MAX_W


# -- no single share reveals its reading -----------------------------------------------------------


def share_values(reading: tuple[int, int], intervals: range) -> list[int]:
    a, b = fixed_meter(1, [reading]), fixed_meter(2, [(0, 0)])
    roster = roster_of([a, b])
    return [make_share(a, roster, DSO.signing_key, t).masked_load for t in intervals]


def test_shares_look_uniform_whatever_the_reading() -> None:
    n = 600
    for reading in ((0, 0), (0, 10_000), (MAX_W, 0)):
        values = share_values(reading, range(n))
        net = reading[1] - reading[0]
        assert net % 2**64 not in values
        # Every bit of the share is set about half the time (σ ≈ 0.02 at n = 600).
        for bit in range(64):
            ones = sum(v >> bit & 1 for v in values)
            assert 0.40 * n < ones < 0.60 * n, (reading, bit)
        # The top byte covers its range evenly enough (no clustering near the reading).
        assert len({v >> 56 for v in values}) > 200


def test_shares_of_different_readings_are_indistinguishable_in_distribution() -> None:
    n = 600
    low = sorted(share_values((0, 0), range(n)))
    high = sorted(share_values((0, 20_000), range(n, 2 * n)))
    # Two-sample Kolmogorov–Smirnov statistic; the 0.1 % critical value at n = 600 is ≈ 0.113.
    grid = sorted(low + high)
    d = max(abs(_cdf(low, x) - _cdf(high, x)) for x in grid[::7])
    assert d < 0.113


def _cdf(sorted_values: list[int], x: int) -> float:
    return bisect.bisect_right(sorted_values, x) / len(sorted_values)


# -- the aggregator refuses ------------------------------------------------------------------------


def test_duplicate_share_is_refused() -> None:
    agg = FeederAggregator(ROSTER, NET)
    first = make_share(METERS[0], ROSTER, DSO.signing_key, 3)
    agg.add(first)
    with pytest.raises(ShareRejected) as info:
        agg.add(first)
    assert info.value.reason is ShareReject.DUPLICATE
    assert agg.missing(3) == len(METERS) - 1


def test_unknown_meter_and_wrong_roster_are_refused() -> None:
    agg = FeederAggregator(ROSTER, NET)
    stranger = synthetic_meter(99)
    bigger = roster_of([*METERS, stranger])
    with pytest.raises(ShareRejected) as info:
        agg.add(make_share(METERS[0], bigger, DSO.signing_key, 3))
    assert info.value.reason is ShareReject.WRONG_ROSTER
    share = make_share(stranger, bigger, DSO.signing_key, 3)
    with pytest.raises(ShareRejected) as info:
        agg.add(dataclasses.replace(share, roster_id=ROSTER.roster_id))
    assert info.value.reason is ShareReject.UNKNOWN_METER


def test_bad_signature_is_refused_and_changes_nothing() -> None:
    agg = FeederAggregator(ROSTER, NET)
    share = make_share(METERS[0], ROSTER, DSO.signing_key, 3)
    with pytest.raises(ShareRejected) as info:
        agg.add(dataclasses.replace(share, masked_load=(share.masked_load + 1) % 2**64))
    assert info.value.reason is ShareReject.BAD_SIGNATURE
    other_net = FeederAggregator(ROSTER, "other-net")
    with pytest.raises(ShareRejected):
        other_net.add(share)
    agg.add(share)  # the refused copy left no trace
    assert agg.missing(3) == len(METERS) - 1


def test_missing_meter_makes_the_interval_unavailable() -> None:
    agg = FeederAggregator(ROSTER, NET)
    all_shares = shares(METERS, ROSTER, 30)
    for share in all_shares[:-1]:
        agg.add(share)
    assert not agg.complete(30)
    assert agg.missing(30) == 1
    with pytest.raises(ShareRejected) as info:
        agg.close(30)
    assert info.value.reason is ShareReject.MISSING_METERS
    # The late share is refused: the interval is closed for good.
    with pytest.raises(ShareRejected) as info:
        agg.add(all_shares[-1])
    assert info.value.reason is ShareReject.CLOSED
    with pytest.raises(ShareRejected) as info:
        agg.close(30)
    assert info.value.reason is ShareReject.CLOSED
    # The sum of the other shares is noise, not the other meters' total.
    partial = sum(s.masked_load for s in all_shares[:-1]) % 2**64
    others = sum(m.profile.reading(30).net_w for m in METERS[:-1]) % 2**64
    assert partial != others


def test_an_interval_nobody_reported_is_unavailable() -> None:
    agg = FeederAggregator(ROSTER, NET)
    with pytest.raises(ShareRejected) as info:
        agg.close(8)
    assert info.value.reason is ShareReject.MISSING_METERS


def test_closed_intervals_refuse_shares_and_prune_forgets_them() -> None:
    agg = FeederAggregator(ROSTER, NET)
    for share in shares(METERS, ROSTER, 2):
        agg.add(share)
    agg.close(2)
    late = make_share(METERS[0], ROSTER, DSO.signing_key, 2)
    with pytest.raises(ShareRejected) as info:
        agg.add(late)
    assert info.value.reason is ShareReject.CLOSED
    agg.add(make_share(METERS[0], ROSTER, DSO.signing_key, 4))
    agg.prune(5)
    assert agg.missing(4) == len(METERS)  # the open interval was dropped
    with pytest.raises(ShareRejected) as info:
        agg.add(make_share(METERS[1], ROSTER, DSO.signing_key, 4))
    assert info.value.reason is ShareReject.CLOSED


def test_open_intervals_are_bounded() -> None:
    a, b = fixed_meter(1, [(0, 1)]), fixed_meter(2, [(0, 1)])
    roster = roster_of([a, b])
    agg = FeederAggregator(roster, NET)
    for t in range(MAX_OPEN_INTERVALS):
        agg.add(make_share(a, roster, DSO.signing_key, t))
    with pytest.raises(ShareRejected) as info:
        agg.add(make_share(a, roster, DSO.signing_key, MAX_OPEN_INTERVALS))
    assert info.value.reason is ShareReject.TOO_MANY_OPEN
    agg.add(make_share(b, roster, DSO.signing_key, 0))  # an open interval still accepts
    assert agg.close(0).net_load_w == 2


def test_meter_refuses_unsafe_rosters() -> None:
    alone = roster_of(METERS[:1])
    with pytest.raises(ValueError, match="fewer than"):
        make_share(METERS[0], alone, DSO.signing_key, 0)
    with pytest.raises(ValueError, match="not on the roster"):
        make_share(synthetic_meter(42), ROSTER, DSO.signing_key, 0)
    forged = FeederRoster.issue(METERS[0].keys, NET, feeder="feeder-1", epoch=0,
                                meter_keys=ROSTER.meter_keys)
    with pytest.raises(MarketRecordInvalid) as info:
        make_share(METERS[0], forged, DSO.signing_key, 0)
    assert info.value.reason is RecordFault.BAD_SIGNATURE


# -- records ---------------------------------------------------------------------------------------


def test_roster_validation() -> None:
    keys_ = ROSTER.meter_keys
    with pytest.raises(ValueError):
        dataclasses.replace(ROSTER, meter_keys=tuple(reversed(keys_)))
    with pytest.raises(ValueError):
        dataclasses.replace(ROSTER, meter_keys=(keys_[0], keys_[0]))
    with pytest.raises(ValueError):
        dataclasses.replace(ROSTER, meter_keys=())
    with pytest.raises(ValueError):
        dataclasses.replace(ROSTER, feeder="no spaces")
    with pytest.raises(ValueError):
        dataclasses.replace(ROSTER, meter_keys=(bytes(32),))


def test_record_round_trips_and_layout() -> None:
    assert FeederRoster.decode(ROSTER.encode()) == ROSTER
    share = make_share(METERS[2], ROSTER, DSO.signing_key, 11)
    data = share.encode()
    assert len(data) <= MAX_SHARE_BYTES
    assert codec.decode(data, max_size=MAX_SHARE_BYTES) == [
        1, share.meter_key, ROSTER.roster_id, 11, share.masked_load, share.signature]
    assert LoadShare.decode(data) == share
    assert make_share(METERS[2], ROSTER, DSO.signing_key, 11) == share  # deterministic
    assert str(share.masked_load) in repr(share)  # masked: not a secret
    assert share.signature.hex() not in repr(share)


def test_largest_roster_fits_its_bound() -> None:
    big = FeederRoster.issue(DSO, NET, feeder="f" * 32, epoch=2**63 - 1,
                             meter_keys=[keys(i).meter_key for i in range(MAX_ROSTER_METERS)])
    assert len(big.encode()) <= MAX_ROSTER_BYTES
    assert FeederRoster.decode(big.encode()) == big


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**63 - 1), st.integers(0, 2**64 - 1))
def test_share_round_trip(interval: int, masked: int) -> None:
    body = LoadShare.body(METERS[0].meter_key, ROSTER.roster_id, interval, masked)
    sig = METERS[0].keys.sign("petranode/market/load-share/v1", NET, codec.encode(body))
    share = LoadShare(METERS[0].meter_key, ROSTER.roster_id, interval, masked, sig)
    assert LoadShare.decode(share.encode()) == share
    share.verify(NET)


SHARE = make_share(METERS[0], ROSTER, DSO.signing_key, 9)


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_flipping_any_bit_of_a_share_fails(data: st.DataObject) -> None:
    encoded = SHARE.encode()
    bit = data.draw(st.integers(0, 8 * len(encoded) - 1))
    flipped = bytearray(encoded)
    flipped[bit // 8] ^= 1 << (bit % 8)
    agg = FeederAggregator(ROSTER, NET)
    with pytest.raises((MarketRecordInvalid, ShareRejected)):
        agg.add(LoadShare.decode(bytes(flipped)))


@pytest.mark.parametrize("decode", [LoadShare.decode, FeederRoster.decode])
def test_oversized_input_is_refused(decode: object) -> None:
    with pytest.raises(MarketRecordInvalid):
        decode(b"\x91" + b"\xc0" * 40_000)  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([LoadShare.decode, FeederRoster.decode]))
def test_arbitrary_bytes_give_a_record_or_a_market_error(data: bytes, decode: object) -> None:
    try:
        decode(data)  # type: ignore[operator]
    except MarketRecordInvalid:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_encodings_give_a_record_or_a_market_error(data: st.DataObject) -> None:
    record = data.draw(st.sampled_from([SHARE, ROSTER]))
    encoded = bytearray(record.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        type(record).decode(bytes(encoded[:cut]))
    except MarketRecordInvalid:
        pass
