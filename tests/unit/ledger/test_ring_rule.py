"""The ring-size rule (an asset with fewer outputs than the minimum is spent in a ring of all of
them), the wallet's ring choice, skipping signatures of verified transactions, and replaying
stored blocks."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_helpers import ENERGY, NETWORK, Funded, dso, funded, params, pay, wallet_keys

from petranode.crypto.clsag import Clsag
from petranode.crypto.group import Scalar
from petranode.crypto.keyimage import KeyImage
from petranode.ledger.assets import MONEY, Asset, AssetKind
from petranode.ledger.state import (
    LedgerSnapshot,
    OutputRecord,
    StateDelta,
    apply_block_txs,
    replay_block_txs,
)
from petranode.ledger.tx import (
    RING_GRACE_BLOCKS,
    LedgerParams,
    Transfer,
    Tx,
    TxInput,
    check_ring_basic,
    check_ring_state,
    encode_tx,
    required_ring_size,
    tx_hash,
    validate_tx,
)
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.ledger.wallet import Payment, build_issuance, choose_rings

MONEY_ID = MONEY.asset_id
#: An energy asset of one interval with three outputs: fewer than any usual ring.
SMALL = Asset(AssetKind.CONSUMPTION, 9, 9)
SMALL_ID = SMALL.asset_id


@cache
def _small_issuance() -> StateDelta:
    """Block 3 over the funded ledger: three outputs of ``SMALL`` (a's first)."""
    f = funded()
    payments = [Payment(wallet_keys(n).address, SMALL_ID, 400) for n in ("a", "filler", "filler")]
    return f.chain.commit([build_issuance(dso(), payments, network_id=NETWORK)])


def with_small_asset(min_ring_size: int = 16) -> Funded:
    f = funded(min_ring_size)
    delta = _small_issuance()
    f.chain.replay(delta)
    for wallet in f.wallets.values():
        wallet.scan(delta)
    assert f.chain.view.output_count(SMALL_ID) == 3
    return f


class _Reason:
    """``with rejected(reason):`` — a ``TxRejected`` with exactly this reason."""

    def __init__(self, reason: TxReject) -> None:
        self.reason = reason

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        assert isinstance(exc, TxRejected), f"expected TxRejected({self.reason}), got {exc!r}"
        assert exc.reason is self.reason, exc.reason
        return True


def rejected(reason: TxReject) -> _Reason:
    return _Reason(reason)


def ring_input(ring: Sequence[int], asset_id: bytes = MONEY_ID) -> TxInput:
    """A hand-made input: real points and scalars, a CLSAG of the ring's size (not valid)."""
    return TxInput(asset_id, tuple(ring), KeyImage(Scalar.random().mul_base()),
                   Scalar.random().mul_base(),
                   Clsag(tuple(Scalar.random() for _ in ring), Scalar.random(),
                         Scalar.random().mul_base()))


def check(inputs: Sequence[TxInput], p: LedgerParams) -> None:
    check_ring_basic(inputs, [i.key_image.point.raw for i in inputs], [], p)


# -- the rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minimum", "ring", "required"), [
    (16, (0, 1, 2), 3),
    (16, (0,), 1),
    (16, (2,), 3),
    (16, tuple(range(15)), 15),
    (16, tuple(range(16)), 16),
    (16, (3, 40), 16),
    (4, (0, 1, 2), 3),
    (4, (7, 9), 4),
    (1, (100,), 1),
])
def test_required_ring_size(minimum: int, ring: tuple[int, ...], required: int) -> None:
    assert required_ring_size(minimum, ring) == required


@pytest.mark.parametrize(("ring", "ok"), [
    ((0, 1, 2), True),  # every output up to the newest member
    ((0,), True),
    ((1, 2), False),  # output 0 exists (ring names 2) but is left out
    ((0, 2), False),
    ((5,), False),
    (tuple(range(15)), True),
    (tuple(range(1, 16)), False),
    (tuple(range(16)), True),
    (tuple(range(0, 30, 2)), False),  # 15 members of 30+ outputs
    (tuple(range(0, 32, 2)), True),  # 16 members
    (tuple(range(17)), True),
])
def test_check_ring_basic_table(ring: tuple[int, ...], ok: bool) -> None:
    p = params(min_ring_size=16)
    if ok:
        check([ring_input(ring)], p)
    else:
        with rejected(TxReject.BAD_RING_SIZE):
            check([ring_input(ring)], p)


