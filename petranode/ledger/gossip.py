"""Gossip of ledger items among linked routers, sans I/O (SPEC §4.6; issue 6 item 4).

Transactions, consensus proposals and votes, and committed blocks travel between routers as
*items*: opaque bytes of one :class:`ItemKind`, named by the SHA-256 of those bytes. The
machine knows nothing of what an item means; the service validates what it delivers.

Rules (CometBFT's mempool and consensus reactors; Bitcoin's ``inv``/``getdata``):

* **Announce by hash.** An item is offered with ``ledger.have`` (kind, hashes); a peer that
  lacks it answers ``ledger.want`` and gets ``ledger.item`` (kind, bytes). Hashes are cheap,
  so the announcement reaches everyone while each node downloads each item once.
* **Relay only what the layer above accepted.** :meth:`Gossip.on_item` delivers an item
  upward but does not pass it on; the service calls :meth:`Gossip.publish` for items it
  validated (and for its own), and only then is it announced and served. A node never spreads
  a transaction its mempool refused.
* **Bounded fan-out.** At any moment an item is announced to at most ``fanout`` peers that are
  not known to hold it (they announced it to us, sent it, asked for it, or we told them);
  every :meth:`Gossip.tick` tells up to ``fanout`` more, so with the links up every linked
  peer hears of every relayed item within ``⌈peers / fanout⌉`` ticks, while the burst of one
  publication stays bounded.
* **Fetch what is missing, once.** The first announcer of an unknown hash is asked for it;
  later announcers are kept as candidates. If the item has not come within
  ``request_timeout_s`` — or the asked peer's link goes down — the next candidate is asked;
  when none is left the last peer asked is asked again, up to :data:`MAX_REQUEST_ATTEMPTS`
  requests in all (a busy peer — one verifying a block — answers late; it will not announce
  the item to us again), and then the want is dropped (a later announcement starts it again).
* **De-duplicate.** Every item seen (delivered or published) stays in a seen-cache keyed by
  (kind, hash) until ``ttl_s`` after it was first seen, so a copy arriving from a second peer is
  neither delivered nor relayed again. The cache is bounded in entries and bytes; the oldest go
  first. An expired item seen again is delivered again: the layers above are idempotent.
* **Peers that come back start fresh.** When a link goes down, what we believed that peer held
  is forgotten, so a restarted peer is told every cached item again when it relinks.

Inputs: :meth:`Gossip.on_message` (or the decoded ``on_announce`` / ``on_request`` /
``on_item``), :meth:`Gossip.on_peer_change`, :meth:`Gossip.publish`, :meth:`Gossip.tick`,
each with ``now`` (monotonic seconds). Outputs: lists of :class:`SendTo` and :class:`Deliver`.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import random
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, assert_never, final

from petranode.ledger.p2p_errors import PeerFault, PeerMessageRejected
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

MSG_HAVE: Final = "ledger.have"
MSG_WANT: Final = "ledger.want"
MSG_ITEM: Final = "ledger.item"
#: The link message types this machine speaks, for ``LinkService.register``.
MESSAGE_TYPES: Final = (MSG_HAVE, MSG_WANT, MSG_ITEM)

HASH_BYTES: Final = 32
#: Hashes in one announcement or request: 256 × 32 B = 8 KiB, well inside a link message, and
#: the bound on the work one message can ask of us.
MAX_HASHES_PER_MESSAGE: Final = 256
#: Requests for one item at most, to the announcers in turn and then the last one again.
MAX_REQUEST_ATTEMPTS: Final = 4
#: Items we are fetching at once. A peer announcing junk hashes can make us hold at most this
#: many wants, each a few dozen bytes.
MAX_WANTS: Final = 4096


class ItemKind(enum.Enum):
    """What an item is; the value is its name on the wire."""

    TX = "tx"
    PROPOSAL = "proposal"
    VOTE = "vote"
    BLOCK = "block"


#: Largest item of each kind. A link message is at most 1 MiB (``link.max_message_bytes``);
#: blocks and proposals (which carry a block) stay 64 KiB under it for the envelope. A
#: transaction is bounded by ``tx.MAX_TX_BYTES`` (96 KiB); a vote is a few hundred bytes.
MAX_ITEM_BYTES: Final[Mapping[ItemKind, int]] = {
    ItemKind.TX: 96 * 1024,
    ItemKind.PROPOSAL: 960 * 1024,
    ItemKind.VOTE: 4 * 1024,
    ItemKind.BLOCK: 960 * 1024,
}
_MAX_MESSAGE_BYTES: Final = 1024 * 1024


def item_hash(data: bytes) -> bytes:
    """The name of an item: SHA-256 of its bytes (a transaction's is its ``tx_hash``)."""
    return hashlib.sha256(data).digest()


# -- messages ---------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Have:
    kind: ItemKind
    hashes: tuple[bytes, ...]


@final
@dataclass(frozen=True, slots=True)
class Want:
    kind: ItemKind
    hashes: tuple[bytes, ...]


@final
@dataclass(frozen=True, slots=True)
class Item:
    kind: ItemKind
    data: bytes


GossipMessage = Have | Want | Item


def encode_message(message: GossipMessage) -> dict[str, Encodable]:
    """The link message (a map with ``"t"``) of a gossip message."""
    match message:
        case Have(kind, hashes):
            return {"t": MSG_HAVE, "k": kind.value, "h": list(hashes)}
        case Want(kind, hashes):
            return {"t": MSG_WANT, "k": kind.value, "h": list(hashes)}
        case Item(kind, data):
            return {"t": MSG_ITEM, "k": kind.value, "d": data}
        case _:
            assert_never(message)


def decode_message(message: Mapping[str, Value]) -> GossipMessage:
    """A link message as a gossip message, or :class:`PeerMessageRejected` — nothing else."""
    try:
        t = message.get("t")
        match t:
            case "ledger.have" | "ledger.want":
                _expect_keys(message, ("t", "k", "h"))
                kind = _kind(message["k"])
                raw = codec.expect_list(message["h"], what="hashes")
                if not 1 <= len(raw) <= MAX_HASHES_PER_MESSAGE:
                    raise PeerMessageRejected(PeerFault.OVERSIZED, "hash count")
                hashes = tuple(codec.expect_bytes(h, HASH_BYTES, what="hash") for h in raw)
                return Have(kind, hashes) if t == MSG_HAVE else Want(kind, hashes)
            case "ledger.item":
                _expect_keys(message, ("t", "k", "d"))
                kind = _kind(message["k"])
                data = codec.expect_bytes(message["d"], what="item")
                if not 1 <= len(data) <= MAX_ITEM_BYTES[kind]:
                    raise PeerMessageRejected(PeerFault.OVERSIZED, kind.value)
                return Item(kind, data)
            case _:
                raise PeerMessageRejected(PeerFault.UNKNOWN_TYPE)
    except DecodeError as exc:
        raise PeerMessageRejected(PeerFault.MALFORMED, exc.reason.value) from exc


def _expect_keys(message: Mapping[str, Value], keys: Sequence[str]) -> None:
    if set(message) != set(keys):
        raise PeerMessageRejected(PeerFault.MALFORMED, "fields")


def _kind(raw: Value) -> ItemKind:
    name = codec.expect_str(raw, max_len=16, what="kind")
    try:
        return ItemKind(name)
    except ValueError:
        raise PeerMessageRejected(PeerFault.UNKNOWN_KIND) from None


# -- actions ----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``message`` over the link to ``peer`` (a router hash)."""

    peer: bytes
    message: Mapping[str, Encodable]


@final
@dataclass(frozen=True, slots=True)
class Deliver:
    """An item seen for the first time, from ``peer``: validate it, then ``publish`` it."""

    kind: ItemKind
    item_hash: bytes
    data: bytes
    peer: bytes


GossipAction = SendTo | Deliver


# -- the machine ------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class GossipParams:
    #: Peers newly told of one item per publication or tick. CometBFT sends to every peer;
    #: 8 is Bitcoin Core's outbound count and covers a small network in one step.
    fanout: int = 8
    #: Seconds to wait for a requested item before asking the next peer that announced it.
    request_timeout_s: float = 2.0
    #: Seconds an item stays in the seen-cache: far longer than it takes to cross the network.
    ttl_s: float = 60.0
    #: Entries in the seen-cache (hashes and, for relayed items, their bytes).
    max_items: int = 20_000
    #: Bytes of items held for serving requests: 64 MiB, about 70 full blocks.
    max_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.fanout < 1:
            raise ValueError("fanout is at least 1")
        if self.request_timeout_s <= 0 or self.ttl_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_items < 1 or self.max_bytes < max(MAX_ITEM_BYTES.values()):
            raise ValueError("the seen-cache must hold at least one item of every kind")


_Key = tuple[ItemKind, bytes]


@dataclass(slots=True)
class _Entry:
    data: bytes
    first_seen: float
    #: Accepted by the layer above (or our own): announced and served.
    relayed: bool
    #: Peers known to hold the item, or told of it by us: never told (again).
    known_to: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class _Wanted:
    asked: bytes
    deadline: float
    #: Peers that announced the item after we asked ``asked``, in order.
    candidates: list[bytes] = field(default_factory=list)
    #: Requests sent for the item so far.
    attempts: int = 1


@final
class Gossip:
    """Announce, fetch, de-duplicate and relay items among the linked peers."""

    def __init__(self, params: GossipParams | None = None, *, rng: random.Random | None = None):
        self._params = params or GossipParams()
        self._rng = rng or random.SystemRandom()
        self._peers: set[bytes] = set()
        #: The seen-cache, oldest first (insertion order is first-seen order).
        self._items: OrderedDict[_Key, _Entry] = OrderedDict()
        self._bytes = 0
        self._wants: dict[_Key, _Wanted] = {}
        #: Relayed items some linked peer has not been told of yet.
        self._unfinished: set[_Key] = set()
        self.counters: Counter[str] = Counter()

    # -- inputs -----------------------------------------------------------------------------

    def on_message(self, peer: bytes, message: Mapping[str, Value], now: float) -> list[
        GossipAction
    ]:
        """Decode and handle one link message; a bad one raises :class:`PeerMessageRejected`."""
        decoded = decode_message(message)
        match decoded:
            case Have(kind, hashes):
                return self.on_announce(peer, kind, hashes, now)
            case Want(kind, hashes):
                return self.on_request(peer, kind, hashes, now)
            case Item(kind, data):
                return self.on_item(peer, kind, data, now)
            case _:
                assert_never(decoded)

    def on_announce(
        self, peer: bytes, kind: ItemKind, hashes: Iterable[bytes], now: float
    ) -> list[GossipAction]:
        """``peer`` holds ``hashes``: ask it for those we neither hold nor are fetching."""
        self._expire(now)
        missing: list[bytes] = []
        for digest in hashes:
            key = (kind, digest)
            entry = self._items.get(key)
            if entry is not None:
                entry.known_to.add(peer)
                continue
            wanted = self._wants.get(key)
            if wanted is not None:
                if wanted.asked != peer and peer not in wanted.candidates:
                    wanted.candidates.append(peer)
                continue
            if len(self._wants) >= MAX_WANTS:
                self.counters["wants_refused"] += 1
                continue
            self._wants[key] = _Wanted(peer, now + self._params.request_timeout_s)
            missing.append(digest)
        return [_send(peer, Want(kind, tuple(missing)))] if missing else []

    def on_request(
        self, peer: bytes, kind: ItemKind, hashes: Iterable[bytes], now: float
    ) -> list[GossipAction]:
        """``peer`` asks for ``hashes``: send those we relay; ignore the rest."""
        self._expire(now)
        actions: list[GossipAction] = []
        for digest in hashes:
            entry = self._items.get((kind, digest))
            if entry is None or not entry.relayed:
                self.counters["requests_unknown"] += 1
                continue
            entry.known_to.add(peer)
            self.counters["items_served"] += 1
            actions.append(_send(peer, Item(kind, entry.data)))
        return actions

    def on_item(self, peer: bytes, kind: ItemKind, data: bytes, now: float) -> list[GossipAction]:
        """An item's bytes from ``peer``: deliver it if we asked for it and never saw it."""
        if not 1 <= len(data) <= MAX_ITEM_BYTES[kind]:
            raise PeerMessageRejected(PeerFault.OVERSIZED, kind.value)
        self._expire(now)
        digest = item_hash(data)
        key = (kind, digest)
        entry = self._items.get(key)
        if entry is not None:
            entry.known_to.add(peer)
            self.counters["duplicates"] += 1
            return []
        wanted = self._wants.pop(key, None)
        if wanted is None:
            # Not asked for: a late answer to a dropped want, or a peer pushing. Either way it
            # is not ours to deliver — only what we asked for by hash enters.
            self.counters["unsolicited"] += 1
            return []
        entry = self._remember(key, data, now, relayed=False)
        entry.known_to.update((peer, wanted.asked, *wanted.candidates))
        self.counters["delivered"] += 1
        return [Deliver(kind, digest, data, peer)]

    def publish(self, kind: ItemKind, data: bytes, now: float) -> list[GossipAction]:
        """Relay ``data``: our own item, or one the layer above accepted after delivery.

        Idempotent: publishing an item already relayed does nothing.
        """
        if not 1 <= len(data) <= MAX_ITEM_BYTES[kind]:
            raise ValueError(f"a {kind.value} item is 1 to {MAX_ITEM_BYTES[kind]} bytes")
        self._expire(now)
        key = (kind, item_hash(data))
        self._wants.pop(key, None)
        entry = self._items.get(key)
        if entry is None:
            entry = self._remember(key, data, now, relayed=True)
        elif entry.relayed:
            return []
        entry.relayed = True
        self._unfinished.add(key)
        return self._announce_round([key])

    def on_peer_change(self, peer: bytes, linked: bool, now: float) -> list[GossipAction]:
        """A link came up or went down. Up: every cached item is announced to it over the
        next ticks. Down: what it was fetching for us is asked of the next candidate."""
        if linked:
            self._peers.add(peer)
            self._unfinished.update(k for k, e in self._items.items() if e.relayed)
            return []
        self._peers.discard(peer)
        for entry in self._items.values():
            entry.known_to.discard(peer)
        actions: list[GossipAction] = []
        for key, wanted in list(self._wants.items()):
            if peer in wanted.candidates:
                wanted.candidates.remove(peer)
            if wanted.asked == peer:
                actions += self._ask_next(key, wanted, now)
        return actions

    def tick(self, now: float) -> list[GossipAction]:
        """Periodic work: expire, re-request timed-out wants, tell more peers of items."""
        self._expire(now)
        actions: list[GossipAction] = []
        for key, wanted in list(self._wants.items()):
            if wanted.deadline <= now:
                self.counters["request_timeouts"] += 1
                actions += self._ask_next(key, wanted, now)
        return actions + self._announce_round(list(self._unfinished))

    # -- what the service reads ---------------------------------------------------------------

    @property
    def peers(self) -> frozenset[bytes]:
        return frozenset(self._peers)

    def holds(self, kind: ItemKind, digest: bytes) -> bool:
        return (kind, digest) in self._items

    def stats(self) -> dict[str, int]:
        return {
            "items": len(self._items),
            "bytes": self._bytes,
            "wants": len(self._wants),
            "peers": len(self._peers),
            **dict(sorted(self.counters.items())),
        }

    # -- internals ----------------------------------------------------------------------------

    def _ask_next(self, key: _Key, wanted: _Wanted, now: float) -> list[GossipAction]:
        while wanted.candidates:
            peer = wanted.candidates.pop(0)
            if peer in self._peers:
                return self._ask_again(key, wanted, peer, now)
        if wanted.asked in self._peers and wanted.attempts < MAX_REQUEST_ATTEMPTS:
            return self._ask_again(key, wanted, wanted.asked, now)
        del self._wants[key]
        self.counters["wants_dropped"] += 1
        return []

    def _ask_again(self, key: _Key, wanted: _Wanted, peer: bytes, now: float
                   ) -> list[GossipAction]:
        wanted.asked = peer
        wanted.attempts += 1
        wanted.deadline = now + self._params.request_timeout_s
        self.counters["re_requests"] += 1
        return [_send(peer, Want(key[0], (key[1],)))]

    def _announce_round(self, keys: Sequence[_Key]) -> list[GossipAction]:
        """Tell up to ``fanout`` more peers of each key, in one message per (peer, kind)."""
        batches: dict[tuple[bytes, ItemKind], list[bytes]] = {}
        for key in keys:
            entry = self._items.get(key)
            if entry is None or not entry.relayed:
                self._unfinished.discard(key)
                continue
            untold = sorted(self._peers - entry.known_to)
            chosen = self._rng.sample(untold, min(self._params.fanout, len(untold)))
            for peer in chosen:
                batch = batches.setdefault((peer, key[0]), [])
                if len(batch) >= MAX_HASHES_PER_MESSAGE:
                    continue  # this peer hears of the rest next tick
                batch.append(key[1])
                entry.known_to.add(peer)
            if not self._peers - entry.known_to:
                self._unfinished.discard(key)
        self.counters["announcements"] += sum(len(b) for b in batches.values())
        return [_send(peer, Have(kind, tuple(hashes))) for (peer, kind), hashes in batches.items()]

    def _remember(self, key: _Key, data: bytes, now: float, *, relayed: bool) -> _Entry:
        entry = _Entry(data, now, relayed)
        self._items[key] = entry
        self._bytes += len(data)
        # Bounded: the oldest entries go first once either bound is passed.
        while len(self._items) > self._params.max_items or self._bytes > self._params.max_bytes:
            self._drop_oldest()
            self.counters["evicted"] += 1
        return entry

    def _expire(self, now: float) -> None:
        cutoff = now - self._params.ttl_s
        while self._items:
            first = next(iter(self._items.values()))
            if first.first_seen > cutoff:
                break
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        key, entry = self._items.popitem(last=False)
        self._bytes -= len(entry.data)
        self._unfinished.discard(key)


def _send(peer: bytes, message: GossipMessage) -> SendTo:
    return SendTo(peer, encode_message(message))
