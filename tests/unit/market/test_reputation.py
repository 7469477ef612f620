"""Reputation scores, tier lists and anonymous minimum-reputation proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.group import Scalar
from petranode.market.errors import MarketRecordInvalid, ProofReject, ReputationProofRejected
from petranode.market.registry import Registration
from petranode.market.reputation import (
    MAX_PROOF_BYTES,
    MAX_TIER_LIST_BYTES,
    MAX_TIER_MEMBERS,
    Credential,
    ReputationBook,
    ReputationPolicy,
    ReputationProof,
    ReputationRow,
    TierList,
    epoch_credential_key,
    prove,
    verify_proof,
)
from petranode.market.settlement import DeliveryOutcome, SettlementTerms, TradeObligation
from petranode.market.settlement import settle_interval as settle
from petranode.net.identity import RouterKeys

NETWORK = "petranode-test"
POLICY = ReputationPolicy(slots_per_epoch=2)
OFFER_A = hashlib.sha256(b"offer A").digest()
OFFER_B = hashlib.sha256(b"offer B").digest()


def keys(n: int) -> RouterKeys:
    return RouterKeys.from_secrets(signing_seed=bytes([n]) * 32, static_secret=bytes([n]) * 32)


def det_rng(seed: int) -> Callable[[int], bytes]:
    state = [0]

    def draw(n: int) -> bytes:
        state[0] += 1
        return hashlib.sha512(f"{seed}/{state[0]}".encode()).digest()[:n]

    return draw


DSO = keys(1)


class Prosumer:
    def __init__(self, n: int) -> None:
        self.meter = keys(10 + n)
        self.credential = Credential(Scalar.from_int(1000 + n))
        self.registration = Registration.issue(
            DSO, NETWORK, meter_key=self.meter.signing_key,
            credential_key=self.credential.public.raw, max_generation_w=5000,
            max_consumption_w=5000, feeder="F1")

    @property
    def id(self) -> bytes:
        return self.meter.signing_key


@pytest.fixture(scope="module")
def prosumers() -> list[Prosumer]:
    return [Prosumer(n) for n in range(4)]


def book_of(prosumers: list[Prosumer]) -> ReputationBook:
    book = ReputationBook(POLICY)
    for p in prosumers:
        book.enroll(p.registration)
    return book


def tier(lists: tuple[TierList, ...], threshold: int) -> TierList:
    return next(t for t in lists if t.tier == threshold)


def check(proof: ReputationProof, offer: bytes, tier_list: TierList, *, epoch: int = 0,
          min_tier: int = 5000, seen: frozenset[bytes] = frozenset()) -> None:
    verify_proof(proof, offer, tier_list, dso_key=DSO.signing_key, network_id=NETWORK,
                 epoch=epoch, min_tier=min_tier, seen_key_images=seen)


def rejected(reason: ProofReject, proof: ReputationProof, offer: bytes, tier_list: TierList, *,
             epoch: int = 0, min_tier: int = 5000, seen: frozenset[bytes] = frozenset()) -> None:
    with pytest.raises(ReputationProofRejected) as caught:
        check(proof, offer, tier_list, epoch=epoch, min_tier=min_tier, seen=seen)
    assert caught.value.reason is reason


# -- scores ---------------------------------------------------------------------------------------


def test_score_moves() -> None:
    p = ReputationPolicy()
    assert p.updated(5000, 100, 100) == 5050
    assert p.updated(9990, 100, 100) == 10_000
    assert p.updated(5000, 100, 0) == 2500
    assert p.updated(5000, 100, 50) == 3750
    assert p.updated(5000, 3, 2) == 5000 - 834  # ⌈2500/3⌉
    assert p.updated(5000, 10**6, 10**6 - 1) == 4999  # any shortfall costs a point
    assert p.updated(1000, 100, 0) == 0
    assert p.updated(5000, 0, 0) == 5000
    with pytest.raises(ValueError):
        p.updated(5000, 10, 11)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 20_000}, {"reward": -1}, {"tiers": (5000, 2500)}, {"tiers": (0,)},
     {"slots_per_epoch": 0}, {"slots_per_epoch": MAX_TIER_MEMBERS + 1}],
)
def test_invalid_policy(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ReputationPolicy(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10**6), st.data())
def test_score_stays_in_range_and_orders_by_delivery(score: int, promised: int,
                                                     data: st.DataObject) -> None:
    a, b = sorted(data.draw(st.integers(0, promised)) for _ in range(2))
    low, high = POLICY.updated(score, promised, a), POLICY.updated(score, promised, b)
    assert POLICY.minimum <= low <= high <= POLICY.maximum


# -- credentials ----------------------------------------------------------------------------------


def test_both_sides_derive_the_same_one_time_credential(prosumers: list[Prosumer]) -> None:
    c = prosumers[0].credential
    public, secret = c.epoch_secret(NETWORK, 3, 1)
    assert public == epoch_credential_key(c.public, NETWORK, 3, 1) == secret.mul_base()
    assert public != c.epoch_secret(NETWORK, 4, 1)[0]
    assert public != c.epoch_secret(NETWORK, 3, 0)[0]
    assert public != c.epoch_secret("other", 3, 1)[0]
    assert repr(c) == f"Credential(public={c.public.raw.hex()})"
    assert secret.hex() not in repr(c)


# -- the scenario of issue 7 ------------------------------------------------------------------


def test_under_delivering_prosumer_loses_its_tier(prosumers: list[Prosumer]) -> None:
    book = book_of(prosumers)
    epoch0 = book.publish(DSO, NETWORK, 0)
    assert [len(t.members) for t in epoch0] == [8, 8, 0]  # 4 prosumers × 2 slots; none ≥ 7500
    seller = prosumers[2]
    proof = prove(seller.credential, OFFER_A, tier(epoch0, 5000), network_id=NETWORK, slot=0,
                  rng=det_rng(1))
    check(proof, OFFER_A, tier(epoch0, 5000))

    # Interval 40: the seller promised 1000 W and delivered 200 W.
    trades = [TradeObligation(b"\x01" * 32, 40, seller.id, 1000, 0),
              TradeObligation(b"\x02" * 32, 40, prosumers[0].id, 500, 0)]
    settled = settle(40, trades, {seller.id: 200, prosumers[0].id: 500}, SettlementTerms(0))
    book.record_all(settled.outcomes)
    assert book.score(seller.id) == 5000 - 2000
    assert book.score(prosumers[0].id) == 5050

    epoch1 = book.publish(DSO, NETWORK, 1)
    assert len(tier(epoch1, 5000).members) == 6
    with pytest.raises(ReputationProofRejected) as caught:
        prove(seller.credential, OFFER_B, tier(epoch1, 5000), network_id=NETWORK, slot=0)
    assert caught.value.reason is ProofReject.NOT_IN_TIER
    # Last epoch's list and proof do not pass for this epoch.
    rejected(ProofReject.WRONG_EPOCH, proof, OFFER_A, tier(epoch0, 5000), epoch=1)
    # A lower tier still admits it.
    low = prove(seller.credential, OFFER_B, tier(epoch1, 2500), network_id=NETWORK, slot=0)
    check(low, OFFER_B, tier(epoch1, 2500), epoch=1, min_tier=2500)
    rejected(ProofReject.TIER_TOO_LOW, low, OFFER_B, tier(epoch1, 2500), epoch=1)


# -- proof negatives --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def epoch0(prosumers: list[Prosumer]) -> tuple[TierList, ...]:
    return book_of(prosumers).publish(DSO, NETWORK, 0)


@pytest.fixture(scope="module")
def proof_a(prosumers: list[Prosumer], epoch0: tuple[TierList, ...]) -> ReputationProof:
    return prove(prosumers[1].credential, OFFER_A, tier(epoch0, 5000), network_id=NETWORK,
                 slot=1, rng=det_rng(2))


def test_proof_for_one_offer_does_not_verify_for_another(
    proof_a: ReputationProof, epoch0: tuple[TierList, ...]
) -> None:
    check(proof_a, OFFER_A, tier(epoch0, 5000))
    rejected(ProofReject.BAD_RING_SIGNATURE, proof_a, OFFER_B, tier(epoch0, 5000))


def test_proof_is_bound_to_its_list(proof_a: ReputationProof,
                                    epoch0: tuple[TierList, ...]) -> None:
    rejected(ProofReject.WRONG_LIST, proof_a, OFFER_A, tier(epoch0, 2500), min_tier=2500)


def test_non_member_cannot_prove(epoch0: tuple[TierList, ...]) -> None:
    outsider = Credential(Scalar.from_int(4242))
    with pytest.raises(ReputationProofRejected) as caught:
        prove(outsider, OFFER_A, tier(epoch0, 5000), network_id=NETWORK, slot=0)
    assert caught.value.reason is ProofReject.NOT_IN_TIER
    # Adding itself to a copy of the list breaks the DSO's signature.
    own = outsider.epoch_secret(NETWORK, 0, 0)[0].raw
    real = tier(epoch0, 5000)
    forged = TierList(0, 5000, tuple(sorted((*real.members, own))), real.dso_signature)
    proof = prove(outsider, OFFER_A, forged, network_id=NETWORK, slot=0)
    rejected(ProofReject.BAD_LIST_SIGNATURE, proof, OFFER_A, forged)
    # ...and a list it signs itself is not the DSO's.
    self_signed = TierList.issue(keys(99), NETWORK, epoch=0, tier=5000, members=forged.members)
    proof = prove(outsider, OFFER_A, self_signed, network_id=NETWORK, slot=0)
    rejected(ProofReject.BAD_LIST_SIGNATURE, proof, OFFER_A, self_signed)


def test_slot_beyond_the_policy_is_not_listed(prosumers: list[Prosumer],
                                              epoch0: tuple[TierList, ...]) -> None:
    with pytest.raises(ReputationProofRejected) as caught:
        prove(prosumers[0].credential, OFFER_A, tier(epoch0, 5000), network_id=NETWORK,
              slot=POLICY.slots_per_epoch)
    assert caught.value.reason is ProofReject.NOT_IN_TIER


def test_list_of_another_network_is_refused(prosumers: list[Prosumer]) -> None:
    other = book_of(prosumers).publish(DSO, "other-net", 0)
    proof = prove(prosumers[0].credential, OFFER_A, tier(other, 5000), network_id="other-net",
                  slot=0)
    rejected(ProofReject.BAD_LIST_SIGNATURE, proof, OFFER_A, tier(other, 5000))


def test_key_images_link_only_a_reused_slot(prosumers: list[Prosumer], proof_a: ReputationProof,
                                            epoch0: tuple[TierList, ...]) -> None:
    listed = tier(epoch0, 5000)
    again = prove(prosumers[1].credential, OFFER_B, listed, network_id=NETWORK, slot=1)
    other_slot = prove(prosumers[1].credential, OFFER_B, listed, network_id=NETWORK, slot=0)
    assert again.key_image == proof_a.key_image
    assert other_slot.key_image != proof_a.key_image
    seen = frozenset({proof_a.key_image})
    rejected(ProofReject.LINKED, again, OFFER_B, listed, seen=seen)
    check(other_slot, OFFER_B, listed, seen=seen)


def test_wrong_ring_size_is_refused(proof_a: ReputationProof,
                                    epoch0: tuple[TierList, ...]) -> None:
    short = ReputationProof(proof_a.epoch, proof_a.tier, proof_a.list_id, proof_a.key_image,
                            proof_a.signature[:-64])
    rejected(ProofReject.BAD_RING_SIGNATURE, short, OFFER_A, tier(epoch0, 5000))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_flipped_bit_in_a_proof_fails(proof_a: ReputationProof, epoch0: tuple[TierList, ...],
                                      data: st.DataObject) -> None:
    raw = bytearray(proof_a.encode())
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        flipped = ReputationProof.decode(bytes(raw))
    except MarketRecordInvalid:
        return
    with pytest.raises(ReputationProofRejected):
        check(flipped, OFFER_A, tier(epoch0, 5000))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_flipped_bit_in_a_list_fails(proof_a: ReputationProof, epoch0: tuple[TierList, ...],
                                     data: st.DataObject) -> None:
    raw = bytearray(tier(epoch0, 5000).encode())
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        flipped = TierList.decode(bytes(raw))
    except MarketRecordInvalid:
        return
    with pytest.raises(ReputationProofRejected):
        check(proof_a, OFFER_A, flipped)


# -- records --------------------------------------------------------------------------------------


def test_records_round_trip(proof_a: ReputationProof, epoch0: tuple[TierList, ...]) -> None:
    for listed in epoch0:
        assert TierList.decode(listed.encode()) == listed
    assert ReputationProof.decode(proof_a.encode()) == proof_a


def test_largest_records_fit_their_bounds() -> None:
    members = [Credential(Scalar.from_int(i + 1)).public.raw for i in range(MAX_TIER_MEMBERS)]
    listed = TierList.issue(DSO, NETWORK, epoch=2**63 - 1, tier=2**32 - 1, members=members)
    assert len(listed.encode()) <= MAX_TIER_LIST_BYTES
    assert TierList.decode(listed.encode()) == listed
    proof = ReputationProof(2**63 - 1, 2**32 - 1, bytes(32), members[0],
                            bytes(64 * MAX_TIER_MEMBERS))
    assert len(proof.encode()) <= MAX_PROOF_BYTES
    with pytest.raises(ValueError):
        TierList.issue(DSO, NETWORK, epoch=0, tier=1,
                       members=[*members, Credential(Scalar.from_int(10**6)).public.raw])


def test_unsorted_list_is_malformed(epoch0: tuple[TierList, ...]) -> None:
    listed = tier(epoch0, 5000)
    with pytest.raises(ValueError):
        TierList(0, 5000, tuple(reversed(listed.members)), listed.dso_signature)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.sampled_from([TierList.decode, ReputationProof.decode]))
def test_arbitrary_bytes_give_a_value_or_market_error(
    data: bytes, decode: Callable[[bytes], object]
) -> None:
    try:
        decode(data)
    except MarketRecordInvalid:
        pass


# -- the DSO's book -----------------------------------------------------------------------------


def test_book_rows_round_trip(prosumers: list[Prosumer]) -> None:
    book = book_of(prosumers)
    book.record(DeliveryOutcome(prosumers[0].id, 1, 100, 10, True))
    again = ReputationBook.from_rows(POLICY, book.to_rows())
    assert again.to_rows() == book.to_rows()
    assert again.members(5000, 3, NETWORK) == book.members(5000, 3, NETWORK)
    with pytest.raises(MarketRecordInvalid):
        ReputationBook.from_rows(POLICY, [ReputationRow(prosumers[0].id, bytes(32), 1)])
    with pytest.raises(MarketRecordInvalid):
        ReputationBook.from_rows(POLICY, [book.to_rows()[0]] * 2)


def test_book_refuses_unknown_and_double_enrolment(prosumers: list[Prosumer]) -> None:
    book = book_of(prosumers[:1])
    with pytest.raises(ValueError):
        book.enroll(prosumers[0].registration)
    with pytest.raises(KeyError):
        book.record(DeliveryOutcome(prosumers[1].id, 1, 100, 100, True))
    assert repr(book) == "ReputationBook(prosumers=1)"
