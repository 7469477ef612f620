"""Blocks, votes, proposals and commit certificates: exact bytes, Merkle root, signatures, fuzz."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.ledger.block import ZERO_HASH, Block, BlockHeader, merkle_root
from petranode.ledger.errors import BlockFault, BlockInvalid, VoteFault, VoteInvalid
from petranode.ledger.vote import CommitCertificate, Proposal, Vote, VoteType, quorum
from petranode.net.identity import RouterKeys
from petranode.wire.errors import DecodeError

NET = "petranode-test"
H = bytes(range(32))
SIG = bytes(range(64))


@cache
def keys(i: int) -> RouterKeys:
    return RouterKeys.generate()


def block(txs: tuple[bytes, ...] = (b"a", b"bc")) -> Block:
    return Block.build(network_id=NET, height=1, round=0, time_ms=1000, prev_hash=ZERO_HASH,
                       proposer=1, txs=txs)


# -- exact bytes, both ways ----------------------------------------------------------------

VOTE = Vote(5, 1, VoteType.PRECOMMIT, H, 2, SIG)
NIL_VOTE = Vote(5, 0, VoteType.PREVOTE, None, 0, SIG)
PROPOSAL = Proposal(5, 2, H, 1, 3, SIG)
CERT = CommitCertificate(5, 1, H, ((0, SIG), (2, SIG)))
HEADER = BlockHeader(network_id="n", height=1, round=0, time_ms=7, prev_hash=ZERO_HASH,
                     tx_root=H, proposer=0)

VECTORS: list[tuple[Vote | Proposal | CommitCertificate | BlockHeader, str]] = [
    (VOTE, "97010501" + "02" + "c420" + H.hex() + "02" + "c440" + SIG.hex()),
    (NIL_VOTE, "97010500" + "01" + "c0" + "00" + "c440" + SIG.hex()),
    (PROPOSAL, "97010502" + "c420" + H.hex() + "0103" + "c440" + SIG.hex()),
    (CERT, "95010501" + "c420" + H.hex() + "92" + "9200c440" + SIG.hex()
     + "9202c440" + SIG.hex()),
    (HEADER, "9801a16e010007" + "c420" + ZERO_HASH.hex() + "c420" + H.hex() + "00"),
]


@pytest.mark.parametrize(("record", "hexbytes"), VECTORS)
def test_vectors_both_ways(
    record: Vote | Proposal | CommitCertificate | BlockHeader, hexbytes: str
) -> None:
    assert record.encode().hex() == hexbytes
    assert type(record).decode(bytes.fromhex(hexbytes)) == record


def test_merkle_root_rfc6962() -> None:
    # certificate-transparency test vectors: the empty tree and the one-leaf tree of b"".
    assert merkle_root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert merkle_root([b""]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    # Order matters, and a leaf is never mistaken for a node.
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([merkle_root([b"a", b"b"]), b"c"])


def test_block_roundtrip_and_tx_root() -> None:
    b = block()
    assert Block.decode(b.encode()) == b
    b.validate_basic()
    tampered = Block(b.header, (b"a", b"bd"))
    with pytest.raises(BlockInvalid) as info:
        tampered.validate_basic()
    assert info.value.reason is BlockFault.BAD_TX_ROOT
    assert tampered.hash == b.hash  # the hash is the header's; the root binds the txs


@pytest.mark.parametrize("field", ["height", "round", "proposer", "prev_hash"])
def test_header_construction_refuses_bad_fields(field: str) -> None:
    good: dict[str, object] = {"network_id": NET, "height": 1, "round": 0, "time_ms": 0,
                               "prev_hash": ZERO_HASH, "tx_root": H, "proposer": 0}
    bad: dict[str, object] = {"height": 0, "round": -1, "proposer": -1, "prev_hash": b"x"}
    with pytest.raises(BlockInvalid):
        BlockHeader(**{**good, field: bad[field]})  # type: ignore[arg-type]


# -- signatures ------------------------------------------------------------------------------


def test_vote_sign_verify_and_bit_flips() -> None:
    k = keys(0)
    vote = Vote.sign(k, NET, height=3, round=1, type=VoteType.PREVOTE, block_hash=H, validator=0)
    assert vote.verify(k.signing_key, NET)
    assert not vote.verify(k.signing_key, "other-net")
    assert not vote.verify(keys(1).signing_key, NET)
    for bit in (0, 100, 511):
        sig = bytearray(vote.signature)
        sig[bit // 8] ^= 1 << (bit % 8)
        assert not Vote(3, 1, VoteType.PREVOTE, H, 0, bytes(sig)).verify(k.signing_key, NET)
    # Same fields, other type: a prevote never passes for a precommit.
    assert not Vote(3, 1, VoteType.PRECOMMIT, H, 0, vote.signature).verify(k.signing_key, NET)


def test_proposal_sign_verify() -> None:
    k = keys(0)
    p = Proposal.sign(k, NET, height=1, round=2, block_hash=H, pol_round=0, proposer=0)
    assert p.verify(k.signing_key, NET)
    assert not Proposal(1, 2, H, -1, 0, p.signature).verify(k.signing_key, NET)
    with pytest.raises(VoteInvalid):
        Proposal(1, 2, H, 2, 0, SIG)  # a proof of lock from this round or later


def test_certificate_quorum() -> None:
    validators = [keys(i).signing_key for i in range(4)]
    votes = [Vote.sign(keys(i), NET, height=1, round=0, type=VoteType.PRECOMMIT,
                       block_hash=H, validator=i) for i in range(4)]
    assert quorum(4) == 3 and quorum(3) == 3 and quorum(7) == 5
    CommitCertificate.from_votes(votes[:3]).verify(validators, NET)
    with pytest.raises(VoteInvalid) as info:
        CommitCertificate.from_votes(votes[:2]).verify(validators, NET)
    assert info.value.reason is VoteFault.NO_QUORUM
    with pytest.raises(VoteInvalid) as info:
        CommitCertificate(1, 0, H, ((0, votes[0].signature), (0, votes[0].signature)))
    assert info.value.reason is VoteFault.DUPLICATE_SIGNER
    forged = CommitCertificate(1, 0, H, tuple((v.validator, v.signature) for v in votes[:2])
                               + ((2, votes[3].signature),))
    with pytest.raises(VoteInvalid) as info:
        forged.verify(validators, NET)
    assert info.value.reason is VoteFault.BAD_SIGNATURE
    nil = Vote.sign(keys(0), NET, height=1, round=0, type=VoteType.PRECOMMIT, block_hash=None,
                    validator=0)
    with pytest.raises(VoteInvalid):
        CommitCertificate.from_votes([nil])


# -- hypothesis ------------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)
votes = st.builds(Vote, height=st.integers(1, 2**63 - 1), round=st.integers(0, 2**63 - 1),
                  type=st.sampled_from(VoteType), block_hash=st.none() | hashes,
                  validator=st.integers(0, 1023), signature=st.binary(min_size=64, max_size=64))
blocks = st.builds(
    lambda txs, t, r: Block.build(network_id=NET, height=9, round=r, time_ms=t,
                                  prev_hash=H, proposer=2, txs=txs),
    st.lists(st.binary(max_size=40), max_size=8), st.integers(0, 2**63 - 1),
    st.integers(0, 100))


@settings(max_examples=100)
@given(votes)
def test_vote_roundtrip(vote: Vote) -> None:
    assert Vote.decode(vote.encode()) == vote


@settings(max_examples=50)
@given(blocks)
def test_block_roundtrip(b: Block) -> None:
    assert Block.decode(b.encode()) == b
    assert BlockHeader.decode(b.header.encode()) == b.header


@settings(max_examples=100)
@given(st.binary(max_size=300), st.integers(0, 300))
def test_arbitrary_bytes_give_record_or_decode_error(data: bytes, cut: int) -> None:
    for chunk in (data, data[:cut]):
        for decoder in (Vote.decode, Proposal.decode, CommitCertificate.decode, Block.decode,
                        BlockHeader.decode):
            try:
                decoder(chunk)
            except DecodeError:
                pass


@settings(max_examples=100)
@given(votes, st.integers(0, 159), st.integers(0, 7))
def test_mutated_vote_gives_record_or_decode_error(vote: Vote, pos: int, bit: int) -> None:
    data = bytearray(vote.encode())
    data[pos % len(data)] ^= 1 << bit
    try:
        Vote.decode(bytes(data))
    except DecodeError:
        pass
