"""Bulletproofs+ against a real Monero mainnet proof, plus prove/verify round trips and negatives."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto import bpplus
from petranode.crypto.bpplus import BulletproofPlus, batch_verify, prove, verify
from petranode.crypto.errors import CryptoError, NotInSubgroup
from petranode.crypto.group import G, Point, Scalar
from petranode.crypto.group import L as GROUP_ORDER
from petranode.crypto.pedersen import H, commit

VECTORS = Path(
    os.environ.get("PETRANODE_VECTORS")
    or Path(__file__).parents[3].parent / "shared" / "vectors"
)
FIELDS = ("A", "A1", "B", "r1", "s1", "d1")


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="module")
def tx() -> Any:
    return _load("monero-tx-e89415-ring.json")


@pytest.fixture(scope="module")
def mainnet(tx: Any) -> tuple[list[Point], bytes]:
    """The transaction's outPk commitments and its proof in our encoding."""
    parsed = tx["parsed_from_blob"]
    bp = parsed["bulletproof_plus"][0]
    encoded = b"".join(bytes.fromhex(bp[k]) for k in FIELDS)
    encoded += b"".join(bytes.fromhex(x) for x in bp["L"] + bp["R"])
    commitments = [Point.from_bytes(bytes.fromhex(c)) for c in parsed["outPk_commitments"]]
    return commitments, encoded


@pytest.fixture(scope="module")
def torsion() -> list[Point]:
    return [Point.from_bytes(bytes.fromhex(p["point"]), allow_torsion=True)
            for p in _load("monero-torsion-points.json")["points"]]


def _masks(n: int) -> list[Scalar]:
    return [Scalar.random() for _ in range(n)]


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _decodes_and_verifies(commitments: list[Point], data: bytes) -> bool:
    try:
        proof = BulletproofPlus.decode(data, len(commitments))
    except CryptoError:
        return False
    return verify(commitments, proof)


def _seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "little")).digest(n)

    return rng


# -- the mainnet anchor -----------------------------------------------------------------

def test_generators_and_transcript_match_monero(tx: Any) -> None:
    derived = tx["derived_here"]
    gi, hi = bpplus.generators(2)
    assert H.hex() == derived["H"]
    assert [g.hex() for g in gi] == [derived["bp_plus_Gi_0"], derived["bp_plus_Gi_1"]]
    assert [h.hex() for h in hi] == [derived["bp_plus_Hi_0"], derived["bp_plus_Hi_1"]]
    assert bpplus.INITIAL_TRANSCRIPT.hex() == derived["bp_plus_initial_transcript"]


def test_v_is_commitment_times_inverse_eight(tx: Any, mainnet: tuple[list[Point], bytes]) -> None:
    commitments, _ = mainnet
    inv8 = Scalar.from_int(8).invert()
    assert [(inv8 * c).hex() for c in commitments] == \
        tx["derived_here"]["bp_plus_V_equals_outPk_times_inv8"]


def test_json_fields_are_the_transaction_bytes(tx: Any, mainnet: tuple[list[Point], bytes]) -> None:
    # Monero's prunable part: varint(#proofs) A A1 B r1 s1 d1 varint(#L) L… varint(#R) R…
    blob = (VECTORS / "monero-tx-e89415-bpp.bin").read_bytes()
    _, encoded = mainnet
    start = tx["parsed_from_blob"]["byte_offsets"]["rct_base_end"]
    assert blob[start] == 1
    fixed = blob[start + 1:start + 1 + 192]
    assert blob[start + 193] == 7
    lefts = blob[start + 194:start + 194 + 224]
    assert blob[start + 418] == 7
    rights = blob[start + 419:start + 419 + 224]
    assert fixed + lefts + rights == encoded


def test_mainnet_proof_verifies(mainnet: tuple[list[Point], bytes]) -> None:
    commitments, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    assert proof.encode() == encoded
    assert proof.size == len(encoded) == 640
    assert verify(commitments, proof)


@pytest.mark.parametrize("field", range(6 + 2 * 7))
def test_mainnet_bit_flip_in_any_field_fails(mainnet: tuple[list[Point], bytes],
                                             field: int) -> None:
    commitments, encoded = mainnet
    for bit in (0, 77, 254):
        assert not _decodes_and_verifies(commitments, _flip(encoded, field * 256 + bit))


@pytest.mark.parametrize("index", [0, 1])
def test_mainnet_bit_flip_in_commitment_fails(mainnet: tuple[list[Point], bytes],
                                              index: int) -> None:
    commitments, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    for bit in (0, 100, 254):
        try:
            changed = Point.from_bytes(_flip(commitments[index].raw, bit))
        except CryptoError:
            continue
        altered = list(commitments)
        altered[index] = changed
        assert not verify(altered, proof)


