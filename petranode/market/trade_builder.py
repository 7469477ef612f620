"""The wallet side of the market's ledger kinds: build offers, accepts and cancels, and find
their public-amount payments (SPEC §4.7; docs/market.md "Ledger kinds").

Pure: keys, owned outputs and a decoy source in, a transaction record out; no clock (the
caller passes the decoy picker's ``now``), randomness from ``rng`` / ``random_source``.

Per-offer keys
--------------
An offer's payout address and cancel key are derived from the maker's wallet secrets and a
nonce, so a wallet restored from its spend key re-derives them (the nonce defaults to the key
image of the offer's first input, which the wallet recomputes when it rescans its outputs)::

    a' = Hs("petranode/market/<purpose>/view/v1"  ‖ a ‖ nonce)    payout view secret
    b' = Hs("petranode/market/<purpose>/spend/v1" ‖ b ‖ nonce)    payout spend secret
    c  = Hs("petranode/market/<purpose>/cancel/v1" ‖ b ‖ nonce)   cancel secret

``(b'·G, a'·G)`` is an ordinary CryptoNote address, unlinkable to ``(b·G, a·G)`` without the
secrets; an auditor holding the view key ``a`` and the nonces derives ``a'`` and, with the
published ``B'``, scans the payout address too (SPEC §2 view-key audit). A BUY offer's taker
derives its proceeds address the same way (purpose ``proceeds``).

Building
--------
:func:`assemble_ring_tx` is the common part (Monero's ``construct_tx`` as
:func:`petranode.ledger.wallet.build_payments` does it, for any prefix): the given public
outputs first, hidden change outputs after them under a fresh ``R``, one Bulletproofs+ proof
over the hidden ones, pseudo-output masks per asset that balance every output mask of the
asset (public ones included), a ring per input from ``decoys.select_ring`` and a CLSAG per
input over the transaction's signed message.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, final

from petranode.crypto import bpplus, ecdh
from petranode.crypto.balance import pseudo_out_masks, pseudo_outs
from petranode.crypto.decoys import DEFAULT_UNLOCK_TIME, RandomSource
from petranode.crypto.errors import VerificationFailed
from petranode.crypto.group import Point, Rng, Scalar, hash_to_scalar, os_rng
from petranode.crypto.keyimage import generate_key_image
from petranode.crypto.keys import WalletKeys
from petranode.crypto.schnorr import deterministic_nonce_rng, generate_signature
from petranode.crypto.stealth import (
    StealthOutput,
    TxSecret,
    create_output,
    one_time_secret_key,
    scan_transaction,
)
from petranode.ledger.assets import MONEY, Asset
from petranode.ledger.state import AppliedTx, OutputRecord, StateDelta
from petranode.ledger.tx import TxInput, TxOutput, prefix_digest, prefix_hash, signed_message
from petranode.ledger.wallet import (
    DecoySource,
    InputPlan,
    OwnedOutput,
    Payment,
    choose_rings,
    input_prefixes,
    select_inputs,
    shuffle,
    sign_inputs,
)
from petranode.market.reputation import Credential, TierList, prove
from petranode.market.trade_kinds import (
    Accept,
    Cancel,
    Offer,
    OfferGate,
    OfferState,
    OfferTerms,
    Side,
    accept_prefix,
    cancel_message,
    cancel_outputs,
    cancel_prefix,
    nullifier,
    offer_prefix,
    public_output,
    public_tx_secret,
)
from petranode.wire.codec import Encodable

log = logging.getLogger(__name__)

_DOMAIN_PREFIX: Final = "petranode/market/"
OFFER_PURPOSE: Final = "offer"
PROCEEDS_PURPOSE: Final = "proceeds"


def _derived(purpose: str, part: str, secret: Scalar, nonce: bytes) -> Scalar:
    scalar = hash_to_scalar(f"{_DOMAIN_PREFIX}{purpose}/{part}/v1".encode(), secret.raw, nonce)
    if scalar.is_zero():  # probability 2⁻²⁵²
        raise ValueError("derived key is zero; use another nonce")
    return scalar


def derive_wallet_keys(keys: WalletKeys, purpose: str, nonce: bytes) -> WalletKeys:
    """A fresh address's keys, derived from ``keys`` for ``purpose`` and ``nonce``."""
    return WalletKeys(_derived(purpose, "spend", keys.spend_secret, nonce),
                      _derived(purpose, "view", keys.view_secret, nonce))


@final
@dataclass(frozen=True, slots=True)
class OfferKeys:
    """The maker's secrets for one offer: its payout wallet and its cancel key (never logged)."""

    nonce: bytes
    payout: WalletKeys
    cancel_secret: Scalar = field(repr=False)

    @property
    def cancel_key(self) -> Point:
        return self.cancel_secret.mul_base()


