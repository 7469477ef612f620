"""``[netdb]``: the Kademlia netDb over UDP (SPEC §4.3).

One frozen section; the node's config loader builds it by keyword from the TOML table and calls
:meth:`NetDbConfig.validate`, which reports a wrong value in one line naming its dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from petranode.net.netdb.errors import NetDbConfigInvalid

_DAY_S: Final = 86_400.0


@final
@dataclass(frozen=True, slots=True)
class NetDbConfig:
    #: Address the DHT's UDP socket binds. Loopback by default: a node joins a network only
    #: when told to.
    host: str = "127.0.0.1"
    #: UDP port; 0 lets the OS choose. An authority's must match its genesis ``netdb_port``.
    port: int = 0
    #: Kademlia's k: bucket size and replication factor (the paper and the kademlia package: 20).
    ksize: int = 20
    #: Kademlia's alpha: queries in flight per lookup round (the paper: 3).
    alpha: int = 3
    #: Seconds to wait for one DHT RPC answer before the peer counts as unresponsive.
    rpc_timeout_s: float = 2.0
    #: Seconds one iterative lookup or publication may take in all.
    lookup_timeout_s: float = 10.0
    #: Seconds between publications of our own RouterInfo (freshly signed each time).
    republish_s: float = 300.0
    #: Seconds between routing-table refreshes: re-bootstrap from the authorities if alone,
    #: then a lookup of our own id, which keeps the buckets near us full.
    refresh_s: float = 60.0
    #: Seconds between sweeps of expired records from memory and the database.
    sweep_s: float = 60.0
    #: A RouterInfo older than this is refused and dropped; at least twice republish_s so one
    #: lost publication does not make a live router vanish.
    max_routerinfo_age_s: float = 3600.0
    #: Longest lifetime a LeaseSet may claim (I2P tunnels live 10 minutes; one more of slack).
    max_leaseset_lifetime_s: float = 660.0
    #: RouterInfos held at most.
    max_routers: int = 4096
    #: LeaseSets held at most: anyone can make them, so they are bounded separately.
    max_leasesets: int = 16384

    def validate(self) -> None:
        if not self.host or self.host != self.host.strip():
            _fail("host", "expected an IP address")
        if not 0 <= self.port <= 65_535:
            _fail("port", "expected 0..65535")
        if not 1 <= self.ksize <= 64:
            _fail("ksize", "expected 1..64")
        if not 1 <= self.alpha <= self.ksize:
            _fail("alpha", "expected 1..ksize")
        seconds = {
            "rpc_timeout_s": self.rpc_timeout_s,
            "lookup_timeout_s": self.lookup_timeout_s,
            "republish_s": self.republish_s,
            "refresh_s": self.refresh_s,
            "sweep_s": self.sweep_s,
            "max_routerinfo_age_s": self.max_routerinfo_age_s,
            "max_leaseset_lifetime_s": self.max_leaseset_lifetime_s,
        }
        for name, value in seconds.items():
            if not 0 < value <= 7 * _DAY_S:
                _fail(name, "must be between 0 and 604800 seconds")
        if self.rpc_timeout_s > self.lookup_timeout_s:
            _fail("rpc_timeout_s", "must not exceed netdb.lookup_timeout_s")
        if self.max_routerinfo_age_s < 2 * self.republish_s:
            _fail("max_routerinfo_age_s", "must be at least twice netdb.republish_s")
        for name, count in (("max_routers", self.max_routers),
                            ("max_leasesets", self.max_leasesets)):
            if not 1 <= count <= 1_000_000:
                _fail(name, "expected 1..1000000")


def _fail(name: str, problem: str) -> None:
    raise NetDbConfigInvalid(f"netdb.{name}: {problem}")
