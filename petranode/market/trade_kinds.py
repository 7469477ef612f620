"""The market's ledger transaction kinds: offer, accept, cancel (SPEC §2, §4.7; issue 7 items 3-4).

Three kinds plug into the ledger's :class:`~petranode.ledger.tx.TxRegistry`
(:data:`MARKET_REGISTRY`), each a frozen record with the ledger's three validation tiers.
What the market keeps between transactions — the open offers and their escrow — is the
:class:`MarketBook`; validation reads it through :class:`MarketView`, a
:class:`~petranode.ledger.state.LedgerView` that also knows the block time, the market clock
and the offers.

Theory of operation
-------------------
*Amounts in market operations are public; who is not.* An offer shows side, interval, power,
price and expiry; its backing is spent through ordinary CryptoNote ring inputs (CLSAG, key
image, pseudo-output), so nobody can tell which outputs back it, and the maker's change is
hidden (Bulletproofs+). What the offer takes out of its inputs is its **escrow**, a public
amount per asset that the ledger holds for the offer instead of an output::

    per spent asset a:   Σ pseudo-outs_a = Σ outputs_a + (escrow_a + fee_a)·H

* ``offer`` — SELL escrows ``power`` W of a production asset whose interval range covers
  ``interval``; BUY escrows ``power`` W of such a consumption asset and ``power·price`` cents.
  It names a **payout address** (a fresh CryptoNote address the maker derives from its wallet
  secrets and a nonce: ``trade_builder.derive_offer_keys``) and a **cancel key** (a CryptoNote
  Schnorr key derived the same way).
  An offer may claim a reputation **tier** (the 10th field of its terms; 0 means ungated):
  its witness then carries an :class:`OfferGate` (see *Reputation gates* below).
* ``accept`` — names the offer id (the offer transaction's hash), the offer's next
  **sequence number** and the fill ``q ≤ remaining``. Accepting a SELL offer, the taker spends
  ``q`` W of a consumption asset covering the interval and ``q·price`` cents, which go to the
  offer's payout address; accepting a BUY offer, the taker spends ``q`` W of a production asset
  covering the interval and receives ``q·price − fee`` cents out of the maker's escrow at an
  address it names. The energy both sides spend is burnt: the trade record (offer id, accept
  hash, interval, ``q``, price) is what matches the seller's production with the buyer's
  consumption for settlement.
* ``cancel`` — signed with the cancel key, returns the remaining escrow to the payout address.

*Public-amount outputs* (the maker's proceeds, the taker's proceeds of a BUY offer, the
returned escrow) are standard stealth outputs made with a **public** transaction secret
``r' = Hs("petranode/market/public-tx-key/v1" ‖ nullifier)``: the one-time key, view tag,
commitment mask (``ecdh.commitment_mask``) and encrypted amount are all functions of public
data, so validators recompute the whole output and compare it byte for byte — the recipient
and amount are enforced, not trusted. Publishing ``r'`` reveals only what the transaction
already says (which offer pays whom, and how much); the output's spend key stays the
recipient's, and spending it later hides it in a ring like any other output.

*Sequence numbers and nullifiers.* The ledger checks every transaction of a block against the
state before the block, and the mempool knows only key images. So an accept or cancel of
offer ``o`` at sequence ``n`` (the number of accepts and cancels of ``o`` so far) spends the
**nullifier** ``Hp("petranode/market/nullifier/v1" ‖ o ‖ n)`` as an extra key image: two
transactions acting on one offer at one sequence number conflict in the pool (first seen
wins) and in a block (``KEY_IMAGE_CONFLICT``), and once one is final the other is
``KEY_IMAGE_SPENT``. Fills of one offer are thereby serialised, one per block, and
``q ≤ remaining`` checked against the state before the block is exact.

*Timing.* Offers and accepts are valid while ``block_time < gate_closure(interval)`` and
``block_time < expiry_ms``; cancels at any time (before gate closure it withdraws an open
offer; after gate closure or expiry it reclaims the unfilled rest).

*Reputation gates* (SPEC §4.7: an offer can prove a minimum reputation without revealing
who made it). A gated offer's terms name ``tier > 0``; its witness is ``[signatures, range
proof, [tier list, proof]]`` (``nil`` in place of the gate when ungated). The tier list is the
DSO's signed list of that tier for one reputation epoch (``reputation.TierList``), the proof
a ring signature by one of its one-time credentials over the offer's prefix hash
(``reputation.ReputationProof``). The gate cannot sit in the prefix (the proof signs it); the
prefix's tier binds it instead, so a relay can neither strip the gate nor swap in another
tier's. Rules: a gate iff ``tier > 0`` and of that tier (basic); the list's epoch is the
block time's (``MarketClock.epoch_at``) or the one before, as a list published at an epoch
boundary may still be on its way (state); the list's DSO signature and the proof verify
(signatures). Key images of proofs are not tracked: a maker may reuse a slot (linking its
own offers).

*Energy assets are indivisible over their range.* The ledger balances per asset id, so an
asset for intervals ``[a, b]`` cannot be split by interval: escrowing or paying ``q`` W of it
for one interval ``i ∈ [a, b]`` gives up ``q`` W over all of ``[a, b]``. Prosumers trading
interval by interval should request single-interval assets (``first = last``).

Refusals: rules shared with transfers (rings, key images, range proof, balance, counts,
shapes) raise :class:`~petranode.ledger.tx_errors.TxRejected` with the ledger's reasons;
market rules raise :class:`~petranode.market.errors.MarketTxRejected`.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Final, Protocol, final, runtime_checkable

from petranode.crypto import bpplus, clsag, ecdh, schnorr
from petranode.crypto.errors import CryptoError, VerificationFailed
from petranode.crypto.group import IDENTITY, Point, Scalar, hash_to_point, hash_to_scalar
from petranode.crypto.keys import PublicAddress
from petranode.crypto.pedersen import MAX_AMOUNT, H, amount_scalar
from petranode.crypto.stealth import TxSecret, create_output
from petranode.ledger.assets import MAX_INTERVAL, MONEY, Asset, AssetKind
from petranode.ledger.state import AppliedTx, LedgerView, OutputRecord
from petranode.ledger.tx import (
    BASE_REGISTRY,
    MAX_OUTPUTS,
    MAX_TX_BYTES,
    LedgerParams,
    Tx,
    TxInput,
    TxOutput,
    check_private_shape,
    check_ring_basic,
    check_ring_state,
    decode_inputs,
    encode_tx,
    prefix_hash,
    signed_message,
)
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.market.errors import (
    MarketRecordInvalid,
    MarketReject,
    MarketTxRejected,
    OutOfWindow,
    ReputationProofRejected,
)
from petranode.market.intervals import MarketClock
from petranode.market.notices import Notice
from petranode.market.reputation import (
    MAX_PROOF_BYTES,
    MAX_SCORE,
    MAX_TIER_LIST_BYTES,
    ReputationProof,
    TierList,
    verify_proof,
)
from petranode.net import signing
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value

log = logging.getLogger(__name__)

#: Version of every market kind's prefix (its first element).
MARKET_TX_VERSION: Final = 1
NULLIFIER_DOMAIN: Final = b"petranode/market/nullifier/v1"
PUBLIC_TX_KEY_DOMAIN: Final = b"petranode/market/public-tx-key/v1"
#: What a cancel key signs: ``SHA-256(signing_bytes(CANCEL_DOMAIN, network_id, prefix hash))``.
CANCEL_DOMAIN: Final = "petranode/market/cancel/v1"
#: Largest power of an offer or fill, W (the registry's capacity bound).
MAX_POWER_W: Final = 2**32 - 1
#: Largest price, cents per W·interval; with MAX_POWER_W the money stays below 2⁶⁴.
MAX_PRICE: Final = 2**32 - 1
#: Expiry times are ms since the Unix epoch, in SQLite's signed 64-bit range.
MAX_TIME_MS: Final = 2**63 - 1
#: Largest reputation tier an offer may claim: a score threshold (``reputation.MAX_SCORE``).
MAX_TIER: Final = MAX_SCORE
#: Accepts and cancels per offer; far above any real use, keeps ``seq`` one msgpack int.
MAX_SEQ: Final = 2**32 - 1
ID_BYTES: Final = 32
_KEY_BYTES: Final = 32


class Side(enum.Enum):
    """What the maker of an offer does; the value is its name on the wire."""

    SELL = "sell"
    BUY = "buy"

    @property
    def maker_asset_kind(self) -> AssetKind:
        """The energy the maker escrows: production to sell, consumption to buy."""
        return AssetKind.PRODUCTION if self is Side.SELL else AssetKind.CONSUMPTION

    @property
    def taker_asset_kind(self) -> AssetKind:
        """The energy an accepting taker spends: the other kind."""
        return AssetKind.CONSUMPTION if self is Side.SELL else AssetKind.PRODUCTION


# -- helpers shared by the kinds ----------------------------------------------------------------


def _rejected(reason: MarketReject, detail: str = "") -> MarketTxRejected:
    return MarketTxRejected(reason, detail)


def _point(raw: Value, what: str) -> Point:
    """A non-identity prime-order point (``Point.from_bytes`` refuses anything else)."""
    return Point.from_bytes(codec.expect_bytes(raw, _KEY_BYTES, what=what))


def _address(raw: Value) -> PublicAddress:
    f = codec.expect_list(raw, 2, what="address")
    return PublicAddress(_point(f[0], "spend key"), _point(f[1], "view key"))


def _address_value(address: PublicAddress) -> list[Encodable]:
    return [address.spend.raw, address.view.raw]


def _outputs(raw: Value, lo: int, hi: int, what: str) -> tuple[TxOutput, ...]:
    items = codec.expect_list(raw, what=what)
    if not lo <= len(items) <= hi:
        raise TxRejected(TxReject.BAD_COUNT, what)
    return tuple(TxOutput.from_value(v) for v in items)


def _proof(raw: Value, n_outputs: int) -> bpplus.BulletproofPlus:
    size = bpplus.proof_size(n_outputs)
    return bpplus.BulletproofPlus.decode(codec.expect_bytes(raw, size, what="range proof"),
                                         n_outputs)


def _interval(raw: Value, what: str) -> int:
    return codec.expect_int(raw, 0, MAX_INTERVAL, what=what)


def nullifier(offer_id: bytes, seq: int) -> bytes:
    """The extra key image an accept or cancel of ``offer_id`` at sequence ``seq`` spends:
    ``Hp(NULLIFIER_DOMAIN ‖ offer_id ‖ seq)``, a prime-order point like any key image."""
    return hash_to_point(NULLIFIER_DOMAIN + offer_id + seq.to_bytes(8, "little")).raw


def public_tx_secret(nullifier_raw: bytes) -> TxSecret:
    """The published transaction secret ``r'`` of a transaction's public-amount outputs."""
    secret = hash_to_scalar(PUBLIC_TX_KEY_DOMAIN, nullifier_raw)
    if secret.is_zero():  # probability 2⁻²⁵²; a zero secret has no public key
        raise CryptoError("zero public transaction secret")
    return TxSecret(secret)


def public_output(tx_secret: TxSecret, index: int, to: PublicAddress, asset_id: bytes,
                  amount: int) -> tuple[TxOutput, Scalar]:
    """Output ``index`` paying ``amount`` of ``asset_id`` to ``to`` under the public secret:
    (the output, its commitment mask). Validators recompute it; recipients scan for it."""
    sent = create_output(tx_secret, to, index)
    info, mask, commitment = ecdh.make_output(amount, sent.shared_secret)
    out = TxOutput(asset_id, sent.output.one_time_key, sent.output.view_tag, commitment, info)
    return out, mask


def _sum(points: Iterable[Point]) -> Point:
    acc = IDENTITY
    for p in points:
        acc = acc + p
    return acc


def _check_balance(inputs: Sequence[TxInput], outputs: Sequence[TxOutput],
                   debits: Mapping[bytes, int]) -> None:
    """Per spent asset: Σ pseudo-outs = Σ outputs of the asset + debit·H (escrow, burnt
    energy, fee). Outputs of assets no input spends are checked elsewhere (recomputed)."""
    for asset_id in {i.asset_id for i in inputs}:
        pseudo = _sum(i.pseudo_out for i in inputs if i.asset_id == asset_id)
        outs = _sum(o.commitment for o in outputs if o.asset_id == asset_id)
        debit = debits.get(asset_id, 0)
        try:
            rhs = outs + amount_scalar(debit) * H if debit else outs
        except CryptoError as exc:
            raise TxRejected(TxReject.IMBALANCED) from exc
        if pseudo != rhs:
            raise TxRejected(TxReject.IMBALANCED)


def _verify_rings(inputs: Sequence[TxInput], view: LedgerView, message: bytes) -> None:
    for inp in inputs:
        ring = []
        for index in inp.ring:
            record = view.output(inp.asset_id, index)
            if record is None or record.asset_id != inp.asset_id:
                raise TxRejected(TxReject.UNKNOWN_RING_MEMBER)
            ring.append((record.one_time_key, record.commitment))
        if not clsag.verify(message, ring, inp.pseudo_out, inp.key_image, inp.signature):
            raise TxRejected(TxReject.BAD_RING_SIGNATURE)


def _verify_range_proof(hidden: Sequence[TxOutput], proof: bpplus.BulletproofPlus) -> None:
    if not bpplus.verify([o.commitment for o in hidden], proof):
        raise TxRejected(TxReject.BAD_RANGE_PROOF)


def _check_size(tx: Tx) -> None:
    if len(encode_tx(tx)) > MAX_TX_BYTES:
        raise TxRejected(TxReject.OVERSIZED)


# -- market state, as validation reads it ------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class OfferTerms:
    """The public fields of an offer (never who made it)."""

    side: Side
    interval: int
    #: W over the interval.
    power_w: int
    #: Cents per W·interval: a fill of ``q`` W costs ``q·price`` cents.
    price: int
    #: The offer is valid while the block time (ms since the Unix epoch) is below this.
    expiry_ms: int
    #: Interval range of the escrowed energy asset; it covers ``interval``.
    energy_first: int
    energy_last: int
    #: Where the maker's proceeds and returned escrow go: a fresh per-offer address.
    payout: PublicAddress
    #: The CryptoNote Schnorr key that may cancel the offer.
    cancel_key: Point
    #: 0: ungated. Otherwise the minimum reputation score the maker proves (1 … 2³²−1): the
    #: offer's witness then carries an :class:`OfferGate` for a tier list of this tier.
    tier: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.interval <= MAX_INTERVAL:
            raise TxRejected(TxReject.MALFORMED, "interval")
        if not 1 <= self.power_w <= MAX_POWER_W:
            raise TxRejected(TxReject.MALFORMED, "power")
        if not 1 <= self.price <= MAX_PRICE:
            raise TxRejected(TxReject.MALFORMED, "price")
        if not 0 <= self.expiry_ms <= MAX_TIME_MS:
            raise TxRejected(TxReject.MALFORMED, "expiry")
        if not 0 <= self.energy_first <= self.energy_last <= MAX_INTERVAL:
            raise TxRejected(TxReject.MALFORMED, "energy range")
        if not self.cancel_key.in_subgroup or self.cancel_key.is_identity():
            raise TxRejected(TxReject.MALFORMED, "cancel key outside the prime-order subgroup")
        if not 0 <= self.tier <= MAX_TIER:
            raise TxRejected(TxReject.MALFORMED, "tier")

    @property
    def energy_asset(self) -> Asset:
        return Asset(self.side.maker_asset_kind, self.energy_first, self.energy_last)

    def escrow(self, power_w: int) -> dict[bytes, int]:
        """What backs ``power_w`` W of this offer, per asset id."""
        amounts = {self.energy_asset.asset_id: power_w}
        if self.side is Side.BUY:
            amounts[MONEY.asset_id] = power_w * self.price
        return amounts

    def to_value(self) -> list[Encodable]:
        return [self.side.value, self.interval, self.power_w, self.price, self.expiry_ms,
                self.energy_first, self.energy_last, _address_value(self.payout),
                self.cancel_key.raw, self.tier]

    @classmethod
    def from_value(cls, value: Value) -> OfferTerms:
        f = codec.expect_list(value, 10, what="offer terms")
        return cls(
            Side(codec.expect_str(f[0], max_len=8, what="side")),
            _interval(f[1], "interval"),
            codec.expect_int(f[2], 1, MAX_POWER_W, what="power"),
            codec.expect_int(f[3], 1, MAX_PRICE, what="price"),
            codec.expect_int(f[4], 0, MAX_TIME_MS, what="expiry"),
            _interval(f[5], "energy first"),
            _interval(f[6], "energy last"),
            _address(f[7]),
            _point(f[8], "cancel key"),
            codec.expect_int(f[9], 0, MAX_TIER, what="tier"),
        )


@final
@dataclass(frozen=True, slots=True)
class OfferState:
    """An offer as the market book holds it."""

    offer_id: bytes
    terms: OfferTerms
    #: Power still on offer, W; the escrow backs exactly this much.
    remaining_w: int
    #: Accepts and cancels so far: the sequence number the next one must name.
    seq: int = 0
    cancelled: bool = False

    def __post_init__(self) -> None:
        if len(self.offer_id) != ID_BYTES:
            raise ValueError("an offer id is 32 bytes")
        if not 0 <= self.remaining_w <= self.terms.power_w:
            raise ValueError("remaining power outside 0 … power")

    @property
    def is_open(self) -> bool:
        return not self.cancelled and self.remaining_w > 0

    @property
    def escrow(self) -> dict[bytes, int]:
        """What the ledger holds for this offer, per asset id (nothing once closed)."""
        return self.terms.escrow(self.remaining_w) if self.is_open else {}


@runtime_checkable
class MarketView(LedgerView, Protocol):
    """The ledger state plus what market kinds read: the block time, the clock, the offers."""

    def block_time_ms(self) -> int:
        """Time of the block being validated (ms since the Unix epoch)."""
        ...

    def market_clock(self) -> MarketClock:
        """The network's interval schedule (a genesis parameter, like ``LedgerParams``)."""
        ...

    def offer(self, offer_id: bytes) -> OfferState | None: ...


