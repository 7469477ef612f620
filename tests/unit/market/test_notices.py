"""DSO notices on the ledger (``market/notices.py``): price policies and feeder limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.ledger.state import LedgerSnapshot, apply_block_txs
from petranode.ledger.tx import LedgerParams, encode_tx, tx_hash
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.market.billing import PricePolicy
from petranode.market.errors import MarketReject, MarketTxRejected
from petranode.market.notices import Notice, NoticeTopic
from petranode.market.registry import FeederLimit
from petranode.market.trade_kinds import MARKET_REGISTRY
from petranode.net.identity import RouterKeys

NET = "notices-test"
DSO = RouterKeys.from_secrets(signing_seed=b"\x11" * 32, static_secret=b"\x22" * 32)
STRANGER = RouterKeys.from_secrets(signing_seed=b"\x33" * 32, static_secret=b"\x44" * 32)
PARAMS = LedgerParams(NET, DSO.identity.signing_key)
LIMIT = FeederLimit("north", 50_000, 60_000)


def _policy(signer: RouterKeys = DSO) -> PricePolicy:
    return PricePolicy.issue(signer, NET, first_interval=24, last_interval=47,
                             intervals_per_day=24, import_prices=[30_000] * 24,
                             export_prices=[8_000] * 24)


def _validate(notice: Notice) -> None:
    apply_block_txs(LedgerSnapshot(), [encode_tx(notice)], PARAMS, MARKET_REGISTRY)


def test_feeder_limit_and_price_policy_notices_apply() -> None:
    limit = Notice.issue(DSO, NET, NoticeTopic.FEEDER_LIMIT, LIMIT.encode(), 1_000)
    policy = Notice.issue(DSO, NET, NoticeTopic.PRICE_POLICY, _policy().encode(), 1_001)
    delta = apply_block_txs(LedgerSnapshot(), [encode_tx(limit), encode_tx(policy)], PARAMS,
                            MARKET_REGISTRY)
    assert [a.tx for a in delta.txs] == [limit, policy]
    assert delta.outputs == () and delta.spent == ()
    assert (limit.key, policy.key) == ("north", "24")


def test_a_notice_is_not_replayed() -> None:
    notice = Notice.issue(DSO, NET, NoticeTopic.FEEDER_LIMIT, LIMIT.encode(), 1_000)
    on_ledger = LedgerSnapshot(txs=[tx_hash(notice)])
    with pytest.raises(TxRejected) as info:
        apply_block_txs(on_ledger, [encode_tx(notice)], PARAMS, MARKET_REGISTRY)
    assert info.value.reason is TxReject.ALREADY_ON_LEDGER


def test_only_the_dso_posts_notices() -> None:
    forged = Notice.issue(STRANGER, NET, NoticeTopic.FEEDER_LIMIT, LIMIT.encode(), 1_000)
    with pytest.raises(MarketTxRejected) as info:
        _validate(forged)
    assert info.value.reason is MarketReject.BAD_NOTICE_SIGNATURE


def test_a_price_policy_signed_by_another_key_is_refused_inside_a_dso_notice() -> None:
    notice = Notice.issue(DSO, NET, NoticeTopic.PRICE_POLICY, _policy(STRANGER).encode(), 1)
    with pytest.raises(MarketTxRejected) as info:
        _validate(notice)
    assert info.value.reason is MarketReject.BAD_NOTICE_SIGNATURE


@pytest.mark.parametrize("flip", [0, 10, 63])
def test_a_flipped_signature_bit_fails(flip: int) -> None:
    notice = Notice.issue(DSO, NET, NoticeTopic.FEEDER_LIMIT, LIMIT.encode(), 5)
    sig = bytearray(notice.signature)
    sig[flip] ^= 1
    with pytest.raises(MarketTxRejected):
        _validate(Notice(notice.topic, notice.issued_ms, notice.body, bytes(sig)))


def test_a_body_that_is_not_its_topics_record_is_malformed() -> None:
    with pytest.raises(TxRejected) as info:
        Notice(NoticeTopic.PRICE_POLICY, 1, LIMIT.encode(), bytes(64))
    assert info.value.reason is TxReject.MALFORMED


@settings(max_examples=50)
@given(st.integers(0, 2**63 - 1), st.text(min_size=1, max_size=32).filter(str.isprintable),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_notice_round_trip(issued_ms: int, feeder: str, production: int,
                           consumption: int) -> None:
    try:
        limit = FeederLimit(feeder, production, consumption)
    except ValueError:
        return  # a feeder name the registry refuses
    notice = Notice.issue(DSO, NET, NoticeTopic.FEEDER_LIMIT, limit.encode(), issued_ms)
    assert MARKET_REGISTRY.decode(encode_tx(notice)) == notice


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_garbage_in_a_notice_is_only_ever_tx_rejected(body: bytes) -> None:
    notice = Notice.issue(DSO, NET, NoticeTopic.FEEDER_LIMIT, LIMIT.encode(), 9)
    data = bytearray(encode_tx(notice))
    for i, b in enumerate(body[:len(data)]):
        data[(i * 7) % len(data)] ^= b
    try:
        MARKET_REGISTRY.decode(bytes(data))
    except TxRejected:
        pass
