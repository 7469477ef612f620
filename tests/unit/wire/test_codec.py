"""Canonical msgpack (petranode.wire.codec): exact bytes both ways, limits, and fuzzing."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

#: (value, canonical bytes) — used both ways.
VECTORS: list[tuple[codec.Value, str]] = [
    (None, "c0"),
    (False, "c2"),
    (True, "c3"),
    (0, "00"),
    (127, "7f"),
    (128, "cc80"),
    (256, "cd0100"),
    (2**32, "cf0000000100000000"),
    (2**64 - 1, "cfffffffffffffffff"),
    (-1, "ff"),
    (-33, "d0df"),
    (-(2**63), "d38000000000000000"),
    ("", "a0"),
    ("t", "a174"),
    ("é", "a2c3a9"),
    ("x" * 32, "d920" + "78" * 32),
    (b"", "c400"),
    (b"\x00\xff", "c40200ff"),
    (b"\x01" * 256, "c50100" + "01" * 256),
    ([], "90"),
    ([1, [2, None]], "920192" + "02c0"),
    ({}, "80"),
    # Keys sorted by their UTF-8 bytes, whatever order the map was built in.
    ({"b": 1, "a": 2, "aa": 3}, "83" + "a16102" + "a2616103" + "a16201"),
    ({"t": "ping", "n": b"\x07"}, "82" + "a16ec40107" + "a174a470696e67"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), VECTORS)
def test_encode_gives_the_exact_bytes(value: codec.Value, hex_bytes: str) -> None:
    assert codec.encode(value).hex() == hex_bytes


@pytest.mark.parametrize(("value", "hex_bytes"), VECTORS)
def test_decode_canonical_gives_the_value(value: codec.Value, hex_bytes: str) -> None:
    assert codec.decode_canonical(bytes.fromhex(hex_bytes), max_size=1024) == value


def test_tuples_and_enum_subclasses_encode_as_plain_values() -> None:
    class Kind(enum.StrEnum):
        A = "a"

    class Num(enum.IntEnum):
        ONE = 1

    assert codec.encode((Kind.A, Num.ONE)) == codec.encode(["a", 1])


@pytest.mark.parametrize(
    "value", [1.5, {1: 2}, {b"k": 1}, {"a", "b"}, bytearray(b"x"), 2**64, -(2**63) - 1]
)
def test_encode_refuses_values_without_a_canonical_form(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        codec.encode(value)  # type: ignore[arg-type]


def test_encode_refuses_nesting_beyond_the_limit() -> None:
    deep: list[object] = []  # MAX_DEPTH + 1 nested arrays
    for _ in range(codec.MAX_DEPTH):
        deep = [deep]
    with pytest.raises(ValueError):
        codec.encode(deep)  # type: ignore[arg-type]


#: (hex input, fault) — every way an input can be refused.
REFUSALS = [
    ("", DecodeFault.MALFORMED),
    ("c1", DecodeFault.MALFORMED),  # never-used byte
    ("92 01", DecodeFault.MALFORMED),  # truncated array
    ("a2 ff fe", DecodeFault.MALFORMED),  # invalid UTF-8
    ("01 02", DecodeFault.TRAILING_BYTES),
    ("cb 3ff8000000000000", DecodeFault.UNSUPPORTED_TYPE),  # float64 1.5
    ("ca 3fc00000", DecodeFault.UNSUPPORTED_TYPE),  # float32 1.5
    ("d6 ff 00000001", DecodeFault.MALFORMED),  # timestamp ext: max_ext_len is 0
    ("c7 00 05", DecodeFault.UNSUPPORTED_TYPE),  # zero-length ext
    ("81 01 02", DecodeFault.MALFORMED),  # int key (msgpack's strict_map_key)
    ("81 c4 01 61 02", DecodeFault.BAD_MAP_KEY),  # binary key
    ("82 a1 61 01 a1 61 02", DecodeFault.BAD_MAP_KEY),  # duplicate key
    ("dd ffffffff", DecodeFault.MALFORMED),  # 4-billion-element array header
    ("df ffffffff", DecodeFault.MALFORMED),
    ("c6 ffffffff", DecodeFault.MALFORMED),  # 4 GiB binary header
    ("91" * (codec.MAX_DEPTH + 1) + "c0", DecodeFault.TOO_DEEP),
    ("91" * 2000 + "c0", DecodeFault.TOO_DEEP),  # msgpack's own stack limit
]


@pytest.mark.parametrize(("hex_input", "fault"), REFUSALS)
def test_decode_refuses_with_a_reason(hex_input: str, fault: DecodeFault) -> None:
    with pytest.raises(DecodeError) as raised:
        codec.decode(bytes.fromhex(hex_input.replace(" ", "")), max_size=10_000)
    assert raised.value.reason is fault


def test_nesting_up_to_the_limit_is_accepted() -> None:
    data = bytes.fromhex("91" * codec.MAX_DEPTH + "c0")
    assert codec.decode(data, max_size=100) is not None
    assert codec.encode(codec.decode(data, max_size=100)) == data


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(DecodeError) as raised:
        codec.decode(b"\xc1" * 11, max_size=10)  # garbage, but too long is said first
    assert raised.value.reason is DecodeFault.OVERSIZED


def test_length_headers_are_bounded_by_max_size() -> None:
    data = codec.encode(b"x" * 100)
    assert codec.decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(DecodeError):
        codec.decode(data, max_size=len(data) - 1)


@pytest.mark.parametrize(
    ("hex_input", "why"),
    [
        ("cc05", "5 in a uint8 instead of a fixint"),
        ("d90174", "'t' in str8 instead of fixstr"),
        ("dc000101", "array16 of one element"),
        ("82a16201a16102", "keys out of order"),
    ],
)
def test_decode_canonical_refuses_other_encodings_of_a_value(hex_input: str, why: str) -> None:
    data = bytes.fromhex(hex_input)
    codec.decode(data, max_size=100)  # valid msgpack…
    with pytest.raises(DecodeError) as raised:  # …but not the canonical form
        codec.decode_canonical(data, max_size=100)
    assert raised.value.reason is DecodeFault.NON_CANONICAL, why


# -- expect_* helpers -------------------------------------------------------------------------


def test_expect_helpers_accept_the_right_shape() -> None:
    assert codec.expect_list([1, 2], 2) == [1, 2]
    assert codec.expect_map({"a": 1}) == {"a": 1}
    assert codec.expect_bytes(b"ab", 2) == b"ab"
    assert codec.expect_bytes(b"ab", max_size=2) == b"ab"
    assert codec.expect_int(5, 0, 5) == 5
    assert codec.expect_str("ab", max_len=2) == "ab"
    assert codec.expect_bool(False) is False


@pytest.mark.parametrize(
    "check",
    [
        lambda: codec.expect_list({}, None),
        lambda: codec.expect_list([1], 2),
        lambda: codec.expect_map([]),
        lambda: codec.expect_bytes("ab"),
        lambda: codec.expect_bytes(b"abc", 2),
        lambda: codec.expect_bytes(b"abc", max_size=2),
        lambda: codec.expect_int(True, 0, 5),
        lambda: codec.expect_int(6, 0, 5),
        lambda: codec.expect_int(b"1", 0, 5),
        lambda: codec.expect_str(b"a", max_len=5),
        lambda: codec.expect_str("", min_len=1, max_len=5),
        lambda: codec.expect_bool(1),
    ],
)
def test_expect_helpers_refuse_the_wrong_shape(check) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError) as raised:
        check()
    assert raised.value.reason is DecodeFault.WRONG_SHAPE


# -- properties ---------------------------------------------------------------------------------

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=200)
@given(values)
def test_round_trip(value: codec.Value) -> None:
    data = codec.encode(value)
    assert codec.decode(data, max_size=len(data)) == value
    assert codec.decode_canonical(data, max_size=len(data)) == value


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_value_or_decode_error(data: bytes) -> None:
    for decoder in (codec.decode, codec.decode_canonical):
        try:
            decoder(data, max_size=150)
        except DecodeError:
            pass


@settings(max_examples=200)
@given(values, st.data())
def test_any_prefix_or_extension_gives_a_value_or_decode_error(
    value: codec.Value, data: st.DataObject
) -> None:
    encoded = codec.encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded)))
    tail = data.draw(st.binary(max_size=8))
    for candidate in (encoded[:cut], encoded[:cut] + tail):
        try:
            codec.decode(candidate, max_size=10_000)
        except DecodeError:
            pass
