"""Fixed-size tunnel messages and layered encryption (petranode.net.tunnel.layer)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tunnel_mesh import NOW, Mesh

from petranode.net.tunnel.build import TUNNEL_LIFETIME_S, Direction, HopConfig, HopRole
from petranode.net.tunnel.errors import MessageFault, TunnelMessageInvalid
from petranode.net.tunnel.layer import (
    BODY_BYTES,
    TUNNEL_MESSAGE_BYTES,
    TUNNEL_PAYLOAD_BYTES,
    CreatorEndpoint,
    CreatorGateway,
    Deliver,
    Forward,
    TransitHop,
    TunnelMessage,
    backward_layer,
    forward_layer,
)
from petranode.net.tunnel.replay import ReplayWindow

LENGTHS = [0, 1, 3, 7]


def payload(tag: int) -> bytes:
    return bytes([tag]) * TUNNEL_PAYLOAD_BYTES


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]


def test_sizes() -> None:
    assert TUNNEL_MESSAGE_BYTES == 1024
    assert BODY_BYTES == 1004 and TUNNEL_PAYLOAD_BYTES == 988


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("length", LENGTHS)
def test_payloads_cross_the_tunnel_at_one_size(length: int, direction: Direction) -> None:
    mesh = Mesh()
    built = mesh.build(length, direction)
    for tag in range(3):
        assert mesh.send(built, payload(tag)) == payload(tag)
    assert {len(m) for _, m in mesh.wire} == {TUNNEL_MESSAGE_BYTES}
    # Zero hops: the creator hands the message to itself. Otherwise one link crossing per hop
    # (inbound: the gateway's send is local, then hops 2..n and the creator).
    crossings = max(length, 1)
    assert len(mesh.wire) == 3 * crossings


@pytest.mark.parametrize("direction", list(Direction))
def test_no_field_survives_a_hop(direction: Direction) -> None:
    """Every hop sees fresh-looking nonces and body: nothing links a message across hops."""
    mesh = Mesh()
    built = mesh.build(7, direction)
    mesh.send(built, payload(0))
    seen = [TunnelMessage.decode(m) for _, m in mesh.wire]
    for a, b in itertools.pairwise(seen):
        assert a.tunnel_id != b.tunnel_id
        assert a.nonce1 != b.nonce1 and a.nonce2 != b.nonce2
        # Essentially every byte of the body changes.
        assert sum(x == y for x, y in zip(a.body, b.body, strict=True)) < 40


def test_layers_are_inverse() -> None:
    config = Mesh().build(1, Direction.OUTBOUND).secrets.hops[0].config
    n1, n2, body = bytes(8), bytes(range(8)), bytes(BODY_BYTES)
    assert backward_layer(config, *forward_layer(config, n1, n2, body)) == (n1, n2, body)


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("field_at", [4, 13, 20, 500, TUNNEL_MESSAGE_BYTES - 1])
def test_a_tampered_message_is_dropped_at_the_endpoint(direction: Direction, field_at: int) -> None:
    mesh = Mesh()
    built = mesh.build(3, direction)
    endpoint = CreatorEndpoint(built.secrets) if direction is Direction.INBOUND else None
    # Intercept between hop 1 and hop 2, flip a bit, and let the rest of the tunnel carry it.
    action: Forward | Deliver
    if direction is Direction.OUTBOUND:
        action = CreatorGateway(built.secrets).wrap(payload(1), NOW, mesh.rng)
        action = mesh.hop(built, 0).receive(action.message, NOW)
    else:
        action = mesh.hop(built, 0).send(payload(1), NOW, mesh.rng)
    assert isinstance(action, Forward)
    tampered = Forward(action.router_hash, flip(action.message, field_at))
    with pytest.raises(TunnelMessageInvalid) as info:
        mesh.route(tampered, endpoint, NOW)
    assert info.value.reason is MessageFault.AUTH_FAILED


def test_a_replayed_message_is_dropped_by_every_hop_and_the_creator() -> None:
    mesh = Mesh()
    built = mesh.build(2, Direction.INBOUND)
    endpoint = CreatorEndpoint(built.secrets)
    first = mesh.hop(built, 0).send(payload(2), NOW, mesh.rng)
    second = mesh.hop(built, 1).receive(first.message, NOW)
    assert isinstance(second, Forward)
    with pytest.raises(TunnelMessageInvalid) as info:
        mesh.hop(built, 1).receive(first.message, NOW + 1)
    assert info.value.reason is MessageFault.REPLAY
    assert endpoint.unwrap(second.message, NOW).payload == payload(2)
    with pytest.raises(TunnelMessageInvalid) as info:
        endpoint.unwrap(second.message, NOW)
    assert info.value.reason is MessageFault.REPLAY


def test_the_outbound_endpoint_drops_a_replay() -> None:
    mesh = Mesh()
    built = mesh.build(1, Direction.OUTBOUND)
    message = CreatorGateway(built.secrets).wrap(payload(3), NOW, mesh.rng).message
    assert mesh.hop(built, 0).receive(message, NOW) == Deliver(payload(3))
    with pytest.raises(TunnelMessageInvalid) as info:
        mesh.hop(built, 0).receive(message, NOW)
    assert info.value.reason is MessageFault.REPLAY


def test_wrong_tunnel_wrong_size_and_expiry_are_dropped() -> None:
    mesh = Mesh()
    built = mesh.build(2, Direction.OUTBOUND)
    message = CreatorGateway(built.secrets).wrap(payload(4), NOW, mesh.rng).message
    hop = mesh.hop(built, 0)
    cases = [
        (message[:-1], NOW, MessageFault.WRONG_SIZE),
        (bytes(4) + message[4:], NOW, MessageFault.WRONG_TUNNEL),
        (
            mesh.hop(built, 1).config.receive_tunnel_id.to_bytes(4, "big") + message[4:],
            NOW,
            MessageFault.WRONG_TUNNEL,
        ),
        (message, NOW + TUNNEL_LIFETIME_S, MessageFault.EXPIRED),
    ]
    for data, now, fault in cases:
        with pytest.raises(TunnelMessageInvalid) as info:
            hop.receive(data, now)
        assert info.value.reason is fault
    with pytest.raises(TunnelMessageInvalid):
        CreatorGateway(built.secrets).wrap(payload(4), NOW + TUNNEL_LIFETIME_S)


def test_a_full_replay_window_refuses_new_messages() -> None:
    mesh = Mesh()
    built = mesh.build(1, Direction.OUTBOUND)
    hop = TransitHop(built.processed[0].config, replay_capacity=2)
    gateway = CreatorGateway(built.secrets)
    for tag in range(2):
        hop.receive(gateway.wrap(payload(tag), NOW, mesh.rng).message, NOW)
    with pytest.raises(TunnelMessageInvalid) as info:
        hop.receive(gateway.wrap(payload(9), NOW, mesh.rng).message, NOW)
    assert info.value.reason is MessageFault.REPLAY_WINDOW_FULL


def test_replay_window_forgets_only_expired_nonces() -> None:
    window = ReplayWindow(2)
    assert window.check_and_add(b"a", expires=10, now=0) is True
    assert window.check_and_add(b"a", expires=10, now=9) is False
    assert window.check_and_add(b"b", expires=20, now=0) is True
    assert window.check_and_add(b"c", expires=20, now=5) is None
    assert window.check_and_add(b"c", expires=20, now=10) is True  # "a" expired, purged
    assert len(window) == 2
    assert window.check_and_add(b"a", expires=30, now=10) is None
    assert window.purge(20) == 2 and len(window) == 0
    with pytest.raises(ValueError):
        ReplayWindow(0)


def test_roles_are_enforced_locally() -> None:
    mesh = Mesh()
    inbound = mesh.build(2, Direction.INBOUND)
    outbound = mesh.build(2, Direction.OUTBOUND)
    with pytest.raises(ValueError):
        CreatorGateway(inbound.secrets)
    with pytest.raises(ValueError):
        CreatorEndpoint(outbound.secrets)
    with pytest.raises(ValueError):
        mesh.hop(inbound, 0).receive(bytes(TUNNEL_MESSAGE_BYTES), NOW)
    with pytest.raises(ValueError):
        mesh.hop(inbound, 1).send(payload(0), NOW)
    with pytest.raises(ValueError):
        mesh.hop(inbound, 0).send(b"short", NOW)
    assert mesh.hop(inbound, 0).config.role is HopRole.INBOUND_GATEWAY


# -- codecs and decoders on arbitrary bytes --------------------------------------------------


@settings(max_examples=100)
@given(
    st.integers(1, 2**32 - 1),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=BODY_BYTES, max_size=BODY_BYTES),
)
def test_tunnel_message_round_trips(tid: int, n1: bytes, n2: bytes, body: bytes) -> None:
    message = TunnelMessage(tid, n1, n2, body)
    assert len(message.encode()) == TUNNEL_MESSAGE_BYTES
    assert TunnelMessage.decode(message.encode()) == message


MESH = Mesh(size=3)
INBOUND = MESH.build(2, Direction.INBOUND)
OUTBOUND = MESH.build(2, Direction.OUTBOUND)


def _valid_id_prefix(config: HopConfig) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=TUNNEL_MESSAGE_BYTES - 4, max_size=TUNNEL_MESSAGE_BYTES - 4).map(
        lambda rest: config.receive_tunnel_id.to_bytes(4, "big") + rest
    )


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=TUNNEL_MESSAGE_BYTES + 4)
    | st.binary(min_size=TUNNEL_MESSAGE_BYTES, max_size=TUNNEL_MESSAGE_BYTES)
    | _valid_id_prefix(OUTBOUND.processed[0].config)
    | _valid_id_prefix(OUTBOUND.processed[1].config)
)
def test_arbitrary_bytes_give_a_value_or_the_message_error(data: bytes) -> None:
    receivers: list[Callable[[bytes], object]] = [
        lambda d: TunnelMessage.decode(d),
        lambda d: TransitHop(OUTBOUND.processed[0].config).receive(d, NOW),
        lambda d: TransitHop(OUTBOUND.processed[1].config).receive(d, NOW),
        lambda d: CreatorEndpoint(INBOUND.secrets).unwrap(d, NOW),
    ]
    for receive in receivers:
        try:
            result = receive(data)
        except TunnelMessageInvalid:
            continue
        assert isinstance(result, (TunnelMessage, Forward))
