"""Decoy selection for rings: Monero's gamma picker over one asset's outputs (SPEC §2, §4.5).

A ring hides the real input only if its decoys look like outputs people actually spend.
Miller et al. ("An Empirical Analysis of Traceability in the Monero Blockchain", PETS 2018)
found that the age of spent outputs is close to log-gamma distributed; Monero's wallet2
``gamma_picker`` (``src/wallet/wallet2.cpp``) samples decoys that way, and this module
follows it:

1. Draw ``x = exp(g)`` seconds with ``g ~ Gamma(shape 19.28, scale 1/1.61)``.
2. Young outputs are locked (``unlock_time``, Monero's 10 blocks × 120 s). If ``x`` exceeds
   it, subtract it, so that ``x`` counts back from the newest *unlocked* output; otherwise pick
   ``x`` uniformly in the recent-spend window (15 blocks × 120 s).
3. Turn seconds into a number of outputs with the average time between outputs over the last
   year (Monero assumes a constant output rate: ``average_output_time``), count back that many
   from the newest unlocked output; past the oldest output the pick is void and redrawn.
4. Take the "block" holding that output — here: all outputs with the same creation time — and
   pick one of them uniformly, so busy blocks are not over-represented.

Picks are repeated, duplicates and the real output ignored, until the ring is full; then the
ring is sorted (output order reveals nothing) and the real output's position reported. Inputs
are one asset's outputs only: rings never mix assets (SPEC §4.6 "ring members … match the
asset"). Times are seconds; a ledger that counts heights passes ``height × block_time``.

If a small or oddly shaped ledger makes the gamma keep missing (every draw void or a
duplicate), selection falls back to uniform picks among the remaining unlocked outputs after
``100 × ring_size`` attempts, rather than looping; Monero instead asks the daemon for more.

The function is pure: randomness comes from an injected ``random.Random``-like object
(default ``random.SystemRandom()``), the current time from the caller.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, final

from petranode.crypto.errors import CryptoError

log = logging.getLogger(__name__)

#: wallet2 ``GAMMA_SHAPE`` / ``GAMMA_SCALE`` (Miller et al., fitted on log-seconds).
GAMMA_SHAPE: Final = 19.28
GAMMA_SCALE: Final = 1 / 1.61
#: wallet2 ``DEFAULT_UNLOCK_TIME``: CRYPTONOTE_DEFAULT_TX_SPENDABLE_AGE (10) × 120 s.
DEFAULT_UNLOCK_TIME: Final = 10 * 120.0
#: wallet2 ``RECENT_SPEND_WINDOW``: 15 × 120 s.
RECENT_SPEND_WINDOW: Final = 15 * 120.0
#: wallet2 averages the output rate over at most a year of blocks.
AVERAGE_WINDOW: Final = 86400 * 365.0
#: SPEC §4.5: the network's minimum ring size defaults to 16 (Monero's since 2022).
DEFAULT_MIN_RING_SIZE: Final = 16
_ATTEMPTS_PER_MEMBER: Final = 100


class RandomSource(Protocol):
    """The part of ``random.Random`` the picker uses."""

    def random(self) -> float: ...

    def gammavariate(self, alpha: float, beta: float) -> float: ...

    def randrange(self, start: int, stop: int) -> int: ...


@final
@dataclass(frozen=True, slots=True)
class DecoyRing:
    """Ring members as sorted output indices, and where the real one sits."""

    indices: tuple[int, ...]
    real_position: int

    def __post_init__(self) -> None:
        if not 0 <= self.real_position < len(self.indices):
            raise CryptoError("real position outside the ring")
        if any(a >= b for a, b in itertools.pairwise(self.indices)):
            raise CryptoError("ring indices must be strictly increasing")

    @property
    def real_index(self) -> int:
        return self.indices[self.real_position]


@final
@dataclass(frozen=True, slots=True)
class GammaPicker:
    """wallet2's ``gamma_picker`` over one asset's sorted output creation times."""

    times: Sequence[float]
    num_unlocked: int
    average_output_time: float
    unlock_time: float = DEFAULT_UNLOCK_TIME
    recent_window: float = RECENT_SPEND_WINDOW
    shape: float = GAMMA_SHAPE
    scale: float = GAMMA_SCALE

    @classmethod
    def build(
        cls,
        times: Sequence[float],
        now: float,
        *,
        unlock_time: float = DEFAULT_UNLOCK_TIME,
        recent_window: float = RECENT_SPEND_WINDOW,
        shape: float = GAMMA_SHAPE,
        scale: float = GAMMA_SCALE,
    ) -> GammaPicker:
        if not times:
            raise CryptoError("no outputs to pick from")
        if any(a > b for a, b in itertools.pairwise(times)):
            raise CryptoError("output times must be sorted")
        num_unlocked = bisect.bisect_right(times, now - unlock_time)
        if num_unlocked == 0:
            raise CryptoError("no unlocked outputs")
        # Output rate over the last year (or the whole history if shorter), as wallet2 does
        # with blocks_to_consider / outputs_to_consider; at least one second so a ledger whose
        # outputs all share one timestamp still yields a finite rate.
        span = max(min(now - times[0], AVERAGE_WINDOW), 1.0)
        considered = len(times) - bisect.bisect_left(times, now - span)
        return cls(
            times, num_unlocked, span / max(considered, 1), unlock_time, recent_window, shape, scale
        )

    def pick(self, rng: RandomSource) -> int | None:
        """One output index, or None for a void pick (older than the ledger)."""
        x = math.exp(rng.gammavariate(self.shape, self.scale))
        if x > self.unlock_time:
            x -= self.unlock_time
        else:
            x = rng.random() * self.recent_window
        back = int(x / self.average_output_time)
        if back >= self.num_unlocked:
            return None
        target = self.num_unlocked - 1 - back
        t = self.times[target]
        first = bisect.bisect_left(self.times, t, 0, self.num_unlocked)
        last = bisect.bisect_right(self.times, t, first, self.num_unlocked)
        return rng.randrange(first, last)

    def select(
        self,
        real_index: int,
        ring_size: int = DEFAULT_MIN_RING_SIZE,
        *,
        min_ring_size: int = DEFAULT_MIN_RING_SIZE,
        rng: RandomSource | None = None,
    ) -> DecoyRing:
        """A ring of ``ring_size`` distinct unlocked outputs, ``real_index`` among them."""
        if ring_size < min_ring_size:
            raise CryptoError("ring size below the network minimum")
        if not 0 <= real_index < self.num_unlocked:
            raise CryptoError("real output is unknown or still locked")
        if ring_size > self.num_unlocked:
            raise CryptoError("not enough unlocked outputs for the ring size")
        source: RandomSource = random.SystemRandom() if rng is None else rng
        chosen = {real_index}
        attempts = 0
        while len(chosen) < ring_size and attempts < _ATTEMPTS_PER_MEMBER * ring_size:
            attempts += 1
            index = self.pick(source)
            if index is not None:
                chosen.add(index)
        if len(chosen) < ring_size:
            log.debug("decoys.gamma_exhausted attempts=%d", attempts)
            while len(chosen) < ring_size:
                chosen.add(source.randrange(0, self.num_unlocked))
        indices = tuple(sorted(chosen))
        return DecoyRing(indices, indices.index(real_index))


def select_ring(
    times: Sequence[float],
    real_index: int,
    ring_size: int = DEFAULT_MIN_RING_SIZE,
    *,
    now: float | None = None,
    min_ring_size: int = DEFAULT_MIN_RING_SIZE,
    unlock_time: float = DEFAULT_UNLOCK_TIME,
    rng: RandomSource | None = None,
) -> DecoyRing:
    """A ring of ``ring_size`` distinct unlocked outputs of one asset, the real one included.

    ``times`` are the creation times (seconds, sorted) of all the asset's outputs, indexed by
    output index; ``now`` defaults to the newest output's time. A wallet building several
    rings against one ledger snapshot builds the :class:`GammaPicker` once and calls
    :meth:`GammaPicker.select`.
    """
    if not times:
        raise CryptoError("no outputs to pick from")
    picker = GammaPicker.build(times, times[-1] if now is None else now, unlock_time=unlock_time)
    return picker.select(real_index, ring_size, min_ring_size=min_ring_size, rng=rng)
