"""In-memory tunnel hops wired together, no event loop (STYLE: tests, the ``Mesh`` helper)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from petranode.net.identity import RouterKeys
from petranode.net.tunnel.build import (
    BuildReplyCode,
    BuildRequest,
    Direction,
    HopConfig,
    ProcessedBuild,
    TunnelSecrets,
    process_build,
    read_replies,
)
from petranode.net.tunnel.layer import (
    TUNNEL_MESSAGE_BYTES,
    CreatorEndpoint,
    CreatorGateway,
    Deliver,
    Forward,
    TransitHop,
)

NOW = 1_800_000_000


def seeded(seed: int) -> Callable[[int], bytes]:
    """A reproducible stand-in for the OS CSPRNG."""
    r = random.Random(seed)
    return r.randbytes


def accept_all(config: HopConfig) -> BuildReplyCode:
    return BuildReplyCode.ACCEPTED


@dataclass
class Built:
    """A tunnel built through the mesh: the creator's secrets and what each hop saw."""

    secrets: TunnelSecrets
    replies: tuple[BuildReplyCode, ...]
    processed: list[ProcessedBuild]
    #: The request bytes as each hop received them, and as the creator got them back.
    requests: list[bytes]


@dataclass
class Mesh:
    """``size`` routers plus a creator; hops are addressed by (router hash, tunnel id)."""

    size: int = 8
    seed: int = 1
    routers: list[RouterKeys] = field(init=False)
    creator: RouterKeys = field(init=False)
    transit: dict[tuple[bytes, int], TransitHop] = field(init=False, default_factory=dict)
    #: Every tunnel message that crossed a link: (receiving router, bytes).
    wire: list[tuple[bytes, bytes]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        rng = seeded(self.seed)
        self.routers = [RouterKeys.generate(rng) for _ in range(self.size)]
        self.creator = RouterKeys.generate(rng)
        self.rng = seeded(self.seed + 1000)

    def build(
        self,
        length: int,
        direction: Direction,
        *,
        decide: Callable[[int, HopConfig], BuildReplyCode] | None = None,
        now: int = NOW,
    ) -> Built:
        hops = self.routers[:length]
        request, secrets = BuildRequest.create(
            [h.identity for h in hops],
            direction,
            creator_hash=self.creator.router_hash,
            now=now,
            rng=self.rng,
        )
        data = request.encode()
        processed: list[ProcessedBuild] = []
        requests = [data]
        for i, keys in enumerate(hops):

            def accept(config: HopConfig, i: int = i) -> BuildReplyCode:
                return BuildReplyCode.ACCEPTED if decide is None else decide(i, config)

            result = process_build(data, keys, now, accept)
            processed.append(result)
            data = result.forward
            requests.append(data)
            if result.reply is BuildReplyCode.ACCEPTED:
                self.transit[(keys.router_hash, result.config.receive_tunnel_id)] = TransitHop(
                    result.config
                )
        return Built(secrets, read_replies(secrets, data), processed, requests)

    def route(self, action: Forward | Deliver, endpoint: CreatorEndpoint | None, now: int) -> bytes:
        """Carry ``action`` hop by hop until a payload is delivered; returns the payload."""
        while isinstance(action, Forward):
            assert len(action.message) == TUNNEL_MESSAGE_BYTES
            self.wire.append((action.router_hash, action.message))
            if action.router_hash == self.creator.router_hash:
                assert endpoint is not None
                action = endpoint.unwrap(action.message, now)
            else:
                tunnel_id = int.from_bytes(action.message[:4], "big")
                action = self.transit[(action.router_hash, tunnel_id)].receive(action.message, now)
        return action.payload

    def send(self, built: Built, payload: bytes, now: int = NOW) -> bytes:
        """One payload through ``built`` in its direction; returns what the endpoint got."""
        secrets = built.secrets
        endpoint = None
        if secrets.direction is Direction.INBOUND or not secrets.hops:
            endpoint = CreatorEndpoint(secrets)
        return self.send_with(built, payload, endpoint, now)

    def send_with(
        self, built: Built, payload: bytes, endpoint: CreatorEndpoint | None, now: int = NOW
    ) -> bytes:
        secrets = built.secrets
        if secrets.direction is Direction.OUTBOUND or not secrets.hops:
            first: Forward | Deliver = CreatorGateway(secrets).wrap(payload, now, self.rng)
        else:
            gw = secrets.hops[0]
            first = self.transit[(gw.router_hash, gw.config.receive_tunnel_id)].send(
                payload, now, self.rng
            )
        return self.route(first, endpoint, now)

    def hop(self, built: Built, index: int) -> TransitHop:
        h = built.secrets.hops[index]
        return self.transit[(h.router_hash, h.config.receive_tunnel_id)]
