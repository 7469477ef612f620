"""The link handshake: Noise XK, sans-IO (SPEC §4.2; Noise Protocol Framework revision 34).

Protocol name ``Noise_XK_25519_ChaChaPoly_SHA256`` — the pattern and hash I2P's NTCP2 uses.
The lower half of this module is the framework itself, written to the specification's
pseudocode: :class:`CipherState` (§5.1), :class:`SymmetricState` (§5.2) and a table-driven
:class:`HandshakeState` (§5.3) that runs any pattern of the tokens ``e s ee es se ss``.
Primitives (§12.1, §12.3, §12.5, §4.3): X25519 with libsodium refusing a low-order result;
ChaCha20-Poly1305 IETF with the nonce as 4 zero bytes then the 64-bit counter little-endian;
SHA-256 and HKDF over HMAC-SHA-256, all through ``petranode.crypto._sodium``.

XK (§7.5)::

    <- s
    ...
    -> e, es                 message 1: 32 + 16 bytes, empty payload
    <- e, ee                 message 2: 32 + |responder certificate| + 16
    -> s, se                 message 3: 48 + |initiator certificate| + 16

The initiator knows the responder's static key from its RouterInfo/certificate beforehand; the
responder learns the initiator's in message 3. The prologue (§6) is the canonical msgpack of
``["petranode/link/v1", network_id]``: two routers of different networks fail at message 1.

:class:`LinkHandshake` is petranode's policy around the machine. Each side's payload is its
:class:`~petranode.net.cert.RouterCertificate`; the receiver checks the certificate is valid now
for this network, signed by a genesis directory authority, and certifies the very static key the
Noise handshake has just authenticated — so a certificate copied from another router is useless.
Rules of the machine: the pattern decides whose turn it is; calling the wrong method is our bug
(``RuntimeError``); a bad peer message raises :class:`HandshakeFailed` or
:class:`PeerNotAdmitted` with its reason, and any failure leaves the machine in ``FAILED`` and every later call re-raises
it (h11 ``ERROR``); after the last message the result holds the two transport
``CipherState`` s from ``Split()`` and the peer's certificate. Secrets are never in a repr.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, final

from petranode.crypto import _sodium as na
from petranode.crypto.errors import CryptoError
from petranode.net.cert import CertificateFault, CertificateInvalid, RouterCertificate
from petranode.net.identity import RouterIdentity
from petranode.net.link.errors import (
    CloseReason,
    HandshakeFailed,
    HandshakeFault,
    LinkClosed,
    LinkError,
    PeerNotAdmitted,
)
from petranode.wire import codec
from petranode.wire.errors import DecodeError

PROTOCOL_NAME: Final = b"Noise_XK_25519_ChaChaPoly_SHA256"
PROLOGUE_DOMAIN: Final = "petranode/link/v1"
DHLEN: Final = 32
HASHLEN: Final = 32
TAGLEN: Final = na.AEAD_TAG_BYTES
#: Noise §3: every message, handshake or transport, is at most 65535 bytes.
MAX_MESSAGE_BYTES: Final = 65_535
#: Noise §5.1: nonce 2⁶⁴−1 is reserved (for Rekey); reaching it ends the CipherState.
MAX_NONCE: Final = 2**64 - 1

Rng = Callable[[int], bytes]


def prologue(network_id: str) -> bytes:
    """The Noise prologue binding a handshake to one petranode network."""
    return codec.encode([PROLOGUE_DOMAIN, network_id])


# -- §4: crypto functions -------------------------------------------------------------------


def _nonce(n: int) -> bytes:
    """§12.3 ChaChaPoly: 32 bits of zeros followed by the 64-bit little-endian counter."""
    return bytes(4) + n.to_bytes(8, "little")


def _hkdf(chaining_key: bytes, input_key_material: bytes, outputs: int) -> list[bytes]:
    """§4.3 HKDF: HMAC-HASH extract then expand, two or three outputs of HASHLEN bytes."""
    temp_key = na.crypto_auth_hmacsha256(input_key_material, chaining_key)
    result: list[bytes] = []
    previous = b""
    for i in range(1, outputs + 1):
        previous = na.crypto_auth_hmacsha256(previous + bytes([i]), temp_key)
        result.append(previous)
    return result


class StaticKey(Protocol):
    """A long-term X25519 key pair that computes DH without revealing its secret (RouterKeys)."""

    @property
    def static_key(self) -> bytes: ...

    def dh(self, remote_static: bytes) -> bytes: ...


@final
class _Ephemeral:
    """A one-handshake X25519 key pair (§5.3 ``e``)."""

    __slots__ = ("_secret", "static_key")

    def __init__(self, rng: Rng) -> None:
        self._secret = rng(DHLEN)
        self.static_key = na.crypto_scalarmult_base(self._secret)

    def dh(self, remote: bytes) -> bytes:
        return na.crypto_scalarmult(self._secret, remote)

    def __repr__(self) -> str:
        return "_Ephemeral(…)"


# -- §5.1 CipherState -----------------------------------------------------------------------


@final
class CipherState:
    """A key and a nonce counter: ChaChaPoly encryption with implicit, strictly ordered nonces."""

    __slots__ = ("_key", "n")

    def __init__(self, key: bytes | None = None, n: int = 0) -> None:
        self._key = key
        self.n = n

    def initialize_key(self, key: bytes | None) -> None:
        self._key = key
        self.n = 0

    def has_key(self) -> bool:
        return self._key is not None

    def set_nonce(self, n: int) -> None:
        self.n = n

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._key is None:
            return plaintext
        self._check_nonce()
        ciphertext = na.crypto_aead_chacha20poly1305_ietf_encrypt(
            plaintext, ad, _nonce(self.n), self._key
        )
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Raises ``SodiumError`` on an authentication failure, leaving ``n`` unchanged."""
        if self._key is None:
            return ciphertext
        self._check_nonce()
        plaintext = na.crypto_aead_chacha20poly1305_ietf_decrypt(
            ciphertext, ad, _nonce(self.n), self._key
        )
        self.n += 1
        return plaintext

    def rekey(self) -> None:
        """§4.2 REKEY: the first 32 bytes of encrypting 32 zeros under the reserved nonce."""
        if self._key is None:
            raise RuntimeError("rekey without a key")
        self._key = na.crypto_aead_chacha20poly1305_ietf_encrypt(
            bytes(32), b"", _nonce(MAX_NONCE), self._key
        )[:32]

    def _check_nonce(self) -> None:
        if self.n >= MAX_NONCE:
            raise LinkClosed(CloseReason.NONCE_EXHAUSTED)

    def __repr__(self) -> str:
        return f"CipherState(keyed={self.has_key()}, n={self.n})"


