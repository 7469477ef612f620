"""Meter delivery reports and the DSO's settlement desk (SPEC §4.7 "after each interval the
meters report delivery and trades settle, with penalties for shortfall").

Theory of operation
-------------------
Offers are anonymous on the ledger, so after an interval the DSO knows every trade but not
whose offer each trade filled. A seller's meter therefore sends the DSO one signed
:class:`DeliveryReport` per interval it sold in: the offers it made (each an
:class:`OfferClaim`) and its *credited* delivery ``min(metered export, Σ sold)`` in watts.

* **Ownership.** Each claim carries a CryptoNote Schnorr signature by the offer's cancel key
  (``trade_builder.derive_offer_keys`` gives only the maker its secret) over
  ``SHA-256(signing_bytes(CLAIM_DOMAIN, network_id, [meter key, interval, offer id]))``, the
  way ``trade_kinds`` signs cancels. Binding the meter key and interval means a claim cannot
  be lifted into another meter's report or another interval's.
* **Authenticity.** The meter signs the whole report with its registered Ed25519 key, as it
  signs an :class:`~petranode.market.registry.AssetRequest`; like a request, a report is
  for the DSO alone (the service sends it encrypted end to end to the DSO's destination).
* **Settlement.** :class:`SettlementDesk` turns every accepted claim's SELL trades in the
  interval into :class:`~petranode.market.settlement.TradeObligation` records of that meter
  and, once the interval is closed, runs
  :func:`~petranode.market.settlement.settle_interval` over them and feeds the outcomes to
  the :class:`~petranode.market.reputation.ReputationBook`.
* **Penalties are debt.** A SELL offer's production is burnt on the ledger when a trade is
  accepted: the DSO holds no energy escrow to take a penalty from. Every obligation is
  settled with ``escrow_cents = 0`` under :attr:`ShortfallPolicy.DEBT`, so the whole penalty
  becomes the seller's debt, collected with its bill (``billing.py``).
* **Replay.** An offer id may be claimed once, ever (the desk keeps the set), one report is
  taken per meter and interval, and nothing is taken for a settled interval.

Privacy cost. Per seller and interval the DSO learns which offers were its own — so the
power and price it sold at, already public on the ledger, become linked to its meter — and
its credited delivery; for intervals it did not sell in, nothing. Credited delivery shows the
metered export only where it fell short of what was sold.

Limits. Silence is not attributable: a seller who sends no report for its trades is unknown
to the DSO, which sees those trades only as unclaimed SELL trades of the interval. Trades in
which the seller is the *taker* of a BUY offer cannot be claimed with this record: the taker
holds no cancel key. Neither is handled here.

The desk is pure: no clock (the caller settles an interval after its settlement time,
``MarketClock``) and no I/O (:meth:`SettlementDesk.to_rows` gives its state to the store).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeVar, final

from petranode.crypto import schnorr
from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point, Scalar
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import (
    DeliveryReject,
    DeliveryRejected,
    MarketRecordInvalid,
    RecordFault,
)
from petranode.market.registry import (
    ID_BYTES,
    KEY_BYTES,
    MAX_POWER_W,
    RECORD_VERSION,
    SIGNATURE_BYTES,
    check_power,
    check_public_key,
    decoding,
    record_fields,
)
from petranode.market.reputation import ReputationBook
from petranode.market.settlement import (
    IntervalSettlement,
    SettlementTerms,
    ShortfallPolicy,
    TradeObligation,
    settle_interval,
)
from petranode.market.trade_kinds import Side, Trade
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value

log = logging.getLogger(__name__)

REPORT_DOMAIN: Final = "petranode/market/delivery-report/v1"
CLAIM_DOMAIN: Final = "petranode/market/delivery-claim/v1"
#: Most offers one report may claim. Each claim costs the DSO a Schnorr verification; a
#: prosumer selling one interval needs a handful of offers, so 64 bounds the work of one
#: report (≈ 64 verifications) far above honest use.
MAX_CLAIMS: Final = 64
#: [1 B header, version 1, interval 9, key 34, claims header 3 + 64 × (1 + 34 id + 66 sig),
#: delivered 5, signature 66] = 6 583, rounded up: checked before any decoding work.
MAX_REPORT_BYTES: Final = 6656

#: Looks an offer's cancel key up on the ledger; ``None`` for an unknown offer.
CancelKeyOf: TypeAlias = Callable[[bytes], Point | None]
_T = TypeVar("_T")


# -- the wire record ------------------------------------------------------------------------------


def claim_message(network_id: str, meter_key: bytes, interval: int, offer_id: bytes) -> bytes:
    """What a cancel key signs to claim its offer for one meter's report of one interval."""
    payload = codec.encode([meter_key, interval, offer_id])
    return hashlib.sha256(signing.signing_bytes(CLAIM_DOMAIN, network_id, payload)).digest()


