"""Sans-IO JSON-RPC 2.0 core of the control interface (SPEC §4.9).

Theory of operation. One request text (a line from the socket) goes through three steps:

1. :meth:`MethodTable.plan` decodes and validates it, per https://www.jsonrpc.org/specification,
   into a :class:`Plan`: the :class:`Call` s to run (method found, params bound) and, in request
   order, either a ready answer (an error decided without running anything) or a slot for a call.
2. The I/O shell (``rpc/server.py``) awaits each ``call.start()`` — concurrently for a batch —
   and records an :data:`Outcome` per call: :class:`Returned` or :class:`Raised`.
3. :meth:`Plan.respond` turns the outcomes into the response text, or None when nothing is due.

Rules (JSON-RPC 2.0 §4–§6): ``jsonrpc`` is exactly ``"2.0"``; ``method`` a string; ``params``, if
present, an array or object; ``id`` a string, number or null. A request without ``id`` is a
notification: it runs but is never answered, not even with an error, unless it is not a valid
request at all. Invalid JSON is −32700 with id null; an empty batch is one −32600; each invalid
member of a batch gets its own −32600; a batch of only notifications gets no response. Members
other than these four are refused as −32600 so a misspelt ``"param"`` is not silently ignored.

Bounds are checked before any parsing work: :data:`MAX_REQUEST_BYTES`, :data:`MAX_DEPTH`,
:data:`MAX_BATCH`. This module never awaits, reads the clock or touches a socket.
"""

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeAlias, TypeGuard, assert_never, final

from petranode.errors import PetranodeError
from petranode.rpc.errors import ErrorCode, ErrorTable, JsonValue, RpcError, default_error_table
from petranode.rpc.params import ParamSpec, check_handler_accepts

log = logging.getLogger(__name__)

# The largest legitimate request is a signed transaction (a few kB of ring signature and range
# proof) or a batch of a few of them; 1 MiB leaves ample room while bounding per-connection memory.
MAX_REQUEST_BYTES = 1 << 20
# No petranode method takes parameters nested more than a few levels; 32 keeps the recursive
# json decoder far from Python's recursion limit.
MAX_DEPTH = 32
# A batch is a convenience for scripts and the CLI, not a bulk-load path; 100 members keeps one
# line's worth of work bounded.
MAX_BATCH = 100

RequestId: TypeAlias = str | int | float | None
Handler: TypeAlias = Callable[..., Awaitable[JsonValue]]

_REQUEST_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
# Layer-grouped names: "node.status", "netdb.lookup", "market.post_offer".
_METHOD_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# A JSON string literal, unrolled-loop form so long strings match in linear time.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


@final
@dataclass(frozen=True, slots=True)
class Call:
    """A validated request ready to run: the handler with its bound keyword parameters."""

    method: str
    handler: Handler
    kwargs: Mapping[str, object]
    request_id: RequestId
    is_notification: bool

    def start(self) -> Awaitable[JsonValue]:
        """The handler's awaitable; the I/O shell awaits it and records the outcome."""
        return self.handler(**self.kwargs)


@final
@dataclass(frozen=True, slots=True)
class Returned:
    value: JsonValue


@final
@dataclass(frozen=True, slots=True)
class Raised:
    error: Exception


Outcome: TypeAlias = Returned | Raised


@final
@dataclass(frozen=True, slots=True)
class _Answer:
    """A response decided while planning (already encoded)."""

    encoded: bytes


@final
@dataclass(frozen=True, slots=True)
class _Pending:
    """The response of ``calls[index]``, known once it has run (None for a notification)."""

    index: int


_Entry: TypeAlias = _Answer | _Pending


