"""Blocks: a header and opaque transaction bytes (SPEC §4.6; CometBFT ``types/block.go``).

A block's identity is its header: ``Block.hash`` is SHA-256 of the header's canonical msgpack
encoding, and the header commits to the transactions through ``tx_root``, an RFC 6962 Merkle
tree hash (leaves ``SHA-256(0x00 ‖ tx)``, nodes ``SHA-256(0x01 ‖ left ‖ right)``; the domain
bytes keep a leaf from passing for a node — the second-preimage attack on plain Merkle trees).
Proposals, votes and commit certificates name a block by this hash, so the proposer's signature
over a proposal covers every header field and, through the root, every transaction.

The header carries the round the block was *made* in: a block proposed again in a later round
(Tendermint's ``validValue``) keeps its header, so ``header.round ≤`` the proposal's round.

Validation tiers (CometBFT): construction checks each field's type and range and raises
:class:`~petranode.ledger.errors.BlockInvalid` (``MALFORMED``); :meth:`Block.validate_basic`
checks what needs the whole block — version, bounds, the transaction root. Whether the
transactions are valid against the ledger, and whether the header follows the previous block,
is the consensus machine's and the state's business.

Wire form (canonical msgpack arrays): a header is ``[version, network_id, height, round,
time_ms, prev_hash, tx_root, proposer]``; a block is ``[header, [tx, …]]``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar, final

from petranode.ledger.errors import BlockFault, BlockInvalid
from petranode.wire import codec
from petranode.wire.errors import DecodeError, DecodeFault

log = logging.getLogger(__name__)
_T = TypeVar("_T")

BLOCK_VERSION: Final = 1
HASH_BYTES: Final = 32
#: The previous-block hash of height 1, which has no previous block (CometBFT leaves it empty).
ZERO_HASH: Final = bytes(HASH_BYTES)
#: Longest network id a header carries; the genesis names its network in at most 64 characters.
MAX_NETWORK_ID: Final = 64
#: Most transactions in one block. Each costs a verification of a second or less on one core at
#: worst (``tx.MAX_TX_BYTES``); a block interval is seconds, so thousands is already generous.
MAX_BLOCK_TXS: Final = 4096
#: Most transaction bytes in one block: 4 MiB, a fifth of CometBFT's default ``max_bytes``
#: (21 MiB) — a microgrid's trades are small and blocks are frequent.
MAX_BLOCK_TX_BYTES: Final = 4 * 1024 * 1024
#: Bound on one encoded header: eight short fields and a 64-character network id.
MAX_HEADER_BYTES: Final = 256
#: Bound on one encoded block: the transactions, a 5-byte bin header each, a list header and
#: the header.
MAX_BLOCK_BYTES: Final = MAX_BLOCK_TX_BYTES + 5 * MAX_BLOCK_TXS + 5 + MAX_HEADER_BYTES
#: Heights, rounds and times are unsigned 63-bit so they fit every SQL integer column.
MAX_U63: Final = 2**63 - 1
#: Most validators a network has; bounds a validator or proposer index.
MAX_VALIDATORS: Final = 1024

_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 §2.1 Merkle tree hash of ``leaves`` (SHA-256 of nothing for none)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(_LEAF + leaf).digest() for leaf in leaves]
    return _subtree(level)


def _subtree(hashes: Sequence[bytes]) -> bytes:
    # RFC 6962 splits at the largest power of two below n: the left subtree is always full.
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(_NODE + _subtree(hashes[:k]) + _subtree(hashes[k:])).digest()


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise BlockInvalid(BlockFault.MALFORMED, what)


def _is_int(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_BYTES


@final
@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What a block's hash covers; see the module docstring for the fields' meaning."""

    network_id: str
    #: 1 for the first block after the genesis.
    height: int
    #: The consensus round the block was made in.
    round: int
    #: The proposer's clock when it made the block, in Unix milliseconds; strictly increasing.
    time_ms: int
    #: The previous block's hash; :data:`ZERO_HASH` at height 1.
    prev_hash: bytes
    #: :func:`merkle_root` of the block's transactions.
    tx_root: bytes
    #: Index into the genesis validators of the validator that made the block.
    proposer: int
    version: int = BLOCK_VERSION

    def __post_init__(self) -> None:
        _check(_is_int(self.version, 0, MAX_U63), "version")
        _check(
            isinstance(self.network_id, str) and 0 < len(self.network_id) <= MAX_NETWORK_ID,
            "network_id",
        )
        _check(_is_int(self.height, 1, MAX_U63), "height")
        _check(_is_int(self.round, 0, MAX_U63), "round")
        _check(_is_int(self.time_ms, 0, MAX_U63), "time_ms")
        _check(_is_hash(self.prev_hash), "prev_hash")
        _check(_is_hash(self.tx_root), "tx_root")
        _check(_is_int(self.proposer, 0, MAX_VALIDATORS - 1), "proposer")

    def to_value(self) -> list[codec.Encodable]:
        return [
            self.version, self.network_id, self.height, self.round, self.time_ms,
            self.prev_hash, self.tx_root, self.proposer,
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_value())

    @property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding: the block's identity."""
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def from_value(cls, value: codec.Value) -> BlockHeader:
        items = codec.expect_list(value, 8, what="header")
        return _construct(
            lambda: cls(
                version=codec.expect_int(items[0], 0, MAX_U63, what="version"),
                network_id=codec.expect_str(
                    items[1], min_len=1, max_len=MAX_NETWORK_ID, what="network_id"
                ),
                height=codec.expect_int(items[2], 1, MAX_U63, what="height"),
                round=codec.expect_int(items[3], 0, MAX_U63, what="round"),
                time_ms=codec.expect_int(items[4], 0, MAX_U63, what="time_ms"),
                prev_hash=codec.expect_bytes(items[5], HASH_BYTES, what="prev_hash"),
                tx_root=codec.expect_bytes(items[6], HASH_BYTES, what="tx_root"),
                proposer=codec.expect_int(items[7], 0, MAX_VALIDATORS - 1, what="proposer"),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        """The header encoded in ``data``, or :class:`DecodeError`."""
        return cls.from_value(codec.decode_canonical(data, max_size=MAX_HEADER_BYTES))


@final
@dataclass(frozen=True, slots=True)
class Block:
    """A header and the transactions it commits to, in order."""

    header: BlockHeader
    txs: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check(isinstance(self.header, BlockHeader), "header")
        _check(isinstance(self.txs, tuple), "txs")
        _check(all(isinstance(tx, bytes) for tx in self.txs), "txs")

    @classmethod
    def build(
        cls,
        *,
        network_id: str,
        height: int,
        round: int,
        time_ms: int,
        prev_hash: bytes,
        proposer: int,
        txs: Sequence[bytes],
    ) -> Block:
        """A block with its ``tx_root`` computed; raises :class:`BlockInvalid` out of bounds."""
        txs = tuple(txs)
        header = BlockHeader(
            network_id=network_id, height=height, round=round, time_ms=time_ms,
            prev_hash=prev_hash, tx_root=merkle_root(txs), proposer=proposer,
        )
        block = cls(header, txs)
        block.validate_basic()
        return block

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def validate_basic(self) -> None:
        """Raise :class:`BlockInvalid` unless version, bounds and transaction root hold."""
        if self.header.version != BLOCK_VERSION:
            raise BlockInvalid(BlockFault.UNSUPPORTED_VERSION, str(self.header.version))
        if len(self.txs) > MAX_BLOCK_TXS:
            raise BlockInvalid(BlockFault.TOO_MANY_TXS)
        if sum(len(tx) for tx in self.txs) > MAX_BLOCK_TX_BYTES:
            raise BlockInvalid(BlockFault.OVERSIZED)
        if merkle_root(self.txs) != self.header.tx_root:
            raise BlockInvalid(BlockFault.BAD_TX_ROOT)

    def encode(self) -> bytes:
        return codec.encode([self.header.to_value(), list(self.txs)])

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """The block encoded in ``data``, or :class:`DecodeError`.

        Decoding checks shape and bounds only; call :meth:`validate_basic` for the root.
        """
        items = codec.expect_list(
            codec.decode_canonical(data, max_size=MAX_BLOCK_BYTES), 2, what="block"
        )
        header = BlockHeader.from_value(items[0])
        raw_txs = codec.expect_list(items[1], what="txs")
        if len(raw_txs) > MAX_BLOCK_TXS:
            raise DecodeError(DecodeFault.WRONG_SHAPE, "txs: too many")
        txs = tuple(codec.expect_bytes(tx, what="tx") for tx in raw_txs)
        return _construct(lambda: cls(header, txs))


def _construct(make: Callable[[], _T]) -> _T:
    """``make()``, with a construction refusal turned into the decoder's one error kind.

    The ``expect_*`` bounds above match the constructors', so this is a second line of defence:
    a decoder's only outcomes are a value and :class:`DecodeError` (h11 ``fuzz/``).
    """
    try:
        return make()
    except BlockInvalid as exc:
        raise DecodeError(DecodeFault.WRONG_SHAPE, exc.reason.value) from exc
