"""A bounded set of recently seen nonces with expiry (SPEC §4.4: replays are dropped).

I2P keeps a decaying Bloom filter per hop; petranode keeps the exact nonces instead, so there
are no false positives (a Bloom filter drops a small share of honest messages). Each nonce is
remembered until its own expiry — a tunnel hop uses the tunnel's expiry, after which the layer
keys are gone and a replay is useless. The set is bounded: when it is full of unexpired
nonces, new ones are refused rather than old ones forgotten, because forgetting an unexpired
nonce would let its message be replayed. A refused message is a dropped message; the tunnel
pool sees the loss and builds a fresh tunnel.
"""

from __future__ import annotations

from typing import Final, final

#: Default bound: 2¹⁶ nonces of 16 bytes, about 6 MiB with dict overhead in the worst case.
#: A 10-minute tunnel carrying 65 536 messages of 1 KiB moves 64 MiB (≈ 110 KB/s), far above
#: what a smart meter's trading needs.
DEFAULT_CAPACITY: Final = 1 << 16


@final
class ReplayWindow:
    """Nonces seen and when each may be forgotten; ``check_and_add`` is the only mutator."""

    __slots__ = ("_capacity", "_seen")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("replay window capacity must be positive")
        self._capacity = capacity
        # Insertion order is expiry order only when expiries are monotonic; purge scans all
        # entries, but only when the window is full, so the cost is amortised.
        self._seen: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, nonce: bytes, *, expires: int, now: int) -> bool | None:
        """Record ``nonce`` until ``expires``.

        Returns True when it is new, False when it is a replay, and None when the window is
        full of unexpired nonces (the caller drops the message).
        """
        seen_until = self._seen.get(nonce)
        if seen_until is not None and seen_until > now:
            return False
        if seen_until is None and len(self._seen) >= self._capacity:
            self.purge(now)
            if len(self._seen) >= self._capacity:
                return None
        self._seen[nonce] = expires
        return True

    def purge(self, now: int) -> int:
        """Forget nonces whose expiry has passed; returns how many were forgotten."""
        stale = [nonce for nonce, until in self._seen.items() if until <= now]
        for nonce in stale:
            del self._seen[nonce]
        return len(stale)
