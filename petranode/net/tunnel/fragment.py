"""Payloads cut into tunnel payloads and put back together (SPEC §4.4; I2P tunnel message
fragmentation, ``TunnelGateway``/``FragmentHandler``).

Every tunnel payload is exactly :data:`~petranode.net.tunnel.layer.TUNNEL_PAYLOAD_BYTES` (988)
bytes and holds one fragment or is padding (cover traffic)::

    kind (1: 0 padding, 1 fragment) ‖ message_id (4) ‖ number (1) ‖ flags (1: bit 0 last)
    ‖ [number 0 only: delivery type (1) ‖ router hash (32, types 1, 2) ‖ tunnel id (4, type 2)]
    ‖ length (2) ‖ data ‖ zeros

A padding payload is all zeros after its kind byte. Decoding is strict — unknown kinds or
flags, a length past the end, or non-zero padding are refused — so each payload has one
reading. The delivery instruction (what the endpoint does with the whole message) travels in
fragment 0 only, as in I2P.

:class:`Reassembler` is the endpoint's bounded buffer: at most ``max_pending`` partial
messages (the oldest is evicted to admit a new one: honest messages complete within a round
trip, so an attacker filling the buffer only displaces its own), at most ``max_message_bytes``
per message, and partial messages expire ``timeout_s`` after their first fragment (I2P's
FragmentHandler uses 60 s). Message ids recently completed are remembered for the same time so
a late duplicate fragment does not open a new partial message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.tunnel.build import MAX_TUNNEL_ID, Rng
from petranode.net.tunnel.errors import MessageFault, TunnelMessageInvalid
from petranode.net.tunnel.layer import TUNNEL_PAYLOAD_BYTES

_KIND_PADDING: Final = 0
_KIND_FRAGMENT: Final = 1
_FLAG_LAST: Final = 0x01
#: kind, message id, number, flags, length.
FIXED_HEADER_BYTES: Final = 1 + 4 + 1 + 1 + 2
#: Fragment numbers fit one byte; 128 fragments of ≥ 942 bytes hold more than 64 KiB.
MAX_FRAGMENTS: Final = 128
#: Largest message the fragmenter cuts and the reassembler accepts by default (SPEC §4.4:
#: garlic messages up to ~64 KiB).
MAX_MESSAGE_BYTES: Final = 64 * 1024
#: I2P FragmentHandler's MAX_DEFRAGMENT_TIME.
REASSEMBLY_TIMEOUT_S: Final = 60
#: Partial messages per endpoint: 64 × 64 KiB = 4 MiB of memory at most.
MAX_PENDING: Final = 64


class DeliveryKind(enum.IntEnum):
    """Where the endpoint sends a reassembled message (I2P delivery types)."""

    LOCAL = 0
    ROUTER = 1
    TUNNEL = 2


@final
@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery instruction: local, to a router, or to a tunnel at a router."""

    kind: DeliveryKind
    router_hash: bytes = b""
    tunnel_id: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, DeliveryKind):
            raise TypeError("kind must be a DeliveryKind")
        if len(self.router_hash) != (0 if self.kind is DeliveryKind.LOCAL else 32):
            raise ValueError("a router hash (32 bytes) goes with router and tunnel delivery")
        if self.kind is DeliveryKind.TUNNEL:
            if not 1 <= self.tunnel_id <= MAX_TUNNEL_ID:
                raise ValueError("tunnel ids are 1..2**32-1")
        elif self.tunnel_id != 0:
            raise ValueError("only tunnel delivery has a tunnel id")

    @property
    def encoded_size(self) -> int:
        return 1 + len(self.router_hash) + (4 if self.kind is DeliveryKind.TUNNEL else 0)

    def encode(self) -> bytes:
        tail = self.tunnel_id.to_bytes(4, "big") if self.kind is DeliveryKind.TUNNEL else b""
        return bytes([self.kind]) + self.router_hash + tail


