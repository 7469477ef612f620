"""Gamma decoy selection: ring shape, errors, and its distribution against the gamma it claims."""

from __future__ import annotations

import math
import random
import statistics
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto import decoys
from petranode.crypto.decoys import GammaPicker, select_ring
from petranode.crypto.errors import CryptoError

YEAR = 365 * 86400.0
SPACING = 100.0  # one output every 100 s for a year: 315,360 outputs


@cache
def ledger() -> tuple[list[float], float]:
    times = [i * SPACING for i in range(int(YEAR / SPACING))]
    return times, times[-1]


@cache
def picker() -> GammaPicker:
    times, now = ledger()
    return GammaPicker.build(times, now)


def ks_statistic(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov–Smirnov D."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            i += 1
        else:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    return d


def reference_log_ages(n: int, seed: int) -> list[float]:
    """Log-ages straight from the generative model (no ledger mapping), truncated like it."""
    rng = random.Random(seed)
    times, now = ledger()
    newest_unlocked_age = now - times[picker().num_unlocked - 1]
    oldest_age = now - times[0]
    out: list[float] = []
    while len(out) < n:
        x = math.exp(rng.gammavariate(decoys.GAMMA_SHAPE, decoys.GAMMA_SCALE))
        if x > decoys.DEFAULT_UNLOCK_TIME:
            x -= decoys.DEFAULT_UNLOCK_TIME
        else:
            x = rng.random() * decoys.RECENT_SPEND_WINDOW
        age = newest_unlocked_age + x
        if age <= oldest_age:
            out.append(math.log(age))
    return out


@cache
def sampled_rings() -> tuple[list[float], list[int]]:
    """Decoy log-ages and real positions over 300 rings of 16 with gamma-drawn real spends."""
    rng = random.Random(20240601)
    times, now = ledger()
    pk = picker()
    log_ages: list[float] = []
    positions: list[int] = []
    for _ in range(300):
        real = None
        while real is None:
            real = pk.pick(rng)
        ring = pk.select(real, 16, rng=rng)
        positions.append(ring.real_position)
        log_ages += [math.log(max(now - times[i], 1.0)) for i in ring.indices if i != real]
    return log_ages, positions


def test_log_ages_follow_the_gamma() -> None:
    log_ages, _ = sampled_rings()
    reference = reference_log_ages(len(log_ages), seed=7)
    n = len(log_ages)
    # Two-sample KS critical value at alpha = 0.001: 1.95·sqrt(2/n).
    critical = 1.95 * math.sqrt(2 / n)
    assert ks_statistic(log_ages, reference) < critical
    # The test has power: uniformly chosen decoys are far off.
    rng = random.Random(3)
    times, now = ledger()
    uniform = [math.log(now - times[rng.randrange(0, picker().num_unlocked)])
               for _ in range(n)]
    assert ks_statistic(uniform, reference) > 5 * critical


def test_median_decoy_age_is_about_two_days() -> None:
    log_ages, _ = sampled_rings()
    # exp of the gamma's median, θ(k − 1/3) ≈ 11.77, is ~1.5 days; truncation at one year
    # and the recent-spend window pull it slightly younger.
    # Sample medians of ~4,500 log-ages (σ ≈ 2.7) each wander by ~0.05: allow 0.25.
    median = statistics.median(log_ages)
    assert 11.3 < median < 12.0
    assert abs(median - statistics.median(reference_log_ages(len(log_ages), seed=9))) < 0.25


def test_real_position_is_uniform() -> None:
    _, positions = sampled_rings()
    expected = len(positions) / 16
    chi2 = sum((positions.count(k) - expected) ** 2 / expected for k in range(16))
    assert chi2 < 37.7  # chi-square, 15 degrees of freedom, alpha = 0.001


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(16, 40))
def test_ring_shape(seed: int, ring_size: int) -> None:
    times, now = ledger()
    pk = picker()
    real = random.Random(seed).randrange(0, pk.num_unlocked)
    ring = pk.select(real, ring_size, rng=random.Random(seed))
    assert len(ring.indices) == ring_size
    assert list(ring.indices) == sorted(set(ring.indices))
    assert ring.real_index == real
    assert all(times[i] <= now - decoys.DEFAULT_UNLOCK_TIME for i in ring.indices)


def test_same_seed_same_ring() -> None:
    times = [float(i) for i in range(5000)]
    a = select_ring(times, 10, now=10000.0, rng=random.Random(1))
    b = select_ring(times, 10, now=10000.0, rng=random.Random(1))
    assert a == b
    c = select_ring(times, 10, now=10000.0)  # the OS CSPRNG by default
    assert c.real_index == 10 and len(c.indices) == 16


def test_block_outputs_are_picked_uniformly_within_the_block() -> None:
    # Ten "blocks" of 100 outputs: a pick lands in a block, then anywhere inside it.
    times = [float(3600 * (i // 100)) for i in range(1000)]
    rng = random.Random(11)
    pk = GammaPicker.build(times, times[-1] + 2 * 3600)
    hits = [pk.pick(rng) for _ in range(3000)]
    within = [i % 100 for i in hits if i is not None]
    assert len(set(within)) > 90


def test_tiny_ledger_fills_the_ring() -> None:
    times = [float(i) for i in range(16)]
    ring = select_ring(times, 3, now=16.0 + decoys.DEFAULT_UNLOCK_TIME, rng=random.Random(2))
    assert ring.indices == tuple(range(16))
    assert ring.real_position == 3


def test_errors() -> None:
    times = [float(i) for i in range(100)]
    now = 100.0 + decoys.DEFAULT_UNLOCK_TIME
    with pytest.raises(CryptoError):
        select_ring(times, 5, 11, now=now)  # below the minimum ring size
    assert len(select_ring(times, 5, 11, now=now, min_ring_size=11).indices) == 11
    with pytest.raises(CryptoError):
        select_ring(times, 99, now=99.0)  # the real output is still locked
    with pytest.raises(CryptoError):
        select_ring(times, 100, now=now)  # no such output
    with pytest.raises(CryptoError):
        select_ring(times[:10], 5, now=now)  # fewer outputs than the ring size
    with pytest.raises(CryptoError):
        select_ring([2.0, 1.0, *times], 0, now=now)  # unsorted
    with pytest.raises(CryptoError):
        select_ring([], 0)
    with pytest.raises(CryptoError):
        decoys.DecoyRing((3, 2), 0)