def _market(view: LedgerView) -> MarketView:
    if not isinstance(view, MarketView):
        raise _rejected(MarketReject.NO_MARKET_STATE)
    return view


def _open_offer(view: MarketView, offer_id: bytes, seq: int) -> OfferState:
    offer = view.offer(offer_id)
    if offer is None:
        raise _rejected(MarketReject.UNKNOWN_OFFER)
    if not offer.is_open:
        raise _rejected(MarketReject.OFFER_CLOSED)
    if seq != offer.seq:
        raise _rejected(MarketReject.STALE_SEQUENCE, f"expected {offer.seq}")
    return offer


def _check_window(view: MarketView, terms: OfferTerms) -> None:
    now = view.block_time_ms()
    if not view.market_clock().gate_open(terms.interval, now):
        raise _rejected(MarketReject.GATE_CLOSED, f"interval {terms.interval}")
    if now >= terms.expiry_ms:
        raise _rejected(MarketReject.OFFER_EXPIRED)


def _ring_message(tx: Tx, proof: bpplus.BulletproofPlus, network_id: str) -> bytes:
    return signed_message(prefix_hash(tx, network_id), proof, network_id)


# -- offer -------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class OfferGate:
    """What a gated offer's witness carries: the DSO's tier list of the offer's tier and the
    maker's anonymous proof of membership over the offer's prefix hash."""

    tier_list: TierList
    proof: ReputationProof

    def to_value(self) -> list[Encodable]:
        """``[tier list, proof]``, each the record's own canonical encoding (bin)."""
        return [self.tier_list.encode(), self.proof.encode()]

    @classmethod
    def from_value(cls, value: Value) -> OfferGate:
        f = codec.expect_list(value, 2, what="offer gate")
        # The records' own bounds, checked before their decoders do any work.
        raw_list = codec.expect_bytes(f[0], max_size=MAX_TIER_LIST_BYTES, what="tier list")
        raw_proof = codec.expect_bytes(f[1], max_size=MAX_PROOF_BYTES, what="reputation proof")
        try:
            return cls(TierList.decode(raw_list), ReputationProof.decode(raw_proof))
        except MarketRecordInvalid as exc:
            raise TxRejected(TxReject.MALFORMED, "offer gate") from exc


