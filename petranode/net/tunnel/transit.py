"""The participant table: tunnels this router relays for others (SPEC §4.4; i2pd
``TransitTunnel``). Pure; time is the caller's ``now`` (Unix seconds).

What a relaying router keeps per tunnel is exactly :class:`TransitEntry`: the tunnel id it
receives on, the previous hop (None for an inbound gateway, which takes messages from anyone),
the next hop and next tunnel id, its layer keys, its role and the expiry — plus byte and
message counters. The build record's reply key is dropped once the reply is written. Nothing
here names a destination or a tunnel's creator as such: the table cannot link a sender's
router to a receiving destination, and a unit test asserts on the fields.

Bounds, each with its reason: ``max_tunnels`` entries (memory, and CPU a stranger can ask of
us — I2P's default share limit is a few thousand on a real router, far fewer on a meter), and
``max_bytes_per_tunnel`` relayed per tunnel over its life (one tunnel cannot monopolise our
bandwidth). Every bad message is dropped and counted by reason; none is answered.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.tunnel.build import BuildReplyCode, HopConfig, HopRole
from petranode.net.tunnel.errors import TunnelMessageInvalid
from petranode.net.tunnel.fragment import (
    Delivery,
    DeliveryKind,
    Reassembled,
    Reassembler,
    decode_payload,
    fragment_message,
)
from petranode.net.tunnel.layer import TUNNEL_MESSAGE_BYTES, Deliver, Forward, TransitHop

Rng = Callable[[int], bytes]

#: Default bounds (see the module docstring).
DEFAULT_MAX_TUNNELS: Final = 512
#: 64 MiB per tunnel lifetime: ~110 KB/s for 10 minutes.
DEFAULT_MAX_BYTES_PER_TUNNEL: Final = 64 * 1024 * 1024
#: Partial messages an outbound endpoint reassembles per tunnel (memory: 8 × 64 KiB).
ENDPOINT_MAX_PENDING: Final = 8


class TransitDrop(enum.Enum):
    """Why a relayed message was dropped (beside the layer's own ``MessageFault`` reasons)."""

    UNKNOWN_TUNNEL = "unknown_tunnel"
    WRONG_PREVIOUS_HOP = "wrong_previous_hop"
    BYTE_LIMIT = "byte_limit"
    WRONG_ROLE = "wrong_role"


@final
@dataclass(frozen=True, slots=True)
class LayerKeys:
    layer_key: bytes
    nonce_key: bytes
    #: Gateway/endpoint only: the innermost AEAD key; empty for a participant.
    aead_key: bytes

    def __repr__(self) -> str:
        return "LayerKeys(…)"


@dataclass(slots=True, eq=False)
class TransitEntry:
    """One relayed tunnel: neighbours and keys, nothing more."""

    receive_tunnel_id: int
    previous_hop: bytes | None
    next_hop: bytes
    next_tunnel_id: int
    keys: LayerKeys
    role: HopRole
    expiry: int
    bytes_relayed: int = 0
    messages_relayed: int = 0


@final
@dataclass(frozen=True, slots=True)
class Relay:
    """Send a tunnel message (``"td"``) to ``router_hash``."""

    router_hash: bytes
    message: bytes


@final
@dataclass(frozen=True, slots=True)
class EndpointOut:
    """An outbound endpoint reassembled a message: act on its delivery instruction."""

    delivery: Delivery
    payload: bytes


TransitAction = Relay | EndpointOut


@dataclass(slots=True, eq=False)
class _Runtime:
    hop: TransitHop
    reassembler: Reassembler | None


@final
class TransitTable:
    """Tunnels we take part in, keyed by the tunnel id we receive on."""

    def __init__(self, *, max_tunnels: int = DEFAULT_MAX_TUNNELS,
                 max_bytes_per_tunnel: int = DEFAULT_MAX_BYTES_PER_TUNNEL,
                 replay_capacity: int = 1 << 14) -> None:
        self.max_tunnels = max_tunnels
        self.max_bytes_per_tunnel = max_bytes_per_tunnel
        self._replay_capacity = replay_capacity
        self.entries: dict[int, TransitEntry] = {}
        self._runtime: dict[int, _Runtime] = {}
        self.accepted = 0
        self.rejected = 0
        self.relayed = 0
        self.dropped: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self.entries)

    def admit(self, config: HopConfig, previous_hop: bytes | None, now: int,
              reserved: Callable[[int], bool] = lambda _id: False) -> BuildReplyCode:
        """Decide on a build record and, if accepted, hold the tunnel; the reply code.

        ``reserved`` says whether a tunnel id is in use elsewhere on this router (our own
        tunnels' receive ids), so two tunnels never share one.
        """
        self.expire(now)
        if len(self.entries) >= self.max_tunnels:
            self.rejected += 1
            return BuildReplyCode.REJECTED_BANDWIDTH
        tid = config.receive_tunnel_id
        if tid in self.entries or reserved(tid):
            self.rejected += 1
            return BuildReplyCode.REJECTED_PROBABILISTIC
        gateway = config.role is HopRole.INBOUND_GATEWAY
        entry = TransitEntry(
            receive_tunnel_id=tid,
            previous_hop=None if gateway else previous_hop,
            next_hop=config.next_router,
            next_tunnel_id=config.next_tunnel_id,
            keys=LayerKeys(config.layer_key, config.nonce_key, config.aead_key),
            role=config.role,
            expiry=config.expiry,
        )
        # The reply key only served the build reply: the hop keeps a config without it.
        kept = HopConfig(role=config.role, receive_tunnel_id=tid, next_router=config.next_router,
                         next_tunnel_id=config.next_tunnel_id, layer_key=config.layer_key,
                         nonce_key=config.nonce_key, aead_key=config.aead_key,
                         reply_key=bytes(32), expiry=config.expiry)
        endpoint = config.role is HopRole.OUTBOUND_ENDPOINT
        self.entries[tid] = entry
        self._runtime[tid] = _Runtime(
            TransitHop(kept, replay_capacity=self._replay_capacity),
            Reassembler(max_pending=ENDPOINT_MAX_PENDING) if endpoint else None)
        self.accepted += 1
        return BuildReplyCode.ACCEPTED

    def holds(self, tunnel_id: int) -> bool:
        return tunnel_id in self.entries

    def receive(self, tunnel_id: int, data: bytes, from_hop: bytes,
                now: int) -> list[TransitAction]:
        """A tunnel message from ``from_hop`` for ``tunnel_id``: relay it, or deliver it as
        an outbound endpoint. Bad messages are dropped and counted."""
        entry = self.entries.get(tunnel_id)
        runtime = self._runtime.get(tunnel_id)
        if entry is None or runtime is None:
            return self._drop(TransitDrop.UNKNOWN_TUNNEL.value)
        if entry.role is HopRole.INBOUND_GATEWAY:
            return self._drop(TransitDrop.WRONG_ROLE.value)
        if entry.previous_hop is not None and entry.previous_hop != from_hop:
            return self._drop(TransitDrop.WRONG_PREVIOUS_HOP.value)
        if not self._charge(entry):
            return []
        try:
            result = runtime.hop.receive(data, now)
        except TunnelMessageInvalid as exc:
            return self._drop(exc.reason.value)
        match result:
            case Forward(router_hash=target, message=message):
                self.relayed += 1
                return [Relay(target, message)]
            case Deliver(payload=payload):
                return self._endpoint(runtime, payload, now)

    def gateway(self, tunnel_id: int, message: bytes, now: int,
                rng: Rng = na.randombytes) -> list[TransitAction]:
        """As an inbound gateway, put ``message`` into ``tunnel_id``: fragment, layer, relay."""
        entry = self.entries.get(tunnel_id)
        runtime = self._runtime.get(tunnel_id)
        if entry is None or runtime is None:
            return self._drop(TransitDrop.UNKNOWN_TUNNEL.value)
        if entry.role is not HopRole.INBOUND_GATEWAY:
            return self._drop(TransitDrop.WRONG_ROLE.value)
        try:
            fragments = fragment_message(message, Delivery(DeliveryKind.LOCAL), rng=rng)
        except ValueError:
            return self._drop("message_too_large")
        actions: list[TransitAction] = []
        for fragment in fragments:
            if not self._charge(entry):
                break
            try:
                forward = runtime.hop.send(fragment.encode(), now, rng)
            except TunnelMessageInvalid as exc:
                return self._drop(exc.reason.value)
            self.relayed += 1
            actions.append(Relay(forward.router_hash, forward.message))
        return actions

    def expire(self, now: int) -> int:
        stale = [tid for tid, e in self.entries.items() if e.expiry <= now]
        for tid in stale:
            del self.entries[tid]
            del self._runtime[tid]
        return len(stale)

    def drop_through(self, router_hash: bytes) -> int:
        """Forget tunnels whose next hop is ``router_hash`` (its link is gone)."""
        gone = [tid for tid, e in self.entries.items() if e.next_hop == router_hash]
        for tid in gone:
            del self.entries[tid]
            del self._runtime[tid]
        return len(gone)

    # -- internals ------------------------------------------------------------------------

    def _charge(self, entry: TransitEntry) -> bool:
        if entry.bytes_relayed + TUNNEL_MESSAGE_BYTES > self.max_bytes_per_tunnel:
            self.dropped[TransitDrop.BYTE_LIMIT.value] += 1
            return False
        entry.bytes_relayed += TUNNEL_MESSAGE_BYTES
        entry.messages_relayed += 1
        return True

    def _endpoint(self, runtime: _Runtime, payload: bytes, now: int) -> list[TransitAction]:
        assert runtime.reassembler is not None  # only endpoints deliver
        try:
            fragment = decode_payload(payload)
            if fragment is None:  # padding: cover traffic ends here
                self.dropped["padding"] += 1
                return []
            whole: Reassembled | None = runtime.reassembler.receive(fragment, now)
        except TunnelMessageInvalid as exc:
            return self._drop(exc.reason.value)
        if whole is None:
            return []
        return [EndpointOut(whole.delivery, whole.payload)]

    def _drop(self, reason: str) -> list[TransitAction]:
        self.dropped[reason] += 1
        return []

