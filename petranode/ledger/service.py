"""The ledger's I/O edge: one single-writer loop over consensus, gossip, sync, pool, store and
wallet (SPEC §4.6; issue 6 items 3–8; CometBFT ``consensus/state.go`` ``receiveRoutine``).

This is the only module of ``petranode.ledger`` that touches asyncio or the clock; every
protocol it runs is a sans-IO machine (:mod:`.consensus`, :mod:`.gossip`, :mod:`.sync`,
:mod:`.mempool`, :mod:`.wallet`) whose actions it executes.

Theory of operation:

* **One writer.** Link handlers, link up/down callbacks and RPC submissions only put events
  on one queue; one task — the loop — takes them in order and is the only code that changes a
  machine or writes the ledger tables. Proof verification and proving (pool admission, a
  block's transactions, the first issuance, a wallet's transfer) run in a worker thread that
  the loop awaits: the writer stays single, and RPC and links keep answering meanwhile
  (libsodium releases the GIL; a 16-output issuance takes a quarter second to verify). Timers are not tasks: the loop waits on the queue until
  the earliest deadline (consensus timeouts, the gossip and sync ticks, the next height's
  start) and then runs what is due — CometBFT's ``timeoutTicker`` as a deadline, not a thread.
* **Consensus.** Validators (genesis keys) run the Tendermint machine; every other node runs
  it as a follower that signs nothing, so it decides from the same proposals and votes.
  Proposals and votes travel as gossip items, relayed once the machine accepted their
  signatures. Before prevoting a proposal the machine asks (:class:`~.consensus.ValidateBlock`)
  whether its transactions apply to a snapshot of the ledger; a block whose transactions do not
  is judged invalid, so it is never prevoted. The answer is kept by transaction root for the
  height, so a later round's block with the same transactions, and the commit, do not verify
  every proof again. On a decision the block, its commit
  certificate and its :class:`~.state.StateDelta` are written in one SQL transaction; then the
  pool drops what the block spent, the wallet scans it, and the next height starts one block
  interval (genesis ``params.block_interval_ms``) after the previous one — or, with
  ``skip_empty_blocks``, once the pool holds a transaction or a proposal for it arrives.
* **Catch-up.** Gossip delivers each item once, and a node that was down, or behind by a
  height, when a proposal or vote passed never sees it again. So a node whose consensus has not
  moved for :data:`CATCH_UP_AFTER_S` asks its peers (``ledger.consensus?``) for what they hold
  of its height and feeds the answer (``ledger.consensus``) to the machine — CometBFT's
  consensus reactor, which re-sends votes a peer lacks, reduced to a request on a stall.
* **Restart safety and evidence.** Before a validator's signed proposal or vote leaves, the
  machine's sign state (what it last signed at this height, and its lock) is written to the
  store's metadata (:data:`SIGN_STATE_KEY`); a restarted validator resumes from it, so it never
  signs a conflicting message nor forgets its lock (CometBFT ``privval`` and WAL). Conflicting
  messages the machine sees are kept in the ledger's ``evidence`` table (``ledger.evidence``).
* **Sync.** After each commit a node tells its peers its height; a node that learns of a
  higher one fetches the missing blocks with their certificates (:mod:`.sync`), verifies each
  certificate against the genesis validators and commits them the same way.
* **Submission.** A wallet's transfer is first checked by the local pool. On a validator it is
  gossiped from there; on a prosumer the node's ``relay`` sends it through the garlic tunnels
  to a validator's destination (SPEC §4.6), whose :meth:`LedgerService.on_garlic_submission`
  pools and gossips it — so no link shows which router a transaction came from.
* **Failure.** A peer's bad message is counted and logged at a bounded rate; the loop goes on.
  Anything else raised in the loop is our bug or a broken store: it is logged at ERROR and
  :meth:`LedgerService.watch` raises it in the node's task group, which stops the node
  (CometBFT halts on a consensus panic rather than run on in an unknown state).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final, NoReturn, Protocol, Self, final

from petranode.clock import Clock
from petranode.crypto.keys import PublicAddress, WalletKeys
from petranode.errors import PetranodeError
from petranode.genesis import Genesis
from petranode.ledger import gossip as gossip_messages
from petranode.ledger import sync as sync_messages
from petranode.ledger.assets import MONEY, Asset
from petranode.ledger.block import ZERO_HASH, Block
from petranode.ledger.consensus import (
    BroadcastProposal,
    BroadcastVote,
    CertificateVerifier,
    Consensus,
    Decide,
    Evidence,
    MakeBlock,
    RecordEvidence,
    SaveSignState,
    ScheduleTimeout,
    SignState,
    Step,
    TimeoutEvent,
    TimeoutParams,
    ValidateBlock,
    decode_proposal_item,
    encode_proposal_item,
)
from petranode.ledger.errors import BlockInvalid, VoteFault, VoteInvalid
from petranode.ledger.extension import LedgerExtension
from petranode.ledger.genesis_money import first_issuance
from petranode.ledger.gossip import Deliver, Gossip, GossipParams, ItemKind, SendTo
from petranode.ledger.mempool import Mempool
from petranode.ledger.p2p_errors import PeerFault, PeerMessageRejected
from petranode.ledger.settings import LedgerConfig
from petranode.ledger.state import (
    LedgerView,
    OutputRecord,
    StateDelta,
    apply_block_txs,
    replay_block_txs,
)
from petranode.ledger.store import LedgerStore
from petranode.ledger.sync import Apply, BlockSync, PeerFaulted, ServeBlocks, SyncParams
from petranode.ledger.tx import BASE_REGISTRY, MAX_TX_BYTES, LedgerParams, Tx, encode_tx
from petranode.ledger.tx_errors import TxRejected
from petranode.ledger.vote import CommitCertificate, Vote
from petranode.ledger.wallet import (
    DecoySource,
    OwnedOutput,
    Wallet,
    build_transfer,
    select_inputs,
)
from petranode.log import RateLimitedLog
from petranode.net.identity import RouterKeys
from petranode.net.link.errors import LinkError
from petranode.net.link.session import Message
from petranode.net.netdb.routerinfo import RouterInfo
from petranode.store.store import Store
from petranode.wire import codec
from petranode.wire.codec import Encodable
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

#: Events queued at most. A full queue makes link handlers wait (each link reads in order),
#: which slows the peers that flood us and nobody else.
MAX_QUEUED_EVENTS: Final = 10_000
#: Seconds one send may wait for a slow peer before we give up on that message.
SEND_TIMEOUT_S: Final = 2.0
#: Seconds between sync rounds (status polls, timed-out block requests).
SYNC_TICK_S: Final = 0.5
#: How far a proposed block's time may be from a validator's clock (ms). Market windows are
#: judged at block time, so a proposer cannot move it far; NTP-synchronised hosts differ by
#: milliseconds, and a proposal reaches every validator within a round's timeout.
MAX_BLOCK_TIME_DRIFT_MS: Final = 5_000
#: Seconds between attempts to link to every validator found in the netDb.
VALIDATOR_DIAL_INTERVAL_S: Final = 1.0
DIAL_TIMEOUT_S: Final = 5.0
#: Outputs read at most to pick decoys for one ring (every output of the asset, up to this).
MAX_DECOY_SOURCE_OUTPUTS: Final = 100_000
#: Transaction bytes one proposed block carries at most: the proposal gossip item (proposal,
#: header, a 5-byte length per transaction) stays under gossip's 960 KiB PROPOSAL bound, and
#: the block under sync's 896 KiB block bound.
MAX_PROPOSAL_TX_BYTES: Final = 832 * 1024
#: Where a validator's last signature and lock are kept (``Store`` metadata), written before
#: every signed message leaves (:class:`~.consensus.SaveSignState`).
SIGN_STATE_KEY: Final = "ledger.sign_state"
#: Consensus catch-up (CometBFT's reactor re-sends votes a peer lacks; our gossip delivers each
#: item once, so a node that was down or behind when a message passed asks for it): a node
#: whose consensus has not moved for this long asks its peers for their messages of its height,
#: and again as long as it stays stuck. A healthy height ends well within it.
CATCH_UP_AFTER_S: Final = 1.5
MSG_CATCH_UP_REQUEST: Final = "ledger.consensus?"
MSG_CATCH_UP: Final = "ledger.consensus"
CATCH_UP_TYPES: Final = (MSG_CATCH_UP_REQUEST, MSG_CATCH_UP)
#: One catch-up answer: under the 1 MiB link message; votes first (small, and what unsticks a
#: round), then proposals while they fit.
MAX_CATCH_UP_BYTES: Final = 900 * 1024
MAX_CATCH_UP_VOTES: Final = 1024
MAX_CATCH_UP_PROPOSALS: Final = 8


class LedgerHalted(PetranodeError):
    """The ledger loop stopped on an unexpected error; the node must stop too."""


class Links(Protocol):
    """What the ledger uses of the link layer (``LinkService``); tests pass a hub in memory."""

    def register(self, t: str, handler: Callable[[bytes, Message], Awaitable[None]]) -> None: ...

    def on_peer_change(self, callback: Callable[[bytes, bool], None]) -> None: ...

    def peers(self) -> list[bytes]: ...

    async def send(self, router_hash: bytes, message: Mapping[str, Encodable]) -> None: ...

    async def connect(self, host: str, port: int, static_key: bytes) -> bytes: ...


class RouterDirectory(Protocol):
    """Where validators' addresses are found (the netDb service)."""

    def routers(self) -> list[RouterInfo]: ...