def test_every_input_is_checked_and_the_maximum_too() -> None:
    p = LedgerParams(NETWORK, dso().signing_key, min_ring_size=4, max_ring_size=6)
    check([ring_input((0, 1)), ring_input(range(10, 16))], p)
    with rejected(TxReject.BAD_RING_SIZE):
        check([ring_input((0, 1)), ring_input((3, 8, 9))], p)
    with rejected(TxReject.BAD_RING_SIZE):
        check([ring_input(range(7))], p)
    same = ring_input((0, 1, 2, 3))
    with rejected(TxReject.DUPLICATE_KEY_IMAGE):
        check([same, same], p)


RINGS = st.sets(st.integers(0, 40), min_size=1, max_size=20).map(lambda s: tuple(sorted(s)))


@given(RINGS, st.integers(1, 16), st.integers(16, 24))
def test_ring_size_rule_property(ring: tuple[int, ...], minimum: int, maximum: int) -> None:
    p = LedgerParams(NETWORK, dso().signing_key, min_ring_size=minimum, max_ring_size=maximum)
    allowed = min(minimum, max(ring) + 1) <= len(ring) <= maximum
    try:
        check([ring_input(ring)], p)
    except TxRejected as exc:
        assert exc.reason is TxReject.BAD_RING_SIZE and not allowed
    else:
        assert allowed


def test_check_ring_state_needs_existing_mature_members_of_the_asset() -> None:
    f = with_small_asset()
    view, p = f.chain.view, f.chain.params
    check_ring_state([ring_input((0, 1, 2), SMALL_ID)], [], view, p)
    with rejected(TxReject.UNKNOWN_RING_MEMBER):
        check_ring_state([ring_input((0, 1, 3), SMALL_ID)], [], view, p)
    with rejected(TxReject.IMMATURE_RING_MEMBER):  # issued at height 3, the view's last block
        check_ring_state([ring_input((0, 1, 2), SMALL_ID)], [], view,
                         dataclasses.replace(p, spendable_age=2))
    spent = ring_input((0, 1, 2), SMALL_ID)
    view_spent = LedgerSnapshot(view.height(), view.outputs_of(SMALL_ID),
                                {SMALL_ID: 3}, [spent.key_image.point.raw])
    with rejected(TxReject.KEY_IMAGE_SPENT):
        check_ring_state([spent], [spent.key_image.point.raw], view_spent, p)


# -- built transactions ------------------------------------------------------------------------


def test_small_asset_is_spent_in_a_ring_of_all_its_outputs() -> None:
    f = with_small_asset(min_ring_size=16)
    tx = pay(f, "a", "b", 100, fee=0, asset=SMALL_ID)
    assert isinstance(tx, Transfer)
    assert [i.ring for i in tx.inputs] == [(0, 1, 2)]
    validate_tx(tx, f.chain.view, f.chain.params)
    delta = f.chain.commit([tx])
    assert [o.global_index for o in delta.outputs] == [3, 4]
    # The five-output energy asset of the funding too, in the same ledger.
    energy = pay(f, "a", "c", 100, fee=0, asset=ENERGY.asset_id)
    assert isinstance(energy, Transfer)
    assert [i.ring for i in energy.inputs] == [(0, 1, 2, 3, 4)]
    f.chain.commit([energy])


def test_choose_rings_takes_every_output_of_a_small_asset() -> None:
    f = with_small_asset(min_ring_size=16)
    [spend] = f.wallets["a"].unspent(SMALL_ID)
    [(chosen, members)] = choose_rings([spend], f.chain, 16, now=f.chain.now, min_ring_size=16,
                                       unlock_time=0.0, source=random.Random(5))
    assert chosen.indices == (0, 1, 2)
    assert chosen.indices[chosen.real_position] == spend.global_index
    records = [f.chain.output(SMALL_ID, i) for i in range(3)]
    assert members == [(r.one_time_key, r.commitment) for r in records if r is not None]
    # With 16 outputs of money, a ring of 16.
    money = f.wallets["b"].unspent(MONEY_ID)[:1]
    [(chosen, members)] = choose_rings(money, f.chain, 16, now=f.chain.now, min_ring_size=16,
                                       unlock_time=0.0, source=random.Random(5))
    assert len(chosen.indices) == len(members) == 16


