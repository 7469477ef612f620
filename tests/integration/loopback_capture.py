"""A packet capture on the loopback interface, for tests that check what an observer of the
wire sees (issue 5: every link frame has the same length).

An ``AF_PACKET`` socket on ``lo`` (needs CAP_NET_RAW; tests skip without it) receives every
TCP segment in both directions. Per flow — (source port, destination port) on 127.0.0.1 — it
keeps the initial sequence number, the byte ranges seen, the first :data:`HEAD_BYTES` of the
stream (enough to parse the link handshake) and where the stream ended (FIN). Payloads beyond
the head are not kept: lengths are all the checks need.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Final

ETH_P_ALL: Final = 0x0003
ETHERNET_HEADER: Final = 14
HEAD_BYTES: Final = 4096
SOL_PACKET: Final = 263
PACKET_STATISTICS: Final = 6
RECEIVE_BUFFER: Final = 64 * 1024 * 1024
TCP_SYN: Final = 0x02
TCP_ACK: Final = 0x10
TCP_FIN: Final = 0x01
#: ``sll_pkttype`` of a packet we sent; on ``lo`` each packet is also seen once more as received.
PACKET_OUTGOING: Final = 4


@dataclass(slots=True)
class Flow:
    """One direction of one TCP connection."""

    isn: int | None = None
    initiator: bool = False
    fin_offset: int | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)
    head: bytearray = field(default_factory=lambda: bytearray(HEAD_BYTES))

    def add(self, seq: int, payload: bytes) -> None:
        if self.isn is None or not payload:
            return
        start = (seq - self.isn - 1) % 2**32
        self.ranges.append((start, start + len(payload)))
        if start < HEAD_BYTES:
            chunk = payload[: HEAD_BYTES - start]
            self.head[start : start + len(chunk)] = chunk

    def complete_length(self) -> int | None:
        """The stream's length if it was seen from SYN to FIN without a gap, else None."""
        if self.isn is None or self.fin_offset is None:
            return None
        covered = 0
        for start, end in sorted(self.ranges):
            if start > covered:
                return None
            covered = max(covered, end)
        return covered if covered == self.fin_offset else None


class LoopbackCapture:
    """Capture TCP on ``lo`` in a thread between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.flows: dict[tuple[int, int], Flow] = {}
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._drops = 0
        self._thread = threading.Thread(target=self._run, name="loopback-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop capturing (idempotent); returns how many packets the kernel dropped."""
        if self._stop.is_set():
            return self._drops
        self._stop.set()
        self._thread.join()
        _, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self._sock.close()
        self._drops = int(drops)
        return self._drops

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65_600)
            except TimeoutError:
                continue
            if address[2] == PACKET_OUTGOING:
                self._parse(frame[ETHERNET_HEADER:])

    def _parse(self, ip: bytes) -> None:
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
            return
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:total]
        if len(tcp) < 20:
            return
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        offset = (tcp[12] >> 4) * 4
        flags = tcp[13]
        flow = self.flows.setdefault((sport, dport), Flow())
        if flags & TCP_SYN:
            flow.isn = seq
            flow.initiator = not flags & TCP_ACK
            return
        payload = tcp[offset:]
        flow.add(seq, payload)
        if flags & TCP_FIN and flow.isn is not None:
            flow.fin_offset = (seq - flow.isn - 1 + len(payload)) % 2**32