@final
@dataclass(frozen=True, slots=True)
class Fragment:
    """One fragment of message ``message_id``; fragment 0 carries the delivery instruction."""

    message_id: int
    number: int
    last: bool
    data: bytes
    delivery: Delivery | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.message_id < 2**32:
            raise ValueError("message ids are 32-bit")
        if not 0 <= self.number < MAX_FRAGMENTS:
            raise ValueError(f"fragment numbers are 0..{MAX_FRAGMENTS - 1}")
        if (self.delivery is None) != (self.number != 0):
            raise ValueError("fragment 0, and only fragment 0, carries the delivery")
        if len(self.data) > self.capacity(self.delivery):
            raise ValueError("fragment data does not fit one tunnel payload")

    @staticmethod
    def capacity(delivery: Delivery | None) -> int:
        """Data bytes a fragment with (or without) ``delivery`` can hold."""
        extra = 0 if delivery is None else delivery.encoded_size
        return TUNNEL_PAYLOAD_BYTES - FIXED_HEADER_BYTES - extra

    def encode(self) -> bytes:
        out = (
            bytes([_KIND_FRAGMENT])
            + self.message_id.to_bytes(4, "big")
            + bytes([self.number, _FLAG_LAST if self.last else 0])
            + (b"" if self.delivery is None else self.delivery.encode())
            + len(self.data).to_bytes(2, "big")
            + self.data
        )
        return out + bytes(TUNNEL_PAYLOAD_BYTES - len(out))


def padding_payload() -> bytes:
    """A payload that carries nothing (cover traffic); the endpoint discards it."""
    return bytes(TUNNEL_PAYLOAD_BYTES)


def decode_payload(payload: bytes) -> Fragment | None:
    """The fragment in a tunnel payload, None for padding, or ``TunnelMessageInvalid``."""
    if len(payload) != TUNNEL_PAYLOAD_BYTES:
        raise TunnelMessageInvalid(MessageFault.WRONG_SIZE)
    kind = payload[0]
    if kind == _KIND_PADDING:
        _expect_zero(payload[1:])
        return None
    if kind != _KIND_FRAGMENT:
        raise TunnelMessageInvalid(MessageFault.BAD_FRAGMENT)
    message_id = int.from_bytes(payload[1:5], "big")
    number, flags = payload[5], payload[6]
    if number >= MAX_FRAGMENTS or flags & ~_FLAG_LAST:
        raise TunnelMessageInvalid(MessageFault.BAD_FRAGMENT)
    at = 7
    delivery = None
    if number == 0:
        delivery, at = _decode_delivery(payload, at)
    length = int.from_bytes(payload[at : at + 2], "big")
    at += 2
    if at + length > TUNNEL_PAYLOAD_BYTES:
        raise TunnelMessageInvalid(MessageFault.BAD_FRAGMENT)
    _expect_zero(payload[at + length :])
    return Fragment(
        message_id, number, bool(flags & _FLAG_LAST), payload[at : at + length], delivery
    )


