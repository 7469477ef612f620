"""Block sync for a node that is behind or new, sans I/O (SPEC §4.6, §5; issue 6 item 5).

CometBFT's ``blocksync`` reactor, reduced to what a small BFT network needs: a node asks its
peers for their heights, fetches the blocks it lacks *with their commit certificates*, and
applies each only after the certificate has been verified against the genesis validators
(more than two thirds of them signed that block's hash at that height) and the block follows
the previous block's hash. Nothing a single peer says is trusted: a peer can only waste our
time, and one that sends a block that fails verification is set aside for ``fault_ban_s``.

Messages (maps with ``"t"`` on the links):

* ``ledger.status?`` — what is your height; answered by ``ledger.status`` ``{"height": h}``.
  Sent when a link comes up and every ``status_interval_s``.
* ``ledger.blocks?`` ``{"from": h, "count": n}`` — up to :data:`MAX_BATCH` blocks from ``h``;
  answered by ``ledger.blocks`` ``{"from": h, "blocks": [[block, certificate], …]}``, fewer
  if the peer has fewer or they would not fit in one link message (:func:`blocks_message`).

Theory of operation: the target is the highest height a usable peer reported. Heights from
ours + 1 up to ``window`` ahead that are neither buffered nor requested are asked, in runs of
at most ``MAX_BATCH``, of a peer that reported them, preferring the least busy; a request not
answered within ``request_timeout_s`` is asked again elsewhere. Answers are buffered (at most
``window`` blocks: the bound on memory a sync can take) and drained in height order through
the verifier; each verified block becomes an :class:`Apply` action, and the service commits it.
Blocks decided by our own consensus arrive through :meth:`BlockSync.committed`; certified
blocks from gossip through :meth:`BlockSync.offer`. Serving peers is the service's job
(:class:`ServeBlocks` asks it to read the store).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, assert_never, final

from petranode.errors import PetranodeError
from petranode.ledger.gossip import SendTo
from petranode.ledger.p2p_errors import PeerFault, PeerMessageRejected
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

MSG_STATUS_REQUEST: Final = "ledger.status?"
MSG_STATUS: Final = "ledger.status"
MSG_BLOCKS_REQUEST: Final = "ledger.blocks?"
MSG_BLOCKS: Final = "ledger.blocks"
MESSAGE_TYPES: Final = (MSG_STATUS_REQUEST, MSG_STATUS, MSG_BLOCKS_REQUEST, MSG_BLOCKS)

#: Blocks per request: CometBFT's blocksync asks one at a time from many peers; a batch
#: amortises the round trip on a small network. 16 full blocks still fit no link message, so
#: :func:`blocks_message` trims to the byte budget.
MAX_BATCH: Final = 16
#: A block (gossip's BLOCK bound less the certificate's) and a certificate (a signature and a
#: validator index per validator: ample for hundreds of validators).
MAX_BLOCK_BYTES: Final = 896 * 1024
MAX_CERTIFICATE_BYTES: Final = 32 * 1024
#: What one ``ledger.blocks`` message carries at most: under the 1 MiB link message with room
#: for the envelope.
MAX_BLOCKS_MESSAGE_BYTES: Final = 960 * 1024
#: Heights are SQLite INTEGERs.
MAX_HEIGHT: Final = 2**62


@final
@dataclass(frozen=True, slots=True)
class SyncParams:
    #: Seconds to wait for a block request's answer before asking another peer.
    request_timeout_s: float = 5.0
    #: Seconds between asking every peer its height (also asked when a link comes up).
    status_interval_s: float = 2.0
    #: Heights fetched ahead of ours at most: bounds the buffer to this many blocks.
    window: int = 64
    #: Seconds a peer that sent an unverifiable block is not asked again.
    fault_ban_s: float = 60.0

    def __post_init__(self) -> None:
        if self.request_timeout_s <= 0 or self.status_interval_s <= 0 or self.fault_ban_s < 0:
            raise ValueError("sync intervals must be positive")
        if self.window < 1:
            raise ValueError("window is at least 1")


class CertifiedBlockVerifier(Protocol):
    """The seam to the consensus layer's records (``block.py``, ``vote.py``)."""

    def verify(self, height: int, prev_hash: bytes, block: bytes, certificate: bytes) -> bytes:
        """The block's hash, if ``block`` decodes as the block at ``height`` following
        ``prev_hash`` and ``certificate`` commits that hash at that height with signatures of
        more than two thirds of the genesis validators; a :class:`PetranodeError` if not."""
        ...