# -- events -----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class _PeerMessage:
    peer: bytes
    message: Message


@final
@dataclass(frozen=True, slots=True)
class _PeerChange:
    peer: bytes
    linked: bool


@final
@dataclass(frozen=True, slots=True)
class _Wake:
    """Look at the link changes recorded beside the queue."""


@final
@dataclass(frozen=True, slots=True)
class _Submit:
    data: bytes
    key_images: tuple[bytes, ...]
    result: asyncio.Future[bytes] | None
    #: Gossip it from this router. False for a prosumer's own transfer, which leaves through
    #: its garlic tunnels instead, so no link shows where it came from.
    publish: bool = True


_Event = _PeerMessage | _Wake | _Submit
#: Sends an encoded transaction to a validator through garlic (the node supplies it).
Relay = Callable[[bytes], Awaitable[None]]


@final
@dataclass(frozen=True, slots=True)
class _Received:
    """One output the wallet found, for ``wallet.history``."""

    owned: OwnedOutput
    height: int


#: Builds a transaction from the wallet's available outputs, a decoy source and the ring
#: clock (seconds); runs in a worker thread.
TxBuilder = Callable[[Sequence[OwnedOutput], DecoySource, float], Tx]
BeforeSubmit = Callable[[bytes, Tx], Awaitable[None]]
#: Told every committed block's delta, after it is stored (must not block or raise).
CommitListener = Callable[[StateDelta], None]


class _Decoys:
    """The outputs of the assets a transaction spends, as the wallet picks decoys from them."""

    def __init__(self, records: Mapping[bytes, Sequence[OutputRecord]], block_s: float) -> None:
        self._records = {a: {r.global_index: r for r in rs} for a, rs in records.items()}
        self._times = {a: [r.height * block_s for r in rs] for a, rs in records.items()}

    def output_times(self, asset_id: bytes) -> Sequence[float]:
        return self._times.get(asset_id, ())

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self._records.get(asset_id, {}).get(global_index)


