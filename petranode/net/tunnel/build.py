"""Tunnel build requests: one encrypted record per hop in a fixed number of slots (SPEC §4.4).

Modelled on I2P's ECIES-X25519 tunnel build (tunnel-creation-ecies, "long" records) with the
record re-encryption of its AES/ChaCha build messages. Rules of operation:

* A request is :data:`SLOT_COUNT` slots of :data:`RECORD_BYTES` each, whatever the tunnel's
  length (0–:data:`MAX_HOPS` hops): slots not used by a hop hold random bytes, and the creator
  places hops in a random permutation of the slots, so no hop learns the length or its
  position from the request.
* A hop's record is ``to_peer (first 16 bytes of its router hash) ‖ E (ephemeral X25519) ‖
  AEAD(k, nonce 0, ad = to_peer ‖ E, padded HopConfig)`` with ``k = BLAKE2b(X25519(e, S) ‖ E ‖
  S)``, ``S`` the hop's static key: only that hop can read it, and the fresh ``e`` makes the key
  single-use, so the all-zero nonce is safe.
* The hop finds its slot by ``to_peer``, decrypts its :class:`HopConfig`, asks the caller's
  ``accept`` callback, and replaces its slot with its reply — ``AEAD(reply_key, nonce (1,
  slot), code ‖ zeros)`` — and XORs every other slot with the ChaCha20 keystream of
  ``(reply_key, nonce (0, slot))``. The creator knows every reply key and pre-applies, to each
  hop's record, the keystreams of the hops before it, so each record arrives in clear at its
  hop while the bytes of every slot change at every hop: two colluding hops cannot match slots.
* The creator reads each reply by removing the keystreams of the hops after it and checking
  its AEAD tag. A reply that does not authenticate names its hop (a later hop garbled it).

What a hop learns: its role (inbound gateway, outbound endpoint, or participant — a participant
does not learn the direction), the tunnel id it receives on, the next router and the next
tunnel id, its layer keys, the end-to-end AEAD key if it is a gateway or endpoint, its reply
key and the expiry. Nothing else: not the creator, the other hops, its position or the length.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.identity import RouterIdentity, RouterKeys
from petranode.net.tunnel.cipher import chacha20_xor
from petranode.net.tunnel.errors import BuildFault, TunnelBuildRejected
from petranode.net.tunnel.replay import ReplayWindow
from petranode.wire import codec
from petranode.wire.errors import DecodeError

Rng = Callable[[int], bytes]

#: I2P's variable tunnel build messages carry up to 8 records; 8 hides lengths 0–7.
SLOT_COUNT: Final = 8
MAX_HOPS: Final = SLOT_COUNT - 1
TO_PEER_BYTES: Final = 16
#: Padded HopConfig: 2-byte length, canonical msgpack (≤ 190 bytes), zeros.
RECORD_PLAINTEXT_BYTES: Final = 256
RECORD_BYTES: Final = TO_PEER_BYTES + na.X25519_BYTES + RECORD_PLAINTEXT_BYTES + na.AEAD_TAG_BYTES
REQUEST_BYTES: Final = SLOT_COUNT * RECORD_BYTES
#: A reply fills the whole slot: code byte and zeros, then the tag.
REPLY_PLAINTEXT_BYTES: Final = RECORD_BYTES - na.AEAD_TAG_BYTES
KEY_BYTES: Final = 32
#: SPEC §4.4: default lifetime 10 minutes (I2P's too).
TUNNEL_LIFETIME_S: Final = 600
#: How far a record's expiry may lie beyond now + lifetime: tolerated clock difference.
MAX_CLOCK_SKEW_S: Final = 60
MAX_TUNNEL_ID: Final = 2**32 - 1
RECORD_VERSION: Final = 1
_RECORD_PERSON: Final = b"pn/tunnel/record"
_MAX_ENCODED_CONFIG: Final = RECORD_PLAINTEXT_BYTES - 2


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class HopRole(enum.IntEnum):
    """What a hop does; a participant is not told the tunnel's direction (as in I2P)."""

    PARTICIPANT = 0
    INBOUND_GATEWAY = 1
    OUTBOUND_ENDPOINT = 2


