"""Canonical msgpack: the one byte encoding of every petranode message and record (SPEC §4.2, §5).

Rules of the encoding — one value has exactly one encoding, so a hash or a signature over the
bytes is a hash or signature over the value:

* Types are ``None``, ``bool``, ``int`` (−2⁶³ … 2⁶⁴−1), ``str`` (UTF-8, msgpack *str* family),
  ``bytes`` (msgpack *bin* family), arrays (``list``; ``tuple`` encodes as an array too) and maps
  with ``str`` keys. Every integer, string, binary, array and map header takes its shortest form
  (msgpack-python always writes the shortest form).
* Map keys are written in ascending order of their UTF-8 bytes (UTF-8 preserves code-point
  order, so this is Python's ``sorted`` on ``str``), as RFC 8949 §4.2.1 does for CBOR.
* No floats: a float's width (32 or 64 bits), ``-0.0`` and NaN payloads give one number several
  encodings, and no petranode quantity needs one (amounts and power are integers, times are
  integer seconds or milliseconds). No ext types and no timestamps, for the same reason.

Decoding is bounded before any work (bitcoinlib ``core/serialize.py``): the input length is
checked against the caller's ``max_size`` first, then msgpack is told the largest string,
binary, array and map it may allocate, so a 5-byte header claiming four billion elements fails
without allocating them. Trailing bytes, unsupported types, non-string or duplicate map keys and
nesting deeper than :data:`MAX_DEPTH` are refused. Every msgpack exception becomes a
:class:`~petranode.wire.errors.DecodeError` here, once, with ``raise … from``.

:func:`decode_canonical` additionally re-encodes the value and refuses the input unless it is
byte-identical, for records whose bytes are signed or hashed. The ``expect_*`` helpers narrow a
decoded :data:`Value` to what a record expects, raising ``DecodeError(WRONG_SHAPE)`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, cast

import msgpack  # type: ignore[import-untyped]

from petranode.wire.errors import DecodeError, DecodeFault

#: A decoded value. Decoding never produces a tuple; encoding accepts one as an array.
Value = None | bool | int | str | bytes | list["Value"] | dict[str, "Value"]
#: What :func:`encode` accepts.
Encodable = None | bool | int | str | bytes | Sequence["Encodable"] | Mapping[str, "Encodable"]

#: Most containers (arrays, maps) nested in one another, the outermost included. petranode records nest at most four or five levels
#: (a block holds transactions holding inputs holding rings); 32 leaves room and keeps the
#: validating walk cheap. msgpack itself stops at 1024.
MAX_DEPTH: Final = 32
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def encode(value: Encodable) -> bytes:
    """The canonical msgpack bytes of ``value``.

    Raises ``TypeError`` for a type outside the encoding (a float, a set, a non-``str`` key) and
    ``ValueError`` for an integer outside msgpack's range: both are the caller's bug.
    """
    return bytes(msgpack.packb(_canonical(value, 0), use_bin_type=True, strict_types=True))


def decode(data: bytes, *, max_size: int) -> Value:
    """Decode exactly one value from ``data``, which must be at most ``max_size`` bytes."""
    if len(data) > max_size:
        raise DecodeError(DecodeFault.OVERSIZED, f"{len(data)} > {max_size} bytes")
    try:
        value: object = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_map_from_pairs,
            ext_hook=_refuse_ext,
            max_str_len=max_size,
            max_bin_len=max_size,
            # Every element takes at least one byte, every map entry at least two.
            max_array_len=max_size,
            max_map_len=max_size // 2,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError(DecodeFault.TRAILING_BYTES) from exc
    except msgpack.StackError as exc:
        raise DecodeError(DecodeFault.TOO_DEEP) from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(DecodeFault.MALFORMED, "invalid UTF-8 in a string") from exc
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        # ValueError covers msgpack's FormatError, OutOfData ("incomplete input"), the
        # max_*_len limits and strict_map_key; TypeError an unhashable key.
        raise DecodeError(DecodeFault.MALFORMED) from exc
    return _checked(value)


def decode_canonical(data: bytes, *, max_size: int) -> Value:
    """Decode ``data`` and refuse it unless it is the canonical encoding of its value."""
    value = decode(data, max_size=max_size)
    if encode(value) != data:
        raise DecodeError(DecodeFault.NON_CANONICAL)
    return value


# -- typed narrowing for record decoders ----------------------------------------------------


def expect_list(value: Value, length: int | None = None, *, what: str = "value") -> list[Value]:
    """``value`` as an array, of exactly ``length`` elements when given."""
    if not isinstance(value, list):
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected an array")
    if length is not None and len(value) != length:
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected {length} elements")
    return value


def expect_map(value: Value, *, what: str = "value") -> dict[str, Value]:
    if not isinstance(value, dict):
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected a map")
    return value


def expect_bytes(
    value: Value, size: int | None = None, *, max_size: int | None = None, what: str = "value"
) -> bytes:
    """``value`` as binary, of exactly ``size`` bytes or at most ``max_size`` bytes."""
    if not isinstance(value, bytes):
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected binary")
    if size is not None and len(value) != size:
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected {size} bytes")
    if max_size is not None and len(value) > max_size:
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: longer than {max_size} bytes")
    return value


def expect_int(value: Value, lo: int, hi: int, *, what: str = "value") -> int:
    """``value`` as an integer in ``lo..hi`` inclusive (a ``bool`` is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected an integer")
    if not lo <= value <= hi:
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: outside {lo}..{hi}")
    return value


def expect_str(value: Value, *, max_len: int, min_len: int = 0, what: str = "value") -> str:
    """``value`` as a string of ``min_len..max_len`` characters."""
    if not isinstance(value, str):
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected a string")
    if not min_len <= len(value) <= max_len:
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: length outside {min_len}..{max_len}")
    return value


def expect_bool(value: Value, *, what: str = "value") -> bool:
    if not isinstance(value, bool):
        raise DecodeError(DecodeFault.WRONG_SHAPE, f"{what}: expected a boolean")
    return value


# -- internals --------------------------------------------------------------------------------


def _canonical(value: Encodable, depth: int) -> Value:
    """``value`` with maps rebuilt in sorted key order and tuples turned into lists."""
    if value is None or isinstance(value, bool):
        return value
    # Subclasses (a StrEnum, an IntEnum) are written as their plain value.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError("integer outside msgpack's range")
        return int(value)
    if isinstance(value, (Mapping, list, tuple)) and depth >= MAX_DEPTH:
        raise ValueError(f"containers nested deeper than {MAX_DEPTH}")
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"map key must be str, not {type(key).__name__}")
        return {key: _canonical(value[key], depth + 1) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1) for item in value]
    raise TypeError(f"{type(value).__name__} has no canonical msgpack encoding")


def _map_from_pairs(pairs: list[tuple[object, object]]) -> dict[object, object]:
    result: dict[object, object] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise DecodeError(DecodeFault.BAD_MAP_KEY, "map key is not a string")
        if key in result:
            raise DecodeError(DecodeFault.BAD_MAP_KEY, "map key given twice")
        result[key] = item
    return result


def _refuse_ext(code: int, data: bytes) -> object:
    raise DecodeError(DecodeFault.UNSUPPORTED_TYPE, f"ext type {code}")


def _checked(root: object) -> Value:
    """``root`` itself, once every node in it is a :data:`Value` type and nesting is bounded.

    Iterative, so a hostile input cannot reach Python's recursion limit.
    """
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            if depth >= MAX_DEPTH:
                raise DecodeError(DecodeFault.TOO_DEEP, f"deeper than {MAX_DEPTH}")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif not (node is None or isinstance(node, (bool, int, str, bytes))):
            raise DecodeError(DecodeFault.UNSUPPORTED_TYPE, type(node).__name__)
    return cast(Value, root)  # every node was just checked
