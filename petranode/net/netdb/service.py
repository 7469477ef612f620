"""The netDb service: a Kademlia DHT over UDP that only ever holds valid records (SPEC §4.3, §5).

The only module that imports the ``kademlia`` package. From it we use what it does well — the
routing table of k-buckets (``routing.py``), node distance and heaps (``node.py``), the
iterative node and value crawls (``crawling.py``) and the RPC handlers' bucket upkeep
(``protocol.py``) — and we replace what a signed, permissioned netDb cannot accept:

* **Storage.** kademlia stores opaque values in a ``ForgetfulStorage``. Ours is
  :class:`_TableStorage`, a view of the validated :class:`~petranode.net.netdb.table.RecordTable`:
  every write goes through the record validator and the newest-wins rule, every read (a
  FIND_VALUE we answer, a value we push to a new neighbour) sees only unexpired valid records.
* **Lookups.** :class:`ValueSpiderCrawl` would return whatever value most peers sent, and ask the
  nearest peer without it to store it. We hand the crawl :class:`_ValueFinder` as its protocol:
  each value a peer returns is validated into the table first; an invalid one counts as "no value
  here" so the crawl keeps looking. The answer is then read from the table, so a lookup returns
  the newest valid record any peer had, never an unvalidated byte string.
* **Datagrams.** rpcudp (under kademlia) parses each datagram in a fire-and-forget task,
  dispatches ``rpc_<name>`` by ``getattr`` on any arguments, trusts response shapes and logs
  payloads. :class:`_DhtProtocol` is the narrow subclass of ``KademliaProtocol`` that replaces
  that layer — kademlia has no hook between the socket and its handlers, so a subclass is the
  only place to put one: datagrams are parsed strictly (:mod:`.datagram`), bad ones counted and
  dropped, requests answered synchronously (no task per datagram), responses matched to the call
  that is waiting and checked against the method's shape, and each call awaited under a timeout.
  It also overrides ``rpc_store`` (to answer with the validation outcome and never log the
  value) and ``welcome_if_new`` (to queue pushes to a bounded queue served by our task group
  instead of ``ensure_future``, and to measure closeness to the stored key itself — kademlia
  hashes the already-hashed key again there). The one kademlia ``ensure_future`` left is
  ``RoutingTable.add_contact`` pinging a full bucket's head; that call is our ``_call``, bounded
  by the RPC timeout.

DHT addressing: Kademlia ids are 160 bits, so a node's id is the first 20 bytes of its router
hash and a record lives under the first 20 bytes of its key (``records.MIN_KEY_BYTES``); the
validator checks the whole key against that prefix. Node ids are not authenticated (anyone
may claim one); the records are, so the worst a lying node can do is withhold, never forge.

Lifecycle (STYLE: supervision): ``__aenter__`` reloads persisted records, binds the socket,
validates our own RouterInfo and starts the loops — refresh/bootstrap, publication, sweep,
persistence, pushes — in one ``asyncio.TaskGroup``; it returns once the socket is bound.
Bootstrap pings the genesis authorities' netDb addresses with jittered backoff until one answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar, assert_never, final

from kademlia.crawling import NodeSpiderCrawl, ValueSpiderCrawl
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from petranode.clock import Clock
from petranode.genesis import Genesis
from petranode.log import RateLimitedLog
from petranode.net.bootstrap.policy import Backoff
from petranode.net.cert import RouterCertificate
from petranode.net.identity import RouterKeys
from petranode.net.netdb import datagram, store
from petranode.net.netdb.datagram import BadDatagram, DatagramFault, Method, Request, Response
from petranode.net.netdb.errors import RecordInvalid, RejectReason
from petranode.net.netdb.leaseset import LeaseSet
from petranode.net.netdb.records import MIN_KEY_BYTES, Record, RecordKind, ValidationPolicy
from petranode.net.netdb.routerinfo import Address, RouterInfo, sign_routerinfo
from petranode.net.netdb.settings import NetDbConfig
from petranode.net.netdb.table import Entry, RecordTable
from petranode.store.errors import StorageError
from petranode.store.store import Store
from petranode.wire import codec

log = logging.getLogger(__name__)

#: First republication delay after joining (seconds); it doubles up to ``republish_s``.
EARLY_REPUBLISH_S: Final = 5.0
#: Pushes of stored records to newly met neighbours waiting to be sent; beyond this they are
#: dropped (the owners republish anyway), so a burst of new contacts cannot grow memory.
MAX_PENDING_PUSHES: Final = 256
#: Rate limit of peer-caused log lines: at most this many per kind per window.
#: The value our lookup crawl sees in place of a validated record (see _ValueFinder).
_FOUND: Final = b"found"

NETDB_MIGRATIONS: Final = store.NETDB_MIGRATIONS
_T = TypeVar("_T")


def dht_key(key: bytes) -> bytes:
    """The 160-bit DHT address of a 32-byte netDb key."""
    return key[:MIN_KEY_BYTES]


@final
class _TableStorage:
    """kademlia's storage interface (``IStorage``) over the validated table.

    Writes are offers: validated, counted, kept only if they win. Reads return only unexpired
    valid records. ``iter_older_than`` is empty: records are republished by the routers and
    destinations that sign them, never re-stored by whoever happens to hold a copy.
    """

    def __init__(self, table: RecordTable, clock: Clock,
                 on_stored: Callable[[Entry], None], rate_log: RateLimitedLog) -> None:
        self._table = table
        self._clock = clock
        self._on_stored = on_stored
        self._log = rate_log

    def offer(self, dkey: bytes, value: codec.Value, origin: str) -> RejectReason | None:
        """Validate ``value`` stored or found under ``dkey``; None if it is valid and held."""
        reason = RejectReason.GARBAGE
        if not isinstance(value, bytes):
            self._table.rejections[reason] += 1
        else:
            try:
                offered = self._table.offer(value, dkey, self._clock.time())
            except RecordInvalid as exc:
                reason = exc.reason
            else:
                if offered.stored:
                    self._on_stored(offered.entry)
                return None
        self._log.log(logging.INFO, f"reject.{reason.value}",
                      "netdb.record.rejected reason=%s key=%s from=%s", reason.value,
                      dkey.hex()[:16], origin)
        return reason

    def get(self, dkey: bytes, default: bytes | None = None) -> bytes | None:
        entry = self._table.get(dkey, self._clock.time())
        return entry.data if entry is not None else default

    def __getitem__(self, dkey: bytes) -> bytes:
        data = self.get(dkey)
        if data is None:
            raise KeyError(dkey)
        return data

    def __setitem__(self, dkey: bytes, value: bytes) -> None:
        self.offer(dkey, value, "local")

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter([(dht_key(k), e.data) for k, e in self._table.entries(self._clock.time())])

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, bytes]]:
        return []


class _DhtProtocol(KademliaProtocol):  # type: ignore[misc]  # kademlia is untyped
    """KademliaProtocol with rpcudp's datagram layer replaced (see the module docstring)."""

    def __init__(self, node: Any, storage: _TableStorage, ksize: int, *, rpc_timeout_s: float,
                 bad_datagrams: Counter[DatagramFault], push: Callable[[Any, bytes], None],
                 rate_log: RateLimitedLog) -> None:
        super().__init__(node, storage, ksize)
        self._records = storage
        self._rpc_timeout_s = rpc_timeout_s
        self._bad = bad_datagrams
        self._push = push
        self._log = rate_log
        self._calls: dict[bytes, tuple[asyncio.Future[codec.Value], Method, Any]] = {}

    # -- receiving ---------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = datagram.parse(data)
        except BadDatagram as exc:
            self._drop(exc.reason, addr)
            return
        try:
            match message:
                case Request():
                    answer = self._answer(message, addr)
                    self.transport.sendto(datagram.encode_response(message.msg_id, answer), addr)
                case Response():
                    self._resolve(message, addr)
                case _:
                    assert_never(message)
        except Exception:
            # Our bug, not the peer's: log it, count it, keep serving everyone else.
            self._bad[DatagramFault.MALFORMED] += 1
            log.exception("netdb.datagram.failed from=%s:%s", *addr[:2])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for a peer that went away: its calls time out on their own.
        log.debug("netdb.socket.error %s", type(exc).__name__)

    def _answer(self, request: Request, addr: Any) -> codec.Encodable:
        answer: codec.Encodable
        match request.method:
            case Method.PING:
                answer = self.rpc_ping(addr, request.node_id)
            case Method.STORE:
                answer = self.rpc_store(addr, request.node_id, request.key, request.value)
            case Method.FIND_NODE:
                answer = self.rpc_find_node(addr, request.node_id, request.key)
            case Method.FIND_VALUE:
                answer = self.rpc_find_value(addr, request.node_id, request.key)
            case _:
                assert_never(request.method)
        return answer

    def _resolve(self, response: Response, addr: Any) -> None:
        waiting = self._calls.get(response.msg_id)
        if waiting is None or waiting[2] != tuple(addr[:2]):
            # Late (the call timed out), or from someone we did not ask.
            self._drop(DatagramFault.BAD_RESPONSE, addr)
            return
        future, method, _ = waiting
        try:
            value = datagram.check_response(method, response.value)
        except BadDatagram as exc:
            self._drop(exc.reason, addr)
            return
        if not future.done():
            future.set_result(value)

    def _drop(self, fault: DatagramFault, addr: Any) -> None:
        self._bad[fault] += 1
        self._log.log(logging.INFO, f"datagram.{fault.value}",
                      "netdb.datagram.dropped reason=%s from=%s:%s", fault.value, *addr[:2])

    def rpc_store(self, sender: Any, nodeid: bytes, key: bytes, value: codec.Value) -> bool:
        """STORE: welcome the sender, then offer the value to the validated table."""
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        return self._records.offer(key, value, f"{sender[0]}:{sender[1]}") is None

    def welcome_if_new(self, node: Any) -> None:
        """Kademlia §2.5: hand a new contact the records it is now among the closest to."""
        if not self.router.is_new_node(node):
            return
        for dkey, _ in self._records:
            keynode = Node(dkey)
            neighbors = self.router.find_neighbors(keynode)
            if neighbors:
                last = neighbors[-1].distance_to(keynode)
                first = neighbors[0].distance_to(keynode)
                closer = node.distance_to(keynode) < last
                we_are_closest = self.source_node.distance_to(keynode) < first
            if not neighbors or (closer and we_are_closest):
                self._push(node, dkey)
        self.router.add_contact(node)

    # -- calling -----------------------------------------------------------------------

    async def _call(self, method: Method, address: Any, *args: codec.Encodable
                    ) -> tuple[bool, codec.Value]:
        """One RPC: ``(True, answer)``, or ``(False, None)`` if none came in time (the shape
        kademlia's ``call_*`` and crawls expect from rpcudp)."""
        msg_id = os.urandom(datagram.MSG_ID_BYTES)
        future: asyncio.Future[codec.Value] = asyncio.get_running_loop().create_future()
        address = (address[0], address[1])
        self._calls[msg_id] = (future, method, address)
        try:
            self.transport.sendto(datagram.encode_request(msg_id, method, list(args)), address)
            async with asyncio.timeout(self._rpc_timeout_s):
                return True, await future
        except TimeoutError:
            return False, None
        finally:
            del self._calls[msg_id]

    # The names KademliaProtocol's call_* use; defined so rpcudp's __getattr__ is never reached.
    ping = functools.partialmethod(_call, Method.PING)
    store = functools.partialmethod(_call, Method.STORE)
    find_node = functools.partialmethod(_call, Method.FIND_NODE)
    find_value = functools.partialmethod(_call, Method.FIND_VALUE)


