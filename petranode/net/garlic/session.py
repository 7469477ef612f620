"""Garlic sessions: end-to-end encryption between destinations, bundling, acknowledgements and
retries — a sans-IO machine (SPEC §2, §4.4; I2P proposal 144 "ECIES-X25519-AEAD-Ratchet").

**Theory of operation.** A sender encrypts to the X25519 key in the recipient's LeaseSet. Two
wire forms, told apart by the receiver as I2P does — "is the first 8 bytes a tag I hold?":

* **New Session (NS)** ``e ‖ AEAD(k1, sender destination) ‖ AEAD(k2, garlic message)``: a fresh
  ephemeral key ``e``; ``k1`` from DH(e, B), ``k2`` additionally from DH(a, B) with the sender's
  static destination key ``a`` (Noise ``IK``'s ``es`` then ``ss``). The receiver learns the
  sender's :class:`Destination` authenticated (only the holder of ``a`` makes ``k2``), so it
  knows where to send acknowledgements and can check an attached LeaseSet is the sender's.
  The sender forgets ``e`` at once: compromising the sender's long-term keys later decrypts
  nothing it sent (forward secrecy for the sender, as proposal 144's NS).
* **Existing Session (ES)** ``tag ‖ AEAD(key, garlic message)``: the NS handshake's chaining key
  roots a tag set, a one-way HKDF chain ``ck_{i+1}, tag_i, key_i = HKDF(ck_i)`` (proposal 144's
  session tag ratchet, without the DH ratchet step). The receiver pre-computes a window of
  ``tag_window`` tags past the highest used; a tag is single-use, so a replayed ES message
  finds no tag and fails. Old chain keys are not kept, so a captured sender state does not
  reveal earlier ES messages.

**Confirmation.** The sender switches to ES only after the receiver proved it holds the tag set:
every ACK names the session its DATA clove arrived in (``clove id ‖ session id``), and an ACK
naming one of our pending NS sessions confirms it. A retry is always sent as NS, so a receiver
that lost its tag sets (restart, eviction) recovers on the next retry.

**Acknowledgements.** :meth:`GarlicSessions.send` queues a DATA clove and arms the batching
timer; :meth:`GarlicSessions.tick` bundles every destination's queue into as few garlic
messages as fit (one, for a handful of cloves), retries unacknowledged cloves after
``retry_base_ms · 2^(n−1)`` and reports :class:`DeliveryFailed` after ``max_attempts`` sends.
A receiver acknowledges every DATA clove, duplicates included (the ACK may have been lost), and
delivers each clove id once while the clove is unexpired (a bounded set). ACKs ride the next
message to the sender and are flushed at once on receipt.

**Replays.** An NS whose ephemeral key was seen, or any message created outside
``[now − max_message_age_ms, now + max_message_future_ms]``, is refused; ES tags are single-use;
clove ids de-duplicate what gets through (a retransmission).

Errors: a peer's bad message raises :class:`GarlicError` from :meth:`GarlicSessions.unwrap` /
:meth:`GarlicSessions.receive` and leaves the machine as it was — the machine serves many
peers, so one peer's garbage is refused per message, not fatal (the link service's "close this
peer" at this layer is "drop this message"). Bad cloves inside a good message are dropped and
counted in :attr:`GarlicSessions.dropped`. Local limits raise ``GarlicError(QUEUE_FULL)``.
"""

from __future__ import annotations

import collections
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.crypto.errors import CryptoError
from petranode.net.destination import LocalDestination
from petranode.net.garlic.clove import (
    CLOVE_ID_BYTES,
    MAX_CLOVE_OVERHEAD,
    MAX_CLOVES,
    MAX_GARLIC_BYTES,
    MESSAGE_OVERHEAD,
    SESSION_ID_BYTES,
    Clove,
    DeliveryInstructions,
    DeliveryKind,
    GarlicMessage,
    PayloadKind,
    clove_size,
)
from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.net.garlic.settings import GarlicSettings
from petranode.net.link.noise import _hkdf
from petranode.net.netdb.leaseset import (
    LEASESET_DOMAIN,
    MAX_DESTINATION_BYTES,
    Destination,
    LeaseSet,
)
from petranode.net.signing import verify
from petranode.wire import codec
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

