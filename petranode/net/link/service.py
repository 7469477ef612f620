"""The link layer's I/O edge: TCP listener, dialler and one task per link (SPEC §4.2, §5).

This is the only module of ``petranode.net.link`` that touches asyncio, sockets or the clock;
the protocol lives in the sans-IO machines it drives (``noise.LinkHandshake``,
``session.LinkSession``, ``wire.frame.FrameReader``), as httpcore drives h11.

Theory of operation:

* ``__aenter__`` binds the listener and returns once it is bound; every connection, inbound or
  outbound, then runs as one task in the service's own ``TaskGroup`` behind :meth:`_supervise`,
  which turns any exception into "log (rate-limited), count, close this connection" — one bad
  peer never takes the daemon down. ``__aexit__`` closes the listener, cancels every connection
  and waits for their sockets to close.
* Handshake: the side that dials is the Noise initiator. Handshake messages travel in 2-byte
  length-prefixed frames; the whole handshake — for the initiator, up to the responder's first
  cell — must finish within ``handshake_timeout_s``. The responder's first cell (padding)
  confirms admission, so ``connect`` returns only once the peer has accepted our certificate.
* Admission: inbound connections are refused at accept time above ``max_pending_handshakes``
  or ``max_inbound_per_ip``; a completed link above ``max_peers`` is refused, as is a router
  linking to itself. Two links to one router are never kept: a re-dial in the same direction
  replaces the old link (the peer evidently gave up on it); for links in opposite directions
  (both dialled at once) both ends keep the one dialled by the router with the lower hash.
* Links: each link's task reads with a deadline — the idle timeout, or earlier the moment a
  keep-alive is due, when it writes a padding cell — and dispatches complete messages to the
  handler registered for their ``"t"``, in order, one at a time (a slow handler slows only its
  own peer). Sends encrypt and write without an await in between, so cells leave in nonce order;
  then they wait for the peer to drain our buffer below ``write_buffer_bytes`` for at most
  ``write_timeout_s``.

Logging: names, router-hash prefixes and reasons, never keys or payloads. A peer's misbehaviour
is INFO and rate-limited; ERROR is reserved for our own bugs (a handler raising unexpectedly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, final

from petranode.errors import PetranodeError
from petranode.log import RateLimitedLog
from petranode.net.cert import RouterCertificate
from petranode.net.identity import RouterIdentity, RouterKeys
from petranode.net.link.errors import (
    CloseReason,
    ConnectionLost,
    HandshakeFailed,
    HandshakeFault,
    Limit,
    LinkClosed,
    LinkError,
    LinkRefused,
    LinkTimeout,
    LostReason,
    PeerError,
    TimeoutKind,
)
from petranode.net.link.noise import Established, HandshakePhase, LinkHandshake
from petranode.net.link.session import CELL_BYTES, LinkSession, Message
from petranode.net.link.settings import LinkConfig
from petranode.wire.codec import Encodable
from petranode.wire.errors import DecodeError
from petranode.wire.frame import FrameReader, encode_frame

log = logging.getLogger(__name__)

Handler = Callable[[bytes, Message], Awaitable[None]]
#: Called with (router hash, linked) when a link comes up (True) or goes down (False).
PeerChangeCallback = Callable[[bytes, bool], None]

#: Bytes asked of the socket per read: a few dozen cells, and the bound on what one read can
#: add to a session's receive buffer.
READ_CHUNK_BYTES: Final = 64 * 1024
#: Largest handshake message: message 3 is 48 + a certificate (at most 451) + 16 = 515 bytes.
MAX_HANDSHAKE_FRAME: Final = 1024
#: Time a closing socket gets to flush before we stop waiting for it.
CLOSE_WAIT_S: Final = 1.0
#: Rate limit of peer-fault log lines: this many per event kind per window.


@dataclass(eq=False)
class _Link:
    """One authenticated link; owned by the task that reads it."""

    router_hash: bytes
    identity: RouterIdentity
    session: LinkSession
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    initiated_by_us: bool
    last_sent: float
    last_received: float
    #: Set when something other than the link's own task closes it (duplicate, stall,
    #: shutdown), so the task reports that reason rather than the EOF it then reads.
    closed_by_us: LinkClosed | None = None


@dataclass(eq=False)
class _Connection:
    """A TCP connection from accept/dial until it closes; the link once authenticated."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer_ip: str
    inbound: bool
    link: _Link | None = None
    counted_pending: bool = False
    label: str = field(default="")


