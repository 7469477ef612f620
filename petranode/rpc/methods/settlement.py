"""Settlement and reputation RPC (SPEC §4.7, §4.9).

| method | params | result |
|---|---|---|
| ``dso.settlement`` | – | DSO: intervals and trades settled, shortfall W, penalty cents, refusals by reason, and each registered prosumer's score and debt |
| ``market.settlement`` | – | prosumer: its delivery reports by interval (``sent``, ``accepted``, ``refused``, ``none``) |
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from petranode.market.errors import DeliveryRejected
from petranode.market.settling.service import SettlementUnavailable
from petranode.rpc.errors import ErrorCode
from petranode.rpc.protocol import MethodTable

SETTLEMENT_UNAVAILABLE: Final = ErrorCode.PETRANODE_ERROR - 60
DELIVERY_REJECTED: Final = ErrorCode.PETRANODE_ERROR - 61


class SettlementControl(Protocol):
    def summary(self) -> dict[str, Any]: ...


def register(table: MethodTable, settlement: SettlementControl) -> None:
    table.errors.register(SettlementUnavailable, SETTLEMENT_UNAVAILABLE)
    table.errors.register(DeliveryRejected, DELIVERY_REJECTED)

    async def summary() -> dict[str, Any]:
        """The DSO's settlement and reputation, or a prosumer's delivery reports."""
        return settlement.summary()

    table.register("dso.settlement", summary)
    table.register("market.settlement", summary)