def derive_offer_keys(keys: WalletKeys, nonce: bytes) -> OfferKeys:
    """The payout keys and cancel key of the maker's offer with ``nonce``."""
    return OfferKeys(nonce, derive_wallet_keys(keys, OFFER_PURPOSE, nonce),
                     _derived(OFFER_PURPOSE, "cancel", keys.spend_secret, nonce))


# -- the common ring-input part ----------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class RingParts:
    """What :func:`assemble_ring_tx` returns: the signed inputs and the hidden outputs."""

    inputs: tuple[TxInput, ...]
    hidden_outputs: tuple[TxOutput, ...]
    tx_public: Point
    range_proof: bpplus.BulletproofPlus


#: Builds a kind's prefix fields from (input prefixes, hidden outputs, R).
PrefixMaker = Callable[[list[list[Encodable]], tuple[TxOutput, ...], Point], list[Encodable]]


def _choose(owned: Sequence[OwnedOutput], need: dict[bytes, int],
            keys: WalletKeys) -> tuple[list[OwnedOutput], list[Payment]]:
    """Inputs covering ``need`` per asset, and a change payment per asset back to ``keys``."""
    spends: list[OwnedOutput] = []
    change: list[Payment] = []
    for asset_id, amount in need.items():
        chosen = select_inputs(owned, asset_id, amount)
        spends += chosen
        change.append(Payment(keys.address, asset_id, sum(o.amount for o in chosen) - amount))
    return spends, change


def assemble_ring_tx(
    keys: WalletKeys,
    spends: Sequence[OwnedOutput],
    hidden: Sequence[Payment],
    public: Sequence[tuple[TxOutput, Scalar]],
    make_prefix: PrefixMaker,
    kind: str,
    decoys: DecoySource,
    *,
    network_id: str,
    min_ring_size: int,
    ring_size: int | None = None,
    now: float,
    unlock_time: float = DEFAULT_UNLOCK_TIME,
    rng: Rng = os_rng,
    random_source: RandomSource | None = None,
) -> RingParts:
    """Spend ``spends`` (owned by ``keys``) into the ``public`` outputs (with their masks; at
    indices 0…) and the ``hidden`` payments (shuffled, after them), signing ``kind``'s prefix.

    Amounts are the caller's: this does not check that anything balances, so a test can
    forge a transaction that does not.
    """
    source: RandomSource = random_source if random_source is not None else random.SystemRandom()
    size = min_ring_size if ring_size is None else ring_size
    payments = list(hidden)
    shuffle(payments, source)

    tx_secret = TxSecret.generate(rng)
    hidden_outputs: list[TxOutput] = []
    hidden_masks: list[Scalar] = []
    for offset, payment in enumerate(payments):
        sent = create_output(tx_secret, payment.to, len(public) + offset)
        info, mask, commitment = ecdh.make_output(payment.amount, sent.shared_secret)
        hidden_outputs.append(TxOutput(payment.asset_id, sent.output.one_time_key,
                                       sent.output.view_tag, commitment, info))
        hidden_masks.append(mask)
    commitments, proof = bpplus.prove([p.amount for p in payments], hidden_masks, rng)
    assert list(commitments) == [o.commitment for o in hidden_outputs]

    all_outputs = [o for o, _ in public] + hidden_outputs
    all_masks = [m for _, m in public] + hidden_masks
    plan: list[InputPlan] = []
    for asset_id in dict.fromkeys(s.asset_id for s in spends):
        inputs = [s for s in spends if s.asset_id == asset_id]
        masks = [m for m, o in zip(all_masks, all_outputs, strict=True) if o.asset_id == asset_id]
        p_masks = pseudo_out_masks(masks, len(inputs), rng)
        plan += zip(inputs, p_masks, pseudo_outs([o.amount for o in inputs], p_masks),
                    strict=True)

    rings = choose_rings([spend for spend, _, _ in plan], decoys, size, now=now,
                         min_ring_size=min_ring_size, unlock_time=unlock_time, source=source)
    prefix_inputs = input_prefixes(plan, rings)
    prefix = make_prefix(prefix_inputs, tuple(hidden_outputs), tx_secret.public)
    message = signed_message(prefix_digest(kind, prefix, network_id), proof, network_id)
    return RingParts(sign_inputs(keys, message, plan, rings, rng), tuple(hidden_outputs),
                     tx_secret.public, proof)


