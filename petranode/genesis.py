"""The genesis file: what defines one petranode network (SPEC §4.1).

A TOML document (so the example in ``config/`` can carry comments), fixed for the life of the network: the network id, the directory
authorities (their keys and where to reach them to bootstrap), the validators, the DSO's keys,
the trading interval and the protocol parameters. Every node of a network holds the same file;
its hash (SHA-256 of the canonical msgpack encoding) identifies the network beyond its name.
Validation is strict and reports one line naming the dotted key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

from petranode.config import ConfigError, build_section, read_toml, toml_value
from petranode.crypto.errors import CryptoError
from petranode.crypto.group import Point
from petranode.wire import codec

GENESIS_VERSION: Final = 1
#: Ports and hosts are checked, not resolved: a genesis never names a host by DNS name.
_MAX_NAME = 64


def _hex_key(value: Any, key: str) -> bytes:
    """32 bytes in hex: an Ed25519 or X25519 public key, or a SHA-256 hash."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: not hex") from exc
    if len(raw) != 32:
        raise ConfigError(f"{key}: expected 32 bytes, got {len(raw)}")
    return raw


def _ed25519_key(value: Any, key: str) -> bytes:
    raw = _hex_key(value, key)
    try:
        Point.from_bytes(raw)
    except CryptoError as exc:
        raise ConfigError(f"{key}: not a valid Ed25519 public key") from exc
    return raw


def _optional_hash(table: Any, field: str, key: str) -> bytes:
    """An optional 32-byte hash (hex) under ``field``; empty when absent."""
    return _hex_key(table[field], f"{key}.{field}") if field in table else b""


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise ConfigError(f"{key}: expected a name of 1 to {_MAX_NAME} characters")
    return value


