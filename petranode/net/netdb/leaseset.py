"""LeaseSet: where a destination's inbound tunnels can be reached, signed (SPEC §2, §4.3).

A destination (an anonymous application endpoint, unlinkable to the router that hosts it)
publishes its *leases* — inbound tunnel gateways with their tunnel ids and end times — together
with its public keys: the Ed25519 key that signs the LeaseSet, the X25519 key senders encrypt
garlic messages to, and a revocation key (I2P LeaseSet, kept for the same future use: revoking
a published LeaseSet). Its netDb key is the SHA-256 of the destination encoding.

Canonical encodings (field tables with sizes in ``docs/netdb.md``)::

    destination: ["dest", version, signing_key, encryption_key]
    lease:       [gateway, tunnel_id, end_ms]
    leaseset:    [kind=1, version, destination, revocation_key, leases, published_ms,
                  expires_ms, signature]

The ``"dest"`` tag keeps a destination's hash distinct from a router hash even if someone
reused a router's keys for a destination, so the two never compete for one netDb key. The
signature covers the LeaseSet encoding with an empty signature, under
:data:`LEASESET_DOMAIN` and the network id. Leases end inside ``(published, expires]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

LEASESET_KIND: Final = 1
LEASESET_VERSION: Final = 1
DESTINATION_VERSION: Final = 1
DESTINATION_TAG: Final = "dest"
LEASESET_DOMAIN: Final = "petranode/leaseset/v1"
#: I2P's LeaseSet holds at most 16 leases.
MAX_LEASES: Final = 16
HASH_BYTES: Final = 32
_MAX_TUNNEL_ID: Final = 2**32 - 1
_MAX_TIME: Final = 2**63 - 1
#: 1 (array) + 5 ("dest") + 1 (version) + 2·(2+32) = 75.
MAX_DESTINATION_BYTES: Final = 75
#: 1 (array) + 1 (kind) + 1 (version) + 2+75 (destination) + 2+32 (revocation key)
#: + 3 + 16·(1 + 2+32 + 5 + 9) (leases) + 9 + 9 (times) + 2+64 (signature) = 985; a test
#: builds one of exactly this size.
MAX_LEASESET_BYTES: Final = 985
_FIELDS: Final = 8


def _is_ed25519_key(key: bytes) -> bool:
    return len(key) == na.ED25519_BYTES and na.crypto_core_ed25519_is_valid_point(key)


@final
@dataclass(frozen=True, slots=True)
class Destination:
    """A destination's public keys; :attr:`key` is its netDb key."""

    signing_key: bytes
    encryption_key: bytes
    version: int = DESTINATION_VERSION

    def __post_init__(self) -> None:
        if self.version != DESTINATION_VERSION:
            raise ValueError(f"unsupported destination version {self.version}")
        if not _is_ed25519_key(self.signing_key):
            raise ValueError("destination signing key is not a valid Ed25519 public key")
        if len(self.encryption_key) != na.X25519_BYTES:
            raise ValueError("destination encryption key must be 32 bytes")

    @property
    def key(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return na.crypto_hash_sha256(self.encode())

    def encode(self) -> bytes:
        return codec.encode([DESTINATION_TAG, self.version, self.signing_key,
                             self.encryption_key])

    @classmethod
    def decode(cls, data: bytes) -> Destination:
        fields = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_DESTINATION_BYTES), 4, what="destination")
        if fields[0] != DESTINATION_TAG:
            raise DecodeError(DecodeFault.WRONG_SHAPE, "destination: missing tag")
        version = codec.expect_int(fields[1], DESTINATION_VERSION, DESTINATION_VERSION,
                                   what="destination.version")
        try:
            return cls(
                signing_key=codec.expect_bytes(fields[2], na.ED25519_BYTES,
                                               what="destination.signing_key"),
                encryption_key=codec.expect_bytes(fields[3], na.X25519_BYTES,
                                                  what="destination.encryption_key"),
                version=version,
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc


@final
@dataclass(frozen=True, slots=True)
class Lease:
    """One inbound tunnel: its gateway router, the gateway's tunnel id, and when it ends."""

    gateway: bytes
    tunnel_id: int
    end_ms: int

    def __post_init__(self) -> None:
        if len(self.gateway) != HASH_BYTES:
            raise ValueError("gateway must be a 32-byte router hash")
        # Tunnel id 0 is reserved in I2P (it marks "no tunnel").
        if not 0 < self.tunnel_id <= _MAX_TUNNEL_ID:
            raise ValueError("tunnel id must be 1..2^32-1")
        if not 0 <= self.end_ms <= _MAX_TIME:
            raise ValueError("lease end out of range")

    def to_value(self) -> list[codec.Encodable]:
        return [self.gateway, self.tunnel_id, self.end_ms]

    @classmethod
    def from_value(cls, value: codec.Value) -> Lease:
        fields = codec.expect_list(value, 3, what="lease")
        return cls(
            gateway=codec.expect_bytes(fields[0], HASH_BYTES, what="lease.gateway"),
            tunnel_id=codec.expect_int(fields[1], 1, _MAX_TUNNEL_ID, what="lease.tunnel_id"),
            end_ms=codec.expect_int(fields[2], 0, _MAX_TIME, what="lease.end_ms"),
        )


@final
@dataclass(frozen=True, slots=True)
class LeaseSet:
    """A destination's signed leases; :attr:`key` is the destination's hash."""

    destination: Destination
    revocation_key: bytes
    leases: tuple[Lease, ...]
    published_ms: int
    expires_ms: int
    #: 64 bytes, or empty for an unsigned record (the validator refuses it as UNSIGNED).
    signature: bytes
    version: int = LEASESET_VERSION

    def __post_init__(self) -> None:
        if self.version != LEASESET_VERSION:
            raise ValueError(f"unsupported leaseset version {self.version}")
        if not _is_ed25519_key(self.revocation_key):
            raise ValueError("revocation key is not a valid Ed25519 public key")
        if not 1 <= len(self.leases) <= MAX_LEASES:
            raise ValueError(f"a leaseset holds 1..{MAX_LEASES} leases")
        if not 0 <= self.published_ms < self.expires_ms <= _MAX_TIME:
            raise ValueError("times must satisfy 0 <= published_ms < expires_ms")
        if not all(self.published_ms < lease.end_ms <= self.expires_ms for lease in self.leases):
            raise ValueError("every lease must end in (published_ms, expires_ms]")
        if len(self.signature) not in (0, na.SIGN_BYTES):
            raise ValueError("signature must be empty or 64 bytes")

    @property
    def key(self) -> bytes:
        return self.destination.key

    def signed_payload(self) -> bytes:
        return codec.encode(self._fields(b""))

    def encode(self) -> bytes:
        return codec.encode(self._fields(self.signature))

    @classmethod
    def decode(cls, data: bytes) -> LeaseSet:
        """Parse a LeaseSet; raises ``DecodeError`` (signature and times not checked)."""
        value = codec.decode_canonical(data, max_size=MAX_LEASESET_BYTES)
        return cls.from_fields(codec.expect_list(value, _FIELDS, what="leaseset"))

    @classmethod
    def from_fields(cls, fields: list[codec.Value]) -> LeaseSet:
        """Build from the decoded array of a canonical encoding (``records.decode_record``)."""
        codec.expect_list(fields, _FIELDS, what="leaseset")
        codec.expect_int(fields[0], LEASESET_KIND, LEASESET_KIND, what="leaseset.kind")
        version = codec.expect_int(fields[1], LEASESET_VERSION, LEASESET_VERSION,
                                   what="leaseset.version")
        destination = Destination.decode(codec.expect_bytes(
            fields[2], max_size=MAX_DESTINATION_BYTES, what="leaseset.destination"))
        leases = codec.expect_list(fields[4], what="leaseset.leases")
        if len(leases) > MAX_LEASES:
            raise DecodeError(DecodeFault.WRONG_SHAPE, "leaseset: too many leases")
        try:
            return cls(
                destination=destination,
                revocation_key=codec.expect_bytes(fields[3], na.ED25519_BYTES,
                                                  what="leaseset.revocation_key"),
                leases=tuple(Lease.from_value(lease) for lease in leases),
                published_ms=codec.expect_int(fields[5], 0, _MAX_TIME,
                                              what="leaseset.published_ms"),
                expires_ms=codec.expect_int(fields[6], 0, _MAX_TIME, what="leaseset.expires_ms"),
                signature=codec.expect_bytes(fields[7], max_size=na.SIGN_BYTES,
                                             what="leaseset.signature"),
                version=version,
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc

    def _fields(self, signature: bytes) -> list[codec.Encodable]:
        return [LEASESET_KIND, self.version, self.destination.encode(), self.revocation_key,
                [lease.to_value() for lease in self.leases], self.published_ms, self.expires_ms,
                signature]


def sign_leaseset(signer: Signer, network_id: str, *, destination: Destination,
                  revocation_key: bytes, leases: tuple[Lease, ...], published_ms: int,
                  expires_ms: int) -> LeaseSet:
    """A LeaseSet signed by ``signer``, which must hold ``destination``'s signing key."""
    unsigned = LeaseSet(destination=destination, revocation_key=revocation_key, leases=leases,
                        published_ms=published_ms, expires_ms=expires_ms, signature=b"")
    signature = signer.sign(LEASESET_DOMAIN, network_id, unsigned.signed_payload())
    return dataclasses.replace(unsigned, signature=signature)