@final
@dataclass(frozen=True, slots=True)
class OfferClaim:
    """"This offer is mine": an offer id and its cancel key's Schnorr signature (``c ‖ r``).

    Only the signature's length is checked here; whether it is canonical and verifies is
    :meth:`DeliveryReport.verify`'s question, so every bad signature has one outcome.
    """

    offer_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.offer_id) != ID_BYTES:
            raise ValueError(f"offer id must be {ID_BYTES} bytes")
        if len(self.signature) != schnorr.SIGNATURE_BYTES:
            raise ValueError(f"claim signature must be {schnorr.SIGNATURE_BYTES} bytes")

    @classmethod
    def sign(cls, network_id: str, meter_key: bytes, interval: int, offer_id: bytes,
             cancel_secret: Scalar) -> OfferClaim:
        """Claim ``offer_id`` with its cancel secret.

        The nonce is deterministic (``schnorr.deterministic_nonce_rng``), as for cancels: a
        claim needs no randomness and a broken RNG cannot leak the cancel secret.
        """
        message = claim_message(network_id, meter_key, interval, offer_id)
        signature = schnorr.generate_signature(
            message, cancel_secret.mul_base(), cancel_secret,
            schnorr.deterministic_nonce_rng(cancel_secret, message))
        return cls(offer_id, bytes(signature))

    def signature_valid(self, network_id: str, meter_key: bytes, interval: int,
                        cancel_key: Point) -> bool:
        try:
            signature = schnorr.Signature.from_bytes(self.signature)
            schnorr.verify_signature(
                claim_message(network_id, meter_key, interval, self.offer_id), cancel_key,
                signature)
        except CryptoError:  # a non-canonical scalar or a failed check alike
            return False
        return True

    def to_value(self) -> list[Encodable]:
        return [self.offer_id, self.signature]

    @classmethod
    def from_value(cls, value: Value) -> OfferClaim:
        f = codec.expect_list(value, 2, what="claim")
        return cls(codec.expect_bytes(f[0], ID_BYTES, what="offer id"),
                   codec.expect_bytes(f[1], schnorr.SIGNATURE_BYTES, what="claim signature"))


