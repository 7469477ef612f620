"""Cloves and garlic messages: the plaintext inside an end-to-end encrypted garlic message
(SPEC §2 "garlic messages bundle several messages together", §4.4; I2P ``GarlicClove``).

A :class:`GarlicMessage` bundles 1..:data:`MAX_CLOVES` :class:`Clove` s for one destination.
Each clove carries delivery instructions (what the receiver does with it), a random 8-byte clove
id (acknowledgements and de-duplication key on it), an expiry, a payload kind and the payload.

Canonical encodings (field tables with sizes in ``docs/garlic.md``)::

    delivery: [kind, hash, tunnel_id]        LOCAL: [0, b"", 0]; DESTINATION/ROUTER: [k, h32, 0];
                                             TUNNEL: [3, router_hash32, tunnel_id 1..2^32-1]
    clove:    [delivery, clove_id, expires_ms, payload_kind, payload]
    message:  [version=1, message_id, created_ms, [clove, ...]]

Payload rules are checked on construction: an ACK carries exactly
``acked clove id (8) ‖ session id (8)``; a LEASESET carries at most one LeaseSet's bytes (its
signature is checked by the session layer, which knows the network id); PADDING is all zeros.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, final

from petranode.net.netdb.leaseset import MAX_LEASESET_BYTES
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

GARLIC_VERSION: Final = 1
CLOVE_ID_BYTES: Final = 8
SESSION_ID_BYTES: Final = 8
HASH_BYTES: Final = 32
#: An ACK payload: the acknowledged clove id, then the id of the session it arrived in.
ACK_PAYLOAD_BYTES: Final = CLOVE_ID_BYTES + SESSION_ID_BYTES
#: Largest DATA payload. A ring-signed transaction with a Bulletproof+ is a few KiB; 16 KiB
#: leaves room while keeping one message within 32 tunnel messages of 1024 bytes.
MAX_CLOVE_PAYLOAD: Final = 16 * 1024
#: Most cloves in one message (I2P allows 255; our bundles are a handful of orders and acks).
MAX_CLOVES: Final = 16
#: Largest encoded garlic message (the plaintext); checked on construction and before decoding.
MAX_GARLIC_BYTES: Final = 32 * 1024
_MAX_TUNNEL_ID: Final = 2**32 - 1
_MAX_MESSAGE_ID: Final = 2**32 - 1
_MAX_TIME: Final = 2**63 - 1


class DeliveryKind(enum.IntEnum):
    """Where the receiving end sends a clove (I2P delivery instructions)."""

    #: To the destination that decrypted the garlic message.
    LOCAL = 0
    #: To another destination, by its hash.
    DESTINATION = 1
    #: To a router, by its router hash.
    ROUTER = 2
    #: Into a tunnel: the gateway's router hash and its tunnel id.
    TUNNEL = 3


class PayloadKind(enum.IntEnum):
    DATA = 0
    ACK = 1
    LEASESET = 2
    PADDING = 3


@final
@dataclass(frozen=True, slots=True)
class DeliveryInstructions:
    kind: DeliveryKind
    #: Destination or router hash; empty for LOCAL.
    hash: bytes = b""
    #: The gateway's tunnel id for TUNNEL, else 0.
    tunnel_id: int = 0

    def __post_init__(self) -> None:
        if self.kind is DeliveryKind.LOCAL:
            if self.hash or self.tunnel_id:
                raise ValueError("LOCAL delivery takes no hash and no tunnel id")
            return
        if len(self.hash) != HASH_BYTES:
            raise ValueError("delivery hash must be 32 bytes")
        if self.kind is DeliveryKind.TUNNEL:
            # Tunnel id 0 is reserved in I2P (it marks "no tunnel").
            if not 0 < self.tunnel_id <= _MAX_TUNNEL_ID:
                raise ValueError("tunnel id must be 1..2^32-1")
        elif self.tunnel_id:
            raise ValueError("only TUNNEL delivery takes a tunnel id")

    @classmethod
    def local(cls) -> DeliveryInstructions:
        return cls(DeliveryKind.LOCAL)

    def to_value(self) -> list[codec.Encodable]:
        return [int(self.kind), self.hash, self.tunnel_id]

    @classmethod
    def from_value(cls, value: codec.Value) -> DeliveryInstructions:
        fields = codec.expect_list(value, 3, what="delivery")
        kind = DeliveryKind(codec.expect_int(fields[0], 0, max(DeliveryKind), what="delivery.kind"))
        return cls(kind=kind,
                   hash=codec.expect_bytes(fields[1], max_size=HASH_BYTES, what="delivery.hash"),
                   tunnel_id=codec.expect_int(fields[2], 0, _MAX_TUNNEL_ID,
                                              what="delivery.tunnel_id"))


@final
@dataclass(frozen=True, slots=True)
class Clove:
    """One message inside a garlic message."""

    delivery: DeliveryInstructions
    clove_id: bytes
    expires_ms: int
    kind: PayloadKind
    payload: bytes

    def __post_init__(self) -> None:
        if len(self.clove_id) != CLOVE_ID_BYTES:
            raise ValueError("clove id must be 8 bytes")
        if not 0 <= self.expires_ms <= _MAX_TIME:
            raise ValueError("clove expiry out of range")
        if len(self.payload) > MAX_CLOVE_PAYLOAD:
            raise ValueError(f"clove payload longer than {MAX_CLOVE_PAYLOAD} bytes")
        match self.kind:
            case PayloadKind.DATA:
                pass
            case PayloadKind.ACK:
                if len(self.payload) != ACK_PAYLOAD_BYTES:
                    raise ValueError("an ACK carries a clove id and a session id (16 bytes)")
            case PayloadKind.LEASESET:
                if not 0 < len(self.payload) <= MAX_LEASESET_BYTES:
                    raise ValueError("a LEASESET clove carries one LeaseSet")
            case PayloadKind.PADDING:
                if any(self.payload):
                    raise ValueError("padding must be zero bytes")

    @property
    def acked(self) -> tuple[bytes, bytes]:
        """(acknowledged clove id, session id) of an ACK clove."""
        if self.kind is not PayloadKind.ACK:
            raise ValueError("not an ACK clove")
        return self.payload[:CLOVE_ID_BYTES], self.payload[CLOVE_ID_BYTES:]

    def to_value(self) -> list[codec.Encodable]:
        return [self.delivery.to_value(), self.clove_id, self.expires_ms, int(self.kind),
                self.payload]

    def encode(self) -> bytes:
        return codec.encode(self.to_value())

    @classmethod
    def from_value(cls, value: codec.Value) -> Clove:
        fields = codec.expect_list(value, 5, what="clove")
        try:
            return cls(
                delivery=DeliveryInstructions.from_value(fields[0]),
                clove_id=codec.expect_bytes(fields[1], CLOVE_ID_BYTES, what="clove.id"),
                expires_ms=codec.expect_int(fields[2], 0, _MAX_TIME, what="clove.expires_ms"),
                kind=PayloadKind(codec.expect_int(fields[3], 0, max(PayloadKind),
                                                  what="clove.kind")),
                payload=codec.expect_bytes(fields[4], max_size=MAX_CLOVE_PAYLOAD,
                                           what="clove.payload"),
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc


@final
@dataclass(frozen=True, slots=True)
class GarlicMessage:
    """1..:data:`MAX_CLOVES` cloves for one destination; at most :data:`MAX_GARLIC_BYTES`."""

    message_id: int
    #: When the sender built it; bounds the receiver's replay window.
    created_ms: int
    cloves: tuple[Clove, ...]
    version: int = GARLIC_VERSION

    def __post_init__(self) -> None:
        if self.version != GARLIC_VERSION:
            raise ValueError(f"unsupported garlic version {self.version}")
        if not 0 <= self.message_id <= _MAX_MESSAGE_ID:
            raise ValueError("message id must be 0..2^32-1")
        if not 0 <= self.created_ms <= _MAX_TIME:
            raise ValueError("created_ms out of range")
        if not 1 <= len(self.cloves) <= MAX_CLOVES:
            raise ValueError(f"a garlic message holds 1..{MAX_CLOVES} cloves")
        if len({clove.clove_id for clove in self.cloves}) != len(self.cloves):
            raise ValueError("clove ids repeat within one message")
        if len(self.encode()) > MAX_GARLIC_BYTES:
            raise ValueError(f"garlic message longer than {MAX_GARLIC_BYTES} bytes")

    def encode(self) -> bytes:
        return codec.encode([self.version, self.message_id, self.created_ms,
                             [clove.to_value() for clove in self.cloves]])

    @classmethod
    def decode(cls, data: bytes) -> GarlicMessage:
        """Parse a garlic message; raises ``DecodeError``."""
        fields = codec.expect_list(codec.decode_canonical(data, max_size=MAX_GARLIC_BYTES), 4,
                                   what="garlic")
        version = codec.expect_int(fields[0], GARLIC_VERSION, GARLIC_VERSION,
                                   what="garlic.version")
        cloves = codec.expect_list(fields[3], what="garlic.cloves")
        if len(cloves) > MAX_CLOVES:
            raise DecodeError(DecodeFault.WRONG_SHAPE, "garlic: too many cloves")
        try:
            return cls(
                message_id=codec.expect_int(fields[1], 0, _MAX_MESSAGE_ID, what="garlic.id"),
                created_ms=codec.expect_int(fields[2], 0, _MAX_TIME, what="garlic.created_ms"),
                cloves=tuple(Clove.from_value(clove) for clove in cloves),
                version=version,
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc


#: Bytes of a clove's encoding besides its payload, at most: fixarray, TUNNEL delivery
#: ``[3, bin8 32, uint32]``, bin8 clove id, uint64 expiry, kind, bin16 payload header.
MAX_CLOVE_OVERHEAD: Final = 1 + (1 + 1 + 34 + 5) + 10 + 9 + 1 + 3


def clove_size(clove: Clove) -> int:
    """Bytes ``clove`` adds to a message's encoding (with at most 15 cloves per array header)."""
    return len(clove.encode())


#: Bytes of a message's encoding besides its cloves, at most: fixarray, version, uint32 id,
#: uint64 time, array16 header.
MESSAGE_OVERHEAD: Final = 1 + 1 + 5 + 9 + 3
