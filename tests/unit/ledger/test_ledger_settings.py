"""``[ledger]`` in the node's configuration: defaults, ranges, the DSO's issuance list."""

from __future__ import annotations

from pathlib import Path

import pytest

from petranode.config import ConfigError, parse_config
from petranode.crypto.keys import WalletKeys
from petranode.ledger.settings import LedgerConfig


def test_defaults_validate() -> None:
    LedgerConfig().validate()
    assert parse_config({}, base_dir=Path(".")).ledger == LedgerConfig()


def test_issuance_addresses_parse() -> None:
    address = WalletKeys.generate().address
    config = parse_config({"ledger": {"genesis_issuance": [address.encode()]}},
                          base_dir=Path("."))
    assert config.ledger.issuance_addresses() == (address,)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"gossip_fanout": 0}, "ledger.gossip_fanout: out of range"),
        ({"timeout_propose_ms": 1}, "ledger.timeout_propose_ms: out of range"),
        ({"genesis_issuance": ["nope"]}, "ledger.genesis_issuance[0]: not a wallet address"),
        ({"skip_empty_blocks": 1}, "ledger.skip_empty_blocks: expected bool, got int"),
        ({"block_interval_ms": 5}, "ledger.block_interval_ms: unknown key"),
    ],
)
def test_wrong_values_name_their_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"ledger": table}, base_dir=Path("."))
    assert str(info.value) == message
