"""``petranode bench tunnels``: garlic messages through 0-, 1- and 3-hop tunnels on localhost,
beside a plain loopback TCP round trip measured in the same run (SPEC §6; issue 5 benchmark).

For each tunnel length a 5-node testnet is started with ``[tunnel] length`` set to it (cover
traffic off, so only the benchmark's messages are relayed). Two prosumers' destinations then:

* **Round trip.** A sends a message to B (``dest.send``), B receives it (``dest.recv``, which
  returns as soon as it arrives), sends one back, and A receives it: two garlic messages, each
  through the sender's outbound and the receiver's inbound tunnel (2 × 2 × length relays), plus
  four RPC calls and two garlic batching delays (``GarlicSettings.batch_delay_ms``, 50 ms by
  default, during which a sender bundles what it queues for one destination). The RPC floor (``dest.address`` round trip on the control socket) is printed
  so it can be told apart.
* **Throughput.** A queues a burst of messages to B and B receives them all; messages per
  second from the first ``dest.send`` to the last arrival (acknowledgements flow back
  meanwhile, as they do in real use).
* **CPU per relayed message.** The CPU time (user + system, from ``/proc``) all node processes
  spent during the throughput run, divided by the tunnel messages they relayed
  (``tunnel.stats`` ``relayed``); it includes the link layer's AEAD and every other loop, so it
  is an upper bound. The transit table's own share is ``cpu_us_per_relayed``.

The baseline is a 1024-byte echo over loopback TCP (``tunnel.service.measure_loopback_tcp_rtt``).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final, TextIO

from petranode.config import render_config
from petranode.net.garlic.settings import GarlicSettings
from petranode.net.tunnel.service import measure_loopback_tcp_rtt
from petranode.rpc.client import call_sync
from petranode.testnet import Testnet, default_layout

NODES: Final = 5
LENGTHS: Final = (0, 1, 3)
ROUND_TRIPS: Final = 100
QUICK_ROUND_TRIPS: Final = 20
BURST: Final = 300
QUICK_BURST: Final = 60
READY_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    length: int
    rtts: list[float]
    rate: float
    cpu_us_per_relayed: float | None
    transit_us_per_relayed: float | None
    #: Round trips of a trivial RPC call: the part of ``rtts`` that is the control socket.
    rpc: list[float]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rpc(net: Testnet, name: str, method: str, params: Any = None) -> Any:
    return call_sync(net.socket_path(name), method, params)


def _wait(what: str, check: Any, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench tunnels: timed out waiting for {what}")
        time.sleep(POLL_S)


def _send(net: Testnet, src: str, to: str, payload: bytes) -> None:
    _rpc(net, src, "dest.send", {"to": to, "data": base64.b64encode(payload).decode()})


def _recv(net: Testnet, name: str, want: int) -> int:
    got = 0
    deadline = time.monotonic() + READY_TIMEOUT_S
    while got < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench tunnels: {name} received {got} of {want}")
        got += len(_rpc(net, name, "dest.recv", {"timeout": 5.0}))
    return got


def _start(directory: Path, length: int) -> Testnet:
    net = Testnet(directory)
    net.generate(default_layout(NODES))
    for spec in net.nodes():
        config = net.config(spec.name)
        tuned = dataclasses.replace(config, tunnel=dataclasses.replace(
            config.tunnel, length=length, cover_rate_per_s=0.0))
        net.config_path(spec.name).write_text(render_config(tuned), encoding="utf-8")
    net.up(NODES)
    return net


def measure(length: int, directory: Path, round_trips: int, burst: int) -> Row:
    net = _start(directory, length)
    try:
        names = [s.name for s in net.nodes()]
        a, b = "prosumer1", "prosumer2"
        dest = {n: _rpc(net, n, "dest.address") for n in (a, b)}

        def ready() -> bool:
            return all(_rpc(net, n, "netdb.lookup", {"key": dest[m]}) is not None
                       and sum(t["state"] == "established" for t in _rpc(net, n, "tunnel.list"))
                       >= 4 for n, m in ((a, b), (b, a)))

        _wait("pools and LeaseSets", ready)
        # Warm up: sessions confirmed both ways, links dialled.
        for _ in range(3):
            _send(net, a, dest[b], b"warm")
            _recv(net, b, 1)
            _send(net, b, dest[a], b"warm")
            _recv(net, a, 1)
        rpc = []
        for _ in range(round_trips):
            started = time.perf_counter()
            _rpc(net, a, "dest.address")
            rpc.append(time.perf_counter() - started)
        rtts = []
        for i in range(round_trips):
            started = time.perf_counter()
            _send(net, a, dest[b], b"ping %d" % i)
            _recv(net, b, 1)
            _send(net, b, dest[a], b"pong %d" % i)
            _recv(net, a, 1)
            rtts.append(time.perf_counter() - started)
        pids = [net.pid(n) for n in names]
        relayed_before = sum(_rpc(net, n, "tunnel.stats")["relayed"] for n in names)
        cpu_before = sum(_cpu_seconds(p) for p in pids)
        started = time.perf_counter()
        for i in range(burst):
            _send(net, a, dest[b], b"burst %d" % i)
        _recv(net, b, burst)
        rate = burst / (time.perf_counter() - started)
        stats = [_rpc(net, n, "tunnel.stats") for n in names]
        relayed = sum(s["relayed"] for s in stats) - relayed_before
        cpu = sum(_cpu_seconds(p) for p in pids) - cpu_before
        transit = [s["cpu_us_per_relayed"] for s in stats if s["cpu_us_per_relayed"]]
        return Row(length, rtts, rate, cpu / relayed * 1e6 if relayed else None,
                   statistics.mean(transit) if transit else None, rpc)
    finally:
        net.down()


def run_tunnel_bench(out: TextIO, quick: bool = False) -> None:
    round_trips = QUICK_ROUND_TRIPS if quick else ROUND_TRIPS
    burst = QUICK_BURST if quick else BURST
    tcp = measure_loopback_tcp_rtt(1000 if not quick else 200)
    out.write(f"loopback TCP echo of 1024 bytes: p50 {_percentile(tcp, 0.5) * 1e6:.0f} us "
              f"p99 {_percentile(tcp, 0.99) * 1e6:.0f} us\n")
    root = Path(tempfile.mkdtemp(prefix="pn-bt-"))
    try:
        rows = []
        for length in LENGTHS:
            rows.append(measure(length, root / f"len{length}", round_trips, burst))
        rpc = rows[0].rpc
        out.write(f"RPC floor (dest.address on the control socket): "
                  f"p50 {_percentile(rpc, 0.5) * 1e3:.2f} ms; each round trip below "
                  f"makes 4 RPC calls\n")
        out.write(f"each message waits the garlic batching delay ({GarlicSettings().batch_delay_ms} "
                  f"ms, [garlic] batch_delay_ms) before it is sealed: 2 per round trip\n")
        out.write(f"garlic round trip A->B->A through 2x2 tunnels, {round_trips} samples; "
                  f"burst of {burst} messages A->B; {NODES}-node localhost testnet\n")
        out.write(f"{'hops':>4} {'rtt p50 ms':>11} {'rtt p99 ms':>11} {'msgs/s':>8} "
                  f"{'x TCP p50':>10} {'CPU us/relay':>13} {'transit us':>11}\n")
        tcp50 = _percentile(tcp, 0.5)
        for row in rows:
            p50 = _percentile(row.rtts, 0.5)
            cpu = "-" if row.cpu_us_per_relayed is None else f"{row.cpu_us_per_relayed:.0f}"
            transit = ("-" if row.transit_us_per_relayed is None
                       else f"{row.transit_us_per_relayed:.0f}")
            out.write(f"{row.length:>4} {p50 * 1e3:>11.2f} "
                      f"{_percentile(row.rtts, 0.99) * 1e3:>11.2f} {row.rate:>8.0f} "
                      f"{p50 / tcp50:>10.0f} {cpu:>13} {transit:>11}\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)