def _with_ring(tx: Transfer, ring: tuple[int, ...]) -> Transfer:
    [inp] = tx.inputs
    return dataclasses.replace(tx, inputs=(dataclasses.replace(inp, ring=ring),))


def test_a_smaller_ring_than_all_outputs_is_refused() -> None:
    f = with_small_asset(min_ring_size=16)
    tx = pay(f, "a", "b", 100, fee=0, asset=SMALL_ID)
    assert isinstance(tx, Transfer)
    flipped = _with_ring(tx, (0, 1, 3))  # three members, but names output 3
    with rejected(TxReject.BAD_RING_SIZE):
        validate_tx(flipped, f.chain.view, f.chain.params)
    with rejected(TxReject.BAD_RING_SIZE):
        apply_block_txs(f.chain.view, [encode_tx(flipped)], f.chain.params)


def test_a_ring_of_sixteen_is_still_required_with_sixteen_outputs() -> None:
    small = funded(min_ring_size=4)
    [coin] = small.wallets["c"].unspent(MONEY_ID)[:1]
    assert coin.global_index >= 4  # so a ring of four holding it names an output ≥ 4
    tx = pay(small, "c", "b", 100, owned=[coin], ring_size=4)
    assert isinstance(tx, Transfer) and len(tx.inputs[0].ring) == 4
    validate_tx(tx, small.chain.view, small.chain.params)
    strict = params(min_ring_size=16)
    assert small.chain.view.output_count(MONEY_ID) == 16
    with rejected(TxReject.BAD_RING_SIZE):
        validate_tx(tx, small.chain.view, strict)
    sixteen = pay(small, "c", "b", 100, owned=[coin], ring_size=16)
    assert isinstance(sixteen, Transfer) and len(sixteen.inputs[0].ring) == 16
    validate_tx(sixteen, small.chain.view, strict)


class _FirstOutputs:
    """A decoy source that shows only the first ``n`` outputs of each asset."""

    def __init__(self, f: Funded, n: int) -> None:
        self._f = f
        self._n = n

    def output_times(self, asset_id: bytes) -> Sequence[float]:
        return self._f.chain.output_times(asset_id)[:self._n]

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self._f.chain.output(asset_id, global_index)


def test_a_prefix_ring_is_refused_when_the_asset_has_enough_outputs() -> None:
    f = funded(min_ring_size=16)
    assert f.chain.view.output_count(MONEY_ID) == 16
    coin = next(o for o in f.wallets["a"].unspent(MONEY_ID) if o.global_index < 3)
    tx = pay(f, "a", "b", 100, fee=0, owned=[coin], decoys=_FirstOutputs(f, 3))
    assert isinstance(tx, Transfer) and tx.inputs[0].ring == (0, 1, 2)
    # Outputs count for the rule once they have settled: RING_GRACE_BLOCKS blocks later.
    for _ in range(RING_GRACE_BLOCKS):
        f.chain.commit([])
    with rejected(TxReject.BAD_RING_SIZE):
        validate_tx(tx, f.chain.view, f.chain.params)


def test_outputs_newer_than_the_grace_do_not_invalidate_a_ring_of_all_outputs() -> None:
    f = funded(min_ring_size=16)
    coin = next(o for o in f.wallets["a"].unspent(MONEY_ID) if o.global_index < 3)
    tx = pay(f, "a", "b", 100, fee=0, owned=[coin], decoys=_FirstOutputs(f, 3))
    # Sixteen outputs exist, but none has settled yet: a ring of the first three is valid.
    assert f.chain.view.settled_output_count(MONEY_ID) < 3
    validate_tx(tx, f.chain.view, f.chain.params)


# -- verified transactions and replay --------------------------------------------------------------


