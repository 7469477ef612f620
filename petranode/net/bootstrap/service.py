"""Keeps this router linked to the network's directory authorities (SPEC §4.3 bootstrap).

A router knows nothing of the network but its genesis; the authorities listed there (with
their address and static key) are its way in. This service dials each authority other than
itself, and dials again with jittered backoff whenever the link is down. Later layers (netDb)
find further routers through these links.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from petranode.genesis import Authority
from petranode.net.bootstrap.policy import Backoff
from petranode.net.link.errors import LinkError
from petranode.net.link.service import LinkService

log = logging.getLogger(__name__)

#: How often a healthy link is re-checked; a dropped link is noticed within this time.
CHECK_INTERVAL_S = 1.0
#: A dial that neither completes nor fails within this time is abandoned.
DIAL_TIMEOUT_S = 10.0


class BootstrapService:
    def __init__(
        self, links: LinkService, authorities: Sequence[Authority], *, own_signing_key: bytes
    ) -> None:
        self._links = links
        self._targets = [a for a in authorities if a.signing_key != own_signing_key]
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        for authority in self._targets:
            self._tasks.append(
                self._group.create_task(
                    self._keep_linked(authority), name=f"bootstrap-{authority.name}"
                )
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The dial loops run forever; leaving the context is what stops them.
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(exc_type, exc, tb)

    async def _keep_linked(self, authority: Authority) -> None:
        backoff = Backoff()
        router_hash: bytes | None = None
        while True:
            if router_hash is not None and router_hash in self._links.peers():
                await asyncio.sleep(CHECK_INTERVAL_S)
                continue
            try:
                async with asyncio.timeout(DIAL_TIMEOUT_S):
                    router_hash = await self._links.connect(
                        authority.host, authority.port, authority.static_key
                    )
            except (LinkError, OSError, TimeoutError) as exc:
                delay = backoff.failed()
                log.info(
                    "bootstrap.dial.failed authority=%s reason=%s retry_in=%.1fs",
                    authority.name,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            backoff.succeeded()
            log.info("bootstrap.dial.complete authority=%s", authority.name)
