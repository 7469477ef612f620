"""Ledger transactions: records, canonical encoding and validation (SPEC §2, §4.5, §4.6).

Every transaction is the canonical msgpack array ``[version, kind, prefix, witness]``:

* ``prefix`` is everything but signatures and proofs (inputs with their rings, key images and
  pseudo-outputs; outputs; the transaction public key R; the fee). Its hash, under a domain tag
  and the network id, is :func:`prefix_hash`.
* ``witness`` holds the CLSAGs, the one aggregated Bulletproofs+ proof and the DSO signature.
  It is decoded only after the prefix, which fixes every witness length (a CLSAG is
  ``32·(ring size + 2)`` bytes, a proof is fixed by the number of outputs), so nothing is
  parsed from a length an attacker chose.
* What every CLSAG and the DSO's signature sign is :func:`signed_message`: the prefix hash and
  the hash of the range proof, as Monero's ``get_pre_mlsag_hash`` binds the proof into the
  ring signatures' message. So :func:`tx_hash`, the SHA-256 of the whole encoding, cannot be
  changed by anyone but the signers: a recipient who knows every output's mask could make
  another valid range proof, but not re-sign it.

Kinds are strings looked up in a :class:`TxRegistry` — ``issuance`` and ``transfer`` here;
the market adds its own (offers, acceptances) with :meth:`TxRegistry.with_kind`, each kind a
class that satisfies :class:`Tx` and so carries its own validation.

Validation runs in tiers (CometBFT ``types/``, STYLE: errors), every refusal a
:class:`~petranode.ledger.tx_errors.TxRejected` with an enum reason:

1. ``validate_basic(params)`` — counts, sizes, ring sizes, no key image twice: no state, no
   cryptography beyond decoding.
2. ``check_state(view, params)`` — against the ledger: ring members exist, are of the input's
   asset and old enough; key images unspent. Cheap lookups, so they run before:
3. ``verify_signatures(view, params)`` — CLSAGs over the ring members the view returns, the
   range proof, the balance per asset, the DSO's signature.

:func:`validate_tx` runs all three, in that order, plus the replay check every kind shares.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, Protocol, final

from petranode.crypto import balance, bpplus, clsag
from petranode.crypto.clsag import Clsag
from petranode.crypto.decoys import DEFAULT_MIN_RING_SIZE
from petranode.crypto.ecdh import ENCRYPTED_AMOUNT_BYTES, EcdhInfo
from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point
from petranode.crypto.keyimage import KeyImage
from petranode.crypto.pedersen import MAX_AMOUNT
from petranode.ledger.assets import ASSET_ID_BYTES, MONEY
from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.net import signing
from petranode.wire import codec
from petranode.wire.codec import Encodable, Value
from petranode.wire.errors import DecodeError

if TYPE_CHECKING:
    from petranode.genesis import Genesis
    from petranode.ledger.state import LedgerView

log = logging.getLogger(__name__)

TX_VERSION: Final = 1
#: Domain of :func:`prefix_hash`.
PREFIX_DOMAIN: Final = "petranode/tx-prefix/v1"
#: Domain of :func:`signed_message`, what CLSAGs sign.
MESSAGE_DOMAIN: Final = "petranode/tx-message/v1"
#: Domain of the DSO's Ed25519 signature of an issuance's :func:`signed_message`.
ISSUANCE_DOMAIN: Final = "petranode/issuance/v1"

#: Monero's BULLETPROOF_PLUS_MAX_OUTPUTS: one aggregated proof covers at most 16 outputs.
MAX_OUTPUTS: Final = bpplus.MAX_OUTPUTS
#: Inputs per transfer. 16 keeps the worst case (16 CLSAGs of MAX_RING_SIZE) under
#: MAX_TX_BYTES and its verification near a second on one core.
MAX_INPUTS: Final = 16
#: Largest ring a ledger accepts: 8× Monero's 16, ample for §2's "high minimum ring size".
MAX_RING_SIZE: Final = 128
#: Largest encoded transaction. The worst legal transfer is 16 inputs with rings of 128
#: (16 × 130 × 32 B of CLSAG ≈ 66 KiB, ≈ 10 KiB of ring offsets) plus 16 outputs and a proof.
MAX_TX_BYTES: Final = 96 * 1024
#: Global output indices are SQLite INTEGERs (signed 64-bit).
MAX_GLOBAL_INDEX: Final = 2**63 - 1
SIGNATURE_BYTES: Final = 64
ED25519_KEY_BYTES: Final = 32
_KIND_MAX_LEN: Final = 32


@final
@dataclass(frozen=True, slots=True)
class LedgerParams:
    """What validation needs from the genesis: every node of a network uses the same."""

    network_id: str
    #: The DSO's Ed25519 key; only it may sign DSO-only kinds (issuance).
    dso_signing_key: bytes
    #: SPEC §4.5: a network parameter, default 16 (Monero's).
    min_ring_size: int = DEFAULT_MIN_RING_SIZE
    max_ring_size: int = MAX_RING_SIZE
    #: Blocks an output must be buried under before it can be a ring member: 1 means "in an
    #: earlier block". Monero waits 10 blocks because its chain reorganises; a BFT-final
    #: ledger does not, so the default only forbids spending within the creating block.
    spendable_age: int = 1

    def __post_init__(self) -> None:
        if len(self.dso_signing_key) != ED25519_KEY_BYTES:
            raise ValueError("the DSO signing key is 32 bytes")
        if not 1 <= self.min_ring_size <= self.max_ring_size <= MAX_RING_SIZE:
            raise ValueError("ring sizes must satisfy 1 <= min <= max <= 128")
        if self.spendable_age < 1:
            raise ValueError("spendable_age is at least 1")

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> LedgerParams:
        return cls(genesis.network_id, genesis.dso.signing_key, genesis.params.min_ring_size)


# -- the kind protocol and hashing ---------------------------------------------------------


class Tx(Protocol):
    """A transaction kind: a frozen record that encodes itself and knows its own rules."""

    KIND: ClassVar[str]

    @property
    def outputs(self) -> tuple[TxOutput, ...]:
        """Outputs the transaction creates, in order (their ``output_index``)."""
        ...

    @property
    def tx_public(self) -> Point:
        """R, from which recipients derive their one-time keys."""
        ...

    @property
    def fee(self) -> int:
        """Money (cents) paid to validators; 0 for kinds without a fee."""
        ...

    def key_images(self) -> tuple[bytes, ...]:
        """The key images this transaction spends."""
        ...

    def ring_members(self) -> tuple[tuple[bytes, int], ...]:
        """Every (asset id, global index) its validation reads: what a snapshot must hold."""
        ...

    def prefix_fields(self) -> list[Encodable]: ...

    def witness_fields(self) -> list[Encodable]: ...

    def validate_basic(self, params: LedgerParams) -> None: ...

    def check_state(self, view: LedgerView, params: LedgerParams) -> None: ...

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None: ...


def encode_tx(tx: Tx) -> bytes:
    """The canonical bytes of ``tx``: ``[version, kind, prefix, witness]``."""
    return codec.encode([TX_VERSION, tx.KIND, tx.prefix_fields(), tx.witness_fields()])


def tx_hash(tx: Tx) -> bytes:
    """SHA-256 of the full encoding: the transaction's id."""
    return hashlib.sha256(encode_tx(tx)).digest()


