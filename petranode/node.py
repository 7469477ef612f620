"""Composition and lifecycle of one node (SPEC §4.1; STYLE: supervision).

``Node.run()`` enters the services in dependency order — store, links, bootstrap, netDb,
tunnels, garlic, ledger, market, metering, RPC — with one ``AsyncExitStack``, so they close in reverse. Each
service's ``__aenter__`` returns only once it is ready, so READY=1 goes to systemd after the
whole stack is entered. SIGTERM and SIGINT set a stop event; a watcher task raises
:class:`ShutdownRequested` inside the node's task group, which cancels its siblings (a halted
ledger raises there too, and stops the node); STOPPING=1 is sent and the stack unwinds under a
5-second deadline (SPEC §4.1). This module handles no protocol message: it builds, starts and
stops, and answers ``node.*`` RPCs about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from dataclasses import dataclass
from typing import Any, Final

from petranode import __version__
from petranode.clock import Clock, SystemClock
from petranode.config import Config, Role
from petranode.crypto.keys import WalletKeys
from petranode.errors import PetranodeError
from petranode.genesis import Genesis, load_genesis
from petranode.keystore import NodeKeys, load_keys
from petranode.ledger.service import LedgerService
from petranode.ledger.store import LEDGER_MIGRATIONS
from petranode.market.book.store import BOOK_MIGRATIONS, MarketLedger
from petranode.market.intervals import MarketClock
from petranode.market.meter import MeterKeys
from petranode.market.metering.channel import MarketChannel
from petranode.market.metering.periods import registrations_of
from petranode.market.metering.service import MeteringService
from petranode.market.metering.store import METERING_MIGRATIONS
from petranode.market.reputation import ReputationPolicy
from petranode.market.service import MarketService, credential_from_spend
from petranode.market.settling.service import SettlementService, settlement_terms
from petranode.market.settling.store import SETTLEMENT_MIGRATIONS
from petranode.market.store import MARKET_MIGRATIONS
from petranode.market.trading.service import TradingService
from petranode.market.trading.store import TRADING_MIGRATIONS
from petranode.net.bootstrap.service import BootstrapService
from petranode.net.cert import RouterCertificate
from petranode.net.garlic.envelope import Protocol as GarlicProtocol
from petranode.net.garlic.service import GarlicService
from petranode.net.link.service import LinkService
from petranode.net.netdb.service import NETDB_MIGRATIONS, NetDbService
from petranode.net.tunnel.service import TunnelService
from petranode.rpc.methods import ledger as ledger_methods
from petranode.rpc.methods import market as market_methods
from petranode.rpc.methods import meter as meter_methods
from petranode.rpc.methods import netdb as netdb_methods
from petranode.rpc.methods import node as node_methods
from petranode.rpc.methods import settlement as settlement_methods
from petranode.rpc.methods import trading as trading_methods
from petranode.rpc.methods import tunnel as tunnel_methods
from petranode.rpc.protocol import MethodTable
from petranode.rpc.server import RpcServer, ServerLimits
from petranode.store.store import Migration, Store, as_int
from petranode.systemd import Notifier

log = logging.getLogger(__name__)

#: SPEC §4.1: SIGTERM/SIGINT shut the node down within 5 s.
SHUTDOWN_TIMEOUT_S: Final = 5.0
CERTIFICATE_FILE: Final = "router.cert"
DATABASE_FILE: Final = "node.db"

NODE_MIGRATIONS: Final = (
    Migration("node", 1, "CREATE TABLE node_starts (started_at REAL NOT NULL);"),
)


class ShutdownRequested(Exception):
    """Raised inside the node's task group to unwind it (signal or ``node.shutdown``)."""


class CertificateMissing(PetranodeError):
    pass


def load_certificate(config: Config) -> RouterCertificate:
    path = config.data_dir / CERTIFICATE_FILE
    try:
        return RouterCertificate.decode(path.read_bytes())
    except OSError as exc:
        raise CertificateMissing(
            f"{path}: no router certificate ({exc.strerror}); a directory authority must issue "
            "one ('petranode certify')"
        ) from exc


