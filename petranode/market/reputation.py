"""Reputation kept by the DSO, and anonymous minimum-reputation proofs (SPEC §2 domain
characteristic (4), §4.7 safety rules).

Scores
------
The DSO keeps an integer score per prosumer in ``[minimum, maximum]``, starting at
``initial`` (:class:`ReputationPolicy`). After each settled interval a seller's score moves
by its :class:`~petranode.market.settlement.DeliveryOutcome` (promised ``p``, credited
``d``, shortfall ``s = p − d``)::

    s = 0   →  score + reward                       (full delivery: slow climb)
    s > 0   →  score − ⌈max_penalty · s / p⌉        (proportional to the shortfall)

clamped to the range. The penalty rounds up, so any shortfall costs at least one point.

Tiers and credentials
---------------------
A tier is a threshold ``t`` from the policy; a prosumer is in tier ``t`` while its score
is ≥ ``t``. Each prosumer holds a long-term *credential* key pair ``(c, C = c·G)`` on the
CryptoNote group; the DSO learns ``C`` at registration and never publishes it. For epoch
``e`` and slot ``j`` (``0 ≤ j < slots_per_epoch``) both sides can compute the one-time
credential::

    h_{e,j} = Hs(codec([CREDENTIAL_DOMAIN, network_id, e, j, C]))
    C_{e,j} = C + h_{e,j}·G          c_{e,j} = c + h_{e,j}

— the additive tweak of CryptoNote's one-time addresses. Per epoch and tier the DSO
publishes a :class:`TierList`: the sorted ``C_{e,j}`` of every slot of every prosumer in
the tier, signed with its Ed25519 key. Without ``C`` nobody can tell which listed keys
belong together or follow a prosumer from one epoch's list to the next.

Proof
-----
An offer proves "my reputation ≥ t" with a :class:`ReputationProof`: a CryptoNote
one-time ring signature (``crypto/ring.py``) by ``c_{e,j}`` over the whole tier-``t``
list, on the message ``SHA-256(signing_bytes(PROOF_DOMAIN, network_id, [e, t, list id,
offer hash]))``. Verifiers learn that *some* member of the tier signed this offer, nothing
more; the proof is bound to one offer, one list, one network.

Linkability trade-off. The ring signature carries a key image ``I = c_{e,j}·Hp(C_{e,j})``,
fixed per (prosumer, epoch, slot). One credential per epoch would make all of a
prosumer's gated offers in an epoch visibly linked (their count, sizes and prices form a
profile: a leak). Fresh keys per offer would need a list entry per offer. Slots sit
between: a prosumer makes up to ``slots_per_epoch`` mutually unlinkable gated offers per
epoch, each with a fresh slot; reusing a slot shows up as a repeated key image, which a
verifier may refuse (``seen_key_images``: one gated offer per slot, a rate limit that
anonymity cannot dodge) or allow (linking just those offers). Across epochs key images
never repeat. The anonymity set of a proof is the number of *prosumers* in the tier, not
the list length, so small tiers give little anonymity (docs/market.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point, Rng, Scalar, constant_time_equal, hash_to_scalar, os_rng
from petranode.crypto.keyimage import KEY_IMAGE_BYTES, KeyImage, generate_key_image
from petranode.crypto.ring import (
    PAIR_BYTES,
    RingSignature,
    generate_ring_signature,
    verify_ring_signature,
)
from petranode.ledger.assets import MAX_INTERVAL
from petranode.market.errors import ProofReject, ReputationProofRejected
from petranode.market.registry import (
    ID_BYTES,
    KEY_BYTES,
    RECORD_VERSION,
    SIGNATURE_BYTES,
    Registration,
    check_public_key,
    decoding,
    record_fields,
)
from petranode.market.settlement import DeliveryOutcome
from petranode.net import signing
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.codec import Encodable

log = logging.getLogger(__name__)

CREDENTIAL_DOMAIN: Final = "petranode/market/reputation-credential/v1"
TIER_LIST_DOMAIN: Final = "petranode/market/tier-list/v1"
PROOF_DOMAIN: Final = "petranode/market/reputation-proof/v1"
#: Scores, thresholds and epochs fit msgpack uint32 / int64.
MAX_SCORE: Final = 2**32 - 1
MAX_EPOCH: Final = MAX_INTERVAL
#: Largest tier list (prosumers × slots). Ring signing and verification cost ≈ 0.65 ms per
#: member here (crypto/ring.py in Python), so 512 members bound one proof check near 0.35 s.
MAX_TIER_MEMBERS: Final = 512
#: [1, 1, epoch 9, tier 5, array header 3, 512 × 34, 66 signature] = 17 493 bytes.
MAX_TIER_LIST_BYTES: Final = 18 * 1024
#: [1, 1, epoch 9, tier 5, 34 list id, 34 key image, 3 + 512 × 64 signature] = 32 855 bytes.
MAX_PROOF_BYTES: Final = 33 * 1024
MESSAGE_BYTES: Final = 32


# -- scores ---------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class ReputationPolicy:
    """How scores start, move and which thresholds are tiers (a DSO setting)."""

    initial: int = 5_000
    minimum: int = 0
    maximum: int = 10_000
    #: Points gained for an interval of full delivery.
    reward: int = 50
    #: Points lost for an interval in which nothing promised was delivered.
    max_penalty: int = 2_500
    #: Tier thresholds, strictly increasing.
    tiers: tuple[int, ...] = (2_500, 5_000, 7_500)
    #: One-time credentials per prosumer per epoch (see the linkability trade-off above).
    slots_per_epoch: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.initial <= self.maximum <= MAX_SCORE:
            raise ValueError("scores must satisfy 0 <= minimum <= initial <= maximum < 2^32")
        if self.reward < 0 or self.max_penalty < 0:
            raise ValueError("reward and max_penalty must not be negative")
        if list(self.tiers) != sorted(set(self.tiers)):
            raise ValueError("tiers must be strictly increasing")
        if self.tiers and not self.minimum < self.tiers[0] <= self.tiers[-1] <= self.maximum:
            raise ValueError("tiers must lie in (minimum, maximum]")
        if not 1 <= self.slots_per_epoch <= MAX_TIER_MEMBERS:
            raise ValueError(f"slots_per_epoch must be 1..{MAX_TIER_MEMBERS}")

    def updated(self, score: int, promised_w: int, delivered_w: int) -> int:
        """The score after one interval's delivery (module docstring formula)."""
        if not 0 <= delivered_w <= promised_w:
            raise ValueError("delivered must be 0..promised")
        if promised_w == 0:
            return score
        shortfall = promised_w - delivered_w
        if shortfall == 0:
            return min(self.maximum, score + self.reward)
        drop = -(-self.max_penalty * shortfall // promised_w)
        return max(self.minimum, score - drop)


# -- credentials ------------------------------------------------------------------------------------


def credential_tweak(credential_key: Point, network_id: str, epoch: int, slot: int) -> Scalar:
    """``h_{e,j}``: the public offset of epoch ``epoch``, slot ``slot``."""
    return hash_to_scalar(codec.encode([CREDENTIAL_DOMAIN, network_id, epoch, slot,
                                        credential_key.raw]))


def epoch_credential_key(credential_key: Point, network_id: str, epoch: int,
                         slot: int) -> Point:
    """``C_{e,j} = C + h_{e,j}·G``: what the DSO lists for a prosumer in a tier."""
    return credential_key + credential_tweak(credential_key, network_id, epoch, slot).mul_base()


@final
class Credential:
    """A prosumer's secret credential ``c``; its ``repr`` shows only the public key."""

    __slots__ = ("_secret", "public")

    def __init__(self, secret: Scalar) -> None:
        if secret.is_zero():
            raise CryptoError("zero credential secret")
        self._secret = secret
        self.public = secret.mul_base()

    @classmethod
    def generate(cls, rng: Rng = os_rng) -> Credential:
        return cls(Scalar.random(rng))

    def epoch_secret(self, network_id: str, epoch: int, slot: int) -> tuple[Point, Scalar]:
        """``(C_{e,j}, c_{e,j})`` for one epoch and slot."""
        secret = self._secret + credential_tweak(self.public, network_id, epoch, slot)
        if secret.is_zero():  # probability 2⁻²⁵²; the key would be the identity
            raise CryptoError("degenerate epoch credential")
        return secret.mul_base(), secret

    def __repr__(self) -> str:
        return f"Credential(public={self.public.raw.hex()})"


# -- tier lists -------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class TierList:
    """The DSO's signed list of one-time credentials of every prosumer in one tier, one epoch."""

    epoch: int
    tier: int
    #: ``C_{e,j}`` encodings, strictly increasing (sorted, so the order reveals nothing).
    members: tuple[bytes, ...]
    dso_signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported tier list version {self.version}")
        if not 0 <= self.epoch <= MAX_EPOCH or not 0 <= self.tier <= MAX_SCORE:
            raise ValueError("epoch or tier out of range")
        if len(self.members) > MAX_TIER_MEMBERS:
            raise ValueError(f"more than {MAX_TIER_MEMBERS} members")
        if list(self.members) != sorted(set(self.members)):
            raise ValueError("members must be strictly increasing")
        for member in self.members:
            check_public_key(member, "tier member")
        if len(self.dso_signature) != SIGNATURE_BYTES:
            raise ValueError("signature must be 64 bytes")

    @staticmethod
    def body(epoch: int, tier: int, members: Iterable[bytes]) -> list[Encodable]:
        return [RECORD_VERSION, epoch, tier, list(members)]

    @classmethod
    def issue(cls, dso: Signer, network_id: str, *, epoch: int, tier: int,
              members: Iterable[bytes]) -> TierList:
        ordered = tuple(sorted(set(members)))
        signature = dso.sign(TIER_LIST_DOMAIN, network_id,
                             codec.encode(cls.body(epoch, tier, ordered)))
        return cls(epoch, tier, ordered, signature)

    def signed_body(self) -> bytes:
        return codec.encode(self.body(self.epoch, self.tier, self.members))

    def signature_valid(self, dso_key: bytes, network_id: str) -> bool:
        return signing.verify(dso_key, self.dso_signature, TIER_LIST_DOMAIN, network_id,
                              self.signed_body())

    def encode(self) -> bytes:
        return codec.encode([*self.body(self.epoch, self.tier, self.members),
                             self.dso_signature])

    @classmethod
    def decode(cls, data: bytes) -> TierList:
        with decoding("tier list"):
            f = record_fields(data, max_size=MAX_TIER_LIST_BYTES, length=5, what="tier list")
            members = codec.expect_list(f[3], what="tier members")
            return cls(
                epoch=codec.expect_int(f[1], 0, MAX_EPOCH, what="epoch"),
                tier=codec.expect_int(f[2], 0, MAX_SCORE, what="tier"),
                members=tuple(codec.expect_bytes(m, KEY_BYTES, what="member") for m in members),
                dso_signature=codec.expect_bytes(f[4], SIGNATURE_BYTES, what="signature"),
            )

    @property
    def list_id(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


# -- proofs -----------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class ReputationProof:
    """A ring signature by one member of a tier list over one offer's hash."""

    epoch: int
    tier: int
    list_id: bytes
    key_image: bytes
    signature: bytes
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if self.version != RECORD_VERSION:
            raise ValueError(f"unsupported proof version {self.version}")
        if not 0 <= self.epoch <= MAX_EPOCH or not 0 <= self.tier <= MAX_SCORE:
            raise ValueError("epoch or tier out of range")
        if len(self.list_id) != ID_BYTES:
            raise ValueError("list id must be 32 bytes")
        KeyImage.from_bytes(self.key_image)  # canonical, prime order, not the identity
        ring_size, rest = divmod(len(self.signature), PAIR_BYTES)
        if rest or not 1 <= ring_size <= MAX_TIER_MEMBERS:
            raise ValueError("signature is not 1..512 (c, r) pairs")

    @property
    def ring_size(self) -> int:
        return len(self.signature) // PAIR_BYTES

    def encode(self) -> bytes:
        return codec.encode([self.version, self.epoch, self.tier, self.list_id, self.key_image,
                             self.signature])

    @classmethod
    def decode(cls, data: bytes) -> ReputationProof:
        with decoding("reputation proof"):
            f = record_fields(data, max_size=MAX_PROOF_BYTES, length=6, what="reputation proof")
            return cls(
                epoch=codec.expect_int(f[1], 0, MAX_EPOCH, what="epoch"),
                tier=codec.expect_int(f[2], 0, MAX_SCORE, what="tier"),
                list_id=codec.expect_bytes(f[3], ID_BYTES, what="list id"),
                key_image=codec.expect_bytes(f[4], KEY_IMAGE_BYTES, what="key image"),
                signature=codec.expect_bytes(f[5], max_size=PAIR_BYTES * MAX_TIER_MEMBERS,
                                             what="ring signature"),
            )


def proof_message(offer_hash: bytes, tier_list: TierList, network_id: str) -> bytes:
    """What the ring signature signs: the offer bound to one list of one epoch and network."""
    if len(offer_hash) != MESSAGE_BYTES:
        raise ValueError("offer hash must be 32 bytes")
    payload = codec.encode([tier_list.epoch, tier_list.tier, tier_list.list_id, offer_hash])
    return hashlib.sha256(signing.signing_bytes(PROOF_DOMAIN, network_id, payload)).digest()


def prove(credential: Credential, offer_hash: bytes, tier_list: TierList, *, network_id: str,
          slot: int, rng: Rng = os_rng) -> ReputationProof:
    """Prove membership of ``tier_list`` for ``offer_hash`` with one credential slot.

    Raises ``ReputationProofRejected(NOT_IN_TIER)`` when our one-time credential for the
    list's epoch and ``slot`` is not listed (our score is below the tier, or the slot is
    beyond the DSO's ``slots_per_epoch``).
    """
    public, secret = credential.epoch_secret(network_id, tier_list.epoch, slot)
    # Compare with every member, so the loop's length does not depend on where we are.
    matches = [i for i, m in enumerate(tier_list.members) if constant_time_equal(m, public.raw)]
    if not matches:
        raise ReputationProofRejected(ProofReject.NOT_IN_TIER, f"tier {tier_list.tier}")
    ring = [Point.from_bytes(m) for m in tier_list.members]
    image = generate_key_image(public, secret)
    signature = generate_ring_signature(proof_message(offer_hash, tier_list, network_id), image,
                                        ring, secret, matches[0], rng)
    return ReputationProof(tier_list.epoch, tier_list.tier, tier_list.list_id, bytes(image),
                           bytes(signature))


def verify_proof(proof: ReputationProof, offer_hash: bytes, tier_list: TierList, *,
                 dso_key: bytes, network_id: str, epoch: int, min_tier: int,
                 seen_key_images: Container[bytes] = frozenset()) -> KeyImage:
    """Check that a member of a DSO-signed tier ≥ ``min_tier`` of ``epoch`` signed this offer.

    Returns the proof's key image, which a verifier that allows one gated offer per slot
    records and passes back in ``seen_key_images``. Raises ``ReputationProofRejected``.
    """
    if not tier_list.signature_valid(dso_key, network_id):
        raise ReputationProofRejected(ProofReject.BAD_LIST_SIGNATURE)
    if tier_list.epoch != epoch or proof.epoch != epoch:
        raise ReputationProofRejected(ProofReject.WRONG_EPOCH)
    if tier_list.tier < min_tier:
        raise ReputationProofRejected(ProofReject.TIER_TOO_LOW)
    if proof.tier != tier_list.tier or proof.list_id != tier_list.list_id:
        raise ReputationProofRejected(ProofReject.WRONG_LIST)
    if proof.key_image in seen_key_images:
        raise ReputationProofRejected(ProofReject.LINKED)
    if proof.ring_size != len(tier_list.members):
        raise ReputationProofRejected(ProofReject.BAD_RING_SIGNATURE, "ring size")
    image = KeyImage.from_bytes(proof.key_image)
    try:
        verify_ring_signature(
            proof_message(offer_hash, tier_list, network_id), image,
            [Point.from_bytes(m) for m in tier_list.members],
            RingSignature.from_bytes(proof.signature, proof.ring_size))
    except CryptoError as exc:
        raise ReputationProofRejected(ProofReject.BAD_RING_SIGNATURE) from exc
    return image


# -- the DSO's book -------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class ReputationRow:
    """One prosumer's persisted reputation: its id (meter key), credential key and score."""

    prosumer: bytes
    credential_key: bytes
    score: int


@final
class ReputationBook:
    """The DSO's scores and credential keys; publishes the signed tier lists of each epoch."""

    __slots__ = ("_credentials", "_scores", "policy")

    def __init__(self, policy: ReputationPolicy) -> None:
        self.policy = policy
        self._scores: dict[bytes, int] = {}
        self._credentials: dict[bytes, Point] = {}

    def __repr__(self) -> str:
        return f"ReputationBook(prosumers={len(self._scores)})"

    def enroll(self, registration: Registration) -> None:
        """Start tracking a registered prosumer at the policy's initial score."""
        prosumer = registration.meter_key
        if prosumer in self._scores:
            raise ValueError("prosumer already enrolled")
        self._credentials[prosumer] = Point.from_bytes(registration.credential_key)
        self._scores[prosumer] = self.policy.initial

    def score(self, prosumer: bytes) -> int:
        return self._scores[prosumer]

    def record(self, outcome: DeliveryOutcome) -> int:
        """Apply one settled delivery; returns the new score. Unknown prosumers are an error."""
        if outcome.prosumer not in self._scores:
            raise KeyError("prosumer not enrolled")
        score = self.policy.updated(self._scores[outcome.prosumer], outcome.promised_w,
                                    outcome.delivered_w)
        self._scores[outcome.prosumer] = score
        return score

    def record_all(self, outcomes: Iterable[DeliveryOutcome]) -> None:
        for outcome in outcomes:
            self.record(outcome)

    def members(self, tier: int, epoch: int, network_id: str) -> tuple[bytes, ...]:
        """Sorted one-time credentials of every slot of every prosumer with score ≥ ``tier``."""
        keys = (
            epoch_credential_key(self._credentials[p], network_id, epoch, slot).raw
            for p, score in self._scores.items() if score >= tier
            for slot in range(self.policy.slots_per_epoch)
        )
        members = tuple(sorted(keys))
        if len(members) > MAX_TIER_MEMBERS:
            raise ValueError("tier list would exceed MAX_TIER_MEMBERS: lower slots_per_epoch")
        return members

    def publish(self, dso: Signer, network_id: str, epoch: int) -> tuple[TierList, ...]:
        """The signed tier lists of ``epoch``, one per policy tier, from today's scores."""
        return tuple(
            TierList.issue(dso, network_id, epoch=epoch, tier=tier,
                           members=self.members(tier, epoch, network_id))
            for tier in self.policy.tiers
        )

    def to_rows(self) -> tuple[ReputationRow, ...]:
        return tuple(ReputationRow(p, self._credentials[p].raw, s)
                     for p, s in sorted(self._scores.items()))

    @classmethod
    def from_rows(cls, policy: ReputationPolicy, rows: Iterable[ReputationRow]) -> ReputationBook:
        """Rebuild a book; a row that cannot be a prosumer's is ``MALFORMED``."""
        book = cls(policy)
        for row in rows:
            with decoding("reputation row"):
                check_public_key(row.prosumer, "prosumer")
                if row.prosumer in book._scores:
                    raise ValueError("prosumer twice")
                if not policy.minimum <= row.score <= policy.maximum:
                    raise ValueError("score outside the policy's range")
                book._credentials[row.prosumer] = Point.from_bytes(row.credential_key)
                book._scores[row.prosumer] = row.score
        return book

