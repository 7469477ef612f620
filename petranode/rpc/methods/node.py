"""``node.*`` RPC methods: the node's identity, links and lifecycle (SPEC §4.9)."""

from __future__ import annotations

from typing import Any, Protocol

from petranode.rpc.protocol import MethodTable


class NodeControl(Protocol):
    def status(self) -> dict[str, Any]: ...

    def request_shutdown(self) -> None: ...


def register(table: MethodTable, node: NodeControl) -> None:
    async def status() -> dict[str, Any]:
        """The node's router hash, roles, live peers, uptime, version and listeners."""
        return node.status()

    async def shutdown() -> dict[str, Any]:
        """Stop the node gracefully, as SIGTERM does; the reply comes before the stop."""
        node.request_shutdown()
        return {"stopping": True}

    table.register("node.status", status)
    table.register("node.shutdown", shutdown)
