"""``meter.*`` and the metering ``dso.*`` methods: parameters bound, errors mapped (SPEC §4.9)."""

from __future__ import annotations

import json
from typing import Any

from petranode.market.errors import MeteringFault, MeteringUnavailable
from petranode.rpc.methods import meter
from petranode.rpc.protocol import MethodTable, Outcome, Raised, Returned


class FakeMetering:
    def meter_status(self) -> dict[str, Any]:
        raise MeteringUnavailable(MeteringFault.NOT_A_METER)

    def readings(self, first: int, last: int) -> list[dict[str, int]]:
        return [{"interval": first, "consumption_w": 1, "production_w": 0, "net_w": 1}]

    async def bills(self) -> list[dict[str, str | int]]:
        return [{"meter_key": "ab", "total_cents": -3}]

    async def aggregate(self, feeder: str, interval: int) -> int | None:
        return -1200 if feeder == "f1" else None

    async def metering(self) -> dict[str, Any]:
        return {"commitments": 0}


def call(table: MethodTable, method: str, params: object = None) -> Any:
    body: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        body["params"] = params
    plan = table.plan(json.dumps(body).encode())
    outcomes: list[Outcome] = []
    for c in plan.calls:
        coroutine = c.start()
        try:
            coroutine.send(None)  # type: ignore[attr-defined]
        except StopIteration as done:
            outcomes.append(Returned(done.value))
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            outcomes.append(Raised(exc))
    response = plan.respond(outcomes)
    assert response is not None
    return json.loads(response)


def test_methods_answer() -> None:
    table = MethodTable()
    meter.register(table, FakeMetering())
    assert call(table, "dso.aggregate", {"feeder": "f1", "interval": 3})["result"] == -1200
    assert call(table, "dso.aggregate", {"feeder": "f2", "interval": 3})["result"] is None
    assert call(table, "meter.readings", {"first": 4, "last": 5})["result"][0]["interval"] == 4
    assert call(table, "dso.bills")["result"] == [{"meter_key": "ab", "total_cents": -3}]
    assert call(table, "dso.metering")["result"] == {"commitments": 0}


def test_bad_params_and_unavailable() -> None:
    table = MethodTable()
    meter.register(table, FakeMetering())
    assert call(table, "meter.readings", {"first": 5, "last": 4})["error"]["code"] == -32602
    assert call(table, "dso.aggregate", {"feeder": "f1"})["error"]["code"] == -32602
    error = call(table, "meter.status")["error"]
    assert error["code"] == meter.METERING_UNAVAILABLE == -32040
    assert error["data"] == {"error": "MeteringUnavailable", "reason": "NOT_A_METER"}
