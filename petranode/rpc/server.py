"""The JSON-RPC control socket: the I/O shell around :mod:`petranode.rpc.protocol` (SPEC §4.9).

Framing: one JSON text per line (newline-delimited) over a Unix stream socket of mode 0600, many
requests per connection, answered in order. A final line without a newline before EOF is still
answered, so ``printf '{...}' | socat - UNIX-CONNECT:rpc.sock`` works. A line longer than
:attr:`ServerLimits.max_line_bytes` is answered with −32600 and the connection is closed: the rest
of that line cannot be resynchronised cheaply.

Each connection runs in the server's own TaskGroup behind a wrapper that logs, counts and closes
on any exception (STYLE: supervision); the members of a batch run concurrently, at most
:attr:`ServerLimits.batch_concurrency` at a time.
"""

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, final

from petranode.rpc.errors import ErrorCode, RpcError, ServerSocketError, SocketInUse
from petranode.rpc.protocol import (
    MAX_REQUEST_BYTES,
    Call,
    MethodTable,
    Outcome,
    Raised,
    Returned,
    encode_error,
)

log = logging.getLogger(__name__)

# How long to wait for a process already bound at our path to accept a probe connection.
_PROBE_TIMEOUT = 1.0
# After a failed accept() (EMFILE, ENOBUFS) pause before retrying instead of spinning; Go's
# net/http Server.Serve backs off the same way on temporary accept errors.
_ACCEPT_BACKOFF = 0.1
# Pending connections the kernel queues while all max_connections slots are busy.
_LISTEN_BACKLOG = 64


