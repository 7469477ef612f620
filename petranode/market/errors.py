"""Why the market refused something (SPEC §4.7, §5; STYLE: errors).

Every refusal is a :class:`MarketError` subclass carrying an enum ``reason`` (CometBFT
``types/errors.go``): callers count and score by reason, never by parsing prose, and a peer's
bytes never reach a log line through the message. A market decoder has two outcomes, a value
or :class:`MarketRecordInvalid`; a request the DSO will not grant is :class:`RequestRefused`;
a time-window violation is :class:`OutOfWindow`; a reputation proof that does not verify is
:class:`ReputationProofRejected`; inconsistent settlement input is :class:`SettlementRejected`;
a delivery report the DSO refuses is :class:`DeliveryRejected`. The one exception to the base
class: a market *transaction* that breaks a rule raises :class:`MarketTxRejected`, a
``TxRejected`` of the ledger with the market's reason enum, so the ledger refuses it like its
own.

Local misuse (a negative power passed by our own code) stays ``ValueError``.
"""

from __future__ import annotations

import enum

from petranode.errors import PetranodeError
from petranode.ledger.tx_errors import TxRejected


class MarketError(PetranodeError):
    """Base class of market refusals; ``reason`` is the enum member naming the rule broken."""

    def __init__(self, reason: enum.Enum, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else str(reason.value))
        self.reason = reason
        self.detail = detail


# -- records ----------------------------------------------------------------------------------


class RecordFault(enum.Enum):
    """Why a market record's bytes were refused."""

    #: Not the canonical encoding, a field of the wrong shape, or out of its bounds.
    MALFORMED = "malformed"
    #: A record version this node does not know.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: The record's signature does not verify under the key it must be signed by.
    BAD_SIGNATURE = "bad_signature"


