"""What every integration test does with a running testnet: call a node, poll a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from petranode.rpc.client import call_sync
from petranode.testnet import Testnet

POLL_S = 0.2


def rpc(net: Testnet, name: str, method: str, params: dict[str, Any] | None = None,
        timeout: float = 45.0) -> Any:
    return call_sync(net.socket_path(name), method, params, timeout=timeout)


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_S)
