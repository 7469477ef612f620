"""Cover traffic: Poisson schedule statistics, load-independent constant-rate mixing, batching."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.net.cover import CoverMixer, CoverSchedule, Emit, HopBatcher

START = 1_735_689_600_000


def test_mean_inter_arrival_is_one_over_rate() -> None:
    rate = 4.0
    schedule = CoverSchedule(rate, random.Random(20250101))
    draws = [schedule.next_delay() for _ in range(40_000)]
    # Exp(rate) has mean = std = 1/rate; the sample mean's std is (1/rate)/200 = 0.5 %, so a
    # 3 % bound is six standard deviations: it fails only if the sampler is wrong.
    assert statistics.fmean(draws) == pytest.approx(1 / rate, rel=0.03)
    assert statistics.pstdev(draws) == pytest.approx(1 / rate, rel=0.05)
    assert min(draws) >= 0


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError):
        CoverSchedule(rate)


def _emission_times(load: list[int], seed: int, horizon_ms: int) -> tuple[list[int], int]:
    """Emission times of a mixer fed real messages at the times in ``load``; real ones sent."""
    mixer: CoverMixer[int] = CoverMixer(CoverSchedule(2.0, random.Random(seed)))
    wake = mixer.start(START)
    times: list[int] = []
    real = 0
    pending = sorted(load)
    while wake <= START + horizon_ms:
        while pending and pending[0] <= wake:
            mixer.offer(pending.pop(0))
        emitted, next_wake = mixer.tick(wake)
        times.extend([wake] * len(emitted))
        real += sum(1 for e in emitted if not e.is_dummy)
        wake = next_wake
    return times, real


def test_mixer_output_does_not_depend_on_load() -> None:
    horizon = 600_000
    idle, idle_real = _emission_times([], 7, horizon)
    busy, busy_real = _emission_times(list(range(START, START + horizon, 100)), 7, horizon)
    bursty, bursty_real = _emission_times([START + 300_000] * 50, 7, horizon)
    assert idle == busy == bursty
    assert idle_real == 0 and busy_real == len(busy) and 0 < bursty_real <= 50
    # About rate × horizon emissions whatever the load (Poisson: ±5 % is > 4 σ here).
    assert len(idle) == pytest.approx(2.0 * horizon / 1000, rel=0.1)


def test_real_messages_replace_dummies_in_order() -> None:
    mixer: CoverMixer[str] = CoverMixer(CoverSchedule(1.0, random.Random(1)), max_queue=2)
    wake = mixer.start(START)
    assert mixer.offer("a") and mixer.offer("b")
    assert not mixer.offer("c")  # bounded: back-pressure, never an extra tick
    out: list[Emit[str]] = []
    for _ in range(3):
        emitted, wake = mixer.tick(wake)
        out.extend(emitted)
    assert [e.message for e in out] == ["a", "b", None]


def test_tick_before_start_is_misuse() -> None:
    with pytest.raises(RuntimeError):
        CoverMixer[int](CoverSchedule(1.0)).tick(START)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 5_000), max_size=40), st.integers(0, 2_000))
def test_batcher_delays_bounded_and_releases_everything(arrivals: list[int], delay: int) -> None:
    batcher: HopBatcher[int] = HopBatcher(delay, random.Random(3))
    for i, at in enumerate(sorted(arrivals)):
        release = batcher.add(i, START + at)
        assert release is not None and START + at <= release <= START + at + delay
    released, next_at = batcher.release(START + 5_000 + delay)
    assert sorted(released) == list(range(len(arrivals)))
    assert next_at is None
