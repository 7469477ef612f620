"""Errors of the cryptography layer (SPEC §4.5)."""

from petranode.errors import PetranodeError


class CryptoError(PetranodeError):
    """A cryptographic input was malformed or a check failed."""


class NonCanonicalEncoding(CryptoError):
    """A scalar or point encoding is not the unique canonical one."""


class NotInSubgroup(CryptoError):
    """A point is on the curve but outside the prime-order subgroup (or is the identity)."""


class VerificationFailed(CryptoError):
    """A signature, proof or balance did not verify."""


class InvalidAddress(CryptoError):
    """An address string is malformed, for another network, or fails its checksum."""
