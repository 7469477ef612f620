"""The sans-IO JSON-RPC 2.0 core, driven without an event loop (SPEC §4.9, §5).

Handlers are never run here: each test feeds the plan the outcomes it wants to check.
"""

import json
import logging
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rpc_test_methods import (
    CUSTOM_CODE,
    ORDER_LATE_CODE,
    SECRET,
    OrderLate,
    Recorder,
    Refused,
    make_table,
)

from petranode.rpc.errors import ErrorCode, RpcError
from petranode.rpc.protocol import (
    MAX_BATCH,
    MAX_DEPTH,
    MAX_REQUEST_BYTES,
    MethodTable,
    Outcome,
    Raised,
    Returned,
)
from petranode.store.errors import StorageError


def request(method: str, params: object = None, request_id: object = 1) -> dict[str, object]:
    body: dict[str, object] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    if request_id is not ...:
        body["id"] = request_id
    return body


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def answer(table: MethodTable, text: bytes, outcomes: list[Outcome] | None = None) -> object:
    """Plan ``text``, complete every call with ``outcomes`` (default: result null), decode."""
    plan = table.plan(text)
    if outcomes is None:
        outcomes = [Returned(None) for _ in plan.calls]
    response = plan.respond(outcomes)
    return None if response is None else json.loads(response)


def error_of(response: object) -> tuple[int, object]:
    assert isinstance(response, dict), response
    assert response["jsonrpc"] == "2.0"
    assert "result" not in response
    return response["error"]["code"], response["id"]


# --- single requests -------------------------------------------------------------------------


def test_call_is_planned_with_bound_parameters_and_answered(table: MethodTable) -> None:
    plan = table.plan(encode(request("test.echo", {"text": "hi"}, 7)))

    assert [(call.method, dict(call.kwargs), call.request_id) for call in plan.calls] == [
        ("test.echo", {"text": "hi", "times": 1}, 7)
    ]
    assert plan.respond([Returned("hi")]) == b'{"jsonrpc":"2.0","result":"hi","id":7}'


def test_positional_params_bind_in_declaration_order(table: MethodTable) -> None:
    plan = table.plan(encode(request("test.echo", ["ab", 3])))

    assert dict(plan.calls[0].kwargs) == {"text": "ab", "times": 3}


@pytest.mark.parametrize("request_id", ["abc", 0, -5, 1.5, None])
def test_every_valid_id_is_echoed(table: MethodTable, request_id: object) -> None:
    response = answer(table, encode(request("test.echo", {"text": "x"}, request_id)))

    assert response == {"jsonrpc": "2.0", "result": None, "id": request_id}


BAD_SINGLE_REQUESTS: list[tuple[str, bytes, ErrorCode, object]] = [
    ("invalid JSON", b'{"jsonrpc": "2.0", "method"', ErrorCode.PARSE_ERROR, None),
    ("empty text", b"", ErrorCode.PARSE_ERROR, None),
    ("not UTF-8", b'{"jsonrpc":"2.0","method":"\xff"}', ErrorCode.PARSE_ERROR, None),
    ("NaN is not JSON", b'{"jsonrpc":"2.0","method":"test.echo","id":NaN}', ErrorCode.PARSE_ERROR, None),
    ("a number", b"1", ErrorCode.INVALID_REQUEST, None),
    ("a string", b'"test.echo"', ErrorCode.INVALID_REQUEST, None),
    ("empty batch", b"[]", ErrorCode.INVALID_REQUEST, None),
    ("wrong version", encode({**request("test.refuse", request_id=3), "jsonrpc": "1.0"}), ErrorCode.INVALID_REQUEST, 3),
    ("version as number", encode({**request("test.refuse", request_id=3), "jsonrpc": 2.0}), ErrorCode.INVALID_REQUEST, 3),
    ("no version", encode({"method": "test.refuse", "id": 3}), ErrorCode.INVALID_REQUEST, 3),
    ("method not a string", encode({**request("x.y", request_id=4), "method": 5}), ErrorCode.INVALID_REQUEST, 4),
    ("no method", encode({"jsonrpc": "2.0", "id": 4}), ErrorCode.INVALID_REQUEST, 4),
    ("params a string", encode(request("test.echo", "hi", 5)), ErrorCode.INVALID_REQUEST, 5),
    ("params null", encode({**request("test.echo", request_id=5), "params": None}), ErrorCode.INVALID_REQUEST, 5),
    ("id a boolean", encode(request("test.refuse", request_id=True)), ErrorCode.INVALID_REQUEST, None),
    ("id an array", encode(request("test.refuse", request_id=[1])), ErrorCode.INVALID_REQUEST, None),
    ("misspelt member", encode({**request("test.echo", request_id=6), "param": {}}), ErrorCode.INVALID_REQUEST, 6),
    ("unknown method", encode(request("test.nothing", request_id=7)), ErrorCode.METHOD_NOT_FOUND, 7),
    ("missing param", encode(request("test.echo", {}, 8)), ErrorCode.INVALID_PARAMS, 8),
    ("wrong param type", encode(request("test.echo", {"text": 1}, 8)), ErrorCode.INVALID_PARAMS, 8),
    ("extra param", encode(request("test.echo", {"text": "a", "tmes": 2}, 8)), ErrorCode.INVALID_PARAMS, 8),
    ("too many positional", encode(request("test.echo", ["a", 1, 2], 8)), ErrorCode.INVALID_PARAMS, 8),
    ("params to a method without", encode(request("test.refuse", {"x": 1}, 8)), ErrorCode.INVALID_PARAMS, 8),
    ("rejected by __post_init__", encode(request("test.echo", {"text": "a", "times": 0}, 8)), ErrorCode.INVALID_PARAMS, 8),
    ("nested too deep", b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), ErrorCode.INVALID_REQUEST, None),
    ("far too deep", b"[" * 100_000, ErrorCode.INVALID_REQUEST, None),
    ("oversized", b" " * MAX_REQUEST_BYTES + b"{}", ErrorCode.INVALID_REQUEST, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "code", "request_id"),
    [case[1:] for case in BAD_SINGLE_REQUESTS],
    ids=[case[0] for case in BAD_SINGLE_REQUESTS],
)
def test_bad_request_gets_its_error_code_and_runs_nothing(
    table: MethodTable, text: bytes, code: ErrorCode, request_id: object
) -> None:
    plan = table.plan(text)

    assert plan.calls == ()
    assert error_of(answer(table, text)) == (code, request_id)