def _check_gate_basic(terms: OfferTerms, gate: OfferGate | None) -> None:
    """The prefix's tier binds the witness: a gate iff a tier, and of that tier."""
    if gate is None:
        if terms.tier:
            raise _rejected(MarketReject.GATE_MISSING, f"tier {terms.tier}")
        return
    if not terms.tier:
        raise _rejected(MarketReject.GATE_UNEXPECTED)
    if gate.tier_list.tier != terms.tier:
        raise _rejected(MarketReject.TIER_MISMATCH,
                        f"list of tier {gate.tier_list.tier}, offer of tier {terms.tier}")


def _check_gate_epoch(view: MarketView, gate: OfferGate) -> None:
    """The list is of the block time's epoch or the one before (a list published at an epoch
    boundary may still be on its way to the maker)."""
    try:
        current = view.market_clock().epoch_at(view.block_time_ms())
    except OutOfWindow as exc:
        raise _rejected(MarketReject.STALE_TIER_LIST, "block time before genesis") from exc
    if gate.tier_list.epoch not in (current, current - 1):
        raise _rejected(MarketReject.STALE_TIER_LIST,
                        f"list of epoch {gate.tier_list.epoch}, block in epoch {current}")


def _verify_gate(offer: Offer, gate: OfferGate, params: LedgerParams) -> None:
    tier_list = gate.tier_list
    if not tier_list.signature_valid(params.dso_signing_key, params.network_id):
        raise _rejected(MarketReject.BAD_TIER_LIST)
    try:
        verify_proof(gate.proof, prefix_hash(offer, params.network_id), tier_list,
                     dso_key=params.dso_signing_key, network_id=params.network_id,
                     epoch=tier_list.epoch, min_tier=offer.terms.tier)
    except ReputationProofRejected as exc:
        raise _rejected(MarketReject.BAD_REPUTATION_PROOF, exc.reason.value) from exc