@dataclass(slots=True)
class Node:
    config: Config
    genesis: Genesis
    keys: NodeKeys
    certificate: RouterCertificate
    clock: Clock
    links: LinkService | None = None
    netdb: NetDbService | None = None
    tunnels: TunnelService | None = None
    garlic: GarlicService | None = None
    ledger: LedgerService | None = None
    market: MarketService | None = None
    metering: MeteringService | None = None
    trading: TradingService | None = None
    settlement: SettlementService | None = None
    _stop: asyncio.Event | None = None
    _started: float = 0.0
    _starts: int = 0

    @classmethod
    def from_config(cls, config: Config, clock: Clock | None = None) -> Node:
        return cls(
            config=config,
            genesis=load_genesis(config.genesis_path),
            keys=load_keys(config.data_dir),
            certificate=load_certificate(config),
            clock=clock or SystemClock(),
        )

    # -- what node.* RPCs read ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        assert self.links is not None
        host, port = self.links.listen_address
        return {
            "name": self.config.node.name,
            "network_id": self.genesis.network_id,
            "router_hash": self.keys.router().identity.router_hash.hex(),
            "roles": [str(r) for r in self.config.node.roles],
            "peers": sorted(p.hex() for p in self.links.peers()),
            "uptime_s": round(self.clock.monotonic() - self._started, 3),
            "starts": self._starts,
            "version": __version__,
            "listen": [
                {"kind": "link", "host": host, "port": port},
                {"kind": "rpc", "path": str(self.config.rpc_socket)},
                *([{"kind": "netdb", "host": self.config.netdb.host, "port": self.netdb.port}]
                  if self.netdb is not None else []),
            ],
        }

    def request_shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM, SIGINT or ``node.shutdown``; return once everything is closed."""
        self._stop = asyncio.Event()
        self._started = self.clock.monotonic()
        notifier = Notifier.from_environment()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        try:
            async with asyncio.timeout(None) as deadline:
                async with contextlib.AsyncExitStack() as stack:
                    await self._enter_services(stack)
                    notifier.ready()
                    log.info(
                        "node.ready name=%s router=%s",
                        self.config.node.name,
                        self.keys.router().identity.router_hash.hex()[:16],
                    )
                    await self._serve(notifier)
                    notifier.stopping()
                    log.info("node.stopping name=%s", self.config.node.name)
                    deadline.reschedule(loop.time() + SHUTDOWN_TIMEOUT_S)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        log.info("node.stopped name=%s", self.config.node.name)

    async def _enter_services(self, stack: contextlib.AsyncExitStack) -> None:
        data_dir = self.config.data_dir
        store = await stack.enter_async_context(
            Store(data_dir / DATABASE_FILE,
                  (*NODE_MIGRATIONS, *NETDB_MIGRATIONS, *LEDGER_MIGRATIONS,
                   *MARKET_MIGRATIONS, *METERING_MIGRATIONS, *BOOK_MIGRATIONS,
                   *TRADING_MIGRATIONS, *SETTLEMENT_MIGRATIONS))
        )
        async with store.transaction() as tx:
            await tx.execute(
                "INSERT INTO node_starts (started_at) VALUES (?)", (self.clock.time(),)
            )
            row = await tx.fetchone("SELECT count(*) FROM node_starts")
        # How often this node has started: a restart loop shows up in node.status.
        self._starts = as_int(row[0]) if row else 0
        router = self.keys.router()
        self.links = await stack.enter_async_context(
            LinkService(
                config=self.config.link,
                keys=router,
                certificate=self.certificate,
                authorities=self.genesis.authority_keys,
                network_id=self.genesis.network_id,
                clock=self.clock.time,
            )
        )
        await stack.enter_async_context(
            BootstrapService(
                self.links, self.genesis.authorities, own_signing_key=router.identity.signing_key
            )
        )
        self.netdb = await stack.enter_async_context(
            NetDbService(
                config=self.config.netdb,
                keys=router,
                certificate=self.certificate,
                genesis=self.genesis,
                clock=self.clock,
                store=store,
                roles=[str(role) for role in self.config.node.roles],
                link_address=self.links.listen_address,
            )
        )
        self.tunnels = await stack.enter_async_context(
            TunnelService(
                config=self.config.tunnel,
                default_length=self.genesis.params.tunnel_length,
                links=self.links,
                netdb=self.netdb,
                keys=router,
                clock=self.clock,
            )
        )
        self.garlic = await stack.enter_async_context(
            GarlicService(
                tunnels=self.tunnels,
                netdb=self.netdb,
                keys=self.keys.destination(),
                network_id=self.genesis.network_id,
                clock=self.clock,
                max_inbox=self.config.tunnel.max_inbox,
            )
        )
        roles = self.config.node.roles
        garlic = self.garlic
        validator_destinations = [v.destination for v in self.genesis.validators
                                  if v.destination]
        submits_through_garlic = Role.VALIDATOR not in roles and bool(validator_destinations)

        async def submit_through_garlic(data: bytes) -> None:
            # SPEC §4.6: a prosumer's transaction leaves through its tunnels to a validator's
            # destination, never over its own links.
            to = validator_destinations[secrets.randbelow(len(validator_destinations))]
            await garlic.send(to, data, GarlicProtocol.LEDGER)

        book = MarketLedger(store, MarketClock.from_genesis(self.genesis))
        self.ledger = await stack.enter_async_context(
            LedgerService(
                config=self.config.ledger,
                genesis=self.genesis,
                router=router,
                wallet_keys=WalletKeys(*self.keys.wallet()),
                is_dso=Role.DSO in roles,
                links=self.links,
                directory=self.netdb,
                store=store,
                clock=self.clock,
                relay=submit_through_garlic if submits_through_garlic else None,
                extension=book,
            )
        )
        if Role.VALIDATOR in roles:
            self.garlic.subscribe(GarlicProtocol.LEDGER, self.ledger.on_garlic_submission)
        spend, view = self.keys.wallet()
        # One garlic protocol, two services: the channel hands metering messages to one
        # and asset requests to the other.
        channel = MarketChannel(self.garlic)
        meter_keys = MeterKeys(self.keys.meter_seed())
        self.market = await stack.enter_async_context(
            MarketService(
                genesis=self.genesis,
                garlic=channel.market,
                ledger=self.ledger,
                store=store,
                clock=self.clock,
                meter=meter_keys,
                credential=credential_from_spend(spend),
                address=WalletKeys(spend, view).address,
                dso=router if Role.DSO in self.config.node.roles else None,
            )
        )
        market = self.market
        self.metering = await stack.enter_async_context(
            MeteringService(
                genesis=self.genesis,
                garlic=channel.metering,
                store=store,
                clock=self.clock,
                config=self.config.market,
                meter_keys=meter_keys if Role.PROSUMER in roles else None,
                dso=router if Role.DSO in roles else None,
                registrations=lambda: registrations_of(market.book),
                profile_path=self.config.market.profile_path(self.config.base_dir),
                publish=market.post_notice if Role.DSO in roles else None,
            )
        )
        is_prosumer = Role.PROSUMER in roles
        self.trading = await stack.enter_async_context(
            TradingService(network_id=self.genesis.network_id, ledger=self.ledger, book=book,
                           store=store, clock=self.clock, credential=credential_from_spend(spend),
                           tier_list=lambda tier: self._settlement().tier_list(tier),
                           cover_interval_s=self.config.market.cover_tx_interval_s
                           if is_prosumer else 0.0))
        metering = self.metering
        self.settlement = await stack.enter_async_context(
            SettlementService(
                network_id=self.genesis.network_id, dso_key=self.genesis.dso.signing_key,
                dso_destination=self.genesis.dso.destination, garlic=channel.settlement,
                store=store, clock=self.clock, market_clock=book.clock, book=book,
                terms=settlement_terms(self.config.market.penalty_millicents_per_w),
                policy=ReputationPolicy(),
                dso=router if Role.DSO in roles else None,
                registrations=lambda: registrations_of(market.book),
                meter=meter_keys if is_prosumer else None,
                wallet_keys=WalletKeys(spend, view) if is_prosumer else None,
                sales=self.trading.sales if is_prosumer else None,
                export_w=metering.export_w if is_prosumer else None))
        table = MethodTable()
        node_methods.register(table, self)
        netdb_methods.register(table, self.netdb)
        ledger_methods.register(table, self.ledger)
        tunnel_methods.register(table, self.tunnels, self.garlic)
        market_methods.register(table, self.market)
        meter_methods.register(table, self.metering)
        trading_methods.register(table, self.trading)
        settlement_methods.register(table, self.settlement)
        await stack.enter_async_context(RpcServer(
            self.config.rpc_socket, table,
            ServerLimits(idle_timeout=self.config.rpc.idle_timeout_s)))

    def _settlement(self) -> SettlementService:
        if self.settlement is None:
            raise PetranodeError("the settlement service is not running yet")
        return self.settlement

    async def _serve(self, notifier: Notifier) -> None:
        assert self._stop is not None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._raise_on_stop(self._stop), name="stop-watcher")
                if self.ledger is not None:
                    # A halted ledger raises here and takes the node down with it.
                    group.create_task(self.ledger.watch(), name="ledger-watch")
                interval = notifier.watchdog_interval()
                if interval is not None:
                    group.create_task(_feed_watchdog(notifier, interval / 2), name="watchdog")
        except* ShutdownRequested:
            pass

    @staticmethod
    async def _raise_on_stop(stop: asyncio.Event) -> None:
        await stop.wait()
        raise ShutdownRequested


async def _feed_watchdog(notifier: Notifier, every_s: float) -> None:
    """WATCHDOG=1 at half the configured interval, as sd_watchdog_enabled(3) advises."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(every_s)