class _Rejected(Exception):
    """Internal: this request (or batch member) is answered with an error and nothing runs."""

    def __init__(self, code: ErrorCode, message: str, request_id: RequestId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@final
@dataclass(frozen=True, slots=True)
class Plan:
    """What one request text asks for: calls to run and how to assemble the answer."""

    calls: tuple[Call, ...]
    entries: tuple[_Entry, ...]
    is_batch: bool
    errors: ErrorTable

    def respond(self, outcomes: Sequence[Outcome]) -> bytes | None:
        """The response text (no trailing newline), or None if no response is due.

        ``outcomes[i]`` is the outcome of ``calls[i]``.
        """
        if len(outcomes) != len(self.calls):
            raise ValueError(f"{len(outcomes)} outcomes for {len(self.calls)} calls")
        parts = [part for entry in self.entries if (part := self._part(entry, outcomes))]
        if not parts:
            return None
        if self.is_batch:
            return b"[" + b",".join(parts) + b"]"
        return parts[0]

    def _part(self, entry: _Entry, outcomes: Sequence[Outcome]) -> bytes | None:
        match entry:
            case _Answer(encoded):
                return encoded
            case _Pending(index):
                return _settle(self.calls[index], outcomes[index], self.errors)
            case _:
                assert_never(entry)


class MethodTable:
    """The one dispatch table of RPC methods, and the error table used to answer their failures."""

    def __init__(self, errors: ErrorTable | None = None) -> None:
        self.errors = errors if errors is not None else default_error_table()
        self._methods: dict[str, tuple[Handler, ParamSpec]] = {}

    def register(self, name: str, handler: Handler, params: type | None = None) -> None:
        """Expose ``handler`` as ``name``, its parameters declared by the dataclass ``params``.

        ``handler`` is awaited with the parameters as keyword arguments; ``params`` None means the
        method takes none. Raises TypeError or ValueError on a malformed registration.
        """
        if not _METHOD_NAME.fullmatch(name):
            raise ValueError(f"method name {name!r} is not of the form 'layer.method'")
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        spec = ParamSpec.of(params)
        check_handler_accepts(handler, spec)
        self._methods[name] = (handler, spec)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._methods))

    def plan(self, text: bytes) -> Plan:
        """Decode and validate one request text; never raises on any input."""
        try:
            document = _decode(text)
        except _Rejected as rejected:
            return self._single_answer(rejected)
        if isinstance(document, list):
            return self._plan_batch(document)
        try:
            admitted = self._admit(document)
        except _Rejected as rejected:
            return self._single_answer(rejected)
        if admitted is None:
            return Plan((), (), False, self.errors)
        return Plan((admitted,), (_Pending(0),), False, self.errors)

    def _plan_batch(self, members: list[object]) -> Plan:
        if not members:
            return self._single_answer(
                _Rejected(ErrorCode.INVALID_REQUEST, "invalid request: empty batch")
            )
        if len(members) > MAX_BATCH:
            message = f"invalid request: batch of {len(members)} exceeds {MAX_BATCH}"
            return self._single_answer(_Rejected(ErrorCode.INVALID_REQUEST, message))
        calls: list[Call] = []
        entries: list[_Entry] = []
        for member in members:
            try:
                admitted = self._admit(member)
            except _Rejected as rejected:
                entries.append(_Answer(encode_error(rejected.request_id, _as_error(rejected))))
                continue
            if admitted is not None:
                entries.append(_Pending(len(calls)))
                calls.append(admitted)
        return Plan(tuple(calls), tuple(entries), True, self.errors)

    def _single_answer(self, rejected: _Rejected) -> Plan:
        answer = _Answer(encode_error(rejected.request_id, _as_error(rejected)))
        return Plan((), (answer,), False, self.errors)

    def _admit(self, member: object) -> Call | None:
        """A runnable call; None for a notification that cannot run; _Rejected otherwise."""
        if not isinstance(member, dict):
            raise _Rejected(ErrorCode.INVALID_REQUEST, "invalid request: request must be an object")
        request_id = member.get("id") if _is_valid_id(member.get("id")) else None
        is_notification = "id" not in member
        method, params = _check_envelope(member, request_id)
        try:
            handler, spec = self._lookup(method, request_id)
            kwargs = _bind(spec, params, request_id)
        except _Rejected:
            # JSON-RPC 2.0 §4.1: a notification is never answered, not even with an error.
            if not is_notification:
                raise
            log.debug("rpc.notification.dropped method=%.64s", method)
            return None
        return Call(method, handler, kwargs, request_id, is_notification)

    def _lookup(self, method: str, request_id: RequestId) -> tuple[Handler, ParamSpec]:
        entry = self._methods.get(method)
        if entry is None:
            raise _Rejected(ErrorCode.METHOD_NOT_FOUND, "method not found", request_id)
        return entry


def _bind(
    spec: ParamSpec,
    params: list[JsonValue] | dict[str, JsonValue] | None,
    request_id: RequestId,
) -> dict[str, object]:
    try:
        return spec.bind(params)
    except RpcError as exc:
        raise _Rejected(ErrorCode.INVALID_PARAMS, exc.message, request_id) from exc


def _decode(text: bytes) -> object:
    """The JSON document of ``text``, with the size and depth bounds checked first."""
    if len(text) > MAX_REQUEST_BYTES:
        raise _Rejected(ErrorCode.INVALID_REQUEST, f"request exceeds {MAX_REQUEST_BYTES} bytes")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise _Rejected(ErrorCode.PARSE_ERROR, "parse error: request is not UTF-8") from None
    if _too_deep(decoded):
        raise _Rejected(ErrorCode.INVALID_REQUEST, f"request nested deeper than {MAX_DEPTH}")
    try:
        return json.loads(decoded, parse_constant=_reject_constant)
    # RecursionError cannot happen below MAX_DEPTH; caught so the decoder has two outcomes only.
    except (ValueError, RecursionError):
        raise _Rejected(ErrorCode.PARSE_ERROR, "parse error: invalid JSON") from None