# -- §5.2 SymmetricState --------------------------------------------------------------------


@final
class SymmetricState:
    __slots__ = ("_chaining_key", "cipher", "h")

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = na.crypto_hash_sha256(protocol_name)
        self._chaining_key = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self._chaining_key, temp_key = _hkdf(self._chaining_key, input_key_material, 2)
        self.cipher.initialize_key(temp_key)

    def mix_hash(self, data: bytes) -> None:
        self.h = na.crypto_hash_sha256(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        first, second = _hkdf(self._chaining_key, b"", 2)
        return CipherState(first), CipherState(second)

    def __repr__(self) -> str:
        return "SymmetricState(…)"


# -- §5.3 HandshakeState --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    name: str
    #: Tokens pre-shared by the initiator, then by the responder (§7.1 pre-messages).
    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    #: Message patterns; even indexes are sent by the initiator.
    messages: tuple[tuple[str, ...], ...]


XK: Final = HandshakePattern(
    name="XK",
    initiator_pre=(),
    responder_pre=("s",),
    messages=(("e", "es"), ("e", "ee"), ("s", "se")),
)


@final
class HandshakeState:
    """§5.3: runs a handshake pattern token by token. A bad peer message raises
    :class:`HandshakeFailed`; transport keys come from :meth:`split` after the last message."""

    __slots__ = (
        "_ephemeral",
        "_pattern",
        "_rng",
        "_static",
        "_symmetric",
        "initiator",
        "message_index",
        "remote_ephemeral",
        "remote_static",
    )

    def __init__(
        self,
        pattern: HandshakePattern,
        *,
        initiator: bool,
        prologue: bytes,
        static: StaticKey,
        remote_static: bytes | None = None,
        rng: Rng = na.randombytes,
    ) -> None:
        self._symmetric = SymmetricState(PROTOCOL_NAME)
        self._symmetric.mix_hash(prologue)
        self._static = static
        self._ephemeral: _Ephemeral | None = None
        self.remote_static = remote_static
        self.remote_ephemeral: bytes | None = None
        self.initiator = initiator
        self._pattern = pattern
        #: Messages written or read so far.
        self.message_index = 0
        self._rng = rng
        self._mix_pre_messages()

    @property
    def finished(self) -> bool:
        return self.message_index == len(self._pattern.messages)

    @property
    def our_turn(self) -> bool:
        return not self.finished and (self.message_index % 2 == 0) == self.initiator

    @property
    def handshake_hash(self) -> bytes:
        return self._symmetric.h

    def write_message(self, payload: bytes) -> bytes:
        if not self.our_turn:
            raise RuntimeError("not our turn to write a handshake message")
        out = bytearray()
        for token in self._next_tokens():
            if token == "e":
                self._ephemeral = _Ephemeral(self._rng)
                out += self._ephemeral.static_key
                self._symmetric.mix_hash(self._ephemeral.static_key)
            elif token == "s":
                out += self._symmetric.encrypt_and_hash(self._static.static_key)
            else:
                self._symmetric.mix_key(self._dh(token))
        out += self._symmetric.encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE_BYTES:
            raise ValueError("handshake message exceeds 65535 bytes")
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """The payload of the peer's next message."""
        if self.finished or self.our_turn:
            raise RuntimeError("not the peer's turn to send a handshake message")
        if len(message) > MAX_MESSAGE_BYTES:
            raise HandshakeFailed(HandshakeFault.MALFORMED_MESSAGE, "longer than 65535 bytes")
        rest = memoryview(message)
        for token in self._next_tokens():
            if token == "e":
                self.remote_ephemeral, rest = _take(rest, DHLEN)
                self._symmetric.mix_hash(self.remote_ephemeral)
            elif token == "s":
                size = DHLEN + TAGLEN if self._symmetric.cipher.has_key() else DHLEN
                encrypted, rest = _take(rest, size)
                self.remote_static = self._decrypt_and_hash(encrypted)
            else:
                self._symmetric.mix_key(self._dh(token))
        if self._symmetric.cipher.has_key() and len(rest) < TAGLEN:
            raise HandshakeFailed(HandshakeFault.MALFORMED_MESSAGE, "no room for the tag")
        return self._decrypt_and_hash(bytes(rest))

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) transport ciphers for this side (§5.2 Split, ordered by role)."""
        if not self.finished:
            raise RuntimeError("handshake not finished")
        first, second = self._symmetric.split()
        return (first, second) if self.initiator else (second, first)

    def _next_tokens(self) -> Sequence[str]:
        tokens = self._pattern.messages[self.message_index]
        self.message_index += 1
        return tokens

    def _decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        try:
            return self._symmetric.decrypt_and_hash(ciphertext)
        except CryptoError as exc:
            # Wrong responder key, another network's prologue, or a flipped bit.
            raise HandshakeFailed(HandshakeFault.DECRYPTION_FAILED) from exc

    def _mix_pre_messages(self) -> None:
        for owner_is_initiator, tokens in (
            (True, self._pattern.initiator_pre),
            (False, self._pattern.responder_pre),
        ):
            for token in tokens:
                if token != "s":
                    raise ValueError(f"pre-message token {token!r} is not supported")
                ours = owner_is_initiator == self.initiator
                key = self._static.static_key if ours else self.remote_static
                if key is None:
                    raise ValueError("the pattern needs the remote static key in advance")
                self._symmetric.mix_hash(key)

    def _dh(self, token: str) -> bytes:
        """§5.3 ``ee es se ss``: the first letter is the initiator's key, the second the
        responder's; each side uses its own secret with the other's public key."""
        initiator_key, responder_key = token[0], token[1]
        local, remote = (
            (initiator_key, responder_key) if self.initiator else (responder_key, initiator_key)
        )
        pair = self._ephemeral if local == "e" else self._static
        public = self.remote_ephemeral if remote == "e" else self.remote_static
        if pair is None or public is None:
            raise RuntimeError(f"token {token!r} before its keys are known")
        try:
            return pair.dh(public)
        except CryptoError as exc:
            raise HandshakeFailed(HandshakeFault.BAD_KEY) from exc

    def __repr__(self) -> str:
        return f"HandshakeState(initiator={self.initiator}, message={self.message_index})"


def _take(view: memoryview, size: int) -> tuple[bytes, memoryview]:
    if len(view) < size:
        raise HandshakeFailed(HandshakeFault.MALFORMED_MESSAGE, "too short")
    return bytes(view[:size]), view[size:]


# -- petranode's handshake policy -----------------------------------------------------------


class HandshakePhase(enum.Enum):
    OUR_TURN = "our_turn"
    THEIR_TURN = "their_turn"
    COMPLETE = "complete"
    FAILED = "failed"


@final
@dataclass(frozen=True, slots=True)
class Established:
    """What a completed handshake yields: transport ciphers and the authenticated peer."""

    sender: CipherState = field(repr=False)
    receiver: CipherState = field(repr=False)
    remote_certificate: RouterCertificate
    handshake_hash: bytes = field(repr=False)

    @property
    def remote_identity(self) -> RouterIdentity:
        return self.remote_certificate.identity

    @property
    def router_hash(self) -> bytes:
        return self.remote_certificate.router_hash


#: Which XK messages carry the sender's certificate: message 1 is encrypted only to the
#: responder's static key, before the initiator is authenticated, so it carries nothing.
_CARRIES_CERTIFICATE: Final = (False, True, True)


@final
class LinkHandshake:
    """One Noise XK handshake between two routers holding directory-authority certificates."""

    __slots__ = (
        "_authorities",
        "_certificate",
        "_error",
        "_network_id",
        "_noise",
        "_remote_certificate",
        "_result",
    )

    def __init__(
        self,
        *,
        initiator: bool,
        keys: StaticKey,
        certificate: RouterCertificate,
        authorities: frozenset[bytes],
        network_id: str,
        remote_static: bytes | None = None,
        rng: Rng = na.randombytes,
    ) -> None:
        """Prefer :meth:`initiator` and :meth:`responder`."""
        self._noise = HandshakeState(
            XK,
            initiator=initiator,
            prologue=prologue(network_id),
            static=keys,
            remote_static=remote_static,
            rng=rng,
        )
        self._certificate = certificate.encode()
        self._authorities = authorities
        self._network_id = network_id
        self._error: LinkError | None = None
        self._remote_certificate: RouterCertificate | None = None
        self._result: Established | None = None

    @classmethod
    def initiator(
        cls,
        *,
        keys: StaticKey,
        certificate: RouterCertificate,
        authorities: frozenset[bytes],
        network_id: str,
        remote_static: bytes,
        rng: Rng = na.randombytes,
    ) -> LinkHandshake:
        """The dialling side; ``remote_static`` comes from the peer's RouterInfo."""
        return cls(
            initiator=True,
            keys=keys,
            certificate=certificate,
            authorities=authorities,
            network_id=network_id,
            remote_static=remote_static,
            rng=rng,
        )

    @classmethod
    def responder(
        cls,
        *,
        keys: StaticKey,
        certificate: RouterCertificate,
        authorities: frozenset[bytes],
        network_id: str,
        rng: Rng = na.randombytes,
    ) -> LinkHandshake:
        return cls(
            initiator=False,
            keys=keys,
            certificate=certificate,
            authorities=authorities,
            network_id=network_id,
            rng=rng,
        )

    @property
    def phase(self) -> HandshakePhase:
        if self._error is not None:
            return HandshakePhase.FAILED
        if self._result is not None:
            return HandshakePhase.COMPLETE
        return HandshakePhase.OUR_TURN if self._noise.our_turn else HandshakePhase.THEIR_TURN

    @property
    def result(self) -> Established:
        if self._result is None:
            raise RuntimeError(f"handshake is {self.phase.value}, not complete")
        return self._result

    def write_message(self) -> bytes:
        """Our next handshake message (message 1, 2 or 3 depending on the role)."""
        self._raise_if_failed()
        if self.phase is not HandshakePhase.OUR_TURN:
            raise RuntimeError(f"handshake is {self.phase.value}; nothing to write")
        carries = _CARRIES_CERTIFICATE[self._noise.message_index]
        message = self._noise.write_message(self._certificate if carries else b"")
        self._finish_if_done()
        return message

    def read_message(self, message: bytes, *, now: float) -> None:
        """Process the peer's next handshake message; ``now`` is Unix time (certificates)."""
        self._raise_if_failed()
        if self.phase is not HandshakePhase.THEIR_TURN:
            raise RuntimeError(f"handshake is {self.phase.value}; not expecting a message")
        carries = _CARRIES_CERTIFICATE[self._noise.message_index]
        try:
            payload = self._noise.read_message(message)
            if carries:
                self._remote_certificate = self._admit(payload, now)
            elif payload:
                raise HandshakeFailed(HandshakeFault.MALFORMED_MESSAGE, "unexpected payload")
        except LinkError as exc:
            self._error = exc
            raise
        self._finish_if_done()

    def fail(self, error: LinkError) -> None:
        """Mark the handshake failed from outside (a timeout, the peer hanging up)."""
        self._error = error

    def _admit(self, payload: bytes, now: float) -> RouterCertificate:
        if not payload:
            raise PeerNotAdmitted(CertificateFault.MISSING)
        try:
            certificate = RouterCertificate.decode(payload)
        except DecodeError as exc:
            raise PeerNotAdmitted(CertificateFault.MALFORMED) from exc
        remote_static = self._noise.remote_static
        if remote_static is None:
            raise RuntimeError("XK authenticates the peer's static key before its certificate")
        try:
            certificate.verify(self._authorities, self._network_id, now, static_key=remote_static)
        except CertificateInvalid as exc:
            raise PeerNotAdmitted(exc.reason) from exc
        return certificate

    def _finish_if_done(self) -> None:
        if not self._noise.finished:
            return
        if self._remote_certificate is None:
            raise RuntimeError("XK finished without the peer's certificate")
        sender, receiver = self._noise.split()
        self._result = Established(
            sender=sender,
            receiver=receiver,
            remote_certificate=self._remote_certificate,
            handshake_hash=self._noise.handshake_hash,
        )

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __repr__(self) -> str:
        return f"LinkHandshake(initiator={self._noise.initiator}, phase={self.phase.value})"
