"""The Noise XK link handshake (petranode.net.link.noise).

Interoperability with the independent ``noiseprotocol`` implementation in both directions is
the evidence that the machine follows the Noise Protocol Framework; the negatives are the
framework's promises (a flipped bit or a wrong key fails) and petranode's admission rules.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from link_fixtures import (
    AUTHORITIES,
    NETWORK,
    NOW,
    Router,
    certificate,
    handshake_pair,
    keys,
    pinned_rng,
    router,
    run_handshake,
)
from noise.connection import Keypair, NoiseConnection

from petranode.crypto import _sodium as na
from petranode.net.cert import CertificateFault, RouterCertificate
from petranode.net.identity import RouterKeys
from petranode.net.link.errors import (
    CloseReason,
    HandshakeFailed,
    HandshakeFault,
    LinkClosed,
    PeerNotAdmitted,
)
from petranode.net.link.noise import (
    MAX_NONCE,
    PROTOCOL_NAME,
    XK,
    CipherState,
    HandshakePhase,
    HandshakeState,
    LinkHandshake,
    prologue,
)

ALICE = router("alice")
BOB = router("bob")


def noise_peer(
    secret: bytes, *, initiator: bool, remote_static: bytes | None = None, network_id: str = NETWORK
) -> NoiseConnection:
    peer = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        peer.set_as_initiator()
    else:
        peer.set_as_responder()
    peer.set_prologue(prologue(network_id))
    peer.set_keypair_from_private_bytes(Keypair.STATIC, secret)
    if remote_static is not None:
        peer.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_static)
    peer.start_handshake()
    return peer


def router_with_secret(label: str) -> tuple[Router, bytes]:
    rng = pinned_rng(label)
    seed, static_secret = rng(32), rng(32)
    k = RouterKeys.from_secrets(signing_seed=seed, static_secret=static_secret)
    return Router(k, certificate(k)), static_secret


# -- the framework, against noiseprotocol -------------------------------------------------------


def test_protocol_name_fills_one_hash_block() -> None:
    assert PROTOCOL_NAME == b"Noise_XK_25519_ChaChaPoly_SHA256"
    assert len(PROTOCOL_NAME) == 32  # so h = the name itself (Noise §5.2)


def test_our_initiator_interoperates_with_noiseprotocol_responder() -> None:
    responder, responder_secret = router_with_secret("np-responder")
    theirs = noise_peer(responder_secret, initiator=False)
    ours = LinkHandshake.initiator(
        keys=ALICE.keys,
        certificate=ALICE.certificate,
        authorities=AUTHORITIES,
        network_id=NETWORK,
        remote_static=responder.keys.static_key,
    )

    assert theirs.read_message(ours.write_message()) == b""
    ours.read_message(theirs.write_message(responder.certificate.encode()), now=NOW)
    payload = theirs.read_message(ours.write_message())

    assert theirs.handshake_finished and ours.phase is HandshakePhase.COMPLETE
    assert RouterCertificate.decode(bytes(payload)) == ALICE.certificate
    assert ours.result.router_hash == responder.keys.router_hash
    assert ours.result.handshake_hash == theirs.get_handshake_hash()
    # Split() agrees: transport messages cross both ways.
    assert theirs.decrypt(ours.result.sender.encrypt_with_ad(b"", b"ping")) == b"ping"
    assert ours.result.receiver.decrypt_with_ad(b"", theirs.encrypt(b"pong")) == b"pong"


def test_noiseprotocol_initiator_interoperates_with_our_responder() -> None:
    initiator, initiator_secret = router_with_secret("np-initiator")
    theirs = noise_peer(initiator_secret, initiator=True, remote_static=BOB.keys.static_key)
    ours = LinkHandshake.responder(
        keys=BOB.keys, certificate=BOB.certificate, authorities=AUTHORITIES, network_id=NETWORK
    )

    ours.read_message(theirs.write_message(b""), now=NOW)
    assert RouterCertificate.decode(bytes(theirs.read_message(ours.write_message()))) == (
        BOB.certificate
    )
    ours.read_message(theirs.write_message(initiator.certificate.encode()), now=NOW)

    assert theirs.handshake_finished and ours.phase is HandshakePhase.COMPLETE
    assert ours.result.router_hash == initiator.keys.router_hash
    assert ours.result.handshake_hash == theirs.get_handshake_hash()
    assert theirs.decrypt(ours.result.sender.encrypt_with_ad(b"", b"ping")) == b"ping"
    assert ours.result.receiver.decrypt_with_ad(b"", theirs.encrypt(b"pong")) == b"pong"


def test_message_sizes_follow_the_pattern() -> None:
    i, r = handshake_pair(ALICE, BOB)
    m1, m2, m3 = run_handshake(i, r)
    cert_len = len(BOB.certificate.encode())
    assert (len(m1), len(m2), len(m3)) == (48, 32 + cert_len + 16, 48 + cert_len + 16)
    assert i.result.handshake_hash == r.result.handshake_hash
    assert i.result.router_hash == BOB.keys.router_hash
    assert r.result.router_hash == ALICE.keys.router_hash


def test_handshakes_with_a_pinned_rng_are_reproducible() -> None:
    first = run_handshake(*handshake_pair(ALICE, BOB))
    second = run_handshake(*handshake_pair(ALICE, BOB))
    assert first == second
    i, r = handshake_pair(ALICE, BOB)
    i._noise._rng = na.randombytes
    assert run_handshake(i, r) != first


# -- the framework's negatives ------------------------------------------------------------------


@pytest.mark.parametrize("message_index", [0, 1, 2])
@pytest.mark.parametrize("bit", [0, 7, 32 * 8 + 3, -1])
def test_a_flipped_bit_in_any_handshake_message_fails(message_index: int, bit: int) -> None:
    i, r = handshake_pair(ALICE, BOB)
    machines = [(i, r), (r, i), (i, r)]
    for index, (writer, reader) in enumerate(machines):
        message = bytearray(writer.write_message())
        if index == message_index:
            position = bit if bit >= 0 else len(message) * 8 - 1
            message[position // 8] ^= 1 << (position % 8)
            with pytest.raises(HandshakeFailed) as raised:
                reader.read_message(bytes(message), now=NOW)
            assert raised.value.reason in (HandshakeFault.DECRYPTION_FAILED, HandshakeFault.BAD_KEY)
            assert reader.phase is HandshakePhase.FAILED
            with pytest.raises(HandshakeFailed):  # terminal
                reader.read_message(bytes(message), now=NOW)
            return
        reader.read_message(bytes(message), now=NOW)


def test_a_wrong_responder_static_key_fails_at_message_one() -> None:
    i, r = handshake_pair(ALICE, BOB, remote_static=keys("carol").static_key)
    with pytest.raises(HandshakeFailed) as raised:
        r.read_message(i.write_message(), now=NOW)
    assert raised.value.reason is HandshakeFault.DECRYPTION_FAILED


def test_another_network_fails_at_message_one() -> None:
    _, secret = router_with_secret("other-net")
    theirs = noise_peer(
        secret, initiator=True, remote_static=BOB.keys.static_key, network_id="another-network"
    )
    ours = LinkHandshake.responder(
        keys=BOB.keys, certificate=BOB.certificate, authorities=AUTHORITIES, network_id=NETWORK
    )
    with pytest.raises(HandshakeFailed) as raised:
        ours.read_message(theirs.write_message(b""), now=NOW)
    assert raised.value.reason is HandshakeFault.DECRYPTION_FAILED


def test_a_low_order_ephemeral_key_is_refused() -> None:
    _, r = handshake_pair(ALICE, BOB)
    with pytest.raises(HandshakeFailed) as raised:
        r.read_message(bytes(32) + bytes(16), now=NOW)  # the all-zero point has order 1
    assert raised.value.reason is HandshakeFault.BAD_KEY


@pytest.mark.parametrize("length", [0, 31, 32, 47, 49])
def test_wrong_length_first_messages_fail(length: int) -> None:
    i, r = handshake_pair(ALICE, BOB)
    message = i.write_message()
    candidate = (message + b"\x00")[:length] if length <= 48 else message + b"\x00"
    with pytest.raises(HandshakeFailed):
        r.read_message(candidate, now=NOW)


def test_a_payload_in_message_one_is_refused() -> None:
    _, secret = router_with_secret("chatty")
    theirs = noise_peer(secret, initiator=True, remote_static=BOB.keys.static_key)
    ours = LinkHandshake.responder(
        keys=BOB.keys, certificate=BOB.certificate, authorities=AUTHORITIES, network_id=NETWORK
    )
    with pytest.raises(HandshakeFailed) as raised:
        ours.read_message(theirs.write_message(b"early"), now=NOW)
    assert raised.value.reason is HandshakeFault.MALFORMED_MESSAGE


def test_turns_are_enforced_as_our_bug() -> None:
    i, r = handshake_pair(ALICE, BOB)
    with pytest.raises(RuntimeError):
        r.write_message()
    with pytest.raises(RuntimeError):
        i.read_message(b"", now=NOW)
    with pytest.raises(RuntimeError):
        _ = i.result
    run_handshake(i, r)
    with pytest.raises(RuntimeError):
        i.write_message()


# -- admission by certificate -------------------------------------------------------------------


def responder_sends(cert_bytes: bytes, secret: bytes) -> PeerNotAdmitted:
    """Our initiator against a noiseprotocol responder presenting ``cert_bytes``."""
    static = na.crypto_scalarmult_base(secret)
    theirs = noise_peer(secret, initiator=False)
    ours = LinkHandshake.initiator(
        keys=ALICE.keys,
        certificate=ALICE.certificate,
        authorities=AUTHORITIES,
        network_id=NETWORK,
        remote_static=static,
    )
    theirs.read_message(ours.write_message())
    with pytest.raises(PeerNotAdmitted) as raised:
        ours.read_message(theirs.write_message(cert_bytes), now=NOW)
    assert ours.phase is HandshakePhase.FAILED
    return raised.value


def initiator_sends(cert_bytes: bytes, secret: bytes) -> PeerNotAdmitted:
    """A noiseprotocol initiator presenting ``cert_bytes`` to our responder."""
    theirs = noise_peer(secret, initiator=True, remote_static=BOB.keys.static_key)
    ours = LinkHandshake.responder(
        keys=BOB.keys, certificate=BOB.certificate, authorities=AUTHORITIES, network_id=NETWORK
    )
    ours.read_message(theirs.write_message(b""), now=NOW)
    theirs.read_message(ours.write_message())
    with pytest.raises(PeerNotAdmitted) as raised:
        ours.read_message(theirs.write_message(cert_bytes), now=NOW)
    assert ours.phase is HandshakePhase.FAILED
    return raised.value


def refusals() -> list[tuple[str, CertificateFault]]:
    return [
        ("none", CertificateFault.MISSING),
        ("garbage", CertificateFault.MALFORMED),
        ("non-genesis authority", CertificateFault.UNKNOWN_AUTHORITY),
        ("expired", CertificateFault.EXPIRED),
        ("not yet valid", CertificateFault.NOT_YET_VALID),
        ("other network", CertificateFault.WRONG_NETWORK),
        ("another router's certificate", CertificateFault.IDENTITY_MISMATCH),
    ]


def presented(case: str, peer: Router) -> bytes:
    match case:
        case "none":
            return b""
        case "garbage":
            return b"\x93\x01\x02\x03"
        case "non-genesis authority":
            return certificate(peer.keys, authority=keys("rogue-authority")).encode()
        case "expired":
            return certificate(peer.keys, valid_from=NOW - 20, valid_until=NOW - 10).encode()
        case "not yet valid":
            return certificate(peer.keys, valid_from=NOW + 10, valid_until=NOW + 20).encode()
        case "other network":
            return certificate(peer.keys, network_id="other").encode()
        case "another router's certificate":
            return ALICE.certificate.encode() if peer is not ALICE else BOB.certificate.encode()
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "fault"), refusals())
def test_our_initiator_refuses_a_responder_certificate(case: str, fault: CertificateFault) -> None:
    peer, secret = router_with_secret("np-bad-responder")
    assert responder_sends(presented(case, peer), secret).reason is fault


@pytest.mark.parametrize(("case", "fault"), refusals())
def test_our_responder_refuses_an_initiator_certificate(case: str, fault: CertificateFault) -> None:
    peer, secret = router_with_secret("np-bad-initiator")
    assert initiator_sends(presented(case, peer), secret).reason is fault


# -- CipherState ------------------------------------------------------------------------------


def test_cipher_nonce_is_four_zero_bytes_then_the_counter_little_endian() -> None:
    key = bytes(range(32))
    cipher = CipherState(key, n=0x0102030405)
    expected = na.crypto_aead_chacha20poly1305_ietf_encrypt(
        b"m", b"ad", bytes(4) + bytes.fromhex("0504030201000000"), key
    )
    assert cipher.encrypt_with_ad(b"ad", b"m") == expected
    assert cipher.n == 0x0102030406


def test_failed_decryption_does_not_advance_the_nonce() -> None:
    sender, receiver = CipherState(bytes(32)), CipherState(bytes(32))
    good = sender.encrypt_with_ad(b"", b"x")
    with pytest.raises(Exception):  # noqa: B017 — libsodium's refusal, surfaced as CryptoError
        receiver.decrypt_with_ad(b"", good[:-1] + bytes([good[-1] ^ 1]))
    assert receiver.n == 0
    assert receiver.decrypt_with_ad(b"", good) == b"x"


def test_the_reserved_nonce_is_never_used() -> None:
    cipher = CipherState(bytes(32), n=MAX_NONCE - 1)
    cipher.encrypt_with_ad(b"", b"last")
    with pytest.raises(LinkClosed) as raised:
        cipher.encrypt_with_ad(b"", b"one too many")
    assert raised.value.reason is CloseReason.NONCE_EXHAUSTED


def test_rekey_matches_the_specification() -> None:
    key = bytes(range(32))
    cipher = CipherState(key, n=7)
    cipher.rekey()
    expected_key = na.crypto_aead_chacha20poly1305_ietf_encrypt(
        bytes(32), b"", bytes(4) + b"\xff" * 8, key
    )[:32]
    assert cipher.n == 7  # Rekey() keeps the counter
    assert cipher.encrypt_with_ad(b"", b"z") == CipherState(expected_key, n=7).encrypt_with_ad(
        b"", b"z"
    )


def test_generic_pattern_checks() -> None:
    with pytest.raises(ValueError):  # XK needs the responder's key in advance
        HandshakeState(XK, initiator=True, prologue=b"", static=ALICE.keys)


def test_nothing_secret_is_in_a_repr() -> None:
    i, r = handshake_pair(ALICE, BOB)
    run_handshake(i, r)
    text = " ".join(repr(x) for x in (i, r, i.result, i.result.sender, i._noise))
    secrets = [i.result.sender._key, i.result.receiver._key, i.result.handshake_hash]
    for secret in secrets:
        assert secret is not None
        assert repr(secret) not in text
        assert secret.hex() not in text


# -- fuzzing -------------------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_arbitrary_handshake_messages_give_progress_or_a_link_error(data: st.DataObject) -> None:
    i, r = handshake_pair(ALICE, BOB)
    honest = [i.write_message()]
    step = data.draw(st.integers(0, 2))
    tampered = data.draw(st.binary(max_size=600))
    machines = [(i, r), (r, i), (i, r)]
    message = honest[0]
    for index, (writer, reader) in enumerate(machines):
        if index:
            message = writer.write_message()
        if index == step:
            cut = data.draw(st.integers(0, len(message)))
            message = data.draw(st.sampled_from([tampered, message[:cut] + tampered]))
        try:
            reader.read_message(message, now=NOW)
        except (HandshakeFailed, PeerNotAdmitted):
            assert reader.phase is HandshakePhase.FAILED
            return