def _forged(f: Funded) -> tuple[Transfer, Transfer]:
    """A valid payment, and the same payment carrying another transaction's CLSAG."""
    good = pay(f, "a", "b", 100, seed=1)
    other = pay(f, "c", "b", 50, seed=2)
    assert isinstance(good, Transfer) and isinstance(other, Transfer)
    [inp], [foreign] = good.inputs, other.inputs
    assert len(inp.ring) == len(foreign.ring)
    bad = dataclasses.replace(good, inputs=(dataclasses.replace(
        inp, signature=foreign.signature),))
    return good, bad


def test_verified_transactions_skip_signatures_only() -> None:
    f = funded()
    view, p = f.chain.view, f.chain.params
    good, bad = _forged(f)
    data = encode_tx(bad)
    digest = hashlib.sha256(data).digest()
    assert digest == tx_hash(bad) != tx_hash(good)
    with rejected(TxReject.BAD_RING_SIGNATURE):
        apply_block_txs(view, [data], p)
    with rejected(TxReject.BAD_RING_SIGNATURE):
        apply_block_txs(view, [data], p, verified={tx_hash(good)})
    delta = apply_block_txs(view, [data], p, verified={digest})
    assert [a.tx_hash for a in delta.txs] == [digest]
    assert delta.spent == ((bad.key_images()[0], digest),)
    # Any container of hashes will do (the node passes its mempool).
    assert apply_block_txs(view, [data], p, verified=[digest]) == delta
    # Every other rule is still checked: once the good one is on the ledger, the key image is
    # spent.
    f.chain.commit([good])
    with rejected(TxReject.KEY_IMAGE_SPENT):
        apply_block_txs(f.chain.view, [data], p, verified={digest})


def test_a_verified_ring_still_needs_its_size() -> None:
    f = with_small_asset(min_ring_size=16)
    tx = pay(f, "a", "b", 100, fee=0, asset=SMALL_ID)
    assert isinstance(tx, Transfer)
    flipped = encode_tx(_with_ring(tx, (0, 1, 3)))
    with rejected(TxReject.BAD_RING_SIZE):
        apply_block_txs(f.chain.view, [flipped], f.chain.params,
                        verified={hashlib.sha256(flipped).digest()})


def _replayed(deltas: Sequence[StateDelta]) -> list[StateDelta]:
    state = LedgerSnapshot()
    out = []
    for delta in deltas:
        again = replay_block_txs(delta.height, [a.data for a in delta.txs], state.output_count)
        state.apply(again)
        out.append(again)
    return out


def test_replay_gives_the_deltas_apply_gave() -> None:
    f = with_small_asset(min_ring_size=4)
    block: list[Tx] = [pay(f, "a", "b", 100, seed=3),
                       pay(f, "a", "c", 50, fee=0, asset=SMALL_ID, seed=4),
                       pay(f, "b", "c", 70, fee=5, seed=5)]
    f.chain.commit(block)
    f.chain.commit([])
    f.chain.commit([pay(f, "filler", "a", 10, asset=ENERGY.asset_id, fee=0, seed=6)])
    deltas = f.chain.deltas
    assert [d.height for d in deltas] == [1, 2, 3, 4, 5, 6]
    for applied, replayed in zip(deltas, _replayed(deltas), strict=True):
        assert replayed.height == applied.height
        assert replayed.outputs == applied.outputs
        assert [a.global_indices for a in replayed.txs] == [a.global_indices for a in applied.txs]
        assert [a.tx_hash for a in replayed.txs] == [a.tx_hash for a in applied.txs]
        assert [a.data for a in replayed.txs] == [a.data for a in applied.txs]
        assert replayed.spent == applied.spent
        assert replayed == applied
    four = deltas[3]
    assert [a.global_indices for a in four.txs] == [(16, 17), (3, 4), (18, 19)]


def test_replay_does_not_validate() -> None:
    f = funded()
    _, bad = _forged(f)
    data = encode_tx(bad)
    view = f.chain.view
    replayed = replay_block_txs(view.height() + 1, [data], view.output_count)
    assert replayed == apply_block_txs(view, [data], f.chain.params,
                                       verified={hashlib.sha256(data).digest()})
