"""Consensus messages: votes, proposals and commit certificates (SPEC §4.6; CometBFT
``types/vote.go``, ``types/proposal.go``, ``types/canonical.go``).

Each signed record signs the canonical msgpack of its fields *without* the signature, under its
own versioned domain tag and the network id (:func:`petranode.net.signing.signing_bytes`), so a
prevote never passes for a precommit, a vote never for a proposal, and nothing signed on one
network verifies on another. A vote's ``block_hash`` is ``None`` for nil.

A :class:`CommitCertificate` is what makes a block final: the precommit signatures of more than
two thirds of the validators for one (height, round, block hash). It stores only the signatures
by validator index — every precommit in it has the same fields but the signer — and
:meth:`CommitCertificate.verify` rebuilds each precommit to check it. A node that syncs blocks
checks each block's certificate this way (and that the block's hash is the certificate's).

Wire forms (canonical msgpack arrays):

* vote ``[version, height, round, type, block_hash | nil, validator, signature]``;
* proposal ``[version, height, round, block_hash, pol_round, proposer, signature]``;
* certificate ``[version, height, round, block_hash, [[validator, signature], …]]``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar, final

from petranode.ledger.block import HASH_BYTES, MAX_U63, MAX_VALIDATORS
from petranode.ledger.errors import VoteFault, VoteInvalid
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

log = logging.getLogger(__name__)
_T = TypeVar("_T")

VOTE_VERSION: Final = 1
PROPOSAL_VERSION: Final = 1
CERTIFICATE_VERSION: Final = 1
VOTE_DOMAIN: Final = "petranode/vote/v1"
PROPOSAL_DOMAIN: Final = "petranode/proposal/v1"
SIGNATURE_BYTES: Final = 64
#: An encoded vote: seven fields, a 32-byte hash and a 64-byte signature fit in 128 bytes.
MAX_VOTE_BYTES: Final = 160
MAX_PROPOSAL_BYTES: Final = 160
#: An encoded certificate: at most one (index, signature) pair, ~70 bytes, per validator.
MAX_CERTIFICATE_BYTES: Final = 64 + 72 * MAX_VALIDATORS

#: How a signature is checked: ``signing.verify``'s shape, so tests can pass a cheaper seam.
Verify = Callable[[bytes, bytes, str, str, bytes], bool]


class VoteType(enum.Enum):
    """The two votes of a Tendermint round; values as in CometBFT's ``SignedMsgType``."""

    PREVOTE = 1
    PRECOMMIT = 2


def quorum(n: int) -> int:
    """The fewest of ``n`` validators that are more than two thirds of them."""
    return 2 * n // 3 + 1


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise VoteInvalid(VoteFault.MALFORMED, what)


def _is_int(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_BYTES


def _is_signature(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == SIGNATURE_BYTES


def _construct(make: Callable[[], _T]) -> _T:
    """``make()``, with a construction refusal turned into :class:`DecodeError`: a decoder's
    only outcomes are a value and the wire layer's error."""
    try:
        return make()
    except VoteInvalid as exc:
        raise DecodeError(DecodeFault.WRONG_SHAPE, exc.reason.value) from exc


def _hash_field(value: codec.Value) -> bytes | None:
    return None if value is None else codec.expect_bytes(value, HASH_BYTES, what="block_hash")


@final
@dataclass(frozen=True, slots=True)
class Vote:
    """A validator's prevote or precommit for a block, or for nil (``block_hash is None``)."""

    height: int
    round: int
    type: VoteType
    block_hash: bytes | None
    #: Index of the signer in the genesis validators.
    validator: int
    signature: bytes
    version: int = VOTE_VERSION

    def __post_init__(self) -> None:
        _check(_is_int(self.version, 0, MAX_U63), "version")
        _check(_is_int(self.height, 1, MAX_U63), "height")
        _check(_is_int(self.round, 0, MAX_U63), "round")
        _check(isinstance(self.type, VoteType), "type")
        _check(self.block_hash is None or _is_hash(self.block_hash), "block_hash")
        _check(_is_int(self.validator, 0, MAX_VALIDATORS - 1), "validator")
        _check(_is_signature(self.signature), "signature")

    @staticmethod
    def payload(
        height: int, round: int, type: VoteType, block_hash: bytes | None, validator: int
    ) -> bytes:
        """The bytes a vote's signature covers (under :data:`VOTE_DOMAIN` and the network)."""
        return codec.encode([VOTE_VERSION, height, round, type.value, block_hash, validator])

    @classmethod
    def sign(
        cls,
        signer: Signer,
        network_id: str,
        *,
        height: int,
        round: int,
        type: VoteType,
        block_hash: bytes | None,
        validator: int,
    ) -> Vote:
        signature = signer.sign(
            VOTE_DOMAIN, network_id, cls.payload(height, round, type, block_hash, validator)
        )
        return cls(height, round, type, block_hash, validator, signature)

    def verify(
        self, validator_key: bytes, network_id: str, *, verify: Verify = signing.verify
    ) -> bool:
        """Whether the signature is ``validator_key``'s over this vote on ``network_id``."""
        payload = self.payload(self.height, self.round, self.type, self.block_hash, self.validator)
        return self.version == VOTE_VERSION and verify(
            validator_key, self.signature, VOTE_DOMAIN, network_id, payload
        )

    def encode(self) -> bytes:
        return codec.encode([
            self.version, self.height, self.round, self.type.value, self.block_hash,
            self.validator, self.signature,
        ])

    @classmethod
    def decode(cls, data: bytes) -> Vote:
        """The vote encoded in ``data``, or :class:`DecodeError`."""
        items = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_VOTE_BYTES), 7, what="vote"
        )
        type_value = codec.expect_int(items[3], 1, 2, what="type")
        return _construct(
            lambda: cls(
                version=codec.expect_int(items[0], 0, MAX_U63, what="version"),
                height=codec.expect_int(items[1], 1, MAX_U63, what="height"),
                round=codec.expect_int(items[2], 0, MAX_U63, what="round"),
                type=VoteType(type_value),
                block_hash=_hash_field(items[4]),
                validator=codec.expect_int(items[5], 0, MAX_VALIDATORS - 1, what="validator"),
                signature=codec.expect_bytes(items[6], SIGNATURE_BYTES, what="signature"),
            )
        )


