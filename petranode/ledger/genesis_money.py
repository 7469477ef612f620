"""The network's first issuance: money for every prosumer, so transfers work at once (issue 6
item 7; SPEC §2: the DSO issues every asset).

The DSO node lists the recipients in its ``[ledger] genesis_issuance`` (the testnet launcher
writes the prosumers' addresses there) and, while the ledger is empty, submits the
transactions this module builds like any other. Two rules make that safe:

* **Deterministic.** Every random choice (transaction secrets, Bulletproofs+ blinding) comes
  from a SHAKE-256 stream keyed by a secret of the DSO, so a DSO that restarts before the
  issuance is final submits byte-identical transactions: the ledger refuses a hash it already
  holds, and the pool one it already pools. Money is never issued twice by a restart.
* **Rings are possible at once.** A private transfer needs ``min_ring_size`` outputs of its
  asset (SPEC §4.5). Besides one output per recipient, the issuance pays ``min_ring_size``
  outputs to the DSO's own address: decoys for everyone's first rings, and the DSO's float.

At most 16 outputs fit one issuance (one aggregated range proof), so the payments are split
over as many transactions as needed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Final

from petranode.crypto.keys import PublicAddress
from petranode.ledger.assets import MONEY
from petranode.ledger.tx import MAX_OUTPUTS, Issuance
from petranode.ledger.wallet import Payment, build_issuance
from petranode.net.signing import Signer

log = logging.getLogger(__name__)

SEED_DOMAIN: Final = b"petranode/genesis-issuance/v1"


class _Shake:
    """A deterministic byte stream: SHAKE-256(domain ‖ seed ‖ counter), 64 bytes per step."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = hashlib.shake_256(
                SEED_DOMAIN + self._seed + self._counter.to_bytes(8, "big")
            ).digest(64)
            self._counter += 1
            self._buffer += block
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def first_issuance(
    signer: Signer,
    recipients: Sequence[PublicAddress],
    dso_address: PublicAddress,
    amount: int,
    *,
    min_ring_size: int,
    network_id: str,
    seed: bytes,
) -> list[Issuance]:
    """The issuance transactions paying ``amount`` cents to each recipient and to
    ``min_ring_size`` outputs of the DSO's own; the same arguments give the same bytes."""
    if amount < 1:
        raise ValueError("the first issuance pays a positive amount")
    if len(seed) < 32:
        raise ValueError("the seed is a secret of at least 32 bytes")
    rng = _Shake(seed)
    payments = [Payment(to, MONEY.asset_id, amount) for to in recipients]
    payments += [Payment(dso_address, MONEY.asset_id, amount)] * min_ring_size
    return [
        build_issuance(signer, payments[i : i + MAX_OUTPUTS], network_id=network_id, rng=rng)
        for i in range(0, len(payments), MAX_OUTPUTS)
    ]
