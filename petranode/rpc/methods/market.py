"""``market.*`` and ``dso.*`` RPC methods: asset requests and the DSO's registry (SPEC §4.7,
§4.9).

| method | params | result |
|---|---|---|
| ``market.identity`` | – | ``{"meter_key", "credential_key"}`` (hex): what the DSO registers |
| ``market.request`` | ``{"kind", "amount", "first_interval"?, "last_interval"?}`` | the DSO's answer: ``{"request_id", "granted", "tx", "reason"}`` |
| ``market.stats`` | – | registrations, feeders, grants (DSO), the first open interval, counters |
| ``dso.register`` | ``{"meter_key", "credential_key", "max_generation_w", "max_consumption_w", "feeder"}`` | ``{"registration_id"}`` |
| ``dso.feeder_limit`` | ``{"feeder", "max_production_w", "max_consumption_w"}`` | ``null`` |
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, final

from petranode.ledger.assets import AssetKind
from petranode.rpc.params import invalid_params
from petranode.rpc.protocol import MethodTable


class MarketControl(Protocol):
    def identity(self) -> dict[str, str]: ...

    def request(self, kind: AssetKind, amount: int, first_interval: int | None,
                last_interval: int | None) -> Awaitable[dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...

    def register(self, *, meter_key: bytes, credential_key: bytes, max_generation_w: int,
                 max_consumption_w: int, feeder: str) -> Awaitable[dict[str, Any]]: ...

    def set_feeder_limit(self, feeder: str, max_production_w: int,
                         max_consumption_w: int) -> Awaitable[None]: ...


@final
@dataclass(frozen=True, slots=True)
class RequestParams:
    #: ``production``, ``consumption`` or ``money``.
    kind: str
    #: Watts per interval for energy, cents for money.
    amount: int
    first_interval: int | None = None
    last_interval: int | None = None


@final
@dataclass(frozen=True, slots=True)
class RegisterParams:
    meter_key: str
    credential_key: str
    max_generation_w: int
    max_consumption_w: int
    feeder: str


@final
@dataclass(frozen=True, slots=True)
class FeederLimitParams:
    feeder: str
    max_production_w: int
    max_consumption_w: int


def register(table: MethodTable, market: MarketControl) -> None:
    async def identity() -> dict[str, str]:
        """This prosumer's meter and credential public keys, for ``dso.register``."""
        return market.identity()

    async def request(kind: str, amount: int, first_interval: int | None = None,
                      last_interval: int | None = None) -> dict[str, Any]:
        """Ask the DSO, through garlic, for assets paid to this node's wallet."""
        try:
            asset_kind = AssetKind(kind)
        except ValueError:
            raise invalid_params("kind", "kind is production, consumption or money") from None
        if asset_kind is AssetKind.MONEY and (first_interval, last_interval) != (None, None):
            raise invalid_params("first_interval", "money has no intervals")
        if asset_kind is not AssetKind.MONEY and (first_interval is None
                                                  or last_interval is None):
            raise invalid_params("first_interval", "energy names its first and last interval")
        if amount <= 0:
            raise invalid_params("amount", "amount must be positive")
        return await market.request(asset_kind, amount, first_interval, last_interval)

    async def stats() -> dict[str, Any]:
        """Registry size (DSO), the first interval whose gate is open, message counters."""
        return market.stats()

    async def dso_register(meter_key: str, credential_key: str, max_generation_w: int,
                           max_consumption_w: int, feeder: str) -> dict[str, Any]:
        """Certify a prosumer (DSO only): its keys, capacities and feeder."""
        try:
            return await market.register(
                meter_key=_key(meter_key, "meter_key"),
                credential_key=_key(credential_key, "credential_key"),
                max_generation_w=max_generation_w, max_consumption_w=max_consumption_w,
                feeder=feeder)
        except ValueError as exc:
            raise invalid_params("meter_key", str(exc)) from None

    async def feeder_limit(feeder: str, max_production_w: int, max_consumption_w: int) -> None:
        """Post a feeder's per-interval limits (DSO only)."""
        try:
            await market.set_feeder_limit(feeder, max_production_w, max_consumption_w)
        except ValueError as exc:
            raise invalid_params("feeder", str(exc)) from None

    table.register("market.identity", identity)
    table.register("market.request", request, RequestParams)
    table.register("market.stats", stats)
    table.register("dso.register", dso_register, RegisterParams)
    table.register("dso.feeder_limit", feeder_limit, FeederLimitParams)


def _key(text: str, param: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise invalid_params(param, f"{param} is not hex") from None
    if len(raw) != 32:
        raise invalid_params(param, f"{param} must be 32 bytes")
    return raw