def prefix_hash(tx: Tx, network_id: str) -> bytes:
    """The hash of everything but signatures and proofs, bound to a domain and the network."""
    return prefix_digest(tx.KIND, tx.prefix_fields(), network_id)


def prefix_digest(kind: str, prefix: list[Encodable], network_id: str) -> bytes:
    """:func:`prefix_hash` from a kind's prefix fields, for builders that sign before the
    record exists: ``SHA-256(signing_bytes(PREFIX_DOMAIN, network_id, [version, kind, prefix]))``."""
    encoded = codec.encode([TX_VERSION, kind, prefix])
    return hashlib.sha256(signing.signing_bytes(PREFIX_DOMAIN, network_id, encoded)).digest()


def signed_message(prefix_digest: bytes, range_proof: bpplus.BulletproofPlus,
                   network_id: str) -> bytes:
    """What a transaction's signatures sign: its prefix hash bound to its range proof,
    ``SHA-256(signing_bytes(MESSAGE_DOMAIN, network_id, prefix_hash ‖ SHA-256(proof)))``."""
    proof_digest = hashlib.sha256(range_proof.encode()).digest()
    payload = prefix_digest + proof_digest
    return hashlib.sha256(signing.signing_bytes(MESSAGE_DOMAIN, network_id, payload)).digest()


