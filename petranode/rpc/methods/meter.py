"""``meter.*`` and the metering ``dso.*`` RPC methods (SPEC §4.8, §4.9; docs/rpc.md).

| method | params | result |
|---|---|---|
| ``meter.status`` | – | meter key, first/last committed interval, intervals committed, bills sent/verified/rejected, counters |
| ``meter.readings`` | ``{"first", "last"}`` | this meter's own readings of committed intervals (owner only) |
| ``meter.forecast`` | ``{"first", "last"}`` | this meter's profile, future intervals included (owner only) |
| ``dso.bills`` | – | verified bills: meter key (hex), first/last interval, import/export/total cents |
| ``dso.aggregate`` | ``{"feeder", "interval"}`` | the feeder's total net load (W), or ``null`` |
| ``dso.metering`` | – | commitments stored, aggregates complete/unavailable, bills verified, rejections by reason, counters |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol, final

from petranode.market.errors import MeteringUnavailable
from petranode.rpc.errors import ErrorCode, JsonValue
from petranode.rpc.params import invalid_params
from petranode.rpc.protocol import MethodTable

#: Application code of ``MeteringUnavailable`` (docs/rpc.md "Error codes"): -32040.
METERING_UNAVAILABLE: Final = ErrorCode.PETRANODE_ERROR - 40


class MeteringControl(Protocol):
    def meter_status(self) -> dict[str, Any]: ...

    def readings(self, first: int, last: int) -> list[dict[str, int]]: ...

    def forecast(self, first: int, last: int) -> list[dict[str, int]]: ...

    async def bills(self) -> list[dict[str, str | int]]: ...

    async def aggregate(self, feeder: str, interval: int) -> int | None: ...

    async def metering(self) -> dict[str, Any]: ...


@final
@dataclass(frozen=True, slots=True)
class ReadingsParams:
    first: int
    last: int


@final
@dataclass(frozen=True, slots=True)
class AggregateParams:
    feeder: str
    interval: int


def register(table: MethodTable, metering: MeteringControl) -> None:
    table.errors.register(MeteringUnavailable, METERING_UNAVAILABLE)

    async def status() -> dict[str, Any]:
        """This node's meter: what it committed and billed."""
        return metering.meter_status()

    async def readings(first: int, last: int) -> list[dict[str, int]]:
        """This meter's own readings (they never leave the node otherwise)."""
        if first < 0 or last < first:
            raise invalid_params("last", "0 <= first <= last")
        return metering.readings(first, last)

    async def forecast(first: int, last: int) -> list[dict[str, int]]:
        """This meter's profile ahead of time (the household's own plan; owner only)."""
        if first < 0 or last < first:
            raise invalid_params("last", "0 <= first <= last")
        return metering.forecast(first, last)

    async def bills() -> list[JsonValue]:
        """Bills the DSO verified: totals per meter and period, nothing per interval."""
        return [{key: value for key, value in bill.items()} for bill in await metering.bills()]

    async def aggregate(feeder: str, interval: int) -> int | None:
        """A feeder's total net load for one interval, W; null if unknown or unavailable."""
        if interval < 0:
            raise invalid_params("interval", "interval must not be negative")
        return await metering.aggregate(feeder, interval)

    async def counts() -> dict[str, Any]:
        """The DSO's metering counts."""
        return await metering.metering()

    table.register("meter.status", status)
    table.register("meter.readings", readings, ReadingsParams)
    table.register("meter.forecast", forecast, ReadingsParams)
    table.register("dso.bills", bills)
    table.register("dso.aggregate", aggregate, AggregateParams)
    table.register("dso.metering", counts)

