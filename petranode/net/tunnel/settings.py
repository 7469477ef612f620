"""``[tunnel]``: tunnel pools, relaying limits and traffic-analysis defences (SPEC §4.4).

One frozen section; the node's config loader builds it from the TOML table and calls
:meth:`TunnelConfig.validate`, which reports a wrong value in one line naming its dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from petranode.errors import PetranodeError


class TunnelConfigInvalid(PetranodeError):
    """A ``[tunnel]`` value is out of range; the message names the dotted key."""


@final
@dataclass(frozen=True, slots=True)
class TunnelConfig:
    #: Inbound tunnels kept for our destination (SPEC §4.4: 2).
    inbound_quantity: int = 2
    #: Outbound tunnels kept for our destination (SPEC §4.4: 2).
    outbound_quantity: int = 2
    #: Hops per tunnel; -1 takes the genesis ``tunnel_length`` (0 only for tests).
    length: int = -1
    #: Seconds a tunnel lives (SPEC §4.4: 600).
    lifetime_s: int = 600
    #: A replacement is built this many seconds before a tunnel expires.
    rebuild_margin_s: float = 120.0
    #: Seconds a build may take before it counts as failed.
    build_timeout_s: float = 15.0
    #: Seconds between tunnel test rounds (every outbound × inbound pair); 0 disables tests.
    test_interval_s: float = 10.0
    #: Seconds a test message has to come back.
    test_timeout_s: float = 5.0
    #: Failed test rounds in a row before a tunnel is replaced (I2P: 2).
    max_test_failures: int = 2
    #: Dummy tunnel messages per second sent through our outbound tunnels (Poisson); 0 = none.
    cover_rate_per_s: float = 0.2
    #: Per-hop batching: relayed messages wait a uniform random 0..this many ms; 0 = none.
    batch_delay_ms: int = 0
    #: Tunnels we relay for others at most.
    max_transit_tunnels: int = 512
    #: Bytes relayed per transit tunnel over its life at most.
    max_transit_bytes: int = 64 * 1024 * 1024
    #: Received application messages held for ``dest.recv`` before the oldest is dropped.
    max_inbox: int = 4096

    def validate(self) -> None:
        checks = {
            "inbound_quantity": 1 <= self.inbound_quantity <= 16,
            "outbound_quantity": 1 <= self.outbound_quantity <= 16,
            "length": -1 <= self.length <= 7,
            "lifetime_s": 60 <= self.lifetime_s <= 600,
            "rebuild_margin_s": 0 < self.rebuild_margin_s < self.lifetime_s,
            "build_timeout_s": 0 < self.build_timeout_s <= 120,
            "test_interval_s": self.test_interval_s == 0 or self.test_interval_s >= 1,
            "test_timeout_s": 0 < self.test_timeout_s <= 60,
            "max_test_failures": 1 <= self.max_test_failures <= 10,
            "cover_rate_per_s": 0 <= self.cover_rate_per_s <= 100,
            "batch_delay_ms": 0 <= self.batch_delay_ms <= 10_000,
            "max_transit_tunnels": 0 <= self.max_transit_tunnels <= 100_000,
            "max_transit_bytes": self.max_transit_bytes >= 1024,
            "max_inbox": self.max_inbox >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise TunnelConfigInvalid(f"tunnel.{key}: out of range")
