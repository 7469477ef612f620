"""``[ledger]``: this node's knobs of the ledger service (SPEC §4.6; issue 6).

What every node of a network must agree on — validators, the block interval, the minimum ring
size — is in the genesis, not here. This section holds what one node may choose: whether its
blocks may be empty, its pool and gossip bounds, the consensus timeouts it waits, and, for the
DSO only, the testnet's first issuance. The config loader builds it from the TOML table and
calls :meth:`LedgerConfig.validate`, which names the dotted key of a wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from petranode.crypto.errors import CryptoError
from petranode.crypto.keys import PublicAddress

#: The largest amount an output may hold (Bulletproofs+ prove 64-bit values).
_MAX_AMOUNT: Final = 2**64 - 1


@final
@dataclass(frozen=True, slots=True)
class LedgerConfig:
    #: Propose a block only when the pool holds a transaction (CometBFT
    #: ``create_empty_blocks = false``). Heights then advance only with traffic.
    skip_empty_blocks: bool = False
    #: Transactions a proposer puts in one block at most (the block must also fit one link
    #: message; the proposer stops earlier when it would not).
    max_block_txs: int = 256
    #: Transactions the pool holds at most (CometBFT ``mempool.size``).
    mempool_max_txs: int = 5000
    #: Encoded bytes the pool holds at most.
    mempool_max_bytes: int = 64 * 1024 * 1024
    #: Milliseconds a validator waits for the round's proposal before voting nil; grows by
    #: ``timeout_delta_ms`` each round (CometBFT ``timeout_propose`` 3 s, ``_delta`` 0.5 s).
    timeout_propose_ms: int = 3000
    #: Milliseconds a validator waits after seeing two thirds of any votes (CometBFT
    #: ``timeout_prevote``/``timeout_precommit`` 1 s).
    timeout_vote_ms: int = 1000
    #: Milliseconds each later round adds to the timeouts.
    timeout_delta_ms: int = 500
    #: Peers newly told of one gossiped item at a time.
    gossip_fanout: int = 8
    #: Milliseconds between gossip rounds (re-requests, announcements to more peers).
    gossip_interval_ms: int = 100
    #: Seconds to wait for a gossiped item before asking another peer that has it.
    gossip_request_timeout_s: float = 2.0
    #: Seconds to wait for a block-sync answer before asking another peer.
    sync_request_timeout_s: float = 5.0
    #: DSO only: wallet addresses that the first issuance pays (the testnet writes the
    #: prosumers' here). Empty: no first issuance.
    genesis_issuance: tuple[str, ...] = ()
    #: DSO only: cents of money the first issuance gives each address in ``genesis_issuance``.
    genesis_issuance_amount: int = 1_000_000

    def validate(self) -> None:
        checks = {
            "max_block_txs": 1 <= self.max_block_txs <= 10_000,
            "mempool_max_txs": 1 <= self.mempool_max_txs <= 1_000_000,
            "mempool_max_bytes": 1024 * 1024 <= self.mempool_max_bytes <= 2**34,
            "timeout_propose_ms": 10 <= self.timeout_propose_ms <= 600_000,
            "timeout_vote_ms": 10 <= self.timeout_vote_ms <= 600_000,
            "timeout_delta_ms": 0 <= self.timeout_delta_ms <= 600_000,
            "gossip_fanout": 1 <= self.gossip_fanout <= 1024,
            "gossip_interval_ms": 10 <= self.gossip_interval_ms <= 60_000,
            "gossip_request_timeout_s": 0 < self.gossip_request_timeout_s <= 600,
            "sync_request_timeout_s": 0 < self.sync_request_timeout_s <= 600,
            "genesis_issuance_amount": 1 <= self.genesis_issuance_amount <= _MAX_AMOUNT,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"ledger.{name}: out of range")
        for i, address in enumerate(self.genesis_issuance):
            try:
                PublicAddress.decode(address)
            except (CryptoError, ValueError) as exc:
                raise ValueError(f"ledger.genesis_issuance[{i}]: not a wallet address") from exc

    def issuance_addresses(self) -> tuple[PublicAddress, ...]:
        return tuple(PublicAddress.decode(a) for a in self.genesis_issuance)