def issuance_prefix(outputs: Sequence[TxOutput], tx_public: Point) -> list[Encodable]:
    """The prefix fields of an issuance: ``[outputs, R]``."""
    return [[o.to_value() for o in outputs], tx_public.raw]


def input_prefix(
    asset_id: bytes, ring: Sequence[int], key_image: KeyImage, pseudo_out: Point
) -> list[Encodable]:
    """The prefix fields of one input: ``[asset id, ring offsets, key image, pseudo-out]``."""
    return [asset_id, encode_ring(ring), key_image.point.raw, pseudo_out.raw]


def transfer_prefix(
    inputs: Sequence[list[Encodable]], outputs: Sequence[TxOutput], tx_public: Point, fee: int
) -> list[Encodable]:
    """The prefix fields of a transfer: ``[inputs, outputs, R, fee]``."""
    return [list(inputs), [o.to_value() for o in outputs], tx_public.raw, fee]


# -- outputs and inputs -----------------------------------------------------------------


def _point(raw: Value, what: str) -> Point:
    """A non-identity point of the prime-order subgroup, as every ledger point must be."""
    return Point.from_bytes(codec.expect_bytes(raw, 32, what=what))


def _asset_id(raw: Value) -> bytes:
    return codec.expect_bytes(raw, ASSET_ID_BYTES, what="asset id")


def check_point(p: Point, what: str) -> None:
    """A public key a transaction carries: in the prime-order subgroup, not the identity."""
    if not p.in_subgroup or p.is_identity():
        raise TxRejected(TxReject.MALFORMED, f"{what} outside the prime-order subgroup")


@final
@dataclass(frozen=True, slots=True)
class TxOutput:
    """One output: its asset, one-time key and view tag, amount commitment, encrypted amount."""

    asset_id: bytes
    one_time_key: Point
    view_tag: int
    commitment: Point
    ecdh: EcdhInfo

    def __post_init__(self) -> None:
        if len(self.asset_id) != ASSET_ID_BYTES:
            raise TxRejected(TxReject.MALFORMED, "asset id is 32 bytes")
        if not 0 <= self.view_tag <= 0xFF:
            raise TxRejected(TxReject.MALFORMED, "view tag is one byte")
        check_point(self.one_time_key, "one-time key")
        check_point(self.commitment, "commitment")

    def to_value(self) -> list[Encodable]:
        return [
            self.asset_id,
            self.one_time_key.raw,
            self.view_tag,
            self.commitment.raw,
            self.ecdh.encode(),
        ]

    @classmethod
    def from_value(cls, value: Value) -> TxOutput:
        f = codec.expect_list(value, 5, what="output")
        return cls(
            _asset_id(f[0]),
            _point(f[1], "one-time key"),
            codec.expect_int(f[2], 0, 0xFF, what="view tag"),
            _point(f[3], "commitment"),
            EcdhInfo(codec.expect_bytes(f[4], ENCRYPTED_AMOUNT_BYTES, what="ecdh")),
        )


def encode_ring(ring: Sequence[int]) -> list[int]:
    """Absolute indices → Monero's key offsets: the first index, then each difference."""
    return [ring[0], *(b - a for a, b in itertools.pairwise(ring))]


def decode_ring(offsets: Sequence[int]) -> tuple[int, ...]:
    """Key offsets → absolute indices (a running sum)."""
    ring: list[int] = []
    total = 0
    for offset in offsets:
        total += offset
        ring.append(total)
    return tuple(ring)


