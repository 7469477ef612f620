"""Payment proofs, spend proofs and view-key audit (SPEC §2, §4.5).

SPEC §2: "A sender proves it paid by disclosing the transaction's random value (or proving
knowledge of it). A prosumer can hand its tracking (view) key to the DSO for audit." Each
piece follows the Monero wallet (``src/wallet/wallet2.cpp``, ``src/crypto/crypto.cpp``):

* **Tx key** (``check_tx_key``): the sender reveals ``r``; the verifier recomputes the
  derivation ``D = 8·r·A``, finds the outputs whose one-time key is ``Hs(D ‖ i)·G + B`` (view
  tag first), decrypts their amounts and checks each against its commitment.
* **Tx proof** (``get_tx_proof`` / ``check_tx_proof``, version 2): without revealing ``r``, a
  two-base Schnorr (DLEQ) proof that the published ``D' = r·A`` shares its discrete log with
  ``R = r·G``. ``crypto::generate_tx_proof``::

      k random;  X = k·G;  Y = k·A
      c = Hs(msg ‖ D' ‖ X ‖ Y ‖ Keccak("TXPROOF_V2") ‖ R ‖ A ‖ B)      (s_comm_2)
      r' = k − c·r

  with ``msg = Keccak(txid ‖ message)`` and ``B`` the zero key (it carries a subaddress'
  spend key in Monero; petranode has no subaddresses). The verifier recomputes
  ``X = c·R + r'·G`` and ``Y = c·D' + r'·A``. The recipient can prove receipt the same way
  with its view key ``a`` (``InProofV2``: roles of ``R`` and ``A`` swapped, ``D' = a·R``).
  Either way the derivation is ``8·D'`` and the outputs are then opened as for a tx key.
  The text form is Monero's: ``"OutProofV2"``/``"InProofV2"`` ‖ base58(D') ‖ base58(c ‖ r').
  Deviations: one signature only (no additional per-output tx keys, which petranode does
  not use), and ``R``, ``A`` and ``D'`` must be in the prime-order subgroup (Monero only
  requires that they decode).
* **Spend proof** (``get_spend_proof`` / ``check_spend_proof``, ``SpendProofV1``): for each
  input of a transaction, a CryptoNote ring signature (``generate_ring_signature``) over
  ``Keccak(txid ‖ message)`` with the input's ring of one-time keys and its key image — the
  proof that whoever holds it made that spend, without saying which ring member was real.
  Text form ``"SpendProofV1"`` ‖ base58 of every 64-byte ``(c, r)`` pair, as Monero's.
* **Audit**: with a prosumer's view keys, list which of a set of ledger outputs are theirs and
  what they hold (stealth scanning, then the amount opened and checked).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, final

from petranode.crypto import ecdh, stealth
from petranode.crypto.ecdh import EcdhInfo
from petranode.crypto.errors import CryptoError, NonCanonicalEncoding, VerificationFailed
from petranode.crypto.group import L, Point, Rng, Scalar, cn_fast_hash, os_rng
from petranode.crypto.keyimage import KeyImage
from petranode.crypto.keys import PublicAddress, ViewKeys, base58_decode, base58_encode
from petranode.crypto.ring import (
    PAIR_BYTES,
    RingSignature,
    generate_ring_signature,
    verify_ring_signature,
)
from petranode.crypto.stealth import KeyDerivation, StealthOutput

log = logging.getLogger(__name__)

#: ``config::HASH_KEY_TXPROOF_V2``, hashed once into the ``sep`` field of ``s_comm_2``.
TXPROOF_V2_SEPARATOR: Final = cn_fast_hash(b"TXPROOF_V2")
_ZERO_KEY: Final = bytes(32)
_KEY_B58: Final = 44  # base58 of 32 bytes: 4 full blocks
_SIG_B58: Final = 88  # base58 of a 64-byte signature: 8 full blocks
SPEND_PROOF_HEADER: Final = "SpendProofV1"
#: Largest total ring membership a spend proof may claim: 16 inputs of Monero's ring size
#: would be 256; the bound keeps decoding and checking proportional to sane proofs.
MAX_SPEND_PROOF_MEMBERS: Final = 4096


@final
@dataclass(frozen=True, slots=True)
class LedgerOutput:
    """One output as the ledger publishes it: enough to recognise it and open its amount."""

    tx_public: Point
    output_index: int
    output: StealthOutput
    commitment: Point
    encrypted_amount: EcdhInfo

    def __post_init__(self) -> None:
        if self.output_index < 0:
            raise CryptoError("negative output index")


@final
@dataclass(frozen=True, slots=True)
class OpenedOutput:
    """An output shown to pay an address, with its decrypted and checked amount."""

    tx_public: Point
    output_index: int
    one_time_key: Point
    amount: int


def total(outputs: Iterable[OpenedOutput]) -> int:
    """The sum paid by the opened outputs."""
    return sum(o.amount for o in outputs)


def _open(derivation: KeyDerivation, spend_public: Point,
          outputs: Sequence[LedgerOutput]) -> list[OpenedOutput]:
    """The outputs among ``outputs`` paying ``spend_public`` under ``derivation``.

    View tag first (a hash), then the one-time key (a base multiplication), then the amount,
    which must open the commitment: an output whose amount does not open is not counted as
    paid, as Monero's ``check_tx_key_helper`` does.
    """
    found = []
    for o in outputs:
        if stealth.derive_view_tag(derivation, o.output_index) != o.output.view_tag:
            continue
        if stealth.derive_public_key(derivation, o.output_index,
                                     spend_public) != o.output.one_time_key:
            continue
        shared = stealth.derivation_to_scalar(derivation, o.output_index)
        try:
            amount, _ = ecdh.open_output(o.encrypted_amount, shared, o.commitment)
        except VerificationFailed:
            log.debug("proofs.amount_mismatch index=%d", o.output_index)
            continue
        found.append(OpenedOutput(o.tx_public, o.output_index, o.output.one_time_key, amount))
    return found


def _of_tx(tx_public: Point, outputs: Sequence[LedgerOutput]) -> list[LedgerOutput]:
    return [o for o in outputs if o.tx_public == tx_public]


# -- tx key -----------------------------------------------------------------------------

def check_tx_key(tx_secret: Scalar, tx_public: Point, address: PublicAddress,
                 outputs: Sequence[LedgerOutput]) -> list[OpenedOutput]:
    """What the transaction with key ``tx_public`` paid ``address``, given its secret ``r``.

    Raises VerificationFailed if ``r·G ≠ R``.
    """
    if tx_secret.is_zero() or tx_secret.mul_base() != tx_public:
        raise VerificationFailed("transaction secret does not match the transaction key")
    derivation = stealth.generate_key_derivation(address.view, tx_secret)
    return _open(derivation, address.spend, _of_tx(tx_public, outputs))


# -- tx proof (OutProofV2 / InProofV2) --------------------------------------------------

class TxProofKind(enum.Enum):
    """Who proves: the sender with ``r`` (out) or the recipient with its view key (in)."""

    OUT = "OutProofV2"
    IN = "InProofV2"


@final
@dataclass(frozen=True, slots=True)
class TxProof:
    """A version-2 tx proof: the shared point ``D'`` and the Schnorr pair ``(c, r)``."""

    kind: TxProofKind
    shared: Point
    c: Scalar
    r: Scalar

    def __post_init__(self) -> None:
        if not self.shared.in_subgroup or self.shared.is_identity():
            raise CryptoError("tx proof shared point outside the prime-order subgroup")

    def encode(self) -> str:
        """Monero's text form: header ‖ base58(D') ‖ base58(c ‖ r)."""
        return (self.kind.value + base58_encode(self.shared.raw)
                + base58_encode(self.c.raw + self.r.raw))

    @classmethod
    def decode(cls, text: str) -> TxProof:
        """Parse the text form; a value or CryptoError."""
        for kind in TxProofKind:
            if text.startswith(kind.value):
                body = text[len(kind.value):]
                break
        else:
            raise NonCanonicalEncoding("not a version-2 tx proof")
        if len(body) != _KEY_B58 + _SIG_B58:
            raise NonCanonicalEncoding("tx proof has the wrong length")
        shared = Point.from_bytes(base58_decode(body[:_KEY_B58]))
        sig = base58_decode(body[_KEY_B58:])
        return cls(kind, shared, Scalar.from_bytes(sig[:32]), Scalar.from_bytes(sig[32:]))


