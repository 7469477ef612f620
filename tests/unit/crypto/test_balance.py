"""Per-asset RingCT balance: Σ pseudo-outs = Σ outputs + fee·H (mainnet tx e89415… included)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto import balance
from petranode.crypto.group import Point, Scalar
from petranode.crypto.pedersen import H, commit


def vectors_dir() -> Path:
    env = os.environ.get("PETRANODE_VECTORS")
    return Path(env) if env else Path(__file__).parents[3].parent / "shared" / "vectors"


def test_mainnet_transaction_balances() -> None:
    t = json.loads((vectors_dir() / "monero-tx-e89415-ring.json").read_text())
    blob = t["parsed_from_blob"]
    pseudo = [Point.from_bytes(bytes.fromhex(h)) for h in blob["pseudoOuts"]]
    outs = [Point.from_bytes(bytes.fromhex(h)) for h in blob["outPk_commitments"]]
    fee = blob["fee_atomic_units"]
    assert balance.check_balance(pseudo, outs, fee)
    assert not balance.check_balance(pseudo, outs, fee + 1)
    assert not balance.check_balance(pseudo, outs[:1], fee)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=4),
       st.lists(st.integers(0, 2**40), min_size=1, max_size=4),
       st.integers(0, 2**20))
def test_pseudo_out_masks_balance(outs: list[int], extra: list[int], fee: int) -> None:
    # Inputs: split Σ outs + fee over len(extra) inputs.
    total = sum(outs) + fee
    n_in = len(extra)
    inputs = [total // n_in] * n_in
    inputs[0] += total - sum(inputs)
    out_masks = [Scalar.random() for _ in outs]
    out_commitments = [commit(v, m) for v, m in zip(outs, out_masks, strict=True)]
    masks = balance.pseudo_out_masks(out_masks, n_in)
    assert len(masks) == n_in
    pseudo = balance.pseudo_outs(inputs, masks)
    assert balance.check_balance(pseudo, out_commitments, fee)
    # Inflating one output by one unit breaks it.
    bumped = [out_commitments[0] + H, *out_commitments[1:]]
    assert not balance.check_balance(pseudo, bumped, fee)


def test_torsion_commitment_rejected() -> None:
    t = json.loads((vectors_dir() / "monero-torsion-points.json").read_text())
    torsion = Point.from_bytes(bytes.fromhex(t["points"][0]["point"]), allow_torsion=True)
    m = Scalar.random()
    pseudo = balance.pseudo_outs([5], balance.pseudo_out_masks([m], 1))
    assert balance.check_balance(pseudo, [commit(5, m)])
    assert not balance.check_balance(pseudo, [commit(5, m) + torsion])


def test_empty_and_out_of_range() -> None:
    assert not balance.check_balance([], [])
    m = Scalar.random()
    assert not balance.check_balance([commit(1, m)], [commit(1, m)], fee=-1)