@final
@dataclass(frozen=True, slots=True)
class TxInput:
    """One spent output, hidden in a ring of outputs of the same asset.

    ``ring`` holds absolute global output indices of ``asset_id``, strictly increasing; on the
    wire they are delta-encoded like Monero's key offsets (each after the first ≥ 1), which is
    shorter and makes "sorted and unique" a property of the encoding itself.
    """

    asset_id: bytes
    ring: tuple[int, ...]
    key_image: KeyImage
    pseudo_out: Point
    signature: Clsag

    def __post_init__(self) -> None:
        if len(self.asset_id) != ASSET_ID_BYTES:
            raise TxRejected(TxReject.MALFORMED, "asset id is 32 bytes")
        if not 1 <= len(self.ring) <= MAX_RING_SIZE:
            raise TxRejected(TxReject.BAD_RING_SIZE)
        if self.ring[0] < 0 or self.ring[-1] > MAX_GLOBAL_INDEX:
            raise TxRejected(TxReject.MALFORMED, "ring index out of range")
        if any(a >= b for a, b in itertools.pairwise(self.ring)):
            raise TxRejected(TxReject.RING_NOT_SORTED)
        if self.signature.ring_size != len(self.ring):
            raise TxRejected(TxReject.MALFORMED, "CLSAG size differs from the ring's")
        check_point(self.pseudo_out, "pseudo-output")

    def prefix_value(self) -> list[Encodable]:
        return input_prefix(self.asset_id, self.ring, self.key_image, self.pseudo_out)

    @classmethod
    def from_values(cls, prefix: Value, signature: Value) -> TxInput:
        f = codec.expect_list(prefix, 4, what="input")
        raw_offsets = codec.expect_list(f[1], what="ring")
        if not 1 <= len(raw_offsets) <= MAX_RING_SIZE:
            raise TxRejected(TxReject.BAD_RING_SIZE)
        offsets = [
            codec.expect_int(o, 0 if i == 0 else 1, MAX_GLOBAL_INDEX, what="ring offset")
            for i, o in enumerate(raw_offsets)
        ]
        ring = decode_ring(offsets)
        size = clsag.Clsag.encoded_size(len(ring))
        return cls(
            _asset_id(f[0]),
            ring,
            KeyImage.from_bytes(codec.expect_bytes(f[2], 32, what="key image")),
            _point(f[3], "pseudo-output"),
            Clsag.decode(codec.expect_bytes(signature, size, what="clsag"), len(ring)),
        )


def check_private_shape(inputs: Sequence[TxInput], hidden_outputs: Sequence[TxOutput], fee: int,
                        tx_public: Point, range_proof: bpplus.BulletproofPlus) -> None:
    """The bounds every kind with ring inputs and range-proven outputs shares (transfers and
    the market's kinds): counts, fee, R, and a proof sized for the outputs."""
    if not 1 <= len(inputs) <= MAX_INPUTS:
        raise TxRejected(TxReject.BAD_COUNT, "inputs")
    if not 1 <= len(hidden_outputs) <= MAX_OUTPUTS:
        raise TxRejected(TxReject.BAD_COUNT, "outputs")
    if not 0 <= fee <= MAX_AMOUNT:
        raise TxRejected(TxReject.BAD_FEE)
    check_point(tx_public, "tx public key")
    if len(range_proof.L) != bpplus.rounds_for(len(hidden_outputs)):
        raise TxRejected(TxReject.MALFORMED, "range proof size differs from outputs'")


#: Blocks after which an output counts towards the ring size its asset's spends must reach. A
#: wallet rings all outputs it knows of an asset with fewer than the minimum; outputs that
#: arrive while its transaction waits (for up to this many blocks) do not make it invalid.
RING_GRACE_BLOCKS: Final = 10


def settled_height(height: int) -> int:
    """The newest height whose outputs count for the ring rule of the block after
    ``height``."""
    return height + 1 - RING_GRACE_BLOCKS


def required_ring_size(min_ring_size: int, ring: Sequence[int]) -> int:
    """The smallest ring allowed by its shape alone: ``min_ring_size``, or every output of
    the asset up to the ring's newest member when there are fewer. An energy asset covers one
    interval and has a handful of outputs, never 16; a ring of all of them hides the spender
    among every holder of the asset, the most it can. ``check_ring_state`` adds that a small
    ring must cover every settled output of its asset, so an old output cannot be spent in a
    tiny ring of its contemporaries (Monero's zero-mixin problem)."""
    return min(min_ring_size, max(ring) + 1)


