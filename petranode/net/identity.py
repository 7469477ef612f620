"""A router's public identity and the secrets behind it (SPEC §2 RouterInfo keys, §4.2 links).

A router has two long-term keys: an Ed25519 signing key (certificates, RouterInfos, votes) and
an X25519 static key (the Noise XK link handshake, tunnel build records). :class:`RouterIdentity`
is the public pair; its canonical encoding is ``[version, signing_key, static_key]`` and its
*router hash* — the name of the router everywhere above this layer, and its Kademlia key in the
netDb — is the SHA-256 of that encoding (I2P's ``IdentHash``).

:class:`RouterKeys` holds the secrets. It signs and computes static Diffie-Hellman results
without handing its secrets out, and its ``repr`` shows only the router hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.net.signing import signing_bytes
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

IDENTITY_VERSION: Final = 1
KEY_BYTES: Final = 32
#: Canonical encoding is 70 bytes (array header, version, two bin8 headers, two keys).
MAX_IDENTITY_BYTES: Final = 70


@final
@dataclass(frozen=True, slots=True)
class RouterIdentity:
    """A router's public keys; the same keys always give the same :attr:`router_hash`."""

    signing_key: bytes
    static_key: bytes
    version: int = IDENTITY_VERSION

    def __post_init__(self) -> None:
        if self.version != IDENTITY_VERSION:
            raise ValueError(f"unsupported identity version {self.version}")
        if len(self.static_key) != KEY_BYTES:
            raise ValueError("static key must be 32 bytes")
        # Canonical, on the curve, not of small order: a key no signature could be checked
        # against would let anyone claim this identity.
        if len(self.signing_key) != KEY_BYTES or not na.crypto_core_ed25519_is_valid_point(
            self.signing_key
        ):
            raise ValueError("signing key is not a valid Ed25519 public key")

    def encode(self) -> bytes:
        return codec.encode([self.version, self.signing_key, self.static_key])

    @classmethod
    def decode(cls, data: bytes) -> RouterIdentity:
        fields = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_IDENTITY_BYTES), 3, what="identity"
        )
        version = codec.expect_int(
            fields[0], IDENTITY_VERSION, IDENTITY_VERSION, what="identity.version"
        )
        try:
            return cls(
                signing_key=codec.expect_bytes(fields[1], KEY_BYTES, what="identity.signing_key"),
                static_key=codec.expect_bytes(fields[2], KEY_BYTES, what="identity.static_key"),
                version=version,
            )
        except ValueError as exc:
            raise DecodeError(DecodeFault.WRONG_SHAPE, str(exc)) from exc

    @property
    def router_hash(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return na.crypto_hash_sha256(self.encode())


@final
class RouterKeys:
    """A router's secret keys: the Ed25519 seed and the X25519 static secret."""

    __slots__ = ("_signing_secret", "_static_secret", "identity")

    def __init__(
        self, *, signing_secret: bytes, static_secret: bytes, identity: RouterIdentity
    ) -> None:
        """Use :meth:`from_secrets` or :meth:`generate`; this only stores derived material."""
        self._signing_secret = signing_secret
        self._static_secret = static_secret
        self.identity = identity

    @classmethod
    def from_secrets(cls, *, signing_seed: bytes, static_secret: bytes) -> RouterKeys:
        """Rebuild the keys from the two 32-byte secrets the keystore holds."""
        if len(signing_seed) != na.SIGN_SEED_BYTES or len(static_secret) != na.X25519_BYTES:
            raise ValueError("router secrets must be 32 bytes each")
        signing_key, signing_secret = na.crypto_sign_seed_keypair(signing_seed)
        identity = RouterIdentity(
            signing_key=signing_key, static_key=na.crypto_scalarmult_base(static_secret)
        )
        return cls(signing_secret=signing_secret, static_secret=static_secret, identity=identity)

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] = na.randombytes) -> RouterKeys:
        """Fresh keys from ``rng`` (the OS CSPRNG unless a test pins it)."""
        return cls.from_secrets(
            signing_seed=rng(na.SIGN_SEED_BYTES), static_secret=rng(na.X25519_BYTES)
        )

    @property
    def signing_key(self) -> bytes:
        return self.identity.signing_key

    @property
    def static_key(self) -> bytes:
        return self.identity.static_key

    @property
    def router_hash(self) -> bytes:
        return self.identity.router_hash

    def sign(self, domain: str, network_id: str, payload: bytes) -> bytes:
        """Ed25519 signature over ``signing_bytes(domain, network_id, payload)``."""
        return na.crypto_sign_detached(
            signing_bytes(domain, network_id, payload), self._signing_secret
        )

    def dh(self, remote_static: bytes) -> bytes:
        """X25519 of our static secret with ``remote_static``; refuses low-order points."""
        return na.crypto_scalarmult(self._static_secret, remote_static)

    def __repr__(self) -> str:
        return f"RouterKeys(router_hash={self.router_hash.hex()[:16]}…)"