def _only_keys(
    table: Any, allowed: set[str], key: str, optional: frozenset[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected an object")
    for k in table:
        if k not in allowed and k not in optional:
            raise ConfigError(f"{key}.{k}: unknown key")
    for k in allowed:
        if k not in table:
            raise ConfigError(f"{key}.{k}: missing")
    return table


@final
@dataclass(frozen=True, slots=True)
class Authority:
    """A directory authority: certifies routers, and is where new nodes bootstrap."""

    name: str
    signing_key: bytes
    static_key: bytes
    host: str
    port: int
    #: UDP port of the authority's netDb, where new nodes bootstrap the DHT. Optional in the
    #: file: 0 (absent) means the link port's number, on UDP (I2P's SSU and NTCP share one).
    netdb_port: int = 0

    @property
    def netdb_address(self) -> tuple[str, int]:
        return self.host, self.netdb_port or self.port

    @classmethod
    def parse(cls, table: Any, key: str) -> Authority:
        t = _only_keys(table, {"name", "signing_key", "static_key", "host", "port"}, key,
                       optional=frozenset({"netdb_port"}))
        port = t["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"{key}.port: expected an integer 1..65535")
        netdb_port = t.get("netdb_port", 0)
        if (not isinstance(netdb_port, int) or isinstance(netdb_port, bool)
                or not 0 < netdb_port < 65536) and "netdb_port" in t:
            raise ConfigError(f"{key}.netdb_port: expected an integer 1..65535")
        host = t["host"]
        if not isinstance(host, str) or not host:
            raise ConfigError(f"{key}.host: expected an address")
        return cls(
            name=_name(t["name"], f"{key}.name"),
            signing_key=_ed25519_key(t["signing_key"], f"{key}.signing_key"),
            static_key=_hex_key(t["static_key"], f"{key}.static_key"),
            host=host,
            port=port,
            netdb_port=netdb_port,
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "signing_key": self.signing_key.hex(),
            "static_key": self.static_key.hex(),
            "host": self.host,
            "port": self.port,
        }
        # Written only when set, so genesis files (and hashes) without it are unchanged.
        if self.netdb_port:
            document["netdb_port"] = self.netdb_port
        return document


@final
@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    signing_key: bytes
    #: Hash of the validator's garlic destination, where prosumers submit transactions through
    #: their tunnels (SPEC §4.6). Optional in the file: empty (absent) means submission by
    #: gossip over links only.
    destination: bytes = b""

    @classmethod
    def parse(cls, table: Any, key: str) -> Validator:
        t = _only_keys(table, {"name", "signing_key"}, key, optional=frozenset({"destination"}))
        return cls(
            _name(t["name"], f"{key}.name"),
            _ed25519_key(t["signing_key"], f"{key}.signing_key"),
            _optional_hash(t, "destination", key),
        )

    def to_json(self) -> dict[str, Any]:
        document = {"name": self.name, "signing_key": self.signing_key.hex()}
        # Written only when set, so genesis files (and hashes) without it are unchanged.
        if self.destination:
            document["destination"] = self.destination.hex()
        return document


@final
@dataclass(frozen=True, slots=True)
class Dso:
    """The distribution system operator: issues assets, signs DSO-only transactions, bills."""

    signing_key: bytes
    spend_key: bytes
    view_key: bytes
    #: Hash of the DSO's garlic destination, where prosumers send their requests (SPEC §4.7).
    #: Optional in the file, like a validator's.
    destination: bytes = b""

    @classmethod
    def parse(cls, table: Any, key: str) -> Dso:
        t = _only_keys(table, {"signing_key", "spend_key", "view_key"}, key,
                       optional=frozenset({"destination"}))
        return cls(
            signing_key=_ed25519_key(t["signing_key"], f"{key}.signing_key"),
            spend_key=_ed25519_key(t["spend_key"], f"{key}.spend_key"),
            view_key=_ed25519_key(t["view_key"], f"{key}.view_key"),
            destination=_optional_hash(t, "destination", key),
        )

    def to_json(self) -> dict[str, Any]:
        document = {
            "signing_key": self.signing_key.hex(),
            "spend_key": self.spend_key.hex(),
            "view_key": self.view_key.hex(),
        }
        if self.destination:
            document["destination"] = self.destination.hex()
        return document


@final
@dataclass(frozen=True, slots=True)
class Params:
    """Protocol parameters every node of the network must agree on."""

    #: Minimum ring size of a private input (SPEC §4.5; Monero uses 16).
    min_ring_size: int = 16
    #: Target time between blocks.
    block_interval_ms: int = 1000
    #: Hops per tunnel (SPEC §4.4; 0 only for tests).
    tunnel_length: int = 3
    #: Size of every tunnel message on the wire (SPEC §4.4).
    tunnel_message_bytes: int = 1024
    #: How far a peer's clock may be from ours before its records are refused.
    max_clock_skew_s: int = 60
    #: Lifetime of a router certificate issued by an authority.
    certificate_lifetime_s: int = 365 * 24 * 3600
    #: How long before an interval starts its market gate closes: offers, acceptances and
    #: asset requests for it are refused from then on (SPEC §4.7).
    gate_lead_ms: int = 2000
    #: How long after gate closure every trade of the interval is reported cleared or failed.
    clearing_ms: int = 1000
    #: How long after an interval ends its meters have to report before it settles.
    settlement_lag_ms: int = 2000
    #: Intervals per reputation epoch: the DSO publishes tier lists per epoch, and a gated
    #: offer's list must be of its block's epoch or the one before (SPEC §4.7).
    reputation_epoch_intervals: int = 4

    def validate(self) -> None:
        checks = {
            "min_ring_size": 1 <= self.min_ring_size <= 256,
            "block_interval_ms": 10 <= self.block_interval_ms <= 600_000,
            "tunnel_length": 0 <= self.tunnel_length <= 7,
            "tunnel_message_bytes": 256 <= self.tunnel_message_bytes <= 4096,
            "max_clock_skew_s": 1 <= self.max_clock_skew_s <= 3600,
            "certificate_lifetime_s": 60 <= self.certificate_lifetime_s <= 10 * 365 * 24 * 3600,
            "gate_lead_ms": 0 <= self.gate_lead_ms <= 86_400_000,
            "clearing_ms": 0 <= self.clearing_ms <= self.gate_lead_ms,
            "settlement_lag_ms": 0 <= self.settlement_lag_ms <= 86_400_000,
            "reputation_epoch_intervals": 1 <= self.reputation_epoch_intervals <= 10_000,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"params.{name}: out of range")


@final
@dataclass(frozen=True, slots=True)
class Genesis:
    network_id: str
    genesis_time: int
    interval_s: int
    authorities: tuple[Authority, ...]
    validators: tuple[Validator, ...]
    dso: Dso
    params: Params = field(default_factory=Params)

    def __post_init__(self) -> None:
        if not self.network_id or len(self.network_id) > _MAX_NAME:
            raise ConfigError("network_id: expected 1 to 64 characters")
        if not 1 <= self.interval_s <= 86_400:
            raise ConfigError("interval_s: expected 1..86400 seconds")
        if self.genesis_time < 0:
            raise ConfigError("genesis_time: must not be negative")
        if not self.authorities:
            raise ConfigError("authorities: at least one directory authority is required")
        if not self.validators:
            raise ConfigError("validators: at least one validator is required")
        if self.params.gate_lead_ms >= self.interval_s * 1000:
            # The gate of interval i+1 would close before interval i starts.
            raise ConfigError("params.gate_lead_ms: must be shorter than interval_s")
        _unique([a.signing_key for a in self.authorities], "authorities")
        _unique([v.signing_key for v in self.validators], "validators")
        _unique([v.name for v in self.validators], "validators")

    @property
    def authority_keys(self) -> frozenset[bytes]:
        return frozenset(a.signing_key for a in self.authorities)

    @property
    def max_faulty(self) -> int:
        """f = ⌊(n−1)/3⌋ (SPEC §4.6)."""
        return (len(self.validators) - 1) // 3

    def to_json(self) -> dict[str, Any]:
        p = self.params
        return {
            "version": GENESIS_VERSION,
            "network_id": self.network_id,
            "genesis_time": self.genesis_time,
            "interval_s": self.interval_s,
            "authorities": [a.to_json() for a in self.authorities],
            "validators": [v.to_json() for v in self.validators],
            "dso": self.dso.to_json(),
            "params": {name: getattr(p, name) for name in Params.__dataclass_fields__},
        }

    def hash(self) -> bytes:
        return hashlib.sha256(codec.encode(self.to_json())).digest()

    def write(self, path: Path) -> None:
        path.write_text(render_genesis(self), encoding="utf-8")


def _unique(items: list[Any], key: str) -> None:
    if len(set(items)) != len(items):
        raise ConfigError(f"{key}: duplicate entry")


_TOP_KEYS: Final = {
    "version",
    "network_id",
    "genesis_time",
    "interval_s",
    "authorities",
    "validators",
    "dso",
    "params",
}


def parse_genesis(document: Any) -> Genesis:
    t = _only_keys(document, _TOP_KEYS, "genesis")
    if t["version"] != GENESIS_VERSION:
        raise ConfigError(f"version: unsupported genesis version {t['version']!r}")
    for k in ("genesis_time", "interval_s"):
        if not isinstance(t[k], int) or isinstance(t[k], bool):
            raise ConfigError(f"{k}: expected an integer")
    if not isinstance(t["network_id"], str):
        raise ConfigError("network_id: expected a string")
    for k in ("authorities", "validators"):
        if not isinstance(t[k], list):
            raise ConfigError(f"{k}: expected a list")
    if not isinstance(t["params"], dict):
        raise ConfigError("params: expected an object")
    return Genesis(
        network_id=t["network_id"],
        genesis_time=t["genesis_time"],
        interval_s=t["interval_s"],
        authorities=tuple(
            Authority.parse(a, f"authorities[{i}]") for i, a in enumerate(t["authorities"])
        ),
        validators=tuple(
            Validator.parse(v, f"validators[{i}]") for i, v in enumerate(t["validators"])
        ),
        dso=Dso.parse(t["dso"], "dso"),
        params=build_section(Params, t["params"], "params"),
    )


def load_genesis(path: Path) -> Genesis:
    return parse_genesis(read_toml(path, " genesis"))


def render_genesis(genesis: Genesis) -> str:
    """The TOML text of a genesis (what the testnet generator writes)."""
    doc = genesis.to_json()
    lines = [
        f"{k} = {toml_value(doc[k])}"
        for k in ("version", "network_id", "genesis_time", "interval_s")
    ]
    for section in ("authorities", "validators"):
        for entry in doc[section]:
            lines += ["", f"[[{section}]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    for section in ("dso", "params"):
        lines += ["", f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in doc[section].items()]
    return "\n".join(lines) + "\n"