def check_ring_basic(inputs: Sequence[TxInput], key_images: Sequence[bytes],
                     hidden: Sequence[TxOutput], params: LedgerParams) -> None:
    """The stateless rules of ring inputs: unique key images, ring sizes, and hidden outputs
    only of spent assets (an asset that is only output could still "balance" with
    zero-amount outputs whose masks cancel)."""
    if len(set(key_images)) != len(key_images):
        raise TxRejected(TxReject.DUPLICATE_KEY_IMAGE)
    for inp in inputs:
        if not required_ring_size(params.min_ring_size, inp.ring) <= len(inp.ring) \
                <= params.max_ring_size:
            raise TxRejected(TxReject.BAD_RING_SIZE)
    spent = {i.asset_id for i in inputs}
    if any(o.asset_id not in spent for o in hidden):
        raise TxRejected(TxReject.IMBALANCED, "output of an asset no input spends")


def check_ring_state(inputs: Sequence[TxInput], key_images: Sequence[bytes], view: LedgerView,
                     params: LedgerParams) -> None:
    """The stateful rules of ring inputs: key images unspent, ring members exist, are of the
    input's asset and are mature."""
    for key_image in key_images:
        if view.key_image_spent(key_image):
            raise TxRejected(TxReject.KEY_IMAGE_SPENT)
    newest_allowed = view.height() + 1 - params.spendable_age
    for inp in inputs:
        if len(inp.ring) < min(params.min_ring_size, view.settled_output_count(inp.asset_id)):
            raise TxRejected(TxReject.BAD_RING_SIZE, "fewer members than settled outputs")
        for index in inp.ring:
            record = view.output(inp.asset_id, index)
            if record is None:
                raise TxRejected(TxReject.UNKNOWN_RING_MEMBER)
            if record.asset_id != inp.asset_id:
                raise TxRejected(TxReject.RING_ASSET_MISMATCH)
            if record.height > newest_allowed:
                raise TxRejected(TxReject.IMMATURE_RING_MEMBER)


def decode_inputs(prefix: Value, signatures: Value) -> tuple[TxInput, ...]:
    """Ring inputs from their prefix values and their signatures, counts checked first."""
    raw = codec.expect_list(prefix, what="inputs")
    if not 1 <= len(raw) <= MAX_INPUTS:
        raise TxRejected(TxReject.BAD_COUNT, "inputs")
    sigs = codec.expect_list(signatures, len(raw), what="signatures")
    return tuple(TxInput.from_values(i, s) for i, s in zip(raw, sigs, strict=True))


def _proof_value(value: Value, n_outputs: int) -> bpplus.BulletproofPlus:
    size = bpplus.proof_size(n_outputs)
    return bpplus.BulletproofPlus.decode(
        codec.expect_bytes(value, size, what="range proof"), n_outputs
    )


def _outputs_value(value: Value) -> tuple[TxOutput, ...]:
    items = codec.expect_list(value, what="outputs")
    if not 1 <= len(items) <= MAX_OUTPUTS:
        raise TxRejected(TxReject.BAD_COUNT, "outputs")
    return tuple(TxOutput.from_value(v) for v in items)


def _check_encoded_size(tx: Tx) -> None:
    if len(encode_tx(tx)) > MAX_TX_BYTES:
        raise TxRejected(TxReject.OVERSIZED)


def _verify_range_proof(tx: Transfer | Issuance) -> None:
    if not bpplus.verify([o.commitment for o in tx.outputs], tx.range_proof):
        raise TxRejected(TxReject.BAD_RANGE_PROOF)


