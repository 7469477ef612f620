"""The garlic layer's I/O edge: our destination's end-to-end messages (SPEC §4.4, §2).

The only module of ``petranode.net.garlic`` that touches asyncio or the clock. It drives the
sans-IO :class:`~petranode.net.garlic.session.GarlicSessions` (bundling, acknowledgements,
retries, de-duplication) and :class:`~petranode.net.destination.LocalDestination` (LeaseSets),
over the tunnel service:

* ``send(to, data)``: the recipient's LeaseSet comes from our cache (LeaseSets senders attach to
  their messages) or the netDb (local table, else a DHT lookup); the payload is queued as a
  DATA clove. When the session machine emits a garlic message, it goes through one of our
  outbound tunnels to a random live lease of the recipient — a retry may pick another lease,
  and re-reads the LeaseSet, so a recipient's rebuilt tunnels are found.
* Receiving: the tunnel service hands us every garlic message that reached one of our inbound
  tunnels. Each delivered payload is an :class:`~.envelope.Envelope`: ``app`` data waits in a
  bounded inbox for ``recv``; ``ledger`` and ``market`` data go, with the sender's
  authenticated destination hash, to the handler that layer registered with ``subscribe``.
* LeaseSet: republished through the netDb whenever the tunnel service reports a change of
  inbound tunnels, and before the published leases run out (``LocalDestination``).
* Timers: the machine asks for ``tick`` calls with ``ArmTimer``; one loop sleeps until the
  earliest, woken early when a new one is armed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, final

from petranode.clock import Clock
from petranode.errors import PetranodeError
from petranode.net.destination import DestinationKeys, LocalDestination
from petranode.net.garlic.envelope import Envelope, Protocol
from petranode.net.garlic.errors import GarlicError
from petranode.net.garlic.session import (
    Acked,
    Action,
    ArmTimer,
    Deliver,
    DeliveryFailed,
    Forward,
    GarlicSessions,
    Queued,
    SendGarlic,
    StoreLeaseSet,
)
from petranode.net.garlic.settings import GarlicSettings
from petranode.net.netdb.errors import RecordInvalid
from petranode.net.netdb.leaseset import LeaseSet
from petranode.net.netdb.service import NetDbService
from petranode.net.tunnel.service import TunnelService

log = logging.getLogger(__name__)

#: Seconds between LeaseSet checks when nothing changed (near-expiry republish).
LEASESET_CHECK_S: Final = 10.0
#: Seconds before publishing again a LeaseSet no router accepted (the DHT was still empty:
#: zero-hop tunnels are ready before the netDb has joined).
UNSTORED_RETRY_S: Final = 1.0
#: Foreign LeaseSets cached from attached cloves (memory bound; the netDb holds the rest).
MAX_CACHED_LEASESETS: Final = 1024


#: What a layer registers for its protocol: called with (sender destination hash, data).
Handler = Callable[[bytes, bytes], None]


class DestinationUnknown(PetranodeError):
    """No valid LeaseSet for the destination could be found (it is offline or unpublished)."""


@final
class GarlicService:
    """Send bytes to a destination hash; receive what is sent to ours."""

    def __init__(self, *, tunnels: TunnelService, netdb: NetDbService, keys: DestinationKeys,
                 network_id: str, clock: Clock, settings: GarlicSettings | None = None,
                 max_inbox: int = 4096) -> None:
        self._tunnels = tunnels
        self._netdb = netdb
        self._clock = clock
        self.local = LocalDestination(keys, network_id)
        self.sessions = GarlicSessions(self.local, settings)
        self._leasesets: dict[bytes, LeaseSet] = {}
        self._published: LeaseSet | None = None
        self._stored = False
        self._inbox: collections.deque[bytes] = collections.deque(maxlen=max_inbox)
        self._inbox_event = asyncio.Event()
        self._handlers: dict[Protocol, Handler] = {}
        self._next_tick_ms: int | None = None
        self._wake = asyncio.Event()
        self._rng = random.SystemRandom()
        self.counters: collections.Counter[str] = collections.Counter()
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> GarlicService:
        self._tunnels.set_receiver(self._on_garlic)
        await self._group.__aenter__()
        self._tasks = [self._group.create_task(self._timer_loop(), name="garlic-timer"),
                       self._group.create_task(self._leaseset_loop(), name="garlic-leaseset")]
        log.info("garlic.started dest=%s", self.local.key.hex()[:16])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    # -- API --------------------------------------------------------------------------------

    @property
    def address(self) -> bytes:
        """Our destination hash (its netDb key)."""
        return self.local.key

    def subscribe(self, protocol: Protocol, handler: Handler) -> None:
        """Hand every ``protocol`` message to ``handler`` (one per protocol; not ``app``)."""
        if protocol is Protocol.APP or protocol in self._handlers:
            raise ValueError(f"protocol {protocol.value} already has a receiver")
        self._handlers[protocol] = handler

    async def send(self, to: bytes, data: bytes, protocol: Protocol = Protocol.APP) -> bytes:
        """Queue ``data`` for ``protocol`` at destination ``to``; returns the clove id. Raises
        :class:`DestinationUnknown`, or ``GarlicError(QUEUE_FULL)`` under back-pressure."""
        envelope = Envelope(protocol, data).encode()
        leaseset = await self._find_leaseset(to)
        if leaseset is None:
            raise DestinationUnknown(f"no LeaseSet for {to.hex()[:16]}")
        actions = self.sessions.send(leaseset.destination, envelope, self._now_ms())
        self._execute(actions)
        queued = next(a for a in actions if isinstance(a, Queued))
        return queued.clove_id

    async def recv(self, timeout: float) -> list[bytes]:
        """Messages received so far; waits up to ``timeout`` seconds for the first one."""
        if not self._inbox and timeout > 0:
            self._inbox_event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._inbox_event.wait()
        out = list(self._inbox)
        self._inbox.clear()
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "outstanding": self.sessions.outstanding,
            "inbound_sessions": self.sessions.inbound_sessions,
            "inbox": len(self._inbox),
            "dropped_cloves": {k.value: v for k, v in self.sessions.dropped.items()},
            **dict(sorted(self.counters.items())),
        }

    # -- machine I/O ------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def _on_garlic(self, data: bytes) -> None:
        try:
            actions = self.sessions.receive(data, self._now_ms())
        except GarlicError as exc:
            self.counters[f"refused_{exc.reason.value}"] += 1
            return
        self._execute(actions)

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Queued():
                    self.counters["queued"] += 1
                case ArmTimer(at_ms=at):
                    if self._next_tick_ms is None or at < self._next_tick_ms:
                        self._next_tick_ms = at
                        self._wake.set()
                case SendGarlic(destination=destination, data=data):
                    self._send_garlic(destination.key, data)
                case Deliver(sender=sender, payload=payload):
                    self.counters["delivered"] += 1
                    self._dispatch(sender, payload)
                case Acked():
                    self.counters["acked"] += 1
                case DeliveryFailed():
                    self.counters["delivery_failed"] += 1
                case StoreLeaseSet(leaseset=leaseset):
                    self._cache(leaseset)
                case Forward():
                    # Cloves for other routers or destinations: we only host one destination
                    # and relay nothing at the garlic layer.
                    self.counters["forward_refused"] += 1

    def _dispatch(self, sender: bytes, payload: bytes) -> None:
        try:
            envelope = Envelope.decode(payload)
        except GarlicError:
            self.counters["bad_envelope"] += 1
            return
        if envelope.protocol is Protocol.APP:
            self._inbox.append(envelope.data)
            self._inbox_event.set()
            return
        handler = self._handlers.get(envelope.protocol)
        if handler is None:
            self.counters[f"unrouted_{envelope.protocol.value}"] += 1
            return
        handler(sender, envelope.data)

    def _send_garlic(self, to: bytes, data: bytes) -> None:
        leaseset = self._freshest(to)
        now = self._now_ms()
        leases = [] if leaseset is None else [lease for lease in leaseset.leases
                                              if lease.end_ms > now]
        if not leases:
            self.counters["no_lease"] += 1
            return
        lease = leases[self._rng.randrange(len(leases))]
        if self._tunnels.send_garlic(lease.gateway, lease.tunnel_id, data):
            self.counters["sent"] += 1
        else:
            self.counters["no_outbound_tunnel"] += 1

    def _cache(self, leaseset: LeaseSet) -> None:
        held = self._leasesets.get(leaseset.key)
        if held is not None and held.published_ms >= leaseset.published_ms:
            return
        if held is None and len(self._leasesets) >= MAX_CACHED_LEASESETS:
            del self._leasesets[next(iter(self._leasesets))]
        self._leasesets[leaseset.key] = leaseset

    def _freshest(self, key: bytes) -> LeaseSet | None:
        cached = self._leasesets.get(key)
        local = self._netdb.get_local(key)
        held = local if isinstance(local, LeaseSet) else None
        candidates = [ls for ls in (cached, held) if ls is not None]
        return max(candidates, key=lambda ls: ls.published_ms, default=None)

    async def _find_leaseset(self, key: bytes) -> LeaseSet | None:
        found = self._freshest(key)
        if found is not None and found.expires_ms > self._now_ms():
            return found
        record = await self._netdb.lookup(key)
        return record if isinstance(record, LeaseSet) else None

    # -- loops ------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()
            delay = (None if self._next_tick_ms is None
                     else max(0.0, (self._next_tick_ms - self._now_ms()) / 1000))
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            if self._next_tick_ms is not None and self._next_tick_ms <= self._now_ms():
                self._next_tick_ms = None
                self._execute(self.sessions.tick(self._now_ms()))

    async def _leaseset_loop(self) -> None:
        changed = self._tunnels.leases_changed
        while True:
            wait = LEASESET_CHECK_S if self._stored or self._published is None else UNSTORED_RETRY_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await changed.wait()
            changed.clear()
            await self._republish()

    async def _republish(self) -> None:
        now = self._now_ms()
        leases = self._tunnels.inbound_leases()
        reason = self.local.republish_reason(self._published, leases, now)
        if reason is None and self._published is not None and not self._stored:
            await self._publish(self._published, "unstored")
            return
        if reason is None or not leases:
            return
        try:
            leaseset = self.local.build_leaseset(leases, now, self._published)
        except GarlicError:
            return
        self._published = leaseset
        self.sessions.set_leaseset(leaseset)
        await self._publish(leaseset, reason.value)

    async def _publish(self, leaseset: LeaseSet, why: str) -> None:
        try:
            stored = await self._netdb.publish_leaseset(leaseset)
        except RecordInvalid as exc:
            log.error("garlic.leaseset_invalid reason=%s", exc)
            return
        self._stored = stored > 0
        self.counters["leaseset_published"] += 1
        log.info("garlic.leaseset_published dest=%s leases=%d reason=%s stored_at=%d",
                 self.local.key.hex()[:16], len(leaseset.leases), why, stored)
