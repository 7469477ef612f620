"""``dest.*`` and ``tunnel.*`` RPC methods: our destination and our tunnels (SPEC §4.4, §4.9).

| method | params | result |
|---|---|---|
| ``dest.address`` | – | our destination hash (hex) |
| ``dest.send`` | ``{"to": "<64 hex>", "data": "<base64>"}`` | ``{"clove_id": hex}`` once queued |
| ``dest.recv`` | ``{"timeout": seconds}`` | messages received (base64), waiting up to ``timeout`` for one |
| ``tunnel.list`` | – | our tunnels: id, direction, length, hops (gateway first), expiry (Unix s), state |
| ``tunnel.stats`` | – | participating tunnels, builds succeeded/failed, messages relayed, drops |

Payloads are never logged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final, Protocol, final

from petranode.rpc.params import invalid_params
from petranode.rpc.protocol import MethodTable

KEY_HEX_CHARS: Final = 64
#: Longest ``dest.recv`` wait: shorter than the RPC idle timeout's default (60 s).
MAX_RECV_TIMEOUT_S: Final = 30.0
#: Largest payload ``dest.send`` takes (a garlic clove's bound: 16 KiB).
MAX_SEND_BYTES: Final = 16 * 1024 - 64


class GarlicControl(Protocol):
    @property
    def address(self) -> bytes: ...

    def send(self, to: bytes, data: bytes) -> Awaitable[bytes]: ...

    def recv(self, timeout: float) -> Awaitable[list[bytes]]: ...

    def stats(self) -> dict[str, Any]: ...


class TunnelControl(Protocol):
    def tunnels(self) -> list[dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...


@final
@dataclass(frozen=True, slots=True)
class SendParams:
    #: Destination hash, 64 hex characters.
    to: str
    #: The payload, base64.
    data: str


@final
@dataclass(frozen=True, slots=True)
class RecvParams:
    #: Seconds to wait for a first message (0 = return at once).
    timeout: float = 0.0


def register(table: MethodTable, tunnels: TunnelControl, garlic: GarlicControl) -> None:
    async def address() -> str:
        """Our destination hash (hex): what others pass to ``dest.send``."""
        return garlic.address.hex()

    async def send(to: str, data: str) -> dict[str, Any]:
        """Queue ``data`` for destination ``to``; delivery is acknowledged and retried."""
        key = _parse_key(to)
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_params("data", "data is not base64") from None
        if len(payload) > MAX_SEND_BYTES:
            raise invalid_params("data", f"data is at most {MAX_SEND_BYTES} bytes")
        clove_id = await garlic.send(key, payload)
        return {"clove_id": clove_id.hex()}

    async def recv(timeout: float = 0.0) -> list[str]:
        """Messages received since the last call (base64), waiting up to ``timeout`` s."""
        if not 0 <= timeout <= MAX_RECV_TIMEOUT_S:
            raise invalid_params("timeout", f"timeout must be 0..{MAX_RECV_TIMEOUT_S:g} s")
        return [base64.b64encode(m).decode("ascii") for m in await garlic.recv(timeout)]

    async def tunnel_list() -> list[dict[str, Any]]:
        """Our tunnels: id, direction, length, hops, expiry (Unix seconds), state."""
        return tunnels.tunnels()

    async def tunnel_stats() -> dict[str, Any]:
        """Participating tunnels, builds succeeded and failed, messages relayed, drops."""
        return {**tunnels.stats(), "garlic": garlic.stats()}

    table.register("dest.address", address)
    table.register("dest.send", send, SendParams)
    table.register("dest.recv", recv, RecvParams)
    table.register("tunnel.list", tunnel_list)
    table.register("tunnel.stats", tunnel_stats)


def _parse_key(key: str) -> bytes:
    if len(key) != KEY_HEX_CHARS:
        raise invalid_params("to", f"to must be {KEY_HEX_CHARS} hex characters")
    try:
        return bytes.fromhex(key)
    except ValueError:
        raise invalid_params("to", "to is not hex") from None
