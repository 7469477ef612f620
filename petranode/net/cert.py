"""Router certificates issued by the network's directory authorities (SPEC §2 domain
characteristic 3, §4.2: only routers holding a valid directory-authority certificate are admitted).

Participants are fixed and known ahead of time, so there is no open discovery: a directory
authority named in the genesis file signs, for each admitted router, the router's identity (both
public keys) and a validity window. Links check the certificate in the handshake; the netDb will
carry it inside the RouterInfo.

Canonical encoding (a msgpack array, see ``docs/protocol-links.md``)::

    [version, network_id, identity, authority_key, valid_from, valid_until, signature]

``identity`` is the canonical encoding of the :class:`~petranode.net.identity.RouterIdentity`
as a binary string, so the router hash is the SHA-256 of bytes that appear verbatim. The
signature covers the same array without the signature, under the domain tag
:data:`CERTIFICATE_DOMAIN` and the network id (``petranode.net.signing``). Times are integer
Unix seconds; the certificate is valid for ``valid_from <= now < valid_until``.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.errors import PetranodeError
from petranode.net import signing
from petranode.net.identity import MAX_IDENTITY_BYTES, RouterIdentity
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

CERTIFICATE_VERSION: Final = 1
CERTIFICATE_DOMAIN: Final = "petranode/router-certificate/v1"
#: The genesis file allows network ids of 1 to 64 characters.
MAX_NETWORK_ID_CHARS: Final = 64
#: Largest canonical encoding: 1 (array) + 1 (version) + 3 + 4·64 (a 64-character id of
#: 4-byte code points) + 2 + 70 (identity) + 2 + 32 + 2·9 (uint64 times) + 2 + 64 = 451.
MAX_CERTIFICATE_BYTES: Final = 451
_MAX_TIME: Final = 2**63 - 1


class CertificateFault(enum.Enum):
    """Why a certificate does not admit a router."""

    #: The peer sent no certificate where one was required.
    MISSING = "missing"
    #: The bytes are not a certificate.
    MALFORMED = "malformed"
    WRONG_NETWORK = "wrong_network"
    #: Signed by a key that is not a directory authority of this network.
    UNKNOWN_AUTHORITY = "unknown_authority"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    #: Valid, but for another router than the one that presented it.
    IDENTITY_MISMATCH = "identity_mismatch"


class CertificateInvalid(PetranodeError):
    """A router certificate does not admit its holder; ``reason`` says why."""

    def __init__(self, reason: CertificateFault) -> None:
        super().__init__(reason.value)
        self.reason = reason


@final
@dataclass(frozen=True, slots=True)
class RouterCertificate:
    """An authority's statement that ``identity`` belongs to ``network_id`` for a time window."""

    network_id: str
    identity: RouterIdentity
    authority_key: bytes
    valid_from: int
    valid_until: int
    signature: bytes
    version: int = CERTIFICATE_VERSION

    def __post_init__(self) -> None:
        if self.version != CERTIFICATE_VERSION:
            raise ValueError(f"unsupported certificate version {self.version}")
        if not 0 < len(self.network_id) <= MAX_NETWORK_ID_CHARS:
            raise ValueError(f"network id must have 1..{MAX_NETWORK_ID_CHARS} characters")
        if len(self.authority_key) != na.ED25519_BYTES:
            raise ValueError("authority key must be 32 bytes")
        if len(self.signature) != na.SIGN_BYTES:
            raise ValueError("signature must be 64 bytes")
        if not 0 <= self.valid_from < self.valid_until <= _MAX_TIME:
            raise ValueError("validity window must satisfy 0 <= valid_from < valid_until")

    @property
    def router_hash(self) -> bytes:
        return self.identity.router_hash

    @property
    def certificate_id(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return na.crypto_hash_sha256(self.encode())

    def signed_payload(self) -> bytes:
        """The canonical bytes the authority signs (the encoding without the signature)."""
        return codec.encode(self._fields_before_signature())

    def encode(self) -> bytes:
        return codec.encode([*self._fields_before_signature(), self.signature])

    @classmethod
    def decode(cls, data: bytes) -> RouterCertificate:
        """Parse a certificate; raises ``DecodeError`` (signature and validity not checked)."""
        fields = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_CERTIFICATE_BYTES), 7, what="certificate"
        )
        version = codec.expect_int(
            fields[0], CERTIFICATE_VERSION, CERTIFICATE_VERSION, what="certificate.version"
        )
        identity = RouterIdentity.decode(
            codec.expect_bytes(fields[2], max_size=MAX_IDENTITY_BYTES, what="certificate.identity")
        )
        try:
            return cls(
                network_id=codec.expect_str(
                    fields[1],
                    min_len=1,
                    max_len=MAX_NETWORK_ID_CHARS,
                    what="certificate.network_id",
                ),
                identity=identity,
                authority_key=codec.expect_bytes(
                    fields[3], na.ED25519_BYTES, what="certificate.authority_key"
                ),
                valid_from=codec.expect_int(fields[4], 0, _MAX_TIME, what="certificate.valid_from"),
                valid_until=codec.expect_int(
                    fields[5], 0, _MAX_TIME, what="certificate.valid_until"
                ),
                signature=codec.expect_bytes(
                    fields[6], na.SIGN_BYTES, what="certificate.signature"
                ),
                version=version,
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc

    def verify(
        self,
        authorities: frozenset[bytes],
        network_id: str,
        now: float,
        *,
        static_key: bytes | None = None,
    ) -> None:
        """Raise :class:`CertificateInvalid` unless this certificate admits its router.

        ``authorities`` are the genesis directory authorities' Ed25519 keys; ``now`` is Unix
        time; ``static_key``, when given, is the X25519 key the holder has just proved it owns
        (the Noise handshake), which the certified identity must carry. The signature is checked
        before the window, so an expiry reason is only ever reported for a genuine certificate.
        """
        if self.network_id != network_id:
            raise CertificateInvalid(CertificateFault.WRONG_NETWORK)
        if self.authority_key not in authorities:
            raise CertificateInvalid(CertificateFault.UNKNOWN_AUTHORITY)
        if not signing.verify(
            self.authority_key,
            self.signature,
            CERTIFICATE_DOMAIN,
            self.network_id,
            self.signed_payload(),
        ):
            raise CertificateInvalid(CertificateFault.BAD_SIGNATURE)
        if static_key is not None and not na.sodium_memcmp(static_key, self.identity.static_key):
            raise CertificateInvalid(CertificateFault.IDENTITY_MISMATCH)
        if now < self.valid_from:
            raise CertificateInvalid(CertificateFault.NOT_YET_VALID)
        if now >= self.valid_until:
            raise CertificateInvalid(CertificateFault.EXPIRED)

    def _fields_before_signature(self) -> list[codec.Encodable]:
        return [
            self.version,
            self.network_id,
            self.identity.encode(),
            self.authority_key,
            self.valid_from,
            self.valid_until,
        ]


def issue(
    authority: signing.Signer,
    identity: RouterIdentity,
    *,
    network_id: str,
    valid_from: int,
    valid_until: int,
) -> RouterCertificate:
    """Certify ``identity`` for ``network_id`` over ``valid_from <= t < valid_until``."""
    unsigned = RouterCertificate(
        network_id=network_id,
        identity=identity,
        authority_key=authority.signing_key,
        valid_from=valid_from,
        valid_until=valid_until,
        signature=bytes(na.SIGN_BYTES),
    )
    signature = authority.sign(CERTIFICATE_DOMAIN, network_id, unsigned.signed_payload())
    return dataclasses.replace(unsigned, signature=signature)