# -- offer, accept, cancel ---------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class RingOptions:
    """How rings are built: the network's ring sizes, the decoy picker's clock and sources."""

    network_id: str
    min_ring_size: int
    now: float
    ring_size: int | None = None
    unlock_time: float = DEFAULT_UNLOCK_TIME
    rng: Rng = os_rng
    random_source: RandomSource | None = None


def _assemble(keys: WalletKeys, spends: Sequence[OwnedOutput], hidden: Sequence[Payment],
              public: Sequence[tuple[TxOutput, Scalar]], make_prefix: PrefixMaker, kind: str,
              decoys: DecoySource, opts: RingOptions) -> RingParts:
    return assemble_ring_tx(
        keys, spends, hidden, public, make_prefix, kind, decoys, network_id=opts.network_id,
        min_ring_size=opts.min_ring_size, ring_size=opts.ring_size, now=opts.now,
        unlock_time=opts.unlock_time, rng=opts.rng, random_source=opts.random_source)


def build_offer(
    keys: WalletKeys,
    owned: Sequence[OwnedOutput],
    *,
    side: Side,
    interval: int,
    power_w: int,
    price: int,
    expiry_ms: int,
    energy: Asset,
    fee: int,
    decoys: DecoySource,
    opts: RingOptions,
    nonce: bytes | None = None,
    tier: int = 0,
    gate: tuple[Credential, TierList] | None = None,
    gate_slot: int = 0,
) -> tuple[Offer, OfferKeys]:
    """An offer escrowing its backing from ``owned``, and the keys the maker must keep.

    ``energy`` is the maker's production (SELL) or consumption (BUY) asset covering
    ``interval``; ``nonce`` defaults to the key image of the first input chosen.

    A gated offer names ``tier`` and passes ``gate``: the maker's credential and the DSO's
    tier list of that tier for the current epoch; the proof uses the credential's
    ``gate_slot`` of the epoch (a fresh slot per offer keeps gated offers unlinkable). Raises
    ``ReputationProofRejected(NOT_IN_TIER)`` when that credential slot is not in the list
    (the maker's score is below the tier). Whether tier and gate agree is left to the
    validators' rules, so a test can build an offer that breaks them.
    """
    if energy.kind is not side.maker_asset_kind:
        raise ValueError(f"a {side.value} offer escrows {side.maker_asset_kind.value}")
    if energy.first_interval is None or energy.last_interval is None:
        raise ValueError("an energy asset has an interval range")
    need = {energy.asset_id: power_w}
    if side is Side.BUY or fee:
        need[MONEY.asset_id] = (power_w * price if side is Side.BUY else 0) + fee
    spends, change = _choose(owned, need, keys)
    offer_keys = derive_offer_keys(keys, spends[0].key_image.point.raw if nonce is None else nonce)
    terms = OfferTerms(side, interval, power_w, price, expiry_ms, energy.first_interval,
                       energy.last_interval, offer_keys.payout.address, offer_keys.cancel_key,
                       tier)

    def make_prefix(inputs: list[list[Encodable]], hidden: tuple[TxOutput, ...],
                    tx_public: Point) -> list[Encodable]:
        return offer_prefix(terms, inputs, hidden, tx_public, fee)

    parts = _assemble(keys, spends, change, (), make_prefix, Offer.KIND, decoys, opts)
    offer = Offer(terms, parts.inputs, parts.hidden_outputs, parts.tx_public, fee,
                  parts.range_proof)
    if gate is not None:
        # The prefix is final: the proof signs its hash and goes into the witness.
        credential, tier_list = gate
        proof = prove(credential, prefix_hash(offer, opts.network_id), tier_list,
                      network_id=opts.network_id, slot=gate_slot, rng=opts.rng)
        offer = replace(offer, gate=OfferGate(tier_list, proof))
    return offer, offer_keys


