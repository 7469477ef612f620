"""Integration fixtures: real node processes on 127.0.0.1, started through ``testnet.py``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petranode.testnet import Testnet


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short folder: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pn-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def testnet_factory(short_tmp: Path) -> Iterator[Callable[[int], Testnet]]:
    """Start testnets of N nodes; every one is torn down (and checked gone) after the test."""
    started: list[Testnet] = []

    def start(n: int) -> Testnet:
        net = Testnet(short_tmp / f"net{len(started)}")
        started.append(net)
        net.up(n)
        return net

    try:
        yield start
    finally:
        for net in started:
            net.down()
