"""The unauthenticated ChaCha20 transform the tunnel layers use (SPEC §4.4; I2P proposal 153).

I2P's ChaCha tunnel layer and its ECIES build records encrypt each hop's layer, and re-encrypt
other hops' build slots, with *raw* ChaCha20: a keystream XOR, no tag, the same length out as
in. PyNaCl's ``nacl.bindings`` does not bind ``crypto_stream_chacha20_ietf_xor``, so it is
derived here from the binding that exists: an RFC 8439 ChaCha20-Poly1305 ciphertext is the
plaintext XORed with the ChaCha20 keystream starting at block counter 1, followed by the tag.
Dropping the tag gives ``chacha20_ietf_xor_ic(data, nonce, 1, key)``. It costs one wasted
Poly1305 pass, and the keystream starts at block 1 instead of 0 (block 0 would be the Poly1305
key); neither matters here. The unit tests check the equivalence against pycryptodome's
ChaCha20.

XOR with a keystream is its own inverse, so one function encrypts and decrypts. A (key, nonce)
pair must never be used for two different inputs an observer sees; every caller documents why
its nonces are unique.
"""

from __future__ import annotations

from typing import Final

from petranode.crypto import _sodium as na

KEY_BYTES: Final = na.AEAD_KEY_BYTES
NONCE_BYTES: Final = na.AEAD_NONCE_BYTES


def chacha20_xor(key: bytes, nonce: bytes, data: bytes) -> bytes:
    """``data`` XOR the ChaCha20 (IETF, block counter 1) keystream of ``key`` and ``nonce``."""
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("chacha20_xor: key must be 32 bytes and nonce 12 bytes")
    return na.crypto_aead_chacha20poly1305_ietf_encrypt(data, b"", nonce, key)[: -na.AEAD_TAG_BYTES]
