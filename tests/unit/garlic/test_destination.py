"""LocalDestination: LeaseSet building and the republish decision (pure)."""

from __future__ import annotations

import pytest
from garlic_helpers import NETWORK, NOW_MS, keys, leases, local

from petranode.net.destination import (
    MAX_LIFETIME_MS,
    REFRESH_MARGIN_MS,
    LocalDestination,
    Republish,
)
from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.net.netdb.leaseset import MAX_LEASES, Lease, LeaseSet
from petranode.net.netdb.records import ValidationPolicy, validate

POLICY = ValidationPolicy(network_id=NETWORK, authorities=frozenset(), max_clock_skew_s=60,
                          max_routerinfo_age_s=3600, max_leaseset_lifetime_s=660)


def test_destination_record_is_the_keys() -> None:
    dest = local(1)
    assert dest.destination.signing_key == keys(1).signing_key
    assert dest.destination.encryption_key == keys(1).static_key
    assert dest.key == dest.destination.key


def test_built_leaseset_passes_netdb_validation() -> None:
    dest = local(1)
    leaseset = dest.build_leaseset(leases(1), NOW_MS)
    record = validate(leaseset.encode(), dest.key, NOW_MS / 1000, POLICY)
    assert record == leaseset
    assert leaseset.expires_ms == max(lease.end_ms for lease in leaseset.leases)


def test_dead_leases_dropped_long_ones_clipped_extra_ones_cut() -> None:
    dest = local(1)
    dead = Lease(b"d" * 32, 9, NOW_MS)
    far = Lease(b"f" * 32, 8, NOW_MS + 10 * MAX_LIFETIME_MS)
    many = [Lease(bytes([i]) * 32, i + 1, NOW_MS + 1000 + i) for i in range(MAX_LEASES + 3)]
    leaseset = dest.build_leaseset([dead, far, *many], NOW_MS)
    assert len(leaseset.leases) == MAX_LEASES
    assert dead not in leaseset.leases
    assert leaseset.leases[0].gateway == far.gateway
    assert leaseset.leases[0].end_ms == NOW_MS + MAX_LIFETIME_MS
    validate(leaseset.encode(), dest.key, NOW_MS / 1000, POLICY)


def test_no_live_leases_refused() -> None:
    with pytest.raises(GarlicError) as err:
        local(1).build_leaseset([Lease(b"d" * 32, 9, NOW_MS)], NOW_MS)
    assert err.value.reason is GarlicFault.NO_LEASES


def test_published_strictly_increases() -> None:
    dest = local(1)
    first = dest.build_leaseset(leases(1), NOW_MS)
    second = dest.build_leaseset(leases(1), NOW_MS, previous=first)
    assert second.published_ms > first.published_ms
    assert LeaseSet.decode(second.encode()) == second


def test_republish_reasons() -> None:
    dest: LocalDestination = local(1)
    current = leases(1)
    assert dest.republish_reason(None, current, NOW_MS) is Republish.NONE_PUBLISHED
    published = dest.build_leaseset(current, NOW_MS)
    assert dest.republish_reason(published, current, NOW_MS + 1000) is None
    rebuilt = [*current[:1], Lease(b"n" * 32, 77, NOW_MS + 600_000)]
    assert dest.republish_reason(published, rebuilt, NOW_MS + 1000) is Republish.LEASES_CHANGED
    soon = min(lease.end_ms for lease in published.leases) - REFRESH_MARGIN_MS
    assert dest.republish_reason(published, current, soon) is Republish.NEAR_EXPIRY
