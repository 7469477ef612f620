"""A destination we host: its keys, its public record and its LeaseSet (SPEC §2, §4.4).

Pure: :class:`LocalDestination` builds and signs LeaseSets from the inbound leases the tunnel
pool reports and decides when to republish; the netDb service publishes, the tunnel pool
supplies leases, the clock is the caller's ``now``. Rules:

* A LeaseSet lists the live leases (``end_ms > now``), at most 16, latest-ending first, each
  end clipped to ``published + max_lifetime_ms`` so the netDb's lifetime check accepts it; it
  expires with its last lease.
* ``published_ms`` strictly increases between our LeaseSets (netDb "newest wins").
* Republish when none is published, when the set of (gateway, tunnel id) changed, or when the
  published one has a lease ending within ``refresh_margin_ms`` (I2P republishes before its
  leases run out so senders never see only dead leases).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Sequence
from typing import Final, Protocol, final

from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.net.netdb.leaseset import MAX_LEASES, Destination, Lease, LeaseSet, sign_leaseset

log = logging.getLogger(__name__)

#: Republish this long before a published lease ends (tunnels last 10 min; 2 min of headroom).
REFRESH_MARGIN_MS: Final = 120_000
#: The netDb's default ``max_leaseset_lifetime_s`` (660 s).
MAX_LIFETIME_MS: Final = 660_000


class DestinationKeys(Protocol):
    """A destination's secrets, used without being revealed (``NodeKeys.destination()``)."""

    @property
    def signing_key(self) -> bytes: ...

    @property
    def static_key(self) -> bytes: ...

    def sign(self, domain: str, network_id: str, payload: bytes) -> bytes: ...

    def dh(self, remote_static: bytes) -> bytes: ...


class Republish(enum.Enum):
    NONE_PUBLISHED = "none_published"
    LEASES_CHANGED = "leases_changed"
    NEAR_EXPIRY = "near_expiry"


@final
class LocalDestination:
    """Our destination: keys, :attr:`destination` record, LeaseSet building."""

    __slots__ = ("destination", "keys", "max_lifetime_ms", "network_id", "refresh_margin_ms",
                 "revocation_key")

    def __init__(self, keys: DestinationKeys, network_id: str, *,
                 revocation_key: bytes | None = None, refresh_margin_ms: int = REFRESH_MARGIN_MS,
                 max_lifetime_ms: int = MAX_LIFETIME_MS) -> None:
        """``revocation_key`` defaults to the signing key (I2P never uses it either)."""
        self.keys = keys
        self.network_id = network_id
        self.destination = Destination(signing_key=keys.signing_key,
                                       encryption_key=keys.static_key)
        self.revocation_key = keys.signing_key if revocation_key is None else revocation_key
        self.refresh_margin_ms = refresh_margin_ms
        self.max_lifetime_ms = max_lifetime_ms

    @property
    def key(self) -> bytes:
        """The destination hash (its netDb key)."""
        return self.destination.key

    def build_leaseset(self, leases: Sequence[Lease], now: int,
                       previous: LeaseSet | None = None) -> LeaseSet:
        """A signed LeaseSet of the live ``leases``; raises ``GarlicError(NO_LEASES)``."""
        published = now if previous is None else max(now, previous.published_ms + 1)
        horizon = published + self.max_lifetime_ms
        live = _select(leases, published)
        if not live:
            raise GarlicError(GarlicFault.NO_LEASES)
        chosen = tuple(dataclasses.replace(lease, end_ms=min(lease.end_ms, horizon))
                       for lease in live)
        leaseset = sign_leaseset(self.keys, self.network_id, destination=self.destination,
                                 revocation_key=self.revocation_key, leases=chosen,
                                 published_ms=published,
                                 expires_ms=max(lease.end_ms for lease in chosen))
        log.debug("leaseset.built dest=%s leases=%d", self.key.hex()[:16], len(chosen))
        return leaseset

    def republish_reason(self, published: LeaseSet | None, leases: Sequence[Lease],
                         now: int) -> Republish | None:
        """Why a new LeaseSet should be published now, or ``None``."""
        if published is None:
            return Republish.NONE_PUBLISHED
        live = {(lease.gateway, lease.tunnel_id) for lease in _select(leases, now)}
        if live != {(lease.gateway, lease.tunnel_id) for lease in published.leases}:
            return Republish.LEASES_CHANGED
        if min(lease.end_ms for lease in published.leases) - now <= self.refresh_margin_ms:
            return Republish.NEAR_EXPIRY
        return None


def _select(leases: Sequence[Lease], now: int) -> list[Lease]:
    """The live leases a LeaseSet lists: latest-ending first, at most ``MAX_LEASES``."""
    live = sorted((lease for lease in leases if lease.end_ms > now),
                  key=lambda lease: (-lease.end_ms, lease.gateway, lease.tunnel_id))
    return live[:MAX_LEASES]
