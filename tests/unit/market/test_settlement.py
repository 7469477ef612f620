"""Settlement: allocation of delivery, penalties, escrow and debt, all in integers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.market.errors import SettlementReject, SettlementRejected
from petranode.market.settlement import (
    DeliveryOutcome,
    SettlementTerms,
    ShortfallPolicy,
    TradeObligation,
    allocate,
    settle_interval,
    settle_trade,
)

SELLER_A = b"\xaa" * 32
SELLER_B = b"\xbb" * 32
CAP = SettlementTerms(penalty_millicents_per_w=1500)  # 1.5 cent per missing W·interval
DEBT = SettlementTerms(penalty_millicents_per_w=1500, policy=ShortfallPolicy.DEBT)


def trade(n: int, seller: bytes, power: int, escrow: int = 1000, interval: int = 5) -> (
        TradeObligation):
    return TradeObligation(bytes([n]) * 32, interval, seller, power, escrow)


def test_full_delivery_costs_nothing() -> None:
    s = settle_trade(trade(1, SELLER_A, 500), 500, CAP)
    assert (s.shortfall_w, s.penalty_cents, s.from_escrow_cents, s.escrow_returned_cents) == (
        0, 0, 0, 1000)
    assert s.fully_delivered


def test_penalty_rounds_up() -> None:
    # 101 W short at 1.5 cent/W = 151.5 cents -> 152.
    s = settle_trade(trade(1, SELLER_A, 500), 399, CAP)
    assert (s.shortfall_w, s.penalty_cents) == (101, 152)
    assert SettlementTerms(1).penalty(1) == 1  # a thousandth of a cent still costs a cent
    assert SettlementTerms(0).penalty(10**9) == 0


def test_escrow_cap_waives_the_rest() -> None:
    s = settle_trade(trade(1, SELLER_A, 1000, escrow=100), 0, CAP)
    assert (s.penalty_cents, s.from_escrow_cents, s.escrow_returned_cents) == (1500, 100, 0)
    assert (s.debt_cents, s.waived_cents) == (0, 1400)


def test_debt_policy_records_the_rest() -> None:
    s = settle_trade(trade(1, SELLER_A, 1000, escrow=100), 0, DEBT)
    assert (s.from_escrow_cents, s.debt_cents, s.waived_cents) == (100, 1400, 0)


def test_interval_with_two_sellers() -> None:
    trades = [trade(1, SELLER_A, 300), trade(2, SELLER_A, 100), trade(3, SELLER_B, 200)]
    result = settle_interval(5, trades, {SELLER_A: 1000, SELLER_B: 50}, CAP)
    # A over-delivered: credited its 400 W exactly; B delivered 50 of 200.
    delivered = {t.trade_id[0]: t.delivered_w for t in result.trades}
    assert delivered == {1: 300, 2: 100, 3: 50}
    assert result.outcomes == (
        DeliveryOutcome(SELLER_A, 5, 400, 400, True),
        DeliveryOutcome(SELLER_B, 5, 200, 50, True),
    )
    assert result.total_shortfall_w == 150
    assert result.total_penalty_cents == 225


def test_unreported_seller_delivered_nothing() -> None:
    result = settle_interval(5, [trade(1, SELLER_A, 300)], {SELLER_B: 99}, CAP)
    assert result.outcomes == (DeliveryOutcome(SELLER_A, 5, 300, 0, False),)
    assert result.trades[0].shortfall_w == 300


def test_pro_rata_allocation_is_exact() -> None:
    trades = [trade(1, SELLER_A, 1), trade(2, SELLER_A, 1), trade(3, SELLER_A, 1)]
    assert allocate(2, trades) == {b"\x01" * 32: 1, b"\x02" * 32: 1, b"\x03" * 32: 0}
    assert allocate(2, list(reversed(trades))) == allocate(2, trades)


@pytest.mark.parametrize(
    ("trades", "delivered", "reason"),
    [
        ([trade(1, SELLER_A, 1), trade(1, SELLER_B, 1)], {}, SettlementReject.DUPLICATE_TRADE),
        ([trade(1, SELLER_A, 1, interval=6)], {}, SettlementReject.WRONG_INTERVAL),
        ([trade(1, SELLER_A, 1)], {SELLER_A: -1}, SettlementReject.BAD_DELIVERY),
        ([trade(1, SELLER_A, 1)], {SELLER_A: 2**32}, SettlementReject.BAD_DELIVERY),
    ],
)
def test_inconsistent_input(trades: list[TradeObligation], delivered: dict[bytes, int],
                            reason: SettlementReject) -> None:
    with pytest.raises(SettlementRejected) as caught:
        settle_interval(5, trades, delivered, CAP)
    assert caught.value.reason is reason


def test_invalid_terms_and_obligations() -> None:
    with pytest.raises(ValueError):
        SettlementTerms(-1)
    with pytest.raises(ValueError):
        trade(1, SELLER_A, 0)
    with pytest.raises(ValueError):
        settle_trade(trade(1, SELLER_A, 10), 11, CAP)


obligations = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 10_000), st.integers(0, 50_000)),
    min_size=1, max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(obligations, st.lists(st.integers(0, 40_000), min_size=4, max_size=4),
       st.integers(0, 10**6), st.sampled_from(ShortfallPolicy))
def test_settlement_invariants(raw: list[tuple[int, int, int]], reports: list[int], rate: int,
                               policy: ShortfallPolicy) -> None:
    sellers = [bytes([0x10 + i]) * 32 for i in range(4)]
    trades = [TradeObligation(bytes([n]) * 32, 9, sellers[s], p, e)
              for n, (s, p, e) in enumerate(raw)]
    terms = SettlementTerms(rate, policy)
    result = settle_interval(9, reversed(trades), dict(zip(sellers, reports, strict=True)), terms)
    assert [t.trade_id for t in result.trades] == sorted(t.trade_id for t in trades)
    escrow = {t.trade_id: t.escrow_cents for t in trades}
    for s in result.trades:
        assert 0 <= s.delivered_w <= s.promised_w
        assert s.shortfall_w == s.promised_w - s.delivered_w
        assert s.penalty_cents * 1000 >= s.shortfall_w * rate > (s.penalty_cents - 1) * 1000
        assert s.from_escrow_cents + s.escrow_returned_cents == escrow[s.trade_id]
        assert s.from_escrow_cents + s.debt_cents + s.waived_cents == s.penalty_cents
    for outcome in result.outcomes:
        mine = [s for s, t in zip(result.trades, sorted(trades, key=lambda t: t.trade_id),
                                  strict=True) if t.seller == outcome.prosumer]
        assert outcome.promised_w == sum(s.promised_w for s in mine)
        assert outcome.delivered_w == sum(s.delivered_w for s in mine)
        assert outcome.delivered_w == min(reports[sellers.index(outcome.prosumer)],
                                          outcome.promised_w)
