"""Domain-separated signatures (STYLE: what is signed is the canonical bytes with a domain tag
and the network id).

A signature made for one purpose on one network must verify for no other purpose and on no other
network: the signed bytes are the canonical msgpack array ``[domain, network_id, payload]``.
msgpack is self-delimiting, so no two (domain, network id, payload) triples share signed bytes.
Every record type names its own domain tag, versioned (``"petranode/router-certificate/v1"``).
"""

from __future__ import annotations

from typing import Protocol

from petranode.crypto import _sodium as na
from petranode.wire import codec


class Signer(Protocol):
    """Something that signs with an Ed25519 key it does not reveal (RouterKeys, an HSM)."""

    @property
    def signing_key(self) -> bytes:
        """The 32-byte Ed25519 public key the signatures verify under."""
        ...

    def sign(self, domain: str, network_id: str, payload: bytes) -> bytes:
        """A 64-byte Ed25519 signature over :func:`signing_bytes`."""
        ...


def signing_bytes(domain: str, network_id: str, payload: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers."""
    return codec.encode([domain, network_id, payload])


def verify(
    signing_key: bytes, signature: bytes, domain: str, network_id: str, payload: bytes
) -> bool:
    """Whether ``signature`` is ``signing_key``'s signature of ``payload`` for this domain and
    network. A malformed key or signature is simply not valid."""
    return na.crypto_sign_verify_detached(
        signature, signing_bytes(domain, network_id, payload), signing_key
    )
