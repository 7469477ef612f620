"""Deterministic destinations and an in-memory mesh of garlic session machines (STYLE: sans-IO
machines wired in memory, h11 ``ConnectionPair``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from petranode.net.destination import LocalDestination
from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.net.garlic.session import (
    Action,
    ArmTimer,
    GarlicSessions,
    Queued,
    SendGarlic,
)
from petranode.net.garlic.settings import GarlicSettings
from petranode.net.identity import RouterKeys
from petranode.net.netdb.leaseset import Lease

A = TypeVar("A")

NETWORK: Final = "test-net"
#: 2025-01-01T00:00:00Z in ms: every test starts at a fixed "now".
NOW_MS: Final = 1_735_689_600_000
SETTINGS: Final = GarlicSettings()


def keys(n: int) -> RouterKeys:
    return RouterKeys.from_secrets(signing_seed=bytes([n]) * 32,
                                   static_secret=bytes([(n + 100) % 256]) * 32)


def local(n: int) -> LocalDestination:
    return LocalDestination(keys(n), NETWORK)


def leases(n: int, now: int = NOW_MS, count: int = 2) -> list[Lease]:
    return [Lease(gateway=bytes([n, i]) * 16, tunnel_id=1000 * n + i + 1,
                  end_ms=now + 600_000 - i * 1000) for i in range(count)]


def sessions(n: int, settings: GarlicSettings = SETTINGS, *, leaseset: bool = True,
             seed: int | None = None) -> GarlicSessions:
    dest = local(n)
    machine = GarlicSessions(dest, settings, rng=random.Random(n if seed is None else seed).randbytes)
    if leaseset:
        machine.set_leaseset(dest.build_leaseset(leases(n), NOW_MS))
    return machine


@dataclass
class Mesh:
    """Routes ``SendGarlic`` actions between machines; ``drop`` decides which sends are lost."""

    nodes: dict[bytes, GarlicSessions]
    now: int = NOW_MS
    drop: Callable[[bytes, SendGarlic], bool] = lambda origin, send: False
    #: Every non-send, non-timer action, by the node it came from.
    events: dict[bytes, list[Action]] = field(default_factory=dict)
    #: Every send: (origin, destination hash, bytes).
    wire: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    #: Why receivers refused messages.
    refused: list[GarlicFault] = field(default_factory=list)

    @classmethod
    def of(cls, *machines: GarlicSessions) -> Mesh:
        return cls({m.local.key: m for m in machines})

    def run(self, origin: bytes, actions: list[Action]) -> None:
        work = [(origin, action) for action in actions]
        while work:
            source, action = work.pop(0)
            if isinstance(action, SendGarlic):
                self.wire.append((source, action.destination.key, action.data))
                if self.drop(source, action):
                    continue
                target = self.nodes[action.destination.key]
                try:
                    received = target.receive(action.data, self.now)
                except GarlicError as exc:
                    self.refused.append(exc.reason)
                    continue
                work.extend((target.local.key, a) for a in received)
            elif not isinstance(action, ArmTimer):
                self.events.setdefault(source, []).append(action)

    def send(self, origin: GarlicSessions, to: GarlicSessions, payload: bytes) -> bytes:
        actions = origin.send(to.local.destination, payload, self.now)
        self.run(origin.local.key, actions)
        assert isinstance(actions[0], Queued)
        return actions[0].clove_id

    def advance(self, ms: int) -> None:
        self.now += ms
        for machine in self.nodes.values():
            self.run(machine.local.key, machine.tick(self.now))

    def of_type(self, node: GarlicSessions, kind: type[A]) -> list[A]:
        return [a for a in self.events.get(node.local.key, []) if isinstance(a, kind)]
