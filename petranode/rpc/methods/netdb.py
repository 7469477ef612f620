"""``netdb.*`` RPC methods: look up validated records, list routers, count (SPEC §4.3, §4.9).

Records are returned as JSON with every byte string in hex; only records that passed every
validation tier are ever returned, since the netDb holds and returns nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, final

from petranode.net.netdb.leaseset import LeaseSet
from petranode.net.netdb.routerinfo import RouterInfo
from petranode.rpc.params import invalid_params
from petranode.rpc.protocol import MethodTable

KEY_HEX_CHARS = 64


class NetDbControl(Protocol):
    def lookup(self, key: bytes) -> Awaitable[RouterInfo | LeaseSet | None]: ...

    def routers(self) -> list[RouterInfo]: ...

    def stats(self) -> dict[str, Any]: ...


@final
@dataclass(frozen=True, slots=True)
class LookupParams:
    #: The netDb key in hex: a router hash or a destination hash (32 bytes).
    key: str


def register(table: MethodTable, netdb: NetDbControl) -> None:
    async def lookup(key: str) -> dict[str, Any] | None:
        """The valid record under ``key``, from the local netDb or the DHT; null if none."""
        return record_to_json(await netdb.lookup(_parse_key(key)))

    async def routers() -> list[str]:
        """Router hashes (hex) of every valid RouterInfo held, ourselves included."""
        return [info.key.hex() for info in netdb.routers()]

    async def stats() -> dict[str, Any]:
        """Records by kind, lookups, rejections by reason, dropped datagrams."""
        return netdb.stats()

    table.register("netdb.lookup", lookup, LookupParams)
    table.register("netdb.routers", routers)
    table.register("netdb.stats", stats)


def _parse_key(key: str) -> bytes:
    if len(key) != KEY_HEX_CHARS:
        raise invalid_params("key", f"key must be {KEY_HEX_CHARS} hex characters")
    try:
        return bytes.fromhex(key)
    except ValueError:
        raise invalid_params("key", "key is not hex") from None


def record_to_json(record: RouterInfo | LeaseSet | None) -> dict[str, Any] | None:
    """A record as JSON, bytes as hex; None stays None."""
    match record:
        case None:
            return None
        case RouterInfo():
            cert = record.certificate
            return {
                "kind": "routerinfo",
                "key": record.key.hex(),
                "signing_key": record.identity.signing_key.hex(),
                "static_key": record.identity.static_key.hex(),
                "addresses": [{"transport": a.transport, "host": a.host, "port": a.port}
                              for a in record.addresses],
                "roles": list(record.roles),
                "published_ms": record.published_ms,
                "certificate": {"network_id": cert.network_id,
                                "authority_key": cert.authority_key.hex(),
                                "valid_from": cert.valid_from, "valid_until": cert.valid_until,
                                "signature": cert.signature.hex()},
                "signature": record.signature.hex(),
                "version": record.version,
            }
        case LeaseSet():
            return {
                "kind": "leaseset",
                "key": record.key.hex(),
                "destination": {"signing_key": record.destination.signing_key.hex(),
                                "encryption_key": record.destination.encryption_key.hex()},
                "revocation_key": record.revocation_key.hex(),
                "leases": [{"gateway": lease.gateway.hex(), "tunnel_id": lease.tunnel_id,
                            "end_ms": lease.end_ms} for lease in record.leases],
                "published_ms": record.published_ms,
                "expires_ms": record.expires_ms,
                "signature": record.signature.hex(),
                "version": record.version,
            }
