"""The local netDb: validated records by key, newest wins (SPEC §4.3; i2pd ``NetDb`` store).

A pure data structure. :meth:`RecordTable.offer` is the only way in: it validates (every tier of
:func:`~petranode.net.netdb.records.validate`), applies the newest-wins rule — an older or
equal-but-different record never replaces the one held, an identical copy is a no-op — and
counts every refusal by reason. What it holds is therefore valid when it went in; :meth:`get`
and :meth:`routers` also hide what has expired since, and :meth:`sweep` removes it.

Records are indexed by their full 32-byte key and by its first 20 bytes, the address the
Kademlia DHT uses (``records.MIN_KEY_BYTES``). The number of records of each kind is bounded:
RouterInfos need an authority's certificate, but anyone can make LeaseSets, so without a bound a
flood of them would be a memory leak.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Final, final

from petranode.net.netdb.errors import RecordInvalid, RejectReason
from petranode.net.netdb.records import (
    MIN_KEY_BYTES,
    Record,
    RecordKind,
    ValidationPolicy,
    is_expired,
    kind_of,
    supersedes,
    validate,
)
from petranode.net.netdb.routerinfo import RouterInfo

#: Defaults sized for a microgrid: a few thousand routers at most, a few destinations each.
DEFAULT_MAX_ROUTERS: Final = 4096
DEFAULT_MAX_LEASESETS: Final = 16384


@final
@dataclass(frozen=True, slots=True)
class Entry:
    """A validated record and the exact bytes it was validated from (what we serve)."""

    record: Record
    data: bytes

    @property
    def kind(self) -> RecordKind:
        return kind_of(self.record)


@final
@dataclass(frozen=True, slots=True)
class Offered:
    """The result of an accepted offer: the record now held, and whether it changed."""

    entry: Entry
    stored: bool


@final
class RecordTable:
    """Validated RouterInfos and LeaseSets, each kind bounded."""

    def __init__(self, policy: ValidationPolicy, *, max_routers: int = DEFAULT_MAX_ROUTERS,
                 max_leasesets: int = DEFAULT_MAX_LEASESETS) -> None:
        self.policy = policy
        self._limits = {RecordKind.ROUTERINFO: max_routers, RecordKind.LEASESET: max_leasesets}
        self._entries: dict[bytes, Entry] = {}
        self._by_prefix: dict[bytes, bytes] = {}
        self._counts: Counter[RecordKind] = Counter()
        #: Refusals by reason since start (``netdb.stats``).
        self.rejections: Counter[RejectReason] = Counter()
        #: Offers that stored a new or newer record.
        self.stored = 0

    def offer(self, data: bytes, key: bytes, now: float) -> Offered:
        """Validate ``data`` offered under ``key`` (or its 20-byte DHT prefix) and keep it if it
        wins; raises RecordInvalid, counted, if it is invalid or loses."""
        try:
            record = validate(data, key, now, self.policy)
            return self._put(Entry(record, data))
        except RecordInvalid as exc:
            self.rejections[exc.reason] += 1
            raise

    def get(self, key: bytes, now: float) -> Entry | None:
        """The unexpired entry under ``key`` (32 bytes) or DHT address (20 bytes)."""
        full = self._by_prefix.get(key) if len(key) == MIN_KEY_BYTES else key
        entry = self._entries.get(full) if full is not None else None
        if entry is None or is_expired(entry.record, now, self.policy):
            return None
        return entry

    def entries(self, now: float) -> Iterator[tuple[bytes, Entry]]:
        """Every unexpired ``(key, entry)``, in insertion order."""
        for key, entry in list(self._entries.items()):
            if not is_expired(entry.record, now, self.policy):
                yield key, entry

    def routers(self, now: float) -> list[RouterInfo]:
        """Every unexpired RouterInfo, ordered by router hash."""
        found = [e.record for _, e in self.entries(now) if isinstance(e.record, RouterInfo)]
        return sorted(found, key=lambda info: info.key)

    def select_routers(self, count: int, *, now: float, exclude: Collection[bytes] = (),
                       rng: random.Random | None = None) -> list[RouterInfo]:
        """Up to ``count`` distinct unexpired routers chosen uniformly at random, none of whose
        router hashes is in ``exclude`` (ourselves, hops already chosen): tunnel hop selection.
        ``rng`` defaults to the OS CSPRNG; tests pin it."""
        if count < 0:
            raise ValueError("count must not be negative")
        candidates = [info for info in self.routers(now) if info.key not in exclude]
        chooser = rng if rng is not None else random.SystemRandom()
        return chooser.sample(candidates, min(count, len(candidates)))

    def sweep(self, now: float) -> list[bytes]:
        """Remove every expired record; return their keys."""
        expired = [k for k, e in self._entries.items() if is_expired(e.record, now, self.policy)]
        for key in expired:
            self._remove(key)
        return expired

    def counts(self) -> dict[RecordKind, int]:
        """Records held, by kind (expired but not yet swept ones included)."""
        return {kind: self._counts[kind] for kind in RecordKind}

    def __len__(self) -> int:
        return len(self._entries)

    def _put(self, entry: Entry) -> Offered:
        key = entry.record.key
        held = self._entries.get(key)
        if held is not None:
            if held.data == entry.data:
                return Offered(held, stored=False)
            if not supersedes(entry.record, held.record):
                raise RecordInvalid(RejectReason.REPLAYED)
        elif self._counts[entry.kind] >= self._limits[entry.kind]:
            raise RecordInvalid(RejectReason.TABLE_FULL, entry.kind.value)
        else:
            self._counts[entry.kind] += 1
        self._entries[key] = entry
        self._by_prefix[key[:MIN_KEY_BYTES]] = key
        self.stored += 1
        return Offered(entry, stored=True)

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self._counts[entry.kind] -= 1
        if self._by_prefix.get(key[:MIN_KEY_BYTES]) == key:
            del self._by_prefix[key[:MIN_KEY_BYTES]]
