"""DSO notices on the ledger: price policies and feeder limits (SPEC §4.7 "price policies and
feeder limits are posted on the ledger"; issue 7 item 1).

A ``notice`` is a ledger transaction kind with no inputs and no outputs: one record the DSO
publishes, signed with its genesis key, so that every node (and every auditor of the ledger)
holds the same price policy and feeder limits the DSO applies, final and ordered like any
transaction. Topics:

* ``price_policy`` — a :class:`~petranode.market.billing.PricePolicy` (itself DSO-signed): the
  tariff of one billing period, as meters bill against it;
* ``feeder_limit`` — a :class:`~petranode.market.registry.FeederLimit`: the most production and
  consumption the DSO issues on one feeder per interval.

Wire form: ``[1, "notice", [1, topic, issued_ms, body], [signature]]``; the signature is the
DSO's Ed25519 signature over ``signing_bytes(NOTICE_DOMAIN, network_id, prefix digest)``. The
body must decode as its topic's record. ``issued_ms`` (the DSO's clock) orders notices of one
key (a feeder, a period) and makes each one's hash unique; the ledger refuses a transaction
whose hash it holds, so a notice cannot be replayed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, final

from petranode.crypto.group import G, Point
from petranode.ledger.state import LedgerView
from petranode.ledger.tx import MAX_TX_BYTES, LedgerParams, TxOutput, encode_tx, prefix_digest
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.market.billing import PricePolicy
from petranode.market.errors import MarketRecordInvalid, MarketReject, MarketTxRejected
from petranode.market.registry import FeederLimit
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value

NOTICE_DOMAIN: Final = "petranode/market/notice/v1"
NOTICE_VERSION: Final = 1
#: A price policy with a 1440-slot tariff is about 14.5 KB; 16 KiB bounds every body.
MAX_NOTICE_BODY: Final = 16 * 1024
SIGNATURE_BYTES: Final = 64
_MAX_TIME_MS: Final = 2**63 - 1


class NoticeTopic(enum.Enum):
    PRICE_POLICY = "price_policy"
    FEEDER_LIMIT = "feeder_limit"


def notice_key(topic: NoticeTopic, body: bytes) -> str:
    """What a notice is about: the feeder, or the first interval of the policy's period. The
    body must already be known to decode."""
    if topic is NoticeTopic.FEEDER_LIMIT:
        return FeederLimit.decode(body).feeder
    return str(PricePolicy.decode(body).first_interval)


def _check_body(topic: NoticeTopic, body: bytes) -> None:
    try:
        notice_key(topic, body)
    except MarketRecordInvalid as exc:
        raise TxRejected(TxReject.MALFORMED, f"{topic.value} body") from exc


@final
@dataclass(frozen=True, slots=True)
class Notice:
    """One DSO record on the ledger."""

    KIND: ClassVar[str] = "notice"

    topic: NoticeTopic
    issued_ms: int
    body: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.issued_ms <= _MAX_TIME_MS:
            raise TxRejected(TxReject.MALFORMED, "issued_ms")
        if not 1 <= len(self.body) <= MAX_NOTICE_BODY:
            raise TxRejected(TxReject.MALFORMED, "body size")
        if len(self.signature) != SIGNATURE_BYTES:
            raise TxRejected(TxReject.MALFORMED, "signature is 64 bytes")
        _check_body(self.topic, self.body)

    @classmethod
    def issue(cls, dso: Signer, network_id: str, topic: NoticeTopic, body: bytes,
              issued_ms: int) -> Notice:
        unsigned = cls(topic, issued_ms, body, bytes(SIGNATURE_BYTES))
        return cls(topic, issued_ms, body,
                   dso.sign(NOTICE_DOMAIN, network_id, unsigned.digest(network_id)))

    def digest(self, network_id: str) -> bytes:
        return prefix_digest(self.KIND, self.prefix_fields(), network_id)

    @property
    def key(self) -> str:
        return notice_key(self.topic, self.body)

    # -- the Tx protocol: no inputs, no outputs --------------------------------------------------

    @property
    def outputs(self) -> tuple[TxOutput, ...]:
        return ()

    @property
    def tx_public(self) -> Point:
        # Nothing is paid, so no transaction key; wallets scanning it find no output.
        return G

    @property
    def fee(self) -> int:
        return 0

    def key_images(self) -> tuple[bytes, ...]:
        return ()

    def ring_members(self) -> tuple[tuple[bytes, int], ...]:
        return ()

    def prefix_fields(self) -> list[Encodable]:
        return [NOTICE_VERSION, self.topic.value, self.issued_ms, self.body]

    def witness_fields(self) -> list[Encodable]:
        return [self.signature]

    @classmethod
    def from_fields(cls, prefix: Value, witness: Value) -> Notice:
        p = codec.expect_list(prefix, 4, what="notice prefix")
        if codec.expect_int(p[0], 0, 255, what="version") != NOTICE_VERSION:
            raise TxRejected(TxReject.UNSUPPORTED_VERSION, "notice")
        try:
            topic = NoticeTopic(codec.expect_str(p[1], max_len=16, what="topic"))
        except ValueError as exc:
            raise TxRejected(TxReject.MALFORMED, "topic") from exc
        w = codec.expect_list(witness, 1, what="notice witness")
        return cls(topic, codec.expect_int(p[2], 0, _MAX_TIME_MS, what="issued_ms"),
                   codec.expect_bytes(p[3], max_size=MAX_NOTICE_BODY, what="body"),
                   codec.expect_bytes(w[0], SIGNATURE_BYTES, what="signature"))

    def validate_basic(self, params: LedgerParams) -> None:
        if len(encode_tx(self)) > MAX_TX_BYTES:
            raise TxRejected(TxReject.OVERSIZED)

    def check_state(self, view: LedgerView, params: LedgerParams) -> None:
        pass  # a notice reads no state; its hash keeps it from being replayed

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None:
        if not signing.verify(params.dso_signing_key, self.signature, NOTICE_DOMAIN,
                              params.network_id, self.digest(params.network_id)):
            raise MarketTxRejected(MarketReject.BAD_NOTICE_SIGNATURE)
        if self.topic is NoticeTopic.PRICE_POLICY:
            try:
                PricePolicy.decode(self.body).verify(params.dso_signing_key, params.network_id)
            except MarketRecordInvalid as exc:
                raise MarketTxRejected(MarketReject.BAD_NOTICE_SIGNATURE,
                                       "price policy") from exc