# -- messages ---------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class StatusRequest:
    pass


@final
@dataclass(frozen=True, slots=True)
class Status:
    height: int


@final
@dataclass(frozen=True, slots=True)
class BlocksRequest:
    start: int
    count: int


@final
@dataclass(frozen=True, slots=True)
class Blocks:
    start: int
    blocks: tuple[tuple[bytes, bytes], ...]


SyncMessage = StatusRequest | Status | BlocksRequest | Blocks


def encode_message(message: SyncMessage) -> dict[str, Encodable]:
    match message:
        case StatusRequest():
            return {"t": MSG_STATUS_REQUEST}
        case Status(height):
            return {"t": MSG_STATUS, "height": height}
        case BlocksRequest(start, count):
            return {"t": MSG_BLOCKS_REQUEST, "from": start, "count": count}
        case Blocks(start, blocks):
            return {"t": MSG_BLOCKS, "from": start, "blocks": [list(b) for b in blocks]}
        case _:
            assert_never(message)


def decode_message(message: Mapping[str, Value]) -> SyncMessage:
    """A link message as a sync message, or :class:`PeerMessageRejected` — nothing else."""
    try:
        match message.get("t"):
            case "ledger.status?":
                _expect_keys(message, ("t",))
                return StatusRequest()
            case "ledger.status":
                _expect_keys(message, ("t", "height"))
                return Status(codec.expect_int(message["height"], 0, MAX_HEIGHT, what="height"))
            case "ledger.blocks?":
                _expect_keys(message, ("t", "from", "count"))
                return BlocksRequest(
                    codec.expect_int(message["from"], 1, MAX_HEIGHT, what="from"),
                    codec.expect_int(message["count"], 1, MAX_BATCH, what="count"),
                )
            case "ledger.blocks":
                _expect_keys(message, ("t", "from", "blocks"))
                raw = codec.expect_list(message["blocks"], what="blocks")
                if len(raw) > MAX_BATCH:
                    raise PeerMessageRejected(PeerFault.OVERSIZED, "blocks")
                return Blocks(
                    codec.expect_int(message["from"], 1, MAX_HEIGHT, what="from"),
                    tuple(_certified_pair(pair) for pair in raw),
                )
            case _:
                raise PeerMessageRejected(PeerFault.UNKNOWN_TYPE)
    except DecodeError as exc:
        raise PeerMessageRejected(PeerFault.MALFORMED, exc.reason.value) from exc


def _certified_pair(value: Value) -> tuple[bytes, bytes]:
    block, certificate = codec.expect_list(value, 2, what="certified block")
    return (
        codec.expect_bytes(block, max_size=MAX_BLOCK_BYTES, what="block"),
        codec.expect_bytes(certificate, max_size=MAX_CERTIFICATE_BYTES, what="certificate"),
    )


def _expect_keys(message: Mapping[str, Value], keys: Sequence[str]) -> None:
    if set(message) != set(keys):
        raise PeerMessageRejected(PeerFault.MALFORMED, "fields")


def blocks_message(start: int, blocks: Sequence[tuple[bytes, bytes]]) -> dict[str, Encodable]:
    """The answer to a block request: the first of ``blocks`` that fit one link message (at
    least one, which the size bounds make fit on its own)."""
    taken: list[tuple[bytes, bytes]] = []
    size = 0
    for block, certificate in blocks[:MAX_BATCH]:
        size += len(block) + len(certificate) + 16  # msgpack headers
        if taken and size > MAX_BLOCKS_MESSAGE_BYTES:
            break
        taken.append((block, certificate))
    return encode_message(Blocks(start, tuple(taken)))


def encode_certified_block(height: int, block: bytes, certificate: bytes) -> bytes:
    """A committed block with its certificate, as gossip carries it (kind BLOCK)."""
    return codec.encode([height, block, certificate])


def decode_certified_block(data: bytes) -> tuple[int, bytes, bytes]:
    try:
        height, block, certificate = codec.expect_list(
            codec.decode(data, max_size=MAX_BLOCK_BYTES + MAX_CERTIFICATE_BYTES + 64), 3,
            what="certified block",
        )
        return (
            codec.expect_int(height, 1, MAX_HEIGHT, what="height"),
            *_certified_pair([block, certificate]),
        )
    except DecodeError as exc:
        raise PeerMessageRejected(PeerFault.MALFORMED, exc.reason.value) from exc