@final
class _ValueFinder:
    """The protocol a ValueSpiderCrawl sees: validates each value a peer returns.

    A valid value (or a valid older copy of what we hold) becomes the token :data:`_FOUND`, so
    the crawl stops and never compares or logs record bytes; an invalid one becomes "no value
    and no contacts" from that peer. The crawl then stores "the value" at the nearest peer that
    lacked it: we send the newest record we hold.
    """

    def __init__(self, protocol: _DhtProtocol, storage: _TableStorage) -> None:
        self._protocol = protocol
        self._storage = storage

    async def call_find_value(self, peer: Any, target: Any) -> tuple[bool, codec.Value]:
        responded, answer = await self._protocol.call_find_value(peer, target)
        if not responded or not isinstance(answer, dict):
            return responded, answer
        reason = self._storage.offer(target.id, answer["value"], str(peer))
        if reason is None or reason is RejectReason.REPLAYED:
            return True, {"value": _FOUND}
        return True, []

    async def call_store(self, peer: Any, dkey: bytes, _token: bytes) -> tuple[bool, codec.Value]:
        data = self._storage.get(dkey)
        if data is None:
            return False, None
        result: tuple[bool, codec.Value] = await self._protocol.call_store(peer, dkey, data)
        return result


@final
class NetDbService:
    """The node's netDb: validated RouterInfos and LeaseSets, found and published over UDP."""

    def __init__(self, *, config: NetDbConfig, keys: RouterKeys, certificate: RouterCertificate,
                 genesis: Genesis, clock: Clock, store: Store | None = None,
                 roles: Sequence[str] = (), link_address: tuple[str, int] | None = None) -> None:
        """``link_address`` goes into our RouterInfo as its ``tcp`` address; ``store`` None
        keeps records in memory only (tests)."""
        self._config = config
        self._keys = keys
        self._certificate = certificate
        self._network_id = genesis.network_id
        self._clock = clock
        self._store = store
        self._roles = tuple(roles)
        self._link_address = link_address
        self._seeds = [a.netdb_address for a in genesis.authorities
                       if a.signing_key != keys.signing_key]
        self.policy = ValidationPolicy(
            network_id=genesis.network_id, authorities=genesis.authority_keys,
            max_clock_skew_s=genesis.params.max_clock_skew_s,
            max_routerinfo_age_s=config.max_routerinfo_age_s,
            max_leaseset_lifetime_s=config.max_leaseset_lifetime_s)
        self.table = RecordTable(self.policy, max_routers=config.max_routers,
                                 max_leasesets=config.max_leasesets)
        self._rate_log = RateLimitedLog(log)
        self._bad_datagrams: Counter[DatagramFault] = Counter()
        self._lookups: Counter[str] = Counter()
        self._published = 0
        self._dirty: dict[bytes, Entry] = {}
        self._deleted: set[bytes] = set()
        self._persist_wanted = asyncio.Event()
        self._joined = asyncio.Event()
        self._pushes: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue(MAX_PENDING_PUSHES)
        self._own_leasesets: dict[bytes, LeaseSet] = {}
        self._node = Node(dht_key(keys.router_hash))
        self._storage = _TableStorage(self.table, clock, self._mark_dirty, self._rate_log)
        self._protocol = _DhtProtocol(
            self._node, self._storage, config.ksize, rpc_timeout_s=config.rpc_timeout_s,
            bad_datagrams=self._bad_datagrams, push=self._queue_push, rate_log=self._rate_log)
        self._finder = _ValueFinder(self._protocol, self._storage)
        self._transport: asyncio.DatagramTransport | None = None
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> NetDbService:
        log.debug("netdb.start.started")
        if self._store is not None:
            await self._reload()
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: self._protocol, local_addr=(self._config.host, self._config.port))
        try:
            self.port = int(self._transport.get_extra_info("sockname")[1])
            # Our own record passes the same checks as anyone's: an expired or foreign
            # certificate stops the node here, with the reason, rather than later in silence.
            self._mark_dirty(self.table.offer(*self._own_routerinfo()).entry)
            await self._group.__aenter__()
        except BaseException:
            self._transport.close()
            raise
        for name, loop_fn in (("refresh", self._refresh_loop), ("publish", self._publish_loop),
                              ("sweep", self._sweep_loop), ("persist", self._persist_loop),
                              ("push", self._push_loop)):
            self._tasks.append(self._group.create_task(loop_fn(), name=f"netdb-{name}"))
        log.info("netdb.listening host=%s port=%d router=%s", self._config.host, self.port,
                 self._keys.router_hash.hex()[:16])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        # The loops run forever; leaving the context is what stops them.
        for task in self._tasks:
            task.cancel()
        try:
            await self._group.__aexit__(exc_type, exc, tb)
            await self._flush()
        finally:
            if self._transport is not None:
                self._transport.close()

    # -- API for upper layers ----------------------------------------------------------

    @property
    def router_hash(self) -> bytes:
        return self._keys.router_hash

    def get_local(self, key: bytes) -> Record | None:
        """The valid record we hold under ``key``, without asking the network."""
        entry = self.table.get(key, self._clock.time())
        return entry.record if entry is not None else None

    def routers(self) -> list[RouterInfo]:
        """Every valid RouterInfo we hold (ourselves included), by router hash."""
        return self.table.routers(self._clock.time())

    def select_routers(self, count: int, exclude: Sequence[bytes] = ()) -> list[RouterInfo]:
        """Up to ``count`` random valid routers other than us and ``exclude`` (tunnel hops)."""
        return self.table.select_routers(count, now=self._clock.time(),
                                         exclude={self.router_hash, *exclude})

    async def lookup(self, key: bytes) -> RouterInfo | LeaseSet | None:
        """The newest valid record under ``key``: ours if held, else from the DHT; None if no
        peer has a valid one within ``lookup_timeout_s``."""
        if len(key) != 32:
            raise ValueError("a netDb key is 32 bytes")
        local = self.get_local(key)
        if local is not None:
            self._lookups["local"] += 1
            return local
        self._lookups["remote"] += 1
        target = Node(dht_key(key))
        nearest = self._protocol.router.find_neighbors(target)
        if nearest:
            crawl = ValueSpiderCrawl(self._finder, target, nearest, self._config.ksize,
                                     self._config.alpha)
            if not await self._bounded(crawl.find(), "lookup"):
                self._lookups["timed_out"] += 1
        found = self.get_local(key)
        self._lookups["found" if found is not None else "not_found"] += 1
        return found

    async def publish_leaseset(self, leaseset: LeaseSet) -> int:
        """Validate ``leaseset``, hold it, store it at the k closest routers and republish it
        until it expires; returns how many routers accepted it now. An invalid LeaseSet is the
        caller's bug: RecordInvalid is raised."""
        offered = self.table.offer(leaseset.encode(), leaseset.key, self._clock.time())
        if offered.stored:
            self._mark_dirty(offered.entry)
        self._own_leasesets[leaseset.key] = leaseset
        return await self._publish(offered.entry)

    def stats(self) -> dict[str, Any]:
        counts = self.table.counts()
        return {
            "records": {kind.value: counts[kind] for kind in RecordKind},
            "stored": self.table.stored,
            "rejections": {r.value: self.table.rejections[r] for r in RejectReason},
            "bad_datagrams": {f.value: self._bad_datagrams[f] for f in DatagramFault},
            "lookups": {k: self._lookups[k] for k in
                        ("local", "remote", "found", "not_found", "timed_out")},
            "contacts": sum(len(b) for b in self._protocol.router.buckets),
            "published": self._published,
            "port": self.port,
        }

    # -- loops -------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        backoff = Backoff()
        while True:
            if self._contacts() == 0:
                await self._guarded(self._bootstrap(), "bootstrap")
            else:
                await self._guarded(self._refresh(), "refresh")
            if self._contacts() > 0:
                backoff.succeeded()
                self._joined.set()
                delay = self._config.refresh_s
            else:
                delay = min(backoff.failed(), self._config.refresh_s)
            await asyncio.sleep(delay)

    async def _publish_loop(self) -> None:
        await self._joined.wait()
        # Routers that join together do not all know each other at their first publication,
        # and a lost UDP store would otherwise wait a whole period: republish early, doubling
        # the delay up to the configured period.
        delay = min(EARLY_REPUBLISH_S, self._config.republish_s)
        while True:
            await self._guarded(self._republish(), "publish")
            await asyncio.sleep(delay)
            delay = min(2 * delay, self._config.republish_s)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.sweep_s)
            now = self._clock.time()
            expired = self.table.sweep(now)
            for key in expired:
                self._dirty.pop(key, None)
                self._own_leasesets.pop(key, None)
            if expired:
                self._deleted.update(expired)
                self._persist_wanted.set()
                log.debug("netdb.sweep.complete expired=%d", len(expired))

    async def _persist_loop(self) -> None:
        while True:
            await self._persist_wanted.wait()
            self._persist_wanted.clear()
            await self._flush()

    async def _push_loop(self) -> None:
        while True:
            contact, dkey = await self._pushes.get()
            data = self._storage.get(dkey)
            if data is not None:
                await self._guarded(self._protocol.call_store(contact, dkey, data), "push")

    # -- steps -------------------------------------------------------------------------

    async def _bootstrap(self) -> None:
        """Ping the authorities' netDb addresses, then look ourselves up through those that
        answered: the crawl fills the buckets around our id (Kademlia §2.3 joining)."""
        if not self._seeds:
            return
        log.debug("netdb.bootstrap.started seeds=%d", len(self._seeds))
        answers = await asyncio.gather(*(self._protocol.ping(seed, self._node.id)
                                         for seed in self._seeds))
        nodes = [Node(answer, host, port)
                 for (ok, answer), (host, port) in zip(answers, self._seeds, strict=True) if ok]
        if nodes:
            await NodeSpiderCrawl(self._protocol, self._node, nodes, self._config.ksize,
                                  self._config.alpha).find()
        log.debug("netdb.bootstrap.complete answered=%d contacts=%d", len(nodes),
                  self._contacts())

    async def _refresh(self) -> None:
        """Look up our own id and a random id in each bucket not used lately (Kademlia §2.3)."""
        for target_id in (self._node.id, *self._protocol.get_refresh_ids()):
            target = Node(target_id)
            nearest = self._protocol.router.find_neighbors(target, self._config.alpha)
            if nearest:
                await NodeSpiderCrawl(self._protocol, target, nearest, self._config.ksize,
                                      self._config.alpha).find()

    async def _republish(self) -> None:
        """Sign a fresh RouterInfo, hold it and store it; then our unexpired LeaseSets."""
        offered = self.table.offer(*self._own_routerinfo())
        if offered.stored:
            self._mark_dirty(offered.entry)
        await self._publish(offered.entry)
        now = self._clock.time()
        for key in list(self._own_leasesets):
            entry = self.table.get(key, now)
            if entry is None:
                del self._own_leasesets[key]
            else:
                await self._publish(entry)

    async def _publish(self, entry: Entry) -> int:
        """Store ``entry`` at the k routers closest to its key; how many accepted it."""
        dkey = dht_key(entry.record.key)
        target = Node(dkey)
        nearest = self._protocol.router.find_neighbors(target)
        if not nearest:
            return 0

        async def store_at_closest() -> int:
            closest = await NodeSpiderCrawl(self._protocol, target, nearest, self._config.ksize,
                                            self._config.alpha).find()
            answers = await asyncio.gather(*(self._protocol.call_store(n, dkey, entry.data)
                                             for n in closest))
            return sum(1 for ok, accepted in answers if ok and accepted)

        accepted = await self._bounded(store_at_closest(), "publish")
        self._published += 1
        log.debug("netdb.publish.complete key=%s kind=%s accepted=%s",
                  entry.record.key.hex()[:16], entry.kind.value, accepted)
        return accepted or 0

    async def _reload(self) -> None:
        assert self._store is not None
        rows = await store.load_records(self._store)
        now = self._clock.time()
        dropped = []
        for key, data in rows:
            try:
                self.table.offer(data, key, now)
            except RecordInvalid:
                dropped.append(key)
        if dropped:
            await store.delete_records(self._store, dropped)
        log.info("netdb.reload.complete records=%d dropped=%d", len(rows) - len(dropped),
                 len(dropped))

    async def _flush(self) -> None:
        if self._store is None:
            self._dirty.clear()
            self._deleted.clear()
            return
        dirty, deleted = list(self._dirty.values()), set(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        try:
            await store.save_records(self._store, dirty)
            await store.delete_records(self._store, deleted)
        except StorageError:
            # The database is a cache of the DHT: losing a write costs a lookup after restart.
            log.exception("netdb.persist.failed records=%d", len(dirty))

    # -- helpers -----------------------------------------------------------------------

    def _own_routerinfo(self) -> tuple[bytes, bytes, float]:
        """A freshly signed RouterInfo: ``(encoding, key, now)``, ready for ``table.offer``."""
        now = self._clock.time()
        addresses = [Address("udp", self._config.host, self.port)]
        if self._link_address is not None:
            addresses.insert(0, Address("tcp", *self._link_address))
        # Strictly newer than any copy of ours already out there (a restart within the same
        # millisecond, or after the clock stepped back): otherwise newest-wins would keep it.
        held = self.table.get(self._keys.router_hash, now)
        published_ms = max(int(now * 1000), held.record.published_ms + 1 if held else 0)
        info = sign_routerinfo(
            self._keys, self._network_id, identity=self._keys.identity,
            addresses=tuple(addresses), roles=self._roles, published_ms=published_ms,
            certificate=self._certificate)
        return info.encode(), info.key, now

    def _contacts(self) -> int:
        return sum(len(bucket) for bucket in self._protocol.router.buckets)

    def _mark_dirty(self, entry: Entry) -> None:
        self._dirty[entry.record.key] = entry
        self._deleted.discard(entry.record.key)
        self._persist_wanted.set()

    def _queue_push(self, contact: Any, dkey: bytes) -> None:
        try:
            self._pushes.put_nowait((contact, dkey))
        except asyncio.QueueFull:
            log.debug("netdb.push.dropped key=%s", dkey.hex()[:16])

    async def _bounded(self, step: Awaitable[_T], what: str) -> _T | None:
        """``step`` under the lookup timeout; None if it ran out of time."""
        try:
            async with asyncio.timeout(self._config.lookup_timeout_s):
                return await step
        except TimeoutError:
            log.debug("netdb.%s.timed_out", what)
            return None

    async def _guarded(self, step: Awaitable[object], what: str) -> None:
        """Run one loop step; a peer's bad answer or our bug must not end the loop."""
        try:
            await self._bounded(step, what)
        except Exception:
            self._rate_log.log(logging.ERROR, f"step.{what}", "netdb.%s.failed", what)
            log.debug("netdb.%s.failed", what, exc_info=True)
