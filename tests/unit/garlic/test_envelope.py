"""The envelope that routes a garlic payload to a layer: round trips and strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from petranode.net.garlic.envelope import (
    ENVELOPE_VERSION,
    MAX_DATA_BYTES,
    Envelope,
    Protocol,
)
from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.wire import codec


@given(st.sampled_from(Protocol), st.binary(max_size=2048))
def test_round_trip(protocol: Protocol, data: bytes) -> None:
    envelope = Envelope(protocol, data)
    assert Envelope.decode(envelope.encode()) == envelope


def test_the_largest_data_fits_one_clove() -> None:
    envelope = Envelope(Protocol.MARKET, b"\x00" * MAX_DATA_BYTES)
    assert Envelope.decode(envelope.encode()) == envelope
    with pytest.raises(ValueError):
        Envelope(Protocol.APP, b"\x00" * (MAX_DATA_BYTES + 1))


@pytest.mark.parametrize("value", [
    [ENVELOPE_VERSION + 1, "app", b"x"],
    [ENVELOPE_VERSION, "smtp", b"x"],
    [ENVELOPE_VERSION, "app", "not bytes"],
    [ENVELOPE_VERSION, "app"],
    [ENVELOPE_VERSION, "app", b"x", b"extra"],
    [ENVELOPE_VERSION, "a" * 17, b"x"],
    [ENVELOPE_VERSION, "app", b"\x00" * (MAX_DATA_BYTES + 1)],
    {"protocol": "app"},
])
def test_malformed_envelopes_are_refused(value: codec.Encodable) -> None:
    with pytest.raises(GarlicError) as info:
        Envelope.decode(codec.encode(value))
    assert info.value.reason is GarlicFault.MALFORMED


@given(st.binary(max_size=64))
def test_garbage_is_refused_or_decodes_canonically(garbage: bytes) -> None:
    try:
        envelope = Envelope.decode(garbage)
    except GarlicError as exc:
        assert exc.reason is GarlicFault.MALFORMED
    else:
        assert envelope.encode() == garbage
