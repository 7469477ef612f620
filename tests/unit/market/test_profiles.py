"""Synthetic and imported household profiles (SPEC §4.8): determinism, shape, strict CSV import."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.market.errors import MarketError, ProfileFault, ProfileInvalid
from petranode.market.profiles import (
    CSV_HEADER,
    Reading,
    RecordedProfile,
    SyntheticProfile,
    check_intervals_per_day,
    clear_sky_w,
    parse_profile_csv,
    slot_midpoint_s,
)
from petranode.market.registry import MAX_POWER_W

SEED = b"petranode-test-seed"
METER = bytes(range(32))


BASE = SyntheticProfile(seed=SEED, meter_id=METER, capacity_w=6000)


def profile(**kw: object) -> SyntheticProfile:
    return dataclasses.replace(BASE, **kw)


# -- synthetic profiles ----------------------------------------------------------------------------


def test_same_inputs_give_the_same_readings() -> None:
    a, b = profile(), profile()
    assert [a.reading(i) for i in range(300)] == [b.reading(i) for i in range(300)]


def test_seed_and_meter_decorrelate_the_noise() -> None:
    base = [profile().reading(i) for i in range(96)]
    assert base != [profile(seed=b"other").reading(i) for i in range(96)]
    assert base != [profile(meter_id=bytes(32)).reading(i) for i in range(96)]


def test_weather_is_shared_by_the_network_cloud_noise_is_per_meter() -> None:
    # Same seed, two meters: both have sun on the same days; the local noise differs.
    a, b = profile(), profile(meter_id=bytes(32))
    noon = [d * 96 + 48 for d in range(10)]
    ratios = [a.production_w(i) / b.production_w(i) for i in noon]
    assert all(0.69 <= r <= 1.43 for r in ratios)  # within the 70..100 % cloud band
    assert [a.production_w(i) for i in noon] != [b.production_w(i) for i in noon]


def test_solar_is_zero_at_night_and_bounded_by_capacity() -> None:
    p = profile()
    for i in range(3 * 96):
        second = slot_midpoint_s(i, 96)
        w = p.production_w(i)
        assert 0 <= w <= 6000
        if second <= 6 * 3600 or second >= 18 * 3600:
            assert w == 0
    assert max(p.production_w(i) for i in range(96)) > 1000  # some sun on day 0


def test_clear_sky_bell() -> None:
    assert clear_sky_w(6000, 12 * 3600) == 6000
    assert clear_sky_w(6000, 6 * 3600) == clear_sky_w(6000, 18 * 3600) == 0
    assert clear_sky_w(6000, 9 * 3600) == clear_sky_w(6000, 15 * 3600)  # symmetric
    assert clear_sky_w(6000, 9 * 3600) < clear_sky_w(6000, 11 * 3600) < 6000
    assert clear_sky_w(0, 12 * 3600) == 0


def test_load_has_morning_and_evening_peaks() -> None:
    p = profile()
    night = p.consumption_w(12)  # 03:00
    morning = p.consumption_w(30)  # 07:30
    evening = p.consumption_w(76)  # 19:00
    assert night < morning < evening
    assert all(p.consumption_w(i) > 0 for i in range(96))


def test_no_panels_no_production() -> None:
    assert all(profile(capacity_w=0).production_w(i) == 0 for i in range(96))


@pytest.mark.parametrize("ipd", [24, 96])
def test_simulated_day_mapping(ipd: int) -> None:
    # Interval 0 starts at midnight of day 0; the day repeats every ipd intervals.
    length = 86_400 // ipd
    assert slot_midpoint_s(0, ipd) == length // 2
    assert slot_midpoint_s(ipd, ipd) == slot_midpoint_s(0, ipd)
    assert slot_midpoint_s(ipd // 2, ipd) == 43_200 + length // 2
    p = profile(intervals_per_day=ipd)
    assert p.production_w(0) == 0 and p.production_w(ipd // 2) > 0


@pytest.mark.parametrize("ipd", [0, 7, 1441, -1])
def test_bad_intervals_per_day(ipd: int) -> None:
    with pytest.raises(ValueError):
        check_intervals_per_day(ipd)
    with pytest.raises(ValueError):
        profile(intervals_per_day=ipd)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        profile(capacity_w=-1)
    with pytest.raises(ValueError):
        profile(base_load_w=MAX_POWER_W + 1)
    with pytest.raises(ValueError):
        profile().reading(-1)


def test_reading_bounds_and_private_repr() -> None:
    r = Reading(consumption_w=1234, production_w=5678)
    assert r.net_w == 1234 - 5678
    assert "1234" not in repr(r) and "5678" not in repr(r)
    with pytest.raises(ValueError):
        Reading(consumption_w=-1, production_w=0)
    with pytest.raises(ValueError):
        Reading(consumption_w=0, production_w=MAX_POWER_W + 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=32), st.binary(max_size=32), st.integers(0, MAX_POWER_W),
       st.integers(0, 2**40), st.sampled_from([24, 48, 96, 1440]))
def test_readings_are_integers_in_range(seed: bytes, meter: bytes, capacity: int,
                                        interval: int, ipd: int) -> None:
    p = SyntheticProfile(seed, meter, capacity, intervals_per_day=ipd)
    r = p.reading(interval)
    assert type(r.production_w) is int and type(r.consumption_w) is int
    assert 0 <= r.production_w <= capacity
    assert 0 <= r.consumption_w <= MAX_POWER_W
    assert r == p.reading(interval)


# -- CSV import ------------------------------------------------------------------------------------


def test_csv_import() -> None:
    text = f"{CSV_HEADER}\n0,0,300\n1,1500,250\n2,4000,900\n"
    p = parse_profile_csv(text)
    assert p.rows == ((0, 300), (1500, 250), (4000, 900))
    assert p.reading(1) == Reading(consumption_w=250, production_w=1500)
    assert p.reading(4) == p.reading(1)  # repeats
    assert "1500" not in repr(p)


def test_csv_crlf_and_no_final_newline() -> None:
    crlf = f"{CSV_HEADER}\r\n0,1,2\r\n1,3,4\r\n"
    bare = f"{CSV_HEADER}\n0,1,2\n1,3,4"
    assert parse_profile_csv(crlf) == parse_profile_csv(bare) == RecordedProfile(((1, 2), (3, 4)))


H = CSV_HEADER


@pytest.mark.parametrize(
    ("text", "fault", "line"),
    [
        ("", ProfileFault.BAD_HEADER, 1),
        ("interval,consumption_w,production_w\n0,1,2\n", ProfileFault.BAD_HEADER, 1),
        (f"\ufeff{H}\n0,1,2\n", ProfileFault.BAD_HEADER, 1),
        (f"{H} \n0,1,2\n", ProfileFault.BAD_HEADER, 1),
        (f"{H}\n", ProfileFault.BAD_SIZE, 0),
        (f"{H}\n0,1\n", ProfileFault.MALFORMED_ROW, 2),
        (f"{H}\n0,1,2,3\n", ProfileFault.MALFORMED_ROW, 2),
        (f"{H}\n0,1,2\n1,-5,2\n", ProfileFault.MALFORMED_ROW, 3),
        (f"{H}\n0,1,2\n1,1.5,2\n", ProfileFault.MALFORMED_ROW, 3),
        (f"{H}\n0, 1,2\n", ProfileFault.MALFORMED_ROW, 2),
        (f"{H}\n0,01,2\n", ProfileFault.MALFORMED_ROW, 2),
        (f"{H}\n0,1,2\n\n1,1,2\n", ProfileFault.MALFORMED_ROW, 3),
        (f"{H}\n0,1,2\n1,1,2\n\n", ProfileFault.MALFORMED_ROW, 4),
        (f"{H}\n0,x,2\n", ProfileFault.MALFORMED_ROW, 2),
        (f"{H}\n0,12345678901,2\n", ProfileFault.MALFORMED_ROW, 2),
        (f"{H}\n1,1,2\n", ProfileFault.NOT_CONSECUTIVE, 2),
        (f"{H}\n0,1,2\n0,1,2\n", ProfileFault.NOT_CONSECUTIVE, 3),
        (f"{H}\n0,1,2\n1,1,2\n3,1,2\n", ProfileFault.NOT_CONSECUTIVE, 4),
        (f"{H}\n0,4294967296,2\n", ProfileFault.OUT_OF_RANGE, 2),
        (f"{H}\n0,0,0\n1,0,9999999999\n", ProfileFault.OUT_OF_RANGE, 3),
    ],
)
def test_csv_errors_name_the_line(text: str, fault: ProfileFault, line: int) -> None:
    with pytest.raises(ProfileInvalid) as info:
        parse_profile_csv(text)
    assert info.value.reason is fault
    assert info.value.line == line
    assert f"line {line}" in str(info.value)


def test_csv_row_and_size_limits() -> None:
    text = H + "\n" + "".join(f"{i},1,1\n" for i in range(4))
    assert len(parse_profile_csv(text, max_rows=4).rows) == 4
    with pytest.raises(ProfileInvalid) as info:
        parse_profile_csv(text, max_rows=3)
    assert info.value.reason is ProfileFault.BAD_SIZE
    with pytest.raises(ProfileInvalid) as info:
        parse_profile_csv(H + "\n" + "0,1,1" + " " * 1000, max_rows=3)
    assert info.value.reason is ProfileFault.BAD_SIZE


def test_max_power_is_accepted() -> None:
    p = parse_profile_csv(f"{H}\n0,{MAX_POWER_W},{MAX_POWER_W}\n")
    assert p.reading(0) == Reading(MAX_POWER_W, MAX_POWER_W)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, MAX_POWER_W), st.integers(0, MAX_POWER_W)),
                min_size=1, max_size=50),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_csv_round_trip(rows: list[tuple[int, int]], newline: str, final: bool) -> None:
    text = newline.join([H, *(f"{i},{p},{c}" for i, (p, c) in enumerate(rows))])
    assert parse_profile_csv(text + (newline if final else "")).rows == tuple(rows)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.builds(lambda s: f"{H}\n{s}", st.text(max_size=200)))
def test_arbitrary_text_gives_a_profile_or_a_profile_error(text: str) -> None:
    try:
        parse_profile_csv(text)
    except ProfileInvalid as exc:
        assert isinstance(exc, MarketError)
        assert exc.line >= 0
