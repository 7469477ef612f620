"""systemd service notifications without a dependency (SPEC §4.1; sd_notify(3), sd_watchdog_enabled(3)).

``Type=notify`` units learn the daemon's state from datagrams sent to ``$NOTIFY_SOCKET``: READY=1
once every service is entered, STOPPING=1 before unwinding, WATCHDOG=1 at least every half
``WatchdogSec``. Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.

A failed send never reaches the daemon: being supervised is a convenience, running is the job.
The first failure is logged at WARNING, later ones at DEBUG. This module is an I/O edge: it is the
only one that opens the notify socket.
"""

import logging
import os
import socket
from collections.abc import Mapping
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify datagrams to the socket named by ``NOTIFY_SOCKET`` in ``environ``."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._pid = os.getpid() if pid is None else pid
        self._address = _socket_address(self._environ.get("NOTIFY_SOCKET", ""))
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(cls) -> Self:
        """The notifier of this process, configured by systemd through ``os.environ``."""
        return cls(os.environ, os.getpid())

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given (the process runs under a Type=notify unit)."""
        return self._address is not None

    def ready(self, status: str | None = None) -> None:
        """Startup is complete: every service is listening."""
        self._send("READY=1", status)

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has begun."""
        self._send("STOPPING=1", status)

    def watchdog(self) -> None:
        """Still alive: resets the WatchdogSec timer."""
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """A one-line human-readable status shown by ``systemctl status``."""
        self._send(None, text)

    def main_pid(self, pid: int) -> None:
        """Tell systemd the daemon's main process is ``pid``."""
        self._send(f"MAINPID={pid}")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds if it applies to this process, else None.

        Ping at least every half of it, as sd_watchdog_enabled(3) advises.
        """
        return watchdog_interval(self._environ, self._pid)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, assignment: str | None, status: str | None = None) -> None:
        if self._address is None:
            return
        lines = [] if assignment is None else [assignment]
        if status is not None:
            # One assignment per line: a newline inside STATUS would start a bogus one.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        try:
            self._open_socket().sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            self._report_failure(exc)

    def _open_socket(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # Never block the event loop: a full receive queue is a failed send, not a stall.
            self._socket.setblocking(False)
        return self._socket

    def _report_failure(self, exc: OSError) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "systemd.notify.failed errno=%s", exc.errno)


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout from ``WATCHDOG_USEC``, if ``WATCHDOG_PID`` is absent or is ``pid``."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid and (not watchdog_pid.isdigit() or int(watchdog_pid) != pid):
        return None
    return int(usec) / 1_000_000


def _socket_address(notify_socket: str) -> str | bytes | None:
    """The sendto() address of ``NOTIFY_SOCKET``; ``@name`` is Linux's abstract namespace."""
    if notify_socket.startswith("@"):
        return b"\0" + notify_socket[1:].encode()
    if notify_socket.startswith("/"):
        return notify_socket
    if notify_socket:
        # vsock: and other forms are for VMs and containers, where petranode does not run.
        log.warning("systemd.notify.unsupported_socket address=%.64s", notify_socket)
    return None
