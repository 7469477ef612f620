"""The DHT's datagrams, parsed strictly (SPEC §4.3, §5: bad input is refused with a typed error).

The ``kademlia`` package speaks rpcudp's format: one UDP datagram per message, ::

    type (1 byte: 0 request, 1 response) | message id (20 bytes) | msgpack payload

with a request payload ``[method, [arguments...]]``. rpcudp dispatches any ``rpc_<method>`` by
name on whatever arguments arrive and trusts every response's shape; one malformed datagram then
raises inside a fire-and-forget task. Here every datagram is parsed into a :class:`Request` or a
:class:`Response` or refused with :class:`BadDatagram` before anything acts on it: the method must
be one of the four Kademlia RPCs, node ids and keys 20 bytes, and a response must have the shape
of the method it answers (:func:`check_response`). Stored values are not judged here; that is
the record validator's job. Payloads are decoded by :mod:`petranode.wire.codec` (bounded,
no floats or ext types), and we encode ours with it too — plain msgpack, so stock kademlia
nodes still understand us.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Final, final

from petranode.net.netdb.errors import NetDbError
from petranode.wire import codec
from petranode.wire.errors import DecodeError

REQUEST: Final = 0x00
RESPONSE: Final = 0x01
MSG_ID_BYTES: Final = 20
NODE_ID_BYTES: Final = 20
#: rpcudp refuses to send a payload over 8 KiB; nothing larger is a kademlia message.
MAX_PAYLOAD_BYTES: Final = 8192
MAX_DATAGRAM_BYTES: Final = 1 + MSG_ID_BYTES + MAX_PAYLOAD_BYTES
#: A FIND_NODE answer lists at most k contacts; 64 is the largest k we accept in config.
MAX_CONTACTS: Final = 64


class Method(enum.Enum):
    PING = "ping"
    STORE = "store"
    FIND_NODE = "find_node"
    FIND_VALUE = "find_value"


#: Arguments after the sender's node id: STORE has key and value, the FINDs a key.
_ARITY: Final = {Method.PING: 1, Method.STORE: 3, Method.FIND_NODE: 2, Method.FIND_VALUE: 2}


class DatagramFault(enum.Enum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    UNKNOWN_TYPE = "unknown_type"
    MALFORMED = "malformed"
    UNKNOWN_METHOD = "unknown_method"
    BAD_ARGUMENTS = "bad_arguments"
    BAD_RESPONSE = "bad_response"


class BadDatagram(NetDbError):
    def __init__(self, reason: DatagramFault) -> None:
        super().__init__(reason.value)
        self.reason = reason


@final
@dataclass(frozen=True, slots=True)
class Request:
    msg_id: bytes
    method: Method
    node_id: bytes
    #: The key of STORE and the FINDs; empty for PING.
    key: bytes = b""
    #: STORE's value, as decoded; judged by the record validator, not here.
    value: codec.Value = None


@final
@dataclass(frozen=True, slots=True)
class Response:
    msg_id: bytes
    value: codec.Value


Contact = tuple[bytes, str, int]


def parse(data: bytes) -> Request | Response:
    """One datagram as a request or a response; raises BadDatagram."""
    if len(data) < 1 + MSG_ID_BYTES + 1:
        raise BadDatagram(DatagramFault.TOO_SHORT)
    if len(data) > MAX_DATAGRAM_BYTES:
        raise BadDatagram(DatagramFault.TOO_LONG)
    kind, msg_id = data[0], data[1:1 + MSG_ID_BYTES]
    if kind not in (REQUEST, RESPONSE):
        raise BadDatagram(DatagramFault.UNKNOWN_TYPE)
    try:
        payload = codec.decode(data[1 + MSG_ID_BYTES:], max_size=MAX_PAYLOAD_BYTES)
    except DecodeError as exc:
        raise BadDatagram(DatagramFault.MALFORMED) from exc
    if kind == RESPONSE:
        return Response(msg_id, payload)
    return _request(msg_id, payload)


def _request(msg_id: bytes, payload: codec.Value) -> Request:
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], str)
            and isinstance(payload[1], list)):
        raise BadDatagram(DatagramFault.MALFORMED)
    name, args = payload[0], payload[1]
    assert isinstance(name, str) and isinstance(args, list)  # checked just above
    try:
        method = Method(name)
    except ValueError:
        raise BadDatagram(DatagramFault.UNKNOWN_METHOD) from None
    if len(args) != _ARITY[method] or not all(_is_id(a) for a in args[:2]):
        raise BadDatagram(DatagramFault.BAD_ARGUMENTS)
    node_id = args[0]
    assert isinstance(node_id, bytes)  # checked by _is_id
    key = args[1] if len(args) > 1 else b""
    assert isinstance(key, bytes)
    return Request(msg_id, method, node_id, key, args[2] if method is Method.STORE else None)


def check_response(method: Method, value: codec.Value) -> codec.Value:
    """``value`` if it has the shape of an answer to ``method``; else BadDatagram."""
    match method:
        case Method.PING:
            ok = _is_id(value)
        case Method.STORE:
            ok = isinstance(value, bool)
        case Method.FIND_NODE:
            ok = _is_contacts(value)
        case Method.FIND_VALUE:
            ok = _is_contacts(value) or (isinstance(value, dict) and len(value) == 1
                                         and isinstance(value.get("value"), bytes))
    if not ok:
        raise BadDatagram(DatagramFault.BAD_RESPONSE)
    return value


def encode_request(msg_id: bytes, method: Method, args: list[codec.Encodable]) -> bytes:
    return bytes([REQUEST]) + msg_id + codec.encode([method.value, args])


def encode_response(msg_id: bytes, value: codec.Encodable) -> bytes:
    return bytes([RESPONSE]) + msg_id + codec.encode(value)


def _is_id(value: codec.Value) -> bool:
    return isinstance(value, bytes) and len(value) == NODE_ID_BYTES


def _is_contacts(value: codec.Value) -> bool:
    return isinstance(value, list) and len(value) <= MAX_CONTACTS and all(
        _is_contact(c) for c in value)


def _is_contact(value: codec.Value) -> bool:
    if not (isinstance(value, list) and len(value) == 3 and _is_id(value[0])
            and isinstance(value[1], str) and isinstance(value[2], int)
            and not isinstance(value[2], bool) and 0 < value[2] < 65_536):
        return False
    # Only IP literals: a host name would make the transport resolve names peers chose.
    try:
        ipaddress.ip_address(value[1])
    except ValueError:
        return False
    return True
