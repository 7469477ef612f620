"""A sans-IO length-prefixed framer for the link handshake (SPEC §4.2).

Wire format: a 2-byte big-endian length, then that many bytes — the framing the Noise Protocol
Framework suggests for handshake messages (§3: "a 16-bit big-endian length field"), whose own
limit is 65535 bytes per message. After the handshake, links switch to fixed-size cells
(``petranode.net.link.session``) and take whatever bytes the framer had buffered past the last
frame with :meth:`FrameReader.take_rest`.

Theory of operation (h11 ``_receivebuffer.py``): bytes go in with :meth:`FrameReader.feed`,
complete frames come out of :meth:`FrameReader.next_frame`. A caller that drains the frames
after every feed keeps the buffer under ``2 + max_frame`` bytes plus one read's worth; a length
prefix above ``max_frame`` is refused as soon as its two bytes arrive, before the payload it
announces is waited for.
After that error the reader is terminal; every later call raises the same error.
"""

from __future__ import annotations

from typing import Final, final

from petranode.wire.errors import DecodeError, DecodeFault

PREFIX_BYTES: Final = 2
#: The largest frame the 2-byte prefix can describe (Noise's own message limit).
MAX_FRAME_LIMIT: Final = 0xFFFF


def encode_frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix; raises ``ValueError`` if it cannot be framed."""
    if len(payload) > MAX_FRAME_LIMIT:
        raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_LIMIT}")
    return len(payload).to_bytes(PREFIX_BYTES, "big") + payload


@final
class FrameReader:
    """Splits a byte stream into length-prefixed frames of at most ``max_frame`` bytes."""

    def __init__(self, max_frame: int) -> None:
        if not 0 < max_frame <= MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame must be 1..{MAX_FRAME_LIMIT}")
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._error: DecodeError | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        self._raise_if_failed()
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next complete frame's payload, or ``None`` until more bytes arrive."""
        self._raise_if_failed()
        if len(self._buffer) < PREFIX_BYTES:
            return None
        length = int.from_bytes(self._buffer[:PREFIX_BYTES], "big")
        if length > self._max_frame:
            self._error = DecodeError(
                DecodeFault.FRAME_TOO_LARGE, f"{length} > {self._max_frame} bytes"
            )
            self._buffer.clear()
            raise self._error
        end = PREFIX_BYTES + length
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[PREFIX_BYTES:end])
        del self._buffer[:end]
        return frame

    def take_rest(self) -> bytes:
        """Hand over the bytes buffered past the last frame, emptying the reader."""
        self._raise_if_failed()
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a frame."""
        return len(self._buffer)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
