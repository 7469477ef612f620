"""The link after the handshake: fixed-size encrypted cells carrying msgpack messages (SPEC §4.2,
§2 "a 42-byte packet in, a 42-byte packet out").

Theory of operation. Every record a link writes after the handshake is one *cell* of exactly
:data:`CELL_BYTES` bytes: a ChaCha20-Poly1305 ciphertext (Noise transport message, empty
associated data, implicit nonce from the ``CipherState`` counter) of a :data:`CELL_PLAINTEXT_BYTES`
plaintext::

    kind (1) | data length (2, big-endian) | data | zero padding to 1120 bytes

=========== =====================================================================
kind        meaning
=========== =====================================================================
0 PADDING   no data: keep-alive and cover traffic
1 CONTINUED a message fragment of exactly :data:`CELL_DATA_BYTES`; more follow
2 FINAL     the last (or only) fragment of a message, 1..:data:`CELL_DATA_BYTES`
=========== =====================================================================

Because every cell has one length and is encrypted whole, an observer of the TCP stream sees
only a count of 1136-byte records: a keep-alive, a tunnel message and a fragment of a block look
the same. No length prefix is needed — the cell size is the framing. The plaintext size, 1120
bytes, holds a 1024-byte tunnel message (SPEC §4.4, ``params.tunnel_message_bytes``) with its
binary header (3 bytes), the message map and its type key, a tunnel id and the cell header,
with room to spare; anything larger is fragmented across consecutive cells.

A message is a canonical-msgpack map with a string ``"t"`` naming its type. Reassembly holds at
most ``max_message_bytes`` (the ``[link]`` setting): a peer cannot make us buffer more than that,
and fragments of one message are consecutive, so one reassembly buffer per direction suffices.

Any cell that fails authentication — tampered, replayed, reordered, truncated — or that breaks
the cell rules makes the session terminal: every later call raises the same error (h11 ``ERROR``).
Nonce exhaustion (2⁶⁴−1 cells) is terminal too. Each direction's key is replaced with Noise's
``Rekey()`` after every ``rekey_interval`` cells, counted identically by both ends, so no message
is needed to agree on it; a key compromised later does not expose older cells.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, final

from petranode.crypto.errors import CryptoError
from petranode.net.link.errors import FrameFault, FrameInvalid, LinkError
from petranode.net.link.noise import TAGLEN, CipherState
from petranode.wire import codec
from petranode.wire.errors import DecodeError

CELL_PLAINTEXT_BYTES: Final = 1120
CELL_BYTES: Final = CELL_PLAINTEXT_BYTES + TAGLEN
CELL_HEADER_BYTES: Final = 3
CELL_DATA_BYTES: Final = CELL_PLAINTEXT_BYTES - CELL_HEADER_BYTES
#: 2¹⁶ cells ≈ 74 MB per key, well under ChaCha20-Poly1305's limits; WireGuard rekeys after
#: 2⁶⁰ messages or two minutes, NTCP2 not at all — this is cheap forward secrecy within a link.
REKEY_INTERVAL_CELLS: Final = 2**16
#: Type names are short identifiers (``"netdb_store"``, ``"tunnel_data"``).
MAX_TYPE_CHARS: Final = 64

Message = dict[str, codec.Value]


class CellKind(enum.IntEnum):
    PADDING = 0
    CONTINUED = 1
    FINAL = 2


class SessionState(enum.Enum):
    OPEN = "open"
    FAILED = "failed"


@final
class LinkSession:
    """Encrypts messages into cells and cells back into messages for one established link."""

    __slots__ = (
        "_error",
        "_max_message_bytes",
        "_reassembly",
        "_receive_buffer",
        "_receiver",
        "_rekey_interval",
        "_sender",
        "cells_received",
        "cells_sent",
    )

    def __init__(
        self,
        sender: CipherState,
        receiver: CipherState,
        *,
        max_message_bytes: int,
        rekey_interval: int = REKEY_INTERVAL_CELLS,
    ) -> None:
        if max_message_bytes < 1 or rekey_interval < 1:
            raise ValueError("max_message_bytes and rekey_interval must be positive")
        self._sender = sender
        self._receiver = receiver
        self._max_message_bytes = max_message_bytes
        self._rekey_interval = rekey_interval
        # Bounded by CELL_BYTES after every receive_data call: whole cells are consumed.
        self._receive_buffer = bytearray()
        # Bounded by max_message_bytes (checked before each append).
        self._reassembly = bytearray()
        self._error: LinkError | None = None
        self.cells_sent = 0
        self.cells_received = 0

    @property
    def state(self) -> SessionState:
        return SessionState.OPEN if self._error is None else SessionState.FAILED

    @property
    def error(self) -> LinkError | None:
        return self._error

    # -- sending ------------------------------------------------------------------------------

    def send_message(self, message: Mapping[str, codec.Encodable]) -> bytes:
        """The cells carrying ``message``, to be written to the peer in this order.

        Raises ``ValueError`` if the message has no string ``"t"`` or exceeds the size limit
        (our bug), and the session's error if it is terminal.
        """
        self._raise_if_failed()
        kind = message.get("t")
        if not isinstance(kind, str) or not 0 < len(kind) <= MAX_TYPE_CHARS:
            raise ValueError("a link message needs a string 't' of 1..64 characters")
        encoded = codec.encode(message)
        if len(encoded) > self._max_message_bytes:
            raise ValueError(f"message of {len(encoded)} bytes exceeds {self._max_message_bytes}")
        cells = bytearray()
        for start in range(0, len(encoded), CELL_DATA_BYTES):
            chunk = encoded[start : start + CELL_DATA_BYTES]
            last = start + CELL_DATA_BYTES >= len(encoded)
            cells += self._seal(CellKind.FINAL if last else CellKind.CONTINUED, chunk)
        return bytes(cells)

    def padding_cell(self) -> bytes:
        """One cell with no data: a keep-alive, indistinguishable from a data cell."""
        self._raise_if_failed()
        return self._seal(CellKind.PADDING, b"")

    def _seal(self, kind: CellKind, data: bytes) -> bytes:
        plaintext = (bytes([kind]) + len(data).to_bytes(2, "big") + data).ljust(
            CELL_PLAINTEXT_BYTES, b"\x00"
        )
        try:
            cell = self._sender.encrypt_with_ad(b"", plaintext)
        except LinkError as exc:  # nonce exhaustion
            self._error = exc
            raise
        self.cells_sent += 1
        self._rekey_if_due(self._sender)
        return cell

    # -- receiving ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Message]:
        """Messages completed by ``data`` (bytes read from the peer, split anywhere)."""
        self._raise_if_failed()
        self._receive_buffer += data
        messages: list[Message] = []
        try:
            while len(self._receive_buffer) >= CELL_BYTES:
                cell = bytes(self._receive_buffer[:CELL_BYTES])
                del self._receive_buffer[:CELL_BYTES]
                message = self._accept_cell(self._open(cell))
                if message is not None:
                    messages.append(message)
        except LinkError as exc:
            self._error = exc
            self._receive_buffer.clear()
            self._reassembly.clear()
            raise
        return messages

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a cell, plus a partial message's fragments."""
        return len(self._receive_buffer) + len(self._reassembly)

    def _open(self, cell: bytes) -> bytes:
        try:
            plaintext = self._receiver.decrypt_with_ad(b"", cell)
        except CryptoError as exc:
            raise FrameInvalid(FrameFault.AUTHENTICATION_FAILED) from exc
        self.cells_received += 1
        self._rekey_if_due(self._receiver)
        return plaintext

    def _accept_cell(self, plaintext: bytes) -> Message | None:
        kind, length = plaintext[0], int.from_bytes(plaintext[1:CELL_HEADER_BYTES], "big")
        end = CELL_HEADER_BYTES + length
        if length > CELL_DATA_BYTES or any(plaintext[end:]):
            raise FrameInvalid(FrameFault.BAD_CELL, "bad length or non-zero padding")
        if kind == CellKind.PADDING:
            if length:
                raise FrameInvalid(FrameFault.BAD_CELL, "padding cell with data")
            return None
        if kind not in (CellKind.CONTINUED, CellKind.FINAL):
            raise FrameInvalid(FrameFault.BAD_CELL, f"unknown cell kind {kind}")
        if kind == CellKind.CONTINUED and length != CELL_DATA_BYTES:
            raise FrameInvalid(FrameFault.BAD_CELL, "short continued fragment")
        if kind == CellKind.FINAL and length == 0:
            raise FrameInvalid(FrameFault.BAD_CELL, "empty final fragment")
        if len(self._reassembly) + length > self._max_message_bytes:
            raise FrameInvalid(FrameFault.MESSAGE_TOO_LARGE)
        self._reassembly += plaintext[CELL_HEADER_BYTES:end]
        if kind == CellKind.CONTINUED:
            return None
        encoded = bytes(self._reassembly)
        self._reassembly.clear()
        return self._decode_message(encoded)

    def _decode_message(self, encoded: bytes) -> Message:
        try:
            message = codec.expect_map(codec.decode(encoded, max_size=self._max_message_bytes))
            codec.expect_str(message.get("t"), min_len=1, max_len=MAX_TYPE_CHARS, what="t")
        except DecodeError as exc:
            raise FrameInvalid(FrameFault.BAD_MESSAGE, exc.reason.value) from exc
        return message

    def _rekey_if_due(self, cipher: CipherState) -> None:
        if cipher.n % self._rekey_interval == 0:
            cipher.rekey()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __repr__(self) -> str:
        return (
            f"LinkSession(state={self.state.value}, sent={self.cells_sent}, "
            f"received={self.cells_received})"
        )