@final
@dataclass(frozen=True, slots=True)
class Proposal:
    """The round's proposer naming the block it proposes (the block travels beside it).

    ``pol_round`` is Tendermint's ``validRound``: the round in which the block got prevotes
    from more than two thirds (a proof of lock), or -1 for a block proposed afresh.
    """

    height: int
    round: int
    block_hash: bytes
    pol_round: int
    proposer: int
    signature: bytes
    version: int = PROPOSAL_VERSION

    def __post_init__(self) -> None:
        _check(_is_int(self.version, 0, MAX_U63), "version")
        _check(_is_int(self.height, 1, MAX_U63), "height")
        _check(_is_int(self.round, 0, MAX_U63), "round")
        _check(_is_hash(self.block_hash), "block_hash")
        # A proof of lock comes from an earlier round (CometBFT Proposal.ValidateBasic).
        _check(_is_int(self.pol_round, -1, MAX_U63) and self.pol_round < self.round
               or self.pol_round == -1, "pol_round")
        _check(_is_int(self.proposer, 0, MAX_VALIDATORS - 1), "proposer")
        _check(_is_signature(self.signature), "signature")

    @staticmethod
    def payload(height: int, round: int, block_hash: bytes, pol_round: int, proposer: int) -> bytes:
        """The bytes a proposal's signature covers (under :data:`PROPOSAL_DOMAIN`)."""
        return codec.encode([PROPOSAL_VERSION, height, round, block_hash, pol_round, proposer])

    @classmethod
    def sign(
        cls,
        signer: Signer,
        network_id: str,
        *,
        height: int,
        round: int,
        block_hash: bytes,
        pol_round: int,
        proposer: int,
    ) -> Proposal:
        signature = signer.sign(
            PROPOSAL_DOMAIN, network_id,
            cls.payload(height, round, block_hash, pol_round, proposer),
        )
        return cls(height, round, block_hash, pol_round, proposer, signature)

    def verify(
        self, proposer_key: bytes, network_id: str, *, verify: Verify = signing.verify
    ) -> bool:
        payload = self.payload(
            self.height, self.round, self.block_hash, self.pol_round, self.proposer
        )
        return self.version == PROPOSAL_VERSION and verify(
            proposer_key, self.signature, PROPOSAL_DOMAIN, network_id, payload
        )

    def encode(self) -> bytes:
        return codec.encode([
            self.version, self.height, self.round, self.block_hash, self.pol_round,
            self.proposer, self.signature,
        ])

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        """The proposal encoded in ``data``, or :class:`DecodeError`."""
        items = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_PROPOSAL_BYTES), 7, what="proposal"
        )
        return _construct(
            lambda: cls(
                version=codec.expect_int(items[0], 0, MAX_U63, what="version"),
                height=codec.expect_int(items[1], 1, MAX_U63, what="height"),
                round=codec.expect_int(items[2], 0, MAX_U63, what="round"),
                block_hash=codec.expect_bytes(items[3], HASH_BYTES, what="block_hash"),
                pol_round=codec.expect_int(items[4], -1, MAX_U63, what="pol_round"),
                proposer=codec.expect_int(items[5], 0, MAX_VALIDATORS - 1, what="proposer"),
                signature=codec.expect_bytes(items[6], SIGNATURE_BYTES, what="signature"),
            )
        )