@final
class LinkService:
    """Authenticated, encrypted TCP links to the other routers of one network."""

    def __init__(
        self,
        *,
        config: LinkConfig,
        keys: RouterKeys,
        certificate: RouterCertificate,
        authorities: frozenset[bytes],
        network_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` is wall time, for certificate validity; timeouts use the event loop's."""
        config.validate()
        if certificate.identity != keys.identity:
            raise ValueError("the certificate is for another router")
        self._config = config
        self._keys = keys
        self._certificate = certificate
        self._authorities = authorities
        self._network_id = network_id
        self._clock = clock
        self._own_hash = keys.router_hash
        self._group = asyncio.TaskGroup()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        self._links: dict[bytes, _Link] = {}
        self._dialing: dict[bytes, asyncio.Future[bytes]] = {}
        self._pending_inbound = 0
        self._inbound_by_ip: Counter[str] = Counter()
        self._handlers: dict[str, Handler] = {}
        self._peer_callbacks: list[PeerChangeCallback] = []
        self._counters: Counter[str] = Counter()
        self._log = RateLimitedLog(log)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> LinkService:
        await self._group.__aenter__()
        try:
            self._server = await asyncio.start_server(
                self._on_accept, self._config.host, self._config.port, limit=READ_CHUNK_BYTES
            )
        except BaseException as exc:
            await self._group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        log.info(
            "link.listening address=%s:%d router=%s",
            *self.listen_address,
            self._own_hash.hex()[:16],
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        log.debug("link.shutdown.started links=%d", len(self._links))
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.closed_by_us = LinkClosed(CloseReason.SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)
        for static_key, future in list(self._dialing.items()):
            self._settle(static_key, future, LinkClosed(CloseReason.SHUTDOWN))
        log.debug("link.shutdown.complete")

    @property
    def listen_address(self) -> tuple[str, int]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("LinkService is not running")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    # -- API for upper layers -------------------------------------------------------------

    def register(self, t: str, handler: Handler) -> None:
        """Route messages whose ``"t"`` is ``t`` to ``handler(router_hash, message)``.

        A handler raising a :class:`PetranodeError` refuses that message (counted, link kept);
        any other exception is our bug: logged at ERROR, and the link is closed.
        """
        if t in self._handlers:
            raise ValueError(f"a handler for {t!r} is already registered")
        self._handlers[t] = handler

    def on_peer_change(self, callback: PeerChangeCallback) -> None:
        """Call ``callback(router_hash, linked)`` as links come up and go down; it must not block."""
        self._peer_callbacks.append(callback)

    def peers(self) -> list[bytes]:
        """Router hashes of the live, authenticated links."""
        return [h for h, link in self._links.items() if link.closed_by_us is None]

    def peer_identity(self, router_hash: bytes) -> RouterIdentity | None:
        link = self._links.get(router_hash)
        return link.identity if link is not None else None

    async def connect(self, host: str, port: int, static_key: bytes) -> bytes:
        """The router hash of the router at ``host:port`` whose X25519 static key is
        ``static_key``, dialling it unless a live link exists or a dial is under way.

        Raises :class:`PeerError` subclasses if the peer fails the handshake or refuses us,
        :class:`LinkRefused` at ``max_peers``, :class:`LinkClosed` if we are shutting down.
        """
        if len(static_key) != 32:
            raise ValueError("static key must be 32 bytes")
        existing = self._link_by_static_key(static_key)
        if existing is not None:
            return existing.router_hash
        if self._closing:
            raise LinkClosed(CloseReason.SHUTDOWN)
        future = self._dialing.get(static_key)
        if future is None:
            if len(self._links) >= self._config.max_peers:
                raise LinkRefused(Limit.MAX_PEERS)
            future = asyncio.get_running_loop().create_future()
            # Mark the outcome retrieved even if every caller was cancelled meanwhile.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._dialing[static_key] = future
            self._spawn(self._dial(host, port, static_key, future), label=f"dial {host}:{port}")
        return await asyncio.shield(future)

    async def send(self, router_hash: bytes, message: Mapping[str, Encodable]) -> None:
        """Send ``message`` (a map with a string ``"t"``) over the link to ``router_hash``.

        Raises :class:`LinkClosed` if there is no live link, another :class:`LinkError` if the
        link has failed or fails while sending, and ``ValueError`` for a message without
        ``"t"`` or above ``max_message_bytes``.
        """
        link = self._links.get(router_hash)
        if link is None or link.closed_by_us is not None:
            raise LinkClosed(CloseReason.NOT_CONNECTED)
        cells = link.session.send_message(message)
        self._counters["messages_out"] += 1
        await self._write(link, cells)

    def stats(self) -> dict[str, object]:
        """Counters for metrics and the control interface (no peer addresses, no payloads)."""
        c = self._counters

        def by_prefix(prefix: str) -> dict[str, int]:
            return {k.removeprefix(prefix): v for k, v in sorted(c.items()) if k.startswith(prefix)}

        return {
            "links": len(self._links),
            "links_outbound": sum(link.initiated_by_us for link in self._links.values()),
            "pending_inbound_handshakes": self._pending_inbound,
            "handshakes_ok": c["handshakes_ok"],
            "handshakes_failed": by_prefix("handshake_failed."),
            "refused": by_prefix("refused."),
            "closed": by_prefix("closed."),
            "cells_in": c["cells_in"],
            "cells_out": c["cells_out"],
            "bytes_in": c["bytes_in"],
            "bytes_out": c["bytes_out"],
            "messages_in": c["messages_in"],
            "messages_out": c["messages_out"],
            "drops": by_prefix("drop."),
        }

    # -- connection tasks -----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[object, object, None], *, label: str) -> None:
        task = self._group.create_task(coro, name=f"link {label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """asyncio's accept callback: admit or refuse a TCP connection before any read."""
        if self._closing:
            writer.transport.abort()
            return
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        refusal = self._inbound_refusal(ip)
        if refusal is not None:
            self._counters[f"refused.{refusal.value}"] += 1
            self._log.log(logging.INFO, "refused", "link.refused reason=%s", refusal.value)
            writer.transport.abort()
            return
        connection = _Connection(
            reader, writer, ip, inbound=True, counted_pending=True, label=f"inbound {ip}"
        )
        self._pending_inbound += 1
        self._inbound_by_ip[ip] += 1
        try:
            self._spawn(
                self._supervise(connection, self._serve_inbound(connection)), label=connection.label
            )
        except RuntimeError:  # the task group is shutting down
            self._release(connection)
            writer.transport.abort()

    def _inbound_refusal(self, ip: str) -> Limit | None:
        if self._pending_inbound >= self._config.max_pending_handshakes:
            return Limit.PENDING_HANDSHAKES
        if self._inbound_by_ip[ip] >= self._config.max_inbound_per_ip:
            return Limit.INBOUND_PER_IP
        return None

    async def _dial(
        self, host: str, port: int, static_key: bytes, future: asyncio.Future[bytes]
    ) -> None:
        try:
            connection = await self._open(host, port)
        except LinkError as exc:
            self._count_failure(exc, established=False)
            self._settle(static_key, future, exc)
            return
        await self._supervise(
            connection,
            self._serve_outbound(connection, static_key, future),
            future=future,
            static_key=static_key,
        )

    async def _open(self, host: str, port: int) -> _Connection:
        try:
            async with asyncio.timeout(self._config.handshake_timeout_s):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_CHUNK_BYTES)
        except TimeoutError as exc:
            raise LinkTimeout(TimeoutKind.HANDSHAKE, "connect") from exc
        except OSError as exc:
            raise ConnectionLost(LostReason.UNREACHABLE, type(exc).__name__) from exc
        return _Connection(reader, writer, host, inbound=False, label=f"outbound {host}:{port}")

    async def _supervise(
        self,
        connection: _Connection,
        work: Coroutine[object, object, None],
        *,
        future: asyncio.Future[bytes] | None = None,
        static_key: bytes = b"",
    ) -> None:
        """Run one connection's work; whatever happens, log, count and close only it."""
        try:
            await work
        except LinkError as exc:
            self._count_failure(exc, established=connection.link is not None)
            if isinstance(exc, PeerError):
                self._log.log(
                    logging.INFO,
                    type(exc).__name__,
                    "link.closed peer=%s reason=%s",
                    self._peer_label(connection),
                    exc.reason.value,
                )
            if future is not None:
                self._settle(static_key, future, exc)
        except Exception as exc:  # noqa: BLE001 — supervision: a bug closes this peer only
            self._counters["closed.internal_error"] += 1
            self._log.log(
                logging.ERROR,
                "internal",
                "link.failed peer=%s (our bug)",
                self._peer_label(connection),
                exc_info=exc,
            )
            if future is not None:
                self._settle(static_key, future, LinkClosed(CloseReason.INTERNAL_ERROR))
        finally:
            if future is not None:
                self._settle(static_key, future, LinkClosed(CloseReason.SHUTDOWN))
            self._forget(connection)
            await self._close_socket(connection.writer)

    def _settle(
        self, static_key: bytes, future: asyncio.Future[bytes], outcome: bytes | BaseException
    ) -> None:
        """Resolve a dial's future once (later outcomes are ignored) and end the dial."""
        if self._dialing.get(static_key) is future:
            del self._dialing[static_key]
        if future.done():
            return
        if isinstance(outcome, bytes):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)

    # -- handshake ------------------------------------------------------------------------

    async def _serve_inbound(self, connection: _Connection) -> None:
        handshake = LinkHandshake.responder(
            keys=self._keys,
            certificate=self._certificate,
            authorities=self._authorities,
            network_id=self._network_id,
        )
        async with self._handshake_deadline(handshake):
            established, rest = await self._run_handshake(connection, handshake)
        session = self._new_session(established)
        messages = self._feed(session, rest)
        link = self._register(connection, established, session, initiated_by_us=False)
        # Our first cell tells the initiator it was admitted.
        await self._write(link, session.padding_cell())
        await self._run_link(link, messages)

    async def _serve_outbound(
        self, connection: _Connection, static_key: bytes, future: asyncio.Future[bytes]
    ) -> None:
        handshake = LinkHandshake.initiator(
            keys=self._keys,
            certificate=self._certificate,
            authorities=self._authorities,
            network_id=self._network_id,
            remote_static=static_key,
        )
        async with self._handshake_deadline(handshake):
            established, rest = await self._run_handshake(connection, handshake)
            session = self._new_session(established)
            messages = self._feed(session, rest)
            while session.cells_received == 0:
                data = await self._read(connection.reader)
                if not data:
                    if self._settled_by_existing_link(established, static_key, future):
                        return  # the peer refused a duplicate of a link we already have
                    raise HandshakeFailed(HandshakeFault.CLOSED_BY_PEER, "not admitted")
                messages += self._feed(session, data)
        try:
            link = self._register(connection, established, session, initiated_by_us=True)
        except LinkClosed:
            if self._settled_by_existing_link(established, static_key, future):
                return
            raise
        self._settle(static_key, future, link.router_hash)
        await self._run_link(link, messages)

    def _settled_by_existing_link(
        self, established: Established, static_key: bytes, future: asyncio.Future[bytes]
    ) -> bool:
        """Answer a dial with the link already kept to the same router, if there is one."""
        existing = self._links.get(established.router_hash)
        if existing is None or existing.closed_by_us is not None:
            return False
        self._settle(static_key, future, existing.router_hash)
        return True

    @contextlib.asynccontextmanager
    async def _handshake_deadline(self, handshake: LinkHandshake) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._config.handshake_timeout_s):
                yield
        except TimeoutError as exc:
            error = LinkTimeout(TimeoutKind.HANDSHAKE)
            handshake.fail(error)
            raise error from exc

    async def _run_handshake(
        self, connection: _Connection, handshake: LinkHandshake
    ) -> tuple[Established, bytes]:
        """Exchange framed handshake messages; returns the result and any bytes read past the
        last frame (cells the initiator sent right after message 3)."""
        frames = FrameReader(MAX_HANDSHAKE_FRAME)
        while handshake.phase is not HandshakePhase.COMPLETE:
            if handshake.phase is HandshakePhase.OUR_TURN:
                frame = encode_frame(handshake.write_message())
                connection.writer.write(frame)
                self._counters["bytes_out"] += len(frame)
                continue
            try:
                message = frames.next_frame()
            except DecodeError as exc:
                raise HandshakeFailed(HandshakeFault.FRAME_TOO_LARGE) from exc
            if message is not None:
                handshake.read_message(message, now=self._clock())
                continue
            data = await self._read(connection.reader)
            if not data:
                raise HandshakeFailed(HandshakeFault.CLOSED_BY_PEER)
            frames.feed(data)
        return handshake.result, frames.take_rest()

    def _new_session(self, established: Established) -> LinkSession:
        return LinkSession(
            established.sender,
            established.receiver,
            max_message_bytes=self._config.max_message_bytes,
        )

    # -- admission and the link table ------------------------------------------------------

    def _register(
        self,
        connection: _Connection,
        established: Established,
        session: LinkSession,
        *,
        initiated_by_us: bool,
    ) -> _Link:
        router_hash = established.router_hash
        if router_hash == self._own_hash:
            raise LinkRefused(Limit.SELF)
        existing = self._links.get(router_hash)
        if existing is not None and not self._keep_new_link(existing, initiated_by_us):
            raise LinkClosed(CloseReason.DUPLICATE)
        if existing is None and len(self._links) >= self._config.max_peers:
            raise LinkRefused(Limit.MAX_PEERS)
        if existing is not None:
            self._close_link(existing, LinkClosed(CloseReason.DUPLICATE))
        self._end_pending(connection)
        now = asyncio.get_running_loop().time()
        link = _Link(
            router_hash=router_hash,
            identity=established.remote_identity,
            session=session,
            reader=connection.reader,
            writer=connection.writer,
            initiated_by_us=initiated_by_us,
            last_sent=now,
            last_received=now,
        )
        connection.link = link
        self._links[router_hash] = link
        self._counters["handshakes_ok"] += 1
        log.debug("link.up peer=%s outbound=%s", router_hash.hex()[:16], initiated_by_us)
        if existing is None:
            self._notify(router_hash, linked=True)
        return link

    def _keep_new_link(self, existing: _Link, new_initiated_by_us: bool) -> bool:
        if existing.closed_by_us is not None or existing.initiated_by_us == new_initiated_by_us:
            return True
        # Opposite directions: both ends keep the link dialled by the lower router hash.
        new_dialled_by_lower = new_initiated_by_us == (self._own_hash < existing.router_hash)
        return new_dialled_by_lower

    def _close_link(self, link: _Link, reason: LinkClosed) -> None:
        """Close a link from outside its task; the task sees the socket close and ends."""
        if link.closed_by_us is None:
            link.closed_by_us = reason
        link.writer.transport.abort()

    def _forget(self, connection: _Connection) -> None:
        self._release(connection)
        link = connection.link
        if link is not None and self._links.get(link.router_hash) is link:
            del self._links[link.router_hash]
            log.debug("link.down peer=%s", link.router_hash.hex()[:16])
            self._notify(link.router_hash, linked=False)

    def _end_pending(self, connection: _Connection) -> None:
        if connection.counted_pending:
            connection.counted_pending = False
            self._pending_inbound -= 1

    def _release(self, connection: _Connection) -> None:
        """Give back what the connection counted against the inbound limits."""
        self._end_pending(connection)
        if connection.inbound:
            self._inbound_by_ip[connection.peer_ip] -= 1
            if self._inbound_by_ip[connection.peer_ip] <= 0:
                del self._inbound_by_ip[connection.peer_ip]
            connection.inbound = False

    def _link_by_static_key(self, static_key: bytes) -> _Link | None:
        for link in self._links.values():
            if link.closed_by_us is None and link.identity.static_key == static_key:
                return link
        return None

    def _notify(self, router_hash: bytes, *, linked: bool) -> None:
        for callback in self._peer_callbacks:
            try:
                callback(router_hash, linked)
            except Exception as exc:  # noqa: BLE001 — a subscriber's bug must not break links
                self._log.log(
                    logging.ERROR, "callback", "link.peer_change callback failed", exc_info=exc
                )

    # -- established links -----------------------------------------------------------------

    async def _run_link(self, link: _Link, first_messages: list[Message]) -> None:
        """Read, keep alive and dispatch until the link ends (by an exception)."""
        await self._dispatch(link, first_messages)
        loop = asyncio.get_running_loop()
        while True:
            idle_deadline = link.last_received + self._config.idle_timeout_s
            keepalive_due = link.last_sent + self._config.keepalive_s
            try:
                async with asyncio.timeout_at(min(idle_deadline, keepalive_due)):
                    data = await self._read(link.reader)
            except TimeoutError:
                if loop.time() >= idle_deadline:
                    raise LinkTimeout(TimeoutKind.IDLE) from None
                self._send_keepalive(link)
                continue
            if not data:
                raise link.closed_by_us or ConnectionLost(LostReason.EOF)
            link.last_received = loop.time()
            await self._dispatch(link, self._feed(link.session, data))

    def _send_keepalive(self, link: _Link) -> None:
        """A padding cell, written without waiting: at most one per ``keepalive_s``, and only
        while the peer keeps our buffer below ``write_buffer_bytes``."""
        if link.writer.transport.get_write_buffer_size() > self._config.write_buffer_bytes:
            raise LinkClosed(CloseReason.WRITE_STALLED)
        self._write_now(link, link.session.padding_cell())

    async def _dispatch(self, link: _Link, messages: list[Message]) -> None:
        for message in messages:
            self._counters["messages_in"] += 1
            kind = message["t"]
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                self._counters["drop.unknown_type"] += 1
                continue
            try:
                await handler(link.router_hash, message)
            except PetranodeError as exc:
                self._counters["drop.refused_by_handler"] += 1
                self._log.log(
                    logging.INFO,
                    "handler_refused",
                    "link.message.refused peer=%s t=%s error=%s",
                    link.router_hash.hex()[:16],
                    kind,
                    type(exc).__name__,
                )

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        try:
            data = await reader.read(READ_CHUNK_BYTES)
        except OSError as exc:
            raise ConnectionLost(LostReason.RESET, type(exc).__name__) from exc
        self._counters["bytes_in"] += len(data)
        return data

    def _feed(self, session: LinkSession, data: bytes) -> list[Message]:
        before = session.cells_received
        try:
            return session.receive_data(data)
        finally:
            self._counters["cells_in"] += session.cells_received - before

    async def _write(self, link: _Link, data: bytes) -> None:
        self._write_now(link, data)
        try:
            async with asyncio.timeout(self._config.write_timeout_s):
                await link.writer.drain()
        except TimeoutError as exc:
            error = LinkClosed(CloseReason.WRITE_STALLED)
            self._close_link(link, error)
            raise error from exc
        except OSError as exc:
            raise link.closed_by_us or LinkClosed(CloseReason.NOT_CONNECTED) from exc

    def _write_now(self, link: _Link, data: bytes) -> None:
        if link.closed_by_us is not None:
            raise link.closed_by_us
        link.writer.write(data)
        link.last_sent = asyncio.get_running_loop().time()
        self._counters["bytes_out"] += len(data)
        self._counters["cells_out"] += len(data) // CELL_BYTES

    # -- bookkeeping ------------------------------------------------------------------------

    def _count_failure(self, exc: LinkError, *, established: bool) -> None:
        if isinstance(exc, LinkRefused):
            self._counters[f"refused.{exc.reason.value}"] += 1
        elif established:
            self._counters[f"closed.{exc.reason.value}"] += 1
        else:
            self._counters[f"handshake_failed.{exc.reason.value}"] += 1

    @staticmethod
    def _peer_label(connection: _Connection) -> str:
        if connection.link is not None:
            return connection.link.router_hash.hex()[:16]
        return connection.label

    @staticmethod
    async def _close_socket(writer: asyncio.StreamWriter) -> None:
        """Close, giving queued bytes :data:`CLOSE_WAIT_S` to flush before dropping them; the
        wait is shielded so the socket is released even when shutdown cancels this task."""
        writer.close()
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await asyncio.shield(writer.wait_closed())
        except (TimeoutError, OSError):
            writer.transport.abort()
