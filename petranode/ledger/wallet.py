"""A prosumer's (and the DSO's) wallet over the ledger, sans I/O (SPEC §2, §4.5, §4.7).

:class:`Wallet` scans each committed block's outputs with its view key (view tags first),
opens the amounts it owns (``ecdh.open_output`` checks each against its commitment), derives
their key images, and marks an output spent when its key image appears on the ledger. It
holds no clock and does no I/O: the service feeds it :class:`~petranode.ledger.state.StateDelta`
s.

:func:`build_transfer` / :func:`build_payments` make a RingCT transfer as Monero's
``construct_tx`` does: inputs chosen per asset, a change output per asset back to the sender
(always present, possibly 0, so a payment and its change look alike), outputs shuffled, one
aggregated Bulletproofs+ proof, pseudo-output masks that balance each asset's output masks,
and per input a ring of ``ring_size`` same-asset outputs picked by ``decoys.select_ring``
(gamma-distributed ages) and a CLSAG over the transaction's signed message (prefix hash and range proof).
:func:`build_issuance` is the DSO's side: outputs of any asset, signed with the DSO key.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, final

from petranode.crypto import bpplus, clsag, ecdh
from petranode.crypto.balance import pseudo_out_masks, pseudo_outs
from petranode.crypto.decoys import DEFAULT_UNLOCK_TIME, DecoyRing, RandomSource, select_ring
from petranode.crypto.errors import VerificationFailed
from petranode.crypto.group import Point, Rng, Scalar, os_rng
from petranode.crypto.keyimage import KeyImage, generate_key_image
from petranode.crypto.keys import PublicAddress, WalletKeys
from petranode.crypto.stealth import (
    StealthOutput,
    TxSecret,
    create_output,
    one_time_secret_key,
    scan_transaction,
)
from petranode.ledger.assets import MONEY
from petranode.ledger.state import OutputRecord, StateDelta
from petranode.ledger.tx import (
    ISSUANCE_DOMAIN,
    Issuance,
    Transfer,
    Tx,
    TxInput,
    TxOutput,
    input_prefix,
    issuance_prefix,
    prefix_digest,
    signed_message,
    transfer_prefix,
)
from petranode.ledger.tx_errors import InsufficientFunds
from petranode.net.signing import Signer
from petranode.wire.codec import Encodable

log = logging.getLogger(__name__)


@final
@dataclass(frozen=True, slots=True)
class Payment:
    """``amount`` of ``asset_id`` to ``to``."""

    to: PublicAddress
    asset_id: bytes
    amount: int


@final
@dataclass(frozen=True, slots=True)
class OwnedOutput:
    """An output this wallet can spend, with the secrets that open it (never logged)."""

    record: OutputRecord
    amount: int
    mask: Scalar
    #: ``Hs(D ‖ i)``: with the spend key it gives the one-time secret key.
    shared_secret: Scalar = field(repr=False)
    key_image: KeyImage

    @property
    def asset_id(self) -> bytes:
        return self.record.asset_id

    @property
    def global_index(self) -> int:
        return self.record.global_index


class DecoySource(Protocol):
    """The ledger as the wallet sees it when it builds rings."""

    def output_times(self, asset_id: bytes) -> Sequence[float]:
        """Creation time (seconds, non-decreasing) of every output of the asset, by index."""
        ...

    def output(self, asset_id: bytes, global_index: int) -> OutputRecord | None: ...


class Wallet:
    """Owned outputs per asset, found by scanning committed blocks."""

    def __init__(self, keys: WalletKeys) -> None:
        self.keys = keys
        self._view_keys = keys.view_keys
        self._owned: dict[bytes, OwnedOutput] = {}  # by key image
        self._spent: set[bytes] = set()

    def scan(self, delta: StateDelta) -> list[OwnedOutput]:
        """Take in one committed block: returns the outputs newly found to be ours."""
        found: list[OwnedOutput] = []
        for applied in delta.txs:
            found += self._scan_tx(applied.tx, applied.tx_hash, applied.global_indices, delta)
        for key_image, _ in delta.spent:
            if key_image in self._owned:
                self._spent.add(key_image)
        return found

    def _scan_tx(
        self, tx: Tx, digest: bytes, indices: Sequence[int], delta: StateDelta
    ) -> list[OwnedOutput]:
        stealth = [StealthOutput(o.one_time_key, o.view_tag) for o in tx.outputs]
        found = []
        for received in scan_transaction(self._view_keys, tx.tx_public, stealth):
            out = tx.outputs[received.output_index]
            try:
                amount, mask = ecdh.open_output(out.ecdh, received.shared_secret, out.commitment)
            except VerificationFailed:
                # Ours by key, but the sender encrypted an amount the commitment does not hold:
                # unspendable by us, so not counted.
                log.warning("wallet.output_unopenable tx=%s index=%d", digest.hex(),
                            received.output_index)
                continue
            secret = one_time_secret_key(self.keys, received)
            key_image = generate_key_image(out.one_time_key, secret)
            if key_image.point.raw in self._owned:
                # A repeated one-time key has one key image: only the first is spendable.
                continue
            record = OutputRecord(out.asset_id, indices[received.output_index],
                                  out.one_time_key, out.commitment, delta.height, digest,
                                  received.output_index)
            owned = OwnedOutput(record, amount, mask, received.shared_secret, key_image)
            self._owned[key_image.point.raw] = owned
            found.append(owned)
        return found

    def unspent(self, asset_id: bytes) -> list[OwnedOutput]:
        return [
            o for ki, o in self._owned.items() if o.asset_id == asset_id and ki not in self._spent
        ]

    def balance(self, asset_id: bytes) -> int:
        """Sum of the unspent amounts of ``asset_id`` (cents or watts)."""
        return sum(o.amount for o in self.unspent(asset_id))


# -- building transactions -----------------------------------------------------------------


def shuffle(items: list[Payment], source: RandomSource) -> None:
    """Fisher–Yates with ``source``: output order must not tell payment from change."""
    for i in range(len(items) - 1, 0, -1):
        j = source.randrange(0, i + 1)
        items[i], items[j] = items[j], items[i]


def select_inputs(owned: Sequence[OwnedOutput], asset_id: bytes, need: int) -> list[OwnedOutput]:
    """Largest outputs of ``asset_id`` first until ``need`` is covered (at least one)."""
    chosen: list[OwnedOutput] = []
    total = 0
    for candidate in sorted((o for o in owned if o.asset_id == asset_id),
                            key=lambda o: o.amount, reverse=True):
        if total >= need and chosen:
            break
        chosen.append(candidate)
        total += candidate.amount
    if total < need or not chosen:
        raise InsufficientFunds(f"asset {asset_id.hex()[:16]}: need {need}")
    return chosen


def _make_outputs(
    tx_secret: TxSecret, payments: Sequence[Payment]
) -> tuple[list[TxOutput], list[Scalar]]:
    """Output ``i`` pays ``payments[i]``: its one-time key, commitment and encrypted amount."""
    tx_outputs: list[TxOutput] = []
    masks: list[Scalar] = []
    for index, payment in enumerate(payments):
        sent = create_output(tx_secret, payment.to, index)
        info, mask, commitment = ecdh.make_output(payment.amount, sent.shared_secret)
        tx_outputs.append(
            TxOutput(payment.asset_id, sent.output.one_time_key, sent.output.view_tag,
                     commitment, info)
        )
        masks.append(mask)
    return tx_outputs, masks


def _prove(
    payments: Sequence[Payment], masks: Sequence[Scalar], outputs: Sequence[TxOutput], rng: Rng
) -> bpplus.BulletproofPlus:
    commitments, proof = bpplus.prove([p.amount for p in payments], masks, rng)
    assert list(commitments) == [o.commitment for o in outputs]  # same masks, same amounts
    return proof


def build_issuance(
    dso_signer: Signer,
    outputs: Sequence[Payment],
    *,
    network_id: str,
    rng: Rng = os_rng,
) -> Issuance:
    """The DSO posts ``outputs`` (1 to 16) to one-time addresses of their recipients."""
    tx_secret = TxSecret.generate(rng)
    tx_outputs, masks = _make_outputs(tx_secret, outputs)
    proof = _prove(outputs, masks, tx_outputs, rng)
    prefix = prefix_digest(Issuance.KIND, issuance_prefix(tx_outputs, tx_secret.public),
                           network_id)
    message = signed_message(prefix, proof, network_id)
    signature = dso_signer.sign(ISSUANCE_DOMAIN, network_id, message)
    return Issuance(tuple(tx_outputs), tx_secret.public, proof, signature)


def build_transfer(
    keys: WalletKeys,
    owned: Sequence[OwnedOutput],
    to: PublicAddress,
    amount: int,
    asset_id: bytes,
    fee: int,
    decoys: DecoySource,
    *,
    network_id: str,
    min_ring_size: int,
    ring_size: int | None = None,
    now: float,
    unlock_time: float = DEFAULT_UNLOCK_TIME,
    rng: Rng = os_rng,
    random_source: RandomSource | None = None,
) -> Transfer:
    """Pay ``amount`` of one asset to ``to``; see :func:`build_payments`."""
    return build_payments(
        keys, owned, [Payment(to, asset_id, amount)], fee, decoys, network_id=network_id,
        min_ring_size=min_ring_size, ring_size=ring_size, now=now, unlock_time=unlock_time,
        rng=rng, random_source=random_source,
    )


def build_payments(
    keys: WalletKeys,
    owned: Sequence[OwnedOutput],
    payments: Sequence[Payment],
    fee: int,
    decoys: DecoySource,
    *,
    network_id: str,
    min_ring_size: int,
    ring_size: int | None = None,
    now: float,
    unlock_time: float = DEFAULT_UNLOCK_TIME,
    rng: Rng = os_rng,
    random_source: RandomSource | None = None,
) -> Transfer:
    """A transfer paying every ``payment`` (any mix of assets) and ``fee`` cents of money,
    spending from ``owned`` (the caller's unspent outputs) with change back to ``keys``.

    ``now`` is the time the decoy picker measures output ages from (the last block's time);
    outputs younger than ``unlock_time`` are never ring members. Raises
    :class:`InsufficientFunds` when ``owned`` cannot cover an asset.
    """
    source: RandomSource = random_source if random_source is not None else random.SystemRandom()
    size = min_ring_size if ring_size is None else ring_size
    need: dict[bytes, int] = {}
    for payment in payments:
        need[payment.asset_id] = need.get(payment.asset_id, 0) + payment.amount
    if fee:
        need[MONEY.asset_id] = need.get(MONEY.asset_id, 0) + fee
    spent = {asset_id: select_inputs(owned, asset_id, amount) for asset_id, amount in need.items()}

    all_payments = list(payments)
    for asset_id, inputs in spent.items():
        change = sum(o.amount for o in inputs) - need[asset_id]
        all_payments.append(Payment(keys.address, asset_id, change))
    shuffle(all_payments, source)

    tx_secret = TxSecret.generate(rng)
    outputs, out_masks = _make_outputs(tx_secret, all_payments)
    proof = _prove(all_payments, out_masks, outputs, rng)

    # Per asset, the pseudo-output masks sum to that asset's output masks: balance.py.
    plan: list[InputPlan] = []
    for asset_id, inputs in spent.items():
        masks = [m for m, o in zip(out_masks, outputs, strict=True) if o.asset_id == asset_id]
        p_masks = pseudo_out_masks(masks, len(inputs), rng)
        commitments = pseudo_outs([o.amount for o in inputs], p_masks)
        plan += zip(inputs, p_masks, commitments, strict=True)

    rings = choose_rings([spend for spend, _, _ in plan], decoys, size, now=now,
                         min_ring_size=min_ring_size, unlock_time=unlock_time, source=source)
    prefix_inputs = input_prefixes(plan, rings)
    prefix = prefix_digest(
        Transfer.KIND, transfer_prefix(prefix_inputs, outputs, tx_secret.public, fee), network_id
    )
    message = signed_message(prefix, proof, network_id)
    return Transfer(sign_inputs(keys, message, plan, rings, rng), tuple(outputs),
                    tx_secret.public, fee, proof)


#: An input being built: the output it spends, its pseudo-output mask and commitment.
InputPlan = tuple[OwnedOutput, Scalar, Point]
#: An input's ring: the decoy picker's choice and the members (one-time key, commitment).
Ring = tuple[DecoyRing, list[tuple[Point, Point]]]


def choose_rings(spends: Sequence[OwnedOutput], decoys: DecoySource, size: int, *, now: float,
                 min_ring_size: int, unlock_time: float, source: RandomSource) -> list[Ring]:
    """A ring per spent output, of its own asset, with the ledger's copy of every member."""
    rings = []
    for spend in spends:
        times = decoys.output_times(spend.asset_id)
        # An asset with fewer outputs than the ring size (an interval's energy) is spent in a
        # ring of all of them (``tx.required_ring_size``).
        here = min(size, len(times))
        chosen = select_ring(times, spend.global_index, here, now=now,
                             min_ring_size=min(min_ring_size, len(times)),
                             unlock_time=unlock_time,
                             rng=source)
        members = []
        for index in chosen.indices:
            record = decoys.output(spend.asset_id, index)
            if record is None:
                raise ValueError(f"decoy source lacks output {index}")
            members.append((record.one_time_key, record.commitment))
        if members[chosen.real_position] != (spend.record.one_time_key, spend.record.commitment):
            raise ValueError("the ledger's output differs from the wallet's")
        rings.append((chosen, members))
    return rings


def input_prefixes(plan: Sequence[InputPlan], rings: Sequence[Ring]) -> list[list[Encodable]]:
    return [input_prefix(spend.asset_id, chosen.indices, spend.key_image, pseudo)
            for (spend, _, pseudo), (chosen, _) in zip(plan, rings, strict=True)]


def sign_inputs(keys: WalletKeys, message: bytes, plan: Sequence[InputPlan],
                rings: Sequence[Ring], rng: Rng) -> tuple[TxInput, ...]:
    """Each input's CLSAG over ``message``: the one-time secret and the commitment-to-zero
    difference of its real member."""
    tx_inputs = []
    for (spend, p_mask, pseudo), (chosen, members) in zip(plan, rings, strict=True):
        secret = spend.shared_secret + keys.spend_secret
        signature, key_image = clsag.sign(message, members, pseudo, chosen.real_position,
                                          secret, spend.mask - p_mask, rng)
        assert key_image == spend.key_image
        tx_inputs.append(TxInput(spend.asset_id, chosen.indices, key_image, pseudo, signature))
    return tuple(tx_inputs)
