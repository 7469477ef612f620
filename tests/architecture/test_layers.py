"""Tests about the code's shape (STYLE: layout, sans-IO rule).

* A module imports only from its own layer or lower.
* Only the I/O edges import ``asyncio``, sockets or subprocesses.
* Only ``crypto/_sodium.py`` imports ``nacl``; only netDb's service imports ``kademlia``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "petranode"

#: Layer of each module prefix, bottom (0) to top. The longest matching prefix wins.
LAYERS: dict[str, int] = {
    "petranode": 0,
    "petranode.errors": 0,
    "petranode.clock": 0,
    "petranode.log": 0,
    "petranode.crypto": 0,
    "petranode.wire": 0,
    "petranode.net": 1,
    "petranode.net.identity": 1,
    "petranode.net.signing": 1,
    "petranode.net.cert": 1,
    "petranode.net.link": 1,
    "petranode.net.netdb.settings": 1,
    "petranode.net.netdb.errors": 1,
    # Settings sections sit low so that config.py can gather them all.
    "petranode.net.tunnel.settings": 1,
    "petranode.ledger.settings": 1,
    "petranode.market.settings": 1,
    "petranode.store": 1,
    "petranode.systemd": 1,
    "petranode.config": 2,
    "petranode.genesis": 2,
    "petranode.keystore": 2,
    "petranode.net.bootstrap": 3,
    "petranode.net.netdb": 3,
    "petranode.net.tunnel": 3,
    "petranode.net.garlic": 4,
    "petranode.net.destination": 4,
    # Pure (no petranode imports); the tunnel service schedules cover and batches hops with it.
    "petranode.net.cover": 3,
    "petranode.ledger": 4,
    # The ledger benchmark drives a testnet, like the CLI verb that runs it.
    "petranode.ledger.bench": 8,
    # The tunnel benchmark drives a testnet, like the CLI verb that runs it.
    "petranode.net.tunnel.bench": 8,
    "petranode.market": 5,
    "petranode.rpc": 6,
    "petranode.node": 7,
    "petranode.testnet": 8,
    "petranode.demo": 8,
    "petranode.cli": 9,
    "petranode.__main__": 10,
}

#: STYLE: the I/O edges, the only modules that may import asyncio.
IO_EDGES = {"service.py", "store.py", "server.py", "client.py", "node.py", "cli.py", "testnet.py"}
IO_MODULES = {"asyncio", "socket", "subprocess", "selectors"}
IO_ALLOWED_EXTRA = {"systemd.py": {"socket"}, "testnet.py": {"socket", "subprocess"}}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _layer(module: str) -> int:
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    assert best, f"{module} has no layer in tests/architecture/test_layers.py"
    return LAYERS[best]


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


MODULES = list(_modules())


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_stay_in_their_layer(module: str, path: Path) -> None:
    own = _layer(module)
    for imported in _imports(path):
        if imported.startswith("petranode") and imported.split(".")[1:2] != []:
            target = imported
            # `from petranode.crypto import group` names a module; `import petranode` is the root.
            assert _layer(target) <= own, f"{module} (layer {own}) imports {target} (layer {_layer(target)})"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_only_io_edges_do_io(module: str, path: Path) -> None:
    allowed = IO_MODULES if path.name in IO_EDGES else IO_ALLOWED_EXTRA.get(path.name, set())
    for imported in _imports(path):
        root = imported.split(".")[0]
        if root in IO_MODULES:
            assert root in allowed, f"{module} imports {root}, but only I/O edges may"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_third_party_doors(module: str, path: Path) -> None:
    for imported in _imports(path):
        root = imported.split(".")[0]
        if root == "nacl":
            assert module == "petranode.crypto._sodium", f"{module} imports nacl directly"
        if root == "kademlia":
            assert module == "petranode.net.netdb.service", f"{module} imports kademlia directly"
