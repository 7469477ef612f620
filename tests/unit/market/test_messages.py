"""Market messages between prosumers and the DSO: round trips and strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petranode.market.errors import MarketRecordInvalid, RecordFault
from petranode.market.messages import (
    MESSAGE_VERSION,
    AnswerMessage,
    RequestMessage,
    decode_message,
)
from petranode.wire import codec

HASHES = st.binary(min_size=32, max_size=32)


@given(st.binary(max_size=512))
def test_request_round_trip(request: bytes) -> None:
    assert decode_message(RequestMessage(request).encode()) == RequestMessage(request)


@given(HASHES, HASHES)
def test_grant_round_trip(request_id: bytes, tx_hash: bytes) -> None:
    answer = AnswerMessage(request_id, True, tx_hash=tx_hash)
    assert decode_message(answer.encode()) == answer


@given(HASHES, st.text(min_size=1, max_size=64))
def test_refusal_round_trip(request_id: bytes, reason: str) -> None:
    answer = AnswerMessage(request_id, False, reason=reason)
    assert decode_message(answer.encode()) == answer


def test_inconsistent_answers_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        AnswerMessage(b"\x01" * 32, True)  # a grant without its transaction
    with pytest.raises(ValueError):
        AnswerMessage(b"\x01" * 32, False, tx_hash=b"\x02" * 32, reason="x")
    with pytest.raises(ValueError):
        AnswerMessage(b"\x01" * 32, False)  # a refusal without a reason


@pytest.mark.parametrize("value", [
    [MESSAGE_VERSION + 1, "request", b"x"],
    [MESSAGE_VERSION, "order", b"x"],
    [MESSAGE_VERSION, "request"],
    [MESSAGE_VERSION, "request", "text"],
    [MESSAGE_VERSION, "answer", b"\x01" * 31, True, b"\x02" * 32, ""],
    [MESSAGE_VERSION, "answer", b"\x01" * 32, True, b"", ""],
    [MESSAGE_VERSION, "answer", b"\x01" * 32, False, b"", ""],
    [MESSAGE_VERSION, "request", b"\x00" * 2000],
    [],
    {"t": "request"},
])
def test_malformed_messages_are_refused(value: codec.Encodable) -> None:
    with pytest.raises(MarketRecordInvalid) as info:
        decode_message(codec.encode(value))
    assert info.value.reason in (RecordFault.MALFORMED, RecordFault.UNSUPPORTED_VERSION)


@given(st.binary(max_size=96))
def test_garbage_is_refused_or_canonical(data: bytes) -> None:
    try:
        message = decode_message(data)
    except MarketRecordInvalid:
        return
    assert message.encode() == data