@final
class LedgerService:
    """Runs this node's part of the ledger: follows (and, as a validator, makes) the chain."""

    def __init__(
        self,
        *,
        config: LedgerConfig,
        genesis: Genesis,
        router: RouterKeys,
        wallet_keys: WalletKeys,
        is_dso: bool,
        links: Links,
        directory: RouterDirectory,
        store: Store,
        clock: Clock,
        relay: Relay | None = None,
        extension: LedgerExtension | None = None,
    ) -> None:
        config.validate()
        self._config = config
        self._relay = relay
        self._genesis = genesis
        self._router = router
        self._is_dso = is_dso
        self._links = links
        self._directory = directory
        self._store = store
        self._extension = extension
        self._registry = BASE_REGISTRY if extension is None else extension.registry
        self._ledger = LedgerStore(store, extension)
        self._clock = clock
        self._params = LedgerParams.from_genesis(genesis)
        self._block_s = genesis.params.block_interval_ms / 1000
        self._validator_keys = frozenset(v.signing_key for v in genesis.validators)
        self.is_validator = router.identity.signing_key in self._validator_keys
        self._wallet = Wallet(wallet_keys)
        self._received: list[_Received] = []
        self._sent: list[dict[str, Any]] = []
        self._pending_spends: dict[bytes, bytes] = {}  # key image → our pooled tx
        self._spend_lock = asyncio.Lock()
        self._commit_listeners: list[CommitListener] = []
        self._mempool = Mempool(
            self._params, max_txs=config.mempool_max_txs, max_bytes=config.mempool_max_bytes,
            registry=self._registry,
        )
        self._gossip = Gossip(
            GossipParams(
                fanout=config.gossip_fanout,
                request_timeout_s=config.gossip_request_timeout_s,
            )
        )
        self._sync: BlockSync | None = None
        self._events: asyncio.Queue[_Event] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._peer_changes: deque[_PeerChange] = deque()
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: asyncio.Future[BaseException] | None = None
        self._next_gossip = 0.0
        self._next_sync = 0.0
        self.counters: Counter[str] = Counter()
        self._log = RateLimitedLog(log)
        self._height = 0
        self._head_hash = b""
        self._head_time_ms = 0
        self._consensus: Consensus | None = None
        #: Consensus timeouts as a heap of (deadline, sequence, event): deadlines, not tasks.
        self._timeouts: list[tuple[float, int, TimeoutEvent]] = []
        self._timeout_seq = 0
        #: When the next height starts (None while one is being decided).
        self._next_height_at: float | None = None
        #: Transaction lists checked at the height being decided, by their Merkle root (the
        #: header's ``tx_root``, which fixes the list and its order) and the block time they
        #: were judged at: the delta, or None if they do not apply. A later round's block
        #: with the same header, and the decision, reuse it instead of verifying every proof
        #: again.
        self._deltas: dict[tuple[bytes, int], StateDelta | None] = {}
        #: The machine's (height, round, step) and when it last changed: a stall detector.
        self._progress: tuple[int, int, object] = (0, 0, None)
        self._progress_at = 0.0
        self._next_catch_up = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Ready once the ledger is loaded from disk, the wallet has rescanned it and the link
        handlers are registered."""
        log.debug("ledger.start.started")
        self._height = await self._ledger.height()
        self._head_hash = await self._head_hash_at(self._height)
        self._head_time_ms = await self._head_time_at(self._height)
        await self._rescan_wallet()
        self._consensus = Consensus(
            self._validator_list(), self._genesis.network_id,
            TimeoutParams.from_config(self._config),
            signer=self._router if self.is_validator else None,
            height=self._height,
            sign_state=await self._load_sign_state(),
        )
        self._sync = BlockSync(
            self._verifier(),
            height=self._height,
            head_hash=self._head_hash,
            params=SyncParams(request_timeout_s=self._config.sync_request_timeout_s),
        )
        for t in (*gossip_messages.MESSAGE_TYPES, *sync_messages.MESSAGE_TYPES,
                  *CATCH_UP_TYPES):
            self._links.register(t, self._on_link_message)
        self._links.on_peer_change(self._on_peer_change)
        for peer in self._links.peers():
            self._on_peer_change(peer, True)
        self._failed = asyncio.get_running_loop().create_future()
        await self._group.__aenter__()
        self._tasks = [
            self._group.create_task(self._run(), name="ledger-loop"),
            self._group.create_task(self._keep_validators_linked(), name="ledger-dial"),
        ]
        log.info(
            "ledger.ready height=%d validator=%s head=%s",
            self._height, self.is_validator, self._head_hash.hex()[:16],
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    async def watch(self) -> NoReturn:
        """Return never; raise :class:`LedgerHalted` if the loop stops on an error (the node
        runs this in its task group, so a halted ledger stops the node)."""
        assert self._failed is not None
        error = await self._failed
        raise LedgerHalted("the ledger loop stopped; see the error logged before") from error

    # -- what link callbacks and RPC do: queue an event ------------------------------------

    async def _on_link_message(self, peer: bytes, message: Message) -> None:
        await self._events.put(_PeerMessage(peer, message))

    def _on_peer_change(self, peer: bytes, linked: bool) -> None:
        # Called synchronously by the link layer; never blocks. Changes are kept in order
        # apart from the bounded queue, and a wake-up is queued if there is room.
        self._peer_changes.append(_PeerChange(peer, linked))
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(_Wake())

    async def submit(self, data: bytes, key_images: tuple[bytes, ...] = (),
                     publish: bool = True) -> bytes:
        """Admit an encoded transaction to the pool and (``publish``) gossip it; its hash, or
        TxRejected."""
        result: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        await self._events.put(_Submit(data, key_images, result, publish))
        return await result

    def on_garlic_submission(self, sender: bytes, data: bytes) -> None:
        """A transaction a prosumer sent to this validator's destination: pool and gossip it.
        A garlic handler must not wait, so a full queue drops it (the sender's garlic layer
        retried delivery; its wallet may submit again)."""
        if len(data) > MAX_TX_BYTES:
            self.counters["garlic_submissions_oversized"] += 1
            return
        try:
            self._events.put_nowait(_Submit(data, (), None))
        except asyncio.QueueFull:
            self.counters["garlic_submissions_dropped"] += 1
            return
        self.counters["garlic_submissions"] += 1

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._failed is not None
        loop = asyncio.get_running_loop()
        try:
            await self._start(loop.time())
            while True:
                deadline = self._next_deadline()
                event: _Event | None = None
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await self._events.get()
                except TimeoutError:
                    pass
                now = loop.time()
                while self._peer_changes:
                    change = self._peer_changes.popleft()
                    await self._on_link_change(change.peer, change.linked, now)
                if event is not None:
                    await self._handle(event, now)
                await self._run_due(loop.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # supervision: the ledger halts the node (CometBFT)
            log.error("ledger.halted height=%d (our bug or a broken store)", self._height,
                      exc_info=exc)
            if not self._failed.done():
                self._failed.set_result(exc)

    async def _handle(self, event: _Event, now: float) -> None:
        match event:
            case _PeerMessage(peer, message):
                try:
                    await self._on_peer_message(peer, message, now)
                except PeerMessageRejected as exc:
                    self.counters[f"refused.{exc.reason.value}"] += 1
                    self._log.log(logging.INFO, "peer_refused",
                                  "ledger.message.refused peer=%s t=%s reason=%s",
                                  peer.hex()[:16], message.get("t"), exc.reason.value)
            case _Submit(data, key_images, result, publish):
                try:
                    digest = await self._admit(data, now, publish)
                except TxRejected as exc:
                    if result is None:
                        self.counters[f"garlic_submissions_refused_{exc.reason.value}"] += 1
                    elif not result.done():
                        result.set_exception(exc)
                    return
                self._pending_spends.update((ki, digest) for ki in key_images)
                if result is not None and not result.done():
                    result.set_result(digest)
            case _Wake():
                pass
            case _:
                raise AssertionError(event)

    async def _on_peer_message(self, peer: bytes, message: Message, now: float) -> None:
        assert self._sync is not None
        t = message.get("t")
        if t in gossip_messages.MESSAGE_TYPES:
            await self._execute(self._gossip.on_message(peer, message, now), now)
        elif t in sync_messages.MESSAGE_TYPES:
            await self._execute(self._sync.on_message(peer, message, now), now)
        elif t == MSG_CATCH_UP_REQUEST:
            await self._serve_catch_up(peer, _catch_up_height(message, ("t", "height")))
        elif t == MSG_CATCH_UP:
            await self._on_catch_up(message, now)

    async def _on_link_change(self, peer: bytes, linked: bool, now: float) -> None:
        assert self._sync is not None
        await self._execute(self._gossip.on_peer_change(peer, linked, now), now)
        await self._execute(self._sync.on_peer_change(peer, linked, now), now)

    def _next_deadline(self) -> float:
        return min(self._next_gossip, self._next_sync, self._next_consensus_deadline())

    async def _run_due(self, now: float) -> None:
        assert self._sync is not None
        if now >= self._next_gossip:
            self._next_gossip = now + self._config.gossip_interval_ms / 1000
            await self._execute(self._gossip.tick(now), now)
        if now >= self._next_sync:
            self._next_sync = now + SYNC_TICK_S
            await self._execute(self._sync.tick(now), now)
        await self._consensus_due(now)

    # -- executing the machines' actions ---------------------------------------------------------

    async def _execute(self, actions: Sequence[object], now: float) -> None:
        for action in actions:
            match action:
                case SendTo(peer, message):
                    await self._send(peer, message)
                case Deliver(kind, _, data, peer):
                    await self._deliver(kind, data, peer, now)
                case Apply(height, block, certificate, block_hash):
                    await self._commit_certified(height, block, certificate, block_hash, now)
                case ServeBlocks(peer, start, count):
                    await self._serve_blocks(peer, start, count)
                case PeerFaulted(peer, reason):
                    self.counters[f"peer_faulted.{reason.value}"] += 1
                    self._log.log(logging.WARNING, "peer_faulted",
                                  "ledger.sync.peer_faulted peer=%s reason=%s",
                                  peer.hex()[:16], reason.value)
                case ScheduleTimeout(event, deadline):
                    self._timeout_seq += 1
                    heapq.heappush(self._timeouts, (deadline, self._timeout_seq, event))
                case SaveSignState(state):
                    # Before the signed message below it leaves: a restart must not sign
                    # anything that conflicts with it.
                    await self._store.put_meta(SIGN_STATE_KEY, state.encode())
                case BroadcastProposal(proposal, block):
                    item = encode_proposal_item(proposal, block)
                    await self._execute(self._gossip.publish(ItemKind.PROPOSAL, item, now), now)
                case BroadcastVote(vote):
                    await self._execute(
                        self._gossip.publish(ItemKind.VOTE, vote.encode(), now), now)
                case MakeBlock():
                    await self._make_block(action, now)
                case ValidateBlock(height, block):
                    valid = await self._check_block(height, block)
                    await self._execute(
                        self._machine().on_block_verdict(block.hash, valid, now), now)
                case Decide(height, block, certificate):
                    await self._commit_decided(height, block, certificate, now)
                case RecordEvidence(evidence):
                    await self._record_evidence(evidence)
                case _:
                    raise AssertionError(f"unknown action {action!r}")

    async def _send(self, peer: bytes, message: Mapping[str, Encodable]) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await self._links.send(peer, message)
        except (LinkError, TimeoutError, ConnectionError, RuntimeError) as exc:
            # Gossip and sync recover from a lost message (re-requests, timeouts). asyncio
            # raises RuntimeError writing to a transport closed under us (a link going down
            # while we send): that peer's loss, never a reason to halt the ledger.
            self.counters["send_failed"] += 1
            log.debug("ledger.send.failed peer=%s reason=%s", peer.hex()[:16],
                      type(exc).__name__)

    async def _deliver(self, kind: ItemKind, data: bytes, peer: bytes, now: float) -> None:
        """An item gossip fetched for the first time: validate, then relay what is valid."""
        match kind:
            case ItemKind.TX if not self.is_validator:
                # Only validators pool other routers' transactions (to propose them); a
                # follower would verify every proof twice for nothing.
                self.counters["tx_items_ignored"] += 1
            case ItemKind.TX:
                try:
                    await self._admit(data, now)
                except TxRejected as exc:
                    self.counters[f"tx_refused.{exc.reason.value}"] += 1
            case ItemKind.PROPOSAL | ItemKind.VOTE:
                await self._on_consensus_item(kind, data, now)
            case ItemKind.BLOCK:
                # Committed blocks travel by sync (announced by height), not as items.
                self.counters["block_items_ignored"] += 1

    async def _admit(self, data: bytes, now: float, publish: bool = True) -> bytes:
        """Validate ``data`` against the ledger and the pool; pool and (``publish``) gossip it."""
        tx = self._registry.decode(data)
        # The pool judges time windows at the next block's time: now.
        view = await self._ledger.view_for([tx], self._now_ms())
        digest = await asyncio.to_thread(self._mempool.add, data, view)
        if publish:
            await self._execute(self._gossip.publish(ItemKind.TX, data, now), now)
        self.counters["txs_pooled"] += 1
        return digest

    async def _serve_blocks(self, peer: bytes, start: int, count: int) -> None:
        pairs: list[tuple[bytes, bytes]] = []
        for height in range(start, start + count):
            block = await self._ledger.block_at(height)
            certificate = await self._ledger.certificate_at(height)
            if block is None or certificate is None:
                break
            pairs.append((block, certificate))
        await self._send(peer, sync_messages.blocks_message(start, pairs))

    # -- committing -----------------------------------------------------------------------------

    async def _apply(self, height: int, block: bytes) -> StateDelta:
        """The delta of ``block``'s transactions on the ledger as it stands (height − 1)."""
        decoded = Block.decode(block)
        return await self._apply_txs(height, decoded.txs, decoded.header.time_ms)

    async def _apply_txs(self, height: int, txs: Sequence[bytes], time_ms: int) -> StateDelta:
        """The delta of the next block's ``txs`` at block time ``time_ms``, or
        ``TxRejected``."""
        if height != self._height + 1:
            raise ValueError(f"block {height} does not follow {self._height}")
        decoded = [self._registry.decode(data) for data in txs]
        view = await self._ledger.view_for(decoded, time_ms)
        return await asyncio.to_thread(self._validate_block_txs, view, txs)

    def _validate_block_txs(self, view: LedgerView, txs: Sequence[bytes]) -> StateDelta:
        delta = apply_block_txs(view, txs, self._params, self._registry, verified=self._mempool)
        if self._extension is None:
            return delta
        return replace(delta, effects=self._extension.effects(view, delta.txs))

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    async def _commit(
        self, height: int, block: bytes, block_hash: bytes, certificate: bytes, round_: int,
        delta: StateDelta, now: float,
    ) -> None:
        """Write a final block and everything it changes in one SQL transaction, then update
        the pool, the wallet and the peers."""
        await self._ledger.commit_block(
            block=block, block_hash=block_hash, certificate=certificate, delta=delta,
            round=round_,
        )
        self._height, self._head_hash = height, block_hash
        self._head_time_ms = Block.decode(block).header.time_ms
        self.counters["blocks_committed"] += 1
        self.counters["txs_committed"] += len(delta.txs)
        log.debug("ledger.committed height=%d hash=%s txs=%d", height, block_hash.hex()[:16],
                  len(delta.txs))
        self._mempool.update(delta)
        self._absorb(delta)
        for listener in self._commit_listeners:
            listener(delta)
        for key_image, _ in delta.spent:
            self._pending_spends.pop(key_image, None)
        # Announce by height: peers that are behind fetch the block from us (sync).
        status = sync_messages.encode_message(sync_messages.Status(height))
        for peer in self._gossip.peers:
            await self._send(peer, status)

    async def _commit_certified(
        self, height: int, block: bytes, certificate: bytes, block_hash: bytes, now: float
    ) -> None:
        """A block sync fetched and verified: certified by the validators, so it must apply."""
        delta = await self._apply(height, block)
        await self._commit(height, block, block_hash, certificate, _certificate_round(certificate),
                           delta, now)
        await self._consensus_committed(height, now)

    def _absorb(self, delta: StateDelta) -> None:
        for owned in self._wallet.scan(delta):
            self._received.append(_Received(owned, delta.height))

    async def _rescan_wallet(self) -> None:
        """Rebuild the wallet from the stored blocks. The wallet keeps nothing on disk, so a
        restart replays the blocks it stored (validated when they were committed)."""
        counts: dict[bytes, int] = {}
        for height in range(1, self._height + 1):
            block = await self._ledger.block_at(height)
            if block is None:
                raise LedgerHalted(f"block {height} missing from the store")
            delta = replay_block_txs(height, _block_txs(block),
                                     lambda asset_id: counts.get(asset_id, 0), self._registry)
            for out in delta.outputs:
                counts[out.asset_id] = out.global_index + 1
            self._absorb(delta)

    async def _head_time_at(self, height: int) -> int:
        if height == 0:
            return 0
        block = await self._ledger.block_at(height)
        if block is None:
            raise LedgerHalted(f"block {height} missing from the store")
        return Block.decode(block).header.time_ms

    async def _head_hash_at(self, height: int) -> bytes:
        if height == 0:
            return _genesis_head(self._genesis)
        digest = await self._ledger.block_hash_at(height)
        if digest is None:
            raise LedgerHalted(f"block {height} missing from the store")
        return digest

    # -- consensus --------------------------------------------------------------------------------

    def _machine(self) -> Consensus:
        assert self._consensus is not None, "the ledger service is not entered"
        return self._consensus

    def _validator_list(self) -> list[bytes]:
        return [v.signing_key for v in self._genesis.validators]

    def _verifier(self) -> CertificateVerifier:
        return CertificateVerifier(self._validator_list(), self._genesis.network_id)

    async def _load_sign_state(self) -> SignState | None:
        """What this validator signed last before a restart (nothing for a follower)."""
        if not self.is_validator:
            return None
        raw = await self._store.get_meta(SIGN_STATE_KEY)
        if raw is None:
            return None
        try:
            return SignState.decode(raw)
        except DecodeError as exc:
            # Our own file: refuse to guess, as running without it could double-sign.
            raise LedgerHalted("the stored consensus sign state is corrupt") from exc

    async def _start(self, now: float) -> None:
        """The loop's first step: the DSO pools the first issuance; the next height starts."""
        await self._submit_first_issuance(now)
        self._next_height_at = now

    def _waiting_for_txs(self) -> bool:
        """With ``skip_empty_blocks``, a height starts only once there is something to
        decide: a pooled transaction, or a peer's proposal or vote for it."""
        return (self._config.skip_empty_blocks and len(self._mempool) == 0
                and not self._machine().has_future(self._height + 1))

    def _next_consensus_deadline(self) -> float:
        deadline = self._timeouts[0][0] if self._timeouts else math.inf
        if self._next_height_at is not None and not self._waiting_for_txs():
            deadline = min(deadline, self._next_height_at)
        return deadline

    async def _consensus_due(self, now: float) -> None:
        machine = self._machine()
        if (self._next_height_at is not None and now >= self._next_height_at
                and not self._waiting_for_txs()):
            self._next_height_at = None
            self._timeouts.clear()
            self._deltas.clear()
            await self._execute(machine.start_height(
                self._height + 1, self._head_hash, self._head_time_ms, now), now)
        while self._timeouts and self._timeouts[0][0] <= now:
            _, _, event = heapq.heappop(self._timeouts)
            await self._execute(machine.on_timeout(event, now), now)
        await self._catch_up_if_stuck(now)

    async def _catch_up_if_stuck(self, now: float) -> None:
        machine = self._machine()
        if machine.progress != self._progress:
            self._progress, self._progress_at = machine.progress, now
            return
        if (machine.step in (Step.NEW_HEIGHT, Step.COMMIT)
                or now - self._progress_at < CATCH_UP_AFTER_S or now < self._next_catch_up):
            return
        self._next_catch_up = now + CATCH_UP_AFTER_S
        self.counters["catch_up_requests"] += 1
        request: dict[str, Encodable] = {"t": MSG_CATCH_UP_REQUEST, "height": machine.height}
        for peer in sorted(self._gossip.peers):
            await self._send(peer, request)

    async def _serve_catch_up(self, peer: bytes, height: int) -> None:
        """A stuck peer asks for our proposals and votes of ``height``."""
        machine = self._machine()
        if height != machine.height:
            return
        proposals, votes = machine.catch_up()
        budget = MAX_CATCH_UP_BYTES
        vote_items: list[bytes] = []
        for vote in votes[:MAX_CATCH_UP_VOTES]:
            data = vote.encode()
            if len(data) > budget:
                break
            budget -= len(data)
            vote_items.append(data)
        proposal_items: list[bytes] = []
        for proposal, block in proposals[:MAX_CATCH_UP_PROPOSALS]:
            data = encode_proposal_item(proposal, block)
            if len(data) <= budget:
                budget -= len(data)
                proposal_items.append(data)
        self.counters["catch_up_served"] += 1
        await self._send(peer, {"t": MSG_CATCH_UP, "height": height,
                                "proposals": proposal_items, "votes": vote_items})

    async def _on_catch_up(self, message: Message, now: float) -> None:
        height = _catch_up_height(message, ("t", "height", "proposals", "votes"))
        proposals = _catch_up_items(message["proposals"], MAX_CATCH_UP_PROPOSALS)
        votes = _catch_up_items(message["votes"], MAX_CATCH_UP_VOTES)
        if height != self._machine().height:
            return
        for data in proposals:
            await self._on_consensus_item(ItemKind.PROPOSAL, data, now)
        for data in votes:
            await self._on_consensus_item(ItemKind.VOTE, data, now)

    def _consensus_round(self) -> int:
        return self._machine().round

    async def _on_consensus_item(self, kind: ItemKind, data: bytes, now: float) -> None:
        """A proposal or vote gossip fetched: to the machine; relayed if it was acceptable."""
        machine = self._machine()
        try:
            if kind is ItemKind.PROPOSAL:
                proposal, block = decode_proposal_item(data)
                actions = machine.on_proposal(proposal, block, now)
            else:
                actions = machine.on_vote(Vote.decode(data), now)
        except DecodeError:
            self.counters["consensus_refused.malformed"] += 1
            return
        except (VoteInvalid, BlockInvalid) as exc:
            self.counters[f"consensus_refused.{exc.reason.value}"] += 1
            # A message for another height is a peer ahead or behind, not a fault.
            level = logging.DEBUG if exc.reason is VoteFault.WRONG_HEIGHT else logging.INFO
            self._log.log(level, "consensus_refused", "ledger.consensus.refused kind=%s "
                          "reason=%s", kind.value, exc.reason.value)
            return
        await self._execute(self._gossip.publish(kind, data, now), now)
        await self._execute(actions, now)

    async def _check_block(self, height: int, block: Block) -> bool:
        """Whether a proposed block's transactions apply to the ledger (the machine prevotes
        nil otherwise); remembers the delta for the commit."""
        if height != self._height + 1:
            return False
        key = (block.header.tx_root, block.header.time_ms)
        if key in self._deltas:
            self.counters["block_checks_reused"] += 1
            return self._deltas[key] is not None
        if not self._block_time_plausible(block):
            self.counters["block_refused.time"] += 1
            self._log.log(logging.INFO, "block_refused",
                          "ledger.block.refused height=%d hash=%s reason=time", height,
                          block.hash.hex()[:16])
            return False
        try:
            self._deltas[key] = await self._apply_txs(height, block.txs, block.header.time_ms)
        except TxRejected as exc:
            self._deltas[key] = None
            self.counters[f"block_refused.{exc.reason.value}"] += 1
            self._log.log(logging.INFO, "block_refused",
                          "ledger.block.refused height=%d hash=%s reason=%s", height,
                          block.hash.hex()[:16], exc.reason.value)
            return False
        return True

    async def _make_block(self, request: MakeBlock, now: float) -> None:
        """Our turn to propose: the pool's best transactions that apply, as a block."""
        txs = self._mempool.reap(self._config.max_block_txs, MAX_PROPOSAL_TX_BYTES)
        time_ms = max(request.min_time_ms, self._now_ms())
        try:
            delta = await self._apply_txs(request.height, txs, time_ms)
        except TxRejected:
            # A pooled transaction no longer applies: a block spent what it spends, or its
            # time window closed. Keep the ones that apply, without conflicts.
            txs = await self._applicable(request.height, txs, time_ms)
            delta = await self._apply_txs(request.height, txs, time_ms)
        block = Block.build(
            network_id=self._genesis.network_id, height=request.height, round=request.round,
            time_ms=time_ms, prev_hash=request.prev_hash, proposer=request.proposer, txs=txs,
        )
        self._deltas[(block.header.tx_root, time_ms)] = delta
        log.debug("ledger.propose height=%d round=%d txs=%d", request.height, request.round,
                  len(txs))
        await self._execute(self._machine().propose(block, now), now)

    async def _applicable(self, height: int, txs: Sequence[bytes], time_ms: int) -> list[bytes]:
        """The longest prefix-greedy selection of ``txs`` that applies; the pool forgets the
        others (they will not apply later either: spent inputs and closed windows stay so)."""
        kept: list[bytes] = []
        for data in txs:
            try:
                await self._apply_txs(height, [*kept, data], time_ms)
            except TxRejected as exc:
                self.counters[f"proposal_dropped.{exc.reason.value}"] += 1
                self._mempool.evict(hashlib.sha256(data).digest())
                continue
            kept.append(data)
        return kept

    def _block_time_plausible(self, block: Block) -> bool:
        """A proposed block's time is within :data:`MAX_BLOCK_TIME_DRIFT_MS` of our clock; a
        block proposed again in a later round (Tendermint's valid value) keeps its older time,
        so only the future bound applies to it."""
        now_ms = self._now_ms()
        if block.header.time_ms > now_ms + MAX_BLOCK_TIME_DRIFT_MS:
            return False
        fresh = block.header.round == self._consensus_round()
        return not fresh or block.header.time_ms >= now_ms - MAX_BLOCK_TIME_DRIFT_MS

    async def _commit_decided(
        self, height: int, block: Block, certificate: CommitCertificate, now: float
    ) -> None:
        """Our consensus decided ``height``: commit it (unless sync already did)."""
        if height != self._height + 1:
            self.counters["decisions_stale"] += 1
            return
        delta = self._deltas.get((block.header.tx_root, block.header.time_ms)) or \
            await self._apply_txs(height, block.txs, block.header.time_ms)
        await self._commit(height, block.encode(), block.hash, certificate.encode(),
                           certificate.round, delta, now)
        assert self._sync is not None
        await self._execute(self._sync.committed(height, block.hash, now), now)
        self._next_height(now)

    async def _consensus_committed(self, height: int, now: float) -> None:
        """Sync committed ``height`` from a certificate: consensus moves past it."""
        self._machine().finish_height(height)
        self._next_height(now)

    def _next_height(self, now: float) -> None:
        """Start the next height one block interval (genesis) after this commit."""
        self._deltas.clear()
        self._timeouts.clear()
        self._next_height_at = now + self._block_s

    async def _record_evidence(self, evidence: Evidence) -> None:
        self.counters["evidence"] += 1
        if await self._ledger.add_evidence(evidence.height, evidence.encode()):
            log.warning("ledger.evidence.recorded kind=%s height=%d validator=%s",
                        evidence.kind.name.lower(), evidence.height,
                        self._genesis.validators[evidence.validator].name)

    async def evidence(self) -> list[dict[str, Any]]:
        """Conflicting signed messages kept (``ledger.evidence``), oldest first."""
        out: list[dict[str, Any]] = []
        for raw in await self._ledger.evidence():
            try:
                evidence = Evidence.decode(raw)
            except DecodeError:
                continue
            entry = evidence.to_json()
            entry["validator_name"] = self._genesis.validators[evidence.validator].name \
                if evidence.validator < len(self._genesis.validators) else None
            out.append(entry)
        return out

    # -- the DSO's first issuance -----------------------------------------------------------------

    async def _submit_first_issuance(self, now: float) -> None:
        """While the ledger is empty, the DSO pools the deterministic first issuance (a restart
        pools the same bytes again, which the ledger cannot accept twice)."""
        if not (self._is_dso and self._config.genesis_issuance and self._height == 0):
            return
        txs = await asyncio.to_thread(
            first_issuance,
            self._router,
            self._config.issuance_addresses(),
            self._wallet.keys.address,
            self._config.genesis_issuance_amount,
            min_ring_size=self._params.min_ring_size,
            network_id=self._genesis.network_id,
            seed=self._wallet.keys.spend_secret.raw,
        )
        for tx in txs:
            try:
                await self._admit(encode_tx(tx), now)
            except TxRejected as exc:
                log.info("ledger.first_issuance.refused reason=%s", exc.reason.value)
        log.info("ledger.first_issuance.pooled txs=%d recipients=%d", len(txs),
                 len(self._config.genesis_issuance))

    # -- links to the validators -----------------------------------------------------------------

    async def _keep_validators_linked(self) -> None:
        """Dial every validator the netDb knows and we are not linked to. Bootstrap links only
        reach the authorities; consensus must not depend on one of them being up."""
        own = self._router.router_hash
        while True:
            linked = set(self._links.peers())
            for info in self._directory.routers():
                if (info.identity.signing_key not in self._validator_keys
                        or info.key == own or info.key in linked):
                    continue
                for address in info.addresses:
                    if address.transport != "tcp":
                        continue
                    try:
                        async with asyncio.timeout(DIAL_TIMEOUT_S):
                            await self._links.connect(address.host, address.port,
                                                      info.identity.static_key)
                        break
                    except (LinkError, OSError, TimeoutError) as exc:
                        log.debug("ledger.dial.failed router=%s reason=%s",
                                  info.key.hex()[:16], type(exc).__name__)
            await asyncio.sleep(VALIDATOR_DIAL_INTERVAL_S)

    # -- what ledger.* and wallet.* RPCs read -------------------------------------------------------

    def status(self) -> dict[str, Any]:
        assert self._sync is not None
        return {
            "height": self._height,
            "head_hash": self._head_hash.hex(),
            "validators": [v.name for v in self._genesis.validators],
            "round": self._consensus_round(),
            "step": self._machine().step.name.lower(),
            "locked_round": self._machine().locked_round,
            "evidence": len(self._machine().evidence),
            "validator": self.is_validator,
            "syncing": self._sync.behind,
            "mempool": len(self._mempool),
            "peers": len(self._gossip.peers),
            "counters": dict(sorted(self.counters.items())),
            "gossip": self._gossip.stats(),
            "sync": self._sync.stats(),
        }

    async def block(self, height: int) -> dict[str, Any] | None:
        data = await self._ledger.block_at(height)
        if data is None:
            return None
        digest = await self._ledger.block_hash_at(height)
        certificate = await self._ledger.certificate_at(height)
        return {
            "height": height,
            "hash": digest.hex() if digest else None,
            "txs": [h.hex() for h in await self._ledger.block_tx_hashes(height)],
            "size": len(data),
            "certificate": certificate.hex() if certificate else None,
            **_block_summary(data),
        }

    async def tx(self, digest: bytes) -> dict[str, Any] | None:
        data = await self._ledger.tx(digest)
        if data is not None:
            return {"hash": digest.hex(), "status": "final", "data": data.hex()}
        pooled = self._mempool.get(digest)
        if pooled is not None:
            return {"hash": digest.hex(), "status": "pending", "data": pooled.hex()}
        return None

    def wallet_address(self) -> str:
        return self._wallet.keys.address.encode()

    def wallet_balance(self) -> dict[str, int]:
        assets = {r.owned.asset_id for r in self._received} | {MONEY.asset_id}
        return {_asset_label(a): self._wallet.balance(a) for a in sorted(assets)}

    def wallet_history(self) -> list[dict[str, Any]]:
        unspent = {
            o.key_image.point.raw
            for a in {r.owned.asset_id for r in self._received}
            for o in self._wallet.unspent(a)
        }
        received = [
            {
                "direction": "in",
                "height": r.height,
                "tx": r.owned.record.tx_hash.hex(),
                "asset": _asset_label(r.owned.asset_id),
                "amount": r.owned.amount,
                "spent": r.owned.key_image.point.raw not in unspent,
            }
            for r in self._received
        ]
        return received + list(self._sent)

    def _release(self, key_images: Sequence[bytes]) -> None:
        """Undo the reservation of a transfer that was not pooled."""
        for ki in key_images:
            if self._pending_spends.get(ki) == _RESERVED:
                del self._pending_spends[ki]

    async def wallet_transfer(self, to: PublicAddress, amount: int, asset: Asset) -> bytes:
        """Build a private transfer from this wallet's unspent outputs and submit it; its hash
        once the pool took it."""
        asset_id = asset.asset_id

        def build(available: Sequence[OwnedOutput], decoys: DecoySource, now: float) -> Tx:
            return build_transfer(
                self._wallet.keys, select_inputs(available, asset_id, amount), to, amount,
                asset_id, 0, decoys, network_id=self._genesis.network_id,
                min_ring_size=self._params.min_ring_size, now=now,
                # Every committed output is final and may be a ring member of the next block.
                unlock_time=0.0, random_source=random.SystemRandom(),
            )

        digest = await self.wallet_spend(build, (asset_id,))
        self._sent.append({"direction": "out", "tx": digest.hex(),
                           "asset": _asset_label(asset_id), "amount": amount,
                           "height_submitted": self._height})
        log.info("wallet.transfer.submitted tx=%s", digest.hex()[:16])
        return digest

    async def wallet_spend(self, build: TxBuilder, assets: Sequence[bytes],
                           before_submit: BeforeSubmit | None = None) -> bytes:
        """Build a transaction with ``build`` from this wallet's unspent outputs of
        ``assets`` that no pooled transaction of ours spends, and submit it (a prosumer's
        through garlic); its hash once our pool took it.

        Builds run one at a time and reserve what they spend before the next starts, so
        concurrent spends never pick the same output. ``before_submit`` gets the hash and the
        transaction before it leaves (to persist what a crash must not forget).
        """
        async with self._spend_lock:
            available = [o for a in assets for o in self._wallet.unspent(a)
                         if o.key_image.point.raw not in self._pending_spends]
            decoys = _Decoys(
                {a: await self._ledger.outputs_of(a, 0, MAX_DECOY_SOURCE_OUTPUTS)
                 for a in {o.asset_id for o in available}},
                self._block_s,
            )
            tx = await asyncio.to_thread(build, available, decoys, self._height * self._block_s)
            key_images = tx.key_images()
            self._pending_spends.update((ki, _RESERVED) for ki in key_images)
        data = encode_tx(tx)
        try:
            if before_submit is not None:
                await before_submit(hashlib.sha256(data).digest(), tx)
            if self._relay is not None:
                # A prosumer's transaction leaves through its garlic tunnels to a validator's
                # destination, which gossips it (SPEC §4.6); sent first, so a destination not
                # yet found leaves nothing behind in our pool. Our pool then tracks it.
                await self._relay(data)
            return await self.submit(data, key_images, publish=self._relay is None)
        except BaseException:
            self._release(key_images)
            raise

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener`` with each block's delta once the block is stored."""
        self._commit_listeners.append(listener)

    @property
    def head_time_ms(self) -> int:
        return self._head_time_ms

    def abandon(self, digest: bytes) -> bool:
        """Forget our pooled transaction ``digest`` that will not be final (its window
        closed): drop it from the pool and free what it reserved. False if not pooled."""
        for key_image in [ki for ki, holder in self._pending_spends.items() if holder == digest]:
            del self._pending_spends[key_image]
        return self._mempool.evict(digest)

    def wallet_unspent(self, asset_id: bytes) -> list[OwnedOutput]:
        """This wallet's outputs of ``asset_id`` that no pooled transaction of ours spends."""
        return [o for o in self._wallet.unspent(asset_id)
                if o.key_image.point.raw not in self._pending_spends]

    @property
    def wallet_keys(self) -> WalletKeys:
        return self._wallet.keys

    @property
    def params(self) -> LedgerParams:
        return self._params


