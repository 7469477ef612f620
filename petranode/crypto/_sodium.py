"""The one door to libsodium (STYLE: crypto primitives).

Every other module reaches libsodium through the functions here, named as libsodium names
them, so that the set of primitives petranode relies on is visible in one file and the
PyNaCl exception types never leak past it: a refusal by libsodium becomes ``SodiumError``.
Nothing here interprets bytes; the typed layers above (``group``, ``keys``, the link
handshake) do that.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

import nacl.bindings as _b
import nacl.exceptions as _nacl_exc

from petranode.crypto.errors import CryptoError

T = TypeVar("T")

ED25519_BYTES = 32
SCALAR_BYTES = 32
NONREDUCED_SCALAR_BYTES = 64
AEAD_KEY_BYTES = 32
AEAD_NONCE_BYTES = 12
XAEAD_NONCE_BYTES = 24
AEAD_TAG_BYTES = 16
SIGN_BYTES = 64
SIGN_SEED_BYTES = 32
X25519_BYTES = 32


class SodiumError(CryptoError):
    """libsodium refused an operation (bad point, failed authentication, bad length)."""


def _call(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except (_nacl_exc.CryptoError, _nacl_exc.ValueError, _nacl_exc.TypeError, ValueError) as exc:
        raise SodiumError(f"{getattr(fn, '__name__', 'libsodium')}: refused") from exc


# -- randomness -------------------------------------------------------------------------


def randombytes(n: int) -> bytes:
    return bytes(_b.randombytes(n))


def randombytes_buf_deterministic(n: int, seed: bytes) -> bytes:
    return bytes(_call(_b.randombytes_buf_deterministic, n, seed))


# -- comparisons ------------------------------------------------------------------------


def sodium_memcmp(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings of equal length (False if lengths differ)."""
    if len(a) != len(b):
        return False
    return bool(_b.sodium_memcmp(a, b))


def sodium_is_zero(a: bytes) -> bool:
    return sodium_memcmp(a, bytes(len(a)))


# -- ed25519 group (prime-order subgroup only, as libsodium enforces) --------------------


def crypto_core_ed25519_is_valid_point(p: bytes) -> bool:
    """Canonical, on the curve, in the prime-order subgroup and not of small order."""
    return bool(_b.crypto_core_ed25519_is_valid_point(p))


def crypto_core_ed25519_add(p: bytes, q: bytes) -> bytes:
    """p + q; accepts any on-curve point, torsion components included."""
    return bytes(_call(_b.crypto_core_ed25519_add, p, q))


def crypto_core_ed25519_sub(p: bytes, q: bytes) -> bytes:
    return bytes(_call(_b.crypto_core_ed25519_sub, p, q))


def crypto_scalarmult_ed25519_noclamp(n: bytes, p: bytes) -> bytes:
    """n·p in constant time; refuses p outside the prime-order subgroup and an identity result."""
    return bytes(_call(_b.crypto_scalarmult_ed25519_noclamp, n, p))


def crypto_scalarmult_ed25519_base_noclamp(n: bytes) -> bytes:
    """n·G in constant time; refuses n = 0 (identity result)."""
    return bytes(_call(_b.crypto_scalarmult_ed25519_base_noclamp, n))


def crypto_core_ed25519_scalar_reduce(s: bytes) -> bytes:
    """A 64-byte little-endian integer mod l."""
    return bytes(_call(_b.crypto_core_ed25519_scalar_reduce, s))


def crypto_core_ed25519_scalar_add(x: bytes, y: bytes) -> bytes:
    return bytes(_call(_b.crypto_core_ed25519_scalar_add, x, y))


def crypto_core_ed25519_scalar_sub(x: bytes, y: bytes) -> bytes:
    return bytes(_call(_b.crypto_core_ed25519_scalar_sub, x, y))


def crypto_core_ed25519_scalar_mul(x: bytes, y: bytes) -> bytes:
    return bytes(_call(_b.crypto_core_ed25519_scalar_mul, x, y))


def crypto_core_ed25519_scalar_negate(x: bytes) -> bytes:
    return bytes(_call(_b.crypto_core_ed25519_scalar_negate, x))