def offer_prefix(terms: OfferTerms, inputs: Sequence[list[Encodable]],
                 outputs: Sequence[TxOutput], tx_public: Point, fee: int) -> list[Encodable]:
    """``[version, terms, inputs, outputs, R, fee]``."""
    return [MARKET_TX_VERSION, terms.to_value(), list(inputs), [o.to_value() for o in outputs],
            tx_public.raw, fee]


def _check_version(raw: Value) -> None:
    if codec.expect_int(raw, 0, 2**32, what="market version") != MARKET_TX_VERSION:
        raise TxRejected(TxReject.UNSUPPORTED_VERSION)


@final
@dataclass(frozen=True, slots=True)
class Offer:
    """Post an offer, escrowing its backing from ring inputs; hidden change goes back.

    A gated offer (``terms.tier > 0``) also carries :attr:`gate` in its witness: the proof
    signs the prefix hash, so it cannot be part of the prefix; the prefix's tier binds it.
    """

    KIND: ClassVar[str] = "offer"

    terms: OfferTerms
    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    tx_public: Point
    fee: int
    range_proof: bpplus.BulletproofPlus
    gate: OfferGate | None = None
    _key_images: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_private_shape(self.inputs, self.outputs, self.fee, self.tx_public,
                            self.range_proof)
        object.__setattr__(self, "_key_images", tuple(i.key_image.point.raw for i in self.inputs))

    def key_images(self) -> tuple[bytes, ...]:
        return self._key_images

    def ring_members(self) -> tuple[tuple[bytes, int], ...]:
        return tuple((i.asset_id, index) for i in self.inputs for index in i.ring)

    def prefix_fields(self) -> list[Encodable]:
        return offer_prefix(self.terms, [i.prefix_value() for i in self.inputs], self.outputs,
                            self.tx_public, self.fee)

    def witness_fields(self) -> list[Encodable]:
        """``[signatures, range proof, gate | nil]``."""
        return [[i.signature.encode() for i in self.inputs], self.range_proof.encode(),
                None if self.gate is None else self.gate.to_value()]

    @classmethod
    def from_fields(cls, prefix: Value, witness: Value) -> Offer:
        p = codec.expect_list(prefix, 6, what="offer prefix")
        w = codec.expect_list(witness, 3, what="offer witness")
        _check_version(p[0])
        outputs = _outputs(p[3], 1, MAX_OUTPUTS, "outputs")
        return cls(
            OfferTerms.from_value(p[1]),
            decode_inputs(p[2], w[0]),
            outputs,
            _point(p[4], "tx public key"),
            codec.expect_int(p[5], 0, MAX_AMOUNT, what="fee"),
            _proof(w[1], len(outputs)),
            None if w[2] is None else OfferGate.from_value(w[2]),
        )

    def _debits(self) -> dict[bytes, int]:
        debits = self.terms.escrow(self.terms.power_w)
        if self.fee:
            debits[MONEY.asset_id] = debits.get(MONEY.asset_id, 0) + self.fee
        return debits

    def validate_basic(self, params: LedgerParams) -> None:
        check_ring_basic(self.inputs, self._key_images, self.outputs, params)
        terms = self.terms
        _check_gate_basic(terms, self.gate)
        if not terms.energy_first <= terms.interval <= terms.energy_last:
            raise _rejected(MarketReject.WRONG_ASSET, "energy asset does not cover the interval")
        spent = {i.asset_id for i in self.inputs}
        debits = self._debits()
        if set(debits) - spent:
            raise _rejected(MarketReject.WRONG_ASSET, "escrow or fee of an asset not spent")
        if spent - {terms.energy_asset.asset_id, MONEY.asset_id}:
            raise _rejected(MarketReject.WRONG_ASSET, "input of another asset")
        if debits.get(MONEY.asset_id, 0) > MAX_AMOUNT:
            raise TxRejected(TxReject.IMBALANCED, "escrow and fee overflow")
        _check_size(self)

    def check_state(self, view: LedgerView, params: LedgerParams) -> None:
        market = _market(view)
        _check_window(market, self.terms)
        if self.gate is not None:
            _check_gate_epoch(market, self.gate)
        check_ring_state(self.inputs, self._key_images, view, params)

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None:
        _check_balance(self.inputs, self.outputs, self._debits())
        _verify_range_proof(self.outputs, self.range_proof)
        _verify_rings(self.inputs, view, _ring_message(self, self.range_proof, params.network_id))
        if self.gate is not None:
            _verify_gate(self, self.gate, params)


