"""The RingCT balance check, one asset at a time (SPEC §2 "balance still verifiable", §4.5).

As in Monero's ``verRctSemanticsSimple`` (``src/ringct/rctSigs.cpp``), every real input is
re-committed as a *pseudo-output* ``C'_j = a'_j·G + v_j·H`` carrying the same amount under a
fresh mask, and a transaction balances when::

    Σ_j C'_j  =  Σ_k C_k  +  fee·H

which holds exactly when the amounts balance *and* the masks do: ``Σ a'_j = Σ a_k``. The
sender therefore picks all pseudo-output masks but the last at random and sets the last to
the remainder (``proveRctSimple``). Each CLSAG then proves that its pseudo-output commits to
the same amount as the real ring member it spends (the ``z`` of :mod:`clsag`).

Assets: commitments to different assets share ``H``, so the check runs separately over the
inputs and outputs of each asset (the asset of every output is public on the ledger); a fee,
if any, belongs to the fee asset only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from petranode.crypto.errors import CryptoError
from petranode.crypto.group import IDENTITY, ZERO, Point, Rng, Scalar, os_rng
from petranode.crypto.pedersen import H, amount_scalar, commit

log = logging.getLogger(__name__)


def pseudo_out_masks(
    output_masks: Sequence[Scalar], n_inputs: int, rng: Rng = os_rng
) -> list[Scalar]:
    """Masks for ``n_inputs`` pseudo-outputs summing to the sum of ``output_masks``."""
    if n_inputs < 1:
        raise CryptoError("a transaction spends at least one input")
    target = ZERO
    for m in output_masks:
        target = target + m
    masks = [Scalar.random(rng) for _ in range(n_inputs - 1)]
    last = target
    for m in masks:
        last = last - m
    masks.append(last)
    return masks


def pseudo_outs(amounts: Sequence[int], masks: Sequence[Scalar]) -> list[Point]:
    """Pseudo-output commitments ``mask_j·G + amount_j·H`` for the inputs' amounts."""
    if len(amounts) != len(masks):
        raise CryptoError("one mask per input amount")
    return [commit(v, m) for v, m in zip(amounts, masks, strict=True)]


def _sum(points: Sequence[Point]) -> Point:
    acc = IDENTITY
    for p in points:
        acc = acc + p
    return acc


def check_balance(pseudo_outputs: Sequence[Point], outputs: Sequence[Point], fee: int = 0) -> bool:
    """Σ pseudo-outputs = Σ outputs + fee·H, over prime-order-subgroup commitments only."""
    if not pseudo_outputs:
        return False
    if any(not c.in_subgroup for c in (*pseudo_outputs, *outputs)):
        return False
    try:
        fee_term = amount_scalar(fee) * H
    except CryptoError:
        return False
    return _sum(pseudo_outputs) == _sum(outputs) + fee_term
