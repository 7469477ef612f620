"""Declarative parameter specs for RPC methods (SPEC §4.9).

A method declares its parameters as a frozen dataclass: field names are the parameter names, field
annotations their JSON types, field defaults make them optional. :class:`ParamSpec` turns the
dataclass into a checker once, at registration, and :meth:`ParamSpec.bind` validates a request's
``params`` (by name or by position, JSON-RPC 2.0 §4.2) before the handler runs. Anything wrong is
an ``INVALID_PARAMS`` :class:`~petranode.rpc.errors.RpcError` naming the parameter.

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``None``, unions (``X | None``),
``Literal[...]``, ``Enum`` subclasses (by value), ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``
and nested frozen dataclasses (from a JSON object). Anything else is refused at registration.
"""

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import final

from petranode.errors import PetranodeError
from petranode.rpc.errors import ErrorCode, JsonValue, RpcError

# A checker validates one JSON value for one parameter and returns the value to pass on.
Checker = Callable[[object, str], object]


def invalid_params(param: str, message: str) -> RpcError:
    """The INVALID_PARAMS error for ``param``; ``data.param`` lets a client point at the field."""
    return RpcError(ErrorCode.INVALID_PARAMS, message, {"param": param})


@final
@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    check: Checker
    required: bool


@final
@dataclass(frozen=True, slots=True)
class ParamSpec:
    """The parameters of one method, in declaration order; ``params_type`` None means none."""

    params_type: type | None
    params: tuple[_Param, ...]

    @classmethod
    def of(cls, params_type: type | None) -> "ParamSpec":
        """Compile ``params_type`` (a frozen dataclass, or None); raises TypeError if unsupported."""
        if params_type is None:
            return cls(None, ())
        return cls(params_type, _compile_fields(params_type))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)

    def bind(self, raw: Sequence[JsonValue] | Mapping[str, JsonValue] | None) -> dict[str, object]:
        """Keyword arguments for the handler, or an INVALID_PARAMS RpcError."""
        values = self.check_values(raw)
        if self.params_type is None:
            return values
        instance = _construct(self.params_type, values)
        return {name: getattr(instance, name) for name in self.names}

    def check_values(
        self, raw: Sequence[JsonValue] | Mapping[str, JsonValue] | None, prefix: str = ""
    ) -> dict[str, object]:
        """Each given parameter checked and converted; defaults are left to the dataclass.

        ``prefix`` is the path of an enclosing parameter, so errors name ``price.amount``.
        """
        by_name = self._by_name(raw, prefix)
        values: dict[str, object] = {}
        for param in self.params:
            path = prefix + param.name
            if param.name in by_name:
                values[param.name] = param.check(by_name[param.name], path)
            elif param.required:
                raise invalid_params(path, f"missing parameter {path!r}")
        return values

    def _by_name(
        self, raw: Sequence[JsonValue] | Mapping[str, JsonValue] | None, prefix: str
    ) -> Mapping[str, JsonValue]:
        if raw is None:
            return {}
        if isinstance(raw, Mapping):
            unknown = sorted(set(raw) - set(self.names))
            if unknown:
                path = f"{prefix}{unknown[0]:.64}"
                raise invalid_params(path, f"unknown parameter {path!r}")
            return raw
        if len(raw) > len(self.params):
            raise invalid_params(
                prefix.rstrip("."),
                f"too many positional parameters: {len(raw)} given, at most {len(self.params)}",
            )
        return dict(zip(self.names, raw))


def check_handler_accepts(handler: Callable[..., object], spec: ParamSpec) -> None:
    """Refuse at registration a handler whose signature cannot take the spec's keywords."""
    try:
        inspect.signature(handler).bind(**dict.fromkeys(spec.names))
    except TypeError as exc:
        raise TypeError(f"handler {handler!r} does not accept {spec.names}: {exc}") from exc


def _construct(params_type: type, values: dict[str, object], name: str = "") -> object:
    """Build the dataclass so defaults and ``__post_init__`` checks apply."""
    try:
        return params_type(**values)
    except (ValueError, PetranodeError) as exc:
        where = f"parameter {name!r}" if name else "invalid params"
        raise invalid_params(name, f"{where}: {exc}") from exc