class BuildReplyCode(enum.IntEnum):
    """A hop's answer, with I2P's values; I2P routers send only 30 to hide their reason."""

    ACCEPTED = 0
    REJECTED_PROBABILISTIC = 10
    REJECTED_TRANSIENT = 20
    REJECTED_BANDWIDTH = 30
    REJECTED_CRITICAL = 50


@final
@dataclass(frozen=True, slots=True)
class HopConfig:
    """Everything one hop learns from its build record, and nothing more."""

    role: HopRole
    receive_tunnel_id: int
    next_router: bytes
    next_tunnel_id: int
    layer_key: bytes
    nonce_key: bytes
    #: The gateway's / endpoint's end-to-end key; empty for a participant.
    aead_key: bytes
    reply_key: bytes
    #: Unix seconds after which the tunnel is gone.
    expiry: int

    def __post_init__(self) -> None:
        if not isinstance(self.role, HopRole):
            raise TypeError("role must be a HopRole")
        for tunnel_id in (self.receive_tunnel_id, self.next_tunnel_id):
            if not 1 <= tunnel_id <= MAX_TUNNEL_ID:
                raise ValueError("tunnel ids are 1..2**32-1")
        if len(self.next_router) != 32:
            raise ValueError("next router hash must be 32 bytes")
        for key in (self.layer_key, self.nonce_key, self.reply_key):
            if len(key) != KEY_BYTES:
                raise ValueError("keys must be 32 bytes")
        wanted = 0 if self.role is HopRole.PARTICIPANT else KEY_BYTES
        if len(self.aead_key) != wanted:
            raise ValueError("only a gateway or endpoint holds the AEAD key")
        if not 0 <= self.expiry < 2**63:
            raise ValueError("expiry out of range")

    def encode(self) -> bytes:
        return codec.encode(
            [
                RECORD_VERSION,
                int(self.role),
                self.receive_tunnel_id,
                self.next_router,
                self.next_tunnel_id,
                self.layer_key,
                self.nonce_key,
                self.aead_key,
                self.reply_key,
                self.expiry,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> HopConfig:
        """The config in ``data``, or ``TunnelBuildRejected(RECORD_MALFORMED)``."""
        try:
            f = codec.expect_list(
                codec.decode_canonical(data, max_size=_MAX_ENCODED_CONFIG), 10, what="hop"
            )
            codec.expect_int(f[0], RECORD_VERSION, RECORD_VERSION, what="hop.version")
            return cls(
                role=HopRole(codec.expect_int(f[1], 0, 2, what="hop.role")),
                receive_tunnel_id=codec.expect_int(f[2], 1, MAX_TUNNEL_ID, what="hop.receive"),
                next_router=codec.expect_bytes(f[3], 32, what="hop.next_router"),
                next_tunnel_id=codec.expect_int(f[4], 1, MAX_TUNNEL_ID, what="hop.next_tunnel"),
                layer_key=codec.expect_bytes(f[5], KEY_BYTES, what="hop.layer_key"),
                nonce_key=codec.expect_bytes(f[6], KEY_BYTES, what="hop.nonce_key"),
                aead_key=codec.expect_bytes(f[7], max_size=KEY_BYTES, what="hop.aead_key"),
                reply_key=codec.expect_bytes(f[8], KEY_BYTES, what="hop.reply_key"),
                expiry=codec.expect_int(f[9], 0, 2**63 - 1, what="hop.expiry"),
            )
        except (DecodeError, ValueError, TypeError) as exc:
            raise TunnelBuildRejected(BuildFault.RECORD_MALFORMED) from exc

    def padded(self) -> bytes:
        """The record plaintext: 2-byte big-endian length, the encoding, zeros."""
        body = self.encode()
        return len(body).to_bytes(2, "big") + body + bytes(_MAX_ENCODED_CONFIG - len(body))

    @classmethod
    def from_padded(cls, data: bytes) -> HopConfig:
        if len(data) != RECORD_PLAINTEXT_BYTES:
            raise TunnelBuildRejected(BuildFault.RECORD_MALFORMED)
        length = int.from_bytes(data[:2], "big")
        if length > _MAX_ENCODED_CONFIG or not na.sodium_is_zero(data[2 + length :]):
            raise TunnelBuildRejected(BuildFault.RECORD_MALFORMED)
        return cls.decode(data[2 : 2 + length])


@final
@dataclass(frozen=True, slots=True)
class HopSecrets:
    """What the creator keeps about one hop: who it is, its slot and the config it was given."""

    router_hash: bytes
    slot: int
    config: HopConfig


@final
@dataclass(frozen=True, slots=True)
class TunnelSecrets:
    """The creator's view of a tunnel: every hop's keys, in tunnel order."""

    direction: Direction
    creator_hash: bytes
    hops: tuple[HopSecrets, ...]
    #: Inbound: the id the last hop sends to us on. Outbound: the reply tunnel id given to the
    #: endpoint. Zero hops: the id the creator uses for its own gateway-to-endpoint messages.
    local_tunnel_id: int
    #: The gateway-to-endpoint AEAD key (held by the creator and the gateway/endpoint hop).
    aead_key: bytes
    expiry: int

    @property
    def length(self) -> int:
        return len(self.hops)


@final
@dataclass(frozen=True, slots=True)
class BuildRequest:
    """:data:`SLOT_COUNT` opaque slots; the same type carries the request and the replies."""

    slots: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.slots) != SLOT_COUNT or any(len(s) != RECORD_BYTES for s in self.slots):
            raise ValueError(f"a build request is {SLOT_COUNT} slots of {RECORD_BYTES} bytes")

    def encode(self) -> bytes:
        return b"".join(self.slots)

    @classmethod
    def decode(cls, data: bytes) -> BuildRequest:
        if len(data) != REQUEST_BYTES:
            raise TunnelBuildRejected(BuildFault.WRONG_SIZE)
        return cls(
            tuple(data[i * RECORD_BYTES : (i + 1) * RECORD_BYTES] for i in range(SLOT_COUNT))
        )

    @classmethod
    def create(
        cls,
        hops: Sequence[RouterIdentity],
        direction: Direction,
        *,
        creator_hash: bytes,
        now: int,
        rng: Rng = na.randombytes,
        lifetime_s: int = TUNNEL_LIFETIME_S,
        reply_router: bytes | None = None,
        reply_tunnel_id: int | None = None,
    ) -> tuple[BuildRequest, TunnelSecrets]:
        """A request for a tunnel through ``hops`` (in order) and the secrets the creator keeps.

        Outbound: the endpoint sends the replies to ``reply_router``/``reply_tunnel_id`` (the
        gateway of one of our inbound tunnels); by default to the creator itself on a fresh
        id, which tells the endpoint who built the tunnel — for tests and zero-hop use only. Inbound: the last hop sends to the creator on :attr:`TunnelSecrets.local_tunnel_id`.
        Raises :class:`TunnelBuildRejected` for more than :data:`MAX_HOPS` hops, a router
        listed twice, the creator listed, or a hop key that cannot be used.
        """
        if len(hops) > MAX_HOPS:
            raise TunnelBuildRejected(BuildFault.TOO_MANY_HOPS)
        hashes = [hop.router_hash for hop in hops]
        if len(set(hashes)) != len(hashes):
            raise TunnelBuildRejected(BuildFault.HOP_REPEATED)
        if creator_hash in hashes:
            raise TunnelBuildRejected(BuildFault.SELF_AS_HOP)
        if not 0 < lifetime_s <= TUNNEL_LIFETIME_S:
            raise ValueError("lifetime must be 1..600 seconds")
        if (reply_router is None) != (reply_tunnel_id is None) or (
            reply_router is not None and direction is Direction.INBOUND
        ):
            raise ValueError("reply_router and reply_tunnel_id go together, outbound only")

        expiry = now + lifetime_s
        aead_key = rng(KEY_BYTES)
        local_id = _tunnel_id(rng)
        ids = [_tunnel_id(rng) for _ in hops]
        if reply_router is not None and reply_tunnel_id is not None:
            tail_router, tail_id = reply_router, reply_tunnel_id
        else:
            tail_router, tail_id = creator_hash, local_id
        permutation = _shuffled(SLOT_COUNT, rng)

        secrets: list[HopSecrets] = []
        for i, hash_ in enumerate(hashes):
            last = i == len(hops) - 1
            if direction is Direction.INBOUND:
                role = HopRole.INBOUND_GATEWAY if i == 0 else HopRole.PARTICIPANT
            else:
                role = HopRole.OUTBOUND_ENDPOINT if last else HopRole.PARTICIPANT
            config = HopConfig(
                role=role,
                receive_tunnel_id=ids[i],
                next_router=tail_router if last else hashes[i + 1],
                next_tunnel_id=tail_id if last else ids[i + 1],
                layer_key=rng(KEY_BYTES),
                nonce_key=rng(KEY_BYTES),
                aead_key=b"" if role is HopRole.PARTICIPANT else aead_key,
                reply_key=rng(KEY_BYTES),
                expiry=expiry,
            )
            secrets.append(HopSecrets(router_hash=hash_, slot=permutation[i], config=config))

        slots = [rng(RECORD_BYTES) for _ in range(SLOT_COUNT)]
        for m, (hop, secret) in enumerate(zip(hops, secrets, strict=True)):
            record = _seal_record(hop, secret.config, rng)
            # Undo, in advance, the keystreams hops 0..m-1 will XOR onto this slot.
            for earlier in secrets[:m]:
                record = _xor_slot(earlier.config.reply_key, secret.slot, record)
            slots[secret.slot] = record

        tunnel = TunnelSecrets(
            direction=direction,
            creator_hash=creator_hash,
            hops=tuple(secrets),
            local_tunnel_id=local_id,
            aead_key=aead_key,
            expiry=expiry,
        )
        return cls(tuple(slots)), tunnel


@final
@dataclass(frozen=True, slots=True)
class ProcessedBuild:
    """A hop's result: its config, the reply it wrote, and the request to pass on.

    ``forward`` goes to ``config.next_router`` (for an outbound endpoint, into the reply
    tunnel ``config.next_tunnel_id``), whether the hop accepted or not, so the creator learns
    every answer.
    """

    config: HopConfig
    reply: BuildReplyCode
    forward: bytes


def process_build(
    request: bytes,
    our_keys: RouterKeys,
    now: int,
    accept: Callable[[HopConfig], BuildReplyCode],
    *,
    seen: ReplayWindow | None = None,
) -> ProcessedBuild:
    """Find, decrypt and answer our record in ``request``.

    ``accept`` decides (it sees only our config). ``seen``, when given, remembers records'
    ephemeral keys until their expiry so a replayed request is refused; when it is full the
    hop answers ``REJECTED_BANDWIDTH`` without asking ``accept``. Raises
    :class:`TunnelBuildRejected` when the request is to be dropped unanswered.
    """
    slots = list(BuildRequest.decode(request).slots)
    to_peer = our_keys.router_hash[:TO_PEER_BYTES]
    ours = next((i for i, s in enumerate(slots) if s[:TO_PEER_BYTES] == to_peer), None)
    if ours is None:
        raise TunnelBuildRejected(BuildFault.NO_RECORD_FOR_US)
    record = slots[ours]
    ephemeral = record[TO_PEER_BYTES : TO_PEER_BYTES + na.X25519_BYTES]
    try:
        key = _record_key(our_keys.dh(ephemeral), ephemeral, our_keys.static_key)
        plaintext = na.crypto_aead_chacha20poly1305_ietf_decrypt(
            record[TO_PEER_BYTES + na.X25519_BYTES :], to_peer + ephemeral, bytes(12), key
        )
    except na.SodiumError as exc:
        raise TunnelBuildRejected(BuildFault.RECORD_UNREADABLE) from exc
    config = HopConfig.from_padded(plaintext)
    if config.expiry <= now:
        raise TunnelBuildRejected(BuildFault.EXPIRED)
    if config.expiry > now + TUNNEL_LIFETIME_S + MAX_CLOCK_SKEW_S:
        raise TunnelBuildRejected(BuildFault.EXPIRY_TOO_FAR)

    fresh = True if seen is None else seen.check_and_add(ephemeral, expires=config.expiry, now=now)
    if fresh is False:
        raise TunnelBuildRejected(BuildFault.DUPLICATE)
    code = BuildReplyCode.REJECTED_BANDWIDTH if fresh is None else BuildReplyCode(accept(config))

    reply_plain = bytes([code]) + bytes(REPLY_PLAINTEXT_BYTES - 1)
    for j in range(SLOT_COUNT):
        if j == ours:
            slots[j] = na.crypto_aead_chacha20poly1305_ietf_encrypt(
                reply_plain, b"", _reply_nonce(j), config.reply_key
            )
        else:
            slots[j] = _xor_slot(config.reply_key, j, slots[j])
    return ProcessedBuild(config=config, reply=code, forward=b"".join(slots))


def read_replies(secrets: TunnelSecrets, reply: bytes) -> tuple[BuildReplyCode, ...]:
    """Every hop's answer, in tunnel order, from the request as the last hop forwarded it.

    Raises :class:`TunnelBuildRejected` (``REPLY_UNREADABLE`` with the hop's index) when a
    reply does not authenticate or holds no valid code.
    """
    slots = BuildRequest.decode(reply).slots
    codes: list[BuildReplyCode] = []
    for k, hop in enumerate(secrets.hops):
        data = slots[hop.slot]
        for later in secrets.hops[k + 1 :]:
            data = _xor_slot(later.config.reply_key, hop.slot, data)
        try:
            plain = na.crypto_aead_chacha20poly1305_ietf_decrypt(
                data, b"", _reply_nonce(hop.slot), hop.config.reply_key
            )
            code = BuildReplyCode(plain[0])
        except (na.SodiumError, ValueError) as exc:
            raise TunnelBuildRejected(BuildFault.REPLY_UNREADABLE, k) from exc
        if not na.sodium_is_zero(plain[1:]):
            raise TunnelBuildRejected(BuildFault.REPLY_UNREADABLE, k)
        codes.append(code)
    return tuple(codes)


# -- internals --------------------------------------------------------------------------------


def _record_key(shared: bytes, ephemeral: bytes, static: bytes) -> bytes:
    return na.crypto_generichash_personal(
        shared + ephemeral + static, person=_RECORD_PERSON, digest_size=KEY_BYTES
    )


def _seal_record(hop: RouterIdentity, config: HopConfig, rng: Rng) -> bytes:
    secret = rng(na.X25519_BYTES)
    ephemeral = na.crypto_scalarmult_base(secret)
    try:
        shared = na.crypto_scalarmult(secret, hop.static_key)
    except na.SodiumError as exc:
        raise TunnelBuildRejected(BuildFault.BAD_HOP_KEY) from exc
    to_peer = hop.router_hash[:TO_PEER_BYTES]
    key = _record_key(shared, ephemeral, hop.static_key)
    sealed = na.crypto_aead_chacha20poly1305_ietf_encrypt(
        config.padded(), to_peer + ephemeral, bytes(12), key
    )
    return to_peer + ephemeral + sealed


def _xor_slot(reply_key: bytes, slot: int, data: bytes) -> bytes:
    # Nonce (0, slot): one keystream per (hop, slot), used once per build — the reply key is
    # fresh for every record. The reply AEAD uses (1, slot), so the two never share a nonce.
    return chacha20_xor(reply_key, bytes([0, slot]) + bytes(10), data)


def _reply_nonce(slot: int) -> bytes:
    return bytes([1, slot]) + bytes(10)


def _below(bound: int, rng: Rng) -> int:
    """Uniform in 0..bound-1 (bound ≤ 256) by rejection sampling one byte at a time."""
    limit = 256 - 256 % bound
    while True:
        value = rng(1)[0]
        if value < limit:
            return value % bound


def _shuffled(n: int, rng: Rng) -> list[int]:
    """A uniformly random permutation of 0..n-1 (Fisher–Yates)."""
    items = list(range(n))
    for i in range(n - 1, 0, -1):
        j = _below(i + 1, rng)
        items[i], items[j] = items[j], items[i]
    return items


def _tunnel_id(rng: Rng) -> int:
    """A random tunnel id; 0 is reserved (I2P reserves it too)."""
    while True:
        value = int.from_bytes(rng(4), "big")
        if value:
            return value