def test_mainnet_proof_rejects_other_commitments(mainnet: tuple[list[Point], bytes]) -> None:
    commitments, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    assert not verify(commitments[::-1], proof)
    assert not verify(commitments[:1], proof)
    assert not verify([commitments[0] + G, commitments[1]], proof)
    assert not verify([commitments[0], commitments[1] + H], proof)


# -- prove / verify ---------------------------------------------------------------------

@pytest.mark.parametrize("m", [1, 2, 3, 16])
def test_prove_verify(m: int) -> None:
    amounts = [(1 << 64) - 1 - 97 * i for i in range(m)]
    masks = _masks(m)
    commitments, proof = prove(amounts, masks)
    assert commitments == tuple(commit(a, k) for a, k in zip(amounts, masks, strict=True))
    assert len(proof.L) == len(proof.R) == bpplus.rounds_for(m)
    assert verify(commitments, proof)
    assert BulletproofPlus.decode(proof.encode(), m) == proof


def test_proof_sizes() -> None:
    assert [bpplus.proof_size(m) for m in (1, 2, 3, 4, 16)] == [576, 640, 704, 704, 832]


@pytest.mark.parametrize("amount", [0, 1, (1 << 63), (1 << 64) - 1])
def test_edge_amounts(amount: int) -> None:
    commitments, proof = prove([amount], _masks(1))
    assert verify(commitments, proof)


@pytest.mark.parametrize("amounts", [[1 << 64], [-1], [5, 1 << 65], [], [1] * 17])
def test_prover_refuses(amounts: list[int]) -> None:
    with pytest.raises(CryptoError):
        prove(amounts, _masks(len(amounts)))


def test_prover_refuses_bad_masks() -> None:
    with pytest.raises(CryptoError):
        prove([1, 2], _masks(1))
    with pytest.raises(CryptoError):
        prove([1], [Scalar.from_int(0)])


@pytest.mark.parametrize("value", [1 << 64, (1 << 64) + 5, GROUP_ORDER - 1, 1 << 200])
def test_forged_out_of_range_proof_fails(value: int) -> None:
    # Monero's prover (and ours, below the public API) reads only the low 64 bits; whatever
    # it produces for a larger value must not verify against that value's commitment.
    mask = Scalar.random()
    forged = mask.mul_base() + Scalar.from_int(value) * H
    proof = bpplus._prove([Scalar.from_int(value)], [mask], [forged], os.urandom)
    assert not verify([forged], proof)


def test_proof_is_bound_to_its_commitments() -> None:
    masks = _masks(2)
    commitments, proof = prove([5, 6], masks)
    assert not verify([commit(6, masks[0]), commitments[1]], proof)
    assert not verify([commit(5, Scalar.random()), commitments[1]], proof)
    assert not verify(commitments[::-1], proof)
    assert not verify(commitments[:1], proof)
    assert not verify([*commitments, commit(7, Scalar.random())], proof)