class MarketRecordInvalid(MarketError):
    """A registration, request, tier list or proof could not be decoded or authenticated."""

    def __init__(self, reason: RecordFault, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: RecordFault = reason


# -- asset requests to the DSO -----------------------------------------------------------------


class RequestReject(enum.Enum):
    """Why the DSO refused an asset request (SPEC §4.7 capacity and feeder rules)."""

    #: The request's key is not a registered meter key.
    UNKNOWN_PROSUMER = "unknown_prosumer"
    #: The request is not signed by the registered meter key.
    BAD_SIGNATURE = "bad_signature"
    #: The request (same id) was already granted.
    DUPLICATE = "duplicate"
    #: The request's own expiry interval is no longer open.
    EXPIRED = "expired"
    #: An energy request for an interval whose gate has closed.
    GATE_CLOSED = "gate_closed"
    #: An energy request spanning more intervals than the DSO issues at once.
    SPAN_TOO_LONG = "span_too_long"
    #: Granting would exceed the prosumer's registered capacity in some interval.
    OVER_CAPACITY = "over_capacity"
    #: Granting would exceed the prosumer's feeder limit in some interval.
    OVER_FEEDER_LIMIT = "over_feeder_limit"
    #: The prosumer's feeder has no posted limit, so nothing is issued on it.
    UNKNOWN_FEEDER = "unknown_feeder"


class RequestRefused(MarketError):
    """The DSO will not grant an asset request; ``reason`` says which rule it broke."""

    def __init__(self, reason: RequestReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: RequestReject = reason


# -- the market clock ---------------------------------------------------------------------------


class WindowFault(enum.Enum):
    """Which time window an action fell outside (SPEC §4.7 gate closure)."""

    #: A time before the network's genesis has no interval.
    BEFORE_GENESIS = "before_genesis"
    #: An offer or acceptance at or after its interval's gate closure.
    GATE_CLOSED = "gate_closed"
    #: An interval index outside 0 … 2⁶³−1.
    BAD_INTERVAL = "bad_interval"
    #: Settlement asked for before the interval's settlement time.
    NOT_SETTLEABLE = "not_settleable"


class OutOfWindow(MarketError):
    """An action is valid only inside a time window and ``now`` is outside it."""

    def __init__(self, reason: WindowFault, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: WindowFault = reason


# -- reputation --------------------------------------------------------------------------------


class ProofReject(enum.Enum):
    """Why a minimum-reputation proof was refused (or could not be made)."""

    #: The tier list is not signed by the DSO.
    BAD_LIST_SIGNATURE = "bad_list_signature"
    #: The proof or list is for another epoch than the verifier requires.
    WRONG_EPOCH = "wrong_epoch"
    #: The list's tier is below the minimum the verifier requires.
    TIER_TOO_LOW = "tier_too_low"
    #: The proof names another list than the one it is checked against.
    WRONG_LIST = "wrong_list"
    #: The ring signature does not verify for this offer and list.
    BAD_RING_SIGNATURE = "bad_ring_signature"
    #: The key image was already used (the verifier asked for one use per credential slot).
    LINKED = "linked"
    #: Prover side: our credential for this epoch and slot is not in the list.
    NOT_IN_TIER = "not_in_tier"


class ReputationProofRejected(MarketError):
    """A minimum-reputation proof failed, or we cannot make one for this tier."""

    def __init__(self, reason: ProofReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: ProofReject = reason


# -- settlement --------------------------------------------------------------------------------


class SettlementReject(enum.Enum):
    """Why settlement input was refused."""

    #: Two trades with the same id.
    DUPLICATE_TRADE = "duplicate_trade"
    #: A trade of another interval than the one being settled.
    WRONG_INTERVAL = "wrong_interval"
    #: A meter-reported delivery outside 0 … 2³²−1 W.
    BAD_DELIVERY = "bad_delivery"


class SettlementRejected(MarketError):
    """Settlement input is inconsistent; nothing was settled."""

    def __init__(self, reason: SettlementReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: SettlementReject = reason


# -- metering, billing, aggregate load (SPEC §4.8) -------------------------------------------------


class ProfileFault(enum.Enum):
    """Why an imported profile file was refused."""

    #: The first line is not exactly ``interval,production_w,consumption_w``.
    BAD_HEADER = "bad_header"
    #: A row is not three comma-separated decimal integers.
    MALFORMED_ROW = "malformed_row"
    #: A power outside 0 … 2³²−1 W.
    OUT_OF_RANGE = "out_of_range"
    #: Rows are not the consecutive intervals 0, 1, 2, … (a gap, a repeat or a wrong start).
    NOT_CONSECUTIVE = "not_consecutive"
    #: No rows, more rows than allowed, or more bytes than allowed.
    BAD_SIZE = "bad_size"


class ProfileInvalid(MarketError):
    """An imported profile is malformed; ``line`` is its 1-based line number (0: the file)."""

    def __init__(self, reason: ProfileFault, line: int, detail: str = "") -> None:
        super().__init__(reason, f"line {line}: {detail}" if detail else f"line {line}")
        self.reason: ProfileFault = reason
        self.line = line


class BillReject(enum.Enum):
    """Why the DSO refused a meter's bill (docs/market.md, "Metering, billing ...")."""

    #: The bill names another meter than the one the DSO certified for this prosumer.
    WRONG_METER = "wrong_meter"
    #: The bill's signature does not verify under the certified meter key.
    BAD_SIGNATURE = "bad_signature"
    #: The bill names another price policy, or its period is outside the policy's range.
    WRONG_POLICY = "wrong_policy"
    #: A period longer than a bill may cover, or shorter than the meter's minimum.
    BAD_PERIOD = "bad_period"
    #: An interval of the period has no commitment.
    MISSING_INTERVAL = "missing_interval"
    #: A commitment for an interval outside the period, or two for one interval.
    UNEXPECTED_COMMITMENT = "unexpected_commitment"
    #: A commitment by another meter, or whose meter signature does not verify.
    BAD_COMMITMENT = "bad_commitment"
    #: The signed total in cents is not what the weighted sums give.
    TOTAL_MISMATCH = "total_mismatch"
    #: Σ priceᵢ·Cᵢ ≠ W·H + R·G for consumption or production: the sums are not the committed ones.
    OPENING_MISMATCH = "opening_mismatch"


class BillRejected(MarketError):
    """A bill does not match the meter's signed commitments; nothing was learnt from it."""

    def __init__(self, reason: BillReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: BillReject = reason


class ShareReject(enum.Enum):
    """Why the DSO's aggregator refused a masked share, or could not give an aggregate."""

    #: The share is from a meter that is not on the feeder's roster.
    UNKNOWN_METER = "unknown_meter"
    #: A second share from one meter for one interval.
    DUPLICATE = "duplicate"
    #: The share is for another feeder or roster than this aggregator's.
    WRONG_ROSTER = "wrong_roster"
    #: The share's meter signature does not verify.
    BAD_SIGNATURE = "bad_signature"
    #: The interval was already finished (aggregated or declared unavailable) or pruned.
    CLOSED = "closed"
    #: More intervals open at once than the aggregator holds.
    TOO_MANY_OPEN = "too_many_open"
    #: Some roster meters did not report: the masks do not cancel, no aggregate exists.
    MISSING_METERS = "missing_meters"


class ShareRejected(MarketError):
    """A masked share was refused, or an interval's aggregate is unavailable."""

    def __init__(self, reason: ShareReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: ShareReject = reason


# -- the market's ledger transaction kinds (offer, accept, cancel) ----------------------------------


class MarketReject(enum.Enum):
    """Why an offer, accept or cancel transaction broke a market rule (docs/market.md,
    "Ledger kinds"). Ledger rules these kinds share with transfers (rings, key images, range
    proof, balance) keep their ledger reasons (``TxRejected``)."""

    #: The view the transaction was checked against holds no market state (our misuse).
    NO_MARKET_STATE = "no_market_state"
    #: An input, output or named asset of a kind or interval range the rules do not allow.
    WRONG_ASSET = "wrong_asset"
    #: The block time is at or after the interval's gate closure.
    GATE_CLOSED = "gate_closed"
    #: The block time is at or after the offer's expiry.
    OFFER_EXPIRED = "offer_expired"
    #: No offer with this id is on the ledger.
    UNKNOWN_OFFER = "unknown_offer"
    #: The offer was cancelled or is completely filled.
    OFFER_CLOSED = "offer_closed"
    #: The accept or cancel names another sequence number than the offer's next one.
    STALE_SEQUENCE = "stale_sequence"
    #: The fill is larger than the offer's remaining power.
    OVER_FILL = "over_fill"
    #: A public-amount output differs from the one the rules derive.
    BAD_PUBLIC_OUTPUT = "bad_public_output"
    #: A fee larger than the proceeds it is taken from.
    FEE_EXCEEDS_PROCEEDS = "fee_exceeds_proceeds"
    #: The cancel is not signed by the offer's cancel key.
    BAD_CANCEL_SIGNATURE = "bad_cancel_signature"
    #: Two transactions of one block act on one offer (the market book's last line).
    CONFLICT = "conflict"
    #: The offer claims a reputation tier but carries no gate (tier list and proof).
    GATE_MISSING = "gate_missing"
    #: The offer carries a gate but claims no tier (tier 0).
    GATE_UNEXPECTED = "gate_unexpected"
    #: The gate's tier list is of another tier than the offer claims.
    TIER_MISMATCH = "tier_mismatch"
    #: The gate's tier list is not signed by the network's DSO.
    BAD_TIER_LIST = "bad_tier_list"
    #: The reputation proof does not verify for this offer and tier list.
    BAD_REPUTATION_PROOF = "bad_reputation_proof"
    #: The tier list is neither of the block time's reputation epoch nor of the one before.
    STALE_TIER_LIST = "stale_tier_list"
    #: A notice (or the price policy it carries) is not signed by the genesis DSO key.
    BAD_NOTICE_SIGNATURE = "bad_notice_signature"


class MarketTxRejected(TxRejected):
    """A market transaction broke a market rule; ``reason`` says which.

    A ``TxRejected`` with the market's reason enum: the ledger refuses, counts and logs it by
    ``reason.value`` like its own refusals.
    """

    def __init__(self, reason: MarketReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: MarketReject = reason


# -- the metering service ------------------------------------------------------------------------


class MeteringFault(enum.Enum):
    """Why a metering call cannot be answered on this node."""

    #: ``meter.*``: this node runs no meter (it is not a prosumer).
    NOT_A_METER = "not_a_meter"
    #: ``dso.*`` metering calls: this node is not the DSO.
    NOT_THE_DSO = "not_the_dso"
    #: A range of intervals that is empty, reversed or too long to answer at once.
    BAD_RANGE = "bad_range"


class MeteringUnavailable(MarketError):
    """A metering call was made on a node that cannot answer it, or with a bad range."""

    def __init__(self, reason: MeteringFault, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: MeteringFault = reason


# -- delivery reports and the DSO's settlement desk --------------------------------------------------


class DeliveryReject(enum.Enum):
    """Why the DSO's settlement desk refused a meter's delivery report (``delivery.py``)."""

    #: The report's meter key is not a registered (and enrolled) meter.
    UNKNOWN_METER = "unknown_meter"
    #: The meter signature, or a claim's cancel-key signature, does not verify, or a claimed
    #: offer has no known cancel key.
    BAD_SIGNATURE = "bad_signature"
    #: A claimed offer id was already claimed, by this or any report, ever.
    DUPLICATE_CLAIM = "duplicate_claim"
    #: The meter already reported for this interval (one report names all its offers).
    DUPLICATE_REPORT = "duplicate_report"
    #: A claimed offer's trades are not sales by its maker (a BUY offer).
    NOT_SELLER = "not_seller"
    #: A claimed offer has no trade in the report's interval.
    NO_TRADES = "no_trades"
    #: The reported delivery exceeds the power of the claimed trades.
    DELIVERED_ABOVE_SOLD = "delivered_above_sold"
    #: The report's interval was settled already.
    ALREADY_SETTLED = "already_settled"


class DeliveryRejected(MarketError):
    """A delivery report was refused; nothing of it was recorded."""

    def __init__(self, reason: DeliveryReject, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason: DeliveryReject = reason