# -- accept ------------------------------------------------------------------------------------


def accept_prefix(offer_id: bytes, seq: int, power_w: int, energy_first: int,
                  energy_last: int, proceeds_to: PublicAddress | None,
                  inputs: Sequence[list[Encodable]], public: Sequence[TxOutput],
                  hidden: Sequence[TxOutput], tx_public: Point, fee: int) -> list[Encodable]:
    """``[version, offer id, seq, power, energy first, energy last, proceeds to | nil, inputs,
    public outputs, hidden outputs, R, fee]``."""
    return [
        MARKET_TX_VERSION, offer_id, seq, power_w, energy_first, energy_last,
        None if proceeds_to is None else _address_value(proceeds_to), list(inputs),
        [o.to_value() for o in public], [o.to_value() for o in hidden], tx_public.raw, fee,
    ]


@final
@dataclass(frozen=True, slots=True)
class Accept:
    """Fill ``power_w`` W of an offer: the taker's side from ring inputs, the trade's money
    as one public output (to the maker for a SELL offer, to the taker for a BUY offer)."""

    KIND: ClassVar[str] = "accept"

    offer_id: bytes
    seq: int
    power_w: int
    #: Interval range of the taker's energy asset (kind: the other side's).
    energy_first: int
    energy_last: int
    #: BUY offers only: where the taker's money goes.
    proceeds_to: PublicAddress | None
    inputs: tuple[TxInput, ...]
    #: The trade's money output, at index 0 of :attr:`outputs`.
    public_outputs: tuple[TxOutput, ...]
    #: The taker's change, under :attr:`tx_public`; one range proof covers them.
    hidden_outputs: tuple[TxOutput, ...]
    tx_public: Point
    fee: int
    range_proof: bpplus.BulletproofPlus
    _key_images: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.offer_id) != ID_BYTES:
            raise TxRejected(TxReject.MALFORMED, "offer id")
        if not 0 <= self.seq <= MAX_SEQ:
            raise TxRejected(TxReject.MALFORMED, "sequence")
        if not 1 <= self.power_w <= MAX_POWER_W:
            raise TxRejected(TxReject.MALFORMED, "power")
        if not 0 <= self.energy_first <= self.energy_last <= MAX_INTERVAL:
            raise TxRejected(TxReject.MALFORMED, "energy range")
        if len(self.public_outputs) != 1:
            raise TxRejected(TxReject.BAD_COUNT, "public outputs")
        if len(self.hidden_outputs) > MAX_OUTPUTS - 1:  # one place is the public output's
            raise TxRejected(TxReject.BAD_COUNT, "hidden outputs")
        check_private_shape(self.inputs, self.hidden_outputs, self.fee, self.tx_public,
                            self.range_proof)
        object.__setattr__(self, "_key_images", (
            *(i.key_image.point.raw for i in self.inputs), nullifier(self.offer_id, self.seq)))

    @property
    def outputs(self) -> tuple[TxOutput, ...]:
        return self.public_outputs + self.hidden_outputs

    @property
    def nullifier(self) -> bytes:
        return self._key_images[-1]

    def key_images(self) -> tuple[bytes, ...]:
        return self._key_images

    def ring_members(self) -> tuple[tuple[bytes, int], ...]:
        return tuple((i.asset_id, index) for i in self.inputs for index in i.ring)

    def prefix_fields(self) -> list[Encodable]:
        return accept_prefix(self.offer_id, self.seq, self.power_w, self.energy_first,
                             self.energy_last, self.proceeds_to,
                             [i.prefix_value() for i in self.inputs], self.public_outputs,
                             self.hidden_outputs, self.tx_public, self.fee)

    def witness_fields(self) -> list[Encodable]:
        return [[i.signature.encode() for i in self.inputs], self.range_proof.encode()]

    @classmethod
    def from_fields(cls, prefix: Value, witness: Value) -> Accept:
        p = codec.expect_list(prefix, 12, what="accept prefix")
        w = codec.expect_list(witness, 2, what="accept witness")
        _check_version(p[0])
        hidden = _outputs(p[9], 1, MAX_OUTPUTS - 1, "hidden outputs")
        return cls(
            codec.expect_bytes(p[1], ID_BYTES, what="offer id"),
            codec.expect_int(p[2], 0, MAX_SEQ, what="sequence"),
            codec.expect_int(p[3], 1, MAX_POWER_W, what="power"),
            _interval(p[4], "energy first"),
            _interval(p[5], "energy last"),
            None if p[6] is None else _address(p[6]),
            decode_inputs(p[7], w[0]),
            _outputs(p[8], 1, 1, "public outputs"),
            hidden,
            _point(p[10], "tx public key"),
            codec.expect_int(p[11], 0, MAX_AMOUNT, what="fee"),
            _proof(w[1], len(hidden)),
        )

    def _energy_ids(self) -> tuple[bytes, bytes]:
        """(production, consumption) asset ids of the taker's named range."""
        return (Asset(AssetKind.PRODUCTION, self.energy_first, self.energy_last).asset_id,
                Asset(AssetKind.CONSUMPTION, self.energy_first, self.energy_last).asset_id)

    def validate_basic(self, params: LedgerParams) -> None:
        check_ring_basic(self.inputs, self._key_images, self.hidden_outputs, params)
        if self.public_outputs[0].asset_id != MONEY.asset_id:
            raise _rejected(MarketReject.BAD_PUBLIC_OUTPUT, "the trade's output is money")
        spent = {i.asset_id for i in self.inputs}
        energy = spent - {MONEY.asset_id}
        if len(energy) != 1 or not energy <= set(self._energy_ids()):
            raise _rejected(MarketReject.WRONG_ASSET, "one energy asset of the named range")
        _check_size(self)

    def _energy_id(self) -> bytes:
        [energy] = {i.asset_id for i in self.inputs} - {MONEY.asset_id}
        return energy

    def expected_public_output(self, offer: OfferState) -> TxOutput:
        """The trade's money output the rules derive for ``offer``."""
        money = self.power_w * offer.terms.price
        secret = public_tx_secret(self.nullifier)
        if offer.terms.side is Side.SELL:
            return public_output(secret, 0, offer.terms.payout, MONEY.asset_id, money)[0]
        if self.proceeds_to is None:
            raise _rejected(MarketReject.BAD_PUBLIC_OUTPUT, "a BUY offer's taker names an address")
        return public_output(secret, 0, self.proceeds_to, MONEY.asset_id, money - self.fee)[0]

    def check_state(self, view: LedgerView, params: LedgerParams) -> None:
        market = _market(view)
        offer = _open_offer(market, self.offer_id, self.seq)
        terms = offer.terms
        if self.power_w > offer.remaining_w:
            raise _rejected(MarketReject.OVER_FILL)
        _check_window(market, terms)
        if not self.energy_first <= terms.interval <= self.energy_last:
            raise _rejected(MarketReject.WRONG_ASSET, "energy asset does not cover the interval")
        taker_energy = Asset(terms.side.taker_asset_kind, self.energy_first, self.energy_last)
        if self._energy_id() != taker_energy.asset_id:
            raise _rejected(MarketReject.WRONG_ASSET, "energy of the wrong kind")
        pays_money = MONEY.asset_id in {i.asset_id for i in self.inputs}
        if terms.side is Side.SELL:
            if not pays_money:
                raise _rejected(MarketReject.WRONG_ASSET, "a SELL offer's taker pays money")
            if self.proceeds_to is not None:
                raise _rejected(MarketReject.BAD_PUBLIC_OUTPUT, "proceeds go to the maker")
        else:
            if pays_money:
                raise _rejected(MarketReject.WRONG_ASSET, "a BUY offer's taker pays no money")
            if self.fee > self.power_w * terms.price:
                raise _rejected(MarketReject.FEE_EXCEEDS_PROCEEDS)
        if self.public_outputs[0] != self.expected_public_output(offer):
            raise _rejected(MarketReject.BAD_PUBLIC_OUTPUT)
        check_ring_state(self.inputs, self._key_images, view, params)

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None:
        # The taker's energy is burnt; a SELL offer's taker also pays the public output and
        # the fee from its money inputs (a BUY offer's taker has none: the fee comes out of
        # the escrow, and check_state recomputed the output).
        debits = {self._energy_id(): self.power_w, MONEY.asset_id: self.fee}
        _check_balance(self.inputs, self.outputs, debits)
        _verify_range_proof(self.hidden_outputs, self.range_proof)
        _verify_rings(self.inputs, view, _ring_message(self, self.range_proof, params.network_id))


