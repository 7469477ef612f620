"""The fixed-size tunnel message and its layered encryption (SPEC §4.4; I2P proposal 153).

A tunnel message is always :data:`TUNNEL_MESSAGE_BYTES` (1024) bytes — one link cell — at
every hop::

    tunnel_id (4, big-endian) ‖ nonce1 (8) ‖ nonce2 (8) ‖ body (1004)

Theory of operation. Each hop ``k`` has a layer key ``L`` and a nonce key ``N`` and applies,
to every message it receives, the same *forward* transform, a two-round Feistel on the nonce
pair around a ChaCha20 layer on the body (proposal 153's "tunnelNonce"/"obfsNonce")::

    nonce1 ^= ChaCha20(N, 0000 ‖ nonce2)[:8]
    body   ^= ChaCha20(L, 0000 ‖ nonce1)
    nonce2 ^= ChaCha20(N, 0100 ‖ nonce1)[:8]

Every byte of the nonces and body changes at every hop, so two hops cannot match a message by
content. The transform is invertible (*backward*: the three steps undone in reverse order).
Innermost, between the tunnel's gateway and its endpoint, the 988-byte payload is sealed with
XChaCha20-Poly1305 under the tunnel's AEAD key and nonce ``nonce1 ‖ nonce2 ‖ 0⁸`` as the
endpoint sees them: a tampered message fails there and is dropped.

* Outbound (the creator is the gateway): the creator picks random nonces, seals the payload,
  then applies the hops' backward transforms, last hop first. Each hop applies its forward
  transform; after the last (the endpoint) the message is back to what the creator sealed.
* Inbound (the first hop is the gateway): the gateway picks random nonces, seals, and applies
  its own forward transform like every hop after it; the creator (the endpoint) applies the
  backward transforms, last hop first, and opens the seal.
* Zero hops: the creator is gateway and endpoint; no layers, only the seal.

Each hop keeps a :class:`~petranode.net.tunnel.replay.ReplayWindow` of the nonce pairs it has
received, remembered until the tunnel expires; a repeated pair is dropped. No field reveals a
hop's position: every hop sees 1024 bytes of a tunnel id and uniformly random-looking bytes.
Errors are per message (:class:`TunnelMessageInvalid`, the message is dropped); a hop stays
usable, as an I2P hop does, because messages are independent datagrams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.tunnel.build import (
    MAX_TUNNEL_ID,
    Direction,
    HopConfig,
    HopRole,
    Rng,
    TunnelSecrets,
)
from petranode.net.tunnel.cipher import chacha20_xor
from petranode.net.tunnel.errors import MessageFault, TunnelMessageInvalid
from petranode.net.tunnel.replay import DEFAULT_CAPACITY, ReplayWindow

#: SPEC §4.4 default; 1024 bytes fit one 1136-byte link cell with the message map.
TUNNEL_MESSAGE_BYTES: Final = 1024
TUNNEL_ID_BYTES: Final = 4
HALF_NONCE_BYTES: Final = 8
HEADER_BYTES: Final = TUNNEL_ID_BYTES + 2 * HALF_NONCE_BYTES
BODY_BYTES: Final = TUNNEL_MESSAGE_BYTES - HEADER_BYTES
#: What a gateway can carry per message: the body minus the innermost AEAD tag.
TUNNEL_PAYLOAD_BYTES: Final = BODY_BYTES - na.AEAD_TAG_BYTES


@final
@dataclass(frozen=True, slots=True)
class TunnelMessage:
    """One fixed-size tunnel message as it travels between two adjacent hops."""

    tunnel_id: int
    nonce1: bytes
    nonce2: bytes
    body: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.tunnel_id <= MAX_TUNNEL_ID:
            raise ValueError("tunnel ids are 1..2**32-1")
        if len(self.nonce1) != HALF_NONCE_BYTES or len(self.nonce2) != HALF_NONCE_BYTES:
            raise ValueError("nonces are 8 bytes each")
        if len(self.body) != BODY_BYTES:
            raise ValueError(f"body must be {BODY_BYTES} bytes")

    def encode(self) -> bytes:
        return self.tunnel_id.to_bytes(4, "big") + self.nonce1 + self.nonce2 + self.body

    @classmethod
    def decode(cls, data: bytes) -> TunnelMessage:
        if len(data) != TUNNEL_MESSAGE_BYTES:
            raise TunnelMessageInvalid(MessageFault.WRONG_SIZE)
        tunnel_id = int.from_bytes(data[:4], "big")
        if tunnel_id == 0:
            raise TunnelMessageInvalid(MessageFault.WRONG_TUNNEL)
        return cls(tunnel_id, data[4:12], data[12:20], data[HEADER_BYTES:])


@final
@dataclass(frozen=True, slots=True)
class Forward:
    """Action: send ``message`` (a whole encoded tunnel message) to ``router_hash``."""

    router_hash: bytes
    message: bytes


@final
@dataclass(frozen=True, slots=True)
class Deliver:
    """Action: the endpoint's decrypted :data:`TUNNEL_PAYLOAD_BYTES`-byte payload."""

    payload: bytes


