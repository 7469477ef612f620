"""``[link]``: the router-to-router TCP links (SPEC §4.2).

One frozen section; the node's config loader builds it by keyword from the TOML table and calls
:meth:`LinkConfig.validate`, which reports a wrong value in one line naming its dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from petranode.net.link.errors import LinkConfigInvalid

#: 16 MiB: with ``max_peers`` links each reassembling one message, memory stays bounded.
MAX_MESSAGE_BYTES_LIMIT: Final = 16 * 1024 * 1024


@final
@dataclass(frozen=True, slots=True)
class LinkConfig:
    #: Address to listen on. Loopback by default: a node joins a network only when told to.
    host: str = "127.0.0.1"
    #: TCP port; 0 lets the OS choose (tests, testnets).
    port: int = 0
    #: Seconds from TCP accept/connect to an authenticated link; a stalled handshake is closed.
    handshake_timeout_s: float = 10.0
    #: Seconds without a cell from the peer before the link is closed.
    idle_timeout_s: float = 60.0
    #: Seconds without a cell to the peer before we send a padding cell; below the idle timeout
    #: so a quiet but healthy link never times out (NTCP2 and SSH keep-alives do the same).
    keepalive_s: float = 15.0
    #: Authenticated links at once, both directions.
    max_peers: int = 64
    #: Inbound connections at once from one IP address, handshaking or linked.
    max_inbound_per_ip: int = 8
    #: Inbound connections still in the handshake; bounds the work strangers can cause.
    max_pending_handshakes: int = 32
    #: Largest message (canonical msgpack) a peer may send or receive, 1 MiB by default: a
    #: block of a few hundred RingCT transactions fits; 64 peers reassembling one each is 64 MiB.
    max_message_bytes: int = 1024 * 1024
    #: Bytes we buffer for a peer before a send waits for it to read (transport high-water mark).
    write_buffer_bytes: int = 256 * 1024
    #: Seconds a send may wait for a peer to drain our buffer before the link is closed.
    write_timeout_s: float = 10.0

    def validate(self) -> None:
        positive_seconds = {
            "handshake_timeout_s": self.handshake_timeout_s,
            "idle_timeout_s": self.idle_timeout_s,
            "keepalive_s": self.keepalive_s,
            "write_timeout_s": self.write_timeout_s,
        }
        for name, seconds in positive_seconds.items():
            if not 0 < seconds <= 86_400:
                _fail(name, "must be between 0 and 86400 seconds")
        if self.keepalive_s >= self.idle_timeout_s:
            _fail("keepalive_s", "must be below link.idle_timeout_s")
        if not self.host or self.host != self.host.strip():
            _fail("host", "expected an IP address or host name")
        if not 0 <= self.port <= 65_535:
            _fail("port", "expected 0..65535")
        counts = {
            "max_peers": (self.max_peers, 1, 10_000),
            "max_inbound_per_ip": (self.max_inbound_per_ip, 1, 10_000),
            "max_pending_handshakes": (self.max_pending_handshakes, 1, 10_000),
            "max_message_bytes": (self.max_message_bytes, 1024, MAX_MESSAGE_BYTES_LIMIT),
            "write_buffer_bytes": (self.write_buffer_bytes, 4096, 64 * 1024 * 1024),
        }
        for name, (value, lo, hi) in counts.items():
            if not lo <= value <= hi:
                _fail(name, f"expected {lo}..{hi}")


def _fail(name: str, problem: str) -> None:
    raise LinkConfigInvalid(f"link.{name}: {problem}")
