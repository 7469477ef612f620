"""The ``[garlic]`` knobs of the session machine (SPEC §4.4: delivery acknowledged and retried
within bounds). Defaults follow I2P where it has a precedent, named at each field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from petranode.net.garlic.errors import GarlicError, GarlicFault


@final
@dataclass(frozen=True, slots=True)
class GarlicSettings:
    #: How long queued cloves wait to be bundled with others for the same destination.
    batch_delay_ms: int = 50
    #: A clove's lifetime; I2NP messages default to 60 s. Receivers remember clove ids this long.
    clove_lifetime_ms: int = 60_000
    #: First retry after this long, doubling each time.
    retry_base_ms: int = 3_000
    #: Sends of one DATA clove, the first included, before ``DeliveryFailed``.
    max_attempts: int = 4
    #: Attach our LeaseSet to New Session messages (and to the first message after it changes).
    include_leaseset: bool = True
    #: An Existing Session tag set lives this long (I2P's ratchet tag sets expire after minutes).
    tagset_lifetime_ms: int = 600_000
    #: Tags the receiver pre-computes past the highest one used (I2P ratchet: 24..160).
    tag_window: int = 32
    #: Messages per tag set before the sender starts a fresh New Session.
    max_tagset_messages: int = 1024
    #: Replay window of a message's ``created_ms``: proposal 144 allows 5 min past, 2 min future.
    max_message_age_ms: int = 300_000
    max_message_future_ms: int = 120_000

    def validate(self) -> GarlicSettings:
        """``self`` if every field is in range; raises ``GarlicError(BAD_SETTING)``."""
        checks = {
            "batch_delay_ms": 0 <= self.batch_delay_ms <= 10_000,
            "clove_lifetime_ms": 1_000 <= self.clove_lifetime_ms <= 600_000,
            "retry_base_ms": self.retry_base_ms >= 1,
            "max_attempts": 1 <= self.max_attempts <= 16,
            "tagset_lifetime_ms": self.tagset_lifetime_ms >= 60_000,
            "tag_window": 1 <= self.tag_window <= 256,
            "max_tagset_messages": 1 <= self.max_tagset_messages <= 65_536,
            "max_message_age_ms": self.max_message_age_ms >= 1_000,
            "max_message_future_ms": self.max_message_future_ms >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise GarlicError(GarlicFault.BAD_SETTING, f"garlic.{key} out of range")
        # Every retry, and the final wait before DeliveryFailed, happens while the clove is
        # unexpired, so the receiver's de-duplication still remembers its id.
        if self.retry_base_ms * (2**self.max_attempts - 1) >= self.clove_lifetime_ms:
            raise GarlicError(GarlicFault.BAD_SETTING,
                              "garlic.retry_base_ms: retries outlast garlic.clove_lifetime_ms")
        return self

    def backoff_ms(self, attempts: int) -> int:
        """Wait after the ``attempts``-th send before retrying (or failing)."""
        return int(self.retry_base_ms * 2 ** (attempts - 1))