def _prefix_hash(txid: bytes, message: bytes) -> bytes:
    if len(txid) != 32:
        raise CryptoError("transaction id must be 32 bytes")
    return cn_fast_hash(txid, message)


def _challenge(prefix: bytes, d: Point, x: Point, y: Point, r_point: Point,
               a_point: Point) -> Scalar:
    return Scalar.reduce(cn_fast_hash(prefix, d.raw, x.raw, y.raw, TXPROOF_V2_SEPARATOR,
                                      r_point.raw, a_point.raw, _ZERO_KEY))


def _prime_order(*points: Point) -> bool:
    return all(p.in_subgroup and not p.is_identity() for p in points)


def _generate_tx_proof(prefix: bytes, r_point: Point, a_point: Point, d: Point,
                       secret: Scalar, rng: Rng) -> tuple[Scalar, Scalar]:
    """``crypto::generate_tx_proof`` without ``B``: proves log_G(R) = log_A(D)."""
    k = Scalar.random(rng)
    c = _challenge(prefix, d, k.mul_base(), k * a_point, r_point, a_point)
    return c, k - c * secret


def _check_tx_proof(prefix: bytes, r_point: Point, a_point: Point, d: Point, c: Scalar,
                    r: Scalar) -> bool:
    if not _prime_order(r_point, a_point, d) or int(c) >= L or int(r) >= L:
        return False
    x = c * r_point + r.mul_base()
    y = c * d + r * a_point
    return _challenge(prefix, d, x, y, r_point, a_point) == c


