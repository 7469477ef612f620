"""Node configuration: one TOML file, one frozen dataclass per section (SPEC §4.1).

Loading is strict in the way an operator needs: an unknown key, a value of the wrong type or
a value out of range stops the node with a single line naming the dotted key
(``link.port: expected int, got str``). Each service receives only its own section; nothing
reads configuration from module globals. ``config/petranode.toml`` documents every key, and a
test checks that it names every field defined here.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

from petranode.errors import PetranodeError
from petranode.ledger.settings import LedgerConfig
from petranode.market.settings import MarketConfig
from petranode.net.link.settings import LinkConfig
from petranode.net.netdb.settings import NetDbConfig
from petranode.net.tunnel.settings import TunnelConfig


class ConfigError(PetranodeError):
    """A configuration or genesis value is wrong; the message is one line naming the key."""


class Role(enum.StrEnum):
    """What a node does in the network (SPEC §1 users)."""

    DSO = "dso"
    AUTHORITY = "authority"
    VALIDATOR = "validator"
    PROSUMER = "prosumer"


LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")


@final
@dataclass(frozen=True, slots=True)
class NodeConfig:
    """``[node]``: who this node is and where it keeps its state."""

    name: str = "node"
    roles: tuple[Role, ...] = (Role.PROSUMER,)
    #: State directory: keys, database, control socket. Relative to the config file.
    data_dir: str = "."
    #: The network's genesis file. Relative to the config file.
    genesis: str = "genesis.toml"

    def validate(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError("node.name: use letters, digits, '-', '_' or '.'")
        if not self.roles:
            raise ConfigError("node.roles: at least one role is required")
        if len(set(self.roles)) != len(self.roles):
            raise ConfigError("node.roles: a role is listed twice")


@final
@dataclass(frozen=True, slots=True)
class RpcConfig:
    """``[rpc]``: the JSON-RPC control socket (SPEC §4.9)."""

    #: Unix socket path; empty means ``<data_dir>/control.sock``.
    socket: str = ""
    #: Seconds an RPC client may stay idle before the server closes it.
    idle_timeout_s: float = 60.0

    def validate(self) -> None:
        if self.idle_timeout_s <= 0:
            raise ConfigError("rpc.idle_timeout_s: must be positive")


@final
@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``: structured logs on stderr."""

    level: str = "info"
    format: str = "text"

    def validate(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ConfigError(f"log.level: one of {', '.join(LOG_LEVELS)}")
        if self.format not in LOG_FORMATS:
            raise ConfigError(f"log.format: one of {', '.join(LOG_FORMATS)}")


@final
@dataclass(frozen=True, slots=True)
class Config:
    """A whole node configuration, with paths resolved against the config file's folder."""

    node: NodeConfig = field(default_factory=NodeConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    netdb: NetDbConfig = field(default_factory=NetDbConfig)
    tunnel: TunnelConfig = field(default_factory=TunnelConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    rpc: RpcConfig = field(default_factory=RpcConfig)
    log: LogConfig = field(default_factory=LogConfig)
    #: Folder that relative paths are resolved against (not a TOML key).
    base_dir: Path = field(default=Path("."), compare=False)

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.node.data_dir).resolve()

    @property
    def genesis_path(self) -> Path:
        return (self.base_dir / self.node.genesis).resolve()

    @property
    def rpc_socket(self) -> Path:
        if self.rpc.socket:
            return (self.base_dir / self.rpc.socket).resolve()
        return self.data_dir / "control.sock"


SECTIONS: Final[dict[str, type[Any]]] = {
    "node": NodeConfig,
    "link": LinkConfig,
    "netdb": NetDbConfig,
    "tunnel": TunnelConfig,
    "ledger": LedgerConfig,
    "market": MarketConfig,
    "rpc": RpcConfig,
    "log": LogConfig,
}


def read_toml(path: Path, what: str = "") -> dict[str, Any]:
    """A TOML file as a table, or a one-line :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read{what} ({exc.strerror})") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def load_config(path: Path) -> Config:
    """Read and validate a node's TOML configuration."""
    return parse_config(read_toml(path), base_dir=path.resolve().parent)


def parse_config(document: dict[str, Any], *, base_dir: Path) -> Config:
    for key in document:
        if key not in SECTIONS:
            raise ConfigError(f"{key}: unknown section")
    sections = {}
    for name, cls in SECTIONS.items():
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table")
        sections[name] = build_section(cls, table, name)
    return Config(base_dir=base_dir, **sections)


def build_section(cls: type[Any], table: dict[str, Any], prefix: str) -> Any:
    """Instantiate a section dataclass from a TOML table, checking every key and type."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"{prefix}.{key}: unknown key")
        kwargs[key] = coerce(value, hints[key], f"{prefix}.{key}")
    try:
        section = cls(**kwargs)
        section.validate()
    except ConfigError:
        raise
    except (PetranodeError, ValueError, TypeError) as exc:
        raise ConfigError(one_line(exc, prefix)) from exc
    return section


def one_line(exc: BaseException, prefix: str) -> str:
    text = " ".join(str(exc).split())
    return text if text.startswith(prefix + ".") else f"{prefix}: {text}"


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a TOML value against a field's annotation; TOML integers also fill floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(hint), key)
    if origin is tuple:
        return _coerce_tuple(value, typing.get_args(hint), key)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _coerce_enum(value, hint, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key}: expected {hint.__name__}, got bool")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__}")
    return value


def _coerce_union(value: Any, options: tuple[Any, ...], key: str) -> Any:
    for option in options:
        try:
            return coerce(value, option, key)
        except ConfigError:
            continue
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"{key}: expected {names}, got {type(value).__name__}")


def _coerce_tuple(value: Any, args: tuple[Any, ...], key: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
    item = args[0]
    return tuple(coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))


def _coerce_enum(value: Any, hint: type[enum.Enum], key: str) -> enum.Enum:
    try:
        return hint(value)
    except ValueError as exc:
        allowed = ", ".join(str(m.value) for m in hint)
        raise ConfigError(f"{key}: {value!r} is not one of {allowed}") from exc


def render_config(config: Config) -> str:
    """The TOML text of a configuration (used by ``init`` and the testnet generator)."""
    lines: list[str] = []
    for name in SECTIONS:
        lines.append(f"[{name}]")
        section = getattr(config, name)
        for f in dataclasses.fields(section):
            lines.append(f"{f.name} = {toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return toml_value(value.value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")
