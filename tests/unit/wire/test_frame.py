"""The handshake framer (petranode.wire.frame): exact bytes, splitting, bounds, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.wire.errors import DecodeError, DecodeFault
from petranode.wire.frame import MAX_FRAME_LIMIT, FrameReader, encode_frame

VECTORS = [(b"", "0000"), (b"\x01", "000101"), (b"ab" * 150, "012c" + "6162" * 150)]


@pytest.mark.parametrize(("payload", "hex_frame"), VECTORS)
def test_frames_have_a_two_byte_big_endian_length(payload: bytes, hex_frame: str) -> None:
    assert encode_frame(payload).hex() == hex_frame
    reader = FrameReader(1000)
    reader.feed(bytes.fromhex(hex_frame))
    assert reader.next_frame() == payload
    assert reader.next_frame() is None


def test_frames_arrive_byte_by_byte_and_back_to_back() -> None:
    stream = encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three") + b"\x00\x09par"
    reader = FrameReader(100)
    frames = []
    for byte in stream:
        reader.feed(bytes([byte]))
        while (frame := reader.next_frame()) is not None:
            frames.append(frame)
    assert frames == [b"one", b"", b"three"]
    assert reader.buffered == 5  # the start of a fourth frame
    assert reader.take_rest() == b"\x00\x09par"
    assert reader.buffered == 0


def test_an_oversized_prefix_is_refused_before_its_payload_arrives() -> None:
    reader = FrameReader(100)
    reader.feed(b"\x00\x65")  # 101, and not one byte of payload yet
    with pytest.raises(DecodeError) as raised:
        reader.next_frame()
    assert raised.value.reason is DecodeFault.FRAME_TOO_LARGE
    assert reader.buffered == 0
    with pytest.raises(DecodeError):  # terminal
        reader.feed(b"\x00\x00")


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        encode_frame(bytes(MAX_FRAME_LIMIT + 1))
    with pytest.raises(ValueError):
        FrameReader(0)
    with pytest.raises(ValueError):
        FrameReader(MAX_FRAME_LIMIT + 1)


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=6), st.data())
def test_round_trip_split_anywhere(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = FrameReader(300)
    frames = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[start:end])
        while (frame := reader.next_frame()) is not None:
            frames.append(frame)
    assert frames == payloads


@settings(max_examples=200)
@given(st.binary(max_size=400), st.data())
def test_arbitrary_bytes_give_frames_or_decode_error(stream: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(stream)))
    reader = FrameReader(64)
    try:
        for chunk in (stream[:cut], stream[cut:]):
            reader.feed(chunk)
            while (frame := reader.next_frame()) is not None:
                assert len(frame) <= 64
        assert reader.buffered < 2 + 64
    except DecodeError as exc:
        assert exc.reason is DecodeFault.FRAME_TOO_LARGE
