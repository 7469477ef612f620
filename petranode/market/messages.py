"""What prosumers and the DSO say to each other through garlic (SPEC §4.7: "requests to the
DSO travel off-chain").

Every message is the canonical msgpack array ``[version, type, body…]`` inside a garlic
envelope of protocol ``market``, so only the two destinations read it:

* ``[1, "request", asset_request]`` — a prosumer's signed
  :class:`~petranode.market.registry.AssetRequest` (its encoding), to the DSO's destination.
* ``[1, "answer", request_id, granted, tx_hash, reason]`` — the DSO's answer to the sender's
  destination: ``granted`` with the hash of the issuance transaction it submitted, or a
  refusal with ``reason`` (a :class:`~petranode.market.errors.RequestReject` value, or
  ``"ledger"`` when the issuance could not be submitted).

The metering messages (``policy?``, ``policy``, ``commitment``, ``share``, ``bill``,
``billed``; SPEC §4.8) are listed further down and decoded by :func:`decode_metering_message`.

Decoding is bounded and strict; anything else raises ``MarketRecordInvalid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from petranode.market.errors import MarketRecordInvalid, RecordFault
from petranode.net import signing
from petranode.net.garlic.envelope import MAX_DATA_BYTES
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.errors import DecodeError

MESSAGE_VERSION: Final = 1
HASH_BYTES: Final = 32
#: An asset request is about 250 bytes; 1 KiB bounds every market message.
MAX_MESSAGE_BYTES: Final = 1024
MAX_REASON_CHARS: Final = 64
#: A meter's commitment (≤ 192 B), share (≤ 160 B) or bill (≤ 256 B), each bounded again by
#: its own decoder.
MAX_RECORD_BYTES: Final = 256


@final
@dataclass(frozen=True, slots=True)
class RequestMessage:
    request: bytes

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "request", self.request])


@final
@dataclass(frozen=True, slots=True)
class AnswerMessage:
    request_id: bytes
    granted: bool
    tx_hash: bytes = b""
    reason: str = ""

    def __post_init__(self) -> None:
        if len(self.request_id) != HASH_BYTES:
            raise ValueError("request_id is 32 bytes")
        if self.granted and (len(self.tx_hash) != HASH_BYTES or self.reason):
            raise ValueError("a grant names its 32-byte transaction hash and no reason")
        if not self.granted and (self.tx_hash or not 0 < len(self.reason) <= MAX_REASON_CHARS):
            raise ValueError("a refusal names a reason of 1 to 64 characters and no hash")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "answer", self.request_id, self.granted,
                             self.tx_hash, self.reason])


MarketMessage = RequestMessage | AnswerMessage


def decode_message(data: bytes) -> MarketMessage:
    """The message of ``data``; anything else raises ``MarketRecordInvalid``."""
    try:
        fields = codec.expect_list(codec.decode_canonical(data, max_size=MAX_MESSAGE_BYTES),
                                   what="market message")
        if not fields or codec.expect_int(fields[0], 0, 255, what="version") != MESSAGE_VERSION:
            raise MarketRecordInvalid(RecordFault.UNSUPPORTED_VERSION, "market message")
        kind = codec.expect_str(fields[1] if len(fields) > 1 else None, max_len=16,
                                what="message type")
        if kind == "request" and len(fields) == 3:
            return RequestMessage(codec.expect_bytes(fields[2], max_size=MAX_MESSAGE_BYTES,
                                                     what="request"))
        if kind == "answer" and len(fields) == 6:
            return AnswerMessage(
                codec.expect_bytes(fields[2], HASH_BYTES, what="request id"),
                codec.expect_bool(fields[3], what="granted"),
                codec.expect_bytes(fields[4], max_size=HASH_BYTES, what="tx hash"),
                codec.expect_str(fields[5], max_len=MAX_REASON_CHARS, what="reason"),
            )
        raise MarketRecordInvalid(RecordFault.MALFORMED, f"market message {kind!r}")
    except (DecodeError, ValueError) as exc:
        raise MarketRecordInvalid(RecordFault.MALFORMED, "market message") from exc


# -- metering (SPEC §4.8; docs/market.md "The metering service") ----------------------------------
#
# Also under the garlic protocol ``market``; ``metering/channel.py`` routes them by type to the
# metering service, so the market service above never sees them:
#
# * ``[1, "policy?", meter_key, interval, signature]`` — a meter asks the DSO for the price
#   policy and its feeder's roster of the billing period holding ``interval``; signed by the
#   meter key under :data:`POLICY_QUERY_DOMAIN`, so only certified meters get rosters.
# * ``[1, "policy", roster or nil, policy]`` — the DSO's answer: the encoded
#   :class:`~petranode.market.aggregate.FeederRoster` (nil when the feeder has fewer than two
#   meters, or too many for one message) and :class:`~petranode.market.billing.PricePolicy`.
# * ``[1, "commitment", record]``, ``[1, "share", record]``, ``[1, "bill", record]`` — a
#   meter's :class:`~petranode.market.meter.MeterCommitment`, masked
#   :class:`~petranode.market.aggregate.LoadShare` and :class:`~petranode.market.billing.Bill`.
# * ``[1, "billed", bill_id, verified, reason]`` — the DSO's verdict on a bill (``reason`` a
#   :class:`~petranode.market.errors.BillReject` value, empty when verified).

POLICY_QUERY_DOMAIN: Final = "petranode/market/policy-query/v1"
#: The policy answer carries a roster (≈ 34 B per meter) and a tariff (≤ 14.5 KB): one garlic
#: envelope's data at most.
MAX_METERING_MESSAGE_BYTES: Final = MAX_DATA_BYTES
_MAX_INTERVAL: Final = 2**63 - 1
METERING_KINDS: Final = frozenset({"policy?", "policy", "commitment", "share", "bill", "billed"})


@final
@dataclass(frozen=True, slots=True)
class PolicyQuery:
    meter_key: bytes
    interval: int
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.meter_key) != HASH_BYTES or len(self.signature) != 64:
            raise ValueError("a policy query has a 32-byte key and a 64-byte signature")
        if not 0 <= self.interval <= _MAX_INTERVAL:
            raise ValueError("interval out of range")

    @staticmethod
    def body(meter_key: bytes, interval: int) -> bytes:
        return codec.encode([MESSAGE_VERSION, meter_key, interval])

    @classmethod
    def create(cls, meter: Signer, network_id: str, interval: int) -> PolicyQuery:
        body = cls.body(meter.signing_key, interval)
        return cls(meter.signing_key, interval,
                   meter.sign(POLICY_QUERY_DOMAIN, network_id, body))

    def signature_valid(self, network_id: str) -> bool:
        return signing.verify(self.meter_key, self.signature, POLICY_QUERY_DOMAIN, network_id,
                              self.body(self.meter_key, self.interval))

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "policy?", self.meter_key, self.interval,
                             self.signature])


@final
@dataclass(frozen=True, slots=True)
class PolicyAnswer:
    roster: bytes | None
    policy: bytes

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "policy", self.roster, self.policy])


@final
@dataclass(frozen=True, slots=True)
class RecordMessage:
    """A meter's commitment, share or bill (``kind``), its record's encoding in ``record``."""

    kind: str
    record: bytes

    def __post_init__(self) -> None:
        if self.kind not in ("commitment", "share", "bill"):
            raise ValueError(f"not a meter record kind: {self.kind!r}")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, self.kind, self.record])


@final
@dataclass(frozen=True, slots=True)
class BilledMessage:
    bill_id: bytes
    verified: bool
    reason: str = ""

    def __post_init__(self) -> None:
        if len(self.bill_id) != HASH_BYTES:
            raise ValueError("bill_id is 32 bytes")
        if self.verified == bool(self.reason) or len(self.reason) > MAX_REASON_CHARS:
            raise ValueError("a rejection names a reason of 1 to 64 characters, a verdict none")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "billed", self.bill_id, self.verified,
                             self.reason])


MeteringMessage = PolicyQuery | PolicyAnswer | RecordMessage | BilledMessage


def message_kind(data: bytes) -> str | None:
    """The type of a market message (its second field), or None if ``data`` has none."""
    try:
        fields = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_METERING_MESSAGE_BYTES), what="message")
        return codec.expect_str(fields[1], max_len=16, what="type") if len(fields) > 1 else None
    except (DecodeError, ValueError):
        return None


def decode_metering_message(data: bytes) -> MeteringMessage:
    """The metering message of ``data``; anything else raises ``MarketRecordInvalid``."""
    try:
        fields = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_METERING_MESSAGE_BYTES),
            what="metering message")
        if not fields or codec.expect_int(fields[0], 0, 255, what="version") != MESSAGE_VERSION:
            raise MarketRecordInvalid(RecordFault.UNSUPPORTED_VERSION, "metering message")
        kind = codec.expect_str(fields[1] if len(fields) > 1 else None, max_len=16,
                                what="message type")
        n = len(fields)
        if kind == "policy?" and n == 5:
            return PolicyQuery(codec.expect_bytes(fields[2], HASH_BYTES, what="meter key"),
                               codec.expect_int(fields[3], 0, _MAX_INTERVAL, what="interval"),
                               codec.expect_bytes(fields[4], 64, what="signature"))
        if kind == "policy" and n == 4:
            roster = (None if fields[2] is None else
                      codec.expect_bytes(fields[2], max_size=MAX_METERING_MESSAGE_BYTES,
                                         what="roster"))
            return PolicyAnswer(roster, codec.expect_bytes(
                fields[3], max_size=MAX_METERING_MESSAGE_BYTES, what="policy"))
        if kind in ("commitment", "share", "bill") and n == 3:
            return RecordMessage(kind, codec.expect_bytes(fields[2], max_size=MAX_RECORD_BYTES,
                                                          what=kind))
        if kind == "billed" and n == 5:
            return BilledMessage(codec.expect_bytes(fields[2], HASH_BYTES, what="bill id"),
                                 codec.expect_bool(fields[3], what="verified"),
                                 codec.expect_str(fields[4], max_len=MAX_REASON_CHARS,
                                                  what="reason"))
        raise MarketRecordInvalid(RecordFault.MALFORMED, f"metering message {kind!r}")
    except (DecodeError, ValueError) as exc:
        raise MarketRecordInvalid(RecordFault.MALFORMED, "metering message") from exc


# -- settlement (SPEC §4.7 "settle after each interval"; docs/market.md "Settlement") -------------
#
# Also under ``market``; the channel routes them to the settlement service:
#
# * ``[1, "delivery", report]`` — a seller's :class:`~petranode.market.delivery.DeliveryReport`
#   for one interval, to the DSO.
# * ``[1, "delivered", interval, accepted, reason]`` — the DSO's verdict (``reason`` a
#   :class:`~petranode.market.errors.DeliveryReject` value, empty when accepted).
# * ``[1, "tiers?", epoch]`` — a prosumer asks for the signed tier lists of ``epoch``.
# * ``[1, "tiers", epoch, [tier_list, …]]`` — the DSO's answer: every
#   :class:`~petranode.market.reputation.TierList` it published for the epoch (none if it has
#   not published that epoch).

SETTLEMENT_KINDS: Final = frozenset({"delivery", "delivered", "tiers?", "tiers"})
#: Most tier lists in one answer (one per policy tier).
MAX_TIER_LISTS: Final = 16


@final
@dataclass(frozen=True, slots=True)
class DeliveryMessage:
    report: bytes

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "delivery", self.report])


@final
@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    interval: int
    accepted: bool
    reason: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.interval <= _MAX_INTERVAL:
            raise ValueError("interval out of range")
        if len(self.reason) > MAX_REASON_CHARS:
            raise ValueError("a reason is at most 64 characters")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "delivered", self.interval, self.accepted,
                             self.reason])


@final
@dataclass(frozen=True, slots=True)
class TiersQuery:
    epoch: int

    def __post_init__(self) -> None:
        if not 0 <= self.epoch <= _MAX_INTERVAL:
            raise ValueError("epoch out of range")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "tiers?", self.epoch])


@final
@dataclass(frozen=True, slots=True)
class TiersMessage:
    epoch: int
    tier_lists: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.tier_lists) > MAX_TIER_LISTS:
            raise ValueError(f"at most {MAX_TIER_LISTS} tier lists")

    def encode(self) -> bytes:
        return codec.encode([MESSAGE_VERSION, "tiers", self.epoch, list(self.tier_lists)])


SettlementMessage = DeliveryMessage | DeliveredMessage | TiersQuery | TiersMessage


def decode_settlement_message(data: bytes) -> SettlementMessage:
    """The settlement message of ``data``; anything else raises ``MarketRecordInvalid``."""
    try:
        fields = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_METERING_MESSAGE_BYTES),
            what="settlement message")
        if not fields or codec.expect_int(fields[0], 0, 255, what="version") != MESSAGE_VERSION:
            raise MarketRecordInvalid(RecordFault.UNSUPPORTED_VERSION, "settlement message")
        kind = codec.expect_str(fields[1] if len(fields) > 1 else None, max_len=16,
                                what="message type")
        n = len(fields)
        if kind == "delivery" and n == 3:
            return DeliveryMessage(codec.expect_bytes(
                fields[2], max_size=MAX_METERING_MESSAGE_BYTES, what="report"))
        if kind == "delivered" and n == 5:
            return DeliveredMessage(
                codec.expect_int(fields[2], 0, _MAX_INTERVAL, what="interval"),
                codec.expect_bool(fields[3], what="accepted"),
                codec.expect_str(fields[4], max_len=MAX_REASON_CHARS, what="reason"))
        if kind == "tiers?" and n == 3:
            return TiersQuery(codec.expect_int(fields[2], 0, _MAX_INTERVAL, what="epoch"))
        if kind == "tiers" and n == 4:
            lists = codec.expect_list(fields[3], what="tier lists")
            if len(lists) > MAX_TIER_LISTS:
                raise MarketRecordInvalid(RecordFault.MALFORMED, "too many tier lists")
            return TiersMessage(
                codec.expect_int(fields[2], 0, _MAX_INTERVAL, what="epoch"),
                tuple(codec.expect_bytes(t, max_size=MAX_METERING_MESSAGE_BYTES,
                                         what="tier list") for t in lists))
        raise MarketRecordInvalid(RecordFault.MALFORMED, f"settlement message {kind!r}")
    except (DecodeError, ValueError) as exc:
        raise MarketRecordInvalid(RecordFault.MALFORMED, "settlement message") from exc
