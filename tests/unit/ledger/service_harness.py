"""Several ledger services in one event loop, linked through an in-memory hub (STYLE: services
are tested over in-memory streams). Every message goes through the real codec."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from petranode.clock import SystemClock
from petranode.crypto.keys import WalletKeys
from petranode.genesis import Authority, Dso, Genesis, Params, Validator
from petranode.ledger.service import LedgerService
from petranode.ledger.settings import LedgerConfig
from petranode.ledger.store import LEDGER_MIGRATIONS
from petranode.net.identity import RouterKeys
from petranode.net.link.errors import CloseReason, LinkClosed
from petranode.net.netdb.routerinfo import RouterInfo
from petranode.store.store import Store
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value

NETWORK = "ledger-service-test"
Handler = Callable[[bytes, dict[str, Value]], Awaitable[None]]


@dataclass
class Port:
    """One router's view of the hub: what ``LinkService`` offers the ledger."""

    hub: Hub
    router_hash: bytes
    handlers: dict[str, Handler] = field(default_factory=dict)
    callbacks: list[Callable[[bytes, bool], None]] = field(default_factory=list)
    linked: set[bytes] = field(default_factory=set)
    sent: int = 0

    def register(self, t: str, handler: Handler) -> None:
        assert t not in self.handlers
        self.handlers[t] = handler

    def on_peer_change(self, callback: Callable[[bytes, bool], None]) -> None:
        self.callbacks.append(callback)

    def peers(self) -> list[bytes]:
        return sorted(self.linked)

    async def send(self, router_hash: bytes, message: Mapping[str, Encodable]) -> None:
        if router_hash not in self.linked:
            raise LinkClosed(CloseReason.NOT_CONNECTED)
        self.sent += 1
        wire = codec.expect_map(codec.decode(codec.encode(message), max_size=1 << 20))
        target = self.hub.ports[router_hash]
        handler = target.handlers.get(str(wire["t"]))
        if handler is not None:
            await handler(self.router_hash, wire)

    async def connect(self, host: str, port: int, static_key: bytes) -> bytes:
        raise LinkClosed(CloseReason.NOT_CONNECTED)


@dataclass
class Hub:
    ports: dict[bytes, Port] = field(default_factory=dict)

    def port(self, router_hash: bytes) -> Port:
        return self.ports.setdefault(router_hash, Port(self, router_hash))

    def link(self, a: bytes, b: bytes) -> None:
        for x, y in ((a, b), (b, a)):
            if y not in self.ports[x].linked:
                self.ports[x].linked.add(y)
                for callback in self.ports[x].callbacks:
                    callback(y, True)

    def unlink(self, a: bytes) -> None:
        """Cut every link of ``a`` (it crashed or stopped)."""
        for b in list(self.ports[a].linked):
            for x, y in ((a, b), (b, a)):
                self.ports[x].linked.discard(y)
                for callback in self.ports[x].callbacks:
                    callback(y, False)


class NoDirectory:
    def routers(self) -> list[RouterInfo]:
        return []


@dataclass
class Member:
    name: str
    router: RouterKeys
    wallet: WalletKeys
    is_dso: bool = False


def network(validators: int, followers: int, *, min_ring_size: int = 2,
            block_interval_ms: int = 50) -> tuple[Genesis, list[Member]]:
    members = [Member("dso", RouterKeys.generate(), WalletKeys.generate(), is_dso=True)]
    members += [Member(f"validator{i}", RouterKeys.generate(), WalletKeys.generate())
                for i in range(1, validators)]
    members += [Member(f"prosumer{i}", RouterKeys.generate(), WalletKeys.generate())
                for i in range(1, followers + 1)]
    dso = members[0]
    genesis = Genesis(
        network_id=NETWORK, genesis_time=0, interval_s=10,
        authorities=(Authority("dso", dso.router.signing_key, dso.router.identity.static_key,
                               "127.0.0.1", 1),),
        validators=tuple(Validator(m.name, m.router.signing_key) for m in members[:validators]),
        dso=Dso(dso.router.signing_key, dso.wallet.spend_public.raw, dso.wallet.view_public.raw),
        params=Params(min_ring_size=min_ring_size, block_interval_ms=block_interval_ms),
    )
    return genesis, members


FAST = LedgerConfig(timeout_propose_ms=300, timeout_vote_ms=100, timeout_delta_ms=50,
                    gossip_interval_ms=20, gossip_request_timeout_s=0.5,
                    sync_request_timeout_s=1.0)


@contextlib.asynccontextmanager
async def running(member: Member, genesis: Genesis, hub: Hub, folder: Path,
                  config: LedgerConfig = FAST) -> AsyncIterator[LedgerService]:
    """One node's store and ledger service, linked to every running member of the hub."""
    folder.mkdir(parents=True, exist_ok=True)
    port = hub.port(member.router.router_hash)
    port.handlers.clear()
    port.callbacks.clear()
    async with Store(folder / "node.db", LEDGER_MIGRATIONS) as store, LedgerService(
        config=config, genesis=genesis, router=member.router, wallet_keys=member.wallet,
        is_dso=member.is_dso, links=port, directory=NoDirectory(), store=store,
        clock=SystemClock(),
    ) as service:
        for other in list(hub.ports):
            if other != member.router.router_hash and hub.ports[other].handlers:
                hub.link(member.router.router_hash, other)
        try:
            yield service
        finally:
            hub.unlink(member.router.router_hash)
            port.handlers.clear()
            port.callbacks.clear()
