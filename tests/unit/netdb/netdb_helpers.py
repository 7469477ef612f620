"""Deterministic keys, certificates and records for the netDb tests."""

from __future__ import annotations

import dataclasses
from typing import Final

from petranode.genesis import Authority, Dso, Genesis, Params, Validator
from petranode.net import cert
from petranode.net.identity import RouterKeys
from petranode.net.netdb.leaseset import Destination, Lease, LeaseSet, sign_leaseset
from petranode.net.netdb.records import ValidationPolicy
from petranode.net.netdb.routerinfo import Address, RouterInfo, sign_routerinfo

NETWORK: Final = "test-net"
#: 2025-01-01T00:00:00Z: every test runs at a fixed "now".
NOW: Final = 1_735_689_600.0
NOW_MS: Final = int(NOW * 1000)
SKEW_S: Final = 60
MAX_AGE_S: Final = 3600.0
LS_LIFETIME_S: Final = 660.0


def router_keys(n: int) -> RouterKeys:
    return RouterKeys.from_secrets(signing_seed=bytes([n]) * 32,
                                   static_secret=bytes([(n + 100) % 256]) * 32)


AUTHORITY: Final = router_keys(200)
STRANGER: Final = router_keys(201)


def policy() -> ValidationPolicy:
    return ValidationPolicy(network_id=NETWORK, authorities=frozenset({AUTHORITY.signing_key}),
                            max_clock_skew_s=SKEW_S, max_routerinfo_age_s=MAX_AGE_S,
                            max_leaseset_lifetime_s=LS_LIFETIME_S)


def certificate(keys: RouterKeys, *, authority: RouterKeys = AUTHORITY,
                network_id: str = NETWORK, valid_from: int = int(NOW) - 86_400,
                valid_until: int = int(NOW) + 86_400) -> cert.RouterCertificate:
    return cert.issue(authority, keys.identity, network_id=network_id, valid_from=valid_from,
                      valid_until=valid_until)


def routerinfo(n: int = 1, *, published_ms: int = NOW_MS, port: int = 7000,
               signer: RouterKeys | None = None, network_id: str = NETWORK,
               certificate_of: cert.RouterCertificate | None = None) -> RouterInfo:
    keys = router_keys(n)
    return sign_routerinfo(
        signer or keys, network_id, identity=keys.identity,
        addresses=(Address("tcp", "127.0.0.1", port), Address("udp", "127.0.0.1", port + 1)),
        roles=("prosumer",), published_ms=published_ms,
        certificate=certificate_of or certificate(keys))


def destination_keys(n: int) -> RouterKeys:
    """A destination's keys reuse the router key shape (signing + X25519)."""
    return router_keys(n + 50)


def leaseset(n: int = 1, *, published_ms: int = NOW_MS, lifetime_ms: int = 600_000,
             leases: int = 2, signer: RouterKeys | None = None,
             network_id: str = NETWORK) -> LeaseSet:
    keys = destination_keys(n)
    destination = Destination(keys.signing_key, keys.static_key)
    expires = published_ms + lifetime_ms
    return sign_leaseset(
        signer or keys, network_id, destination=destination,
        revocation_key=router_keys(n + 80).signing_key,
        leases=tuple(Lease(bytes([i + 1]) * 32, 1000 + i, expires) for i in range(leases)),
        published_ms=published_ms, expires_ms=expires)


def unsigned(record: RouterInfo | LeaseSet) -> RouterInfo | LeaseSet:
    return dataclasses.replace(record, signature=b"")


def genesis(authority: RouterKeys = AUTHORITY, *, netdb_port: int = 0) -> Genesis:
    return Genesis(
        network_id=NETWORK, genesis_time=int(NOW) - 86_400, interval_s=10,
        authorities=(Authority("auth", authority.signing_key, authority.static_key,
                               "127.0.0.1", 9, netdb_port),),
        validators=(Validator("v", authority.signing_key),),
        dso=Dso(authority.signing_key, authority.signing_key, authority.signing_key),
        params=Params(max_clock_skew_s=SKEW_S))