Rng = Callable[[int], bytes]

PROTOCOL_NAME: Final = b"petranode/garlic/ECIES-X25519-AEAD-Ratchet/v1"
KEY_BYTES: Final = 32
TAG_BYTES: Final = 8
TAG_INFO: Final = b"petranode/garlic/tag"
#: A destination encoding is always 75 bytes (``["dest", 1, bin32, bin32]``).
SENDER_BLOCK_BYTES: Final = MAX_DESTINATION_BYTES + na.AEAD_TAG_BYTES
NS_OVERHEAD: Final = KEY_BYTES + SENDER_BLOCK_BYTES + na.AEAD_TAG_BYTES
ES_OVERHEAD: Final = TAG_BYTES + na.AEAD_TAG_BYTES
#: Largest wire message: an NS around the largest garlic message.
MAX_WIRE_BYTES: Final = NS_OVERHEAD + MAX_GARLIC_BYTES

# Bounds on state a peer can make us hold, each with its reason.
#: Inbound tag sets: one per sender session; ~2·window tags each (a few hundred KiB in all).
MAX_INBOUND_TAGSETS: Final = 256
#: Clove ids remembered for de-duplication: a minute of cloves at well over 100/s.
MAX_SEEN_CLOVES: Final = 8192
#: NS ephemeral keys remembered for the replay window.
MAX_SEEN_EPHEMERAL: Final = 8192
#: DATA cloves awaiting an ACK: local back-pressure on the layers above.
MAX_OUTSTANDING: Final = 1024
#: Cloves queued for one destination between flushes.
MAX_QUEUE_PER_DESTINATION: Final = 64
#: Destinations we hold outbound state for.
MAX_PEERS: Final = 1024
#: Unconfirmed NS sessions kept per destination: at least one per retry of a clove.
MAX_PENDING_SESSIONS: Final = 16
#: The sender stops using a tag set this long before the receiver forgets it (transit time).
TAGSET_MARGIN_MS: Final = 60_000


class CloveDrop(enum.Enum):
    """Why a clove inside an authentic garlic message was not acted on."""

    EXPIRED = "expired"
    TOO_FAR_FUTURE = "too_far_future"
    DUPLICATE = "duplicate"
    SEEN_SET_FULL = "seen_set_full"
    BAD_LEASESET = "bad_leaseset"
    UNKNOWN_ACK = "unknown_ack"
    ACK_QUEUE_FULL = "ack_queue_full"


# -- actions --------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Queued:
    """``send`` accepted a DATA clove; ``clove_id`` names it in ``Acked``/``DeliveryFailed``."""

    destination: bytes
    clove_id: bytes


@final
@dataclass(frozen=True, slots=True)
class SendGarlic:
    """Send ``data`` through an outbound tunnel to a lease of ``destination``'s LeaseSet."""

    destination: Destination
    data: bytes


@final
@dataclass(frozen=True, slots=True)
class Deliver:
    """A DATA clove for us, delivered once; ``sender`` is the authenticated destination hash."""

    sender: bytes
    clove_id: bytes
    payload: bytes


@final
@dataclass(frozen=True, slots=True)
class Acked:
    clove_id: bytes


@final
@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """No ACK after ``max_attempts`` sends."""

    destination: bytes
    clove_id: bytes


@final
@dataclass(frozen=True, slots=True)
class StoreLeaseSet:
    """A sender's own LeaseSet, signature checked and unexpired, for the netDb cache."""

    leaseset: LeaseSet


