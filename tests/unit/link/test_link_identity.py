"""Router identity, router keys and domain-separated signatures (petranode.net.identity, .signing)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from link_fixtures import NETWORK, keys

from petranode.crypto import _sodium as na
from petranode.net import signing
from petranode.net.identity import RouterIdentity, RouterKeys
from petranode.wire.errors import DecodeError

SEED = bytes(range(32))
STATIC = bytes(range(32, 64))


def test_identity_encoding_is_fixed_and_hashed() -> None:
    router = RouterKeys.from_secrets(signing_seed=SEED, static_secret=STATIC)
    identity = router.identity
    encoded = identity.encode()
    assert encoded == (
        b"\x93\x01\xc4\x20" + identity.signing_key + b"\xc4\x20" + identity.static_key
    )
    assert len(encoded) == 70
    assert identity.router_hash == hashlib.sha256(encoded).digest() == router.router_hash
    assert RouterIdentity.decode(encoded) == identity
    # Ed25519 and X25519 public keys derived as libsodium derives them.
    assert identity.signing_key == na.crypto_sign_seed_keypair(SEED)[0]
    assert identity.static_key == na.crypto_scalarmult_base(STATIC)


def test_keys_are_never_in_a_repr() -> None:
    router = RouterKeys.from_secrets(signing_seed=SEED, static_secret=STATIC)
    text = repr(router) + str(router)
    for secret in (SEED, STATIC):
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert router.router_hash.hex()[:16] in text


def test_generate_uses_the_given_rng_and_differs_by_default() -> None:
    assert keys("a").identity == keys("a").identity
    assert RouterKeys.generate().identity != RouterKeys.generate().identity


@pytest.mark.parametrize(
    ("seed", "static"), [(SEED[:31], STATIC), (SEED, STATIC + b"\x00"), (b"", b"")]
)
def test_from_secrets_refuses_wrong_lengths(seed: bytes, static: bytes) -> None:
    with pytest.raises(ValueError):
        RouterKeys.from_secrets(signing_seed=seed, static_secret=static)


def test_identity_refuses_keys_that_cannot_be_keys() -> None:
    good = keys("x").identity
    with pytest.raises(ValueError):
        RouterIdentity(signing_key=bytes(32), static_key=good.static_key)  # small order
    with pytest.raises(ValueError):
        RouterIdentity(signing_key=good.signing_key, static_key=bytes(31))
    with pytest.raises(ValueError):
        RouterIdentity(signing_key=good.signing_key, static_key=good.static_key, version=2)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b"\x93\x02" + b[2:],  # version 2
        lambda b: b"\x92" + b[1:36],  # two fields
        lambda b: b[:2] + b"\xc5\x00\x20" + b[4:],  # bin16 header: not canonical
    ],
)
def test_identity_decode_refuses_malformed_bytes(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError):
        RouterIdentity.decode(mutate(keys("y").identity.encode()))


@settings(max_examples=200)
@given(st.binary(max_size=80))
def test_identity_decode_gives_a_value_or_decode_error(data: bytes) -> None:
    try:
        RouterIdentity.decode(data)
    except DecodeError:
        pass


def test_signatures_are_bound_to_domain_and_network() -> None:
    router = keys("signer")
    sig = router.sign("petranode/test/v1", NETWORK, b"payload")
    assert signing.verify(router.signing_key, sig, "petranode/test/v1", NETWORK, b"payload")
    assert not signing.verify(router.signing_key, sig, "petranode/other/v1", NETWORK, b"payload")
    assert not signing.verify(router.signing_key, sig, "petranode/test/v1", "other", b"payload")
    assert not signing.verify(router.signing_key, sig, "petranode/test/v1", NETWORK, b"payloaD")
    assert not signing.verify(
        keys("other").signing_key, sig, "petranode/test/v1", NETWORK, b"payload"
    )
    assert not signing.verify(
        router.signing_key, sig[:-1], "petranode/test/v1", NETWORK, b"payload"
    )
    # What is signed is the canonical msgpack triple.
    expected = b"\x93\xb1petranode/test/v1\xad" + NETWORK.encode() + b"\xc4\x07payload"
    assert signing.signing_bytes("petranode/test/v1", NETWORK, b"payload") == expected
    assert na.crypto_sign_verify_detached(sig, expected, router.signing_key)
