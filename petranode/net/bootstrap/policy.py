"""When to dial the directory authorities again (SPEC §4.3: bootstrap from the authorities).

A pure schedule: exponential backoff with full jitter per authority, reset by a success.
Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter") keeps a testnet whose
nodes all start at once from dialing the authority in lock-step after it restarts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final, final

#: First retry after up to this many seconds.
BASE_DELAY_S: Final = 0.2
#: A dead authority is tried at least this often.
MAX_DELAY_S: Final = 10.0


@final
@dataclass(slots=True)
class Backoff:
    """Per-target failure counter that yields the next delay."""

    rng: random.Random = field(default_factory=random.SystemRandom)
    base_s: float = BASE_DELAY_S
    cap_s: float = MAX_DELAY_S
    failures: int = 0

    def failed(self) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.failures, 16)))
        return self.rng.uniform(self.base_s / 2, ceiling)

    def succeeded(self) -> None:
        self.failures = 0