@final
@dataclass(frozen=True, slots=True)
class Forward:
    """A clove for a router, tunnel or other destination: the router-level service decides."""

    sender: bytes
    clove: Clove


@final
@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Call :meth:`GarlicSessions.tick` at ``at_ms`` (earlier calls are harmless)."""

    at_ms: int


Action = Queued | SendGarlic | Deliver | Acked | DeliveryFailed | StoreLeaseSet | Forward | ArmTimer


# -- the key schedule -----------------------------------------------------------------------


def _hash(data: bytes) -> bytes:
    return na.crypto_hash_sha256(data)


def _initial_state(network_id: str, recipient_key: bytes, ephemeral: bytes) -> tuple[bytes, bytes]:
    """(chaining key, handshake hash) after mixing the network, ``B`` and ``e`` (Noise IK)."""
    h = _hash(PROTOCOL_NAME)
    chaining_key = h
    h = _hash(h + codec.encode(["petranode/garlic/v1", network_id]))
    h = _hash(h + recipient_key)
    return chaining_key, _hash(h + ephemeral)


def _nonce(n: int) -> bytes:
    return bytes(4) + n.to_bytes(8, "little")


def _tagset_root(chaining_key: bytes) -> tuple[bytes, bytes]:
    """(tag chain key, session id) at the end of an NS handshake."""
    chain, sid = _hkdf(chaining_key, b"petranode/garlic/tagset", 2)
    return chain, sid[:SESSION_ID_BYTES]


def _next_tag(chain_key: bytes) -> tuple[bytes, bytes, bytes]:
    """One ratchet step: (next chain key, tag, message key)."""
    next_chain, tag_material, key = _hkdf(chain_key, TAG_INFO, 3)
    return next_chain, tag_material[:TAG_BYTES], key


# -- per-session state ----------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _OutboundSession:
    session_id: bytes
    chain_key: bytes
    created_ms: int
    #: ``published_ms`` of the LeaseSet of ours the receiver has (or is being sent), or -1.
    leaseset_ms: int
    index: int = 0

    def usable(self, now: int, settings: GarlicSettings) -> bool:
        return (now < self.created_ms + settings.tagset_lifetime_ms - TAGSET_MARGIN_MS
                and self.index < settings.max_tagset_messages)

    def next_tag(self) -> tuple[int, bytes, bytes]:
        index = self.index
        self.chain_key, tag, key = _next_tag(self.chain_key)
        self.index += 1
        return index, tag, key


@dataclass(slots=True, eq=False)
class _Peer:
    """Outbound state towards one destination."""

    destination: Destination
    queue: list[Clove] = field(default_factory=list)
    confirmed: _OutboundSession | None = None
    pending: dict[bytes, _OutboundSession] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _InboundTagset:
    sender: Destination
    session_id: bytes
    chain_key: bytes
    created_ms: int
    #: Index of the next tag to derive.
    next_index: int = 0
    #: Unused tags by index.
    tags: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Outstanding:
    destination: Destination
    clove: Clove
    attempts: int = 0
    #: When to retry (or fail); None while queued.
    due_ms: int | None = None


@final
@dataclass(frozen=True, slots=True)
class Opened:
    """A decrypted garlic message, its authenticated sender and the session it came in."""

    message: GarlicMessage
    sender: Destination
    session_id: bytes


# -- the machine ----------------------------------------------------------------------------


@final
class GarlicSessions:
    """All garlic sessions of one local destination (sans-IO; see the module docstring)."""

    def __init__(self, local: LocalDestination, settings: GarlicSettings | None = None,
                 rng: Rng = na.randombytes) -> None:
        self.local = local
        self.settings = (settings or GarlicSettings()).validate()
        self._rng = rng
        self._leaseset: LeaseSet | None = None
        self._peers: dict[bytes, _Peer] = {}
        self._outstanding: dict[bytes, _Outstanding] = {}
        self._inbound: dict[bytes, _InboundTagset] = {}
        self._tags: dict[bytes, tuple[_InboundTagset, int, bytes]] = {}
        self._seen_cloves: dict[bytes, int] = {}
        self._seen_ephemeral: dict[bytes, int] = {}
        self.dropped: collections.Counter[CloveDrop] = collections.Counter()

    # -- inputs ---------------------------------------------------------------------------

    def set_leaseset(self, leaseset: LeaseSet) -> None:
        """Our current LeaseSet, attached to messages when ``include_leaseset``."""
        if leaseset.key != self.local.key:
            raise ValueError("not our destination's LeaseSet")
        self._leaseset = leaseset

    def send(self, destination: Destination, payload: bytes, now: int) -> list[Action]:
        """Queue ``payload`` as a DATA clove; raises ``GarlicError(QUEUE_FULL)``."""
        if len(self._outstanding) >= MAX_OUTSTANDING:
            raise GarlicError(GarlicFault.QUEUE_FULL, "too many cloves awaiting an ack")
        peer = self._peer(destination)
        if peer is None or len(peer.queue) >= MAX_QUEUE_PER_DESTINATION:
            raise GarlicError(GarlicFault.QUEUE_FULL, "destination queue full")
        clove = Clove(DeliveryInstructions.local(), self._clove_id(), now +
                      self.settings.clove_lifetime_ms, PayloadKind.DATA, payload)
        peer.queue.append(clove)
        self._outstanding[clove.clove_id] = _Outstanding(destination, clove)
        return [Queued(destination.key, clove.clove_id),
                ArmTimer(now + self.settings.batch_delay_ms)]

    def tick(self, now: int) -> list[Action]:
        """Expire state, retry or fail due cloves, flush every queue, arm the next timer."""
        self._expire(now)
        actions: list[Action] = []
        for clove_id, item in list(self._outstanding.items()):
            if item.due_ms is None or item.due_ms > now:
                continue
            if item.attempts >= self.settings.max_attempts:
                del self._outstanding[clove_id]
                log.debug("garlic.delivery_failed clove=%s", clove_id.hex())
                actions.append(DeliveryFailed(item.destination.key, clove_id))
                continue
            peer = self._peer(item.destination)
            if peer is None or len(peer.queue) >= MAX_QUEUE_PER_DESTINATION:
                item.due_ms = now + self.settings.retry_base_ms  # no room now: try again later
                continue
            item.due_ms = None
            peer.queue.append(item.clove)
        for peer in list(self._peers.values()):
            actions.extend(self._flush(peer, now))
        due = [item.due_ms for item in self._outstanding.values() if item.due_ms is not None]
        if due:
            actions.append(ArmTimer(min(due)))
        return actions

    def receive(self, data: bytes, now: int) -> list[Action]:
        """Open a garlic message and act on its cloves; raises ``GarlicError``."""
        opened = self._open(data, now)
        sender = opened.sender
        actions: list[Action] = []
        must_ack = False
        for clove in opened.message.cloves:
            if clove.expires_ms <= now:
                self.dropped[CloveDrop.EXPIRED] += 1
                continue
            if clove.expires_ms > now + self._clove_horizon_ms():
                self.dropped[CloveDrop.TOO_FAR_FUTURE] += 1
                continue
            if not (clove.delivery.kind is DeliveryKind.LOCAL or (
                    clove.delivery.kind is DeliveryKind.DESTINATION
                    and clove.delivery.hash == self.local.key)):
                actions.append(Forward(sender.key, clove))
                continue
            match clove.kind:
                case PayloadKind.DATA:
                    actions.extend(self._on_data(clove, opened, now))
                    must_ack = True
                case PayloadKind.ACK:
                    actions.extend(self._on_ack(clove, sender))
                case PayloadKind.LEASESET:
                    actions.extend(self._on_leaseset(clove, sender, now))
                case PayloadKind.PADDING:
                    pass
        peer = self._peers.get(sender.key)
        if must_ack and peer is not None:
            actions.extend(self._flush(peer, now))
        return actions

    def unwrap(self, data: bytes, now: int) -> GarlicMessage:
        """Decrypt a garlic message addressed to us (consuming its tag); raises ``GarlicError``."""
        return self._open(data, now).message

    def wrap(self, to_destination: Destination, cloves: Sequence[Clove], now: int,
             rng: Rng | None = None, *, new_session: bool = False) -> bytes:
        """Encrypt ``cloves`` (plus our LeaseSet when due) as one message to ``to_destination``.

        ES if a confirmed session is usable and ``new_session`` is false, else NS.
        """
        rng = rng or self._rng
        peer = self._peer(to_destination)
        session = None if peer is None or new_session else peer.confirmed
        if session is not None and not session.usable(now, self.settings):
            session = None
        attach = self._leaseset_clove(now, session)
        bundle = tuple(cloves) + (() if attach is None else (attach,))
        message = GarlicMessage(message_id=int.from_bytes(rng(4), "big"), created_ms=now,
                                cloves=bundle)
        if session is not None:
            if attach is not None and self._leaseset is not None:
                session.leaseset_ms = self._leaseset.published_ms
            return self._seal_existing(session, message.encode())
        data, fresh = self._seal_new(to_destination, message.encode(), now, rng,
                                     -1 if attach is None or self._leaseset is None
                                     else self._leaseset.published_ms)
        if peer is not None:
            while len(peer.pending) >= MAX_PENDING_SESSIONS:
                del peer.pending[next(iter(peer.pending))]
            peer.pending[fresh.session_id] = fresh
        return data

    # -- clove handlers -------------------------------------------------------------------

    def _on_data(self, clove: Clove, opened: Opened, now: int) -> list[Action]:
        actions: list[Action] = []
        # Keyed by sender too: a peer cannot suppress another's clove by guessing its id.
        seen_key = opened.sender.key + clove.clove_id
        if seen_key in self._seen_cloves:
            self.dropped[CloveDrop.DUPLICATE] += 1
        else:
            if len(self._seen_cloves) >= MAX_SEEN_CLOVES:
                self._prune(self._seen_cloves, now)
            if len(self._seen_cloves) >= MAX_SEEN_CLOVES:
                # Without room to remember it we could deliver it twice: drop it unacked,
                # the sender retries once the set drains.
                self.dropped[CloveDrop.SEEN_SET_FULL] += 1
                return []
            self._seen_cloves[seen_key] = clove.expires_ms
            actions.append(Deliver(opened.sender.key, clove.clove_id, clove.payload))
        peer = self._peer(opened.sender)
        if peer is None or len(peer.queue) >= MAX_QUEUE_PER_DESTINATION:
            self.dropped[CloveDrop.ACK_QUEUE_FULL] += 1
            return actions
        peer.queue.append(Clove(DeliveryInstructions.local(), self._clove_id(),
                                now + self.settings.clove_lifetime_ms, PayloadKind.ACK,
                                clove.clove_id + opened.session_id))
        return actions

    def _on_ack(self, clove: Clove, sender: Destination) -> list[Action]:
        acked_id, session_id = clove.acked
        item = self._outstanding.get(acked_id)
        if item is None or item.destination.key != sender.key:
            self.dropped[CloveDrop.UNKNOWN_ACK] += 1  # a late duplicate, or not ours to ack
            return []
        del self._outstanding[acked_id]
        peer = self._peers.get(sender.key)
        if peer is not None:
            if item.due_ms is None and item.clove in peer.queue:
                peer.queue.remove(item.clove)
            confirmed = peer.pending.pop(session_id, None)
            if confirmed is not None:
                peer.confirmed = confirmed
                peer.pending.clear()
        return [Acked(acked_id)]

    def _on_leaseset(self, clove: Clove, sender: Destination, now: int) -> list[Action]:
        try:
            leaseset = LeaseSet.decode(clove.payload)
        except DecodeError:
            self.dropped[CloveDrop.BAD_LEASESET] += 1
            return []
        # Only the sender's own LeaseSet: anything else could steer our replies elsewhere.
        if (leaseset.key != sender.key or leaseset.expires_ms <= now
                or not verify(leaseset.destination.signing_key, leaseset.signature,
                              LEASESET_DOMAIN, self.local.network_id,
                              leaseset.signed_payload())):
            self.dropped[CloveDrop.BAD_LEASESET] += 1
            return []
        return [StoreLeaseSet(leaseset)]

    # -- sending --------------------------------------------------------------------------

    def _flush(self, peer: _Peer, now: int) -> list[Action]:
        """Bundle ``peer``'s queue into as few messages as fit."""
        actions: list[Action] = []
        reserve = 0 if self._leaseset is None else (len(self._leaseset.encode())
                                                    + MAX_CLOVE_OVERHEAD)
        while peer.queue:
            size = MESSAGE_OVERHEAD + reserve
            bundle: list[Clove] = []
            for clove in peer.queue:
                if len(bundle) == MAX_CLOVES - 1 or size + clove_size(clove) > MAX_GARLIC_BYTES:
                    break
                bundle.append(clove)
                size += clove_size(clove)
            del peer.queue[:len(bundle)]
            retry = False
            for clove in bundle:
                item = self._outstanding.get(clove.clove_id)
                if item is not None:
                    retry = retry or item.attempts > 0
                    item.attempts += 1
                    item.due_ms = now + self.settings.backoff_ms(item.attempts)
            try:
                data = self.wrap(peer.destination, bundle, now, new_session=retry)
            except GarlicError:
                # The recipient's key is a low-order point: nothing can ever reach it.
                for clove in bundle:
                    if self._outstanding.pop(clove.clove_id, None) is not None:
                        actions.append(DeliveryFailed(peer.destination.key, clove.clove_id))
                continue
            actions.append(SendGarlic(peer.destination, data))
        return actions

    def _leaseset_clove(self, now: int, session: _OutboundSession | None) -> Clove | None:
        if not self.settings.include_leaseset or self._leaseset is None:
            return None
        if session is not None and session.leaseset_ms == self._leaseset.published_ms:
            return None
        return Clove(DeliveryInstructions.local(), self._clove_id(),
                     now + self.settings.clove_lifetime_ms, PayloadKind.LEASESET,
                     self._leaseset.encode())


    def _seal_new(self, to: Destination, plaintext: bytes, now: int, rng: Rng,
                  leaseset_ms: int) -> tuple[bytes, _OutboundSession]:
        secret = rng(KEY_BYTES)
        ephemeral = na.crypto_scalarmult_base(secret)
        chaining_key, h = _initial_state(self.local.network_id, to.encryption_key, ephemeral)
        try:
            chaining_key, k1 = _hkdf(chaining_key, na.crypto_scalarmult(secret, to.encryption_key),
                                     2)
            sender_block = na.crypto_aead_chacha20poly1305_ietf_encrypt(
                self.local.destination.encode(), h, _nonce(0), k1)
            h = _hash(h + sender_block)
            chaining_key, k2 = _hkdf(chaining_key, self.local.keys.dh(to.encryption_key), 2)
        except CryptoError as exc:
            raise GarlicError(GarlicFault.BAD_KEY, "recipient key") from exc
        body = na.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, h, _nonce(0), k2)
        chain, session_id = _tagset_root(chaining_key)
        return (ephemeral + sender_block + body,
                _OutboundSession(session_id, chain, now, leaseset_ms))

    def _seal_existing(self, session: _OutboundSession, plaintext: bytes) -> bytes:
        index, tag, key = session.next_tag()
        return tag + na.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, tag, _nonce(index),
                                                                  key)

    # -- receiving ------------------------------------------------------------------------

    def _open(self, data: bytes, now: int) -> Opened:
        if len(data) > MAX_WIRE_BYTES:
            raise GarlicError(GarlicFault.OVERSIZED)
        if len(data) < ES_OVERHEAD:
            raise GarlicError(GarlicFault.TRUNCATED)
        entry = self._tags.get(data[:TAG_BYTES])
        if entry is not None:
            return self._open_existing(data, entry, now)
        return self._open_new(data, now)

    def _open_existing(self, data: bytes, entry: tuple[_InboundTagset, int, bytes],
                       now: int) -> Opened:
        tagset, index, key = entry
        tag = data[:TAG_BYTES]
        try:
            plaintext = na.crypto_aead_chacha20poly1305_ietf_decrypt(data[TAG_BYTES:], tag,
                                                                     _nonce(index), key)
        except CryptoError as exc:
            # The tag stays: a forger who saw the tag must not burn the genuine message.
            raise GarlicError(GarlicFault.DECRYPTION_FAILED) from exc
        # Authentic: the tag is spent whatever the plaintext holds.
        del self._tags[tag]
        tagset.tags.pop(index, None)
        self._advance(tagset, index)
        message = self._parse(plaintext, now)
        return Opened(message, tagset.sender, tagset.session_id)

    def _open_new(self, data: bytes, now: int) -> Opened:
        if len(data) < NS_OVERHEAD:
            raise GarlicError(GarlicFault.TRUNCATED)
        ephemeral = data[:KEY_BYTES]
        if ephemeral in self._seen_ephemeral:
            raise GarlicError(GarlicFault.REPLAYED)
        sender_block = data[KEY_BYTES:KEY_BYTES + SENDER_BLOCK_BYTES]
        chaining_key, h = _initial_state(self.local.network_id, self.local.keys.static_key,
                                         ephemeral)
        try:
            chaining_key, k1 = _hkdf(chaining_key, self.local.keys.dh(ephemeral), 2)
        except CryptoError as exc:
            raise GarlicError(GarlicFault.BAD_KEY, "ephemeral key") from exc
        try:
            sender_bytes = na.crypto_aead_chacha20poly1305_ietf_decrypt(sender_block, h,
                                                                        _nonce(0), k1)
        except CryptoError as exc:
            raise GarlicError(GarlicFault.DECRYPTION_FAILED) from exc
        try:
            sender = Destination.decode(sender_bytes)
        except DecodeError as exc:
            raise GarlicError(GarlicFault.MALFORMED, "sender destination") from exc
        h = _hash(h + sender_block)
        try:
            chaining_key, k2 = _hkdf(chaining_key, self.local.keys.dh(sender.encryption_key), 2)
        except CryptoError as exc:
            raise GarlicError(GarlicFault.BAD_KEY, "sender key") from exc
        try:
            plaintext = na.crypto_aead_chacha20poly1305_ietf_decrypt(
                data[KEY_BYTES + SENDER_BLOCK_BYTES:], h, _nonce(0), k2)
        except CryptoError as exc:
            raise GarlicError(GarlicFault.DECRYPTION_FAILED) from exc
        message = self._parse(plaintext, now)
        self._remember_ephemeral(ephemeral, now)
        chain, session_id = _tagset_root(chaining_key)
        self._add_tagset(_InboundTagset(sender, session_id, chain, now))
        return Opened(message, sender, session_id)

    def _parse(self, plaintext: bytes, now: int) -> GarlicMessage:
        try:
            message = GarlicMessage.decode(plaintext)
        except DecodeError as exc:
            raise GarlicError(GarlicFault.MALFORMED, exc.reason.value) from exc
        if not (now - self.settings.max_message_age_ms <= message.created_ms
                <= now + self.settings.max_message_future_ms):
            raise GarlicError(GarlicFault.STALE)
        return message

    # -- bounded state --------------------------------------------------------------------

    def _add_tagset(self, tagset: _InboundTagset) -> None:
        while len(self._inbound) >= MAX_INBOUND_TAGSETS:
            # Evict the oldest: its sender falls back to NS on its next retry.
            self._drop_tagset(self._inbound[next(iter(self._inbound))])
        self._inbound[tagset.session_id] = tagset
        self._advance(tagset, -1)

    def _advance(self, tagset: _InboundTagset, used: int) -> None:
        """Keep tags ``used+1 .. used+window`` derived and forget those far behind."""
        window = self.settings.tag_window
        while tagset.next_index <= used + window:
            tagset.chain_key, tag, key = _next_tag(tagset.chain_key)
            tagset.tags[tagset.next_index] = tag
            self._tags[tag] = (tagset, tagset.next_index, key)
            tagset.next_index += 1
        for index in [i for i in tagset.tags if i < used - window]:
            self._tags.pop(tagset.tags.pop(index), None)

    def _drop_tagset(self, tagset: _InboundTagset) -> None:
        del self._inbound[tagset.session_id]
        for tag in tagset.tags.values():
            self._tags.pop(tag, None)

    def _remember_ephemeral(self, ephemeral: bytes, now: int) -> None:
        if len(self._seen_ephemeral) >= MAX_SEEN_EPHEMERAL:
            self._prune(self._seen_ephemeral, now)
        while len(self._seen_ephemeral) >= MAX_SEEN_EPHEMERAL:
            # Full of live keys (a flood): forget the oldest; clove ids still de-duplicate.
            del self._seen_ephemeral[next(iter(self._seen_ephemeral))]
        # A message this key could carry is refused as STALE after this time anyway.
        self._seen_ephemeral[ephemeral] = (now + self.settings.max_message_age_ms
                                           + self.settings.max_message_future_ms)

    def _expire(self, now: int) -> None:
        self._prune(self._seen_cloves, now)
        self._prune(self._seen_ephemeral, now)
        lifetime = self.settings.tagset_lifetime_ms
        for tagset in [t for t in self._inbound.values() if t.created_ms + lifetime <= now]:
            self._drop_tagset(tagset)
        awaiting = {item.destination.key for item in self._outstanding.values()}
        for key, peer in list(self._peers.items()):
            if peer.confirmed is not None and not peer.confirmed.usable(now, self.settings):
                peer.confirmed = None
            for sid in [s for s, p in peer.pending.items() if p.created_ms + lifetime <= now]:
                del peer.pending[sid]
            if (not peer.queue and peer.confirmed is None and not peer.pending
                    and key not in awaiting):
                del self._peers[key]

    @staticmethod
    def _prune(expiries: dict[bytes, int], now: int) -> None:
        for key in [k for k, until in expiries.items() if until <= now]:
            del expiries[key]

    def _peer(self, destination: Destination) -> _Peer | None:
        key = destination.key
        peer = self._peers.get(key)
        if peer is None:
            if len(self._peers) >= MAX_PEERS:
                return None
            peer = self._peers[key] = _Peer(destination)
        return peer

    def _clove_horizon_ms(self) -> int:
        """How far ahead a clove may expire: its lifetime plus the clock skew we accept."""
        return self.settings.clove_lifetime_ms + self.settings.max_message_future_ms

    def _clove_id(self) -> bytes:
        return self._rng(CLOVE_ID_BYTES)

    # -- introspection (RPC stats, tests) -------------------------------------------------

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    @property
    def inbound_sessions(self) -> int:
        return len(self._inbound)

    def has_confirmed_session(self, destination: bytes) -> bool:
        peer = self._peers.get(destination)
        return peer is not None and peer.confirmed is not None

    def __repr__(self) -> str:
        return (f"GarlicSessions(dest={self.local.key.hex()[:16]}…, peers={len(self._peers)}, "
                f"outstanding={len(self._outstanding)}, inbound={len(self._inbound)})")