# -- cancel ------------------------------------------------------------------------------------


def cancel_prefix(offer_id: bytes, seq: int, outputs: Sequence[TxOutput]) -> list[Encodable]:
    """``[version, offer id, seq, outputs]``."""
    return [MARKET_TX_VERSION, offer_id, seq, [o.to_value() for o in outputs]]


def cancel_message(prefix_digest: bytes, network_id: str) -> bytes:
    """What the cancel key signs (a 32-byte hash, as CryptoNote's Schnorr signs)."""
    return hashlib.sha256(signing.signing_bytes(CANCEL_DOMAIN, network_id, prefix_digest)).digest()


def cancel_outputs(offer: OfferState, seq: int) -> tuple[TxOutput, ...]:
    """The remaining escrow of ``offer`` back to its payout address, energy first."""
    secret = public_tx_secret(nullifier(offer.offer_id, seq))
    return tuple(
        public_output(secret, index, offer.terms.payout, asset_id, amount)[0]
        for index, (asset_id, amount) in enumerate(offer.escrow.items())
    )


@final
@dataclass(frozen=True, slots=True)
class Cancel:
    """The maker withdraws an offer's remaining escrow to the offer's payout address."""

    KIND: ClassVar[str] = "cancel"

    offer_id: bytes
    seq: int
    outputs: tuple[TxOutput, ...]
    signature: schnorr.Signature
    _nullifier: bytes = field(init=False, repr=False, compare=False)
    _tx_public: Point = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.offer_id) != ID_BYTES:
            raise TxRejected(TxReject.MALFORMED, "offer id")
        if not 0 <= self.seq <= MAX_SEQ:
            raise TxRejected(TxReject.MALFORMED, "sequence")
        if not 1 <= len(self.outputs) <= 2:
            raise TxRejected(TxReject.BAD_COUNT, "outputs")
        object.__setattr__(self, "_nullifier", nullifier(self.offer_id, self.seq))
        object.__setattr__(self, "_tx_public", public_tx_secret(self._nullifier).public)

    @property
    def tx_public(self) -> Point:
        """The public ``R'``: a cancel has only public-amount outputs."""
        return self._tx_public

    @property
    def nullifier(self) -> bytes:
        return self._nullifier

    @property
    def fee(self) -> int:
        return 0

    def key_images(self) -> tuple[bytes, ...]:
        return (self._nullifier,)

    def ring_members(self) -> tuple[tuple[bytes, int], ...]:
        return ()

    def prefix_fields(self) -> list[Encodable]:
        return cancel_prefix(self.offer_id, self.seq, self.outputs)

    def witness_fields(self) -> list[Encodable]:
        return [bytes(self.signature)]

    @classmethod
    def from_fields(cls, prefix: Value, witness: Value) -> Cancel:
        p = codec.expect_list(prefix, 4, what="cancel prefix")
        w = codec.expect_list(witness, 1, what="cancel witness")
        _check_version(p[0])
        return cls(
            codec.expect_bytes(p[1], ID_BYTES, what="offer id"),
            codec.expect_int(p[2], 0, MAX_SEQ, what="sequence"),
            _outputs(p[3], 1, 2, "outputs"),
            schnorr.Signature.from_bytes(
                codec.expect_bytes(w[0], schnorr.SIGNATURE_BYTES, what="signature")),
        )

    def validate_basic(self, params: LedgerParams) -> None:
        _check_size(self)

    def check_state(self, view: LedgerView, params: LedgerParams) -> None:
        offer = _open_offer(_market(view), self.offer_id, self.seq)
        if self.outputs != cancel_outputs(offer, self.seq):
            raise _rejected(MarketReject.BAD_PUBLIC_OUTPUT)
        if view.key_image_spent(self._nullifier):
            raise TxRejected(TxReject.KEY_IMAGE_SPENT)

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None:
        offer = _market(view).offer(self.offer_id)
        if offer is None:
            raise _rejected(MarketReject.UNKNOWN_OFFER)
        message = cancel_message(prefix_hash(self, params.network_id), params.network_id)
        try:
            schnorr.verify_signature(message, offer.terms.cancel_key, self.signature)
        except VerificationFailed as exc:
            raise _rejected(MarketReject.BAD_CANCEL_SIGNATURE) from exc


