"""Feeder net load from masked meter values whose masks cancel (SPEC §2 outcome, §4.8).

Theory of operation
-------------------
The DSO publishes, per feeder, a signed :class:`FeederRoster`: the certified meter keys on
the feeder, sorted, with an epoch (a new roster when a meter joins or leaves). For interval
``t`` meter ``i`` with net load ``x_i = consumption − production`` (W, signed) sends the
DSO one signed :class:`LoadShare`::

    k_ij  = X25519(meter i, meter j)                (the same for i and j; ``meter.py``)
    m_ij  = LE64(BLAKE2b-64(key = k_ij, msgpack([domain, network id, feeder, roster id, t,
                                                  lower key, higher key])))
    s_i   = x_i + Σ_{j≠i} ε_ij·m_ij   (mod 2⁶⁴),   ε_ij = +1 if key_i < key_j else −1

so ``m_ij`` enters ``s_i`` and ``s_j`` with opposite signs and ``Σ_i s_i = Σ_i x_i (mod
2⁶⁴)`` — the feeder's net load, read as a signed 64-bit integer (it is far inside ±2⁶³: at
most 1024 meters × 2³² W). This is the pairwise masking of Bonawitz et al., "Practical
Secure Aggregation for Privacy-Preserving Machine Learning" (CCS 2017), without its
dropout recovery (below). Each share is ``x_i`` plus at least one mask that is
pseudorandom to everyone but ``i`` and ``j``, so one share — or any set of shares short of
all — is uniform in Z/2⁶⁴ to the DSO: it learns the sum and nothing else. A meter refuses
a roster of fewer than :data:`MIN_ROSTER_METERS` meters, where the "sum" would be its own
value.

Trust: the DSO is honest but curious. A DSO that certified sybil meters onto a feeder
could subtract their values from the sum; rosters are signed, so that would be evidence
against it.

A missing meter
---------------
If one roster meter does not report for ``t`` its masks do not cancel and the sum of the
others is uniform noise: **the interval's aggregate is declared unavailable**
(:meth:`FeederAggregator.close` raises ``ShareRejected(MISSING_METERS)`` and refuses every
later share for ``t``). The alternative — the missing meter's peers reveal their masks with
it — is refused on purpose: if the "missing" share was only late (or withheld by the DSO),
the DSO would then hold ``s_m`` *and* every ``m_mj`` and learn ``x_m``. Bonawitz et al. need
a second, secret-shared self-mask to make that recovery safe; an unavailable interval costs
the DSO one aggregate and nobody any privacy.

The aggregator keeps, per open interval, only the set of meters that reported and the
running sum mod 2⁶⁴ — never a share — and at most :data:`MAX_OPEN_INTERVALS` intervals open.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import MarketRecordInvalid, RecordFault, ShareReject, ShareRejected
from petranode.market.meter import SHARE_MODULUS, Meter, check_interval_index
from petranode.market.registry import (
    ID_BYTES,
    KEY_BYTES,
    RECORD_VERSION,
    SIGNATURE_BYTES,
    check_feeder,
    check_public_key,
    decoding,
    record_fields,
)
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value

log = logging.getLogger(__name__)

ROSTER_DOMAIN: Final = "petranode/market/feeder-roster/v1"
SHARE_DOMAIN: Final = "petranode/market/load-share/v1"
PAIR_MASK_DOMAIN: Final = "petranode/market/pairwise-mask/v1"
#: Two meters at least: a roster of one would hand the DSO that meter's value.
MIN_ROSTER_METERS: Final = 2
#: A feeder of a microgrid has tens of meters; 1024 bounds the roster record (≈ 35 KB) and a
#: meter's work per share (one X25519 and one hash per peer).
MAX_ROSTER_METERS: Final = 1024
#: Intervals one aggregator accumulates at once; a day of quarter hours and more. Beyond it,
#: a flood of shares for far-future intervals would grow the DSO's memory without bound.
MAX_OPEN_INTERVALS: Final = 256
_HALF: Final = SHARE_MODULUS // 2

#: [3 B header, version 1, feeder ≤ 34, epoch ≤ 9, 3 + 1024×34 keys, 66 signature].
MAX_ROSTER_BYTES: Final = 36_864
#: [1, 1, 34 key, 34 roster id, interval ≤ 9, share ≤ 9, 66 signature] = 154.
MAX_SHARE_BYTES: Final = 160


# -- the roster ------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class FeederRoster:
    """The DSO-signed list of the meter keys on one feeder, in ascending byte order."""

    feeder: str
    epoch: int
    meter_keys: tuple[bytes, ...]
    dso_signature: bytes = field(repr=False)
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported roster version {self.version}")
        check_feeder(self.feeder)
        if not 0 <= self.epoch <= MAX_INTERVAL:
            raise ValueError("epoch must be 0..2^63-1")
        if not 1 <= len(self.meter_keys) <= MAX_ROSTER_METERS:
            raise ValueError(f"a roster lists 1..{MAX_ROSTER_METERS} meters")
        for key in self.meter_keys:
            check_public_key(key, "meter key")
        if any(a >= b for a, b in zip(self.meter_keys, self.meter_keys[1:], strict=False)):
            raise ValueError("roster keys must be strictly ascending")
        if len(self.dso_signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @staticmethod
    def body(feeder: str, epoch: int, meter_keys: Sequence[bytes]) -> list[Encodable]:
        return [RECORD_VERSION, feeder, epoch, list(meter_keys)]

    @classmethod
    def issue(cls, dso: Signer, network_id: str, *, feeder: str, epoch: int,
              meter_keys: Sequence[bytes]) -> FeederRoster:
        keys = tuple(sorted(set(meter_keys)))
        signature = dso.sign(ROSTER_DOMAIN, network_id, codec.encode(cls.body(feeder, epoch,
                                                                              keys)))
        return cls(feeder, epoch, keys, signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.feeder, self.epoch, self.meter_keys))

    def verify(self, dso_key: bytes, network_id: str) -> None:
        if not signing.verify(dso_key, self.dso_signature, ROSTER_DOMAIN, network_id,
                              self.signed_body()):
            raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "feeder roster")

    def encode(self) -> bytes:
        return codec.encode([*self.body(self.feeder, self.epoch, self.meter_keys),
                             self.dso_signature])

    @classmethod
    def decode(cls, data: bytes) -> FeederRoster:
        """The roster of ``data`` (signature not checked: see :meth:`verify`)."""
        with decoding("feeder roster"):
            f = record_fields(data, max_size=MAX_ROSTER_BYTES, length=5, what="feeder roster")
            return cls(
                feeder=codec.expect_str(f[1], min_len=1, max_len=32, what="feeder"),
                epoch=codec.expect_int(f[2], 0, MAX_INTERVAL, what="epoch"),
                meter_keys=_keys(f[3]),
                dso_signature=codec.expect_bytes(f[4], SIGNATURE_BYTES, what="signature"),
            )

    @property
    def roster_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


def _keys(value: Value) -> tuple[bytes, ...]:
    items = codec.expect_list(value, what="meter keys")
    if len(items) > MAX_ROSTER_METERS:
        raise ValueError("too many meter keys")
    return tuple(codec.expect_bytes(k, KEY_BYTES, what="meter key") for k in items)


# -- masks -----------------------------------------------------------------------------------------


def pairwise_mask(shared: bytes, network_id: str, roster: FeederRoster, interval: int,
                  key_a: bytes, key_b: bytes) -> int:
    """``m_ab = m_ba``: a 64-bit mask from the pair's X25519 secret for one interval."""
    low, high = sorted((key_a, key_b))
    data = codec.encode([PAIR_MASK_DOMAIN, network_id, roster.feeder, roster.roster_id,
                         interval, low, high])
    return int.from_bytes(na.crypto_generichash(data, key=shared, digest_size=8), "little")


