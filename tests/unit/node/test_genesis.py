"""Genesis parsing: every key checked, one-line errors, a stable hash."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from petranode.config import ConfigError
from petranode.crypto.group import Scalar
from petranode.genesis import load_genesis, parse_genesis, render_genesis
from petranode.market.intervals import MarketClock

EXAMPLE = Path(__file__).parents[3] / "config" / "genesis.toml"


def _key() -> str:
    return Scalar.random().mul_base().hex()


def _document() -> dict[str, Any]:
    return {
        "version": 1, "network_id": "unit", "genesis_time": 1_700_000_000, "interval_s": 900,
        "authorities": [{"name": "dso", "signing_key": _key(), "static_key": "11" * 32,
                         "host": "127.0.0.1", "port": 7000}],
        "validators": [{"name": "dso", "signing_key": _key()}, {"name": "v1", "signing_key": _key()}],
        "dso": {"signing_key": _key(), "spend_key": _key(), "view_key": _key()},
        "params": {"min_ring_size": 16},
    }


def test_valid_document_parses_and_round_trips(tmp_path: Path) -> None:
    genesis = parse_genesis(_document())
    assert genesis.params.min_ring_size == 16
    assert genesis.max_faulty == 0
    path = tmp_path / "genesis.toml"
    genesis.write(path)
    again = load_genesis(path)
    assert again == genesis
    assert again.hash() == genesis.hash()


def test_reputation_epoch_intervals_defaults_and_reaches_the_market_clock(
        tmp_path: Path) -> None:
    without = parse_genesis(_document())
    assert without.params.reputation_epoch_intervals == 4
    assert without.to_json()["params"]["reputation_epoch_intervals"] == 4
    document = _document()
    document["params"]["reputation_epoch_intervals"] = 96
    genesis = parse_genesis(document)
    genesis.write(tmp_path / "genesis.toml")
    assert load_genesis(tmp_path / "genesis.toml") == genesis
    assert genesis.hash() != without.hash()
    clock = MarketClock.from_genesis(genesis)
    assert clock.reputation_epoch_intervals == 96
    assert clock.epoch_at(clock.start(96)) == 1


def test_destinations_are_optional_and_round_trip(tmp_path: Path) -> None:
    document = _document()
    without = parse_genesis(document)
    assert without.dso.destination == b"" and "destination" not in without.dso.to_json()
    document["validators"][1]["destination"] = "5a" * 32
    document["dso"]["destination"] = "d5" * 32
    genesis = parse_genesis(document)
    assert genesis.validators[1].destination == bytes.fromhex("5a" * 32)
    assert genesis.validators[0].destination == b""
    genesis.write(tmp_path / "genesis.toml")
    assert load_genesis(tmp_path / "genesis.toml") == genesis
    assert genesis.hash() != without.hash()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("dso"), "genesis.dso: missing"),
    (lambda d: d.update(extra=1), "genesis.extra: unknown key"),
    (lambda d: d.update(version=2), "version: unsupported"),
    (lambda d: d.update(interval_s=0), "interval_s: expected 1..86400"),
    (lambda d: d.update(authorities=[]), "authorities: at least one"),
    (lambda d: d["authorities"][0].update(port=70000), "authorities[0].port"),
    (lambda d: d["validators"][1].update(signing_key="zz"), "validators[1].signing_key: not hex"),
    (lambda d: d["validators"][1].update(signing_key="00" * 32), "validators[1].signing_key: not a valid"),
    (lambda d: d["validators"][1].update(name="dso"), "validators: duplicate"),
    (lambda d: d["dso"].update(view_key="ab" * 31), "dso.view_key: expected 32 bytes"),
    (lambda d: d["dso"].update(destination="ab" * 31), "dso.destination: expected 32 bytes"),
    (lambda d: d["validators"][0].update(destination=7), "validators[0].destination: expected a hex"),
    (lambda d: d["params"].update(tunnel_length=9), "params.tunnel_length: out of range"),
    (lambda d: d["params"].update(foo=1), "params.foo: unknown key"),
    (lambda d: d["params"].update(clearing_ms=3000), "params.clearing_ms: out of range"),
    (lambda d: d["params"].update(gate_lead_ms=900_000), "params.gate_lead_ms: must be shorter"),
    (lambda d: d["params"].update(reputation_epoch_intervals=0),
     "params.reputation_epoch_intervals: out of range"),
    (lambda d: d["params"].update(reputation_epoch_intervals=10_001),
     "params.reputation_epoch_intervals: out of range"),
])
def test_bad_values_are_named(mutate: Any, message: str) -> None:
    document = copy.deepcopy(_document())
    mutate(document)
    with pytest.raises(ConfigError) as info:
        parse_genesis(document)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_example_is_valid_and_commented() -> None:
    genesis = load_genesis(EXAMPLE)
    assert genesis.network_id
    text = EXAMPLE.read_text()
    assert render_genesis(genesis)
    assert text.count("#") > 20
    tomllib.loads(text)
