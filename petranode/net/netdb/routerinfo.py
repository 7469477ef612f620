"""RouterInfo: a router's signed, certified self-description in the netDb (SPEC §2, §4.3).

What I2P's RouterInfo is, for a permissioned network: the router's identity (Ed25519 signing key
and X25519 static key), where to reach it, what it does, when it said so, the directory
authority's certificate that admits it, and its own signature over all of that. Its netDb key is
the router hash, SHA-256 of the identity encoding (I2P ``IdentHash``).

Canonical encoding (a msgpack array; field table with sizes in ``docs/netdb.md``)::

    [kind=0, version, identity, addresses, roles, published_ms, certificate, signature]

``identity`` and ``certificate`` are the canonical encodings of their records as binary strings.
``addresses`` is a list of ``[transport, host, port]``: ``"tcp"`` for the link, ``"udp"`` for the
netDb. The signature covers the same array with an empty signature, under
:data:`ROUTERINFO_DOMAIN` and the network id (``petranode.net.signing``). An empty signature is
how an unsigned record is represented, so the validator can name it (``UNSIGNED``).
Construction checks shape only; :func:`petranode.net.netdb.records.check` does the rest.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.cert import MAX_CERTIFICATE_BYTES, RouterCertificate
from petranode.net.identity import MAX_IDENTITY_BYTES, RouterIdentity
from petranode.net.signing import Signer
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

ROUTERINFO_KIND: Final = 0
ROUTERINFO_VERSION: Final = 1
ROUTERINFO_DOMAIN: Final = "petranode/routerinfo/v1"
TRANSPORTS: Final = frozenset({"tcp", "udp"})
#: A link and a netDb address per address family is four; eight leaves room without letting a
#: record carry a port scan's worth of targets.
MAX_ADDRESSES: Final = 8
#: Genesis and config name hosts by IP literal (an IPv6 literal is at most 45 characters).
MAX_HOST_CHARS: Final = 64
MAX_ROLES: Final = 8
MAX_ROLE_CHARS: Final = 16
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,15}")
_MAX_TIME: Final = 2**63 - 1
#: Largest canonical encoding: 1 (array) + 1 (kind) + 1 (version) + 2+70 (identity)
#: + 1 + 8·(1 + 4 + 2+64 + 3) (addresses) + 1 + 8·(1+16) (roles) + 9 (published)
#: + 3+451 (certificate) + 2+64 (signature) = 1334; a test builds one of exactly this size.
MAX_ROUTERINFO_BYTES: Final = 1334
_FIELDS: Final = 8


@final
@dataclass(frozen=True, slots=True)
class Address:
    """One way to reach a router: ``transport`` is ``"tcp"`` (link) or ``"udp"`` (netDb)."""

    transport: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {sorted(TRANSPORTS)}")
        if not (0 < len(self.host) <= MAX_HOST_CHARS and self.host.isascii()
                and self.host.isprintable() and " " not in self.host):
            raise ValueError(f"host must be 1..{MAX_HOST_CHARS} printable ASCII characters")
        if not 0 < self.port < 65_536:
            raise ValueError("port must be 1..65535")

    def to_value(self) -> list[codec.Encodable]:
        return [self.transport, self.host, self.port]

    @classmethod
    def from_value(cls, value: codec.Value) -> Address:
        fields = codec.expect_list(value, 3, what="routerinfo.address")
        return cls(
            transport=codec.expect_str(fields[0], min_len=1, max_len=3,
                                       what="routerinfo.address.transport"),
            host=codec.expect_str(fields[1], min_len=1, max_len=MAX_HOST_CHARS,
                                  what="routerinfo.address.host"),
            port=codec.expect_int(fields[2], 1, 65_535, what="routerinfo.address.port"),
        )


@final
@dataclass(frozen=True, slots=True)
class RouterInfo:
    """A router's signed description; :attr:`key` is its router hash."""

    identity: RouterIdentity
    addresses: tuple[Address, ...]
    roles: tuple[str, ...]
    published_ms: int
    certificate: RouterCertificate
    #: 64 bytes, or empty for an unsigned record (the validator refuses it as UNSIGNED).
    signature: bytes
    version: int = ROUTERINFO_VERSION

    def __post_init__(self) -> None:
        if self.version != ROUTERINFO_VERSION:
            raise ValueError(f"unsupported routerinfo version {self.version}")
        if len(self.addresses) > MAX_ADDRESSES:
            raise ValueError(f"at most {MAX_ADDRESSES} addresses")
        if len(set(self.addresses)) != len(self.addresses):
            raise ValueError("an address is listed twice")
        if len(self.roles) > MAX_ROLES:
            raise ValueError(f"at most {MAX_ROLES} roles")
        if not all(_ROLE.fullmatch(role) for role in self.roles):
            raise ValueError("a role must match [a-z][a-z0-9_]{0,15}")
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("a role is listed twice")
        if not 0 <= self.published_ms <= _MAX_TIME:
            raise ValueError("published_ms out of range")
        if len(self.signature) not in (0, na.SIGN_BYTES):
            raise ValueError("signature must be empty or 64 bytes")

    @property
    def key(self) -> bytes:
        """The netDb key: SHA-256 of the identity encoding."""
        return self.identity.router_hash

    def address(self, transport: str) -> Address | None:
        """The first address of ``transport``, if any."""
        return next((a for a in self.addresses if a.transport == transport), None)

    def signed_payload(self) -> bytes:
        """The canonical bytes the router signs: the encoding with an empty signature."""
        return codec.encode(self._fields(b""))

    def encode(self) -> bytes:
        return codec.encode(self._fields(self.signature))

    @classmethod
    def decode(cls, data: bytes) -> RouterInfo:
        """Parse a RouterInfo; raises ``DecodeError`` (signature and validity not checked)."""
        value = codec.decode_canonical(data, max_size=MAX_ROUTERINFO_BYTES)
        return cls.from_fields(codec.expect_list(value, _FIELDS, what="routerinfo"))

    @classmethod
    def from_fields(cls, fields: list[codec.Value]) -> RouterInfo:
        """Build from the decoded array of a canonical encoding (``records.decode_record``)."""
        codec.expect_list(fields, _FIELDS, what="routerinfo")
        codec.expect_int(fields[0], ROUTERINFO_KIND, ROUTERINFO_KIND, what="routerinfo.kind")
        version = codec.expect_int(fields[1], ROUTERINFO_VERSION, ROUTERINFO_VERSION,
                                   what="routerinfo.version")
        identity = RouterIdentity.decode(
            codec.expect_bytes(fields[2], max_size=MAX_IDENTITY_BYTES, what="routerinfo.identity"))
        certificate = RouterCertificate.decode(codec.expect_bytes(
            fields[6], max_size=MAX_CERTIFICATE_BYTES, what="routerinfo.certificate"))
        addresses = codec.expect_list(fields[3], what="routerinfo.addresses")
        roles = codec.expect_list(fields[4], what="routerinfo.roles")
        if len(addresses) > MAX_ADDRESSES or len(roles) > MAX_ROLES:
            raise DecodeError(DecodeFault.WRONG_SHAPE, "routerinfo: too many addresses or roles")
        try:
            return cls(
                identity=identity,
                addresses=tuple(Address.from_value(a) for a in addresses),
                roles=tuple(codec.expect_str(r, min_len=1, max_len=MAX_ROLE_CHARS,
                                             what="routerinfo.role") for r in roles),
                published_ms=codec.expect_int(fields[5], 0, _MAX_TIME,
                                              what="routerinfo.published_ms"),
                certificate=certificate,
                signature=codec.expect_bytes(fields[7], max_size=na.SIGN_BYTES,
                                             what="routerinfo.signature"),
                version=version,
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc

    def _fields(self, signature: bytes) -> list[codec.Encodable]:
        return [ROUTERINFO_KIND, self.version, self.identity.encode(),
                [a.to_value() for a in self.addresses], list(self.roles), self.published_ms,
                self.certificate.encode(), signature]


def sign_routerinfo(signer: Signer, network_id: str, *, identity: RouterIdentity,
                    addresses: tuple[Address, ...], roles: tuple[str, ...], published_ms: int,
                    certificate: RouterCertificate) -> RouterInfo:
    """A RouterInfo signed by ``signer``, which must hold ``identity``'s signing key."""
    unsigned = RouterInfo(identity=identity, addresses=addresses, roles=roles,
                          published_ms=published_ms, certificate=certificate, signature=b"")
    signature = signer.sign(ROUTERINFO_DOMAIN, network_id, unsigned.signed_payload())
    return dataclasses.replace(unsigned, signature=signature)