@final
@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds on what one client can make the server hold or do."""

    # A request line; the protocol refuses anything larger anyway (see MAX_REQUEST_BYTES).
    max_line_bytes: int = MAX_REQUEST_BYTES
    # A client that sends nothing for this long is disconnected; the CLI sends at once.
    idle_timeout: float = 60.0
    # A client that does not read its responses for this long is disconnected.
    write_timeout: float = 10.0
    # The socket is owner-only, so this guards against runaway scripts, not attackers.
    max_connections: int = 32
    # Batch members run concurrently but never more than this many at once per batch.
    batch_concurrency: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.max_line_bytes <= MAX_REQUEST_BYTES:
            raise ValueError(f"max_line_bytes must be in 1…{MAX_REQUEST_BYTES}")
        if self.idle_timeout <= 0 or self.write_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_connections < 1 or self.batch_concurrency < 1:
            raise ValueError("max_connections and batch_concurrency must be at least 1")


@dataclass(slots=True)
class ServerStats:
    """Counters for metrics and tests."""

    connections: int = 0
    connection_failures: int = 0
    requests: int = 0


class _LineTooLong(Exception):
    """Internal: the client sent more than max_line_bytes without a newline."""


class RpcServer:
    """Serves a :class:`MethodTable` on a Unix socket at ``path`` while the context is entered."""

    def __init__(self, path: Path, table: MethodTable, limits: ServerLimits | None = None) -> None:
        self.path = path
        self.stats = ServerStats()
        self._table = table
        self._limits = limits if limits is not None else ServerLimits()
        self._slots = asyncio.Semaphore(self._limits.max_connections)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        """Bind and listen; returns once clients can connect."""
        async with contextlib.AsyncExitStack() as stack:
            listener = await self._bind()
            stack.callback(self._unlink_own_socket, os.stat(self.path).st_ino)
            stack.callback(listener.close)
            self._group = await stack.enter_async_context(asyncio.TaskGroup())
            stack.callback(self._cancel_tasks)
            self._spawn(self._accept_loop(listener))
            self._stack = stack.pop_all()
        log.info("rpc.listening path=%s", self.path)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop accepting, close every connection, remove the socket file."""
        await self._stack.__aexit__(exc_type, exc, traceback)
        log.info("rpc.closed path=%s", self.path)

    # --- socket setup -----------------------------------------------------------------------

    async def _bind(self) -> socket.socket:
        try:
            return _listen_at(self.path)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ServerSocketError(f"cannot listen on {self.path}: {exc.strerror}") from exc
        await self._remove_stale_socket()
        try:
            return _listen_at(self.path)
        except OSError as exc:
            raise ServerSocketError(f"cannot listen on {self.path}: {exc.strerror}") from exc

    async def _remove_stale_socket(self) -> None:
        """Unlink a socket file left by a dead server; refuse if anything else holds the path."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise SocketInUse(f"{self.path} exists and is not a socket")
        if await _answers(self.path):
            raise SocketInUse(f"a server is already listening on {self.path}")
        log.info("rpc.stale_socket.removed path=%s", self.path)
        self.path.unlink()

    def _unlink_own_socket(self, inode: int) -> None:
        # Another server may have replaced a path we stopped answering on; leave its socket alone.
        with contextlib.suppress(FileNotFoundError):
            if self.path.lstat().st_ino == inode:
                self.path.unlink()

    # --- tasks --------------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[None, None, None]) -> None:
        assert self._group is not None, "spawned before __aenter__"
        task = self._group.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Wait for a free slot before accepting: extra clients queue in the listen backlog.
            await self._slots.acquire()
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:
                self._slots.release()
                log.warning("rpc.accept.failed errno=%s", exc.errno)
                await asyncio.sleep(_ACCEPT_BACKOFF)
                continue
            except BaseException:
                self._slots.release()
                raise
            self._spawn(self._guarded_connection(connection))

    async def _guarded_connection(self, connection: socket.socket) -> None:
        """Serve one client; any exception is logged, counted and closes only this client."""
        self.stats.connections += 1
        try:
            await self._serve(connection)
        except Exception:
            self.stats.connection_failures += 1
            log.exception("rpc.connection.failed")
        finally:
            self._slots.release()

    # --- one connection -----------------------------------------------------------------------

    async def _serve(self, connection: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(
                sock=connection, limit=self._limits.max_line_bytes + 1
            )
        except BaseException:
            connection.close()
            raise
        try:
            await self._serve_lines(reader, writer)
        except (ConnectionError, TimeoutError) as exc:
            log.debug("rpc.connection.dropped error=%s", type(exc).__name__)
        finally:
            writer.close()

    async def _serve_lines(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                line = await self._next_line(reader)
            except _LineTooLong:
                limit = self._limits.max_line_bytes
                error = RpcError(ErrorCode.INVALID_REQUEST, f"request line exceeds {limit} bytes")
                await self._send(writer, encode_error(None, error))
                return
            if line is None:
                return
            if line.strip():
                await self._answer(line, writer)

    async def _next_line(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next request line without its newline; None at EOF or after the idle timeout."""
        try:
            async with asyncio.timeout(self._limits.idle_timeout):
                line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as eof:
            return eof.partial or None
        except asyncio.LimitOverrunError:
            raise _LineTooLong from None
        except TimeoutError:
            log.debug("rpc.connection.idle")
            return None
        return line.removesuffix(b"\n")

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        self.stats.requests += 1
        plan = self._table.plan(line)
        outcomes = await self._run(plan.calls)
        response = plan.respond(outcomes)
        if response is not None:
            await self._send(writer, response)

    async def _run(self, calls: tuple[Call, ...]) -> list[Outcome]:
        if len(calls) <= 1:
            return [await _outcome(call) for call in calls]
        gate = asyncio.Semaphore(self._limits.batch_concurrency)

        async def bounded(call: Call) -> Outcome:
            async with gate:
                return await _outcome(call)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(call)) for call in calls]
        return [task.result() for task in tasks]

    async def _send(self, writer: asyncio.StreamWriter, response: bytes) -> None:
        writer.write(response + b"\n")
        async with asyncio.timeout(self._limits.write_timeout):
            await writer.drain()


async def _outcome(call: Call) -> Outcome:
    """Run one call; its exception becomes its outcome (the protocol decides what to answer)."""
    try:
        return Returned(await call.start())
    # Any exception is an answer, not a crash: the protocol maps it (unexpected ones to −32603).
    except Exception as exc:  # noqa: BLE001
        return Raised(exc)


def _listen_at(path: Path) -> socket.socket:
    """A listening, non-blocking Unix socket at ``path``, created 0600."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # umask makes the socket file 0600 from its creation, so there is no window in which
        # another user could connect; chmod repeats it in case the platform ignores umask here.
        previous = os.umask(0o177)
        try:
            listener.bind(os.fspath(path))
        finally:
            os.umask(previous)
    except BaseException:
        listener.close()
        raise
    try:
        os.chmod(path, 0o600)
        listener.listen(_LISTEN_BACKLOG)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        path.unlink()
        raise
    return listener


async def _answers(path: Path) -> bool:
    """Whether a live process accepts connections on the socket at ``path``."""
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            _, writer = await asyncio.open_unix_connection(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        # A full backlog still means someone is listening.
        return True
    writer.close()
    return True
