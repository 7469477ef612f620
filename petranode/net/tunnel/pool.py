"""Tunnel pools of one destination: what to build, when to rebuild, what to send through
(SPEC §4.4; i2pd ``TunnelPool``, I2P ``TunnelPoolManager``). Pure: decisions are actions, time
is the caller's ``now`` (seconds, float), randomness an injected RNG.

Rules of operation:

* A pool keeps ``quantity`` tunnels per direction (inbound, outbound), each of ``length`` hops.
  A tunnel is BUILDING from the moment :meth:`TunnelPool.tick` asks for it until the service
  reports :meth:`built` (ESTABLISHED) or :meth:`build_failed` — or until ``build_timeout_s``
  passes without an answer, which counts as a failed build.
* Hops come from the ``select_routers`` seam (the netDb's random selection, which never
  returns us); the pool refuses a selection that repeats a router or names us, and asks again
  at the next tick when too few routers are known.
* A tunnel counts towards ``quantity`` while it is BUILDING, or ESTABLISHED with more than
  ``rebuild_margin_s`` left: a replacement is therefore built before the old one expires
  (I2P starts rebuilding 90–150 s before expiry), and the old one is still used until then.
* Tests: :meth:`tests_due` pairs every established outbound tunnel with every established
  inbound one (a test message goes out through the first and comes back through the second).
  :meth:`test_results` marks a tunnel as having passed a round when any of its pairs came
  back; ``max_test_failures`` failed rounds in a row make it FAILED (I2P: two). A FAILED
  tunnel is never picked and is replaced at once. :meth:`hop_died` fails every tunnel through
  a router whose link went down.
* :meth:`pick` chooses uniformly among usable tunnels of a direction, preferring those not
  about to expire.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.identity import RouterIdentity
from petranode.net.tunnel.build import Direction, TunnelSecrets

log = logging.getLogger(__name__)

Rng = Callable[[int], bytes]
#: The seam to the netDb: up to ``count`` random routers other than ``exclude`` and us.
SelectRouters = Callable[[int, Sequence[bytes]], Sequence[RouterIdentity]]

#: SPEC §4.4: 10-minute lifetime (I2P's too).
DEFAULT_LIFETIME_S: Final = 600
#: Start a replacement this long before expiry (I2P rebuilds 90–150 s ahead).
DEFAULT_REBUILD_MARGIN_S: Final = 120.0
#: A build with no answer after this long has failed (I2P: 10 s per build request; hops
#: here answer at link speed, so a quarter minute covers a slow 7-hop round).
DEFAULT_BUILD_TIMEOUT_S: Final = 15.0
#: Failed test rounds in a row before a tunnel is replaced (I2P's ``TestJob``: 2).
DEFAULT_MAX_TEST_FAILURES: Final = 2
#: Tunnels kept around after they stop counting, until they expire: at most this many per
#: direction beyond ``quantity`` (bounds builds an unlucky network can pile up).
MAX_EXTRA_TUNNELS: Final = 4


class TunnelState(enum.Enum):
    BUILDING = "building"
    ESTABLISHED = "established"
    FAILED = "failed"


@final
@dataclass(frozen=True, slots=True)
class PoolSettings:
    quantity: int = 2
    length: int = 3
    lifetime_s: int = DEFAULT_LIFETIME_S
    rebuild_margin_s: float = DEFAULT_REBUILD_MARGIN_S
    build_timeout_s: float = DEFAULT_BUILD_TIMEOUT_S
    max_test_failures: int = DEFAULT_MAX_TEST_FAILURES

    def __post_init__(self) -> None:
        if not 0 <= self.quantity <= 16:
            raise ValueError("pool quantity must be 0..16")
        if not 0 <= self.length <= 7:
            raise ValueError("tunnel length must be 0..7")
        if not 0 < self.rebuild_margin_s < self.lifetime_s <= DEFAULT_LIFETIME_S:
            raise ValueError("need 0 < rebuild margin < lifetime <= 600 s")
        if self.build_timeout_s <= 0 or self.max_test_failures < 1:
            raise ValueError("build timeout and test failures must be positive")


# -- actions ---------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class BuildTunnel:
    """Build a tunnel through ``hops`` (in tunnel order); report back with ``build_id``."""

    build_id: int
    direction: Direction
    hops: tuple[RouterIdentity, ...]


@final
@dataclass(frozen=True, slots=True)
class TunnelRetired:
    """The tunnel ``build_id`` is gone (expired, failed, or its build failed): drop its state."""

    build_id: int
    direction: Direction
    reason: str


PoolAction = BuildTunnel | TunnelRetired


@dataclass(slots=True, eq=False)
class PoolTunnel:
    """One of our tunnels as the pool sees it."""

    build_id: int
    direction: Direction
    hops: tuple[bytes, ...]
    state: TunnelState
    started: float
    secrets: TunnelSecrets | None = None
    expiry: float = 0.0
    test_failures: int = 0
    tested_ok: int = field(default=0)

    @property
    def length(self) -> int:
        return len(self.hops)


@final
class TunnelPool:
    """Inbound and outbound tunnels of one destination (sans-IO)."""

    def __init__(self, settings: PoolSettings, select_routers: SelectRouters, *,
                 own_hash: bytes, rng: Rng = na.randombytes) -> None:
        self.settings = settings
        self._select = select_routers
        self._own = own_hash
        self._rng = rng
        self._next_id = 1
        self.tunnels: dict[int, PoolTunnel] = {}
        self.builds_ok = 0
        self.builds_failed = 0
        self.replaced_after_tests = 0

    # -- decisions ------------------------------------------------------------------------

    def tick(self, now: float,
             directions: Iterable[Direction] = tuple(Direction)) -> list[PoolAction]:
        """Retire what expired, failed or timed out; ask for the builds the pool is short of
        in ``directions`` (an outbound build needs an inbound tunnel for its reply)."""
        actions: list[PoolAction] = []
        for tunnel in list(self.tunnels.values()):
            reason = self._retire_reason(tunnel, now)
            if reason is not None:
                if tunnel.state is TunnelState.BUILDING:
                    self.builds_failed += 1
                del self.tunnels[tunnel.build_id]
                actions.append(TunnelRetired(tunnel.build_id, tunnel.direction, reason))
        for direction in directions:
            live = [t for t in self.tunnels.values() if t.direction is direction]
            counting = sum(1 for t in live if self._counts(t, now))
            room = self.settings.quantity + MAX_EXTRA_TUNNELS - len(live)
            for _ in range(min(self.settings.quantity - counting, room)):
                action = self._new_build(direction, now)
                if action is None:
                    break
                actions.append(action)
        return actions

    def built(self, build_id: int, secrets: TunnelSecrets, now: float) -> bool:
        """The build answered: every hop accepted. False if the pool had already given up."""
        tunnel = self.tunnels.get(build_id)
        if tunnel is None or tunnel.state is not TunnelState.BUILDING:
            return False
        tunnel.state = TunnelState.ESTABLISHED
        tunnel.secrets = secrets
        tunnel.expiry = float(secrets.expiry)
        self.builds_ok += 1
        log.debug("tunnel.built id=%d direction=%s length=%d", build_id,
                  tunnel.direction.value, tunnel.length)
        return True

    def build_failed(self, build_id: int) -> list[TunnelRetired]:
        """A hop refused, or the reply was unreadable, or the request could not be sent."""
        tunnel = self.tunnels.pop(build_id, None)
        if tunnel is None:
            return []
        self.builds_failed += 1
        return [TunnelRetired(build_id, tunnel.direction, "build_failed")]

    def tests_due(self, now: float) -> list[tuple[int, int]]:
        """(outbound, inbound) build ids of every pair of established tunnels to test now."""
        usable = [t for t in self.tunnels.values() if self._usable(t, now)]
        outbound = [t.build_id for t in usable if t.direction is Direction.OUTBOUND]
        inbound = [t.build_id for t in usable if t.direction is Direction.INBOUND]
        return [(o, i) for o in outbound for i in inbound]

    def test_results(self, results: Mapping[tuple[int, int], bool]) -> list[int]:
        """Record a test round; returns the build ids that failed it for the last time."""
        passed: dict[int, bool] = {}
        for (out_id, in_id), ok in results.items():
            for build_id in (out_id, in_id):
                passed[build_id] = passed.get(build_id, False) or ok
        newly_failed = []
        for build_id, ok in passed.items():
            tunnel = self.tunnels.get(build_id)
            if tunnel is None or tunnel.state is not TunnelState.ESTABLISHED:
                continue
            if ok:
                tunnel.test_failures = 0
                tunnel.tested_ok += 1
                continue
            tunnel.test_failures += 1
            if tunnel.test_failures >= self.settings.max_test_failures:
                tunnel.state = TunnelState.FAILED
                self.replaced_after_tests += 1
                newly_failed.append(build_id)
                log.info("tunnel.test_failed id=%d direction=%s", build_id,
                         tunnel.direction.value)
        return newly_failed

    def hop_died(self, router_hash: bytes) -> list[int]:
        """Fail every tunnel through ``router_hash`` (its link went down); their ids."""
        failed = []
        for tunnel in self.tunnels.values():
            if router_hash in tunnel.hops and tunnel.state is not TunnelState.FAILED:
                tunnel.state = TunnelState.FAILED
                failed.append(tunnel.build_id)
        return failed

    def pick(self, direction: Direction, now: float) -> PoolTunnel | None:
        """A random usable tunnel of ``direction``, preferring ones not about to expire."""
        usable = [t for t in self.tunnels.values()
                  if t.direction is direction and self._usable(t, now)]
        fresh = [t for t in usable if t.expiry - now > self.settings.rebuild_margin_s / 4]
        choices = fresh or usable
        if not choices:
            return None
        return choices[_below(len(choices), self._rng)]

    def established(self, direction: Direction, now: float) -> list[PoolTunnel]:
        return [t for t in self.tunnels.values()
                if t.direction is direction and self._usable(t, now)]

    # -- internals ------------------------------------------------------------------------

    def _usable(self, tunnel: PoolTunnel, now: float) -> bool:
        return tunnel.state is TunnelState.ESTABLISHED and tunnel.expiry > now

    def _counts(self, tunnel: PoolTunnel, now: float) -> bool:
        if tunnel.state is TunnelState.BUILDING:
            return True
        return (tunnel.state is TunnelState.ESTABLISHED
                and tunnel.expiry - now > self.settings.rebuild_margin_s)

    def _retire_reason(self, tunnel: PoolTunnel, now: float) -> str | None:
        match tunnel.state:
            case TunnelState.BUILDING:
                if now - tunnel.started >= self.settings.build_timeout_s:
                    return "build_timeout"
            case TunnelState.ESTABLISHED:
                if tunnel.expiry <= now:
                    return "expired"
            case TunnelState.FAILED:
                return "failed"
        return None

    def _new_build(self, direction: Direction, now: float) -> BuildTunnel | None:
        length = self.settings.length
        hops = tuple(self._select(length, ())) if length else ()
        hashes = [hop.router_hash for hop in hops]
        if len(hops) < length or len(set(hashes)) != len(hashes) or self._own in hashes:
            log.debug("tunnel.build.deferred direction=%s wanted=%d known=%d",
                      direction.value, length, len(hops))
            return None
        build_id = self._next_id
        self._next_id += 1
        self.tunnels[build_id] = PoolTunnel(build_id, direction, tuple(hashes),
                                            TunnelState.BUILDING, started=now)
        return BuildTunnel(build_id, direction, hops)


def _below(bound: int, rng: Rng) -> int:
    """Uniform in 0..bound-1 by rejection sampling 32-bit values."""
    limit = 2**32 - 2**32 % bound
    while True:
        value = int.from_bytes(rng(4), "big")
        if value < limit:
            return value % bound


def retired_ids(actions: Iterable[PoolAction]) -> list[int]:
    return [a.build_id for a in actions if isinstance(a, TunnelRetired)]
