"""Shared material of the link tests: a network with one directory authority and its routers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from petranode.net import cert
from petranode.net.identity import RouterKeys
from petranode.net.link.noise import LinkHandshake

NETWORK = "testnet-links"
NOW = 1_750_000_000


def pinned_rng(label: str) -> Callable[[int], bytes]:
    """A deterministic byte source, so vectors and failures reproduce."""
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(f"{label}/{counter}".encode()).digest(n)

    return rng


def keys(label: str) -> RouterKeys:
    return RouterKeys.generate(pinned_rng(label))


AUTHORITY = keys("authority")
AUTHORITIES = frozenset({AUTHORITY.signing_key})


def certificate(
    router: RouterKeys,
    *,
    authority: RouterKeys = AUTHORITY,
    network_id: str = NETWORK,
    valid_from: int = NOW - 3600,
    valid_until: int = NOW + 3600,
) -> cert.RouterCertificate:
    return cert.issue(
        authority,
        router.identity,
        network_id=network_id,
        valid_from=valid_from,
        valid_until=valid_until,
    )


@dataclass
class Router:
    keys: RouterKeys
    certificate: cert.RouterCertificate


def router(label: str) -> Router:
    k = keys(label)
    return Router(k, certificate(k))


def handshake_pair(
    initiator: Router, responder: Router, *, remote_static: bytes | None = None
) -> tuple[LinkHandshake, LinkHandshake]:
    i = LinkHandshake.initiator(
        keys=initiator.keys,
        certificate=initiator.certificate,
        authorities=AUTHORITIES,
        network_id=NETWORK,
        remote_static=remote_static or responder.keys.static_key,
        rng=pinned_rng("initiator-ephemeral"),
    )
    r = LinkHandshake.responder(
        keys=responder.keys,
        certificate=responder.certificate,
        authorities=AUTHORITIES,
        network_id=NETWORK,
        rng=pinned_rng("responder-ephemeral"),
    )
    return i, r


def run_handshake(i: LinkHandshake, r: LinkHandshake, now: float = NOW) -> list[bytes]:
    """Run all three messages in memory; returns them."""
    m1 = i.write_message()
    r.read_message(m1, now=now)
    m2 = r.write_message()
    i.read_message(m2, now=now)
    m3 = i.write_message()
    r.read_message(m3, now=now)
    return [m1, m2, m3]
