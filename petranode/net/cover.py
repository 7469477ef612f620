"""Cover traffic and batching: wire activity that does not depend on trading (SPEC §2 "ISP-level
observation that a node communicated at all", §4.4 traffic-analysis defences). Pure.

**Constant-rate mixing.** :class:`CoverMixer` emits exactly one message per tick of a Poisson
process of rate ``rate_per_s`` (:class:`CoverSchedule`): the head of the real-message queue if
there is one, else a dummy. Real messages *take the place of* dummies and never add ticks, so
the sequence of emission times is a function of the schedule's random stream alone — the same
whether the node trades every interval or never. An observer of a node's links therefore learns
nothing from when or how often it sends (sizes are uniform already, SPEC §4.4). The price is
latency (a real message waits for the next tick, on average ``1/rate``) and capacity (at most
``rate`` real messages per second; the queue is bounded and refuses beyond its bound, which the
caller sees as back-pressure, never as extra ticks). Poisson rather than fixed-period ticks,
as in Loopix: exponential gaps are memoryless, so the time since the last emission says
nothing about whether a real message is waiting.

**Per-hop batching** (optional): :class:`HopBatcher` holds the messages a hop relays for a
random delay drawn uniformly from ``[0, max_delay_ms]`` and releases those due at one timer in
shuffled order, so arrival order at a hop does not map onto departure order.
"""

from __future__ import annotations

import collections
import math
import random
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar, final

T = TypeVar("T")

#: Real messages a mixer holds: about a minute of traffic at a 1/s cover rate.
MAX_MIXER_QUEUE: Final = 64
#: Messages one hop batcher holds before it refuses more (a tunnel hop's queue bound).
MAX_BATCH: Final = 1024


class UniformRng(Protocol):
    """A source of uniform floats in ``[0, 1)`` (``random.SystemRandom`` or a seeded
    ``random.Random`` in tests)."""

    def random(self) -> float: ...


@final
class CoverSchedule:
    """Poisson arrivals: exponential inter-arrival times with mean ``1 / rate_per_s``."""

    __slots__ = ("_rng", "rate_per_s")

    def __init__(self, rate_per_s: float, rng: UniformRng | None = None) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError("cover rate must be a positive number")
        self.rate_per_s = rate_per_s
        self._rng: UniformRng = rng if rng is not None else random.SystemRandom()

    def next_delay(self) -> float:
        """Seconds until the next emission (inverse-CDF sampling of Exp(rate))."""
        # 1 − U lies in (0, 1], so the logarithm is finite.
        return -math.log(1.0 - self._rng.random()) / self.rate_per_s

    def next_delay_ms(self) -> int:
        return max(1, round(self.next_delay() * 1000))


@final
@dataclass(frozen=True, slots=True)
class Emit(Generic[T]):
    """Send this now: ``message`` is a real message, or ``None`` for a dummy."""

    message: T | None

    @property
    def is_dummy(self) -> bool:
        return self.message is None


@final
class CoverMixer(Generic[T]):
    """Constant-rate mixing of real messages into a Poisson stream of cover messages."""

    __slots__ = ("_next_ms", "_queue", "_schedule", "max_queue")

    def __init__(self, schedule: CoverSchedule, max_queue: int = MAX_MIXER_QUEUE) -> None:
        self._schedule = schedule
        self._queue: collections.deque[T] = collections.deque()
        self._next_ms: int | None = None
        self.max_queue = max_queue

    def start(self, now: int) -> int:
        """Begin; returns when to call :meth:`tick` first."""
        self._next_ms = now + self._schedule.next_delay_ms()
        return self._next_ms

    def offer(self, message: T) -> bool:
        """Queue a real message for the next free tick; ``False`` if the queue is full."""
        if len(self._queue) >= self.max_queue:
            return False
        self._queue.append(message)
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    def tick(self, now: int) -> tuple[list[Emit[T]], int]:
        """Emissions due by ``now`` (one per elapsed tick) and when to call again."""
        if self._next_ms is None:
            raise RuntimeError("tick before start")
        emitted: list[Emit[T]] = []
        while self._next_ms <= now:
            emitted.append(Emit(self._queue.popleft() if self._queue else None))
            self._next_ms += self._schedule.next_delay_ms()
        return emitted, self._next_ms


@final
class HopBatcher(Generic[T]):
    """Random per-hop delay with batched, shuffled release."""

    __slots__ = ("_held", "_rng", "max_delay_ms")

    def __init__(self, max_delay_ms: int, rng: random.Random | None = None) -> None:
        if max_delay_ms < 0:
            raise ValueError("batching delay must be >= 0")
        self.max_delay_ms = max_delay_ms
        self._rng = rng if rng is not None else random.SystemRandom()
        self._held: list[tuple[int, T]] = []

    def add(self, message: T, now: int) -> int | None:
        """Hold ``message``; returns its release time, or ``None`` if the batch is full."""
        if len(self._held) >= MAX_BATCH:
            return None
        release = now + self._rng.randint(0, self.max_delay_ms)
        self._held.append((release, message))
        return release

    def release(self, now: int) -> tuple[list[T], int | None]:
        """Messages due by ``now`` in random order, and the next release time (or ``None``)."""
        due = [message for at, message in self._held if at <= now]
        self._held = [(at, message) for at, message in self._held if at > now]
        self._rng.shuffle(due)
        return due, min((at for at, _ in self._held), default=None)
