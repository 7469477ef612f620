"""The assets of the ledger and their identifiers (SPEC §2 PETra workflow, §4.7).

PETra has three kinds of asset, all issued by the DSO:

* **money** — the financial asset, an unsigned integer amount of cents of the network's fiat
  currency;
* **production** — an *Energy Production Asset*: the right to deliver power during every
  market interval from ``first_interval`` to ``last_interval`` inclusive; its amounts are
  watts (PETra's "power (e.g. W)" per interval);
* **consumption** — an *Energy Consumption Asset*, the same for drawing power.

An :class:`Asset` is a value, not a registry entry: its canonical encoding is
``[version, kind, first_interval, last_interval]`` (``nil`` intervals for money) and its
:attr:`Asset.asset_id` is the SHA-256 of that encoding. Every output and input on the ledger
names its asset by this 32-byte id, so energy for different intervals never mixes: each
interval range is its own asset, with its own output indices, rings and balance.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from dataclasses import dataclass
from typing import Final, final

from petranode.ledger.tx_errors import TxReject, TxRejected
from petranode.wire import codec
from petranode.wire.errors import DecodeError

log = logging.getLogger(__name__)

ASSET_VERSION: Final = 1
ASSET_ID_BYTES: Final = 32
#: Intervals are counted from the genesis; 2⁶³ keeps them within msgpack's signed range.
MAX_INTERVAL: Final = 2**63 - 1
#: The largest encoded asset is 1 + 1 + 12 + 9 + 9 bytes; 64 leaves room and bounds decoding.
MAX_ASSET_BYTES: Final = 64


class AssetKind(enum.Enum):
    """What an asset is; the value is its name on the wire."""

    MONEY = "money"
    PRODUCTION = "production"
    CONSUMPTION = "consumption"

    @property
    def unit(self) -> str:
        """The unit of an amount: cents for money, watts for energy."""
        return "cent" if self is AssetKind.MONEY else "W"


@final
@dataclass(frozen=True, slots=True)
class Asset:
    """One asset: money, or energy of one kind over an inclusive range of intervals."""

    kind: AssetKind
    first_interval: int | None = None
    last_interval: int | None = None

    def __post_init__(self) -> None:
        if self.kind is AssetKind.MONEY:
            if self.first_interval is not None or self.last_interval is not None:
                raise ValueError("money has no intervals")
            return
        first, last = self.first_interval, self.last_interval
        if first is None or last is None:
            raise ValueError("an energy asset names its first and last interval")
        if not 0 <= first <= last <= MAX_INTERVAL:
            raise ValueError("intervals must satisfy 0 <= first <= last < 2^63")

    def encode(self) -> bytes:
        return codec.encode(
            [ASSET_VERSION, self.kind.value, self.first_interval, self.last_interval]
        )

    @classmethod
    def decode(cls, data: bytes) -> Asset:
        """The asset of ``data``; anything else raises ``TxRejected(MALFORMED)``."""
        try:
            fields = codec.expect_list(
                codec.decode_canonical(data, max_size=MAX_ASSET_BYTES), 4, what="asset"
            )
            if codec.expect_int(fields[0], 0, 255, what="asset version") != ASSET_VERSION:
                raise TxRejected(TxReject.UNSUPPORTED_VERSION, "asset")
            kind = AssetKind(codec.expect_str(fields[1], max_len=16, what="asset kind"))
            first, last = (
                None if v is None else codec.expect_int(v, 0, MAX_INTERVAL, what="interval")
                for v in fields[2:]
            )
            return cls(kind, first, last)
        except (DecodeError, ValueError) as exc:
            raise TxRejected(TxReject.MALFORMED, "asset") from exc

    @property
    def asset_id(self) -> bytes:
        """SHA-256 of the canonical encoding: the asset's name on the ledger."""
        return hashlib.sha256(self.encode()).digest()


#: The one financial asset.
MONEY: Final = Asset(AssetKind.MONEY)
