"""Declarative parameter specs: each supported annotation accepts JSON of its type only (SPEC §4.9)."""

import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest

from petranode.rpc.errors import ErrorCode, JsonValue, RpcError
from petranode.rpc.params import ParamSpec


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True)
class Price:
    amount: int
    unit: Literal["kWh", "MWh"] = "kWh"

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("amount must be positive")


@dataclass(frozen=True)
class OfferParams:
    side: Side
    price: Price
    quantity: float
    intervals: tuple[int, ...] = ()
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    note: str | None = None
    firm: bool = False


SPEC = ParamSpec.of(OfferParams)
VALID: dict[str, JsonValue] = {"side": "sell", "price": {"amount": 5}, "quantity": 2}


def test_valid_params_are_converted_and_defaulted() -> None:
    kwargs = SPEC.bind({**VALID, "intervals": [1, 2], "note": None, "limits": {"a": 1}})

    assert kwargs == {
        "side": Side.SELL,
        "price": Price(5, "kWh"),
        "quantity": 2.0,
        "intervals": (1, 2),
        "tags": [],
        "limits": {"a": 1},
        "note": None,
        "firm": False,
    }


BAD_VALUES: list[tuple[str, JsonValue, str]] = [
    ("side", "hold", "side"),
    ("side", 1, "side"),
    ("price", 5, "price"),
    ("price", {"amount": "5"}, "price.amount"),
    ("price", {"amount": 5, "unit": "J"}, "price.unit"),
    ("price", {"amount": 5, "currency": "EUR"}, "price.currency"),
    ("price", {"amount": -1}, "price"),
    ("quantity", "2", "quantity"),
    ("quantity", True, "quantity"),
    ("intervals", [1, "2"], "intervals[1]"),
    ("intervals", {"0": 1}, "intervals"),
    ("tags", "solar", "tags"),
    ("limits", {"a": 1.5}, "limits.a"),
    ("note", 3, "note"),
    ("firm", 1, "firm"),
]


@pytest.mark.parametrize(("name", "value", "param"), BAD_VALUES)
def test_wrong_value_is_invalid_params_naming_the_parameter(
    name: str, value: JsonValue, param: str
) -> None:
    with pytest.raises(RpcError) as raised:
        SPEC.bind({**VALID, name: value})

    assert raised.value.code == ErrorCode.INVALID_PARAMS
    assert raised.value.data == {"param": param}
    assert repr(param) in raised.value.message


def test_integer_parameter_refuses_booleans_and_floats() -> None:
    spec = ParamSpec.of(Price)

    for value in (True, 5.0):
        with pytest.raises(RpcError):
            spec.bind({"amount": value})


def test_no_params_accepts_absent_or_empty_only() -> None:
    spec = ParamSpec.of(None)

    assert spec.bind(None) == spec.bind([]) == spec.bind({}) == {}
    with pytest.raises(RpcError):
        spec.bind([1])
