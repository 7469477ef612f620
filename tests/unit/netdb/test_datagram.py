"""Strict parsing of the DHT's datagrams (SPEC §5: bad input gets a typed error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.net.netdb import datagram
from petranode.net.netdb.datagram import BadDatagram, DatagramFault, Method, Request, Response
from petranode.wire import codec

MSG = b"\x11" * 20
NODE = b"\x22" * 20
KEY = b"\x33" * 20


def _fault(data: bytes) -> DatagramFault:
    with pytest.raises(BadDatagram) as raised:
        datagram.parse(data)
    return raised.value.reason


def test_requests_parse() -> None:
    raw = datagram.encode_request(MSG, Method.STORE, [NODE, KEY, b"value"])
    assert raw == b"\x00" + MSG + codec.encode(["store", [NODE, KEY, b"value"]])
    assert datagram.parse(raw) == Request(MSG, Method.STORE, NODE, KEY, b"value")
    assert datagram.parse(datagram.encode_request(MSG, Method.PING, [NODE])) == Request(
        MSG, Method.PING, NODE)
    assert datagram.parse(datagram.encode_request(MSG, Method.FIND_VALUE, [NODE, KEY])) == \
        Request(MSG, Method.FIND_VALUE, NODE, KEY)


def test_responses_parse_and_are_checked_against_the_method() -> None:
    raw = datagram.encode_response(MSG, {"value": b"x"})
    assert datagram.parse(raw) == Response(MSG, {"value": b"x"})
    contacts: codec.Value = [[NODE, "127.0.0.1", 9000]]
    assert datagram.check_response(Method.FIND_NODE, contacts) == contacts
    assert datagram.check_response(Method.FIND_VALUE, contacts) == contacts
    assert datagram.check_response(Method.PING, NODE) == NODE
    assert datagram.check_response(Method.STORE, True) is True
    for method, value in ((Method.PING, b"short"), (Method.STORE, 1),
                          (Method.FIND_NODE, [[NODE, "example.org", 9000]]),
                          (Method.FIND_NODE, [[NODE, "127.0.0.1", 0]]),
                          (Method.FIND_VALUE, {"value": 5}), (Method.FIND_NODE, {"a": 1})):
        with pytest.raises(BadDatagram):
            datagram.check_response(method, value)


def test_bad_datagrams() -> None:
    assert _fault(b"\x00" * 5) is DatagramFault.TOO_SHORT
    assert _fault(b"\x00" + MSG + b"\x00" * 9000) is DatagramFault.TOO_LONG
    assert _fault(b"\x02" + MSG + b"\x90") is DatagramFault.UNKNOWN_TYPE
    assert _fault(b"\x00" + MSG + b"\xc1") is DatagramFault.MALFORMED
    assert _fault(b"\x00" + MSG + codec.encode(["store"])) is DatagramFault.MALFORMED
    assert _fault(b"\x00" + MSG + codec.encode(["__init__", []])) is \
        DatagramFault.UNKNOWN_METHOD
    assert _fault(b"\x00" + MSG + codec.encode(["ping", [NODE, NODE]])) is \
        DatagramFault.BAD_ARGUMENTS
    assert _fault(b"\x00" + MSG + codec.encode(["find_node", [NODE, b"short"]])) is \
        DatagramFault.BAD_ARGUMENTS


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_bad_datagram(data: bytes) -> None:
    for candidate in (data, b"\x00" + MSG + data, b"\x01" + MSG + data):
        try:
            message = datagram.parse(candidate)
        except BadDatagram:
            continue
        if isinstance(message, Response):
            for method in Method:
                try:
                    datagram.check_response(method, message.value)
                except BadDatagram:
                    pass