# -- actions ----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Apply:
    """A verified block for the next height: apply its transactions and commit it."""

    height: int
    block: bytes
    certificate: bytes
    block_hash: bytes


@final
@dataclass(frozen=True, slots=True)
class ServeBlocks:
    """Read blocks ``start`` … ``start + count − 1`` (those we have) and answer ``peer`` with
    :func:`blocks_message`."""

    peer: bytes
    start: int
    count: int


@final
@dataclass(frozen=True, slots=True)
class PeerFaulted:
    """``peer`` sent a block that failed verification; it is set aside for a while."""

    peer: bytes
    reason: PeerFault


SyncAction = SendTo | Apply | ServeBlocks | PeerFaulted


# -- the machine ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    peer: bytes
    start: int
    count: int
    deadline: float


@final
class BlockSync:
    """Catch up with the peers, verifying every block's certificate before applying it."""

    def __init__(
        self,
        verifier: CertifiedBlockVerifier,
        *,
        height: int,
        head_hash: bytes,
        params: SyncParams | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._verifier = verifier
        self._params = params or SyncParams()
        self._rng = rng or random.SystemRandom()
        self._height = height
        self._head_hash = head_hash
        self._peer_heights: dict[bytes, int] = {}
        self._banned_until: dict[bytes, float] = {}
        self._requests: dict[int, _Request] = {}  # by start height
        self._buffer: dict[int, tuple[bytes, bytes, bytes]] = {}  # height → block, cert, peer
        self._next_status = 0.0
        self.counters: Counter[str] = Counter()

    # -- what the service reads ---------------------------------------------------------------

    @property
    def height(self) -> int:
        """Our committed height, as far as this machine knows (Apply actions included)."""
        return self._height

    @property
    def head_hash(self) -> bytes:
        return self._head_hash

    @property
    def target(self) -> int:
        """The highest height a usable peer has reported."""
        return max(self._peer_heights.values(), default=0)

    @property
    def behind(self) -> bool:
        return self.target > self._height

    def stats(self) -> dict[str, int]:
        return {
            "height": self._height,
            "target": self.target,
            "requests": len(self._requests),
            "buffered": len(self._buffer),
            **dict(sorted(self.counters.items())),
        }

    # -- inputs -------------------------------------------------------------------------------

    def on_message(self, peer: bytes, message: Mapping[str, Value], now: float) -> list[
        SyncAction
    ]:
        decoded = decode_message(message)
        match decoded:
            case StatusRequest():
                return [SendTo(peer, encode_message(Status(self._height)))]
            case Status(height):
                self._peer_heights[peer] = height
                return self._schedule(now)
            case BlocksRequest(start, count):
                if start > self._height:
                    return [SendTo(peer, encode_message(Blocks(start, ())))]
                return [ServeBlocks(peer, start, min(count, self._height - start + 1))]
            case Blocks(start, blocks):
                return self._on_blocks(peer, start, blocks, now)
            case _:
                assert_never(decoded)

    def on_peer_change(self, peer: bytes, linked: bool, now: float) -> list[SyncAction]:
        if linked:
            return [SendTo(peer, encode_message(StatusRequest()))]
        self._peer_heights.pop(peer, None)
        for start, request in list(self._requests.items()):
            if request.peer == peer:
                del self._requests[start]
        return self._schedule(now)

    def offer(self, peer: bytes, height: int, block: bytes, certificate: bytes, now: float
              ) -> list[SyncAction]:
        """A certified block from gossip: applied at once if it is the next one; otherwise it
        tells us ``peer`` has reached ``height``."""
        if height <= self._height:
            return []
        if height == self._height + 1:
            self._buffer.setdefault(height, (block, certificate, peer))
        self._peer_heights[peer] = max(self._peer_heights.get(peer, 0), height)
        return self._drain(now) + self._schedule(now)

    def committed(self, height: int, block_hash: bytes, now: float) -> list[SyncAction]:
        """Our consensus decided ``height`` and the service committed it."""
        if height != self._height + 1:
            raise ValueError(f"committed {height} after {self._height}")
        self._advance(height, block_hash)
        return self._drain(now) + self._schedule(now)

    def tick(self, now: float) -> list[SyncAction]:
        actions: list[SyncAction] = []
        if now >= self._next_status:
            self._next_status = now + self._params.status_interval_s
            actions += [
                SendTo(peer, encode_message(StatusRequest())) for peer in sorted(self._peer_heights)
            ]
        for start, request in list(self._requests.items()):
            if request.deadline <= now:
                self.counters["request_timeouts"] += 1
                del self._requests[start]
        return actions + self._schedule(now)

    def add_peer(self, peer: bytes, height: int) -> None:
        """Record a peer's height learnt elsewhere (tests; a status from the service)."""
        self._peer_heights[peer] = height

    # -- internals ----------------------------------------------------------------------------

    def _on_blocks(
        self, peer: bytes, start: int, blocks: Sequence[tuple[bytes, bytes]], now: float
    ) -> list[SyncAction]:
        request = self._requests.get(start)
        if request is None or request.peer != peer or len(blocks) > request.count:
            # Late (we already asked again elsewhere) or never asked: not ours to apply.
            self.counters["unsolicited"] += 1
            return []
        del self._requests[start]
        if not blocks:
            # The peer no longer has what it reported (or never had): believe it less.
            self._peer_heights[peer] = min(self._peer_heights.get(peer, 0), start - 1)
        for offset, (block, certificate) in enumerate(blocks):
            height = start + offset
            if height > self._height:
                self._buffer.setdefault(height, (block, certificate, peer))
        self.counters["blocks_received"] += len(blocks)
        return self._drain(now) + self._schedule(now)

    def _drain(self, now: float) -> list[SyncAction]:
        actions: list[SyncAction] = []
        while (entry := self._buffer.pop(self._height + 1, None)) is not None:
            block, certificate, peer = entry
            height = self._height + 1
            try:
                block_hash = self._verifier.verify(height, self._head_hash, block, certificate)
            except PetranodeError:
                actions.append(self._fault(peer, now))
                continue
            self._advance(height, block_hash)
            self.counters["applied"] += 1
            actions.append(Apply(height, block, certificate, block_hash))
        return actions

    def _fault(self, peer: bytes, now: float) -> PeerFaulted:
        self.counters["bad_blocks"] += 1
        self._banned_until[peer] = now + self._params.fault_ban_s
        self._peer_heights.pop(peer, None)
        for height in [h for h, (_, _, p) in self._buffer.items() if p == peer]:
            del self._buffer[height]
        return PeerFaulted(peer, PeerFault.BAD_BLOCK)

    def _advance(self, height: int, block_hash: bytes) -> None:
        self._height = height
        self._head_hash = block_hash
        for h in [h for h in self._buffer if h <= height]:
            del self._buffer[h]
        for start, request in list(self._requests.items()):
            if start + request.count - 1 <= height:
                del self._requests[start]

    def _usable(self, now: float) -> dict[bytes, int]:
        for peer, until in list(self._banned_until.items()):
            if until <= now:
                del self._banned_until[peer]
        return {p: h for p, h in self._peer_heights.items() if p not in self._banned_until}

    def _schedule(self, now: float) -> list[SyncAction]:
        """Ask for the heights in the window that are neither buffered nor requested."""
        peers = self._usable(now)
        target = min(max(peers.values(), default=0), self._height + self._params.window)
        covered = {
            h for r in self._requests.values() for h in range(r.start, r.start + r.count)
        }
        busy = Counter(r.peer for r in self._requests.values())
        actions: list[SyncAction] = []
        height = self._height + 1
        while height <= target:
            if height in self._buffer or height in covered:
                height += 1
                continue
            candidates = [p for p, h in peers.items() if h >= height]
            if not candidates:
                break
            self._rng.shuffle(candidates)
            peer = min(candidates, key=lambda p: busy[p])
            count = 0
            while (
                count < MAX_BATCH
                and height + count <= min(target, peers[peer])
                and height + count not in self._buffer
                and height + count not in covered
            ):
                count += 1
            self._requests[height] = _Request(
                peer, height, count, now + self._params.request_timeout_s
            )
            busy[peer] += 1
            self.counters["requests"] += 1
            actions.append(SendTo(peer, encode_message(BlocksRequest(height, count))))
            height += count
        return actions
