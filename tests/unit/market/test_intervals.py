"""The market clock: interval arithmetic, gate closure, deadline and settlement windows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.market.errors import OutOfWindow, WindowFault
from petranode.market.intervals import IntervalPhase, MarketClock, epoch_of, to_ms

GENESIS_MS = 1_700_000_000_000
CLOCK = MarketClock(genesis_ms=GENESIS_MS, interval_ms=900_000, gate_lead_ms=300_000,
                    clearing_ms=120_000, settlement_lag_ms=60_000)

clocks = st.builds(
    lambda g, dt, lead, clear_frac, lag: MarketClock(g, dt, lead, lead * clear_frac // 100, lag),
    st.integers(0, 2**42), st.integers(1, 10**7), st.integers(0, 10**8), st.integers(0, 100),
    st.integers(0, 10**7),
)
intervals = st.integers(0, 2**40)


def test_timeline_of_one_interval() -> None:
    assert CLOCK.start(0) == GENESIS_MS
    assert CLOCK.end(0) == CLOCK.start(1) == GENESIS_MS + 900_000
    assert CLOCK.gate_closure(4) == CLOCK.start(4) - 300_000
    assert CLOCK.deadline(4) == CLOCK.gate_closure(4) + 120_000
    assert CLOCK.settlement_time(4) == CLOCK.end(4) + 60_000


def test_gate_is_half_open() -> None:
    gate = CLOCK.gate_closure(10)
    assert CLOCK.gate_open(10, gate - 1)
    assert not CLOCK.gate_open(10, gate)
    CLOCK.check_gate_open(10, gate - 1)
    with pytest.raises(OutOfWindow) as caught:
        CLOCK.check_gate_open(10, gate)
    assert caught.value.reason is WindowFault.GATE_CLOSED


def test_before_genesis_and_bad_interval() -> None:
    with pytest.raises(OutOfWindow) as caught:
        CLOCK.interval_at(GENESIS_MS - 1)
    assert caught.value.reason is WindowFault.BEFORE_GENESIS
    with pytest.raises(OutOfWindow) as caught:
        CLOCK.start(-1)
    assert caught.value.reason is WindowFault.BAD_INTERVAL
    with pytest.raises(OutOfWindow):
        CLOCK.start(2**63)
    assert CLOCK.first_open_interval(0) == 0
    assert CLOCK.last_settleable_interval(GENESIS_MS) is None


def test_settleable_window() -> None:
    with pytest.raises(OutOfWindow) as caught:
        CLOCK.check_settleable(3, CLOCK.settlement_time(3) - 1)
    assert caught.value.reason is WindowFault.NOT_SETTLEABLE
    CLOCK.check_settleable(3, CLOCK.settlement_time(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval_ms": 0}, "interval_ms"),
        ({"gate_lead_ms": -1}, "gate_lead_ms"),
        ({"clearing_ms": 300_001}, "clearing_ms"),
        ({"genesis_ms": -1}, "genesis_ms"),
    ],
)
def test_invalid_clock(kwargs: dict[str, int], message: str) -> None:
    base = {"genesis_ms": 0, "interval_ms": 900_000, "gate_lead_ms": 300_000,
            "clearing_ms": 0, "settlement_lag_ms": 0}
    with pytest.raises(ValueError, match=message):
        MarketClock(**(base | kwargs))


def test_phases_in_order() -> None:
    i = 7
    points = [
        (CLOCK.gate_closure(i) - 1, IntervalPhase.OPEN),
        (CLOCK.gate_closure(i), IntervalPhase.CLEARING),
        (CLOCK.deadline(i), IntervalPhase.SCHEDULED),
        (CLOCK.start(i), IntervalPhase.DELIVERY),
        (CLOCK.end(i) - 1, IntervalPhase.DELIVERY),
        (CLOCK.end(i), IntervalPhase.METERING),
        (CLOCK.settlement_time(i), IntervalPhase.SETTLEABLE),
    ]
    for now, phase in points:
        assert CLOCK.phase(i, now) is phase


def test_to_ms_floors() -> None:
    assert to_ms(1.0) == 1000
    assert to_ms(1.0009) == 1000
    assert to_ms(1_700_000_000.5) == 1_700_000_000_500


def test_epoch_of() -> None:
    assert [epoch_of(i, 4) for i in range(9)] == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    with pytest.raises(ValueError):
        epoch_of(3, 0)


def test_epoch_at_follows_the_interval_being_delivered() -> None:
    assert CLOCK.reputation_epoch_intervals == 4
    assert CLOCK.epoch_at(GENESIS_MS) == 0
    assert CLOCK.epoch_at(CLOCK.start(4) - 1) == 0
    assert CLOCK.epoch_at(CLOCK.start(4)) == 1
    hourly = MarketClock(GENESIS_MS, 900_000, 300_000, 0, 0, reputation_epoch_intervals=96)
    assert hourly.epoch_at(hourly.start(96) - 1) == 0
    assert hourly.epoch_at(hourly.start(96)) == 1
    with pytest.raises(OutOfWindow) as caught:
        CLOCK.epoch_at(GENESIS_MS - 1)
    assert caught.value.reason is WindowFault.BEFORE_GENESIS
    with pytest.raises(ValueError, match="reputation_epoch_intervals"):
        MarketClock(0, 900_000, 0, 0, 0, reputation_epoch_intervals=0)


@settings(max_examples=300, deadline=None)
@given(clocks, st.integers(0, 2**44))
def test_interval_at_contains_now(clock: MarketClock, offset: int) -> None:
    now = clock.genesis_ms + offset
    i = clock.interval_at(now)
    assert clock.start(i) <= now < clock.end(i)


@settings(max_examples=300, deadline=None)
@given(clocks, intervals)
def test_timeline_is_ordered(clock: MarketClock, i: int) -> None:
    assert clock.gate_closure(i) <= clock.deadline(i) <= clock.start(i) < clock.end(i)
    assert clock.end(i) <= clock.settlement_time(i)
    assert clock.end(i) == clock.start(i + 1)


@settings(max_examples=300, deadline=None)
@given(clocks, st.integers(0, 2**44))
def test_first_open_interval_is_the_earliest_open(clock: MarketClock, now: int) -> None:
    first = clock.first_open_interval(now)
    assert clock.gate_open(first, now)
    if first > 0:
        assert not clock.gate_open(first - 1, now)


@settings(max_examples=300, deadline=None)
@given(clocks, st.integers(0, 2**44))
def test_last_settleable_is_the_latest(clock: MarketClock, now: int) -> None:
    last = clock.last_settleable_interval(now)
    if last is None:
        assert now < clock.settlement_time(0)
    else:
        assert clock.settlement_time(last) <= now < clock.settlement_time(last + 1)


@settings(max_examples=300, deadline=None)
@given(clocks, intervals, st.integers(-(2**30), 2**30))
def test_gate_and_phase_agree(clock: MarketClock, i: int, delta: int) -> None:
    now = clock.gate_closure(i) + delta
    assert clock.gate_open(i, now) == (clock.phase(i, now) is IntervalPhase.OPEN)


@settings(max_examples=200, deadline=None)
@given(clocks, intervals, st.integers(0, 2**30), st.integers(0, 2**30))
def test_phase_is_monotonic(clock: MarketClock, i: int, a: int, b: int) -> None:
    order = list(IntervalPhase)
    early, late = sorted((a, b))
    base = clock.gate_closure(i) - 2**29
    assert order.index(clock.phase(i, base + early)) <= order.index(clock.phase(i, base + late))
