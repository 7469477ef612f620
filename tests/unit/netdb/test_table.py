"""The validated record table: newest wins, expiry, bounds, router selection (SPEC §4.3)."""

from __future__ import annotations

import random

import pytest
from netdb_helpers import MAX_AGE_S, NOW, NOW_MS, leaseset, policy, routerinfo, unsigned

from petranode.net.netdb.errors import RecordInvalid, RejectReason
from petranode.net.netdb.records import RecordKind
from petranode.net.netdb.table import RecordTable


def _table(**limits: int) -> RecordTable:
    return RecordTable(policy(), **limits)


def test_put_get_by_key_and_dht_prefix() -> None:
    table = _table()
    info = routerinfo()
    offered = table.offer(info.encode(), info.key, NOW)
    assert offered.stored and offered.entry.record == info
    assert table.get(info.key, NOW) == offered.entry
    assert table.get(info.key[:20], NOW) == offered.entry
    assert table.get(b"\x00" * 32, NOW) is None
    assert table.counts() == {RecordKind.ROUTERINFO: 1, RecordKind.LEASESET: 0}


def test_newer_replaces_older_never_does_identical_is_a_no_op() -> None:
    table = _table()
    old, new = routerinfo(published_ms=NOW_MS - 5000), routerinfo(published_ms=NOW_MS)
    table.offer(old.encode(), old.key, NOW)
    assert table.offer(new.encode(), new.key, NOW).stored
    assert table.get(new.key, NOW).record == new  # type: ignore[union-attr]
    with pytest.raises(RecordInvalid) as raised:
        table.offer(old.encode(), old.key, NOW)
    assert raised.value.reason is RejectReason.REPLAYED
    again = table.offer(new.encode(), new.key, NOW)
    assert not again.stored and again.entry.record == new
    assert table.rejections == {RejectReason.REPLAYED: 1}
    assert table.stored == 2


def test_rejections_are_counted_by_reason() -> None:
    table = _table()
    info = routerinfo()
    for data, key in ((b"junk", info.key), (unsigned(info).encode(), info.key),
                      (info.encode(), routerinfo(2).key)):
        with pytest.raises(RecordInvalid):
            table.offer(data, key, NOW)
    assert table.rejections == {RejectReason.GARBAGE: 1, RejectReason.UNSIGNED: 1,
                                RejectReason.WRONG_KEY: 1}
    assert len(table) == 0


def test_expiry_hides_then_sweeps() -> None:
    table = _table()
    info, ls = routerinfo(), leaseset(lifetime_ms=60_000)
    table.offer(info.encode(), info.key, NOW)
    table.offer(ls.encode(), ls.key, NOW)
    assert table.sweep(NOW) == []
    later = NOW + 61
    assert table.get(ls.key, later) is None
    assert [k for k, _ in table.entries(later)] == [info.key]
    assert table.sweep(later) == [ls.key]
    much_later = NOW + MAX_AGE_S + 1
    assert table.routers(much_later) == []
    assert table.sweep(much_later) == [info.key]
    assert len(table) == 0 and table.get(info.key[:20], NOW) is None


def test_each_kind_is_bounded() -> None:
    table = _table(max_leasesets=2)
    for n in (1, 2):
        table.offer(leaseset(n).encode(), leaseset(n).key, NOW)
    with pytest.raises(RecordInvalid) as raised:
        table.offer(leaseset(3).encode(), leaseset(3).key, NOW)
    assert raised.value.reason is RejectReason.TABLE_FULL
    newer = leaseset(1, published_ms=NOW_MS + 1)
    assert table.offer(newer.encode(), newer.key, NOW).stored  # replacing is always allowed
    info = routerinfo()
    assert table.offer(info.encode(), info.key, NOW).stored


def test_select_routers_excludes_and_is_uniform_without_repeats() -> None:
    table = _table()
    infos = [routerinfo(n) for n in range(1, 9)]
    for info in infos:
        table.offer(info.encode(), info.key, NOW)
    table.offer(leaseset().encode(), leaseset().key, NOW)
    me, hop = infos[0].key, infos[1].key
    rng = random.Random(7)
    seen = set()
    for _ in range(50):
        chosen = table.select_routers(3, now=NOW, exclude={me, hop}, rng=rng)
        keys = [info.key for info in chosen]
        assert len(keys) == len(set(keys)) == 3
        assert me not in keys and hop not in keys
        seen.update(keys)
    assert seen == {info.key for info in infos[2:]}
    assert len(table.select_routers(100, now=NOW, exclude={me})) == 7
    assert table.select_routers(2, now=NOW + MAX_AGE_S + 1) == []
    assert table.select_routers(0, now=NOW) == []
    with pytest.raises(ValueError):
        table.select_routers(-1, now=NOW)


def test_routers_are_ordered_by_hash() -> None:
    table = _table()
    for n in (5, 3, 9):
        table.offer(routerinfo(n).encode(), routerinfo(n).key, NOW)
    assert [r.key for r in table.routers(NOW)] == sorted(routerinfo(n).key for n in (5, 3, 9))
