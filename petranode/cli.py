"""The ``petranode`` command (SPEC §4.9): thin verbs over the functions RPC and tests use.

Exit codes: 0 success; 1 the operation failed (an RPC error, a node that would not start, a
failed vector); 2 bad usage or configuration (one line on stderr naming what is wrong).
This is the only module that configures logging handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from petranode import __version__, log
from petranode.config import Config, NodeConfig, load_config, render_config
from petranode.errors import PetranodeError
from petranode.genesis import load_genesis
from petranode.keystore import NodeKeys, load_keys, save_keys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
IDENTITY_FILE = "router.identity"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except PetranodeError as exc:
        print(f"petranode: {exc}", file=sys.stderr)
        return EXIT_USAGE if _is_usage_error(exc) else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def _is_usage_error(exc: PetranodeError) -> bool:
    from petranode.config import ConfigError
    from petranode.keystore import KeystoreError

    return isinstance(exc, (ConfigError, KeystoreError))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petranode", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"petranode {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("init", help="create a node's keys and configuration")
    p.add_argument("--dir", type=Path, required=True, help="the node's state directory")
    p.add_argument("--name", default=None, help="node name (default: the folder's name)")
    p.add_argument(
        "--roles", default="prosumer", help="comma-separated: dso,authority,validator,prosumer"
    )
    p.add_argument("--port", type=int, default=0, help="link port (0: chosen by the OS at start)")
    p.add_argument("--genesis", default="genesis.toml", help="genesis path, relative to --dir")
    p.set_defaults(handler=cmd_init)

    p = verbs.add_parser("certify", help="as a directory authority, certify a router identity")
    p.add_argument("--authority-dir", type=Path, required=True)
    p.add_argument("--identity", type=Path, required=True, help="the node's router.identity file")
    p.add_argument("--genesis", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="where to write the certificate")
    p.set_defaults(handler=cmd_certify)

    p = verbs.add_parser("run", help="run a node in the foreground")
    p.add_argument("--config", type=Path, required=True)
    p.set_defaults(handler=cmd_run)

    p = verbs.add_parser("rpc", help="call a JSON-RPC method on a running node")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", type=Path)
    where.add_argument("--dir", type=Path, help="a testnet folder (with --node)")
    p.add_argument("--node", help="node name within --dir")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("method")
    p.add_argument("params", nargs="?", default=None, help="JSON array or object")
    p.set_defaults(handler=cmd_rpc)

    p = verbs.add_parser("testnet", help="a local multi-process network")
    tverbs = p.add_subparsers(dest="testnet_verb", required=True)
    t = tverbs.add_parser("up", help="generate (if new) and start; return when all are ready")
    t.add_argument("--dir", type=Path, required=True)
    t.add_argument("--nodes", type=int, default=10)
    t.add_argument("--timeout", type=float, default=90.0)
    t.set_defaults(handler=cmd_testnet_up)
    t = tverbs.add_parser("status", help="list the nodes and whether they run")
    t.add_argument("--dir", type=Path, required=True)
    t.add_argument("--json", action="store_true")
    t.set_defaults(handler=cmd_testnet_status)
    t = tverbs.add_parser("down", help="stop every node gracefully")
    t.add_argument("--dir", type=Path, required=True)
    t.set_defaults(handler=cmd_testnet_down)

    p = verbs.add_parser("demo", help="a day of private energy trading on a fresh testnet")
    p.add_argument("--dir", type=Path, default=None,
                   help="folder for the testnet (default: a new temporary folder)")
    p.add_argument("--intervals", type=int, default=24, help="trading intervals (hours)")
    p.add_argument("--interval-s", type=int, default=6, help="seconds per interval")
    p.set_defaults(handler=cmd_demo)

    p = verbs.add_parser("vectors", help="check the crypto library against Monero's test vectors")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=cmd_vectors)

    p = verbs.add_parser("bench", help="benchmarks, each beside its baseline")
    p.add_argument("what", choices=sorted(BENCHMARKS))
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.set_defaults(handler=cmd_bench)
    return parser


# -- init / certify --------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from petranode.config import build_section
    from petranode.net.link.settings import LinkConfig

    data_dir: Path = args.dir.resolve()
    roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
    node = build_section(
        NodeConfig,
        {
            "name": args.name or data_dir.name,
            "roles": list(roles),
            "data_dir": ".",
            "genesis": args.genesis,
        },
        "node",
    )
    config_path = data_dir / "petranode.toml"
    if config_path.exists():
        raise PetranodeError(f"{config_path}: already exists")
    keys = NodeKeys.generate()
    save_keys(data_dir, keys)
    identity = keys.router().identity
    (data_dir / IDENTITY_FILE).write_bytes(identity.encode())
    link = build_section(LinkConfig, {"port": args.port}, "link")
    config_path.write_text(render_config(Config(node=node, link=link)), encoding="utf-8")
    _print_json(
        {
            "config": str(config_path),
            "router_hash": identity.router_hash.hex(),
            "signing_key": identity.signing_key.hex(),
            "static_key": identity.static_key.hex(),
            "identity_file": str(data_dir / IDENTITY_FILE),
        }
    )
    return EXIT_OK


def cmd_certify(args: argparse.Namespace) -> int:
    from petranode.net import cert as certificates
    from petranode.net.identity import RouterIdentity

    genesis = load_genesis(args.genesis)
    authority = load_keys(args.authority_dir.resolve()).router()
    if authority.identity.signing_key not in genesis.authority_keys:
        raise PetranodeError(
            "--authority-dir: its key is not a directory authority of this genesis"
        )
    identity = RouterIdentity.decode(args.identity.read_bytes())
    now = int(time.time())
    cert = certificates.issue(
        authority,
        identity,
        network_id=genesis.network_id,
        valid_from=now - genesis.params.max_clock_skew_s,
        valid_until=now + genesis.params.certificate_lifetime_s,
    )
    args.out.write_bytes(cert.encode())
    _print_json(
        {
            "router_hash": identity.router_hash.hex(),
            "valid_until": now + genesis.params.certificate_lifetime_s,
        }
    )
    return EXIT_OK


# -- run -------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import uvloop

    from petranode.node import Node

    config = load_config(args.config)
    log.configure(config.log.level, config.log.format, node=config.node.name)
    node = Node.from_config(config)
    try:
        uvloop.run(node.run())
    except TimeoutError:
        logging.getLogger(__name__).error("node.shutdown.timeout: services did not close in time")
        return EXIT_FAILED
    return EXIT_OK


# -- rpc -------------------------------------------------------------------------------


def cmd_rpc(args: argparse.Namespace) -> int:
    from petranode.rpc.client import call_sync
    from petranode.rpc.errors import RpcError

    socket_path = _rpc_socket(args)
    params: Any = None
    if args.params is not None:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            print(f"petranode: params: not valid JSON ({exc.msg})", file=sys.stderr)
            return EXIT_USAGE
    try:
        result = call_sync(socket_path, args.method, params, timeout=args.timeout)
    except RpcError as exc:
        print(
            json.dumps({"code": exc.code, "message": exc.message, "data": exc.data}),
            file=sys.stderr,
        )
        return EXIT_FAILED
    _print_json(result)
    return EXIT_OK


def _rpc_socket(args: argparse.Namespace) -> Path:
    from petranode.testnet import Testnet

    if args.socket is not None:
        return Path(args.socket)
    if not args.node:
        raise PetranodeError("--node: required with --dir")
    return Testnet(args.dir).socket_path(args.node)


# -- demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from petranode.demo import run_demo

    if args.intervals < 1 or args.interval_s < 2:
        raise PetranodeError("--intervals: at least 1; --interval-s: at least 2")
    directory = args.dir or Path(tempfile.mkdtemp(prefix="petranode-demo-"))
    run_demo(directory, intervals=args.intervals, interval_s=args.interval_s, out=sys.stdout)
    return EXIT_OK


# -- testnet ---------------------------------------------------------------------------


def cmd_testnet_up(args: argparse.Namespace) -> int:
    from petranode.testnet import Testnet

    started = time.monotonic()
    net = Testnet(args.dir)
    status = net.up(args.nodes, timeout=args.timeout)
    for node in status:
        print(
            f"{node['name']:<12} {','.join(node['roles']):<26} pid {node['pid']:<8} {node['socket']}"
        )
    print(f"testnet up: {len(status)} nodes ready in {time.monotonic() - started:.1f}s ({net.dir})")
    return EXIT_OK


def cmd_testnet_status(args: argparse.Namespace) -> int:
    from petranode.testnet import Testnet

    status = Testnet(args.dir).status()
    if args.json:
        _print_json(status)
    else:
        for node in status:
            state = "alive" if node["alive"] else "stopped"
            rss = f"{node['rss_kib'] / 1024:.1f} MiB" if node["rss_kib"] else "-"
            print(f"{node['name']:<12} {state:<8} pid {node['pid']!s:<8} rss {rss:<10} "
                  f"{','.join(node['roles'])}")
    return EXIT_OK


def cmd_testnet_down(args: argparse.Namespace) -> int:
    from petranode.testnet import Testnet

    forced = Testnet(args.dir).down()
    if forced:
        print(f"testnet down: killed after timeout: {', '.join(forced)}", file=sys.stderr)
        return EXIT_FAILED
    print("testnet down: all nodes stopped")
    return EXIT_OK


# -- vectors / bench -------------------------------------------------------------------


def cmd_vectors(args: argparse.Namespace) -> int:
    from petranode.crypto.vectors import main_vectors

    return main_vectors(str(args.file), sys.stdout)


def _bench_crypto(out: TextIO, quick: bool) -> None:
    from petranode.crypto.bench import run_crypto_bench

    run_crypto_bench(out, quick=quick)


def _bench_netdb(out: TextIO, quick: bool) -> None:
    from petranode.net.netdb.bench import run_netdb_bench

    run_netdb_bench(out, quick=quick)


def _bench_tunnels(out: TextIO, quick: bool) -> None:
    from petranode.net.tunnel.bench import run_tunnel_bench

    run_tunnel_bench(out, quick=quick)


def _bench_ledger(out: TextIO, quick: bool) -> None:
    from petranode.ledger.bench import run_ledger_bench

    run_ledger_bench(out, quick=quick)


#: ``petranode bench WHAT``: each prints its figures beside a baseline measured in the same run.
BENCHMARKS: dict[str, Callable[[TextIO, bool], None]] = {
    "crypto": _bench_crypto,
    "netdb": _bench_netdb,
    "tunnels": _bench_tunnels,
    "ledger": _bench_ledger,
}


def cmd_bench(args: argparse.Namespace) -> int:
    BENCHMARKS[args.what](sys.stdout, args.quick)
    return EXIT_OK


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


if __name__ == "__main__":
    raise SystemExit(main())