def prove_payment(txid: bytes, message: bytes, tx_secret: Scalar, address: PublicAddress,
                  rng: Rng = os_rng) -> TxProof:
    """OutProofV2: the sender of tx ``txid`` (secret key ``r``) shows what it paid ``address``."""
    r_point = tx_secret.mul_base()
    shared = tx_secret * address.view
    c, r = _generate_tx_proof(_prefix_hash(txid, message), r_point, address.view, shared,
                              tx_secret, rng)
    return TxProof(TxProofKind.OUT, shared, c, r)


def prove_receipt(txid: bytes, message: bytes, view_keys: ViewKeys, tx_public: Point,
                  rng: Rng = os_rng) -> TxProof:
    """InProofV2: the recipient shows, with its view key, what tx ``txid`` paid it."""
    # a·R with a secret: only for R in the prime-order subgroup, where it is constant time.
    if not _prime_order(tx_public):
        raise CryptoError("transaction key outside the prime-order subgroup")
    shared = view_keys.view_secret * tx_public
    c, r = _generate_tx_proof(_prefix_hash(txid, message), view_keys.view_public, tx_public,
                              shared, view_keys.view_secret, rng)
    return TxProof(TxProofKind.IN, shared, c, r)


def check_tx_proof(txid: bytes, message: bytes, proof: TxProof, address: PublicAddress,
                   tx_public: Point, outputs: Sequence[LedgerOutput]) -> list[OpenedOutput]:
    """Verify ``proof`` for tx ``txid`` (key ``tx_public``) and ``address``; what it paid.

    Raises VerificationFailed if the proof does not verify.
    """
    prefix = _prefix_hash(txid, message)
    if proof.kind is TxProofKind.OUT:
        ok = _check_tx_proof(prefix, tx_public, address.view, proof.shared, proof.c, proof.r)
    else:
        ok = _check_tx_proof(prefix, address.view, tx_public, proof.shared, proof.c, proof.r)
    if not ok:
        raise VerificationFailed("tx proof does not verify")
    # Monero: generate_key_derivation(shared, 1) — the derivation is 8·D'.
    derivation = KeyDerivation(proof.shared.mul8().raw)
    return _open(derivation, address.spend, _of_tx(tx_public, outputs))


# -- spend proof (SpendProofV1) --------------------------------------------------------