#: Marks a key image in ``_pending_spends`` whose transfer is being submitted.
_RESERVED: Final = b""


def _catch_up_height(message: Message, keys: tuple[str, ...]) -> int:
    if set(message) != set(keys):
        raise PeerMessageRejected(PeerFault.MALFORMED, "fields")
    try:
        return codec.expect_int(message["height"], 1, 2**62, what="height")
    except DecodeError as exc:
        raise PeerMessageRejected(PeerFault.MALFORMED, exc.reason.value) from exc


def _catch_up_items(value: codec.Value, most: int) -> list[bytes]:
    try:
        items = codec.expect_list(value, what="items")
        if len(items) > most:
            raise PeerMessageRejected(PeerFault.OVERSIZED, "catch-up items")
        return [codec.expect_bytes(item, what="item") for item in items]
    except DecodeError as exc:
        raise PeerMessageRejected(PeerFault.MALFORMED, exc.reason.value) from exc


def _genesis_head(genesis: Genesis) -> bytes:
    """The previous-block hash of height 1 (``block.ZERO_HASH``, as CometBFT leaves it empty);
    the network is named by the genesis through every header's ``network_id``."""
    return ZERO_HASH


def _block_txs(block: bytes) -> tuple[bytes, ...]:
    return Block.decode(block).txs


def _certificate_round(certificate: bytes) -> int:
    return CommitCertificate.decode(certificate).round


def _block_summary(data: bytes) -> dict[str, Any]:
    header = Block.decode(data).header
    return {
        "round": header.round,
        "time_ms": header.time_ms,
        "prev_hash": header.prev_hash.hex(),
        "tx_root": header.tx_root.hex(),
        "proposer": header.proposer,
    }


def _asset_label(asset_id: bytes) -> str:
    return "money" if asset_id == MONEY.asset_id else asset_id.hex()
