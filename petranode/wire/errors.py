"""Errors of the wire layer (SPEC §4.2, §5: every decoder gives a value or a typed error).

A decoder has exactly two outcomes: a value, or a :class:`DecodeError` whose ``reason`` says
which rule the input broke. The reasons are an enum so that callers count and log them without
parsing prose, and so that a peer's bytes never reach a log line through the message.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError


class DecodeFault(enum.Enum):
    """Why bytes were refused."""

    #: Longer than the caller's bound; refused before any parsing.
    OVERSIZED = "oversized"
    #: Not msgpack at all, or cut short.
    MALFORMED = "malformed"
    #: A complete value followed by more bytes.
    TRAILING_BYTES = "trailing_bytes"
    #: A msgpack type petranode does not use (float, ext, timestamp).
    UNSUPPORTED_TYPE = "unsupported_type"
    #: A map key that is not a string, or a key given twice.
    BAD_MAP_KEY = "bad_map_key"
    #: Containers nested deeper than the codec allows.
    TOO_DEEP = "too_deep"
    #: Valid msgpack, but not the one canonical encoding of its value (signed records).
    NON_CANONICAL = "non_canonical"
    #: Decodes, but the value does not have the shape the record expects.
    WRONG_SHAPE = "wrong_shape"
    #: A length prefix announces a frame larger than the framer allows.
    FRAME_TOO_LARGE = "frame_too_large"


class DecodeError(PetranodeError):
    """Bytes from outside could not be decoded into the expected value."""

    def __init__(self, reason: DecodeFault, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