#: The ledger's kinds plus the market's (and the DSO's notices): what a market node decodes
#: transactions with.
MARKET_REGISTRY: Final = (
    BASE_REGISTRY.with_kind(Offer.KIND, Offer.from_fields)
    .with_kind(Accept.KIND, Accept.from_fields)
    .with_kind(Cancel.KIND, Cancel.from_fields)
    .with_kind(Notice.KIND, Notice.from_fields)
)


# -- the market book ---------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Trade:
    """One fill: the seller's production and the buyer's consumption of ``power_w`` W for
    ``interval`` are matched (the energy obligation settlement checks)."""

    #: The accept transaction's hash.
    trade_id: bytes
    offer_id: bytes
    interval: int
    power_w: int
    price: int
    maker_side: Side


@final
@dataclass(frozen=True, slots=True)
class MarketDelta:
    """What one block changes in the market book; the store writes it with the ledger's."""

    opened: tuple[OfferState, ...]
    trades: tuple[Trade, ...]
    #: Ids of the offers cancelled in the block.
    cancelled: tuple[bytes, ...]
    #: The new state of every offer the block touched (opened ones included).
    updated: tuple[OfferState, ...]


class MarketBook:
    """The offers on the ledger, in memory (tests, light nodes; the store later holds the
    rows). Pure: :meth:`delta_for` computes a block's :class:`MarketDelta` without changing
    anything, :meth:`apply` takes it in."""

    def __init__(self, offers: Iterable[OfferState] = ()) -> None:
        self._offers = {o.offer_id: o for o in offers}

    def offer(self, offer_id: bytes) -> OfferState | None:
        return self._offers.get(offer_id)

    def offers(self) -> list[OfferState]:
        return list(self._offers.values())

    def delta_for(self, txs: Sequence[AppliedTx]) -> MarketDelta:
        """The market effect of a validated block's transactions, in block order.

        Validation already checked each transaction against the state before the block, and
        nullifiers keep two acts on one offer out of one block; this re-checks the book's own
        invariants in order and raises ``MarketTxRejected(CONFLICT)`` if they fail.
        """
        touched: dict[bytes, OfferState] = {}
        opened: list[OfferState] = []
        trades: list[Trade] = []
        cancelled: list[bytes] = []
        for applied in txs:
            tx = applied.tx
            if isinstance(tx, Offer):
                if applied.tx_hash in self._offers or applied.tx_hash in touched:
                    raise _rejected(MarketReject.CONFLICT, "offer id exists")
                state = OfferState(applied.tx_hash, tx.terms, tx.terms.power_w)
                touched[state.offer_id] = state
                opened.append(state)
            elif isinstance(tx, Accept):
                state = self._current(touched, tx.offer_id, tx.seq)
                if tx.power_w > state.remaining_w:
                    raise _rejected(MarketReject.CONFLICT, "over-fill within the block")
                touched[tx.offer_id] = replace(state, remaining_w=state.remaining_w - tx.power_w,
                                               seq=state.seq + 1)
                trades.append(Trade(applied.tx_hash, tx.offer_id, state.terms.interval,
                                    tx.power_w, state.terms.price, state.terms.side))
            elif isinstance(tx, Cancel):
                state = self._current(touched, tx.offer_id, tx.seq)
                touched[tx.offer_id] = replace(state, seq=state.seq + 1, cancelled=True)
                cancelled.append(tx.offer_id)
        return MarketDelta(tuple(opened), tuple(trades), tuple(cancelled),
                           tuple(touched.values()))

    def _current(self, touched: Mapping[bytes, OfferState], offer_id: bytes,
                 seq: int) -> OfferState:
        state = touched.get(offer_id) or self._offers.get(offer_id)
        if state is None or not state.is_open or state.seq != seq:
            raise _rejected(MarketReject.CONFLICT, "offer not open at this sequence")
        return state

    def apply(self, delta: MarketDelta) -> None:
        for state in delta.updated:
            self._offers[state.offer_id] = state

    def apply_block(self, txs: Sequence[AppliedTx]) -> MarketDelta:
        """:meth:`delta_for` then :meth:`apply`."""
        delta = self.delta_for(txs)
        self.apply(delta)
        return delta


class MarketSnapshot:
    """A :class:`MarketView` over a ledger view, a market book and a clock, at a block time
    the caller sets (the proposal's time when validating a block; the expected next block's
    time in the mempool)."""

    def __init__(self, ledger: LedgerView, book: MarketBook, clock: MarketClock,
                 block_time_ms: int) -> None:
        self.ledger = ledger
        self.book = book
        self.clock = clock
        self.time_ms = block_time_ms

    def height(self) -> int:
        return self.ledger.height()

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None:
        return self.ledger.output(asset_id, global_index)

    def output_count(self, asset_id: bytes) -> int:
        return self.ledger.output_count(asset_id)

    def settled_output_count(self, asset_id: bytes) -> int:
        return self.ledger.settled_output_count(asset_id)

    def key_image_spent(self, key_image: bytes) -> bool:
        return self.ledger.key_image_spent(key_image)

    def has_tx(self, tx_hash: bytes) -> bool:
        return self.ledger.has_tx(tx_hash)

    def block_time_ms(self) -> int:
        return self.time_ms

    def market_clock(self) -> MarketClock:
        return self.clock

    def offer(self, offer_id: bytes) -> OfferState | None:
        return self.book.offer(offer_id)