def forward_layer(
    config: HopConfig, nonce1: bytes, nonce2: bytes, body: bytes
) -> tuple[bytes, bytes, bytes]:
    """What hop ``config`` does to a message it receives."""
    nonce1 = chacha20_xor(config.nonce_key, bytes(4) + nonce2, nonce1)
    body = chacha20_xor(config.layer_key, bytes(4) + nonce1, body)
    nonce2 = chacha20_xor(config.nonce_key, b"\x01" + bytes(3) + nonce1, nonce2)
    return nonce1, nonce2, body


def backward_layer(
    config: HopConfig, nonce1: bytes, nonce2: bytes, body: bytes
) -> tuple[bytes, bytes, bytes]:
    """The inverse of :func:`forward_layer`."""
    nonce2 = chacha20_xor(config.nonce_key, b"\x01" + bytes(3) + nonce1, nonce2)
    body = chacha20_xor(config.layer_key, bytes(4) + nonce1, body)
    nonce1 = chacha20_xor(config.nonce_key, bytes(4) + nonce2, nonce1)
    return nonce1, nonce2, body


def _seal(aead_key: bytes, nonce1: bytes, nonce2: bytes, payload: bytes) -> bytes:
    if len(payload) != TUNNEL_PAYLOAD_BYTES:
        raise ValueError(f"a tunnel payload is exactly {TUNNEL_PAYLOAD_BYTES} bytes")
    # 128 random bits per message: XChaCha's 24-byte nonce takes them without a collision risk.
    return na.crypto_aead_xchacha20poly1305_ietf_encrypt(
        payload, b"", nonce1 + nonce2 + bytes(8), aead_key
    )


def _open(aead_key: bytes, nonce1: bytes, nonce2: bytes, body: bytes) -> bytes:
    try:
        return na.crypto_aead_xchacha20poly1305_ietf_decrypt(
            body, b"", nonce1 + nonce2 + bytes(8), aead_key
        )
    except na.SodiumError as exc:
        raise TunnelMessageInvalid(MessageFault.AUTH_FAILED) from exc


def _admit(
    data: bytes, tunnel_id: int, expiry: int, window: ReplayWindow, now: int
) -> TunnelMessage:
    """Size, tunnel id, expiry and replay checks shared by every receiving side."""
    message = TunnelMessage.decode(data)
    if message.tunnel_id != tunnel_id:
        raise TunnelMessageInvalid(MessageFault.WRONG_TUNNEL)
    if now >= expiry:
        raise TunnelMessageInvalid(MessageFault.EXPIRED)
    fresh = window.check_and_add(message.nonce1 + message.nonce2, expires=expiry, now=now)
    if fresh is None:
        raise TunnelMessageInvalid(MessageFault.REPLAY_WINDOW_FULL)
    if not fresh:
        raise TunnelMessageInvalid(MessageFault.REPLAY)
    return message


