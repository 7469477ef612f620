"""SPEC §4.10 / issue 2 acceptance: a 10-node testnet on real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from petranode.testnet import Testnet

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "petranode", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_ten_node_testnet_links_every_node_and_down_leaves_nothing(short_tmp: Path) -> None:
    directory = short_tmp / "net"
    up = _cli("testnet", "up", "--dir", str(directory))
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(_cli("testnet", "status", "--dir", str(directory), "--json").stdout)
        assert [n["name"] for n in status] == ["dso", "validator1", "validator2", "validator3"] + [
            f"prosumer{i}" for i in range(1, 7)]
        assert all(n["alive"] for n in status)
        assert status[0]["roles"] == ["dso", "authority", "validator"]
        hashes = set()
        for node in status:
            rpc = _cli("rpc", "--dir", str(directory), "--node", node["name"], "node.status")
            assert rpc.returncode == 0, rpc.stderr
            info = json.loads(rpc.stdout)
            assert info["peers"], f"{node['name']} has no live link"
            assert info["roles"] == node["roles"]
            assert {"kind": "link", "host": "127.0.0.1"}.items() <= info["listen"][0].items()
            hashes.add(info["router_hash"])
        assert len(hashes) == 10
        dso = json.loads(_cli("rpc", "--dir", str(directory), "--node", "dso", "node.status").stdout)
        assert len(dso["peers"]) == 9, "every node bootstraps to the authority"
    finally:
        down = _cli("testnet", "down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert not any(_pid_alive(n["pid"]) for n in status)


def test_killed_node_rejoins_with_its_identity(testnet_factory: Callable[[int], Testnet]) -> None:
    net = testnet_factory(3)
    before = net.try_status("prosumer1")
    assert before is not None
    net.kill("prosumer1")
    assert not net.alive("prosumer1")
    net.up()
    after = net.try_status("prosumer1")
    assert after is not None
    assert after["router_hash"] == before["router_hash"]
    assert after["starts"] == before["starts"] + 1
    assert after["peers"]
    dso = net.try_status("dso")
    assert dso is not None and after["router_hash"] in dso["peers"]


def test_rpc_cli_reports_errors(testnet_factory: Callable[[int], Testnet]) -> None:
    net = testnet_factory(2)
    missing = _cli("rpc", "--dir", str(net.dir), "--node", "dso", "node.nope")
    assert missing.returncode == 1
    assert json.loads(missing.stderr)["code"] == -32601
    bad_params = _cli("rpc", "--dir", str(net.dir), "--node", "dso", "node.status", '{"x": 1}')
    assert bad_params.returncode == 1
    assert json.loads(bad_params.stderr)["code"] == -32602
    not_json = _cli("rpc", "--dir", str(net.dir), "--node", "dso", "node.status", "{")
    assert not_json.returncode == 2


def test_shutdown_rpc_stops_the_node(testnet_factory: Callable[[int], Testnet]) -> None:
    net = testnet_factory(2)
    pid = net.pid("prosumer1")
    assert pid is not None
    reply = _cli("rpc", "--dir", str(net.dir), "--node", "prosumer1", "node.shutdown")
    assert reply.returncode == 0, reply.stderr
    assert net.wait_stopped("prosumer1", timeout=10.0)


def test_bad_config_is_one_line_exit_2(short_tmp: Path) -> None:
    config = short_tmp / "petranode.toml"
    config.write_text('[link]\nport = "eighty"\n')
    result = _cli("run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == "petranode: link.port: expected int, got str"


def test_init_creates_private_keys_and_a_loadable_config(short_tmp: Path) -> None:
    node = short_tmp / "alice"
    result = _cli("init", "--dir", str(node), "--roles", "prosumer")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert len(bytes.fromhex(info["router_hash"])) == 32
    for key in ("router", "destination", "wallet", "meter"):
        assert os.stat(node / "keys" / f"{key}.key").st_mode & 0o777 == 0o600
    again = _cli("init", "--dir", str(node))
    assert again.returncode != 0