# -- kinds --------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Issuance:
    """DSO-only: new assets posted to prosumers' one-time addresses (SPEC §2, §4.7).

    Amounts stay hidden like any other output's; the range proof shows each is below 2⁶⁴
    and the DSO's Ed25519 signature over :func:`signed_message` shows who issued them.
    """

    KIND: ClassVar[str] = "issuance"

    outputs: tuple[TxOutput, ...]
    tx_public: Point
    range_proof: bpplus.BulletproofPlus
    dso_signature: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.outputs) <= MAX_OUTPUTS:
            raise TxRejected(TxReject.BAD_COUNT, "outputs")
        check_point(self.tx_public, "tx public key")
        if len(self.range_proof.L) != bpplus.rounds_for(len(self.outputs)):
            raise TxRejected(TxReject.MALFORMED, "range proof size differs from outputs'")
        if len(self.dso_signature) != SIGNATURE_BYTES:
            raise TxRejected(TxReject.MALFORMED, "signature is 64 bytes")

    @property
    def fee(self) -> int:
        return 0

    def key_images(self) -> tuple[bytes, ...]:
        return ()

    def ring_members(self) -> tuple[tuple[bytes, int], ...]:
        return ()

    def prefix_fields(self) -> list[Encodable]:
        return issuance_prefix(self.outputs, self.tx_public)

    def witness_fields(self) -> list[Encodable]:
        return [self.range_proof.encode(), self.dso_signature]

    @classmethod
    def from_fields(cls, prefix: Value, witness: Value) -> Issuance:
        p = codec.expect_list(prefix, 2, what="issuance prefix")
        w = codec.expect_list(witness, 2, what="issuance witness")
        outputs = _outputs_value(p[0])
        return cls(
            outputs,
            _point(p[1], "tx public key"),
            _proof_value(w[0], len(outputs)),
            codec.expect_bytes(w[1], SIGNATURE_BYTES, what="signature"),
        )

    def validate_basic(self, params: LedgerParams) -> None:
        _check_encoded_size(self)

    def check_state(self, view: LedgerView, params: LedgerParams) -> None:
        """Nothing beyond the replay check :func:`validate_tx` makes for every kind."""

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None:
        message = signed_message(prefix_hash(self, params.network_id), self.range_proof,
                                 params.network_id)
        if not signing.verify(
            params.dso_signing_key, self.dso_signature, ISSUANCE_DOMAIN, params.network_id,
            message,
        ):
            raise TxRejected(TxReject.NOT_DSO)
        _verify_range_proof(self)


@final
@dataclass(frozen=True, slots=True)
class Transfer:
    """A private RingCT transfer of one or more assets, with a public fee in money.

    Each input proves with a CLSAG that it spends one member of its ring (of its own asset)
    and that its pseudo-output commits to that member's amount; the pseudo-outputs of each
    asset balance that asset's outputs (plus the fee, for money). Several assets in one
    transfer make an atomic trade (SPEC §4.7).
    """

    KIND: ClassVar[str] = "transfer"

    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    tx_public: Point
    fee: int
    range_proof: bpplus.BulletproofPlus
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
        return transfer_prefix(
            [i.prefix_value() for i in self.inputs], self.outputs, self.tx_public, self.fee
        )

    def witness_fields(self) -> list[Encodable]:
        return [[i.signature.encode() for i in self.inputs], self.range_proof.encode()]

    @classmethod
    def from_fields(cls, prefix: Value, witness: Value) -> Transfer:
        p = codec.expect_list(prefix, 4, what="transfer prefix")
        w = codec.expect_list(witness, 2, what="transfer witness")
        inputs = decode_inputs(p[0], w[0])
        outputs = _outputs_value(p[1])
        return cls(
            inputs,
            outputs,
            _point(p[2], "tx public key"),
            codec.expect_int(p[3], 0, MAX_AMOUNT, what="fee"),
            _proof_value(w[1], len(outputs)),
        )

    def validate_basic(self, params: LedgerParams) -> None:
        check_ring_basic(self.inputs, self._key_images, self.outputs, params)
        if self.fee and MONEY.asset_id not in {i.asset_id for i in self.inputs}:
            raise TxRejected(TxReject.IMBALANCED, "a fee needs a money input")
        _check_encoded_size(self)

    def check_state(self, view: LedgerView, params: LedgerParams) -> None:
        check_ring_state(self.inputs, self._key_images, view, params)

    def verify_signatures(self, view: LedgerView, params: LedgerParams) -> None:
        # Cheapest first: the balance is a few additions, the proof one multi-exponentiation,
        # each CLSAG two per ring member.
        for asset_id in {i.asset_id for i in self.inputs}:
            pseudo = [i.pseudo_out for i in self.inputs if i.asset_id == asset_id]
            outs = [o.commitment for o in self.outputs if o.asset_id == asset_id]
            fee = self.fee if asset_id == MONEY.asset_id else 0
            if not balance.check_balance(pseudo, outs, fee):
                raise TxRejected(TxReject.IMBALANCED)
        _verify_range_proof(self)
        message = signed_message(prefix_hash(self, params.network_id), self.range_proof,
                                 params.network_id)
        for inp in self.inputs:
            ring = []
            for index in inp.ring:
                record = view.output(inp.asset_id, index)
                if record is None or record.asset_id != inp.asset_id:
                    raise TxRejected(TxReject.UNKNOWN_RING_MEMBER)
                ring.append((record.one_time_key, record.commitment))
            if not clsag.verify(message, ring, inp.pseudo_out, inp.key_image, inp.signature):
                raise TxRejected(TxReject.BAD_RING_SIGNATURE)


