"""The tunnel pool's decisions under a virtual clock (no event loop)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from petranode.net.identity import RouterIdentity, RouterKeys
from petranode.net.tunnel.build import BuildRequest, Direction, TunnelSecrets
from petranode.net.tunnel.pool import (
    BuildTunnel,
    PoolSettings,
    TunnelPool,
    TunnelRetired,
    TunnelState,
)

ROUTERS = [RouterKeys.generate() for _ in range(8)]
ME = RouterKeys.generate()


def _rng(seed: int = 1) -> random.Random:
    return random.Random(seed)


class Net:
    """A netDb stand-in: random distinct routers, never us."""

    def __init__(self, routers: Sequence[RouterKeys] = ROUTERS, seed: int = 7) -> None:
        self.routers = list(routers)
        self.rng = random.Random(seed)

    def select(self, count: int, exclude: Sequence[bytes]) -> list[RouterIdentity]:
        pool = [r.identity for r in self.routers if r.router_hash not in exclude]
        return self.rng.sample(pool, min(count, len(pool)))


def _pool(net: Net | None = None, **kw: float) -> TunnelPool:
    settings = PoolSettings(**kw)  # type: ignore[arg-type]
    seeded = _rng()
    return TunnelPool(settings, (net or Net()).select, own_hash=ME.router_hash,
                      rng=lambda n: seeded.randbytes(n))


def _secrets(action: BuildTunnel, now: float) -> TunnelSecrets:
    _, secrets = BuildRequest.create(action.hops, action.direction,
                                     creator_hash=ME.router_hash, now=int(now))
    return secrets


def _build_all(pool: TunnelPool, now: float) -> list[BuildTunnel]:
    builds = [a for a in pool.tick(now) if isinstance(a, BuildTunnel)]
    for action in builds:
        assert pool.built(action.build_id, _secrets(action, now), now)
    return builds


def test_builds_two_of_each_direction_with_distinct_hops_never_self() -> None:
    pool = _pool()
    actions = pool.tick(1000.0)
    builds = [a for a in actions if isinstance(a, BuildTunnel)]
    assert sorted(a.direction.value for a in builds) == ["inbound"] * 2 + ["outbound"] * 2
    for action in builds:
        hashes = [h.router_hash for h in action.hops]
        assert len(hashes) == 3 and len(set(hashes)) == 3 and ME.router_hash not in hashes
    # While they build, nothing more is asked for.
    assert pool.tick(1001.0) == []


def test_direction_filter_defers_outbound_until_asked() -> None:
    pool = _pool()
    builds = [a for a in pool.tick(0.0, (Direction.INBOUND,)) if isinstance(a, BuildTunnel)]
    assert {a.direction for a in builds} == {Direction.INBOUND}


def test_too_few_routers_defers_the_build() -> None:
    pool = _pool(Net(ROUTERS[:2]))
    assert pool.tick(0.0) == []
    assert pool.tunnels == {}


def test_bad_selection_is_refused() -> None:
    def repeats(count: int, exclude: Sequence[bytes]) -> list[RouterIdentity]:
        return [ROUTERS[0].identity] * count

    def includes_me(count: int, exclude: Sequence[bytes]) -> list[RouterIdentity]:
        return [ME.identity] + [r.identity for r in ROUTERS[: count - 1]]

    for select in (repeats, includes_me):
        pool = TunnelPool(PoolSettings(), select, own_hash=ME.router_hash)
        assert pool.tick(0.0) == []


def test_zero_length_tunnels() -> None:
    pool = _pool(length=0)
    builds = [a for a in pool.tick(0.0) if isinstance(a, BuildTunnel)]
    assert len(builds) == 4 and all(a.hops == () for a in builds)


def test_build_timeout_counts_as_failure_and_is_rebuilt() -> None:
    pool = _pool(build_timeout_s=10.0)
    first = pool.tick(0.0)
    actions = pool.tick(10.0)
    retired = [a for a in actions if isinstance(a, TunnelRetired)]
    assert len(retired) == len(first) and {a.reason for a in retired} == {"build_timeout"}
    assert pool.builds_failed == 4
    assert len([a for a in actions if isinstance(a, BuildTunnel)]) == 4


def test_build_failed_is_replaced_at_next_tick() -> None:
    pool = _pool()
    builds = [a for a in pool.tick(0.0) if isinstance(a, BuildTunnel)]
    assert pool.build_failed(builds[0].build_id)[0].reason == "build_failed"
    assert pool.build_failed(builds[0].build_id) == []
    again = [a for a in pool.tick(1.0) if isinstance(a, BuildTunnel)]
    assert [a.direction for a in again] == [builds[0].direction]


def test_rebuilds_before_expiry_and_retires_at_expiry() -> None:
    pool = _pool(lifetime_s=600, rebuild_margin_s=120.0)
    _build_all(pool, 0.0)
    assert pool.tick(479.0) == []
    replacements = [a for a in pool.tick(481.0) if isinstance(a, BuildTunnel)]
    assert len(replacements) == 4
    # The old ones are still picked until they expire.
    assert pool.pick(Direction.OUTBOUND, 500.0) is not None
    for action in replacements:
        pool.built(action.build_id, _secrets(action, 481.0), 481.0)
    expired = [a for a in pool.tick(600.0) if isinstance(a, TunnelRetired)]
    assert len(expired) == 4 and {a.reason for a in expired} == {"expired"}
    assert {a.build_id for a in expired}.isdisjoint(a.build_id for a in replacements)


def test_failed_tests_replace_a_tunnel_after_two_rounds() -> None:
    pool = _pool(max_test_failures=2)
    _build_all(pool, 0.0)
    pairs = pool.tests_due(1.0)
    assert len(pairs) == 4
    dead_in = pairs[0][1]
    results = {pair: pair[1] != dead_in for pair in pairs}
    assert pool.test_results(results) == []
    assert pool.test_results(results) == [dead_in]
    assert pool.tunnels[dead_in].state is TunnelState.FAILED
    # Healthy outbound tunnels passed with the other inbound one: kept.
    assert all(pool.tunnels[o].state is TunnelState.ESTABLISHED for o, _ in pairs)
    picks = {pool.pick(Direction.INBOUND, 2.0).build_id for _ in range(20)}  # type: ignore[union-attr]
    assert dead_in not in picks
    actions = pool.tick(2.0)
    assert TunnelRetired(dead_in, Direction.INBOUND, "failed") in actions
    assert [a.direction for a in actions if isinstance(a, BuildTunnel)] == [Direction.INBOUND]


def test_a_passing_round_resets_failures() -> None:
    pool = _pool(max_test_failures=2)
    _build_all(pool, 0.0)
    pairs = pool.tests_due(1.0)
    pool.test_results({p: False for p in pairs})
    pool.test_results({p: True for p in pairs})
    assert pool.test_results({p: False for p in pairs}) == []


def test_hop_death_fails_every_tunnel_through_it() -> None:
    pool = _pool()
    builds = _build_all(pool, 0.0)
    hop = builds[0].hops[1].router_hash
    through = {a.build_id for a in builds if hop in [h.router_hash for h in a.hops]}
    assert set(pool.hop_died(hop)) == through
    assert pool.hop_died(hop) == []


def test_pick_is_none_without_tunnels_and_ignores_building() -> None:
    pool = _pool()
    assert pool.pick(Direction.OUTBOUND, 0.0) is None
    pool.tick(0.0)
    assert pool.pick(Direction.OUTBOUND, 0.0) is None


def test_settings_validate() -> None:
    for bad in ({"quantity": -1}, {"length": 8}, {"rebuild_margin_s": 700.0},
                {"build_timeout_s": 0.0}, {"max_test_failures": 0}):
        with pytest.raises(ValueError):
            PoolSettings(**bad)
