"""Time as a seam (STYLE: ``Clock`` protocol): services take a clock, tests pass a virtual one."""

from __future__ import annotations

import time
from typing import Protocol, final


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: for timestamps that other nodes read."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never jump: for timeouts and uptimes."""
        ...


@final
class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
