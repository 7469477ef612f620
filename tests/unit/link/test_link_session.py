"""Fixed-size cells after the handshake (petranode.net.link.session)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from link_fixtures import handshake_pair, router, run_handshake

from petranode.net.link.errors import CloseReason, FrameFault, FrameInvalid, LinkClosed
from petranode.net.link.noise import MAX_NONCE, CipherState
from petranode.net.link.session import (
    CELL_BYTES,
    CELL_DATA_BYTES,
    CELL_PLAINTEXT_BYTES,
    LinkSession,
    SessionState,
)
from petranode.wire import codec

KEY = bytes(range(32))
LIMIT = 64 * 1024


def pair(*, limit: int = LIMIT, rekey_interval: int = 2**16) -> tuple[LinkSession, LinkSession]:
    """Two sessions facing each other, from a real handshake."""
    i, r = handshake_pair(router("s-alice"), router("s-bob"))
    run_handshake(i, r)
    a = LinkSession(
        i.result.sender, i.result.receiver, max_message_bytes=limit, rekey_interval=rekey_interval
    )
    b = LinkSession(
        r.result.sender, r.result.receiver, max_message_bytes=limit, rekey_interval=rekey_interval
    )
    return a, b


def raw_receiver(limit: int = LIMIT) -> tuple[CipherState, LinkSession]:
    """A receiving session and a bare cipher that can write any plaintext to it."""
    return CipherState(KEY), LinkSession(
        CipherState(bytes(32)), CipherState(KEY), max_message_bytes=limit
    )


def test_a_tunnel_sized_message_fits_one_cell() -> None:
    a, _ = pair()
    message = {"t": "tunnel_data", "tunnel_id": 2**32 - 1, "data": bytes(1024)}
    assert len(a.send_message(message)) == CELL_BYTES
    assert CELL_BYTES == 1136 and CELL_PLAINTEXT_BYTES == 1120


def test_every_record_has_the_same_length() -> None:
    a, b = pair()
    padding = a.padding_cell()
    assert b.receive_data(padding) == []
    sizes = {len(padding)}
    for n in (0, 1, 1000, CELL_DATA_BYTES, CELL_DATA_BYTES + 1, 10_000):
        wire = a.send_message({"t": "x", "b": bytes(n)})
        assert len(wire) % CELL_BYTES == 0
        sizes.add(CELL_BYTES)
        assert b.receive_data(wire) == [{"t": "x", "b": bytes(n)}]
    assert sizes == {CELL_BYTES}


def test_large_messages_are_fragmented_and_reassembled() -> None:
    a, b = pair()
    message = {"t": "block", "payload": bytes(range(256)) * 200}
    wire = a.send_message(message)
    assert len(wire) // CELL_BYTES == -(-len(codec.encode(message)) // CELL_DATA_BYTES)
    received = []
    for offset in range(0, len(wire), 777):  # split across cell boundaries
        received += b.receive_data(wire[offset : offset + 777])
        assert b.buffered < CELL_BYTES + LIMIT
    assert received == [message]
    assert b.buffered == 0


def test_padding_cells_deliver_nothing_and_interleave_with_messages() -> None:
    a, b = pair()
    wire = a.padding_cell() + a.send_message({"t": "m"}) + a.padding_cell()
    assert b.receive_data(wire) == [{"t": "m"}]
    assert b.cells_received == 3


@pytest.mark.parametrize("attack", ["replay", "reorder", "tamper", "drop"])
def test_replayed_reordered_tampered_or_dropped_cells_fail_terminally(attack: str) -> None:
    a, b = pair()
    c1, c2 = a.send_message({"t": "one"}), a.send_message({"t": "two"})
    match attack:
        case "replay":
            b.receive_data(c1)
            wire = c1
        case "reorder" | "drop":
            wire = c2
        case "tamper":
            wire = c1[:100] + bytes([c1[100] ^ 0x40]) + c1[101:]
    with pytest.raises(FrameInvalid) as raised:
        b.receive_data(wire)
    assert raised.value.reason is FrameFault.AUTHENTICATION_FAILED
    assert b.state is SessionState.FAILED
    with pytest.raises(FrameInvalid):  # terminal: even the right cell is refused now
        b.receive_data(c2)
    with pytest.raises(FrameInvalid):
        b.send_message({"t": "reply"})


def test_an_oversized_message_is_refused_as_it_arrives() -> None:
    writer, session = raw_receiver(limit=2 * CELL_DATA_BYTES)
    for _ in range(2):
        session.receive_data(writer.encrypt_with_ad(b"", cell(1, bytes(CELL_DATA_BYTES))))
    with pytest.raises(FrameInvalid) as raised:  # refused before the message completes
        session.receive_data(writer.encrypt_with_ad(b"", cell(1, bytes(CELL_DATA_BYTES))))
    assert raised.value.reason is FrameFault.MESSAGE_TOO_LARGE


def cell(kind: int, data: bytes = b"", *, length: int | None = None, padding: bytes = b"") -> bytes:
    size = len(data) if length is None else length
    body = bytes([kind]) + size.to_bytes(2, "big") + data + padding
    return body.ljust(CELL_PLAINTEXT_BYTES, b"\x00")


@pytest.mark.parametrize(
    ("plaintext", "fault"),
    [
        (cell(9), FrameFault.BAD_CELL),  # unknown kind
        (cell(0, b"x"), FrameFault.BAD_CELL),  # padding with data
        (cell(0, padding=b"\x01"), FrameFault.BAD_CELL),  # non-zero padding
        (cell(2, b"\x81\xa1t\xa1x", padding=b"\x01"), FrameFault.BAD_CELL),
        (cell(2, length=CELL_DATA_BYTES + 1), FrameFault.BAD_CELL),  # beyond the cell
        (cell(1, b"\x81\xa1t\xa1x"), FrameFault.BAD_CELL),  # short continued fragment
        (cell(2), FrameFault.BAD_CELL),  # empty final fragment
        (cell(2, b"\xc1"), FrameFault.BAD_MESSAGE),  # not msgpack
        (cell(2, b"\x91\x01"), FrameFault.BAD_MESSAGE),  # not a map
        (cell(2, b"\x81\xa1u\x01"), FrameFault.BAD_MESSAGE),  # no "t"
        (cell(2, b"\x81\xa1t\x01"), FrameFault.BAD_MESSAGE),  # "t" not a string
    ],
)
def test_authenticated_but_invalid_cells_fail(plaintext: bytes, fault: FrameFault) -> None:
    writer, session = raw_receiver()
    with pytest.raises(FrameInvalid) as raised:
        session.receive_data(writer.encrypt_with_ad(b"", plaintext))
    assert raised.value.reason is fault
    assert session.state is SessionState.FAILED


def test_a_well_formed_raw_cell_is_accepted() -> None:
    writer, session = raw_receiver()
    assert session.receive_data(writer.encrypt_with_ad(b"", cell(2, b"\x81\xa1t\xa1x"))) == [
        {"t": "x"}
    ]


def test_both_ends_rekey_in_step() -> None:
    a, b = pair(rekey_interval=3)
    for n in range(10):
        assert b.receive_data(a.send_message({"t": "m", "n": n})) == [{"t": "m", "n": n}]
        assert a.receive_data(b.padding_cell()) == []
    c, d = pair(rekey_interval=3)
    mismatched = LinkSession(d._sender, d._receiver, max_message_bytes=LIMIT, rekey_interval=4)
    with pytest.raises(FrameInvalid):
        for n in range(5):
            mismatched.receive_data(c.send_message({"t": "m", "n": n}))


def test_nonce_exhaustion_is_terminal() -> None:
    session = LinkSession(
        CipherState(KEY, n=MAX_NONCE - 1),
        CipherState(KEY),
        max_message_bytes=LIMIT,
        rekey_interval=2**70,
    )
    session.padding_cell()
    with pytest.raises(LinkClosed) as raised:
        session.padding_cell()
    assert raised.value.reason is CloseReason.NONCE_EXHAUSTED
    assert session.state is SessionState.FAILED
    with pytest.raises(LinkClosed):
        session.send_message({"t": "x"})


@pytest.mark.parametrize(
    "message", [{}, {"t": 1}, {"t": ""}, {"t": "x" * 65}, {"t": "big", "b": bytes(LIMIT)}]
)
def test_sending_a_bad_message_is_our_bug(message: dict[str, object]) -> None:
    a, _ = pair()
    with pytest.raises(ValueError):
        a.send_message(message)  # type: ignore[arg-type]
    assert a.state is SessionState.OPEN


messages = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.binary(max_size=3000) | st.integers(0, 2**64 - 1),
    max_size=3,
).map(lambda m: {**m, "t": "m"})


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, max_size=4), st.data())
def test_messages_round_trip_split_anywhere(
    batch: list[dict[str, object]], data: st.DataObject
) -> None:
    a, b = pair()
    wire = b"".join(a.send_message(m) for m in batch)  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    received = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        received += b.receive_data(wire[start:end])
    assert received == batch


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3 * CELL_BYTES), st.integers(0, 3 * CELL_BYTES))
def test_arbitrary_bytes_give_messages_or_frame_invalid(junk: bytes, cut: int) -> None:
    _, b = pair()
    try:
        assert b.receive_data(junk[:cut]) == []
        assert b.receive_data(junk[cut:]) == []
    except FrameInvalid as exc:
        assert exc.reason is FrameFault.AUTHENTICATION_FAILED
        assert b.state is SessionState.FAILED