def crypto_core_ed25519_scalar_invert(x: bytes) -> bytes:
    return bytes(_call(_b.crypto_core_ed25519_scalar_invert, x))


# -- X25519 ----------------------------------------------------------------------------


def crypto_scalarmult_base(n: bytes) -> bytes:
    """X25519 public key of the (clamped) secret n."""
    return bytes(_call(_b.crypto_scalarmult_base, n))


def crypto_scalarmult(n: bytes, p: bytes) -> bytes:
    """X25519 shared secret; refuses an all-zero result (a low-order peer key)."""
    out = bytes(_call(_b.crypto_scalarmult, n, p))
    if sodium_is_zero(out):
        raise SodiumError("crypto_scalarmult: low-order point")
    return out


# -- AEAD ------------------------------------------------------------------------------


def crypto_aead_chacha20poly1305_ietf_encrypt(
    msg: bytes, aad: bytes, nonce: bytes, key: bytes
) -> bytes:
    return bytes(_call(_b.crypto_aead_chacha20poly1305_ietf_encrypt, msg, aad, nonce, key))


def crypto_aead_chacha20poly1305_ietf_decrypt(
    ct: bytes, aad: bytes, nonce: bytes, key: bytes
) -> bytes:
    return bytes(_call(_b.crypto_aead_chacha20poly1305_ietf_decrypt, ct, aad, nonce, key))


def crypto_aead_xchacha20poly1305_ietf_encrypt(
    msg: bytes, aad: bytes, nonce: bytes, key: bytes
) -> bytes:
    return bytes(_call(_b.crypto_aead_xchacha20poly1305_ietf_encrypt, msg, aad, nonce, key))


def crypto_aead_xchacha20poly1305_ietf_decrypt(
    ct: bytes, aad: bytes, nonce: bytes, key: bytes
) -> bytes:
    return bytes(_call(_b.crypto_aead_xchacha20poly1305_ietf_decrypt, ct, aad, nonce, key))


# -- Ed25519 signatures ----------------------------------------------------------------


def crypto_sign_seed_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, 64-byte secret key) from a 32-byte seed."""
    pk, sk = _call(_b.crypto_sign_seed_keypair, seed)
    return bytes(pk), bytes(sk)


def crypto_sign_detached(msg: bytes, sk: bytes) -> bytes:
    return bytes(_call(_b.crypto_sign, msg, sk))[:SIGN_BYTES]


def crypto_sign_verify_detached(sig: bytes, msg: bytes, pk: bytes) -> bool:
    if len(sig) != SIGN_BYTES or len(pk) != ED25519_BYTES:
        return False
    try:
        _b.crypto_sign_open(sig + msg, pk)
    except (_nacl_exc.BadSignatureError, _nacl_exc.ValueError, ValueError):
        return False
    return True


def crypto_sign_ed25519_pk_to_curve25519(pk: bytes) -> bytes:
    return bytes(_call(_b.crypto_sign_ed25519_pk_to_curve25519, pk))


def crypto_sign_ed25519_sk_to_curve25519(sk: bytes) -> bytes:
    return bytes(_call(_b.crypto_sign_ed25519_sk_to_curve25519, sk))


# -- hashes ----------------------------------------------------------------------------


def crypto_generichash(data: bytes, *, key: bytes = b"", digest_size: int = 32) -> bytes:
    """BLAKE2b."""
    return bytes(_call(_b.crypto_generichash_blake2b_salt_personal, data, digest_size, key))


def crypto_generichash_personal(data: bytes, *, person: bytes, digest_size: int = 64) -> bytes:
    """BLAKE2b with a personalisation string (padded to 16 bytes), no key, no salt."""
    return hashlib.blake2b(data, digest_size=digest_size, person=person).digest()


def crypto_hash_sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def crypto_hash_sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def crypto_auth_hmacsha256(msg: bytes, key: bytes) -> bytes:
    """HMAC-SHA-256 (RFC 2104) with a key of any length, as the Noise framework's HKDF needs.

    PyNaCl does not bind libsodium's ``crypto_auth_hmacsha256``; the standard library's HMAC
    over OpenSSL's SHA-256 is the same function.
    """
    return hmac.digest(key, msg, "sha256")
