"""Settlement of one interval from meter-reported delivery (SPEC §4.7 "after each interval the
meters report delivery and trades settle, with penalties for shortfall").

Theory of operation
-------------------
Input: every trade of the interval as a :class:`TradeObligation` (the seller, the power it
sold, the escrow backing it) and each seller's meter-reported delivery — its average export
power over the interval, in watts (so W and W·interval are the same number here). Output:
per trade a :class:`TradeSettlement`, per seller a :class:`DeliveryOutcome` (the input of
``reputation.py``). Pure integer arithmetic; nothing is read from a clock or a store.

Rules, in order:

1. **Credit.** A seller's delivery counts at most up to what it sold in the interval:
   ``credited = min(delivered, Σ promised)``; exports beyond its trades went to the grid and
   are billed, not settled. A seller with no report is settled as having delivered 0
   (``reported = False`` in its outcome) — silence is not delivery.
2. **Allocation.** A seller with several trades shares ``credited`` among them in proportion
   to their power (Hamilton's largest-remainder method): trade ``k`` gets
   ``⌊credited·p_k / P⌋`` and the watts still unassigned go one each to the largest
   remainders ``credited·p_k mod P``, ties to the smaller trade id. The shares sum exactly to
   ``credited``, no trade is credited more than it sold, and the result does not depend on
   the order the trades were given in.
3. **Penalty.** For a trade sold at ``p`` W and credited ``d`` W the shortfall is
   ``s = p − d`` and the penalty ``⌈s · rate / 1000⌉`` cents, where ``rate`` is
   :attr:`SettlementTerms.penalty_millicents_per_w` (a price per missing W·interval in
   thousandths of a cent). Rounding is *up*: the fraction of a cent goes to the buyer who
   was let down, never to the seller who fell short, and any non-zero shortfall at a
   non-zero rate costs at least a cent.
4. **Escrow and debt.** The penalty is paid from the trade's escrow first; the rest is a
   debt of the seller under :attr:`ShortfallPolicy.DEBT`, or waived under
   :attr:`ShortfallPolicy.CAP_AT_ESCROW`. What is left of the escrow returns to the seller.
   Invariants: ``from_escrow + escrow_returned = escrow`` and
   ``from_escrow + debt + waived = penalty``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.pedersen import MAX_AMOUNT
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import SettlementReject, SettlementRejected
from petranode.market.registry import MAX_POWER_W

log = logging.getLogger(__name__)

ID_BYTES: Final = 32
MILLICENTS_PER_CENT: Final = 1000
#: Highest penalty rate: 10⁹ millicents (10 000 €) per missing W·interval is beyond any
#: tariff and keeps ``shortfall × rate`` far inside 2⁶⁴.
MAX_PENALTY_RATE: Final = 10**9


class ShortfallPolicy(enum.Enum):
    """What happens to the part of a penalty the escrow does not cover."""

    #: The penalty is capped by the escrow; the rest is waived.
    CAP_AT_ESCROW = "cap_at_escrow"
    #: The rest is recorded as the seller's debt to the DSO (collected with its bill).
    DEBT = "debt"


@final
@dataclass(frozen=True, slots=True)
class SettlementTerms:
    """The network's shortfall price and policy (posted with the price policies)."""

    #: Penalty per missing W·interval, in thousandths of a cent.
    penalty_millicents_per_w: int
    policy: ShortfallPolicy = ShortfallPolicy.CAP_AT_ESCROW

    def __post_init__(self) -> None:
        if not 0 <= self.penalty_millicents_per_w <= MAX_PENALTY_RATE:
            raise ValueError(f"penalty rate must be 0..{MAX_PENALTY_RATE} millicents per W")

    def penalty(self, shortfall_w: int) -> int:
        """``⌈shortfall · rate / 1000⌉`` cents (rounded up, in the buyer's favour)."""
        if shortfall_w < 0:
            raise ValueError("shortfall must not be negative")
        return -(-shortfall_w * self.penalty_millicents_per_w // MILLICENTS_PER_CENT)


@final
@dataclass(frozen=True, slots=True)
class TradeObligation:
    """One cleared trade as settlement needs it: who must deliver how much, with what escrow.

    ``seller`` is the prosumer's id as the DSO knows it (its meter key); it never leaves the
    DSO's settlement.
    """

    trade_id: bytes
    interval: int
    seller: bytes
    power_w: int
    escrow_cents: int

    def __post_init__(self) -> None:
        if len(self.trade_id) != ID_BYTES or len(self.seller) != ID_BYTES:
            raise ValueError("trade id and seller are 32 bytes")
        if not 0 <= self.interval <= MAX_INTERVAL:
            raise ValueError("interval out of range")
        if not 1 <= self.power_w <= MAX_POWER_W:
            raise ValueError("power must be 1..2^32-1 W")
        if not 0 <= self.escrow_cents <= MAX_AMOUNT:
            raise ValueError("escrow must be 0..2^64-1 cents")


@final
@dataclass(frozen=True, slots=True)
class TradeSettlement:
    """How one trade settled; every amount in cents, every power in watts."""

    trade_id: bytes
    promised_w: int
    delivered_w: int
    shortfall_w: int
    penalty_cents: int
    from_escrow_cents: int
    escrow_returned_cents: int
    debt_cents: int
    waived_cents: int

    @property
    def fully_delivered(self) -> bool:
        return self.shortfall_w == 0


@final
@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """One seller's delivery in one interval: the input of a reputation update."""

    prosumer: bytes
    interval: int
    promised_w: int
    delivered_w: int
    #: Whether the seller's meter reported at all (an unreported seller delivered 0).
    reported: bool

    @property
    def shortfall_w(self) -> int:
        return self.promised_w - self.delivered_w


@final
@dataclass(frozen=True, slots=True)
class IntervalSettlement:
    """Everything the settlement of one interval decided."""

    interval: int
    trades: tuple[TradeSettlement, ...]
    outcomes: tuple[DeliveryOutcome, ...]

    @property
    def total_penalty_cents(self) -> int:
        return sum(t.penalty_cents for t in self.trades)

    @property
    def total_shortfall_w(self) -> int:
        return sum(t.shortfall_w for t in self.trades)


def settle_trade(obligation: TradeObligation, credited_w: int,
                 terms: SettlementTerms) -> TradeSettlement:
    """Rules 3 and 4 for one trade credited ``credited_w`` of its power."""
    if not 0 <= credited_w <= obligation.power_w:
        raise ValueError("credited power must be 0..promised")
    shortfall = obligation.power_w - credited_w
    penalty = terms.penalty(shortfall)
    from_escrow = min(penalty, obligation.escrow_cents)
    rest = penalty - from_escrow
    in_debt = terms.policy is ShortfallPolicy.DEBT
    return TradeSettlement(
        trade_id=obligation.trade_id,
        promised_w=obligation.power_w,
        delivered_w=credited_w,
        shortfall_w=shortfall,
        penalty_cents=penalty,
        from_escrow_cents=from_escrow,
        escrow_returned_cents=obligation.escrow_cents - from_escrow,
        debt_cents=rest if in_debt else 0,
        waived_cents=0 if in_debt else rest,
    )


def allocate(credited_w: int, trades: Sequence[TradeObligation]) -> dict[bytes, int]:
    """Rule 2: share ``credited_w`` (≤ the trades' total) among one seller's trades."""
    total = sum(t.power_w for t in trades)
    if not 0 <= credited_w <= total:
        raise ValueError("credited power must be 0..total promised")
    shares = {t.trade_id: credited_w * t.power_w // total for t in trades}
    leftover = credited_w - sum(shares.values())
    by_remainder = sorted(trades, key=lambda t: (-(credited_w * t.power_w % total), t.trade_id))
    for trade in by_remainder[:leftover]:
        shares[trade.trade_id] += 1
    return shares


def settle_interval(interval: int, obligations: Iterable[TradeObligation],
                    delivered: Mapping[bytes, int], terms: SettlementTerms) -> IntervalSettlement:
    """Settle every trade of ``interval`` against the sellers' reported delivery (watts).

    ``delivered`` maps a seller to its meter-reported export; sellers absent from it
    delivered nothing, and reports of sellers without trades are ignored (grid exports).
    Trades and outcomes come out sorted by trade id and seller.
    """
    by_seller = _group(interval, obligations)
    settled: list[TradeSettlement] = []
    outcomes: list[DeliveryOutcome] = []
    for seller in sorted(by_seller):
        trades = by_seller[seller]
        reported = seller in delivered
        report = delivered.get(seller, 0)
        if not 0 <= report <= MAX_POWER_W:
            raise SettlementRejected(SettlementReject.BAD_DELIVERY)
        promised = sum(t.power_w for t in trades)
        credited = min(report, promised)
        shares = allocate(credited, trades)
        settled += (settle_trade(t, shares[t.trade_id], terms) for t in trades)
        outcomes.append(DeliveryOutcome(seller, interval, promised, credited, reported))
    settled.sort(key=lambda t: t.trade_id)
    log.debug("settlement.complete interval=%d trades=%d", interval, len(settled))
    return IntervalSettlement(interval, tuple(settled), tuple(outcomes))


def _group(interval: int,
           obligations: Iterable[TradeObligation]) -> dict[bytes, list[TradeObligation]]:
    seen: set[bytes] = set()
    by_seller: dict[bytes, list[TradeObligation]] = {}
    for obligation in obligations:
        if obligation.interval != interval:
            raise SettlementRejected(SettlementReject.WRONG_INTERVAL)
        if obligation.trade_id in seen:
            raise SettlementRejected(SettlementReject.DUPLICATE_TRADE)
        seen.add(obligation.trade_id)
        by_seller.setdefault(obligation.seller, []).append(obligation)
    return by_seller