def test_bit_flips_in_fresh_proof_fail() -> None:
    commitments, proof = prove([123456789], _masks(1))
    encoded = proof.encode()
    for field in range(len(encoded) // 32):
        assert not _decodes_and_verifies(list(commitments), _flip(encoded, field * 256 + 3))


def test_pinned_rng_gives_the_same_proof() -> None:
    masks = _masks(2)
    one = prove([10, 20], masks, rng=_seeded_rng(b"a"))
    two = prove([10, 20], masks, rng=_seeded_rng(b"a"))
    other = prove([10, 20], masks, rng=_seeded_rng(b"b"))
    assert one == two
    assert one[1] != other[1]
    assert verify(*other)


# -- batches ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch(mainnet: tuple[list[Point], bytes]) -> list[tuple[list[Point], BulletproofPlus]]:
    items: list[tuple[list[Point], BulletproofPlus]] = []
    for m in (1, 2, 3, 1):
        fresh, proof = prove([1000 * m + i for i in range(m)], _masks(m))
        items.append((list(fresh), proof))
    commitments, encoded = mainnet
    items.append((commitments, BulletproofPlus.decode(encoded, 2)))
    return items


def test_batch_verifies(batch: list[tuple[list[Point], BulletproofPlus]]) -> None:
    assert batch_verify(batch)
    assert batch_verify(batch[:1])
    assert batch_verify([])


def test_batch_with_one_bad_proof_fails(batch: list[tuple[list[Point], BulletproofPlus]]) -> None:
    # Commitments swapped between two same-size proofs: each proof is valid, the pairs are not.
    swapped = list(batch)
    swapped[0], swapped[3] = (batch[3][0], batch[0][1]), (batch[0][0], batch[3][1])
    assert not batch_verify(swapped)
    tampered = list(batch)
    commitments, proof = batch[2]
    tampered[2] = (commitments, dataclasses.replace(proof, d1=proof.d1 + Scalar.from_int(1)))
    assert not batch_verify(tampered)
    short = list(batch)
    short[1] = (batch[1][0][:1], batch[1][1])
    assert not batch_verify(short)


# -- torsion ----------------------------------------------------------------------------

def test_torsion_in_commitment_fails(mainnet: tuple[list[Point], bytes],
                                     torsion: list[Point]) -> None:
    commitments, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    for t in torsion:
        tainted = commitments[0] + t
        assert not tainted.in_subgroup
        assert not verify([tainted, commitments[1]], proof)


@pytest.mark.parametrize("name", ["A", "A1", "B"])
def test_torsion_in_proof_is_rejected(mainnet: tuple[list[Point], bytes],
                                      torsion: list[Point], name: str) -> None:
    commitments, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    offset = FIELDS.index(name) * 32
    for t in torsion:
        tainted = getattr(proof, name) + t
        with pytest.raises(NotInSubgroup):
            dataclasses.replace(proof, **{name: tainted})
        data = encoded[:offset] + tainted.raw + encoded[offset + 32:]
        with pytest.raises(NotInSubgroup):
            BulletproofPlus.decode(data, 2)
        assert not _decodes_and_verifies(commitments, data)


def test_torsion_in_l_and_r_is_rejected(mainnet: tuple[list[Point], bytes],
                                        torsion: list[Point]) -> None:
    _, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    for t in torsion:
        with pytest.raises(NotInSubgroup):
            dataclasses.replace(proof, L=(proof.L[0] + t, *proof.L[1:]))
        with pytest.raises(NotInSubgroup):
            dataclasses.replace(proof, R=(*proof.R[:-1], proof.R[-1] + t))


# -- codec ------------------------------------------------------------------------------

def test_decode_rejects_malformed(mainnet: tuple[list[Point], bytes]) -> None:
    _, encoded = mainnet
    bad = [
        (encoded + b"\0", 2),  # trailing byte
        (encoded[:-1], 2),  # truncated
        (encoded, 1),  # rounds do not match the output count
        (encoded, 3),
        (encoded, 0),
        (encoded, 17),
        (b"", 1),
        # r1 = l: not reduced
        (encoded[:96] + GROUP_ORDER.to_bytes(32, "little") + encoded[128:], 2),
        # A = identity
        ((1).to_bytes(32, "little") + encoded[32:], 2),
        # A with y >= p: not a canonical encoding
        ((2**255 - 1).to_bytes(32, "little") + encoded[32:], 2),
    ]
    for data, n_outputs in bad:
        with pytest.raises(CryptoError):
            BulletproofPlus.decode(data, n_outputs)


def test_construction_checks_shape(mainnet: tuple[list[Point], bytes]) -> None:
    _, encoded = mainnet
    proof = BulletproofPlus.decode(encoded, 2)
    with pytest.raises(CryptoError):
        dataclasses.replace(proof, L=proof.L[:-1])
    with pytest.raises(CryptoError):
        dataclasses.replace(proof, L=proof.L[:5], R=proof.R[:5])
    with pytest.raises(CryptoError):
        dataclasses.replace(proof, L=proof.L * 2, R=proof.R * 2)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=900), n_outputs=st.integers(-1, 18))
def test_arbitrary_bytes_decode_or_raise(data: bytes, n_outputs: int) -> None:
    try:
        proof = BulletproofPlus.decode(data, n_outputs)
    except CryptoError:
        return
    assert proof.encode() == data


@settings(max_examples=50, deadline=None)
@given(n_outputs=st.integers(1, 16), data=st.data())
def test_random_bytes_of_the_right_length_decode_or_raise(n_outputs: int,
                                                          data: st.DataObject) -> None:
    size = bpplus.proof_size(n_outputs)
    raw = data.draw(st.binary(min_size=size, max_size=size))
    try:
        proof = BulletproofPlus.decode(raw, n_outputs)
    except CryptoError:
        return
    assert proof.encode() == raw


@settings(max_examples=30, deadline=None)
@given(position=st.integers(0, 640 - 1), value=st.integers(1, 255))
def test_mutated_mainnet_proof_never_verifies(mainnet: tuple[list[Point], bytes],
                                              position: int, value: int) -> None:
    commitments, encoded = mainnet
    mutated = bytearray(encoded)
    mutated[position] ^= value
    assert not _decodes_and_verifies(commitments, bytes(mutated))