@final
@dataclass(frozen=True, slots=True)
class SpendInput:
    """What the spender knows of one input: its ring, key image, one-time secret, position."""

    ring: tuple[Point, ...]
    key_image: KeyImage
    secret_key: Scalar
    secret_index: int

    def __repr__(self) -> str:
        return f"SpendInput(ring_size={len(self.ring)}, key_image={self.key_image.hex()})"


@final
@dataclass(frozen=True, slots=True)
class SpendProof:
    """One CryptoNote ring signature per input of the transaction, in input order."""

    signatures: tuple[RingSignature, ...]

    def __post_init__(self) -> None:
        if not self.signatures:
            raise CryptoError("spend proof without signatures")
        if sum(len(s) for s in self.signatures) > MAX_SPEND_PROOF_MEMBERS:
            raise CryptoError("spend proof too large")

    def encode(self) -> str:
        """Monero's text form: ``SpendProofV1`` ‖ base58 of every 64-byte (c, r) pair."""
        return SPEND_PROOF_HEADER + "".join(
            base58_encode(c.raw + r.raw) for sig in self.signatures for c, r in sig.pairs)

    @classmethod
    def decode(cls, text: str, ring_sizes: Sequence[int]) -> SpendProof:
        """Parse for a transaction whose inputs have ``ring_sizes``; a value or CryptoError."""
        if not text.startswith(SPEND_PROOF_HEADER):
            raise NonCanonicalEncoding("not a SpendProofV1")
        if not ring_sizes or any(n < 1 for n in ring_sizes):
            raise CryptoError("every input has a ring")
        members = sum(ring_sizes)
        if members > MAX_SPEND_PROOF_MEMBERS:
            raise CryptoError("spend proof too large")
        body = text[len(SPEND_PROOF_HEADER):]
        if len(body) != _SIG_B58 * members:
            raise NonCanonicalEncoding("spend proof length does not match the rings")
        raw = b"".join(base58_decode(body[i:i + _SIG_B58])
                       for i in range(0, len(body), _SIG_B58))
        signatures = []
        offset = 0
        for n in ring_sizes:
            signatures.append(RingSignature.from_bytes(raw[offset:offset + PAIR_BYTES * n], n))
            offset += PAIR_BYTES * n
        return cls(tuple(signatures))


def prove_spend(txid: bytes, message: bytes, inputs: Sequence[SpendInput],
                rng: Rng = os_rng) -> SpendProof:
    """SpendProofV1: sign ``Keccak(txid ‖ message)`` with every input's ring and key image."""
    prefix = _prefix_hash(txid, message)
    return SpendProof(tuple(
        generate_ring_signature(prefix, i.key_image, i.ring, i.secret_key, i.secret_index, rng)
        for i in inputs))


def check_spend_proof(txid: bytes, message: bytes,
                      inputs: Sequence[tuple[Sequence[Point], KeyImage]],
                      proof: SpendProof) -> bool:
    """True iff ``proof`` signs for every input (ring, key image) of tx ``txid``."""
    if len(inputs) != len(proof.signatures):
        return False
    try:
        prefix = _prefix_hash(txid, message)
        for (ring, key_image), sig in zip(inputs, proof.signatures, strict=True):
            verify_ring_signature(prefix, key_image, ring, sig)
    except CryptoError:
        return False
    return True


# -- view-key audit ---------------------------------------------------------------------

def audit(view_keys: ViewKeys, outputs: Sequence[LedgerOutput]) -> list[OpenedOutput]:
    """Every output in ``outputs`` paying ``view_keys``' address, with its checked amount.

    What a prosumer's tracking key shows the DSO (SPEC §2): incoming outputs and amounts,
    never the ability to spend or whether an output was spent.
    """
    found = []
    for o in outputs:
        received = stealth.scan_output(view_keys, o.tx_public, o.output_index, o.output)
        if received is None:
            continue
        try:
            amount, _ = ecdh.open_output(o.encrypted_amount, received.shared_secret,
                                         o.commitment)
        except VerificationFailed:
            log.debug("proofs.audit.amount_mismatch index=%d", o.output_index)
            continue
        found.append(OpenedOutput(o.tx_public, o.output_index, o.output.one_time_key, amount))
    return found

