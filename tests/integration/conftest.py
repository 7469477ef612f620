"""Integration fixtures: real node processes on 127.0.0.1, started through ``testnet.py``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petranode.market.settings import MarketConfig
from petranode.testnet import Testnet, default_layout


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short folder: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pn-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def testnet_factory(short_tmp: Path) -> Iterator[Callable[..., Testnet]]:
    """Start testnets of N nodes (``cover=False``: no cover transactions, for tests that spend
    prosumers' outputs themselves); every one is torn down (and checked gone) after the test."""
    started: list[Testnet] = []

    def start(n: int, *, cover: bool = True) -> Testnet:
        net = Testnet(short_tmp / f"net{len(started)}")
        started.append(net)
        specs = default_layout(n)
        quiet = MarketConfig(cover_tx_interval_s=0)
        net.generate(specs, market=None if cover else {s.name: quiet for s in specs})
        net.up(n)
        return net

    try:
        yield start
    finally:
        for net in started:
            net.down()