@final
class TransitHop:
    """One tunnel as a relaying router runs it (participant, inbound gateway, outbound endpoint)."""

    __slots__ = ("_window", "config")

    def __init__(self, config: HopConfig, *, replay_capacity: int = DEFAULT_CAPACITY) -> None:
        self.config = config
        self._window = ReplayWindow(replay_capacity)

    def receive(self, data: bytes, now: int) -> Forward | Deliver:
        """Process a tunnel message from the previous hop (participant or outbound endpoint)."""
        if self.config.role is HopRole.INBOUND_GATEWAY:
            raise ValueError("an inbound gateway takes payloads through send()")
        m = _admit(data, self.config.receive_tunnel_id, self.config.expiry, self._window, now)
        nonce1, nonce2, body = forward_layer(self.config, m.nonce1, m.nonce2, m.body)
        if self.config.role is HopRole.OUTBOUND_ENDPOINT:
            return Deliver(_open(self.config.aead_key, nonce1, nonce2, body))
        return Forward(
            self.config.next_router,
            TunnelMessage(self.config.next_tunnel_id, nonce1, nonce2, body).encode(),
        )

    def send(self, payload: bytes, now: int, rng: Rng = na.randombytes) -> Forward:
        """As the inbound gateway, put one :data:`TUNNEL_PAYLOAD_BYTES` payload into the tunnel."""
        if self.config.role is not HopRole.INBOUND_GATEWAY:
            raise ValueError("only an inbound gateway sends payloads into a tunnel")
        if now >= self.config.expiry:
            raise TunnelMessageInvalid(MessageFault.EXPIRED)
        nonce1, nonce2 = rng(HALF_NONCE_BYTES), rng(HALF_NONCE_BYTES)
        body = _seal(self.config.aead_key, nonce1, nonce2, payload)
        nonce1, nonce2, body = forward_layer(self.config, nonce1, nonce2, body)
        return Forward(
            self.config.next_router,
            TunnelMessage(self.config.next_tunnel_id, nonce1, nonce2, body).encode(),
        )


@final
class CreatorGateway:
    """The creator's sending end: an outbound tunnel, or a zero-hop tunnel (either direction)."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: TunnelSecrets) -> None:
        if secrets.direction is Direction.INBOUND and secrets.hops:
            raise ValueError("an inbound tunnel's gateway is its first hop")
        self._secrets = secrets

    def wrap(self, payload: bytes, now: int, rng: Rng = na.randombytes) -> Forward:
        """One payload as the tunnel message to send to the first hop (or to ourselves)."""
        s = self._secrets
        if now >= s.expiry:
            raise TunnelMessageInvalid(MessageFault.EXPIRED)
        nonce1, nonce2 = rng(HALF_NONCE_BYTES), rng(HALF_NONCE_BYTES)
        body = _seal(s.aead_key, nonce1, nonce2, payload)
        for hop in reversed(s.hops):
            nonce1, nonce2, body = backward_layer(hop.config, nonce1, nonce2, body)
        if s.hops:
            first = s.hops[0]
            target, tunnel_id = first.router_hash, first.config.receive_tunnel_id
        else:
            target, tunnel_id = s.creator_hash, s.local_tunnel_id
        return Forward(target, TunnelMessage(tunnel_id, nonce1, nonce2, body).encode())


@final
class CreatorEndpoint:
    """The creator's receiving end: an inbound tunnel, or a zero-hop tunnel (either direction)."""

    __slots__ = ("_secrets", "_window")

    def __init__(self, secrets: TunnelSecrets, *, replay_capacity: int = DEFAULT_CAPACITY) -> None:
        if secrets.direction is Direction.OUTBOUND and secrets.hops:
            raise ValueError("an outbound tunnel's endpoint is its last hop")
        self._secrets = secrets
        self._window = ReplayWindow(replay_capacity)

    def unwrap(self, data: bytes, now: int) -> Deliver:
        """Peel every hop's layer from a message the last hop sent us and open the seal."""
        s = self._secrets
        m = _admit(data, s.local_tunnel_id, s.expiry, self._window, now)
        nonce1, nonce2, body = m.nonce1, m.nonce2, m.body
        for hop in reversed(s.hops):
            nonce1, nonce2, body = backward_layer(hop.config, nonce1, nonce2, body)
        return Deliver(_open(s.aead_key, nonce1, nonce2, body))