def mask_total(meter: Meter, roster: FeederRoster, interval: int) -> int:
    """``Σ_{j≠i} ε_ij·m_ij mod 2⁶⁴`` for this meter. Secret."""
    own = meter.meter_key
    total = 0
    for peer in roster.meter_keys:
        if peer == own:
            continue
        mask = pairwise_mask(meter.keys.shared_secret(peer), meter.network_id, roster,
                             interval, own, peer)
        total += mask if own < peer else -mask
    return total % SHARE_MODULUS


# -- the share -------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class LoadShare:
    """One meter's masked net load for one interval of one roster."""

    meter_key: bytes
    roster_id: bytes
    interval: int
    #: ``s_i`` in 0 … 2⁶⁴−1.
    masked_load: int
    signature: bytes = field(repr=False)
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported share version {self.version}")
        check_public_key(self.meter_key, "meter key")
        if len(self.roster_id) != ID_BYTES:
            raise ValueError(f"roster id must be {ID_BYTES} bytes")
        check_interval_index(self.interval)
        if not 0 <= self.masked_load < SHARE_MODULUS:
            raise ValueError("a masked load is 0..2^64-1")
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @staticmethod
    def body(meter_key: bytes, roster_id: bytes, interval: int,
             masked_load: int) -> list[Encodable]:
        return [RECORD_VERSION, meter_key, roster_id, interval, masked_load]

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.meter_key, self.roster_id, self.interval,
                                      self.masked_load))

    def verify(self, network_id: str) -> None:
        if not signing.verify(self.meter_key, self.signature, SHARE_DOMAIN, network_id,
                              self.signed_body()):
            raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "load share")

    def encode(self) -> bytes:
        return codec.encode([*self.body(self.meter_key, self.roster_id, self.interval,
                                        self.masked_load), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> LoadShare:
        """The share of ``data`` (signature not checked: see :meth:`verify`)."""
        with decoding("load share"):
            f = record_fields(data, max_size=MAX_SHARE_BYTES, length=6, what="load share")
            return cls(
                meter_key=codec.expect_bytes(f[1], KEY_BYTES, what="meter key"),
                roster_id=codec.expect_bytes(f[2], ID_BYTES, what="roster id"),
                interval=codec.expect_int(f[3], 0, MAX_INTERVAL, what="interval"),
                masked_load=codec.expect_int(f[4], 0, SHARE_MODULUS - 1, what="share"),
                signature=codec.expect_bytes(f[5], SIGNATURE_BYTES, what="signature"),
            )


def make_share(meter: Meter, roster: FeederRoster, dso_key: bytes, interval: int) -> LoadShare:
    """The meter's signed masked net load for ``interval`` (measured if not yet).

    Refuses (``MarketRecordInvalid``) a roster the DSO did not sign and (``ValueError``) one
    that does not list this meter or lists fewer than :data:`MIN_ROSTER_METERS` meters.
    """
    roster.verify(dso_key, meter.network_id)
    if meter.meter_key not in roster.meter_keys:
        raise ValueError("this meter is not on the roster")
    if len(roster.meter_keys) < MIN_ROSTER_METERS:
        raise ValueError(f"a roster of fewer than {MIN_ROSTER_METERS} meters reveals the value")
    meter.measure(interval)
    masked = meter.masked_net_load(interval, mask_total(meter, roster, interval))
    body = LoadShare.body(meter.meter_key, roster.roster_id, interval, masked)
    signature = meter.keys.sign(SHARE_DOMAIN, meter.network_id, codec.encode(body))
    return LoadShare(meter.meter_key, roster.roster_id, interval, masked, signature)


# -- the DSO's aggregator --------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class FeederLoad:
    """What the DSO learns per feeder and interval: the total net load, W (negative: export)."""

    feeder: str
    interval: int
    net_load_w: int
    meters: int


@dataclass(slots=True)
class _Partial:
    reported: set[bytes] = field(default_factory=set)
    total: int = 0


@final
class FeederAggregator:
    """Sums the shares of one roster per interval; see the module notes on missing meters.

    ``add`` takes shares (verified here), ``complete`` says whether every roster meter
    reported, ``close`` gives the :class:`FeederLoad` or declares the interval unavailable;
    either way the interval is then closed. ``prune`` forgets closed intervals.
    """

    __slots__ = ("_closed", "_floor", "_members", "_open", "network_id", "roster")

    def __init__(self, roster: FeederRoster, network_id: str) -> None:
        self.roster = roster
        self.network_id = network_id
        self._members = frozenset(roster.meter_keys)
        self._open: dict[int, _Partial] = {}
        self._closed: set[int] = set()
        #: Every interval below it is closed.
        self._floor = 0

    def add(self, share: LoadShare) -> None:
        """Accumulate ``share``; raise :class:`ShareRejected` and change nothing if refused."""
        if share.roster_id != self.roster.roster_id:
            raise ShareRejected(ShareReject.WRONG_ROSTER)
        if share.meter_key not in self._members:
            raise ShareRejected(ShareReject.UNKNOWN_METER)
        if share.interval < self._floor or share.interval in self._closed:
            raise ShareRejected(ShareReject.CLOSED, f"interval {share.interval}")
        partial = self._open.get(share.interval)
        if partial is not None and share.meter_key in partial.reported:
            raise ShareRejected(ShareReject.DUPLICATE, f"interval {share.interval}")
        if partial is None and len(self._open) >= MAX_OPEN_INTERVALS:
            raise ShareRejected(ShareReject.TOO_MANY_OPEN)
        try:
            share.verify(self.network_id)
        except MarketRecordInvalid as exc:
            raise ShareRejected(ShareReject.BAD_SIGNATURE) from exc
        partial = self._open.setdefault(share.interval, _Partial())
        partial.reported.add(share.meter_key)
        partial.total = (partial.total + share.masked_load) % SHARE_MODULUS

    def complete(self, interval: int) -> bool:
        partial = self._open.get(interval)
        return partial is not None and len(partial.reported) == len(self._members)

    def missing(self, interval: int) -> int:
        """How many roster meters have not reported for an open interval."""
        partial = self._open.get(interval)
        return len(self._members) - (0 if partial is None else len(partial.reported))

    def close(self, interval: int) -> FeederLoad:
        """The feeder's net load for ``interval`` once every meter reported.

        Otherwise raise ``ShareRejected(MISSING_METERS)``: the interval's aggregate is
        unavailable. Either way ``interval`` is closed and later shares for it are refused.
        """
        if interval < self._floor or interval in self._closed:
            raise ShareRejected(ShareReject.CLOSED, f"interval {interval}")
        missing = self.missing(interval)
        partial = self._open.pop(interval, None)
        self._closed.add(interval)
        if missing or partial is None:
            log.info("aggregate.unavailable feeder=%s interval=%d missing=%d",
                     self.roster.feeder, interval, missing)
            raise ShareRejected(ShareReject.MISSING_METERS,
                                f"{missing} of {len(self._members)} meters")
        total = partial.total - SHARE_MODULUS if partial.total >= _HALF else partial.total
        log.debug("aggregate.complete feeder=%s interval=%d", self.roster.feeder, interval)
        return FeederLoad(self.roster.feeder, interval, total, len(self._members))

    def prune(self, before: int) -> None:
        """Close every interval below ``before`` (open ones become unavailable) and forget them."""
        self._floor = max(self._floor, before)
        self._closed = {i for i in self._closed if i >= self._floor}
        for interval in [i for i in self._open if i < self._floor]:
            del self._open[interval]

    def __repr__(self) -> str:
        return (f"FeederAggregator(feeder={self.roster.feeder!r}, "
                f"{len(self._members)} meters, {len(self._open)} open)")