def test_invalid_params_message_names_the_parameter(table: MethodTable) -> None:
    response = answer(table, encode(request("test.echo", {"text": "a", "times": "2"})))

    assert isinstance(response, dict)
    assert "'times'" in response["error"]["message"]
    assert response["error"]["data"] == {"param": "times"}


def test_brackets_inside_strings_do_not_count_as_nesting(table: MethodTable) -> None:
    text = "[" * (MAX_DEPTH * 4) + '\\"]'
    plan = table.plan(encode(request("test.echo", {"text": text})))

    assert len(plan.calls) == 1


# --- notifications ---------------------------------------------------------------------------


def test_notification_runs_but_is_never_answered(table: MethodTable) -> None:
    plan = table.plan(encode(request("test.note", {"text": "n"}, ...)))

    assert [call.is_notification for call in plan.calls] == [True]
    assert plan.respond([Returned(None)]) is None
    assert plan.respond([Raised(RuntimeError("boom"))]) is None


@pytest.mark.parametrize(
    "body",
    [request("test.nothing", request_id=...), request("test.echo", {"txt": "a"}, ...)],
    ids=["unknown method", "bad params"],
)
def test_notification_that_cannot_run_is_dropped_silently(
    table: MethodTable, body: dict[str, object]
) -> None:
    plan = table.plan(encode(body))

    assert plan.calls == ()
    assert plan.respond([]) is None


def test_invalid_notification_is_still_answered_with_null_id(table: MethodTable) -> None:
    body = {"jsonrpc": "2.0", "method": 1, "params": "bar"}

    assert error_of(answer(table, encode(body))) == (ErrorCode.INVALID_REQUEST, None)


# --- batches ---------------------------------------------------------------------------------


def test_batch_answers_each_member_in_order(table: MethodTable) -> None:
    batch = [
        request("test.echo", {"text": "a"}, "first"),
        request("test.note", {"text": "quiet"}, ...),
        1,
        {"foo": "boo"},
        request("test.nothing", request_id=5),
        request("test.echo", {"text": 3}, 6),
        request("test.echo", ["b", 2], 7),
    ]
    plan = table.plan(encode(batch))

    assert [call.method for call in plan.calls] == ["test.echo", "test.note", "test.echo"]
    response = plan.respond([Returned("a"), Returned(None), Returned("bb")])
    assert json.loads(response or b"") == [
        {"jsonrpc": "2.0", "result": "a", "id": "first"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "invalid request: request must be an object"}, "id": None},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "invalid request: unknown member 'foo'"}, "id": None},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "method not found"}, "id": 5},
        {"jsonrpc": "2.0", "error": {"code": -32602, "message": "parameter 'text': expected string, got number", "data": {"param": "text"}}, "id": 6},
        {"jsonrpc": "2.0", "result": "bb", "id": 7},
    ]  # fmt: skip


def test_batch_of_only_notifications_gets_no_response(table: MethodTable) -> None:
    batch = [request("test.note", {"text": str(n)}, ...) for n in range(3)]

    assert answer(table, encode(batch)) is None


def test_batch_larger_than_the_bound_is_one_invalid_request(table: MethodTable) -> None:
    batch = [request("test.refuse", request_id=n) for n in range(MAX_BATCH + 1)]

    assert error_of(answer(table, encode(batch))) == (ErrorCode.INVALID_REQUEST, None)


