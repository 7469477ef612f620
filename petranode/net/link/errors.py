"""Errors of the link layer (SPEC §4.2, §5).

Two families, split the way trio splits ``ClosedResourceError`` from ``BrokenResourceError``:

* **Ours** — :class:`LinkClosed` (we closed the link, or there is none) and :class:`LinkRefused`
  (one of our limits turned a link away). Raised to the caller; they say nothing bad about
  the peer.
* **Theirs** — :class:`PeerError` and its subclasses: the peer's bytes, certificate or silence
  broke the link. The service logs them at INFO (rate-limited), counts them by reason and closes
  that peer only.

Every error carries an enum ``reason``; ``str(error)`` is the reason's value plus, at most, a
detail that never contains key material or payload bytes.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError
from petranode.net.cert import CertificateFault


class CloseReason(enum.Enum):
    SHUTDOWN = "shutdown"
    #: Another link to the same router was kept instead (see ``service``).
    DUPLICATE = "duplicate"
    NOT_CONNECTED = "not_connected"
    #: A nonce counter reached 2⁶⁴−1 (Noise §5.1); the link must be re-established.
    NONCE_EXHAUSTED = "nonce_exhausted"
    #: The peer stopped reading; our queued bytes exceeded the write bound for too long.
    WRITE_STALLED = "write_stalled"
    #: Our own code failed while serving the link (logged at ERROR).
    INTERNAL_ERROR = "internal_error"


class Limit(enum.Enum):
    MAX_PEERS = "max_peers"
    PENDING_HANDSHAKES = "max_pending_handshakes"
    INBOUND_PER_IP = "max_inbound_per_ip"
    #: A router tried to link to itself.
    SELF = "self"


class HandshakeFault(enum.Enum):
    #: A handshake message of the wrong length or with a payload where none belongs.
    MALFORMED_MESSAGE = "malformed_message"
    #: AEAD refused a handshake message: wrong static key, wrong network (prologue) or tampering.
    DECRYPTION_FAILED = "decryption_failed"
    #: A Diffie-Hellman with the peer's key gave the all-zero result (a low-order point).
    BAD_KEY = "bad_key"
    #: The handshake length prefix announced more than a handshake message can be.
    FRAME_TOO_LARGE = "frame_too_large"
    #: The peer closed the connection before the handshake completed.
    CLOSED_BY_PEER = "closed_by_peer"


class FrameFault(enum.Enum):
    #: A cell failed AEAD: tampered, replayed, reordered or truncated.
    AUTHENTICATION_FAILED = "authentication_failed"
    #: An authenticated cell with an unknown kind, a bad length or non-zero padding.
    BAD_CELL = "bad_cell"
    MESSAGE_TOO_LARGE = "message_too_large"
    #: A reassembled message that is not a canonical-msgpack map with a string ``"t"``.
    BAD_MESSAGE = "bad_message"


class TimeoutKind(enum.Enum):
    HANDSHAKE = "handshake_timeout"
    IDLE = "idle_timeout"


class LostReason(enum.Enum):
    #: The peer closed the connection.
    EOF = "eof"
    #: The connection failed under us (reset, broken pipe).
    RESET = "reset"
    #: We could not open a connection to the address given.
    UNREACHABLE = "unreachable"


class LinkError(PetranodeError):
    """Base of every link-layer error; ``reason`` is an enum member."""

    def __init__(self, reason: enum.Enum, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else str(reason.value))
        self.reason = reason


class LinkClosed(LinkError):
    """We closed the link (or there is no link); ``reason`` is a :class:`CloseReason`."""

    def __init__(self, reason: CloseReason, detail: str = "") -> None:
        super().__init__(reason, detail)


class LinkRefused(LinkError):
    """One of our limits refused a link; ``reason`` is a :class:`Limit`."""

    def __init__(self, reason: Limit, detail: str = "") -> None:
        super().__init__(reason, detail)


class PeerError(LinkError):
    """The peer broke the link."""


class HandshakeFailed(PeerError):
    def __init__(self, reason: HandshakeFault, detail: str = "") -> None:
        super().__init__(reason, detail)


class PeerNotAdmitted(PeerError):
    """The peer completed the Noise handshake but its certificate does not admit it."""

    def __init__(self, reason: CertificateFault, detail: str = "") -> None:
        super().__init__(reason, detail)


class FrameInvalid(PeerError):
    def __init__(self, reason: FrameFault, detail: str = "") -> None:
        super().__init__(reason, detail)


class LinkTimeout(PeerError):
    def __init__(self, reason: TimeoutKind, detail: str = "") -> None:
        super().__init__(reason, detail)


class ConnectionLost(PeerError):
    def __init__(self, reason: LostReason, detail: str = "") -> None:
        super().__init__(reason, detail)


class LinkConfigInvalid(PetranodeError):
    """A ``[link]`` setting is out of range; the message is one line naming the dotted key."""