# -- registry and the decoder ----------------------------------------------------------------

#: Builds a kind's record from its decoded prefix and witness; raises TxRejected or the
#: errors of :data:`_DECODE_ERRORS`, which :meth:`TxRegistry.decode` turns into MALFORMED.
TxDecoder = Callable[[Value, Value], Tx]
_DECODE_ERRORS: Final = (DecodeError, CryptoError, ValueError)


@final
@dataclass(frozen=True, slots=True)
class TxRegistry:
    """The transaction kinds a ledger accepts, by name. Immutable: extend with
    :meth:`with_kind`, which returns a new registry (no global mutable state)."""

    decoders: Mapping[str, TxDecoder]

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoders", types.MappingProxyType(dict(self.decoders)))

    def with_kind(self, kind: str, decoder: TxDecoder) -> TxRegistry:
        """This registry plus ``kind``; refuses to replace a kind it already has."""
        if kind in self.decoders:
            raise ValueError(f"transaction kind {kind!r} is already registered")
        if not 1 <= len(kind) <= _KIND_MAX_LEN:
            raise ValueError("kind names are 1 to 32 characters")
        return TxRegistry({**self.decoders, kind: decoder})

    def decode(self, data: bytes) -> Tx:
        """The transaction encoded by ``data``, or ``TxRejected`` — never another error."""
        if len(data) > MAX_TX_BYTES:
            raise TxRejected(TxReject.OVERSIZED)
        try:
            fields = codec.expect_list(
                codec.decode_canonical(data, max_size=MAX_TX_BYTES), 4, what="transaction"
            )
            version = codec.expect_int(fields[0], 0, 2**32, what="version")
            if version != TX_VERSION:
                raise TxRejected(TxReject.UNSUPPORTED_VERSION)
            kind = codec.expect_str(fields[1], max_len=_KIND_MAX_LEN, what="kind")
            decoder = self.decoders.get(kind)
            if decoder is None:
                raise TxRejected(TxReject.UNKNOWN_KIND)
            return decoder(fields[2], fields[3])
        except _DECODE_ERRORS as exc:
            raise TxRejected(TxReject.MALFORMED) from exc


#: The kinds of the ledger layer; the market builds on it with :meth:`TxRegistry.with_kind`.
BASE_REGISTRY: Final = TxRegistry(
    {Issuance.KIND: Issuance.from_fields, Transfer.KIND: Transfer.from_fields}
)


def validate_tx(tx: Tx, view: LedgerView, params: LedgerParams,
                signatures_verified: bool = False) -> None:
    """All three tiers, cheapest first, plus the replay check every kind shares.

    Transfers cannot be replayed (their key images would be spent), but an issuance has no
    key image: the ledger refuses any transaction whose hash it already holds.
    ``signatures_verified`` skips the third tier for bytes this node verified before: what it
    reads — the transaction and its ring members, committed outputs — never changes.
    """
    tx.validate_basic(params)
    if view.has_tx(tx_hash(tx)):
        raise TxRejected(TxReject.ALREADY_ON_LEDGER)
    tx.check_state(view, params)
    if not signatures_verified:
        tx.verify_signatures(view, params)
