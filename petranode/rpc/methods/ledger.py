"""``ledger.*`` and ``wallet.*`` RPC methods (SPEC §4.6, §4.9; issue 6 item 6).

* ``ledger.status`` → ``{"height", "head_hash", "validators", "round", …}``
* ``ledger.block {"height": h}`` → the block at ``h`` with its transaction hashes, or null
* ``ledger.tx {"hash": hex}`` → a transaction's status (final or pending) and bytes, or null
* ``ledger.submit {"tx": hex}`` → the hash of an encoded transaction the pool accepted
* ``ledger.evidence`` → conflicting messages signed by one validator, as kept (SPEC §4.6)
* ``wallet.address`` → this node's wallet address
* ``wallet.balance`` → unspent amount per asset (``"money"`` in cents; energy assets in W)
* ``wallet.transfer {"to": address, "amount": int, "asset": "money"}`` → the transaction hash
* ``wallet.history`` → outputs received and spent, oldest first

A prosumer's ``wallet.transfer`` is checked by its own pool, then sent through its garlic
tunnels to a validator's destination (genesis ``[[validators]] destination``), which gossips
it (SPEC §4.6: "through their tunnels … never over their own link"). Bytes are hex; no amount,
key or payload is logged here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final, Protocol, final

from petranode.crypto.errors import InvalidAddress
from petranode.crypto.keys import PublicAddress
from petranode.ledger.assets import MONEY, Asset, AssetKind
from petranode.ledger.tx import MAX_TX_BYTES
from petranode.ledger.tx_errors import InsufficientFunds, TxRejected
from petranode.rpc.errors import ErrorCode
from petranode.rpc.params import invalid_params
from petranode.rpc.protocol import MethodTable

HASH_HEX_CHARS: Final = 64
MONEY_NAME: Final = "money"
#: Application codes of the ledger layer (JSON-RPC's −32000…−32099 range).
TX_REJECTED: Final = ErrorCode.PETRANODE_ERROR - 10
INSUFFICIENT_FUNDS: Final = ErrorCode.PETRANODE_ERROR - 11


class LedgerControl(Protocol):
    """What the ledger service answers (``petranode.ledger.service.LedgerService``)."""

    def status(self) -> dict[str, Any]: ...

    def block(self, height: int) -> Awaitable[dict[str, Any] | None]: ...

    def tx(self, digest: bytes) -> Awaitable[dict[str, Any] | None]: ...

    def submit(self, data: bytes) -> Awaitable[bytes]: ...

    def evidence(self) -> Awaitable[list[dict[str, Any]]]: ...

    def wallet_address(self) -> str: ...

    def wallet_balance(self) -> dict[str, int]: ...

    def wallet_transfer(self, to: PublicAddress, amount: int, asset: Asset) -> Awaitable[bytes]:
        ...

    def wallet_history(self) -> list[dict[str, Any]]: ...


@final
@dataclass(frozen=True, slots=True)
class BlockParams:
    #: Height of the block, from 1.
    height: int


@final
@dataclass(frozen=True, slots=True)
class TxParams:
    #: The transaction hash in hex (32 bytes).
    hash: str


@final
@dataclass(frozen=True, slots=True)
class SubmitParams:
    #: An encoded transaction in hex.
    tx: str


@final
@dataclass(frozen=True, slots=True)
class TransferParams:
    #: The recipient's wallet address.
    to: str
    #: Cents of money, or watts of an energy asset.
    amount: int
    #: ``"money"``, or ``"production:FIRST:LAST"`` / ``"consumption:FIRST:LAST"`` (intervals).
    asset: str = "money"


def register(table: MethodTable, ledger: LedgerControl) -> None:
    table.errors.register(TxRejected, TX_REJECTED)
    table.errors.register(InsufficientFunds, INSUFFICIENT_FUNDS)

    async def status() -> dict[str, Any]:
        """Height, head hash, validators and current consensus round."""
        return ledger.status()

    async def block(height: int) -> dict[str, Any] | None:
        """The committed block at ``height``; null if there is none yet."""
        if height < 1:
            raise invalid_params("height", "height starts at 1")
        return await ledger.block(height)

    async def tx(hash: str) -> dict[str, Any] | None:
        """The transaction's status (final or pending) and bytes; null if unknown."""
        return await ledger.tx(parse_hash(hash, "hash"))

    async def submit(tx: str) -> str:
        """Validate an encoded transaction, pool it and gossip it (from this router, over links);
        returns its hash, or a TX_REJECTED error whose ``data.reason`` names the rule."""
        if len(tx) > 2 * MAX_TX_BYTES:
            raise invalid_params("tx", "transaction too large")
        try:
            data = bytes.fromhex(tx)
        except ValueError:
            raise invalid_params("tx", "tx is not hex") from None
        return (await ledger.submit(data)).hex()

    async def evidence() -> list[dict[str, Any]]:
        """Equivocations seen: kind, height, round, validator and the two signed messages."""
        return await ledger.evidence()

    async def address() -> str:
        """This node's wallet address (base58, Monero-style)."""
        return ledger.wallet_address()

    async def balance() -> dict[str, int]:
        """Unspent amount per asset."""
        return ledger.wallet_balance()

    async def transfer(to: str, amount: int, asset: str = "money") -> str:
        """Pay ``amount`` of ``asset`` to ``to``; returns the transaction hash once the local
        pool accepted it (finality follows; poll ``ledger.tx``)."""
        if amount < 1:
            raise invalid_params("amount", "amount must be positive")
        try:
            recipient = PublicAddress.decode(to)
        except InvalidAddress:
            raise invalid_params("to", "not a wallet address") from None
        digest = await ledger.wallet_transfer(recipient, amount, parse_asset(asset))
        return digest.hex()

    async def history() -> list[dict[str, Any]]:
        """Outputs this wallet received, with height, asset, amount and whether spent."""
        return ledger.wallet_history()

    table.register("ledger.status", status)
    table.register("ledger.block", block, BlockParams)
    table.register("ledger.tx", tx, TxParams)
    table.register("ledger.submit", submit, SubmitParams)
    table.register("ledger.evidence", evidence)
    table.register("wallet.address", address)
    table.register("wallet.balance", balance)
    table.register("wallet.transfer", transfer, TransferParams)
    table.register("wallet.history", history)


def parse_hash(text: str, param: str) -> bytes:
    if len(text) != HASH_HEX_CHARS:
        raise invalid_params(param, f"{param} must be {HASH_HEX_CHARS} hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise invalid_params(param, f"{param} is not hex") from None


def parse_asset(text: str) -> Asset:
    """``money`` or ``production:F:L`` / ``consumption:F:L``."""
    if text == MONEY_NAME:
        return MONEY
    kind, _, rest = text.partition(":")
    first, _, last = rest.partition(":")
    try:
        return Asset(AssetKind(kind), int(first), int(last))
    except ValueError:
        raise invalid_params(
            "asset", "expected 'money', 'production:FIRST:LAST' or 'consumption:FIRST:LAST'"
        ) from None


def asset_name(asset: Asset) -> str:
    """The inverse of :func:`parse_asset`."""
    if asset.kind is AssetKind.MONEY:
        return MONEY_NAME
    return f"{asset.kind.value}:{asset.first_interval}:{asset.last_interval}"