def test_respond_needs_one_outcome_per_call(table: MethodTable) -> None:
    plan = table.plan(encode(request("test.refuse")))

    with pytest.raises(ValueError):
        plan.respond([])


# --- handler failures ------------------------------------------------------------------------


def failure_of(table: MethodTable, error: Exception) -> dict[str, object]:
    response = answer(table, encode(request("test.refuse")), [Raised(error)])
    assert isinstance(response, dict)
    assert response["id"] == 1
    error_object = response["error"]
    assert isinstance(error_object, dict)
    return error_object


def test_unregistered_petranode_error_is_the_generic_application_code(
    table: MethodTable,
) -> None:
    assert failure_of(table, Refused("no such offer")) == {
        "code": ErrorCode.PETRANODE_ERROR,
        "message": "no such offer",
        "data": {"error": "Refused"},
    }


def test_registered_error_has_its_code_and_enum_reason(table: MethodTable) -> None:
    assert failure_of(table, OrderLate()) == {
        "code": ORDER_LATE_CODE,
        "message": "order after gate closure",
        "data": {"error": "OrderLate", "reason": "AFTER_GATE_CLOSURE"},
    }


def test_rpc_error_raised_by_a_handler_is_sent_as_is(table: MethodTable) -> None:
    error = RpcError(CUSTOM_CODE, "custom failure", {"hint": "retry"})

    assert failure_of(table, error) == {
        "code": CUSTOM_CODE,
        "message": "custom failure",
        "data": {"hint": "retry"},
    }


def test_unexpected_exception_is_internal_error_logged_not_leaked(
    table: MethodTable, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="petranode.rpc"):
        error = failure_of(table, RuntimeError(SECRET))

    assert error == {"code": ErrorCode.INTERNAL_ERROR, "message": "internal error"}
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_storage_error_hides_its_sql_message(table: MethodTable) -> None:
    error = failure_of(table, StorageError(f"no such table: {SECRET}"))

    assert error["code"] == ErrorCode.STORAGE_ERROR
    assert SECRET not in json.dumps(error)


def test_result_that_is_not_json_is_internal_error(table: MethodTable) -> None:
    response = answer(table, encode(request("test.refuse")), [Returned(object())])  # type: ignore[arg-type]

    assert error_of(response) == (ErrorCode.INTERNAL_ERROR, 1)


# --- registration ----------------------------------------------------------------------------


async def no_params() -> None:
    return None


@dataclass(frozen=True)
class BytesParams:
    blob: bytes


@dataclass(frozen=True)
class TwoParams:
    first: str
    second: int


@pytest.mark.parametrize("name", ["status", "Node.status", "node.", ".status", "node status"])
def test_method_names_are_layer_dot_method(name: str) -> None:
    with pytest.raises(ValueError):
        MethodTable().register(name, no_params)


def test_a_method_is_registered_once() -> None:
    table = MethodTable()
    table.register("node.status", no_params)

    with pytest.raises(ValueError):
        table.register("node.status", no_params)


def test_unsupported_parameter_type_is_refused_at_registration() -> None:
    async def takes_blob(blob: bytes) -> None:
        return None

    with pytest.raises(TypeError):
        MethodTable().register("node.blob", takes_blob, BytesParams)


def test_handler_must_accept_the_declared_parameters() -> None:
    async def takes_first_only(first: str) -> None:
        return None

    with pytest.raises(TypeError):
        MethodTable().register("node.two", takes_first_only, TwoParams)


# --- property: any bytes give a valid JSON-RPC answer ----------------------------------------


def assert_response_object(item: object) -> None:
    assert isinstance(item, dict)
    assert item["jsonrpc"] == "2.0"
    assert "id" in item
    assert ("result" in item) != ("error" in item)
    if "error" in item:
        assert isinstance(item["error"]["code"], int)
        assert isinstance(item["error"]["message"], str)


def assert_valid_answer(table: MethodTable, text: bytes) -> None:
    response = answer(table, text)
    if isinstance(response, list):
        assert response
        for item in response:
            assert_response_object(item)
    elif response is not None:
        assert_response_object(response)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "method": st.sampled_from(["test.echo", "test.note", "test.refuse", "x.y"]) | json_values,
        "params": st.fixed_dictionaries({}, optional={"text": json_values, "times": json_values})
        | st.lists(json_values, max_size=3)
        | json_values,
        "id": json_values,
    },
)
documents = request_like | st.lists(request_like | json_values, max_size=5) | json_values


@settings(max_examples=200)
@given(text=st.binary(max_size=512))
def test_arbitrary_bytes_give_an_error_response_never_an_exception(text: bytes) -> None:
    assert_valid_answer(make_table(Recorder()), text)


@settings(max_examples=200)
@given(document=documents, cut=st.integers(min_value=0, max_value=64))
def test_arbitrary_json_whole_or_truncated_gives_a_valid_answer(document: object, cut: int) -> None:
    table = make_table(Recorder())
    text = encode(document)
    assert_valid_answer(table, text)
    assert_valid_answer(table, text[: len(text) - cut])
