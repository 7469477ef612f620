"""The market clock: intervals, gate closure, trade deadline, settlement time (SPEC §4.7).

Theory of operation
-------------------
Time is cut into intervals counted from the genesis (SPEC §4.7; accelerated in testnets).
All market times are **integer milliseconds since the Unix epoch**: the wire encoding has
no floats (``wire/codec.py``), and integers make every boundary exact. :func:`to_ms` turns
a :class:`~petranode.clock.Clock` reading into one; nothing here reads a clock.

For interval ``i`` (``T₀`` = genesis, ``Δ`` = interval length)::

    start(i)          = T₀ + i·Δ                      delivery begins
    end(i)            = start(i+1)                    delivery ends (exclusive)
    gate_closure(i)   = start(i) − gate_lead          last moment + 1 for offers/acceptances
    deadline(i)       = gate_closure(i) + clearing    every trade reported cleared or failed
    settlement(i)     = end(i) + settlement_lag       meters have reported; settle

    ──── OPEN ────┤gate├─ CLEARING ─┤deadline├─ SCHEDULED ─┤start├─ DELIVERY ─┤end├─
                                                         METERING ─┤settlement├─ SETTLEABLE

An offer or acceptance for interval ``i`` is valid only while ``now < gate_closure(i)``
(half-open windows throughout: at exactly ``gate_closure(i)`` the gate is closed). Trading
for ``i`` therefore ends ``gate_lead`` before delivery — the bounded-time clearing of SPEC §2
domain characteristic (1): ``clearing ≤ gate_lead`` makes every trade's outcome known by
``deadline(i) ≤ start(i)``, before the energy has to flow. The lead may exceed one interval
(trading for ``i`` then closes while an earlier interval is still being delivered).
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import OutOfWindow, WindowFault

if TYPE_CHECKING:
    from petranode.genesis import Genesis

log = logging.getLogger(__name__)

MS_PER_S: Final = 1000


def to_ms(seconds: float) -> int:
    """A :class:`~petranode.clock.Clock` reading (float seconds) as integer milliseconds.

    Floors, so a time never appears later than it is: a gate that closes at ``t`` is closed
    for every reading ≥ ``t``.
    """
    return math.floor(seconds * MS_PER_S)


class IntervalPhase(enum.Enum):
    """Where an interval is in its life at some ``now``; see the module timeline."""

    OPEN = "open"
    CLEARING = "clearing"
    SCHEDULED = "scheduled"
    DELIVERY = "delivery"
    METERING = "metering"
    SETTLEABLE = "settleable"


def check_interval(interval: int) -> None:
    """Refuse an interval index outside 0 … 2⁶³−1 (the ledger's asset range)."""
    if not 0 <= interval <= MAX_INTERVAL:
        raise OutOfWindow(WindowFault.BAD_INTERVAL, str(interval))


@final
@dataclass(frozen=True, slots=True)
class MarketClock:
    """The interval schedule of one network: pure functions of an interval and ``now``."""

    #: Start of interval 0, ms since the Unix epoch (the genesis time).
    genesis_ms: int
    #: Length of every interval, ms.
    interval_ms: int
    #: How long before an interval starts its gate closes, ms.
    gate_lead_ms: int
    #: How long after gate closure every trade must be reported cleared or failed, ms.
    clearing_ms: int
    #: How long after an interval ends its meters have to report before it settles, ms.
    settlement_lag_ms: int
    #: Intervals per reputation epoch (``epoch_of``; the genesis parameter of that name).
    reputation_epoch_intervals: int = 4

    def __post_init__(self) -> None:
        if self.genesis_ms < 0:
            raise ValueError("genesis_ms must not be negative")
        if self.interval_ms < 1:
            raise ValueError("interval_ms must be at least 1")
        if self.gate_lead_ms < 0 or self.settlement_lag_ms < 0:
            raise ValueError("gate_lead_ms and settlement_lag_ms must not be negative")
        if not 0 <= self.clearing_ms <= self.gate_lead_ms:
            # Otherwise a trade's outcome could still be unknown when delivery starts.
            raise ValueError("clearing_ms must satisfy 0 <= clearing_ms <= gate_lead_ms")
        if self.reputation_epoch_intervals < 1:
            raise ValueError("reputation_epoch_intervals must be at least 1")

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> MarketClock:
        """The clock of ``genesis``'s network: its interval schedule and market parameters."""
        params = genesis.params
        return cls(
            genesis_ms=genesis.genesis_time * MS_PER_S,
            interval_ms=genesis.interval_s * MS_PER_S,
            gate_lead_ms=params.gate_lead_ms,
            clearing_ms=params.clearing_ms,
            settlement_lag_ms=params.settlement_lag_ms,
            reputation_epoch_intervals=params.reputation_epoch_intervals,
        )

    # -- the timeline of one interval ----------------------------------------------------------

    def start(self, interval: int) -> int:
        check_interval(interval)
        return self.genesis_ms + interval * self.interval_ms

    def end(self, interval: int) -> int:
        """When delivery of ``interval`` ends (exclusive): the start of the next one."""
        return self.start(interval) + self.interval_ms

    def gate_closure(self, interval: int) -> int:
        """The first moment at which offers and acceptances for ``interval`` are invalid."""
        return self.start(interval) - self.gate_lead_ms

    def deadline(self, interval: int) -> int:
        """By when every trade for ``interval`` is reported to both sides cleared or failed."""
        return self.gate_closure(interval) + self.clearing_ms

    def settlement_time(self, interval: int) -> int:
        """When ``interval`` may be settled from its meter reports."""
        return self.end(interval) + self.settlement_lag_ms

    # -- questions about now -------------------------------------------------------------------

    def interval_at(self, now_ms: int) -> int:
        """The interval being delivered at ``now_ms``: ``start(i) <= now_ms < end(i)``."""
        if now_ms < self.genesis_ms:
            raise OutOfWindow(WindowFault.BEFORE_GENESIS)
        return (now_ms - self.genesis_ms) // self.interval_ms

    def epoch_at(self, now_ms: int) -> int:
        """The reputation epoch of the interval being delivered at ``now_ms``; raises
        ``OutOfWindow(BEFORE_GENESIS)`` before genesis, like :meth:`interval_at`."""
        return epoch_of(self.interval_at(now_ms), self.reputation_epoch_intervals)

    def gate_open(self, interval: int, now_ms: int) -> bool:
        """Whether an offer or acceptance for ``interval`` is still valid at ``now_ms``."""
        return now_ms < self.gate_closure(interval)

    def check_gate_open(self, interval: int, now_ms: int) -> None:
        """Raise ``OutOfWindow(GATE_CLOSED)`` unless :meth:`gate_open`."""
        if not self.gate_open(interval, now_ms):
            raise OutOfWindow(WindowFault.GATE_CLOSED, f"interval {interval}")

    def first_open_interval(self, now_ms: int) -> int:
        """The earliest interval whose gate is still open at ``now_ms`` (0 before genesis)."""
        # gate_closure(i) > now  ⇔  T₀ + i·Δ > now + lead  ⇔  i > (now + lead − T₀) / Δ.
        offset = now_ms + self.gate_lead_ms - self.genesis_ms
        return 0 if offset < 0 else offset // self.interval_ms + 1

    def last_settleable_interval(self, now_ms: int) -> int | None:
        """The latest interval whose settlement time has come, or ``None`` if none has."""
        # settlement(i) <= now  ⇔  T₀ + (i+1)·Δ + lag <= now.
        offset = now_ms - self.settlement_lag_ms - self.genesis_ms
        if offset < self.interval_ms:
            return None
        return offset // self.interval_ms - 1

    def check_settleable(self, interval: int, now_ms: int) -> None:
        if now_ms < self.settlement_time(interval):
            raise OutOfWindow(WindowFault.NOT_SETTLEABLE, f"interval {interval}")

    def phase(self, interval: int, now_ms: int) -> IntervalPhase:
        """Where ``interval`` is at ``now_ms``.

        With a zero clearing window or a deadline at the start some phases are empty; the
        later phase wins at a shared boundary.
        """
        boundaries = (
            (self.settlement_time(interval), IntervalPhase.SETTLEABLE),
            (self.end(interval), IntervalPhase.METERING),
            (self.start(interval), IntervalPhase.DELIVERY),
            (self.deadline(interval), IntervalPhase.SCHEDULED),
            (self.gate_closure(interval), IntervalPhase.CLEARING),
        )
        for at, phase in boundaries:
            if now_ms >= at:
                return phase
        return IntervalPhase.OPEN


def epoch_of(interval: int, intervals_per_epoch: int) -> int:
    """The reputation epoch an interval belongs to (see ``reputation.py``)."""
    check_interval(interval)
    if intervals_per_epoch < 1:
        raise ValueError("intervals_per_epoch must be at least 1")
    return interval // intervals_per_epoch
