"""The netDb bench runs and prints its baseline; ``[netdb]`` settings are range-checked."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from petranode.config import ConfigError, parse_config
from petranode.net.netdb.bench import run_netdb_bench
from petranode.net.netdb.errors import NetDbConfigInvalid
from petranode.net.netdb.settings import NetDbConfig


def test_bench_quick_prints_rows_and_baseline() -> None:
    out = io.StringIO()
    run_netdb_bench(out, quick=True)
    text = out.getvalue()
    assert "routerinfo" in text and "leaseset" in text and "Ed25519 verify" in text


def test_defaults_are_valid() -> None:
    NetDbConfig().validate()


@pytest.mark.parametrize(("change", "key"), [
    ({"port": 70_000}, "netdb.port"),
    ({"alpha": 0}, "netdb.alpha"),
    ({"alpha": 30}, "netdb.alpha"),
    ({"rpc_timeout_s": 0.0}, "netdb.rpc_timeout_s"),
    ({"rpc_timeout_s": 20.0}, "netdb.rpc_timeout_s"),
    ({"republish_s": 3000.0}, "netdb.max_routerinfo_age_s"),
    ({"max_leasesets": 0}, "netdb.max_leasesets"),
    ({"host": ""}, "netdb.host"),
])
def test_bad_values_name_their_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(NetDbConfigInvalid, match=key):
        NetDbConfig(**change).validate()  # type: ignore[arg-type]


def test_config_loader_builds_the_netdb_section() -> None:
    config = parse_config({"netdb": {"port": 7001, "ksize": 8}}, base_dir=Path("."))
    assert config.netdb.port == 7001 and config.netdb.ksize == 8
    with pytest.raises(ConfigError, match="netdb.alpha"):
        parse_config({"netdb": {"alpha": 99}}, base_dir=Path("."))