def build_accept(
    keys: WalletKeys,
    owned: Sequence[OwnedOutput],
    offer: OfferState,
    *,
    power_w: int,
    energy: Asset,
    fee: int,
    decoys: DecoySource,
    opts: RingOptions,
    nonce: bytes | None = None,
) -> tuple[Accept, WalletKeys | None]:
    """Fill ``power_w`` W of ``offer`` (as the book holds it now) from ``owned``.

    ``energy`` is the taker's consumption (SELL offer) or production (BUY offer) asset
    covering the offer's interval. For a BUY offer the taker's money goes to a fresh address
    derived with ``nonce`` (default: the first input's key image); its keys are returned so
    the taker can scan for and spend it.
    """
    terms = offer.terms
    if energy.kind is not terms.side.taker_asset_kind:
        raise ValueError(f"accepting a {terms.side.value} offer spends "
                         f"{terms.side.taker_asset_kind.value}")
    if energy.first_interval is None or energy.last_interval is None:
        raise ValueError("an energy asset has an interval range")
    money = power_w * terms.price
    public_secret = public_tx_secret(nullifier(offer.offer_id, offer.seq))
    need = {energy.asset_id: power_w}
    proceeds_keys: WalletKeys | None = None
    if terms.side is Side.SELL:
        need[MONEY.asset_id] = money + fee
        spends, change = _choose(owned, need, keys)
        public = public_output(public_secret, 0, terms.payout, MONEY.asset_id, money)
    else:
        if fee > money:
            raise ValueError("the fee comes out of the proceeds")
        spends, change = _choose(owned, need, keys)
        proceeds_keys = derive_wallet_keys(
            keys, PROCEEDS_PURPOSE, spends[0].key_image.point.raw if nonce is None else nonce)
        public = public_output(public_secret, 0, proceeds_keys.address, MONEY.asset_id,
                               money - fee)
    proceeds_to = None if proceeds_keys is None else proceeds_keys.address
    first, last = energy.first_interval, energy.last_interval

    def make_prefix(inputs: list[list[Encodable]], hidden: tuple[TxOutput, ...],
                    tx_public: Point) -> list[Encodable]:
        return accept_prefix(offer.offer_id, offer.seq, power_w, first, last, proceeds_to,
                             inputs, (public[0],), hidden, tx_public, fee)

    parts = _assemble(keys, spends, change, [public], make_prefix, Accept.KIND, decoys, opts)
    accept = Accept(offer.offer_id, offer.seq, power_w, first, last, proceeds_to, parts.inputs,
                    (public[0],), parts.hidden_outputs, parts.tx_public, fee, parts.range_proof)
    return accept, proceeds_keys


def build_cancel(offer_keys: OfferKeys, offer: OfferState, *, network_id: str) -> Cancel:
    """Withdraw ``offer``'s remaining escrow (as the book holds it now) to its payout address.

    The Schnorr nonce is deterministic (``schnorr.deterministic_nonce_rng``): a cancel needs
    no randomness at all.
    """
    if offer_keys.cancel_key != offer.terms.cancel_key:
        raise ValueError("these keys did not make this offer")
    outputs = cancel_outputs(offer, offer.seq)
    digest = prefix_digest(Cancel.KIND, cancel_prefix(offer.offer_id, offer.seq, outputs),
                           network_id)
    message = cancel_message(digest, network_id)
    signature = generate_signature(message, offer_keys.cancel_key, offer_keys.cancel_secret,
                                   deterministic_nonce_rng(offer_keys.cancel_secret, message))
    return Cancel(offer.offer_id, offer.seq, outputs, signature)


# -- scanning ----------------------------------------------------------------------------------


def scan_public_outputs(keys: WalletKeys, applied: AppliedTx, height: int) -> list[OwnedOutput]:
    """The public-amount outputs of one accept or cancel that pay ``keys``' address.

    They are made under the public ``R'`` (not the transaction's ``R``), so the ledger
    wallet's scan does not see them; this opens them like any output and returns them
    spendable (``OwnedOutput`` with the key image).
    """
    tx = applied.tx
    if not isinstance(tx, (Accept, Cancel)):
        return []
    public = tx.public_outputs if isinstance(tx, Accept) else tx.outputs
    secret = public_tx_secret(tx.nullifier)
    stealth = [StealthOutput(o.one_time_key, o.view_tag) for o in public]
    found = []
    for received in scan_transaction(keys.view_keys, secret.public, stealth):
        out = public[received.output_index]
        try:
            amount, mask = ecdh.open_output(out.ecdh, received.shared_secret, out.commitment)
        except VerificationFailed:  # validators recomputed it, so this is not our output
            continue
        key_image = generate_key_image(out.one_time_key, one_time_secret_key(keys, received))
        record = OutputRecord(out.asset_id, applied.global_indices[received.output_index],
                              out.one_time_key, out.commitment, height, applied.tx_hash,
                              received.output_index)
        found.append(OwnedOutput(record, amount, mask, received.shared_secret, key_image))
    return found


def scan_payouts(offer_keys: OfferKeys, offer_id: bytes, delta: StateDelta) -> list[OwnedOutput]:
    """The maker's payments in one block: the public outputs of the accepts and cancels of
    ``offer_id`` paying its payout address (other transactions are not even derived)."""
    found = []
    for applied in delta.txs:
        tx = applied.tx
        if isinstance(tx, (Accept, Cancel)) and tx.offer_id == offer_id:
            found += scan_public_outputs(offer_keys.payout, applied, delta.height)
    return found
