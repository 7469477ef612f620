"""Config loading: strict keys, typed values, one-line errors naming the dotted key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from petranode.config import (
    SECTIONS,
    Config,
    ConfigError,
    Role,
    load_config,
    parse_config,
    render_config,
)

EXAMPLE = Path(__file__).parents[3] / "config" / "petranode.toml"


def test_defaults_are_valid() -> None:
    config = parse_config({}, base_dir=Path("/srv/node"))
    assert config.node.roles == (Role.PROSUMER,)
    assert config.rpc_socket == Path("/srv/node/control.sock")
    assert config.link.host == "127.0.0.1"


@pytest.mark.parametrize(("document", "message"), [
    ({"nope": {}}, "nope: unknown section"),
    ({"node": {"colour": "red"}}, "node.colour: unknown key"),
    ({"link": {"port": "80"}}, "link.port: expected int, got str"),
    ({"link": {"port": True}}, "link.port: expected int, got bool"),
    ({"node": {"roles": ["king"]}}, "node.roles[0]: 'king' is not one of"),
    ({"node": {"roles": "dso"}}, "node.roles: expected a list"),
    ({"node": {"roles": []}}, "node.roles: at least one role"),
    ({"log": {"level": "loud"}}, "log.level: one of"),
    ({"rpc": {"idle_timeout_s": 0}}, "rpc.idle_timeout_s: must be positive"),
    ({"node": "x"}, "node: expected a table"),
])
def test_wrong_values_name_their_key(document: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(document, base_dir=Path("."))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_integers_fill_float_fields() -> None:
    config = parse_config({"rpc": {"idle_timeout_s": 5}}, base_dir=Path("."))
    assert config.rpc.idle_timeout_s == 5.0


def test_render_round_trips(tmp_path: Path) -> None:
    original = parse_config({"node": {"name": "p1", "roles": ["prosumer", "validator"]},
                             "link": {"port": 4711}}, base_dir=tmp_path)
    path = tmp_path / "petranode.toml"
    path.write_text(render_config(original))
    assert load_config(path) == dataclasses.replace(original, base_dir=tmp_path)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_example_documents_every_field() -> None:
    """config/petranode.toml names every key of every section, each with a comment above it."""
    text = EXAMPLE.read_text()
    document = tomllib.loads(text)
    for name, cls in SECTIONS.items():
        assert name in document, f"[{name}] missing from the example"
        documented = set(document[name])
        fields = {f.name for f in dataclasses.fields(cls)}
        assert documented == fields, f"[{name}] example differs: {documented ^ fields}"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), f"undocumented: {line}"
    parse_config(document, base_dir=EXAMPLE.parent)


def test_example_values_are_the_defaults() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    assert parse_config(document, base_dir=Path(".")) == Config(base_dir=Path("."))
