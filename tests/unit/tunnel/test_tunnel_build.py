"""Tunnel build records (petranode.net.tunnel.build)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from Crypto.Cipher import ChaCha20
from hypothesis import given, settings
from hypothesis import strategies as st
from tunnel_mesh import NOW, Mesh, accept_all, seeded

from petranode.net.identity import RouterKeys
from petranode.net.tunnel.build import (
    MAX_HOPS,
    RECORD_BYTES,
    RECORD_PLAINTEXT_BYTES,
    REQUEST_BYTES,
    SLOT_COUNT,
    TUNNEL_LIFETIME_S,
    BuildReplyCode,
    BuildRequest,
    Direction,
    HopConfig,
    HopRole,
    process_build,
    read_replies,
)
from petranode.net.tunnel.cipher import chacha20_xor
from petranode.net.tunnel.errors import BuildFault, TunnelBuildRejected
from petranode.net.tunnel.replay import ReplayWindow

LENGTHS = [0, 1, 3, 7]


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("length", LENGTHS)
def test_every_hop_accepts_and_the_creator_reads_every_reply(
    length: int, direction: Direction
) -> None:
    mesh = Mesh()
    built = mesh.build(length, direction)
    assert built.replies == (BuildReplyCode.ACCEPTED,) * length
    assert built.secrets.length == length
    # The request has one size whatever the length, at every hop.
    assert {len(r) for r in built.requests} == {REQUEST_BYTES}
    assert REQUEST_BYTES == SLOT_COUNT * RECORD_BYTES == 2560


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize(("length", "refuser"), [(1, 0), (3, 0), (3, 1), (3, 2), (7, 4)])
def test_the_creator_sees_which_hop_refused(
    length: int, refuser: int, direction: Direction
) -> None:
    mesh = Mesh()

    def decide(i: int, config: HopConfig) -> BuildReplyCode:
        return BuildReplyCode.REJECTED_BANDWIDTH if i == refuser else BuildReplyCode.ACCEPTED

    built = mesh.build(length, direction, decide=decide)
    expected = [BuildReplyCode.ACCEPTED] * length
    expected[refuser] = BuildReplyCode.REJECTED_BANDWIDTH
    assert built.replies == tuple(expected)
    # A refusing hop still passes the request on, so later hops and the creator hear of it.
    assert built.processed[refuser].reply is BuildReplyCode.REJECTED_BANDWIDTH


def test_a_hop_config_holds_only_its_own_role_neighbours_and_keys() -> None:
    assert [f.name for f in dataclasses.fields(HopConfig)] == [
        "role",
        "receive_tunnel_id",
        "next_router",
        "next_tunnel_id",
        "layer_key",
        "nonce_key",
        "aead_key",
        "reply_key",
        "expiry",
    ]
    mesh = Mesh()
    for direction in Direction:
        built = mesh.build(3, direction)
        configs = [p.config for p in built.processed]
        hashes = [r.router_hash for r in mesh.routers[:3]]
        for i, config in enumerate(configs):
            # Exactly what the creator put in its record.
            assert config == built.secrets.hops[i].config
            assert config.expiry == NOW + TUNNEL_LIFETIME_S
            # Its neighbour, and nobody else: not the creator (unless it is the next hop),
            # not the other hops.
            if i < 2:
                assert config.next_router == hashes[i + 1]
                assert config.next_tunnel_id == configs[i + 1].receive_tunnel_id
            encoded = config.encode()
            others = [h for j, h in enumerate(hashes) if j != i + 1]
            assert not any(h in encoded for h in others)
            if i < 2:
                assert mesh.creator.router_hash not in encoded
        # Keys are per hop.
        keys = [k for c in configs for k in (c.layer_key, c.nonce_key, c.reply_key)]
        assert len(set(keys)) == len(keys)
        if direction is Direction.INBOUND:
            assert [c.role for c in configs] == [
                HopRole.INBOUND_GATEWAY,
                HopRole.PARTICIPANT,
                HopRole.PARTICIPANT,
            ]
            # The last inbound hop sends to the creator, not knowing it is the creator.
            assert configs[2].next_router == mesh.creator.router_hash
            assert configs[2].next_tunnel_id == built.secrets.local_tunnel_id
        else:
            assert [c.role for c in configs] == [
                HopRole.PARTICIPANT,
                HopRole.PARTICIPANT,
                HopRole.OUTBOUND_ENDPOINT,
            ]
            assert configs[2].next_router == mesh.creator.router_hash  # default reply target
        # Only the gateway / endpoint shares the creator's end-to-end key.
        assert [c.aead_key != b"" for c in configs].count(True) == 1
        assert all(c.aead_key in (b"", built.secrets.aead_key) for c in configs)


def test_a_participant_cannot_tell_the_direction() -> None:
    mesh = Mesh()
    inbound = mesh.build(3, Direction.INBOUND).processed[1].config
    outbound = mesh.build(3, Direction.OUTBOUND).processed[1].config
    assert inbound.role is outbound.role is HopRole.PARTICIPANT


def test_outbound_replies_go_to_the_given_reply_tunnel() -> None:
    mesh = Mesh()
    gateway = mesh.routers[5].router_hash
    request, secrets = BuildRequest.create(
        [r.identity for r in mesh.routers[:2]],
        Direction.OUTBOUND,
        creator_hash=mesh.creator.router_hash,
        now=NOW,
        reply_router=gateway,
        reply_tunnel_id=77,
    )
    first = process_build(request.encode(), mesh.routers[0], NOW, accept_all)
    last = process_build(first.forward, mesh.routers[1], NOW, accept_all)
    assert (last.config.next_router, last.config.next_tunnel_id) == (gateway, 77)
    assert read_replies(secrets, last.forward) == (BuildReplyCode.ACCEPTED,) * 2


def test_every_slot_changes_at_every_hop() -> None:
    """Slots are unlinkable hop to hop: no slot keeps its bytes across a hop."""
    built = Mesh().build(7, Direction.OUTBOUND)
    for before, after in itertools.pairwise(built.requests):
        for s in range(SLOT_COUNT):
            a = before[s * RECORD_BYTES : (s + 1) * RECORD_BYTES]
            b = after[s * RECORD_BYTES : (s + 1) * RECORD_BYTES]
            assert a != b


def test_hops_occupy_distinct_slots_and_a_hop_sees_only_its_own_record_in_clear() -> None:
    mesh = Mesh()
    built = mesh.build(7, Direction.INBOUND)
    slots = [h.slot for h in built.secrets.hops]
    assert len(set(slots)) == 7
    for i, keys in enumerate(mesh.routers[:7]):
        prefix = keys.router_hash[:16]
        request = built.requests[i]
        starts = [request[s * RECORD_BYTES : s * RECORD_BYTES + 16] for s in range(SLOT_COUNT)]
        assert starts.count(prefix) == 1
        for later in mesh.routers[i + 1 : 7]:
            assert later.router_hash[:16] not in starts


def test_a_pinned_rng_gives_the_same_request() -> None:
    hops = [r.identity for r in Mesh().routers[:3]]
    creator = bytes(32)
    one = BuildRequest.create(hops, Direction.INBOUND, creator_hash=creator, now=NOW, rng=seeded(9))
    two = BuildRequest.create(hops, Direction.INBOUND, creator_hash=creator, now=NOW, rng=seeded(9))
    assert one == two


@pytest.mark.parametrize(
    ("pick", "fault"),
    [
        (lambda m: m.routers[:8], BuildFault.TOO_MANY_HOPS),
        (lambda m: [m.routers[0], m.routers[1], m.routers[0]], BuildFault.HOP_REPEATED),
        (lambda m: [m.routers[0], m.creator], BuildFault.SELF_AS_HOP),
    ],
)
def test_create_refuses_bad_hop_lists(pick: object, fault: BuildFault) -> None:
    mesh = Mesh()
    assert callable(pick)
    hops = [k.identity for k in pick(mesh)]
    with pytest.raises(TunnelBuildRejected) as info:
        BuildRequest.create(
            hops, Direction.OUTBOUND, creator_hash=mesh.creator.router_hash, now=NOW
        )
    assert info.value.reason is fault
    assert MAX_HOPS == 7


def test_create_refuses_misused_options() -> None:
    mesh = Mesh()
    hops = [mesh.routers[0].identity]
    with pytest.raises(ValueError):
        BuildRequest.create(
            hops,
            Direction.INBOUND,
            creator_hash=bytes(32),
            now=NOW,
            reply_router=bytes(32),
            reply_tunnel_id=5,
        )
    with pytest.raises(ValueError):
        BuildRequest.create(
            hops, Direction.OUTBOUND, creator_hash=bytes(32), now=NOW, lifetime_s=601
        )


def request_for(mesh: Mesh, now: int = NOW) -> tuple[bytes, object]:
    request, secrets = BuildRequest.create(
        [r.identity for r in mesh.routers[:2]],
        Direction.OUTBOUND,
        creator_hash=mesh.creator.router_hash,
        now=now,
        rng=mesh.rng,
    )
    return request.encode(), secrets


def rejected(
    fault: BuildFault,
    data: bytes,
    keys: RouterKeys,
    now: int = NOW,
    seen: ReplayWindow | None = None,
) -> None:
    with pytest.raises(TunnelBuildRejected) as info:
        process_build(data, keys, now, accept_all, seen=seen)
    assert info.value.reason is fault


def test_a_hop_drops_requests_it_cannot_use() -> None:
    mesh = Mesh()
    data, _ = request_for(mesh)
    hop = mesh.routers[0]
    rejected(BuildFault.WRONG_SIZE, data[:-1], hop)
    rejected(BuildFault.NO_RECORD_FOR_US, data, mesh.routers[6])
    # The second hop's record is still masked by the first hop's keystream.
    rejected(BuildFault.NO_RECORD_FOR_US, data, mesh.routers[1])
    rejected(BuildFault.EXPIRED, data, hop, now=NOW + TUNNEL_LIFETIME_S)
    rejected(BuildFault.EXPIRY_TOO_FAR, data, hop, now=NOW - 61)
    ours = next(
        s
        for s in range(SLOT_COUNT)
        if data[s * RECORD_BYTES : s * RECORD_BYTES + 16] == hop.router_hash[:16]
    )
    for at in (16, 48, 100, RECORD_BYTES - 1):  # ephemeral key, ciphertext, tag
        rejected(BuildFault.RECORD_UNREADABLE, flip(data, ours * RECORD_BYTES + at), hop)


def test_a_replayed_request_is_dropped_and_a_full_window_refuses_politely() -> None:
    mesh = Mesh()
    data, _ = request_for(mesh)
    seen = ReplayWindow(1)
    hop = mesh.routers[0]
    assert process_build(data, hop, NOW, accept_all, seen=seen).reply is BuildReplyCode.ACCEPTED
    rejected(BuildFault.DUPLICATE, data, hop, seen=seen)
    other, _ = request_for(mesh)
    asked: list[HopConfig] = []

    def spy(config: HopConfig) -> BuildReplyCode:
        asked.append(config)
        return BuildReplyCode.ACCEPTED

    result = process_build(other, hop, NOW, spy, seen=seen)
    assert result.reply is BuildReplyCode.REJECTED_BANDWIDTH and not asked


def test_a_garbled_reply_names_its_hop() -> None:
    mesh = Mesh()
    built = mesh.build(3, Direction.INBOUND)
    final = built.requests[-1]
    for k, hop in enumerate(built.secrets.hops):
        with pytest.raises(TunnelBuildRejected) as info:
            read_replies(built.secrets, flip(final, hop.slot * RECORD_BYTES + 5))
        assert info.value.reason is BuildFault.REPLY_UNREADABLE and info.value.hop_index == k
    with pytest.raises(TunnelBuildRejected) as info:
        read_replies(built.secrets, final + b"\x00")
    assert info.value.reason is BuildFault.WRONG_SIZE


def test_chacha20_xor_is_raw_chacha20_from_block_one() -> None:
    key, nonce = bytes(range(32)), bytes(range(12))
    data = bytes(range(256)) * 5
    reference = ChaCha20.new(key=key, nonce=nonce)
    reference.seek(64)
    assert chacha20_xor(key, nonce, data) == reference.encrypt(data)
    assert chacha20_xor(key, nonce, chacha20_xor(key, nonce, data)) == data
    with pytest.raises(ValueError):
        chacha20_xor(key[:31], nonce, data)


# -- codecs: round trips and arbitrary bytes ----------------------------------------------------

keys32 = st.binary(min_size=32, max_size=32)
tunnel_ids = st.integers(1, 2**32 - 1)


@st.composite
def hop_configs(draw: st.DrawFn) -> HopConfig:
    role = draw(st.sampled_from(list(HopRole)))
    return HopConfig(
        role=role,
        receive_tunnel_id=draw(tunnel_ids),
        next_router=draw(keys32),
        next_tunnel_id=draw(tunnel_ids),
        layer_key=draw(keys32),
        nonce_key=draw(keys32),
        aead_key=b"" if role is HopRole.PARTICIPANT else draw(keys32),
        reply_key=draw(keys32),
        expiry=draw(st.integers(0, 2**63 - 1)),
    )


@settings(max_examples=100)
@given(hop_configs())
def test_hop_config_round_trips_and_fits_its_record(config: HopConfig) -> None:
    assert HopConfig.decode(config.encode()) == config
    padded = config.padded()
    assert len(padded) == RECORD_PLAINTEXT_BYTES
    assert HopConfig.from_padded(padded) == config


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_hop_config_decoders_give_a_value_or_the_build_error(data: bytes) -> None:
    for decoder in (HopConfig.decode, HopConfig.from_padded):
        try:
            decoder(data)
        except TunnelBuildRejected as exc:
            assert exc.reason is BuildFault.RECORD_MALFORMED


MESH = Mesh(size=2)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=REQUEST_BYTES + 8),
        st.binary(min_size=REQUEST_BYTES, max_size=REQUEST_BYTES),
        st.tuples(st.integers(0, REQUEST_BYTES - 1), st.integers(0, 255)),
    )
)
def test_process_build_gives_a_result_or_the_build_error(
    data: bytes | tuple[int, int],
) -> None:
    if isinstance(data, tuple):
        at, value = data
        base, _ = request_for(MESH)
        data = base[:at] + bytes([value]) + base[at + 1 :]
    try:
        result = process_build(data, MESH.routers[0], NOW, accept_all)
    except TunnelBuildRejected:
        return
    assert len(result.forward) == REQUEST_BYTES


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=REQUEST_BYTES + 8)
    | st.binary(min_size=REQUEST_BYTES, max_size=REQUEST_BYTES)
)
def test_read_replies_gives_codes_or_the_build_error(data: bytes) -> None:
    built = MESH.build(2, Direction.INBOUND)
    try:
        codes = read_replies(built.secrets, data)
    except TunnelBuildRejected as exc:
        assert exc.reason in (BuildFault.WRONG_SIZE, BuildFault.REPLY_UNREADABLE)
    else:
        assert len(codes) == 2


def test_request_decode_checks_the_size() -> None:
    with pytest.raises(TunnelBuildRejected):
        BuildRequest.decode(bytes(REQUEST_BYTES - 1))
    assert BuildRequest.decode(bytes(REQUEST_BYTES)).encode() == bytes(REQUEST_BYTES)