def _compile_fields(params_type: type) -> tuple[_Param, ...]:
    if not dataclasses.is_dataclass(params_type):
        raise TypeError(f"{params_type!r} is not a dataclass")
    hints = typing.get_type_hints(params_type)
    return tuple(
        _Param(field.name, _checker(hints[field.name]), _is_required(field))
        for field in dataclasses.fields(params_type)
    )


def _is_required(field: "dataclasses.Field[object]") -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _checker(annotation: object) -> Checker:
    """A checker for one annotation; the table of supported shapes is in the module docstring."""
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return scalar
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        return _union_checker(args)
    if origin is typing.Literal:
        return _literal_checker(args)
    if origin is list and len(args) == 1:
        return _sequence_checker(_checker(args[0]), list)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _sequence_checker(_checker(args[0]), tuple)
    if origin is dict and len(args) == 2 and args[0] is str:
        return _mapping_checker(_checker(args[1]))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_checker(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _dataclass_checker(annotation)
    raise TypeError(f"unsupported RPC parameter annotation {annotation!r}")


def _mismatch(name: str, wanted: str, value: object) -> RpcError:
    return invalid_params(name, f"parameter {name!r}: expected {wanted}, got {_kind(value)}")


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case Mapping():
            return "object"
        case _:
            return "array"


def _check_bool(value: object, name: str) -> object:
    if isinstance(value, bool):
        return value
    raise _mismatch(name, "boolean", value)


def _check_int(value: object, name: str) -> object:
    # bool is an int subclass in Python but not a number in JSON.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _mismatch(name, "integer", value)


def _check_float(value: object, name: str) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _mismatch(name, "number", value)


def _check_str(value: object, name: str) -> object:
    if isinstance(value, str):
        return value
    raise _mismatch(name, "string", value)


def _check_none(value: object, name: str) -> object:
    if value is None:
        return value
    raise _mismatch(name, "null", value)


_SCALARS: dict[object, Checker] = {
    bool: _check_bool,
    int: _check_int,
    float: _check_float,
    str: _check_str,
    None: _check_none,
    type(None): _check_none,
}


def _union_checker(args: tuple[object, ...]) -> Checker:
    checkers = tuple(_checker(arg) for arg in args)
    wanted = " or ".join(getattr(arg, "__name__", repr(arg)) for arg in args)

    def check(value: object, name: str) -> object:
        for candidate in checkers:
            try:
                return candidate(value, name)
            except RpcError:
                continue
        raise _mismatch(name, wanted, value)

    return check


def _literal_checker(allowed: tuple[object, ...]) -> Checker:
    def check(value: object, name: str) -> object:
        # Compare with the type too: 1 == True in Python but not in JSON.
        if any(type(value) is type(option) and value == option for option in allowed):
            return value
        raise invalid_params(name, f"parameter {name!r}: expected one of {list(allowed)!r}")

    return check


def _enum_checker(enum_type: type[enum.Enum]) -> Checker:
    def check(value: object, name: str) -> object:
        try:
            return enum_type(value)
        except ValueError:
            options = [member.value for member in enum_type]
            raise invalid_params(name, f"parameter {name!r}: expected one of {options!r}") from None

    return check


def _sequence_checker(
    item: Checker, build: type[list[object]] | type[tuple[object, ...]]
) -> Checker:
    def check(value: object, name: str) -> object:
        if not isinstance(value, list):
            raise _mismatch(name, "array", value)
        return build(item(element, f"{name}[{index}]") for index, element in enumerate(value))

    return check


def _mapping_checker(item: Checker) -> Checker:
    def check(value: object, name: str) -> object:
        if not isinstance(value, dict):
            raise _mismatch(name, "object", value)
        return {key: item(element, f"{name}.{key}") for key, element in value.items()}

    return check


def _dataclass_checker(params_type: type) -> Checker:
    spec = ParamSpec.of(params_type)

    def check(value: object, name: str) -> object:
        if not isinstance(value, dict):
            raise _mismatch(name, "object", value)
        return _construct(params_type, spec.check_values(value, f"{name}."), name)

    return check