@final
@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A meter's signed delivery for one interval, with the offers it sold in it.

    Claims are in strictly increasing offer-id order: one set of claims, one encoding.
    """

    interval: int
    meter_key: bytes
    claims: tuple[OfferClaim, ...]
    #: Credited delivery: ``min(metered export, Σ sold)`` over the interval, watts.
    delivered_w: int
    signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported delivery report version {self.version}")
        if not 0 <= self.interval <= MAX_INTERVAL:
            raise ValueError("interval out of range")
        check_public_key(self.meter_key, "meter key")
        if not 1 <= len(self.claims) <= MAX_CLAIMS:
            raise ValueError(f"a report claims 1..{MAX_CLAIMS} offers")
        ids = [c.offer_id for c in self.claims]
        if ids != sorted(set(ids)):
            raise ValueError("claims must be in strictly increasing offer-id order")
        check_power(self.delivered_w, "delivered_w", allow_zero=True)
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @staticmethod
    def body(interval: int, meter_key: bytes, claims: Iterable[OfferClaim],
             delivered_w: int) -> list[Encodable]:
        return [RECORD_VERSION, interval, meter_key, [c.to_value() for c in claims],
                delivered_w]

    @classmethod
    def create(cls, meter_signer: Signer, network_id: str, interval: int,
               claims_secrets: Sequence[tuple[bytes, Scalar]],
               delivered_w: int) -> DeliveryReport:
        """A report by ``meter_signer`` claiming each ``(offer id, cancel secret)``."""
        meter_key = meter_signer.signing_key
        claims = tuple(sorted(
            (OfferClaim.sign(network_id, meter_key, interval, offer_id, secret)
             for offer_id, secret in claims_secrets),
            key=lambda c: c.offer_id))
        body = cls.body(interval, meter_key, claims, delivered_w)
        signature = meter_signer.sign(REPORT_DOMAIN, network_id, codec.encode(body))
        return cls(interval, meter_key, claims, delivered_w, signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.interval, self.meter_key, self.claims,
                                      self.delivered_w))

    def verify(self, network_id: str, cancel_key_of: CancelKeyOf) -> None:
        """Raise ``MarketRecordInvalid(BAD_SIGNATURE)`` unless the meter signed the report
        and every claim is signed by its offer's cancel key (``None``: an unknown offer)."""
        if not signing.verify(self.meter_key, self.signature, REPORT_DOMAIN, network_id,
                              self.signed_body()):
            raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "delivery report")
        for claim in self.claims:
            cancel_key = cancel_key_of(claim.offer_id)
            if cancel_key is None or not claim.signature_valid(network_id, self.meter_key,
                                                               self.interval, cancel_key):
                raise MarketRecordInvalid(RecordFault.BAD_SIGNATURE, "delivery claim")

    @property
    def offer_ids(self) -> tuple[bytes, ...]:
        return tuple(c.offer_id for c in self.claims)

    def encode(self) -> bytes:
        return codec.encode([*self.body(self.interval, self.meter_key, self.claims,
                                        self.delivered_w), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> DeliveryReport:
        """The report of ``data`` (signatures not checked: see :meth:`verify`)."""
        with decoding("delivery report"):
            f = record_fields(data, max_size=MAX_REPORT_BYTES, length=6,
                              what="delivery report")
            claims = codec.expect_list(f[3], what="claims")
            if not 1 <= len(claims) <= MAX_CLAIMS:
                raise ValueError(f"a report claims 1..{MAX_CLAIMS} offers")
            return cls(
                interval=codec.expect_int(f[1], 0, MAX_INTERVAL, what="interval"),
                meter_key=codec.expect_bytes(f[2], KEY_BYTES, what="meter key"),
                claims=tuple(OfferClaim.from_value(c) for c in claims),
                delivered_w=codec.expect_int(f[4], 0, MAX_POWER_W, what="delivered"),
                signature=codec.expect_bytes(f[5], SIGNATURE_BYTES, what="signature"),
            )


# -- the DSO's settlement desk ---------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class PendingRow:
    """One accepted, unsettled report as the desk keeps it: the meter's trades and delivery."""

    interval: int
    meter_key: bytes
    delivered_w: int
    #: ``(trade id, power W)`` of each SELL trade the report claimed.
    trades: tuple[tuple[bytes, int], ...]


@final
@dataclass(frozen=True, slots=True)
class DeskRows:
    """The desk's state as plain rows for the store (refusal counts are runtime metrics and
    are not kept)."""

    #: ``(meter key, debt cents)``, debts above zero only.
    debts: tuple[tuple[bytes, int], ...] = ()
    claimed_offers: tuple[bytes, ...] = ()
    settled_intervals: tuple[int, ...] = ()
    pending: tuple[PendingRow, ...] = ()
    trades_settled: int = 0
    shortfall_w: int = 0
    penalty_cents: int = 0


@final
class SettlementDesk:
    """The DSO's settlement of intervals from meter delivery reports (module docstring).

    A data structure, not a service: callers pass lookups into the ledger (trades and cancel
    keys by offer id) and the registry, and call :meth:`settle` when an interval's settlement
    time has come.
    """

    __slots__ = ("_claimed", "_debts", "_penalty_cents", "_pending", "_refused", "_settled",
                 "_shortfall_w", "_trades_settled", "book", "terms")

    def __init__(self, terms: SettlementTerms, book: ReputationBook) -> None:
        # With no escrow behind an obligation, CAP_AT_ESCROW would waive every penalty.
        if terms.policy is not ShortfallPolicy.DEBT:
            raise ValueError("energy escrow is burnt: delivery settlement needs the DEBT policy")
        self.terms = terms
        self.book = book
        self._claimed: set[bytes] = set()
        self._debts: dict[bytes, int] = {}
        self._settled: set[int] = set()
        #: interval → meter key → accepted report's obligations and delivery.
        self._pending: dict[int, dict[bytes, PendingRow]] = {}
        self._refused: dict[DeliveryReject, int] = {}
        self._trades_settled = 0
        self._shortfall_w = 0
        self._penalty_cents = 0

    def __repr__(self) -> str:
        return (f"SettlementDesk(settled={len(self._settled)}, "
                f"pending={sum(map(len, self._pending.values()))})")

    # -- reports -------------------------------------------------------------------------------

    def accept_report(self, report: DeliveryReport, *, registered: Callable[[bytes], bool],
                      trades_of: Callable[[bytes], Sequence[Trade]],
                      cancel_key_of: CancelKeyOf, network_id: str) -> None:
        """Check ``report`` and record its trades for settlement, or raise
        ``DeliveryRejected`` (counted by reason) and record nothing."""
        try:
            row = self._check(report, registered, trades_of, cancel_key_of, network_id)
        except DeliveryRejected as exc:
            self._refused[exc.reason] = self._refused.get(exc.reason, 0) + 1
            raise
        self._add_pending(row)
        self._claimed.update(report.offer_ids)
        log.debug("delivery.accepted interval=%d claims=%d", report.interval,
                  len(report.claims))

    def _check(self, report: DeliveryReport, registered: Callable[[bytes], bool],
               trades_of: Callable[[bytes], Sequence[Trade]], cancel_key_of: CancelKeyOf,
               network_id: str) -> PendingRow:
        """The row ``report`` would add; changes nothing. Cheap checks, then signatures,
        then state (the validation tiers)."""
        interval, meter = report.interval, report.meter_key
        if interval in self._settled:
            raise DeliveryRejected(DeliveryReject.ALREADY_SETTLED)
        if not registered(meter) or not self._enrolled(meter):
            raise DeliveryRejected(DeliveryReject.UNKNOWN_METER)
        try:
            report.verify(network_id, cancel_key_of)
        except MarketRecordInvalid as exc:
            raise DeliveryRejected(DeliveryReject.BAD_SIGNATURE) from exc
        if meter in self._pending.get(interval, {}):
            raise DeliveryRejected(DeliveryReject.DUPLICATE_REPORT)
        if any(offer_id in self._claimed for offer_id in report.offer_ids):
            raise DeliveryRejected(DeliveryReject.DUPLICATE_CLAIM)
        trades = [t for offer_id in report.offer_ids
                  for t in _sold_trades(offer_id, interval, trades_of(offer_id))]
        if report.delivered_w > sum(t.power_w for t in trades):
            raise DeliveryRejected(DeliveryReject.DELIVERED_ABOVE_SOLD)
        return PendingRow(interval, meter, report.delivered_w,
                          tuple((t.trade_id, t.power_w) for t in trades))

    def _enrolled(self, meter_key: bytes) -> bool:
        # Settling a seller the book does not track would fail half-way through settle().
        try:
            self.book.score(meter_key)
        except KeyError:
            return False
        return True

    # -- settlement ----------------------------------------------------------------------------

    def settle(self, interval: int) -> IntervalSettlement:
        """Settle every report of ``interval``: record outcomes, add penalties to debts,
        close the interval. An interval without reports settles empty."""
        if interval in self._settled:
            raise DeliveryRejected(DeliveryReject.ALREADY_SETTLED)
        rows = self._pending.get(interval, {})
        obligations = [_obligation(row, trade_id, power)
                       for row in rows.values() for trade_id, power in row.trades]
        delivered = {meter: row.delivered_w for meter, row in rows.items()}
        settlement = settle_interval(interval, obligations, delivered, self.terms)
        # Computed in full before any state changes, so a refusal above leaves none.
        self.book.record_all(settlement.outcomes)
        seller_of = {o.trade_id: o.seller for o in obligations}
        for trade in settlement.trades:
            if trade.debt_cents:
                seller = seller_of[trade.trade_id]
                self._debts[seller] = self._debts.get(seller, 0) + trade.debt_cents
        self._trades_settled += len(settlement.trades)
        self._shortfall_w += settlement.total_shortfall_w
        self._penalty_cents += settlement.total_penalty_cents
        self._settled.add(interval)
        self._pending.pop(interval, None)
        log.debug("delivery.settled interval=%d trades=%d", interval, len(settlement.trades))
        return settlement

    # -- queries -------------------------------------------------------------------------------

    def debt(self, meter_key: bytes) -> int:
        """Penalty cents the meter's prosumer owes, to be collected with its bill."""
        return self._debts.get(meter_key, 0)

    @property
    def settled_intervals(self) -> int:
        return len(self._settled)

    def is_settled(self, interval: int) -> bool:
        return interval in self._settled

    def summary(self) -> dict[str, int | dict[str, int]]:
        """Totals for RPC: no meter keys, no per-prosumer figures."""
        return {
            "intervals_settled": len(self._settled),
            "trades_settled": self._trades_settled,
            "shortfall_w": self._shortfall_w,
            "penalty_cents": self._penalty_cents,
            "pending_reports": sum(map(len, self._pending.values())),
            "refused": {r.value: n for r, n in sorted(self._refused.items(),
                                                      key=lambda item: item[0].value)},
        }

    # -- persistence ---------------------------------------------------------------------------

    def to_rows(self) -> DeskRows:
        return DeskRows(
            debts=tuple(sorted(self._debts.items())),
            claimed_offers=tuple(sorted(self._claimed)),
            settled_intervals=tuple(sorted(self._settled)),
            pending=tuple(row for _, by_meter in sorted(self._pending.items())
                          for _, row in sorted(by_meter.items())),
            trades_settled=self._trades_settled,
            shortfall_w=self._shortfall_w,
            penalty_cents=self._penalty_cents,
        )

    @classmethod
    def from_rows(cls, terms: SettlementTerms, book: ReputationBook,
                  rows: DeskRows) -> SettlementDesk:
        """Rebuild a desk; a row that cannot be the desk's is ``MarketRecordInvalid``."""
        desk = cls(terms, book)
        with decoding("settlement desk row"):
            for meter, cents in rows.debts:
                check_public_key(meter, "debtor")
                if cents <= 0 or meter in desk._debts:
                    raise ValueError("debts are positive, one per meter")
                desk._debts[meter] = cents
            desk._claimed = _distinct(rows.claimed_offers, "claimed offer")
            if any(len(offer_id) != ID_BYTES for offer_id in desk._claimed):
                raise ValueError("offer ids are 32 bytes")
            desk._settled = _distinct(rows.settled_intervals, "settled interval")
            if any(not 0 <= i <= MAX_INTERVAL for i in desk._settled):
                raise ValueError("interval out of range")
            for row in rows.pending:
                desk._restore_pending(row)
            if min(rows.trades_settled, rows.shortfall_w, rows.penalty_cents) < 0:
                raise ValueError("totals are not negative")
            desk._trades_settled = rows.trades_settled
            desk._shortfall_w = rows.shortfall_w
            desk._penalty_cents = rows.penalty_cents
        return desk

    def _restore_pending(self, row: PendingRow) -> None:
        if row.interval in self._settled or row.meter_key in self._pending.get(row.interval, {}):
            raise ValueError("pending report of a settled interval, or twice")
        check_public_key(row.meter_key, "meter key")
        if not self._enrolled(row.meter_key):
            raise ValueError("pending report of a meter the reputation book does not track")
        check_power(row.delivered_w, "delivered_w", allow_zero=True)
        for trade_id, power in row.trades:
            _obligation(row, trade_id, power)  # validates the trade's shape
        if row.delivered_w > sum(power for _, power in row.trades):
            raise ValueError("delivered above sold")
        self._add_pending(row)

    def _add_pending(self, row: PendingRow) -> None:
        self._pending.setdefault(row.interval, {})[row.meter_key] = row


def _sold_trades(offer_id: bytes, interval: int, trades: Sequence[Trade]) -> list[Trade]:
    """The trades of a claimed offer in ``interval``, all of them sales by the claimant."""
    # Filtering on the offer id too keeps a careless lookup from crediting another's trades.
    in_interval = [t for t in trades if t.offer_id == offer_id and t.interval == interval]
    if not in_interval:
        raise DeliveryRejected(DeliveryReject.NO_TRADES)
    if any(t.maker_side is not Side.SELL for t in in_interval):
        raise DeliveryRejected(DeliveryReject.NOT_SELLER)
    return in_interval


def _obligation(row: PendingRow, trade_id: bytes, power_w: int) -> TradeObligation:
    # escrow 0: the seller's production was burnt at acceptance, so the penalty is all debt.
    return TradeObligation(trade_id=trade_id, interval=row.interval, seller=row.meter_key,
                           power_w=power_w, escrow_cents=0)


def _distinct(items: Sequence[_T], what: str) -> set[_T]:
    result = set(items)
    if len(result) != len(items):
        raise ValueError(f"{what} twice")
    return result
