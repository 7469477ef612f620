"""A multi-process petranode network on 127.0.0.1 (SPEC §4.10).

The one way to start a network: ``petranode testnet up|status|down`` and the integration
tests both use :class:`Testnet`. ``up`` on an empty folder generates a genesis, keys,
certificates and configurations, then starts one ``petranode run`` process per node; on a
folder that already holds a network it resumes that network with its identities and data,
restarting only the nodes that are not running. It returns once every node answers
``node.status`` with at least one live link (a lone node needs none).

Folder layout::

    DIR/testnet.toml        the node list (name, roles)
    DIR/genesis.toml        the network
    DIR/<name>/petranode.toml, keys/, router.cert, node.db, control.sock, node.log, node.pid

Ports come from the OS (bind to port 0, read it, release it) when the network is generated and
are then kept, so a resumed node has the address the others know.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from petranode.config import Config, NodeConfig, Role, load_config, render_config, toml_value
from petranode.crypto.group import Scalar
from petranode.crypto.keys import WalletKeys
from petranode.errors import PetranodeError
from petranode.genesis import Authority, Dso, Genesis, Params, Validator, load_genesis
from petranode.keystore import NodeKeys, load_keys, save_keys
from petranode.ledger.settings import LedgerConfig
from petranode.market.settings import MarketConfig
from petranode.net import cert as certificates
from petranode.net.link.settings import LinkConfig
from petranode.net.netdb.leaseset import Destination
from petranode.net.netdb.settings import NetDbConfig
from petranode.net.tunnel.settings import TunnelConfig
from petranode.node import CERTIFICATE_FILE
from petranode.rpc.client import call_sync
from petranode.rpc.errors import RpcError

DEFAULT_NODES: Final = 10
#: SPEC §4.10's default network: one DSO node, three more validators, the rest prosumers.
EXTRA_VALIDATORS: Final = 3
READY_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 10.0
#: Accelerated trading intervals for local networks (SPEC §4.7).
TESTNET_INTERVAL_S: Final = 10
POLL_S: Final = 0.05
LOCAL_INBOUND_PER_IP: Final = 1000
#: Tunnel tests twice as often as on a real network, with a localhost timeout: a dead hop is
#: found in about ten seconds rather than thirty (a test message costs a millisecond here).
TESTNET_TUNNELS: Final = TunnelConfig(test_interval_s=5.0, test_timeout_s=2.0)
#: Consensus timeouts for a localhost network, where a message takes a millisecond: a round
#: whose proposer is down costs about one second rather than CometBFT's three.
TESTNET_LEDGER: Final = LedgerConfig(timeout_propose_ms=1000, timeout_vote_ms=300,
                                     timeout_delta_ms=200)


class TestnetError(PetranodeError):
    __test__ = False  # not a pytest test class, despite the name


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    roles: tuple[Role, ...]


def default_layout(n: int) -> list[NodeSpec]:
    """Node 0 is the DSO (validator, authority, issuer); then up to three validators, never
    more than the prosumers; then prosumers."""
    if n < 1:
        raise TestnetError("a testnet needs at least one node")
    specs = [NodeSpec("dso", (Role.DSO, Role.AUTHORITY, Role.VALIDATOR))]
    validators = min(EXTRA_VALIDATORS, (n - 1) // 2)
    specs += [NodeSpec(f"validator{i}", (Role.VALIDATOR,)) for i in range(1, validators + 1)]
    specs += [NodeSpec(f"prosumer{i}", (Role.PROSUMER,)) for i in range(1, n - validators)]
    return specs


@contextlib.contextmanager
def _reserved_ports(
    count: int, kind: socket.SocketKind = socket.SOCK_STREAM
) -> Iterator[list[int]]:
    """Ports the OS picked (TCP, or UDP for ``SOCK_DGRAM``); held open together so no two
    nodes get the same one."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Testnet:
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        # Nodes this object started; kept so they can be reaped (a test process is their parent).
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- layout ------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.dir / "testnet.toml"

    @property
    def genesis_path(self) -> Path:
        return self.dir / "genesis.toml"

    def node_dir(self, name: str) -> Path:
        return self.dir / name

    def config_path(self, name: str) -> Path:
        return self.node_dir(name) / "petranode.toml"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def nodes(self) -> list[NodeSpec]:
        try:
            document = tomllib.loads(self.manifest_path.read_text(encoding="utf-8"))
            return [
                NodeSpec(n["name"], tuple(Role(r) for r in n["roles"])) for n in document["nodes"]
            ]
        except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
            raise TestnetError(f"{self.manifest_path}: not a testnet manifest") from exc

    def config(self, name: str) -> Config:
        return load_config(self.config_path(name))

    def socket_path(self, name: str) -> Path:
        return self.config(name).rpc_socket

    # -- generation --------------------------------------------------------------------

    def generate(
        self,
        specs: Sequence[NodeSpec],
        *,
        network_id: str | None = None,
        interval_s: int = TESTNET_INTERVAL_S,
        params: Params | None = None,
        market: Mapping[str, MarketConfig] | None = None,
        genesis_time: int | None = None,
    ) -> Genesis:
        """Keys, genesis, certificates and configs for a new network in an empty folder;
        ``market`` gives some nodes their own ``[market]`` section (the demo's households),
        ``genesis_time`` (default now) where interval 0 starts."""
        if self.exists():
            raise TestnetError(f"{self.dir}: already holds a testnet")
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = {spec.name: NodeKeys.generate() for spec in specs}
        for spec in specs:
            save_keys(self.node_dir(spec.name), keys[spec.name])
        with _reserved_ports(len(specs)) as ports, _reserved_ports(
            len(specs), socket.SOCK_DGRAM
        ) as udp_ports:
            port_of = {spec.name: port for spec, port in zip(specs, ports)}
            netdb_port_of = {spec.name: port for spec, port in zip(specs, udp_ports)}
        genesis = _make_genesis(
            specs, keys, port_of, netdb_port_of, network_id or f"testnet-{secrets.token_hex(4)}",
            interval_s, params or Params(),
            int(time.time()) if genesis_time is None else genesis_time,
        )
        genesis.write(self.genesis_path)
        self._issue_certificates(specs, keys, genesis)
        # The DSO's first issuance pays every prosumer (issue 6 item 7): its config lists them.
        prosumers = tuple(
            WalletKeys(*keys[s.name].wallet()).address.encode()
            for s in specs
            if Role.PROSUMER in s.roles
        )
        for spec in specs:
            ledger = dataclasses.replace(
                TESTNET_LEDGER, genesis_issuance=prosumers if Role.DSO in spec.roles else ()
            )
            self._write_config(spec, port_of[spec.name], netdb_port_of[spec.name], ledger,
                               (market or {}).get(spec.name, MarketConfig()))
        self._write_manifest(specs)
        return genesis

    def _issue_certificates(
        self, specs: Sequence[NodeSpec], keys: dict[str, NodeKeys], genesis: Genesis
    ) -> None:
        issuer = next(s for s in specs if Role.AUTHORITY in s.roles)
        authority = keys[issuer.name].router()
        now = int(time.time())
        for spec in specs:
            cert = certificates.issue(
                authority,
                keys[spec.name].router().identity,
                network_id=genesis.network_id,
                valid_from=now - genesis.params.max_clock_skew_s,
                valid_until=now + genesis.params.certificate_lifetime_s,
            )
            (self.node_dir(spec.name) / CERTIFICATE_FILE).write_bytes(cert.encode())

    def _write_config(
        self, spec: NodeSpec, port: int, netdb_port: int, ledger: LedgerConfig,
        market: MarketConfig,
    ) -> None:
        config = Config(
            node=NodeConfig(
                name=spec.name,
                roles=spec.roles,
                data_dir=".",
                genesis=os.path.relpath(self.genesis_path, self.node_dir(spec.name)),
            ),
            # Every node of a local testnet dials from 127.0.0.1: the per-IP inbound limit,
            # meant for one host's worth of routers, must admit the whole network.
            link=LinkConfig(host="127.0.0.1", port=port,
                            max_inbound_per_ip=LinkConfig().max_peers),
            netdb=NetDbConfig(host="127.0.0.1", port=netdb_port),
            tunnel=TESTNET_TUNNELS,
            ledger=ledger,
            market=market,
        )
        self.config_path(spec.name).write_text(render_config(config), encoding="utf-8")

    def _write_manifest(self, specs: Sequence[NodeSpec]) -> None:
        lines = []
        for spec in specs:
            lines += [
                "[[nodes]]",
                f"name = {toml_value(spec.name)}",
                f"roles = {toml_value(spec.roles)}",
                "",
            ]
        self.manifest_path.write_text("\n".join(lines), encoding="utf-8")

    # -- processes ---------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        try:
            return int((self.node_dir(name) / "node.pid").read_text())
        except (OSError, ValueError):
            return None

    def alive(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and _is_our_process(pid, self.config_path(name))

    def start(self, name: str) -> int:
        node_dir = self.node_dir(name)
        with open(node_dir / "node.log", "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "petranode", "run", "--config", str(self.config_path(name))],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
                cwd=node_dir,
            )
        (node_dir / "node.pid").write_text(str(process.pid))
        self._children[process.pid] = process
        return process.pid

    def up(
        self, n: int = DEFAULT_NODES, *, timeout: float = READY_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """Generate (if new) and start every node that is not running; wait until all are ready."""
        if not self.exists():
            self.generate(default_layout(n))
        specs = self.nodes()
        for spec in specs:
            if not self.alive(spec.name):
                self.start(spec.name)
        self.wait_ready(timeout=timeout)
        return self.status()

    def wait_ready(self, *, timeout: float = READY_TIMEOUT_S) -> None:
        names = [s.name for s in self.nodes()]
        need_peer = len(names) > 1
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in sorted(pending):
                if not self.alive(name):
                    raise TestnetError(f"{name} exited during start-up:\n{self.log_tail(name)}")
                status = self.try_status(name)
                if status is not None and (status["peers"] or not need_peer):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TestnetError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(POLL_S)

    def try_status(self, name: str) -> dict[str, Any] | None:
        try:
            result = call_sync(self.socket_path(name), "node.status", timeout=2.0)
        except (RpcError, OSError):
            return None
        return result if isinstance(result, dict) else None

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "name": spec.name,
                "roles": [str(r) for r in spec.roles],
                "pid": self.pid(spec.name),
                "socket": str(self.socket_path(spec.name)),
                "alive": self.alive(spec.name),
                "rss_kib": _resident_kib(self.pid(spec.name)) if self.alive(spec.name) else None,
            }
            for spec in self.nodes()
        ]

    def stop(
        self, name: str, *, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S
    ) -> bool:
        """Signal one node and wait for it to exit; True if it exited within the timeout."""
        pid = self.pid(name)
        if pid is None or not self.alive(name):
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        return self.wait_stopped(name, timeout=timeout)

    def wait_stopped(self, name: str, *, timeout: float = STOP_TIMEOUT_S) -> bool:
        pid = self.pid(name)
        return pid is None or self._wait_exit(pid, self.config_path(name), timeout)

    def _wait_exit(self, pid: int, config_path: Path, timeout: float) -> bool:
        child = self._children.get(pid)
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            del self._children[pid]
            return True
        return _wait_exit(pid, config_path, timeout)

    def kill(self, name: str) -> None:
        """kill -9, for fault tests."""
        self.stop(name, sig=signal.SIGKILL)

    def down(self, *, timeout: float = STOP_TIMEOUT_S) -> list[str]:
        """SIGTERM every node; SIGKILL what is still running after the timeout. Returns those."""
        names = [s.name for s in self.nodes()]
        for name in names:
            pid = self.pid(name)
            if pid is not None and self.alive(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        forced = []
        for name in names:
            pid = self.pid(name)
            if pid is not None and not self._wait_exit(pid, self.config_path(name), timeout):
                forced.append(name)
                self.kill(name)
        return forced

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = (self.node_dir(name) / "node.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def node_keys(self, name: str) -> NodeKeys:
        return load_keys(self.node_dir(name))

    def genesis(self) -> Genesis:
        return load_genesis(self.genesis_path)


def _make_genesis(
    specs: Sequence[NodeSpec],
    keys: dict[str, NodeKeys],
    port_of: dict[str, int],
    netdb_port_of: dict[str, int],
    network_id: str,
    interval_s: int,
    params: Params,
    genesis_time: int,
) -> Genesis:
    dso_spec = next(s for s in specs if Role.DSO in s.roles)
    spend, view = keys[dso_spec.name].wallet()
    return Genesis(
        network_id=network_id,
        genesis_time=genesis_time,
        interval_s=interval_s,
        authorities=tuple(
            Authority(
                s.name,
                keys[s.name].router().identity.signing_key,
                keys[s.name].router().identity.static_key,
                "127.0.0.1",
                port_of[s.name],
                netdb_port_of[s.name],
            )
            for s in specs
            if Role.AUTHORITY in s.roles
        ),
        validators=tuple(
            Validator(s.name, keys[s.name].router().identity.signing_key,
                      _destination_hash(keys[s.name]))
            for s in specs
            if Role.VALIDATOR in s.roles
        ),
        dso=Dso(keys[dso_spec.name].router().identity.signing_key, _public(spend), _public(view),
                _destination_hash(keys[dso_spec.name])),
        params=params,
    )


def _public(secret: Scalar) -> bytes:
    return secret.mul_base().raw


def _destination_hash(keys: NodeKeys) -> bytes:
    identity = keys.destination().identity
    return Destination(identity.signing_key, identity.static_key).key


def _is_our_process(pid: int, config_path: Path) -> bool:
    """Running (not a zombie) and started with this node's config: guards against pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return str(config_path).encode() in cmdline


def _resident_kib(pid: int | None) -> int | None:
    """Resident memory of a node process (VmRSS), for operators and the closing figures."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reap(pid: int) -> None:
    """Collect an exited child of this process (tests start nodes as children)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_exit(pid: int, config_path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_our_process(pid, config_path):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True
