"""Price policies and private bills verified against meter commitments (SPEC §2 outcome, §4.8).

Theory of operation
-------------------
The DSO posts a :class:`PricePolicy` on the ledger: a time-of-use tariff repeating every
simulated day (``profiles.py``), an import price and an export price per slot, in
**millicents per kWh** (1/1000 cent; at most :data:`MAX_PRICE` ≈ 10.49 €/kWh), valid for
intervals ``first … last``. Interval ``i`` costs ``import_price(i) = import_prices[i mod
intervals_per_day]`` and stands for ``S = 86400 / intervals_per_day`` simulated seconds.

For a billing period ``a … b`` the meter (:func:`make_bill`) computes, over its readings
(W) and its commitment masks (``meter.py``)::

    Wc = Σ import_price(i)·consumption_i        Rc = Σ import_price(i)·r_c,i  (mod ℓ)
    Wp = Σ export_price(i)·production_i         Rp = Σ export_price(i)·r_p,i  (mod ℓ)
    cents(W)    = ⌊(2·W·S + D) / (2·D)⌋,  D = 1000 mc/c · 3 600 000 W·s/kWh
                  (W·S/D rounded half up, once per sum, never per interval)
    total_cents = cents(Wc) − cents(Wp)           (signed: negative is a credit)

and signs ``[version, meter_key, policy_id, a, b, Wc, Wp, total_cents, Rc, Rp]`` under
:data:`BILL_DOMAIN`. Readings and prices are non-negative, so each sum is a non-negative
integer below 2⁶⁴ (2³² W × 2²⁰ price × 2¹² intervals) and far below ℓ: no wrap-around can
make two sums agree mod ℓ. The sign lives only in ``total_cents``, derived publicly.

The DSO (:func:`verify_bill`) holds the certified meter key and, for every interval of the
period, the meter's signed :class:`~petranode.market.meter.MeterCommitment`. It checks, in
order: the bill's meter and signature; the policy and the period; exactly one valid
commitment per interval; ``total_cents`` from ``Wc`` and ``Wp``; and, by the homomorphism
of Pedersen commitments,

    Σ import_price(i)·Cc_i  =  Wc·H + Rc·G        Σ export_price(i)·Cp_i  =  Wp·H + Rp·G

(commitments are first summed per distinct price, so the work is one point addition per
interval plus one scalar multiplication per price level). A bill that passes can only carry
the sums the meter committed to, unless the committer finds log_G H.

What the DSO learns: ``Wc`` and ``Wp`` (hence the import and export charges and the total),
not any interval's reading — ``Rc`` and ``Rp`` are sums of independent uniform masks. The
weights are the posted tariff, so the leakage is exactly that of a time-of-use bill; because
the tariff is public on the ledger and identical for every meter, a tariff crafted to
single out intervals is visible to all. The meter adds two rules of its own: it never opens
an interval in two different bills (``Meter.claim_period``) and, by default, bills at least
one simulated day at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, final

from petranode.crypto.group import IDENTITY, Point, Scalar
from petranode.crypto.pedersen import H
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import BillReject, BillRejected, MarketRecordInvalid, RecordFault
from petranode.market.meter import Meter, MeterCommitment, Quantity
from petranode.market.profiles import (
    MAX_INTERVALS_PER_DAY,
    SECONDS_PER_DAY,
    check_intervals_per_day,
)
from petranode.market.registry import (
    ID_BYTES,
    KEY_BYTES,
    RECORD_VERSION,
    SIGNATURE_BYTES,
    check_public_key,
    decoding,
    record_fields,
)
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value

log = logging.getLogger(__name__)

POLICY_DOMAIN: Final = "petranode/market/price-policy/v1"
BILL_DOMAIN: Final = "petranode/market/bill/v1"
#: Highest price, millicents per kWh: 2²⁰−1 ≈ 10.49 €/kWh is beyond any retail tariff, and
#: keeps every weighted sum below 2⁶⁴ (see :data:`MAX_BILL_INTERVALS`).
MAX_PRICE: Final = 2**20 - 1
#: Longest billing period, intervals: 42 days of quarter hours. 2³² W · 2²⁰ · 2¹² < 2⁶⁴.
MAX_BILL_INTERVALS: Final = 4096
MILLICENTS_PER_CENT: Final = 1000
WATT_SECONDS_PER_KWH: Final = 3_600_000
_CENT_DIVISOR: Final = MILLICENTS_PER_CENT * WATT_SECONDS_PER_KWH
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
SCALAR_BYTES: Final = 32

# Largest canonical encodings, rounded up; checked before any decoding work.
#: [3 B header, version 1, 2×9 intervals, 3 slots, 2×(3 + 1440×5) prices, 66 signature].
MAX_POLICY_BYTES: Final = 16_384
#: [1, 1, 34 key, 34 policy id, 2×9 intervals, 2×9 sums, 9 total, 2×34 masks, 66 sig] = 249.
MAX_BILL_BYTES: Final = 256


def energy_cents(weighted: int, intervals_per_day: int) -> int:
    """``weighted`` (mc/kWh · W over intervals of ``86400/intervals_per_day`` s) in cents,
    rounded half up."""
    seconds = SECONDS_PER_DAY // intervals_per_day
    return (2 * weighted * seconds + _CENT_DIVISOR) // (2 * _CENT_DIVISOR)


def _check_prices(prices: tuple[int, ...], count: int, what: str) -> None:
    if len(prices) != count:
        raise ValueError(f"{what}: one price per slot of the day ({count})")
    if not all(isinstance(p, int) and 0 <= p <= MAX_PRICE for p in prices):
        raise ValueError(f"{what}: prices are 0..{MAX_PRICE} millicents per kWh")


# -- price policy ----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class PricePolicy:
    """A DSO-signed time-of-use tariff: import and export price per slot of the simulated day."""

    first_interval: int
    last_interval: int
    intervals_per_day: int
    #: Millicents per kWh consumed, one per slot of the day.
    import_prices: tuple[int, ...]
    #: Millicents per kWh exported, one per slot of the day.
    export_prices: tuple[int, ...]
    dso_signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported price policy version {self.version}")
        if not 0 <= self.first_interval <= self.last_interval <= MAX_INTERVAL:
            raise ValueError("policy range must be 0 <= first <= last <= MAX_INTERVAL")
        check_intervals_per_day(self.intervals_per_day)
        _check_prices(self.import_prices, self.intervals_per_day, "import")
        _check_prices(self.export_prices, self.intervals_per_day, "export")
        if len(self.dso_signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @staticmethod
    def body(first_interval: int, last_interval: int, intervals_per_day: int,
             import_prices: Sequence[int], export_prices: Sequence[int]) -> list[Encodable]:
        return [RECORD_VERSION, first_interval, last_interval, intervals_per_day,
                list(import_prices), list(export_prices)]

    @classmethod
    def issue(cls, dso: Signer, network_id: str, *, first_interval: int, last_interval: int,
              intervals_per_day: int, import_prices: Sequence[int],
              export_prices: Sequence[int]) -> PricePolicy:
        """The DSO signs a tariff under :data:`POLICY_DOMAIN`."""
        body = cls.body(first_interval, last_interval, intervals_per_day, import_prices,
                        export_prices)
        signature = dso.sign(POLICY_DOMAIN, network_id, codec.encode(body))
        return cls(first_interval, last_interval, intervals_per_day, tuple(import_prices),
                   tuple(export_prices), signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.first_interval, self.last_interval,
                                      self.intervals_per_day, self.import_prices,
                                      self.export_prices))

    def verify(self, dso_key: bytes, network_id: str) -> None:
        if not signing.verify(dso_key, self.dso_signature, POLICY_DOMAIN, network_id,
                              self.signed_body()):
            raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "price policy")

    def price(self, quantity: Quantity, interval: int) -> int:
        """Import price (consumption) or export price (production) of ``interval``, mc/kWh."""
        prices = self.import_prices if quantity is Quantity.CONSUMPTION else self.export_prices
        return prices[interval % self.intervals_per_day]

    def covers(self, first: int, last: int) -> bool:
        return self.first_interval <= first <= last <= self.last_interval

    def encode(self) -> bytes:
        return codec.encode([self.version, self.first_interval, self.last_interval,
                             self.intervals_per_day, list(self.import_prices),
                             list(self.export_prices), self.dso_signature])

    @classmethod
    def decode(cls, data: bytes) -> PricePolicy:
        """The policy of ``data`` (signature not checked: see :meth:`verify`)."""
        with decoding("price policy"):
            f = record_fields(data, max_size=MAX_POLICY_BYTES, length=7, what="price policy")
            return cls(
                first_interval=codec.expect_int(f[1], 0, MAX_INTERVAL, what="first"),
                last_interval=codec.expect_int(f[2], 0, MAX_INTERVAL, what="last"),
                intervals_per_day=codec.expect_int(f[3], 1, MAX_INTERVALS_PER_DAY,
                                                   what="intervals_per_day"),
                import_prices=_prices(f[4], "import"),
                export_prices=_prices(f[5], "export"),
                dso_signature=codec.expect_bytes(f[6], SIGNATURE_BYTES, what="signature"),
            )

    @property
    def policy_id(self) -> bytes:
        """SHA-256 of the canonical encoding: what a bill names."""
        return hashlib.sha256(self.encode()).digest()


def _prices(value: Value, what: str) -> tuple[int, ...]:
    items = codec.expect_list(value, what=what)
    if len(items) > MAX_INTERVALS_PER_DAY:
        raise ValueError(f"{what}: too many prices")
    return tuple(codec.expect_int(p, 0, MAX_PRICE, what=what) for p in items)


# -- the bill --------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Bill:
    """A meter's signed bill for ``first … last``: weighted sums, their masks, the total."""

    meter_key: bytes
    policy_id: bytes
    first_interval: int
    last_interval: int
    #: ``Wc = Σ import_price(i)·consumption_i`` (mc/kWh · W).
    consumption_total: int
    #: ``Wp = Σ export_price(i)·production_i``.
    production_total: int
    #: ``cents(Wc) − cents(Wp)``: what the prosumer owes; negative is a credit.
    total_cents: int
    #: ``Rc`` and ``Rp``, canonical 32-byte scalars: the openings of the weighted sums.
    consumption_mask: bytes = field(repr=False)
    production_mask: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported bill version {self.version}")
        check_public_key(self.meter_key, "meter key")
        if len(self.policy_id) != ID_BYTES:
            raise ValueError(f"policy id must be {ID_BYTES} bytes")
        if not 0 <= self.first_interval <= self.last_interval <= MAX_INTERVAL:
            raise ValueError("bill period must be 0 <= first <= last <= MAX_INTERVAL")
        for total in (self.consumption_total, self.production_total):
            if not 0 <= total <= _UINT64_MAX:
                raise ValueError("weighted sums are 0..2^64-1")
        if not _INT64_MIN <= self.total_cents <= _INT64_MAX:
            raise ValueError("total_cents is a signed 64-bit integer")
        Scalar.from_bytes(self.consumption_mask)  # canonical, or CryptoError
        Scalar.from_bytes(self.production_mask)
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @property
    def intervals(self) -> range:
        return range(self.first_interval, self.last_interval + 1)

    def body(self) -> list[Encodable]:
        return [RECORD_VERSION, self.meter_key, self.policy_id, self.first_interval,
                self.last_interval, self.consumption_total, self.production_total,
                self.total_cents, self.consumption_mask, self.production_mask]

    def signed_body(self) -> bytes:
        return codec.encode(self.body())

    def total(self, quantity: Quantity) -> int:
        return (self.consumption_total if quantity is Quantity.CONSUMPTION
                else self.production_total)

    def mask(self, quantity: Quantity) -> Scalar:
        raw = self.consumption_mask if quantity is Quantity.CONSUMPTION else self.production_mask
        return Scalar.from_bytes(raw)

    def encode(self) -> bytes:
        return codec.encode([*self.body(), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> Bill:
        """The bill of ``data`` (nothing verified: see :func:`verify_bill`)."""
        with decoding("bill"):
            f = record_fields(data, max_size=MAX_BILL_BYTES, length=11, what="bill")
            return cls(
                meter_key=codec.expect_bytes(f[1], KEY_BYTES, what="meter key"),
                policy_id=codec.expect_bytes(f[2], ID_BYTES, what="policy id"),
                first_interval=codec.expect_int(f[3], 0, MAX_INTERVAL, what="first"),
                last_interval=codec.expect_int(f[4], 0, MAX_INTERVAL, what="last"),
                consumption_total=codec.expect_int(f[5], 0, _UINT64_MAX, what="Wc"),
                production_total=codec.expect_int(f[6], 0, _UINT64_MAX, what="Wp"),
                total_cents=codec.expect_int(f[7], _INT64_MIN, _INT64_MAX, what="total"),
                consumption_mask=codec.expect_bytes(f[8], SCALAR_BYTES, what="Rc"),
                production_mask=codec.expect_bytes(f[9], SCALAR_BYTES, what="Rp"),
                signature=codec.expect_bytes(f[10], SIGNATURE_BYTES, what="signature"),
            )

    @property
    def bill_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


@final
@dataclass(frozen=True, slots=True)
class VerifiedBill:
    """What the DSO learns from a bill that verified: the period's charges, nothing per interval."""

    meter_key: bytes
    policy_id: bytes
    first_interval: int
    last_interval: int
    import_cents: int
    export_cents: int
    total_cents: int


def total_cents(policy: PricePolicy, consumption_total: int, production_total: int) -> int:
    """The bill's signed total: import charge minus export credit, each rounded once."""
    return (energy_cents(consumption_total, policy.intervals_per_day)
            - energy_cents(production_total, policy.intervals_per_day))


def _check_period(first: int, last: int, min_intervals: int) -> None:
    count = last - first + 1
    if not 1 <= min_intervals <= count <= MAX_BILL_INTERVALS:
        raise ValueError(f"a bill covers {min_intervals}..{MAX_BILL_INTERVALS} intervals")


# -- the meter's side ------------------------------------------------------------------------------


def make_bill(meter: Meter, policy: PricePolicy, dso_key: bytes, first: int, last: int, *,
              min_intervals: int | None = None) -> Bill:
    """The meter's signed bill for ``first … last`` (every interval committed earlier).

    Refuses (``MarketRecordInvalid``) a policy the DSO did not sign, and (``ValueError``) a
    period outside the policy, shorter than ``min_intervals`` (default: one simulated day),
    longer than :data:`MAX_BILL_INTERVALS`, overlapping a different bill, or not metered.
    """
    policy.verify(dso_key, meter.network_id)
    if first > last or not policy.covers(first, last):
        raise ValueError("billing period outside the price policy")
    _check_period(first, last, policy.intervals_per_day if min_intervals is None
                  else min_intervals)
    period = range(first, last + 1)
    openings = {q: meter.opening(q, [(i, policy.price(q, i)) for i in period])
                for q in Quantity}
    meter.claim_period(first, last, policy.policy_id)
    wc = openings[Quantity.CONSUMPTION].total
    wp = openings[Quantity.PRODUCTION].total
    unsigned = Bill(meter.meter_key, policy.policy_id, first, last, wc, wp,
                    total_cents(policy, wc, wp), openings[Quantity.CONSUMPTION].mask.raw,
                    openings[Quantity.PRODUCTION].mask.raw, bytes(SIGNATURE_BYTES))
    signature = meter.keys.sign(BILL_DOMAIN, meter.network_id, unsigned.signed_body())
    log.debug("bill.signed meter=%s first=%d last=%d", meter.meter_key.hex()[:16], first, last)
    return sign_bill(unsigned, signature)


def sign_bill(bill: Bill, signature: bytes) -> Bill:
    """``bill`` with ``signature`` in place of its own."""
    return Bill(bill.meter_key, bill.policy_id, bill.first_interval, bill.last_interval,
                bill.consumption_total, bill.production_total, bill.total_cents,
                bill.consumption_mask, bill.production_mask, signature)


# -- the DSO's side --------------------------------------------------------------------------------


def verify_bill(bill: Bill, *, policy: PricePolicy, commitments: Iterable[MeterCommitment],
                meter_key: bytes, network_id: str) -> VerifiedBill:
    """Check ``bill`` against the meter's signed commitments; raise :class:`BillRejected`.

    ``meter_key`` is the key the DSO certified for this prosumer, ``policy`` the DSO's own
    posted tariff, ``commitments`` what the meter sent for exactly the bill's period.
    """
    _check_bill_signature(bill, meter_key, network_id)
    _check_bill_policy(bill, policy)
    by_interval = _commitments_for(bill, commitments, meter_key, network_id)
    if bill.total_cents != total_cents(policy, bill.consumption_total, bill.production_total):
        raise BillRejected(BillReject.TOTAL_MISMATCH)
    for quantity in Quantity:
        _check_opening(bill, policy, by_interval, quantity)
    log.debug("bill.verified meter=%s first=%d last=%d", meter_key.hex()[:16],
              bill.first_interval, bill.last_interval)
    return VerifiedBill(
        meter_key=meter_key, policy_id=bill.policy_id, first_interval=bill.first_interval,
        last_interval=bill.last_interval,
        import_cents=energy_cents(bill.consumption_total, policy.intervals_per_day),
        export_cents=energy_cents(bill.production_total, policy.intervals_per_day),
        total_cents=bill.total_cents,
    )


def _check_bill_signature(bill: Bill, meter_key: bytes, network_id: str) -> None:
    if bill.meter_key != meter_key:
        raise BillRejected(BillReject.WRONG_METER)
    if not signing.verify(meter_key, bill.signature, BILL_DOMAIN, network_id,
                          bill.signed_body()):
        raise BillRejected(BillReject.BAD_SIGNATURE)


def _check_bill_policy(bill: Bill, policy: PricePolicy) -> None:
    if bill.policy_id != policy.policy_id or not policy.covers(bill.first_interval,
                                                               bill.last_interval):
        raise BillRejected(BillReject.WRONG_POLICY)
    if bill.last_interval - bill.first_interval + 1 > MAX_BILL_INTERVALS:
        raise BillRejected(BillReject.BAD_PERIOD, f"more than {MAX_BILL_INTERVALS} intervals")


def _commitments_for(bill: Bill, commitments: Iterable[MeterCommitment], meter_key: bytes,
                     network_id: str) -> dict[int, MeterCommitment]:
    """Exactly one meter-signed commitment per interval of the period, by interval."""
    period = bill.intervals
    found: dict[int, MeterCommitment] = {}
    for record in commitments:
        if record.interval not in period or record.interval in found:
            raise BillRejected(BillReject.UNEXPECTED_COMMITMENT, f"interval {record.interval}")
        try:
            record.verify(meter_key, network_id)
        except MarketRecordInvalid as exc:
            raise BillRejected(BillReject.BAD_COMMITMENT, f"interval {record.interval}") from exc
        found[record.interval] = record
    if len(found) != len(period):
        missing = next(i for i in period if i not in found)
        raise BillRejected(BillReject.MISSING_INTERVAL, f"interval {missing}")
    return found


def _check_opening(bill: Bill, policy: PricePolicy, by_interval: dict[int, MeterCommitment],
                   quantity: Quantity) -> None:
    """Σ priceᵢ·Cᵢ = W·H + R·G, summing commitments per distinct price first."""
    per_price: dict[int, Point] = {}
    for interval, record in by_interval.items():
        price = policy.price(quantity, interval)
        if price:
            per_price[price] = per_price.get(price, IDENTITY) + record.point(quantity)
    lhs = IDENTITY
    for price, point in per_price.items():
        lhs = lhs + Scalar.from_int(price) * point
    rhs = Scalar.from_int(bill.total(quantity)) * H + bill.mask(quantity).mul_base()
    if lhs.raw != rhs.raw:
        raise BillRejected(BillReject.OPENING_MISMATCH, quantity.value)
