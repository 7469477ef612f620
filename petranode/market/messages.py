"""What prosumers and the DSO say to each other through garlic (SPEC §4.7: "requests to the
DSO travel off-chain").

Every message is the canonical msgpack array ``[version, type, body…]`` inside a garlic
envelope of protocol ``market``, so only the two destinations read it:

* ``[1, "request", asset_request]`` — a prosumer's signed
  :class:`~petranode.market.registry.AssetRequest` (its encoding), to the DSO's destination.
* ``[1, "answer", request_id, granted, tx_hash, reason]`` — the DSO's answer to the sender's
  destination: ``granted`` with the hash of the issuance transaction it submitted, or a
  refusal with ``reason`` (a :class:`~petranode.market.errors.RequestReject` value, or
  ``"ledger"`` when the issuance could not be submitted).

Decoding is bounded and strict; anything else raises ``MarketRecordInvalid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from petranode.market.errors import MarketRecordInvalid, RecordFault
from petranode.wire import codec
from petranode.wire.errors import DecodeError

MESSAGE_VERSION: Final = 1
HASH_BYTES: Final = 32
#: An asset request is about 250 bytes; 1 KiB bounds every market message.
MAX_MESSAGE_BYTES: Final = 1024
MAX_REASON_CHARS: Final = 64


@final
@dataclass(frozen=True, slots=True)
class RequestMessage:
    request: bytes

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "request", self.request])


@final
@dataclass(frozen=True, slots=True)
class AnswerMessage:
    request_id: bytes
    granted: bool
    tx_hash: bytes = b""
    reason: str = ""

    def __post_init__(self) -> None:
        if len(self.request_id) != HASH_BYTES:
            raise ValueError("request_id is 32 bytes")
        if self.granted and (len(self.tx_hash) != HASH_BYTES or self.reason):
            raise ValueError("a grant names its 32-byte transaction hash and no reason")
        if not self.granted and (self.tx_hash or not 0 < len(self.reason) <= MAX_REASON_CHARS):
            raise ValueError("a refusal names a reason of 1 to 64 characters and no hash")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "answer", self.request_id, self.granted,
                             self.tx_hash, self.reason])


MarketMessage = RequestMessage | AnswerMessage


def decode_message(data: bytes) -> MarketMessage:
    """The message of ``data``; anything else raises ``MarketRecordInvalid``."""
    try:
        fields = codec.expect_list(codec.decode_canonical(data, max_size=MAX_MESSAGE_BYTES),
                                   what="market message")
        if not fields or codec.expect_int(fields[0], 0, 255, what="version") != MESSAGE_VERSION:
            raise MarketRecordInvalid(RecordFault.UNSUPPORTED_VERSION, "market message")
        kind = codec.expect_str(fields[1] if len(fields) > 1 else None, max_len=16,
                                what="message type")
        if kind == "request" and len(fields) == 3:
            return RequestMessage(codec.expect_bytes(fields[2], max_size=MAX_MESSAGE_BYTES,
                                                     what="request"))
        if kind == "answer" and len(fields) == 6:
            return AnswerMessage(
                codec.expect_bytes(fields[2], HASH_BYTES, what="request id"),
                codec.expect_bool(fields[3], what="granted"),
                codec.expect_bytes(fields[4], max_size=HASH_BYTES, what="tx hash"),
                codec.expect_str(fields[5], max_len=MAX_REASON_CHARS, what="reason"),
            )
        raise MarketRecordInvalid(RecordFault.MALFORMED, f"market message {kind!r}")
    except (DecodeError, ValueError) as exc:
        raise MarketRecordInvalid(RecordFault.MALFORMED, "market message") from exc
