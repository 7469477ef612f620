"""Key images: canonical, prime-order, not identity (SPEC §4.5); LNK (SPEC §2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.errors import CryptoError, NonCanonicalEncoding, NotInSubgroup
from petranode.crypto.group import IDENTITY, Point, Scalar, hash_to_point
from petranode.crypto.keyimage import KeyImage, generate_key_image, linked
from petranode.crypto.keys import generate_keys


def torsion_points() -> list[Point]:
    env = os.environ.get("PETRANODE_VECTORS")
    root = Path(env) if env else Path(__file__).parents[3].parent / "shared" / "vectors"
    path = root / "monero-torsion-points.json"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    entries = json.loads(path.read_text())["points"]
    return [Point.from_bytes(bytes.fromhex(e["point"]), allow_torsion=True, allow_identity=True)
            for e in entries]


def test_key_image_is_secret_times_hash_of_public_key() -> None:
    pub, sec = generate_keys()
    image = generate_key_image(pub, sec)
    assert image.point == sec * hash_to_point(pub.raw)
    assert KeyImage.from_bytes(bytes(image)) == image


def test_key_image_plus_torsion_is_rejected() -> None:
    pub, sec = generate_keys()
    image = generate_key_image(pub, sec)
    for t in torsion_points():
        with pytest.raises(NotInSubgroup):
            KeyImage.from_bytes(t.raw)  # a pure torsion point
        shifted = image.point + t
        assert shifted.raw != image.point.raw
        with pytest.raises(NotInSubgroup):
            KeyImage.from_bytes(shifted.raw)
        with pytest.raises(NotInSubgroup):
            KeyImage(shifted)


def test_identity_and_non_canonical_encodings_are_rejected() -> None:
    with pytest.raises(NotInSubgroup):
        KeyImage.from_bytes(IDENTITY.raw)
    # y = p + 1 encodes the identity non-canonically.
    with pytest.raises(CryptoError):
        KeyImage.from_bytes(bytes.fromhex("ee" + "ff" * 30 + "7f"))
    # y = 2 is not on the curve; 31 and 33 bytes are not key images.
    for bad in (bytes.fromhex("02" + "00" * 31), bytes(31), bytes(33)):
        with pytest.raises(CryptoError):
            KeyImage.from_bytes(bad)


def test_non_canonical_y_is_rejected_for_every_small_y() -> None:
    # The only non-canonical encodings are y + p for y < 19 (with either sign bit).
    p = 2**255 - 19
    for y in range(19):
        for sign in (0, 1):
            raw = ((y + p) | (sign << 255)).to_bytes(32, "little")
            with pytest.raises(NonCanonicalEncoding):
                Point.from_bytes(raw, allow_torsion=True, allow_identity=True)


@settings(max_examples=100)
@given(st.binary(min_size=0, max_size=40))
def test_from_bytes_gives_a_key_image_or_crypto_error(data: bytes) -> None:
    try:
        image = KeyImage.from_bytes(data)
    except CryptoError:
        return
    assert bytes(image) == data and image.point.in_subgroup


def test_linkability() -> None:
    pub, sec = generate_keys()
    other_pub, other_sec = generate_keys()
    assert linked(generate_key_image(pub, sec), generate_key_image(pub, sec))
    assert not linked(generate_key_image(pub, sec), generate_key_image(other_pub, other_sec))


def test_zero_secret_is_refused() -> None:
    pub, _ = generate_keys()
    with pytest.raises(CryptoError):
        generate_key_image(pub, Scalar(bytes(32)))