def fragment_message(
    payload: bytes,
    delivery: Delivery,
    *,
    rng: Rng = na.randombytes,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> list[Fragment]:
    """``payload`` cut into fragments under a fresh random message id, in order."""
    if len(payload) > max_message_bytes:
        raise ValueError(f"messages are at most {max_message_bytes} bytes")
    message_id = int.from_bytes(rng(4), "big")
    first = Fragment.capacity(delivery)
    chunks = [payload[:first]]
    rest = Fragment.capacity(None)
    chunks += [payload[i : i + rest] for i in range(first, len(payload), rest)]
    if len(chunks) > MAX_FRAGMENTS:
        raise ValueError("message needs more fragments than a message may have")
    last = len(chunks) - 1
    return [
        Fragment(message_id, n, n == last, chunk, delivery if n == 0 else None)
        for n, chunk in enumerate(chunks)
    ]


@final
@dataclass(frozen=True, slots=True)
class Reassembled:
    """A whole message, ready for its delivery instruction."""

    message_id: int
    delivery: Delivery
    payload: bytes


@dataclass(slots=True)
class _Partial:
    started: int
    parts: dict[int, Fragment] = field(default_factory=dict)
    last_number: int | None = None
    size: int = 0


@final
class Reassembler:
    """Bounded out-of-order reassembly of fragments for one tunnel endpoint."""

    __slots__ = ("_done", "_max_bytes", "_max_pending", "_pending", "_timeout")

    def __init__(
        self,
        *,
        max_pending: int = MAX_PENDING,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        timeout_s: int = REASSEMBLY_TIMEOUT_S,
    ) -> None:
        if max_pending < 1 or max_message_bytes < 1 or timeout_s < 1:
            raise ValueError("reassembly bounds must be positive")
        self._max_pending = max_pending
        self._max_bytes = max_message_bytes
        self._timeout = timeout_s
        # Insertion order is arrival order: the first entry is the oldest.
        self._pending: dict[int, _Partial] = {}
        # Completed ids → when they may be forgotten; bounded like _pending (4× its size).
        self._done: dict[int, int] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def receive(self, fragment: Fragment, now: int) -> Reassembled | None:
        """Add ``fragment``; returns the message it completes, if any.

        Duplicates are ignored. Fragments that contradict each other or a message growing past
        the bound drop the whole partial message and raise :class:`TunnelMessageInvalid`.
        """
        self.expire(now)
        mid = fragment.message_id
        if mid in self._done:
            return None
        partial = self._pending.get(mid)
        if partial is None:
            if len(self._pending) >= self._max_pending:
                del self._pending[next(iter(self._pending))]
            partial = self._pending[mid] = _Partial(started=now)
        seen = partial.parts.get(fragment.number)
        if seen is not None:
            if seen != fragment:
                del self._pending[mid]
                raise TunnelMessageInvalid(MessageFault.FRAGMENT_CONFLICT)
            return None
        highest = max(partial.parts, default=-1)
        if (fragment.last and (partial.last_number is not None or highest > fragment.number)) or (
            partial.last_number is not None and fragment.number > partial.last_number
        ):
            del self._pending[mid]
            raise TunnelMessageInvalid(MessageFault.FRAGMENT_CONFLICT)
        if partial.size + len(fragment.data) > self._max_bytes:
            del self._pending[mid]
            raise TunnelMessageInvalid(MessageFault.MESSAGE_TOO_LARGE)
        partial.parts[fragment.number] = fragment
        partial.size += len(fragment.data)
        if fragment.last:
            partial.last_number = fragment.number
        if partial.last_number is None or len(partial.parts) != partial.last_number + 1:
            return None
        del self._pending[mid]
        self._remember(mid, now)
        first = partial.parts[0]
        assert first.delivery is not None  # Fragment guarantees it for number 0
        payload = b"".join(partial.parts[n].data for n in range(partial.last_number + 1))
        return Reassembled(message_id=mid, delivery=first.delivery, payload=payload)

    def expire(self, now: int) -> int:
        """Drop partial messages older than the timeout; returns how many were dropped."""
        stale = [mid for mid, p in self._pending.items() if now - p.started >= self._timeout]
        for mid in stale:
            del self._pending[mid]
        for mid in [mid for mid, until in self._done.items() if until <= now]:
            del self._done[mid]
        return len(stale)

    def _remember(self, mid: int, now: int) -> None:
        if len(self._done) >= 4 * self._max_pending:
            del self._done[next(iter(self._done))]
        self._done[mid] = now + self._timeout


def _decode_delivery(payload: bytes, at: int) -> tuple[Delivery, int]:
    try:
        kind = DeliveryKind(payload[at])
    except ValueError as exc:
        raise TunnelMessageInvalid(MessageFault.BAD_FRAGMENT) from exc
    at += 1
    router_hash = b""
    tunnel_id = 0
    if kind is not DeliveryKind.LOCAL:
        router_hash, at = payload[at : at + 32], at + 32
    if kind is DeliveryKind.TUNNEL:
        tunnel_id, at = int.from_bytes(payload[at : at + 4], "big"), at + 4
        if tunnel_id == 0:
            raise TunnelMessageInvalid(MessageFault.BAD_FRAGMENT)
    return Delivery(kind, router_hash, tunnel_id), at


def _expect_zero(padding: bytes) -> None:
    if any(padding):
        raise TunnelMessageInvalid(MessageFault.BAD_FRAGMENT)
