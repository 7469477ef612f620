"""Directory-authority router certificates (petranode.net.cert)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from link_fixtures import AUTHORITIES, AUTHORITY, NETWORK, NOW, certificate, keys

from petranode.net import cert, signing
from petranode.net.cert import (
    MAX_CERTIFICATE_BYTES,
    CertificateFault,
    CertificateInvalid,
    RouterCertificate,
)
from petranode.wire import codec
from petranode.wire.errors import DecodeError

ROUTER = keys("router")


def test_encoding_lays_out_the_documented_fields() -> None:
    c = certificate(ROUTER)
    fields = codec.decode(c.encode(), max_size=MAX_CERTIFICATE_BYTES)
    assert fields == [
        1,
        NETWORK,
        ROUTER.identity.encode(),
        AUTHORITY.signing_key,
        NOW - 3600,
        NOW + 3600,
        c.signature,
    ]
    assert RouterCertificate.decode(c.encode()) == c
    assert c.router_hash == ROUTER.router_hash
    assert len(c.certificate_id) == 32
    # The authority signs the encoding without the signature, under the certificate domain.
    assert signing.verify(
        AUTHORITY.signing_key,
        c.signature,
        cert.CERTIFICATE_DOMAIN,
        NETWORK,
        codec.encode(fields[:6]),  # type: ignore[index]
    )


def test_the_largest_certificate_fits_the_bound() -> None:
    c = cert.issue(
        AUTHORITY,
        ROUTER.identity,
        network_id="\U0001f50c" * cert.MAX_NETWORK_ID_CHARS,
        valid_from=2**63 - 2,
        valid_until=2**63 - 1,
    )
    assert len(c.encode()) == MAX_CERTIFICATE_BYTES
    assert RouterCertificate.decode(c.encode()) == c


def test_a_valid_certificate_verifies() -> None:
    certificate(ROUTER).verify(AUTHORITIES, NETWORK, NOW, static_key=ROUTER.static_key)
    certificate(ROUTER).verify(AUTHORITIES, NETWORK, NOW - 3600)  # valid_from is inclusive


@pytest.mark.parametrize(
    ("make", "authorities", "network", "now", "static_key", "fault"),
    [
        (
            lambda: certificate(ROUTER),
            AUTHORITIES,
            "other-net",
            NOW,
            None,
            CertificateFault.WRONG_NETWORK,
        ),
        (
            lambda: certificate(ROUTER, authority=keys("rogue")),
            AUTHORITIES,
            NETWORK,
            NOW,
            None,
            CertificateFault.UNKNOWN_AUTHORITY,
        ),
        (
            lambda: certificate(ROUTER),
            frozenset(),
            NETWORK,
            NOW,
            None,
            CertificateFault.UNKNOWN_AUTHORITY,
        ),
        (
            lambda: dataclasses.replace(certificate(ROUTER), valid_until=NOW + 7200),
            AUTHORITIES,
            NETWORK,
            NOW,
            None,
            CertificateFault.BAD_SIGNATURE,
        ),
        (
            lambda: dataclasses.replace(certificate(ROUTER), identity=keys("thief").identity),
            AUTHORITIES,
            NETWORK,
            NOW,
            None,
            CertificateFault.BAD_SIGNATURE,
        ),
        (
            lambda: certificate(ROUTER),
            AUTHORITIES,
            NETWORK,
            NOW + 3600,
            None,
            CertificateFault.EXPIRED,
        ),
        (
            lambda: certificate(ROUTER),
            AUTHORITIES,
            NETWORK,
            NOW - 3601,
            None,
            CertificateFault.NOT_YET_VALID,
        ),
        (
            lambda: certificate(ROUTER),
            AUTHORITIES,
            NETWORK,
            NOW,
            keys("thief").static_key,
            CertificateFault.IDENTITY_MISMATCH,
        ),
    ],
)
def test_verify_names_the_reason(  # type: ignore[no-untyped-def]
    make, authorities, network, now, static_key, fault
) -> None:
    with pytest.raises(CertificateInvalid) as raised:
        make().verify(authorities, network, now, static_key=static_key)
    assert raised.value.reason is fault


def test_a_signature_for_another_network_does_not_verify() -> None:
    other = certificate(ROUTER, network_id="other-net")
    forged = dataclasses.replace(certificate(ROUTER), signature=other.signature)
    with pytest.raises(CertificateInvalid) as raised:
        forged.verify(AUTHORITIES, NETWORK, NOW)
    assert raised.value.reason is CertificateFault.BAD_SIGNATURE


@pytest.mark.parametrize(
    "changes",
    [
        {"valid_from": 10, "valid_until": 10},
        {"valid_from": -1},
        {"network_id": ""},
        {"network_id": "n" * 65},
        {"authority_key": b"\x00" * 31},
        {"signature": b"\x00" * 63},
        {"version": 2},
    ],
)
def test_construction_validates(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(certificate(ROUTER), **changes)  # type: ignore[arg-type]


def test_decode_refuses_non_canonical_and_malformed_bytes() -> None:
    data = certificate(ROUTER).encode()
    fields = codec.decode(data, max_size=1000)
    assert isinstance(fields, list)
    for bad in (
        data[:-1],
        data + b"\x00",
        codec.encode([*fields[:4], 5, 4, fields[6]]),  # valid_from >= valid_until
        codec.encode([2, *fields[1:]]),  # version
        codec.encode(fields[:6]),  # no signature
        codec.encode([*fields[:2], b"\x00" * 70, *fields[3:]]),  # not an identity
        bytes([0xDC, 0, 7]) + data[1:],  # array16 header: not canonical
    ):
        with pytest.raises(DecodeError):
            RouterCertificate.decode(bad)


@settings(max_examples=200)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_decode_gives_a_value_or_decode_error(noise: bytes, cut: int) -> None:
    data = certificate(ROUTER).encode()
    for candidate in (noise, data[:cut] + noise, data[:cut]):
        try:
            RouterCertificate.decode(candidate)
        except DecodeError:
            pass