@final
@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Precommit signatures for one block at one (height, round), by validator index."""

    height: int
    round: int
    block_hash: bytes
    #: ``(validator index, signature)``, indices strictly increasing.
    signatures: tuple[tuple[int, bytes], ...]
    version: int = CERTIFICATE_VERSION

    def __post_init__(self) -> None:
        _check(_is_int(self.version, 0, MAX_U63), "version")
        _check(_is_int(self.height, 1, MAX_U63), "height")
        _check(_is_int(self.round, 0, MAX_U63), "round")
        _check(_is_hash(self.block_hash), "block_hash")
        _check(isinstance(self.signatures, tuple) and len(self.signatures) <= MAX_VALIDATORS,
               "signatures")
        previous = -1
        for entry in self.signatures:
            _check(isinstance(entry, tuple) and len(entry) == 2, "signatures")
            index, signature = entry
            _check(_is_int(index, 0, MAX_VALIDATORS - 1), "validator")
            _check(_is_signature(signature), "signature")
            if index <= previous:
                raise VoteInvalid(VoteFault.DUPLICATE_SIGNER, str(index))
            previous = index

    @classmethod
    def from_votes(cls, votes: Sequence[Vote]) -> CommitCertificate:
        """The certificate of ``votes``: precommits for one block at one (height, round)."""
        first = votes[0]
        if first.block_hash is None:
            raise VoteInvalid(VoteFault.NIL_COMMIT)
        for vote in votes:
            if (vote.type is not VoteType.PRECOMMIT or vote.height != first.height
                    or vote.round != first.round or vote.block_hash != first.block_hash):
                raise VoteInvalid(VoteFault.MALFORMED, "votes of a certificate differ")
        pairs = sorted((vote.validator, vote.signature) for vote in votes)
        return cls(first.height, first.round, first.block_hash, tuple(pairs))

    def votes(self) -> list[Vote]:
        """The precommits this certificate holds."""
        return [
            Vote(self.height, self.round, VoteType.PRECOMMIT, self.block_hash, index, signature)
            for index, signature in self.signatures
        ]

    def verify(
        self,
        validators: Sequence[bytes],
        network_id: str,
        *,
        verify: Verify = signing.verify,
    ) -> None:
        """Raise :class:`VoteInvalid` unless more than two thirds of ``validators`` (their
        Ed25519 keys, in genesis order) signed a precommit for this block."""
        if self.version != CERTIFICATE_VERSION:
            raise VoteInvalid(VoteFault.UNSUPPORTED_VERSION, str(self.version))
        if len(self.signatures) < quorum(len(validators)):
            raise VoteInvalid(VoteFault.NO_QUORUM, f"{len(self.signatures)}/{len(validators)}")
        for vote in self.votes():
            if vote.validator >= len(validators):
                raise VoteInvalid(VoteFault.UNKNOWN_VALIDATOR, str(vote.validator))
            if not vote.verify(validators[vote.validator], network_id, verify=verify):
                raise VoteInvalid(VoteFault.BAD_SIGNATURE, str(vote.validator))

    def encode(self) -> bytes:
        return codec.encode([
            self.version, self.height, self.round, self.block_hash,
            [[index, signature] for index, signature in self.signatures],
        ])

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        """The certificate encoded in ``data``, or :class:`DecodeError`."""
        items = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_CERTIFICATE_BYTES), 5, what="certificate"
        )
        pairs = []
        for entry in codec.expect_list(items[4], what="signatures"):
            pair = codec.expect_list(entry, 2, what="signature entry")
            pairs.append((
                codec.expect_int(pair[0], 0, MAX_VALIDATORS - 1, what="validator"),
                codec.expect_bytes(pair[1], SIGNATURE_BYTES, what="signature"),
            ))
        return _construct(
            lambda: cls(
                version=codec.expect_int(items[0], 0, MAX_U63, what="version"),
                height=codec.expect_int(items[1], 1, MAX_U63, what="height"),
                round=codec.expect_int(items[2], 0, MAX_U63, what="round"),
                block_hash=codec.expect_bytes(items[3], HASH_BYTES, what="block_hash"),
                signatures=tuple(pairs),
            )
        )
