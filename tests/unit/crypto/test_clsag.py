"""CLSAG against Monero's data (ph4r05 vectors, mainnet tx e89415…) and bit-flip negatives."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petranode.crypto import clsag
from petranode.crypto.clsag import Clsag
from petranode.crypto.errors import CryptoError, NotInSubgroup
from petranode.crypto.group import IDENTITY, L, Point, Scalar, cn_fast_hash, hash_to_point
from petranode.crypto.keyimage import KeyImage, generate_key_image
from petranode.crypto.pedersen import commit


def vectors_dir() -> Path:
    env = os.environ.get("PETRANODE_VECTORS")
    return Path(env) if env else Path(__file__).parents[3].parent / "shared" / "vectors"


def load(name: str) -> Any:
    return json.loads((vectors_dir() / name).read_text())


def pt(h: str) -> Point:
    return Point.from_bytes(bytes.fromhex(h), allow_torsion=True)


def sc(h: str) -> Scalar:
    return Scalar.from_bytes(bytes.fromhex(h))


Case = tuple[bytes, list[tuple[Point, Point]], Point, Point, Clsag]


def ph4r05(name: str) -> Case:
    v = load("monero-clsag-ph4r05.json")["vectors"][name]
    ring = [(pt(p), pt(c)) for p, c in v["ring"]]
    sig = Clsag(tuple(sc(s) for s in v["ss"]), sc(v["sc1"]), pt(v["sD"]))
    return bytes.fromhex(v["msg"]), ring, pt(v["cout"]), pt(v["sI"]), sig


def mainnet_tx() -> Case:
    t = load("monero-tx-e89415-ring.json")
    ring = [(pt(m["dest"]), pt(m["mask"])) for m in t["ring"]]
    blob = t["parsed_from_blob"]
    c = blob["clsag"][0]
    sig = Clsag(tuple(sc(s) for s in c["s"]), sc(c["c1"]), pt(c["D_times_inv8"]))
    message = bytes.fromhex(t["derived_here"]["clsag_message_pre_mlsag_hash"])
    return (message, ring, pt(blob["pseudoOuts"][0]), pt(blob["inputs"][0]["key_image"]), sig)


def torsion_points() -> list[Point]:
    return [pt(p["point"]) for p in load("monero-torsion-points.json")["points"]]


ANCHORS = ["clsag_01", "clsag_02", "tx_e89415"]


def anchor(name: str) -> Case:
    return mainnet_tx() if name == "tx_e89415" else ph4r05(name)


@pytest.mark.parametrize("name", ANCHORS)
def test_monero_signatures_verify(name: str) -> None:
    message, ring, c_offset, key_image, sig = anchor(name)
    assert clsag.verify(message, ring, c_offset, key_image, sig)
    assert Clsag.decode(sig.encode(), len(ring)) == sig


@pytest.mark.parametrize("name", ANCHORS)
def test_stored_d_is_d_over_eight(name: str) -> None:
    message, ring, c_offset, key_image, sig = anchor(name)
    # Reading the stored D as the full D (i.e. storing D/8 of it) must fail.
    as_full = Clsag(sig.s, sig.c1, Scalar.from_int(8).invert() * sig.D)
    assert not clsag.verify(message, ring, c_offset, key_image, as_full)


def test_mainnet_signature_fails_for_another_message() -> None:
    message, ring, c_offset, key_image, sig = mainnet_tx()
    assert not clsag.verify(cn_fast_hash(message), ring, c_offset, key_image, sig)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _verifies_after_flip(case: Case, bit: int) -> bool:
    """Flip one bit of message ‖ ring ‖ C_offset ‖ I ‖ signature; decode and verify."""
    message, ring, c_offset, key_image, sig = case
    n = len(ring)
    blob = (message + b"".join(p.raw + c.raw for p, c in ring) + c_offset.raw + key_image.raw
            + sig.encode())
    flipped = _flip(blob, bit)
    chunks = [flipped[i:i + 32] for i in range(0, len(flipped), 32)]
    try:
        ring2 = [(Point.from_bytes(chunks[1 + 2 * i], allow_torsion=True),
                  Point.from_bytes(chunks[2 + 2 * i], allow_torsion=True)) for i in range(n)]
        c_offset2 = Point.from_bytes(chunks[1 + 2 * n], allow_torsion=True)
        key_image2 = Point.from_bytes(chunks[2 + 2 * n], allow_torsion=True, allow_identity=True)
        sig2 = Clsag.decode(b"".join(chunks[3 + 2 * n:]), n)
    except CryptoError:
        return False
    return clsag.verify(chunks[0], ring2, c_offset2, key_image2, sig2)


@cache
def _cached_anchor(name: str) -> Case:
    return anchor(name)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(ANCHORS), st.data())
def test_any_flipped_bit_of_an_anchor_fails(name: str, data: st.DataObject) -> None:
    case = _cached_anchor(name)
    n = len(case[1])
    total_bits = 8 * 32 * (1 + 2 * n + 2 + n + 2)
    bit = data.draw(st.integers(0, total_bits - 1))
    assert not _verifies_after_flip(case, bit)


def make_case(n: int, secret_index: int, message: bytes = b"\x11" * 32,
              amount: int = 1000) -> tuple[Case, Scalar, Scalar]:
    ring = [(Scalar.random().mul_base(), commit(amount + i + 1, Scalar.random()))
            for i in range(n)]
    p = Scalar.random()
    input_mask = Scalar.random()
    pseudo_mask = Scalar.random()
    ring[secret_index] = (p.mul_base(), commit(amount, input_mask))
    c_offset = commit(amount, pseudo_mask)
    z = input_mask - pseudo_mask
    sig, key_image = clsag.sign(message, ring, c_offset, secret_index, p, z)
    return (message, ring, c_offset, key_image.point, sig), p, z


@pytest.mark.parametrize("n", [1, 2, 11, 16])
def test_sign_verify_round_trip(n: int) -> None:
    for secret_index in sorted({0, n // 2, n - 1}):
        (message, ring, c_offset, key_image, sig), p, _ = make_case(n, secret_index)
        assert clsag.verify(message, ring, c_offset, key_image, sig)
        assert Clsag.decode(sig.encode(), n) == sig
        assert len(sig.encode()) == Clsag.encoded_size(n)
        # The key image is p·Hp(P): the same output always gives the same image.
        assert key_image == p * hash_to_point(ring[secret_index][0].raw)
        assert clsag.verify(message, ring, c_offset, KeyImage(key_image), sig)
        assert not clsag.verify(b"\x12" * 32, ring, c_offset, key_image, sig)


def test_key_image_links_two_signatures_of_one_output() -> None:
    (_, ring, c_offset, key_image, _), p, z = make_case(4, 2)
    _, again = clsag.sign(b"\x22" * 32, ring, c_offset, 2, p, z)
    assert again == generate_key_image(ring[2][0], p)
    assert again.point == key_image


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_flipped_bit_of_a_fresh_signature_fails(data: st.DataObject) -> None:
    case = _fresh_case()
    n = len(case[1])
    bit = data.draw(st.integers(0, 8 * 32 * (1 + 2 * n + 2 + n + 2) - 1))
    assert not _verifies_after_flip(case, bit)


@cache
def _fresh_case() -> Case:
    return make_case(3, 1)[0]


def test_torsion_key_image_rejected() -> None:
    message, ring, c_offset, key_image, sig = ph4r05("clsag_01")
    for t in torsion_points():
        bad = key_image + t
        assert not bad.in_subgroup
        assert not clsag.verify(message, ring, c_offset, bad, sig)
        with pytest.raises(NotInSubgroup):
            Point.from_bytes(bad.raw)
        with pytest.raises(CryptoError):
            KeyImage(bad)


def test_identity_key_image_rejected() -> None:
    message, ring, c_offset, _, sig = ph4r05("clsag_01")
    assert not clsag.verify(message, ring, c_offset, IDENTITY, sig)


def test_torsion_d_rejected() -> None:
    _, _, _, _, sig = ph4r05("clsag_02")
    for t in torsion_points():
        with pytest.raises(CryptoError):
            Clsag(sig.s, sig.c1, sig.D + t)
        with pytest.raises(CryptoError):
            Clsag.decode(sig.s[0].raw * len(sig.s) + sig.c1.raw + (sig.D + t).raw, len(sig.s))


def test_torsion_c_offset_rejected() -> None:
    message, ring, c_offset, key_image, sig = ph4r05("clsag_01")
    for t in torsion_points():
        assert not clsag.verify(message, ring, c_offset + t, key_image, sig)


def test_repeated_ring_member_rejected() -> None:
    (message, ring, c_offset, key_image, sig), p, z = make_case(4, 0)
    doubled = [ring[0], ring[1], ring[2], ring[1]]
    assert not clsag.verify(message, doubled, c_offset, key_image, sig)
    with pytest.raises(CryptoError):
        clsag.sign(message, doubled, c_offset, 0, p, z)


def test_ring_size_mismatch_rejected() -> None:
    (message, ring, c_offset, key_image, sig), _, _ = make_case(4, 0)
    assert not clsag.verify(message, ring[:3], c_offset, key_image, sig)
    assert not clsag.verify(message, [*ring, (Scalar.random().mul_base(), c_offset)],
                            c_offset, key_image, sig)
    with pytest.raises(CryptoError):
        Clsag.decode(sig.encode(), 3)
    with pytest.raises(CryptoError):
        Clsag.decode(sig.encode(), 5)


def test_non_canonical_scalars_rejected() -> None:
    message, ring, c_offset, key_image, sig = ph4r05("clsag_01")
    raw = sig.encode()
    for offset in (0, 32 * 5, 32 * len(ring)):  # an s_i, another s_i, c1
        value = int.from_bytes(raw[offset:offset + 32], "little") + L
        bad = raw[:offset] + value.to_bytes(32, "little") + raw[offset + 32:]
        with pytest.raises(CryptoError):
            Clsag.decode(bad, len(ring))
    # A hand-built Scalar(raw) that bypassed from_bytes is refused by verify too.
    s0 = Scalar((int(sig.s[0]) + L).to_bytes(32, "little"))
    assert not clsag.verify(message, ring, c_offset, key_image,
                            Clsag((s0, *sig.s[1:]), sig.c1, sig.D))


def test_sign_refuses_wrong_secrets() -> None:
    (message, ring, c_offset, _, _), p, z = make_case(3, 1)
    with pytest.raises(CryptoError):
        clsag.sign(message, ring, c_offset, 0, p, z)  # p is not ring[0]'s key
    with pytest.raises(CryptoError):
        clsag.sign(message, ring, c_offset, 1, p, z + Scalar.from_int(1))
    with pytest.raises(CryptoError):
        clsag.sign(b"short", ring, c_offset, 1, p, z)
    with pytest.raises(CryptoError):
        clsag.sign(message, ring, c_offset, 3, p, z)


def test_ring_size_bounds() -> None:
    with pytest.raises(CryptoError):
        Clsag.decode(b"", 0)
    with pytest.raises(CryptoError):
        Clsag.decode(bytes(32 * (clsag.MAX_RING_SIZE + 3)), clsag.MAX_RING_SIZE + 1)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=32 * 8), st.integers(1, 6))
def test_decode_arbitrary_bytes_gives_clsag_or_crypto_error(data: bytes, n: int) -> None:
    try:
        sig = Clsag.decode(data, n)
    except CryptoError:
        return
    assert sig.encode() == data


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=3, max_size=8))
def test_decode_well_sized_random_chunks(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    try:
        sig = Clsag.decode(data, len(chunks) - 2)
    except CryptoError:
        return
    assert sig.encode() == data
