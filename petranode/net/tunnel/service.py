"""The tunnel layer's I/O edge: relaying for others, our destination's pools, tests and cover
traffic (SPEC §4.4). The only module of ``petranode.net.tunnel`` that touches asyncio or the
clock; the protocol lives in the pure modules (``build``, ``layer``, ``fragment``, ``transit``,
``pool``) and in ``petranode.net.cover``.

Link messages (one table, :meth:`TunnelService._handlers`)::

    {"t": "tb", "tid": id, "d": 2560 bytes}   a build request on its way hop to hop, or the
                                              reply of an inbound build reaching its creator
    {"t": "td", "d": 1024 bytes}              one tunnel message (the tunnel id is inside)
    {"t": "tg", "tid": id, "d": message}      a message for the inbound gateway of tunnel ``id``

Messages carried *inside* tunnels are canonical msgpack maps: ``{"t": "g", "d": garlic}``
(for the garlic service), ``{"t": "tb", ...}`` (a build request an outbound endpoint passes to
a router, or an outbound build's reply coming home through an inbound tunnel) and
``{"t": "tt", "n": nonce}`` (a tunnel test).

Theory of operation:

* Relaying: a build request is processed with ``build.process_build``; the participant table
  (``transit.TransitTable``) decides and keeps the hop. The request then goes on to the next
  hop — an outbound endpoint puts it into the creator's reply tunnel with ``"tg"`` — whether we
  accepted or not, so the creator reads every answer. Tunnel messages are relayed by the table.
* Building: inbound tunnels first. An inbound build request goes out through one of our
  outbound tunnels to the gateway when we have one (so the gateway, which the LeaseSet names,
  does not see our router send it), else straight to the gateway; its reply comes back from
  the last hop on the tunnel id only we know. An outbound build waits for an inbound tunnel:
  its endpoint answers through that tunnel, never to our router.
* Pools, tests and the LeaseSet: a loop ticks the pool every second and executes its actions;
  a test loop sends one test message per (outbound, inbound) pair and reports which came back;
  ``leases_changed`` is set whenever the set of inbound tunnels changes (the garlic service
  republishes our LeaseSet). A link going down fails our tunnels through that router.
* Sending: each router has one queue and a worker task in the service's group, so a slow or
  dialling peer delays only its own traffic. With ``batch_delay_ms`` relayed messages first
  wait in a ``cover.HopBatcher``. Cover: dummy (padding) tunnel messages through a random
  outbound tunnel at Poisson times (``cover.CoverSchedule``); the outbound endpoint drops them.
  On the links they are cells like any other.

Logging: tunnel ids and router-hash prefixes, never keys or payloads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, final

from petranode.clock import Clock
from petranode.crypto import _sodium as na
from petranode.errors import PetranodeError
from petranode.log import RateLimitedLog
from petranode.net.cover import CoverSchedule, HopBatcher
from petranode.net.identity import RouterIdentity, RouterKeys
from petranode.net.link.service import LinkService
from petranode.net.netdb.leaseset import Lease
from petranode.net.netdb.routerinfo import RouterInfo
from petranode.net.netdb.service import NetDbService
from petranode.net.tunnel.build import (
    REQUEST_BYTES,
    BuildReplyCode,
    BuildRequest,
    Direction,
    TunnelSecrets,
    process_build,
    read_replies,
)
from petranode.net.tunnel.errors import TunnelBuildRejected, TunnelMessageInvalid
from petranode.net.tunnel.fragment import (
    MAX_MESSAGE_BYTES,
    Delivery,
    DeliveryKind,
    Reassembler,
    decode_payload,
    fragment_message,
    padding_payload,
)
from petranode.net.tunnel.layer import (
    TUNNEL_MESSAGE_BYTES,
    CreatorEndpoint,
    CreatorGateway,
)
from petranode.net.tunnel.pool import (
    BuildTunnel,
    PoolSettings,
    PoolTunnel,
    TunnelPool,
    TunnelRetired,
    TunnelState,
)
from petranode.net.tunnel.replay import ReplayWindow
from petranode.net.tunnel.settings import TunnelConfig
from petranode.net.tunnel.transit import EndpointOut, Relay, TransitTable
from petranode.wire import codec
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

GarlicReceiver = Callable[[bytes], None]

#: Pool decisions are re-evaluated this often (seconds).
POOL_TICK_S: Final = 1.0
#: Messages queued towards one router before new ones are dropped (a dead peer must not hold
#: memory; tunnel traffic is datagram-like and the garlic layer retries).
MAX_QUEUE_PER_ROUTER: Final = 1024
#: Largest inner message (a garlic message with room for its map).
MAX_INNER_BYTES: Final = MAX_MESSAGE_BYTES
#: Seconds a link send may take before the message is dropped (dial included).
SEND_TIMEOUT_S: Final = 10.0
#: Test nonces outstanding at most (pairs × rounds in flight).
MAX_TESTS: Final = 1024


@dataclass(slots=True, eq=False)
class _OwnInbound:
    build_id: int
    endpoint: CreatorEndpoint
    reassembler: Reassembler


@dataclass(slots=True, eq=False)
class _PendingBuild:
    build_id: int
    secrets: TunnelSecrets


@final
class TunnelService:
    """Tunnels for one router and its destination: relaying, pools, sending, receiving."""

    def __init__(self, *, config: TunnelConfig, default_length: int, links: LinkService,
                 netdb: NetDbService, keys: RouterKeys, clock: Clock) -> None:
        config.validate()
        self._config = config
        self._links = links
        self._netdb = netdb
        self._keys = keys
        self._clock = clock
        self._own = keys.router_hash
        length = default_length if config.length < 0 else config.length
        self._settings = PoolSettings(
            quantity=max(config.inbound_quantity, config.outbound_quantity), length=length,
            lifetime_s=config.lifetime_s, rebuild_margin_s=config.rebuild_margin_s,
            build_timeout_s=config.build_timeout_s, max_test_failures=config.max_test_failures)
        self.pool = TunnelPool(self._settings, self._select_hops, own_hash=self._own)
        self.transit = TransitTable(max_tunnels=config.max_transit_tunnels,
                                    max_bytes_per_tunnel=config.max_transit_bytes)
        self._build_seen = ReplayWindow()
        self._pending_in: dict[int, _PendingBuild] = {}
        self._pending_out: dict[int, _PendingBuild] = {}
        self._own_inbound: dict[int, _OwnInbound] = {}
        self._gateways: dict[int, CreatorGateway] = {}
        self._tests: dict[bytes, tuple[int, int]] = {}
        self._tests_back: set[bytes] = set()
        self._receiver: GarlicReceiver | None = None
        self._queues: dict[bytes, collections.deque[Mapping[str, codec.Encodable]]] = {}
        self._workers: set[bytes] = set()
        self._batcher: HopBatcher[tuple[bytes, bytes]] | None = (
            HopBatcher(config.batch_delay_ms) if config.batch_delay_ms > 0 else None)
        self._batch_wake = asyncio.Event()
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.leases_changed = asyncio.Event()
        self.counters: collections.Counter[str] = collections.Counter()
        self._rate_log = RateLimitedLog(log)
        self._cpu_relay_s = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> TunnelService:
        for t, handler in (("tb", self._on_build), ("td", self._on_data),
                           ("tg", self._on_gateway)):
            self._links.register(t, handler)
        self._links.on_peer_change(self._on_peer_change)
        await self._group.__aenter__()
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            ("pool", self._pool_loop), ("test", self._test_loop)]
        if self._config.cover_rate_per_s > 0:
            loops.append(("cover", self._cover_loop))
        if self._batcher is not None:
            loops.append(("batch", self._batch_loop))
        for name, fn in loops:
            self._tasks.append(self._group.create_task(fn(), name=f"tunnel-{name}"))
        log.info("tunnel.started length=%d quantity=%d", self._settings.length,
                 self._settings.quantity)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for queue in self._queues.values():
            queue.clear()
        await self._group.__aexit__(exc_type, exc, tb)

    # -- API for the garlic layer ---------------------------------------------------------

    def set_receiver(self, receiver: GarlicReceiver) -> None:
        """Garlic messages that arrive through our inbound tunnels go to ``receiver``."""
        self._receiver = receiver

    def inbound_leases(self) -> list[Lease]:
        """A lease per usable inbound tunnel: its gateway, gateway tunnel id and end."""
        leases = []
        for tunnel in self.pool.established(Direction.INBOUND, self._clock.time()):
            gateway, tid = self._inbound_gateway(tunnel)
            leases.append(Lease(gateway=gateway, tunnel_id=tid, end_ms=int(tunnel.expiry * 1000)))
        return leases

    def send_garlic(self, gateway: bytes, tunnel_id: int, data: bytes) -> bool:
        """Queue ``data`` (a garlic message) through one of our outbound tunnels to the inbound
        gateway ``gateway``/``tunnel_id``; False when no outbound tunnel is usable."""
        inner = codec.encode({"t": "g", "d": data})
        return self._send_out(Delivery(DeliveryKind.TUNNEL, gateway, tunnel_id), inner)

    def tunnels(self) -> list[dict[str, Any]]:
        """Our own tunnels for ``tunnel.list``; hops (gateway first) are the operator's own."""
        return [{"id": t.build_id, "direction": t.direction.value, "length": t.length,
                 "hops": [hop.hex() for hop in t.hops],
                 "state": t.state.value, "expiry": t.expiry or None}
                for t in sorted(self.pool.tunnels.values(), key=lambda t: t.build_id)]

    def stats(self) -> dict[str, Any]:
        relayed = self.transit.relayed
        return {
            "participating": len(self.transit),
            "builds": {"succeeded": self.pool.builds_ok, "failed": self.pool.builds_failed},
            "transit_accepted": self.transit.accepted,
            "transit_rejected": self.transit.rejected,
            "relayed": relayed,
            "dropped": dict(self.transit.dropped),
            "replaced_after_tests": self.pool.replaced_after_tests,
            "cpu_us_per_relayed": round(self._cpu_relay_s / relayed * 1e6, 1) if relayed else None,
            **{k: v for k, v in sorted(self.counters.items())},
        }

    # -- link handlers (one table) -----------------------------------------------------------

    async def _on_build(self, peer: bytes, message: Mapping[str, codec.Value]) -> None:
        tid = codec.expect_int(message.get("tid"), 0, 2**32 - 1, what="tb.tid")
        data = codec.expect_bytes(message.get("d"), REQUEST_BYTES, what="tb.d")
        pending = self._pending_in.pop(tid, None)
        if pending is not None:
            self._finish_build(pending, data)
            return
        self._relay_build(peer, data)

    async def _on_data(self, peer: bytes, message: Mapping[str, codec.Value]) -> None:
        data = codec.expect_bytes(message.get("d"), TUNNEL_MESSAGE_BYTES, what="td.d")
        self._handle_tunnel_message(peer, data)

    async def _on_gateway(self, peer: bytes, message: Mapping[str, codec.Value]) -> None:
        tid = codec.expect_int(message.get("tid"), 1, 2**32 - 1, what="tg.tid")
        data = codec.expect_bytes(message.get("d"), max_size=MAX_INNER_BYTES, what="tg.d")
        self._handle_gateway(tid, data)

    def _handle_tunnel_message(self, peer: bytes, data: bytes) -> None:
        now = int(self._clock.time())
        tid = int.from_bytes(data[:4], "big")
        own = self._own_inbound.get(tid)
        if own is not None:
            self._receive_own(own, data, now)
            return
        started = time.process_time()
        actions = self.transit.receive(tid, data, peer, now)
        self._cpu_relay_s += time.process_time() - started
        self._execute_transit(actions)

    def _handle_gateway(self, tid: int, data: bytes) -> None:
        own = self._own_inbound.get(tid)
        if own is not None and self._zero_hop(own.build_id):
            self._dispatch_inner(data)
            return
        started = time.process_time()
        actions = self.transit.gateway(tid, data, int(self._clock.time()))
        self._cpu_relay_s += time.process_time() - started
        self._execute_transit(actions)

    def _on_peer_change(self, router_hash: bytes, linked: bool) -> None:
        if linked:
            return
        failed = self.pool.hop_died(router_hash)
        dropped = self.transit.drop_through(router_hash)
        if failed or dropped:
            log.info("tunnel.hop_down router=%s own_failed=%d transit_dropped=%d",
                     router_hash.hex()[:16], len(failed), dropped)

    # -- relaying for others --------------------------------------------------------------

    def _relay_build(self, peer: bytes, data: bytes) -> None:
        now = int(self._clock.time())
        try:
            processed = process_build(
                data, self._keys, now,
                lambda config: self.transit.admit(config, peer, now, self._reserved),
                seen=self._build_seen)
        except TunnelBuildRejected as exc:
            self.counters[f"build_dropped_{exc.reason.value}"] += 1
            return
        config = processed.config
        self.counters["build_requests"] += 1
        if config.role.name == "OUTBOUND_ENDPOINT":
            inner = codec.encode({"t": "tb", "tid": 0, "d": processed.forward})
            self._enqueue(config.next_router, {"t": "tg", "tid": config.next_tunnel_id,
                                               "d": inner})
        else:
            self._enqueue(config.next_router, {"t": "tb", "tid": config.next_tunnel_id,
                                               "d": processed.forward})

    def _execute_transit(self, actions: list[Relay | EndpointOut]) -> None:
        for action in actions:
            match action:
                case Relay(router_hash=target, message=message):
                    self._relay(target, message)
                case EndpointOut(delivery=delivery, payload=payload):
                    self._endpoint_deliver(delivery, payload)

    def _endpoint_deliver(self, delivery: Delivery, payload: bytes) -> None:
        match delivery.kind:
            case DeliveryKind.TUNNEL:
                self._enqueue(delivery.router_hash,
                              {"t": "tg", "tid": delivery.tunnel_id, "d": payload})
            case DeliveryKind.ROUTER:
                # Only build requests may be handed to a router: anything else would make us
                # a relay for arbitrary link messages.
                inner = self._decode_inner(payload)
                if inner is None or inner.get("t") != "tb":
                    self.counters["endpoint_refused"] += 1
                    return
                self._enqueue(delivery.router_hash, inner)
            case DeliveryKind.LOCAL:
                self.counters["endpoint_refused"] += 1

    # -- our own tunnels: receiving -------------------------------------------------------

    def _receive_own(self, own: _OwnInbound, data: bytes, now: int) -> None:
        try:
            payload = own.endpoint.unwrap(data, now).payload
            fragment = decode_payload(payload)
            if fragment is None:
                self.counters["padding_received"] += 1
                return
            whole = own.reassembler.receive(fragment, now)
        except TunnelMessageInvalid as exc:
            self.counters[f"inbound_dropped_{exc.reason.value}"] += 1
            return
        if whole is not None:
            self._dispatch_inner(whole.payload)

    def _dispatch_inner(self, data: bytes) -> None:
        inner = self._decode_inner(data)
        if inner is None:
            self.counters["inner_malformed"] += 1
            return
        try:
            match inner.get("t"):
                case "g":
                    garlic = codec.expect_bytes(inner.get("d"), max_size=MAX_INNER_BYTES)
                    self.counters["garlic_received"] += 1
                    if self._receiver is not None:
                        self._receiver(garlic)
                case "tb":
                    self._outbound_reply(codec.expect_bytes(inner.get("d"), REQUEST_BYTES))
                case "tt":
                    nonce = codec.expect_bytes(inner.get("n"), 16)
                    if nonce in self._tests:
                        self._tests_back.add(nonce)
                case _:
                    self.counters["inner_unknown"] += 1
        except DecodeError:
            self.counters["inner_malformed"] += 1

    @staticmethod
    def _decode_inner(data: bytes) -> dict[str, codec.Value] | None:
        try:
            return codec.expect_map(codec.decode_canonical(data, max_size=MAX_INNER_BYTES))
        except DecodeError:
            return None

    # -- our own tunnels: building --------------------------------------------------------

    def _select_hops(self, count: int, exclude: Any) -> list[RouterIdentity]:
        infos: list[RouterInfo] = self._netdb.select_routers(count, exclude=tuple(exclude))
        return [info.identity for info in infos]

    def _reserved(self, tid: int) -> bool:
        return tid in self._own_inbound or tid in self._pending_in

    def _zero_hop(self, build_id: int) -> bool:
        tunnel = self.pool.tunnels.get(build_id)
        return tunnel is not None and tunnel.length == 0

    def _inbound_gateway(self, tunnel: PoolTunnel) -> tuple[bytes, int]:
        assert tunnel.secrets is not None
        if tunnel.secrets.hops:
            first = tunnel.secrets.hops[0]
            return first.router_hash, first.config.receive_tunnel_id
        return self._own, tunnel.secrets.local_tunnel_id

    def _start_build(self, action: BuildTunnel) -> None:
        now = self._clock.time()
        reply_router: bytes | None = None
        reply_tid: int | None = None
        if action.direction is Direction.OUTBOUND and action.hops:
            reply = self.pool.pick(Direction.INBOUND, now)
            if reply is None:
                self._retire(self.pool.build_failed(action.build_id))
                return
            reply_router, reply_tid = self._inbound_gateway(reply)
        try:
            request, secrets = BuildRequest.create(
                action.hops, action.direction, creator_hash=self._own, now=int(now),
                lifetime_s=self._settings.lifetime_s, reply_router=reply_router,
                reply_tunnel_id=reply_tid)
        except TunnelBuildRejected as exc:
            log.info("tunnel.build.refused reason=%s", exc.reason.value)
            self._retire(self.pool.build_failed(action.build_id))
            return
        pending = _PendingBuild(action.build_id, secrets)
        if not action.hops:
            self._established(pending)
            return
        first = secrets.hops[0]
        message: dict[str, codec.Encodable] = {"t": "tb", "tid": first.config.receive_tunnel_id,
                                               "d": request.encode()}
        if action.direction is Direction.INBOUND:
            self._pending_in[secrets.local_tunnel_id] = pending
            # Through an outbound tunnel when we have one: the gateway then cannot tell
            # which router asked for the tunnel the LeaseSet will name.
            if self._send_out(Delivery(DeliveryKind.ROUTER, first.router_hash),
                              codec.encode(message), direct_zero_hop=False):
                return
        else:
            self._pending_out[action.build_id] = pending
        self._enqueue(first.router_hash, message)
        log.debug("tunnel.build.started id=%d direction=%s", action.build_id,
                  action.direction.value)

    def _finish_build(self, pending: _PendingBuild, reply: bytes) -> None:
        try:
            codes = read_replies(pending.secrets, reply)
        except TunnelBuildRejected as exc:
            self.counters[f"build_reply_{exc.reason.value}"] += 1
            self._retire(self.pool.build_failed(pending.build_id))
            return
        if all(code is BuildReplyCode.ACCEPTED for code in codes):
            self._established(pending)
        else:
            self._retire(self.pool.build_failed(pending.build_id))

    def _outbound_reply(self, reply: bytes) -> None:
        for build_id, pending in list(self._pending_out.items()):
            try:
                read_replies(pending.secrets, reply)
            except TunnelBuildRejected:
                continue
            del self._pending_out[build_id]
            self._finish_build(pending, reply)
            return
        self.counters["build_reply_unmatched"] += 1

    def _established(self, pending: _PendingBuild) -> None:
        secrets = pending.secrets
        if not self.pool.built(pending.build_id, secrets, self._clock.time()):
            return
        if secrets.direction is Direction.INBOUND:
            self._own_inbound[secrets.local_tunnel_id] = _OwnInbound(
                pending.build_id, CreatorEndpoint(secrets), Reassembler())
            self.leases_changed.set()
        else:
            self._gateways[pending.build_id] = CreatorGateway(secrets)

    def _retire(self, actions: list[TunnelRetired]) -> None:
        for action in actions:
            self._pending_out.pop(action.build_id, None)
            for tid, pending in list(self._pending_in.items()):
                if pending.build_id == action.build_id:
                    del self._pending_in[tid]
            self._gateways.pop(action.build_id, None)
            for tid, own in list(self._own_inbound.items()):
                if own.build_id == action.build_id:
                    del self._own_inbound[tid]
                    self.leases_changed.set()
            log.debug("tunnel.retired id=%d reason=%s", action.build_id, action.reason)

    # -- our own tunnels: sending ---------------------------------------------------------

    def _send_out(self, delivery: Delivery, inner: bytes, *, direct_zero_hop: bool = True) -> bool:
        """``inner`` through a random outbound tunnel; False when there is none to use."""
        tunnel = self.pool.pick(Direction.OUTBOUND, self._clock.time())
        if tunnel is None:
            self.counters["no_outbound_tunnel"] += 1
            return False
        return self._send_via(tunnel, delivery, inner, direct_zero_hop=direct_zero_hop)

    def _send_via(self, tunnel: PoolTunnel, delivery: Delivery, inner: bytes, *,
                  direct_zero_hop: bool = True) -> bool:
        if tunnel.secrets is None or tunnel.state is not TunnelState.ESTABLISHED:
            return False
        if not tunnel.secrets.hops:
            if not direct_zero_hop:
                return False
            # A zero-hop tunnel has no layers: we are its endpoint and act on the delivery.
            self._endpoint_deliver(delivery, inner)
            return True
        gateway = self._gateways.get(tunnel.build_id)
        if gateway is None:
            return False
        now = int(self._clock.time())
        try:
            forwards = [gateway.wrap(fragment.encode(), now)
                        for fragment in fragment_message(inner, delivery)]
        except (ValueError, TunnelMessageInvalid):
            self.counters["send_refused"] += 1
            return False
        for forward in forwards:
            self._enqueue(forward.router_hash, {"t": "td", "d": forward.message})
        self.counters["messages_sent"] += 1
        return True

    def _relay(self, target: bytes, message: bytes) -> None:
        if self._batcher is None:
            self._enqueue(target, {"t": "td", "d": message})
            return
        if self._batcher.add((target, message), int(self._clock.time() * 1000)) is None:
            self.counters["batch_full"] += 1
        self._batch_wake.set()

    def _enqueue(self, router: bytes, message: Mapping[str, codec.Encodable]) -> None:
        if self._closing:
            return
        queue = self._queues.setdefault(router, collections.deque())
        if len(queue) >= MAX_QUEUE_PER_ROUTER:
            self.counters["queue_full"] += 1
            return
        queue.append(message)
        if router not in self._workers:
            self._workers.add(router)
            self._group.create_task(self._drain(router), name=f"tunnel-send-{router.hex()[:8]}")

    async def _drain(self, router: bytes) -> None:
        """Send ``router``'s queue in order; the task ends when the queue is empty."""
        queue = self._queues[router]
        try:
            while queue:
                message = queue.popleft()
                try:
                    await self._deliver(router, message)
                except (PetranodeError, OSError, TimeoutError) as exc:
                    # LinkError and the link's refusals included: the peer is gone or busy;
                    # tunnel traffic is datagram-like and the garlic layer retries.
                    self.counters["send_failed"] += 1
                    self._rate_log.log(logging.INFO, "tunnel.send_failed",
                                       "tunnel.send_failed router=%s error=%s",
                                       router.hex()[:16], type(exc).__name__)
        finally:
            self._workers.discard(router)
            if not queue:
                self._queues.pop(router, None)

    async def _deliver(self, router: bytes, message: Mapping[str, codec.Encodable]) -> None:
        if router == self._own:
            # Our own router is a hop of a path (our zero-hop gateway, a reply to ourselves):
            # hand the message to our handler as if it came over a link.
            value = codec.expect_map(codec.decode_canonical(codec.encode(message),
                                                            max_size=MAX_INNER_BYTES + 256))
            match value.get("t"):
                case "tb":
                    await self._on_build(self._own, value)
                case "td":
                    await self._on_data(self._own, value)
                case "tg":
                    await self._on_gateway(self._own, value)
            return
        async with asyncio.timeout(SEND_TIMEOUT_S):
            if router not in self._links.peers():
                info = self._netdb.get_local(router)
                if not isinstance(info, RouterInfo):
                    info = await self._netdb.lookup(router)
                address = info.address("tcp") if isinstance(info, RouterInfo) else None
                if address is None or not isinstance(info, RouterInfo):
                    self.counters["unknown_router"] += 1
                    return
                await self._links.connect(address.host, address.port, info.identity.static_key)
            await self._links.send(router, message)

    # -- loops ------------------------------------------------------------------------------

    async def _pool_loop(self) -> None:
        while True:
            now = self._clock.time()
            self.transit.expire(int(now))
            for tid, pending in list(self._pending_in.items()):
                if pending.build_id not in self.pool.tunnels:
                    del self._pending_in[tid]
            have_inbound = bool(self.pool.established(Direction.INBOUND, now))
            directions = tuple(Direction) if have_inbound else (Direction.INBOUND,)
            for action in self.pool.tick(now, directions):
                match action:
                    case BuildTunnel():
                        self._start_build(action)
                    case TunnelRetired():
                        self._retire([action])
            await asyncio.sleep(POOL_TICK_S)

    async def _test_loop(self) -> None:
        interval = self._config.test_interval_s
        if interval <= 0:
            return
        rng = random.SystemRandom()
        while True:
            await asyncio.sleep(interval * (0.5 + rng.random()))
            pairs = self.pool.tests_due(self._clock.time())
            sent: dict[bytes, tuple[int, int]] = {}
            for out_id, in_id in pairs:
                inbound = self.pool.tunnels.get(in_id)
                outbound = self.pool.tunnels.get(out_id)
                if inbound is None or outbound is None or len(self._tests) >= MAX_TESTS:
                    continue
                nonce = na.randombytes(16)
                self._tests[nonce] = (out_id, in_id)
                sent[nonce] = (out_id, in_id)
                gateway, tid = self._inbound_gateway(inbound)
                self._send_via(outbound, Delivery(DeliveryKind.TUNNEL, gateway, tid),
                               codec.encode({"t": "tt", "n": nonce}))
            if not sent:
                continue
            await asyncio.sleep(self._config.test_timeout_s)
            results = {pair: nonce in self._tests_back for nonce, pair in sent.items()}
            for nonce in sent:
                self._tests.pop(nonce, None)
                self._tests_back.discard(nonce)
            failed = self.pool.test_results(results)
            self.counters["tests_sent"] += len(results)
            self.counters["tests_failed"] += sum(1 for ok in results.values() if not ok)
            if failed:
                log.info("tunnel.tests_failed tunnels=%s", failed)

    async def _cover_loop(self) -> None:
        schedule = CoverSchedule(self._config.cover_rate_per_s)
        while True:
            await asyncio.sleep(schedule.next_delay())
            tunnel = self.pool.pick(Direction.OUTBOUND, self._clock.time())
            if tunnel is None or tunnel.secrets is None or not tunnel.secrets.hops:
                continue
            gateway = self._gateways.get(tunnel.build_id)
            if gateway is None:
                continue
            with contextlib.suppress(TunnelMessageInvalid):
                forward = gateway.wrap(padding_payload(), int(self._clock.time()))
                self._enqueue(forward.router_hash, {"t": "td", "d": forward.message})
                self.counters["cover_sent"] += 1

    async def _batch_loop(self) -> None:
        assert self._batcher is not None
        while True:
            due, next_ms = self._batcher.release(int(self._clock.time() * 1000))
            for target, message in due:
                self._enqueue(target, {"t": "td", "d": message})
            self._batch_wake.clear()
            delay = None if next_ms is None else max(0.0, next_ms / 1000 - self._clock.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._batch_wake.wait()


# -- the benchmark's baseline ---------------------------------------------------------------------


def measure_loopback_tcp_rtt(samples: int, size: int = TUNNEL_MESSAGE_BYTES) -> list[float]:
    """Round trips (seconds) of ``size`` bytes over a plain loopback TCP echo, no encryption:
    the floor ``petranode bench tunnels`` prints beside its tunnel round trips. It lives here,
    in the tunnel layer's only I/O module, so the benchmark itself does no I/O of its own."""

    async def run() -> list[float]:
        finished = asyncio.Event()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    writer.write(await reader.readexactly(size))
                    await writer.drain()
            writer.close()
            finished.set()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = bytes(size)
        times = []
        try:
            async with asyncio.timeout(60):
                for _ in range(samples):
                    started = time.perf_counter()
                    writer.write(payload)
                    await writer.drain()
                    await reader.readexactly(size)
                    times.append(time.perf_counter() - started)
        finally:
            writer.close()
            await writer.wait_closed()
            async with asyncio.timeout(5):
                await finished.wait()
            server.close()
            await server.wait_closed()
        return times

    return asyncio.run(run())
