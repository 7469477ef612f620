"""sd_notify over a real NOTIFY_SOCKET, and the shipped unit files (SPEC §4.1)."""

import configparser
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from petranode.systemd import Notifier, watchdog_interval

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
UNIT_FILES = [CONFIG_DIR / "petranode.service", CONFIG_DIR / "petranode@.service"]
INSTALLED_EXECUTABLE = "/usr/local/bin/petranode"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(os.fspath(path))
        sock.settimeout(5)
        yield sock, os.fspath(path)


def test_notifications_arrive_as_exact_datagrams(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    with Notifier({"NOTIFY_SOCKET": address}) as notifier:
        notifier.ready()
        notifier.ready(status="serving\n3 peers")
        notifier.watchdog()
        notifier.status("syncing block 7")
        notifier.main_pid(4242)
        notifier.stopping()

    assert [sock.recv(4096) for _ in range(6)] == [
        b"READY=1",
        b"READY=1\nSTATUS=serving 3 peers",
        b"WATCHDOG=1",
        b"STATUS=syncing block 7",
        b"MAINPID=4242",
        b"STOPPING=1",
    ]


def test_abstract_namespace_socket() -> None:
    name = f"petranode-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        with Notifier({"NOTIFY_SOCKET": "@" + name}) as notifier:
            notifier.ready()

        assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier({})

    notifier.ready()
    notifier.watchdog()
    notifier.stopping()

    assert not notifier.enabled
    assert notifier.watchdog_interval() is None


def test_failed_send_never_raises_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": os.fspath(tmp_path / "nobody-listens")})

    with caplog.at_level(logging.DEBUG, logger="petranode.systemd"):
        notifier.ready()
        notifier.watchdog()
    notifier.close()

    assert [record.levelno for record in caplog.records] == [logging.WARNING, logging.DEBUG]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "100"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "101"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_applies_only_to_the_watched_pid(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(environ, pid=100) == expected
    assert Notifier(environ, pid=100).watchdog_interval() == expected


# --- unit files ------------------------------------------------------------------------------

REQUIRED_SERVICE_SETTINGS = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "TimeoutStopSec": "10",
    "KillSignal": "SIGTERM",
    "DynamicUser": "yes",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
}
PER_UNIT_SETTINGS = {
    "petranode.service": {
        "ExecStart": f"{INSTALLED_EXECUTABLE} run --config /etc/petranode/petranode.toml",
        "StateDirectory": "petranode",
        "RuntimeDirectory": "petranode",
    },
    "petranode@.service": {
        "ExecStart": f"{INSTALLED_EXECUTABLE} run --config /etc/petranode/%i.toml",
        "StateDirectory": "petranode/%i",
        "RuntimeDirectory": "petranode/%i",
    },
}


def parse_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=("#", ";")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # unit keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


@pytest.mark.parametrize("unit", UNIT_FILES, ids=lambda path: path.name)
def test_unit_file_has_the_required_settings(unit: Path) -> None:
    service = parse_unit(unit)["Service"]
    expected = {**REQUIRED_SERVICE_SETTINGS, **PER_UNIT_SETTINGS[unit.name]}

    assert {key: service.get(key) for key in expected} == expected
    assert service.get("User")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_files_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's binary exists; point it at this environment's console script.
    executable = Path(sys.executable).with_name("petranode")
    assert executable.exists()
    copies = []
    for unit in UNIT_FILES:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_EXECUTABLE, os.fspath(executable)))
        copies.append(os.fspath(copy))

    result = subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_from_environment_reads_this_process_environment(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    with Notifier.from_environment() as notifier:
        notifier.watchdog()
        assert notifier.watchdog_interval() == 20.0

    assert sock.recv(4096) == b"WATCHDOG=1"