def _too_deep(decoded: str) -> bool:
    """Whether arrays/objects nest deeper than MAX_DEPTH, brackets inside strings ignored."""
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub("", decoded)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _reject_constant(name: str) -> object:
    # NaN and Infinity are accepted by Python's json module but are not JSON.
    raise ValueError(f"{name} is not JSON")


def _is_valid_id(value: object) -> TypeGuard[RequestId]:
    # bool is an int subclass in Python but not a number in JSON.
    return not isinstance(value, bool) and isinstance(value, str | int | float | None)


def _check_envelope(
    member: dict[str, object], request_id: RequestId
) -> tuple[str, list[JsonValue] | dict[str, JsonValue] | None]:
    """The method and params of a well-formed request object; the id is echoed if valid."""
    unknown = sorted(set(member) - _REQUEST_MEMBERS)
    if unknown:
        _invalid(f"unknown member {unknown[0]!r:.64}", request_id)
    if member.get("jsonrpc") != "2.0":
        _invalid('"jsonrpc" must be "2.0"', request_id)
    method = member.get("method")
    if not isinstance(method, str):
        _invalid('"method" must be a string', request_id)
    if "id" in member and not _is_valid_id(member["id"]):
        _invalid('"id" must be a string, a number or null', request_id)
    if "params" not in member:
        return method, None
    params = member["params"]
    if not isinstance(params, list | dict):
        _invalid('"params" must be an array or an object', request_id)
    return method, params


def _invalid(reason: str, request_id: RequestId) -> NoReturn:
    raise _Rejected(ErrorCode.INVALID_REQUEST, f"invalid request: {reason}", request_id)


def _as_error(rejected: _Rejected) -> RpcError:
    data: JsonValue = None
    cause = rejected.__cause__
    if isinstance(cause, RpcError):
        data = cause.data
    return RpcError(rejected.code, rejected.message, data)


def _settle(call: Call, outcome: Outcome, errors: ErrorTable) -> bytes | None:
    """The encoded response to one call that ran, or None for a notification."""
    match outcome:
        case Returned(value):
            if call.is_notification:
                return None
            return _result_response(call, value)
        case Raised(error):
            rpc_error = _to_rpc_error(call, error, errors)
            if call.is_notification:
                return None
            return encode_error(call.request_id, rpc_error)
        case _:
            assert_never(outcome)


def _to_rpc_error(call: Call, error: Exception, errors: ErrorTable) -> RpcError:
    """Map a handler's exception via the error table; anything unexpected is −32603 and logged."""
    if isinstance(error, RpcError):
        log.debug("rpc.call.failed method=%s code=%d", call.method, error.code)
        return error
    if isinstance(error, PetranodeError):
        if errors.lookup(type(error)).expose_message:
            log.info("rpc.call.failed method=%s error=%s", call.method, type(error).__name__)
        else:
            log.error("rpc.call.failed method=%s", call.method, exc_info=error)
        return errors.to_rpc_error(error)
    log.error("rpc.call.crashed method=%s", call.method, exc_info=error)
    return RpcError(ErrorCode.INTERNAL_ERROR, "internal error")


def _result_response(call: Call, value: JsonValue) -> bytes:
    try:
        result = _encode(value)
    except (TypeError, ValueError) as exc:
        log.error("rpc.result.unencodable method=%s", call.method, exc_info=exc)
        return encode_error(call.request_id, RpcError(ErrorCode.INTERNAL_ERROR, "internal error"))
    return b'{"jsonrpc":"2.0","result":' + result + b',"id":' + _encode(call.request_id) + b"}"


def encode_error(request_id: RequestId, error: RpcError) -> bytes:
    """The encoded error response; the I/O shell uses it for errors found before planning."""
    body: dict[str, JsonValue] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    try:
        encoded = _encode({"jsonrpc": "2.0", "error": body, "id": request_id})
    except (TypeError, ValueError):
        # A handler raised RpcError with data that is not JSON; drop the data, keep the error.
        del body["data"]
        encoded = _encode({"jsonrpc": "2.0", "error": body, "id": request_id})
    return encoded


def _encode(value: object) -> bytes:
    """Compact JSON; ASCII-only so a response line never contains a raw newline or odd bytes."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
