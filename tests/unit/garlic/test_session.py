"""Garlic session machine: two (or three) managers wired in memory (STYLE: sans-IO tests)."""

from __future__ import annotations

import pytest
from garlic_helpers import NETWORK, NOW_MS, SETTINGS, Mesh, keys, leases, sessions
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.net.destination import LocalDestination
from petranode.net.garlic.clove import (
    Clove,
    DeliveryInstructions,
    DeliveryKind,
    GarlicMessage,
    PayloadKind,
)
from petranode.net.garlic.errors import GarlicError, GarlicFault
from petranode.net.garlic.session import (
    ES_OVERHEAD,
    KEY_BYTES,
    NS_OVERHEAD,
    TAG_BYTES,
    Acked,
    ArmTimer,
    CloveDrop,
    Deliver,
    DeliveryFailed,
    Forward,
    GarlicSessions,
    Queued,
    SendGarlic,
    StoreLeaseSet,
)
from petranode.net.garlic.settings import GarlicSettings
from petranode.net.netdb.leaseset import LEASESET_DOMAIN, Destination
from petranode.net.netdb.records import ValidationPolicy, check
from petranode.net.signing import verify

LOCAL = DeliveryInstructions.local()


def data_clove(n: int, payload: bytes = b"payload", now: int = NOW_MS) -> Clove:
    return Clove(LOCAL, bytes([n]) * 8, now + 60_000, PayloadKind.DATA, payload)


def delivered(mesh: Mesh, node: GarlicSessions) -> list[bytes]:
    return [a.payload for a in mesh.of_type(node, Deliver)]


# -- encryption -----------------------------------------------------------------------------


def test_wrap_unwrap_both_ways() -> None:
    alice, bob = sessions(1), sessions(2)
    cloves = (data_clove(1), data_clove(2, b"second"))
    to_bob = alice.wrap(bob.local.destination, cloves, NOW_MS)
    opened = bob.unwrap(to_bob, NOW_MS)
    assert opened.cloves[:2] == cloves
    assert opened.cloves[2].kind is PayloadKind.LEASESET  # our LeaseSet rides an NS
    to_alice = bob.wrap(alice.local.destination, cloves, NOW_MS)
    assert alice.unwrap(to_alice, NOW_MS).cloves[:2] == cloves


def test_new_session_layout_and_sender_forward_secrecy() -> None:
    """Each NS has a fresh ephemeral key; the same plaintext never gives the same bytes."""
    alice, bob = sessions(1, leaseset=False), sessions(2)
    first = alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS)
    second = alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS)
    assert first[:KEY_BYTES] != second[:KEY_BYTES]
    plain = GarlicMessage.decode(bob.unwrap(first, NOW_MS).encode())
    assert len(first) == NS_OVERHEAD + len(plain.encode())


def test_round_trip_through_mesh_with_ack() -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    clove_id = mesh.send(alice, bob, b"offer: 5 kWh")
    mesh.advance(SETTINGS.batch_delay_ms)
    assert delivered(mesh, bob) == [b"offer: 5 kWh"]
    assert mesh.of_type(bob, Deliver)[0].sender == alice.local.key
    assert mesh.of_type(alice, Acked) == [Acked(clove_id)]
    assert alice.outstanding == 0
    mesh.send(bob, alice, b"accept")
    mesh.advance(SETTINGS.batch_delay_ms)
    assert delivered(mesh, alice) == [b"accept"]
    assert len(mesh.of_type(bob, Acked)) == 1


def test_confirmed_session_switches_to_existing_session_messages() -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    mesh.send(alice, bob, b"one")
    mesh.advance(50)
    assert alice.has_confirmed_session(bob.local.key)
    sent_before = len(mesh.wire)
    mesh.send(alice, bob, b"two")
    mesh.advance(50)
    origin, _, data = mesh.wire[sent_before]
    assert origin == alice.local.key
    # ES: 8-byte tag, AEAD tag; no LeaseSet again (bob already has this one).
    assert len(data) < NS_OVERHEAD + 40
    assert delivered(mesh, bob) == [b"one", b"two"]
    assert len(mesh.of_type(alice, Acked)) == 2


def test_existing_session_out_of_order_within_window() -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    mesh.send(alice, bob, b"hello")
    mesh.advance(50)
    msgs = [alice.wrap(bob.local.destination, (data_clove(i),), mesh.now) for i in range(5)]
    for data in reversed(msgs):
        assert bob.unwrap(data, mesh.now).cloves[0].payload == b"payload"
    for data in msgs:  # every tag is single-use
        with pytest.raises(GarlicError):
            bob.unwrap(data, mesh.now)


def test_flipped_bit_anywhere_fails() -> None:
    alice, bob = sessions(1, leaseset=False), sessions(2)
    mesh = Mesh.of(alice, bob)
    ns = alice.wrap(bob.local.destination, (data_clove(1, b"x"),), NOW_MS)
    for bit in range(len(ns) * 8):
        flipped = bytearray(ns)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(GarlicError):
            bob.unwrap(bytes(flipped), NOW_MS)
    assert bob.unwrap(ns, NOW_MS).cloves[0].payload == b"x"
    # Existing Session too; a forged copy must not burn the genuine message's tag.
    mesh.send(alice, bob, b"confirm")
    mesh.advance(50)
    es = alice.wrap(bob.local.destination, (data_clove(9, b"y"),), mesh.now)
    for bit in range(len(es) * 8):
        flipped = bytearray(es)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(GarlicError):
            bob.unwrap(bytes(flipped), mesh.now)
    assert bob.unwrap(es, mesh.now).cloves[0].payload == b"y"


def test_wrong_recipient_cannot_decrypt() -> None:
    alice, bob, carol = sessions(1), sessions(2), sessions(3)
    data = alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS)
    with pytest.raises(GarlicError) as err:
        carol.unwrap(data, NOW_MS)
    assert err.value.reason is GarlicFault.DECRYPTION_FAILED


def test_other_network_cannot_decrypt() -> None:
    alice, bob = sessions(1), sessions(2)
    other = GarlicSessions(LocalDestination(keys(2), "other-net"))
    data = alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS)
    with pytest.raises(GarlicError):
        other.unwrap(data, NOW_MS)


def test_stale_and_future_messages_refused() -> None:
    alice, bob = sessions(1), sessions(2)
    old = alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS)
    with pytest.raises(GarlicError) as err:
        bob.unwrap(old, NOW_MS + SETTINGS.max_message_age_ms + 1)
    assert err.value.reason is GarlicFault.STALE
    with pytest.raises(GarlicError) as err:
        bob.unwrap(old, NOW_MS - SETTINGS.max_message_future_ms - 1)
    assert err.value.reason is GarlicFault.STALE


def test_truncated_and_oversized_refused() -> None:
    bob = sessions(2)
    for data, reason in [(b"", GarlicFault.TRUNCATED), (bytes(ES_OVERHEAD), GarlicFault.TRUNCATED),
                         (bytes(10**6), GarlicFault.OVERSIZED)]:
        with pytest.raises(GarlicError) as err:
            bob.unwrap(data, NOW_MS)
        assert err.value.reason is reason


def test_low_order_ephemeral_is_bad_key() -> None:
    bob = sessions(2)
    with pytest.raises(GarlicError) as err:
        bob.unwrap(bytes(NS_OVERHEAD + 30), NOW_MS)  # all-zero ephemeral: a low-order point
    assert err.value.reason is GarlicFault.BAD_KEY


# -- replays and de-duplication ------------------------------------------------------------


def test_replayed_new_session_refused() -> None:
    alice, bob = sessions(1), sessions(2)
    data = alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS)
    bob.unwrap(data, NOW_MS)
    with pytest.raises(GarlicError) as err:
        bob.unwrap(data, NOW_MS + 1)
    assert err.value.reason is GarlicFault.REPLAYED


def test_replayed_existing_session_refused() -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    mesh.send(alice, bob, b"confirm")
    mesh.advance(50)
    es = alice.wrap(bob.local.destination, (data_clove(1),), mesh.now)
    bob.unwrap(es, mesh.now)
    with pytest.raises(GarlicError):
        bob.unwrap(es, mesh.now)


def test_retransmitted_clove_delivered_once_and_acked_again() -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    # Bob's first ack is lost: Alice retries, Bob re-acks but delivers once.
    lost = {"acks": 1}

    def drop(origin: bytes, send: SendGarlic) -> bool:
        if origin == bob.local.key and lost["acks"]:
            lost["acks"] -= 1
            return True
        return False

    mesh.drop = drop
    clove_id = mesh.send(alice, bob, b"once")
    mesh.advance(50)
    assert mesh.of_type(alice, Acked) == []
    mesh.advance(SETTINGS.retry_base_ms)
    assert delivered(mesh, bob) == [b"once"]
    assert bob.dropped[CloveDrop.DUPLICATE] == 1
    assert mesh.of_type(alice, Acked) == [Acked(clove_id)]


def test_replayed_cloves_in_a_fresh_message_deduplicated() -> None:
    """The same clove wrapped in two distinct messages (a replay re-encrypted) is delivered once."""
    alice, bob = sessions(1), sessions(2)
    clove = data_clove(7, b"pay 3")
    results = [bob.receive(alice.wrap(bob.local.destination, (clove,), NOW_MS), NOW_MS)
               for _ in range(3)]
    deliveries = [a for actions in results for a in actions if isinstance(a, Deliver)]
    assert [d.payload for d in deliveries] == [b"pay 3"]
    assert all(any(isinstance(a, SendGarlic) for a in actions) for actions in results)


def test_expired_and_far_future_cloves_dropped() -> None:
    alice, bob = sessions(1), sessions(2)
    expired = Clove(LOCAL, b"e" * 8, NOW_MS, PayloadKind.DATA, b"")
    future = Clove(LOCAL, b"f" * 8, NOW_MS + 10**9, PayloadKind.DATA, b"")
    actions = bob.receive(alice.wrap(bob.local.destination, (expired, future), NOW_MS), NOW_MS)
    assert not [a for a in actions if isinstance(a, Deliver)]
    assert bob.dropped[CloveDrop.EXPIRED] == 1
    assert bob.dropped[CloveDrop.TOO_FAR_FUTURE] == 1


# -- acknowledgements and retries ----------------------------------------------------------


@pytest.mark.parametrize("lost", [1, 2, 3])
def test_retries_until_acked(lost: int) -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    remaining = {"n": lost}

    def drop(origin: bytes, send: SendGarlic) -> bool:
        if origin == alice.local.key and remaining["n"]:
            remaining["n"] -= 1
            return True
        return False

    mesh.drop = drop
    clove_id = mesh.send(alice, bob, b"bid")
    mesh.advance(50)
    for attempt in range(1, lost + 1):
        mesh.advance(SETTINGS.backoff_ms(attempt))
    assert mesh.of_type(alice, Acked) == [Acked(clove_id)]
    assert delivered(mesh, bob) == [b"bid"]
    assert sum(1 for origin, _, _ in mesh.wire if origin == alice.local.key) == lost + 1
    assert mesh.of_type(alice, DeliveryFailed) == []


def test_delivery_failed_after_max_attempts() -> None:
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    mesh.drop = lambda origin, send: True
    clove_id = mesh.send(alice, bob, b"lost")
    mesh.advance(50)
    for attempt in range(1, SETTINGS.max_attempts + 1):
        assert mesh.of_type(alice, DeliveryFailed) == []
        mesh.advance(SETTINGS.backoff_ms(attempt))
    assert mesh.of_type(alice, DeliveryFailed) == [DeliveryFailed(bob.local.key, clove_id)]
    assert len(mesh.wire) == SETTINGS.max_attempts
    assert alice.outstanding == 0


def test_retry_after_receiver_lost_state_uses_new_session() -> None:
    """Bob restarts (fresh machine, same keys): Alice's ES fails, her retry as NS succeeds."""
    alice, bob = sessions(1), sessions(2)
    mesh = Mesh.of(alice, bob)
    mesh.send(alice, bob, b"first")
    mesh.advance(50)
    mesh.nodes[bob.local.key] = restarted = sessions(2, seed=99)
    clove_id = mesh.send(alice, restarted, b"after restart")
    mesh.advance(50)
    assert mesh.of_type(alice, Acked)[-1] != Acked(clove_id)
    assert mesh.refused == [GarlicFault.TRUNCATED]  # an unknown tag: not an NS either
    mesh.advance(SETTINGS.backoff_ms(1))
    assert mesh.of_type(alice, Acked)[-1] == Acked(clove_id)


def test_tick_arms_next_retry_timer() -> None:
    alice, bob = sessions(1), sessions(2)
    actions = alice.send(bob.local.destination, b"x", NOW_MS)
    assert isinstance(actions[0], Queued)
    assert actions[1] == ArmTimer(NOW_MS + SETTINGS.batch_delay_ms)
    later = alice.tick(NOW_MS + 50)
    assert [type(a) for a in later] == [SendGarlic, ArmTimer]
    assert later[-1] == ArmTimer(NOW_MS + 50 + SETTINGS.backoff_ms(1))


def test_queue_full_is_back_pressure() -> None:
    alice, bob = sessions(1), sessions(2)
    with pytest.raises(GarlicError) as err:
        for _ in range(1000):
            alice.send(bob.local.destination, b"x", NOW_MS)
    assert err.value.reason is GarlicFault.QUEUE_FULL


# -- bundling and LeaseSets -----------------------------------------------------------------


def test_three_queued_messages_bundle_into_one() -> None:
    alice, bob = sessions(1), sessions(2)
    ids = [a.clove_id for p in (b"a", b"b", b"c")  # type: ignore[union-attr]
           for a in alice.send(bob.local.destination, p, NOW_MS)[:1]]
    sends = [a for a in alice.tick(NOW_MS + 50) if isinstance(a, SendGarlic)]
    assert len(sends) == 1
    message = bob.unwrap(sends[0].data, NOW_MS + 50)
    data = [c for c in message.cloves if c.kind is PayloadKind.DATA]
    assert [c.clove_id for c in data] == ids
    assert [c.payload for c in data] == [b"a", b"b", b"c"]


def test_large_queue_splits_into_bounded_messages() -> None:
    alice, bob = sessions(1), sessions(2)
    for _ in range(3):
        alice.send(bob.local.destination, bytes(16 * 1024), NOW_MS)
    sends = [a for a in alice.tick(NOW_MS + 50) if isinstance(a, SendGarlic)]
    assert len(sends) == 3
    total = sum(len([c for c in bob.unwrap(s.data, NOW_MS + 50).cloves
                     if c.kind is PayloadKind.DATA]) for s in sends)
    assert total == 3


def test_leaseset_attached_and_verifiable() -> None:
    alice, bob = sessions(1), sessions(2)
    actions = bob.receive(alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS), NOW_MS)
    stored = [a.leaseset for a in actions if isinstance(a, StoreLeaseSet)]
    assert len(stored) == 1
    leaseset = stored[0]
    assert leaseset.key == alice.local.key
    assert verify(leaseset.destination.signing_key, leaseset.signature, LEASESET_DOMAIN,
                  NETWORK, leaseset.signed_payload())
    check(leaseset, alice.local.key, NOW_MS / 1000, ValidationPolicy(
        network_id=NETWORK, authorities=frozenset(), max_clock_skew_s=60,
        max_routerinfo_age_s=3600, max_leaseset_lifetime_s=660))


def test_leaseset_not_attached_when_disabled() -> None:
    alice = sessions(1, GarlicSettings(include_leaseset=False))
    bob = sessions(2)
    message = bob.unwrap(alice.wrap(bob.local.destination, (data_clove(1),), NOW_MS), NOW_MS)
    assert [c.kind for c in message.cloves] == [PayloadKind.DATA]


def test_someone_elses_leaseset_is_not_stored() -> None:
    alice, bob, carol = sessions(1, leaseset=False), sessions(2), sessions(3)
    carol_ls = carol.local.build_leaseset(leases(3), NOW_MS)
    forged = Clove(LOCAL, b"l" * 8, NOW_MS + 1000, PayloadKind.LEASESET, carol_ls.encode())
    actions = bob.receive(alice.wrap(bob.local.destination, (forged,), NOW_MS), NOW_MS)
    assert not [a for a in actions if isinstance(a, StoreLeaseSet)]
    assert bob.dropped[CloveDrop.BAD_LEASESET] == 1


def test_non_local_cloves_are_forwarded() -> None:
    alice, bob = sessions(1), sessions(2)
    router = Clove(DeliveryInstructions(DeliveryKind.ROUTER, b"r" * 32), b"r" * 8,
                   NOW_MS + 1000, PayloadKind.DATA, b"for a router")
    mine = Clove(DeliveryInstructions(DeliveryKind.DESTINATION, bob.local.key), b"m" * 8,
                 NOW_MS + 1000, PayloadKind.DATA, b"for bob")
    actions = bob.receive(alice.wrap(bob.local.destination, (router, mine), NOW_MS), NOW_MS)
    assert Forward(alice.local.key, router) in actions
    assert [a.payload for a in actions if isinstance(a, Deliver)] == [b"for bob"]


def test_settings_validation() -> None:
    with pytest.raises(GarlicError) as err:
        GarlicSettings(retry_base_ms=10_000).validate()
    assert err.value.reason is GarlicFault.BAD_SETTING
    with pytest.raises(GarlicError):
        GarlicSettings(tag_window=0).validate()
    assert SETTINGS.validate() is SETTINGS


# -- hypothesis: arbitrary bytes give a value or GarlicError ---------------------------------

RECEIVER = sessions(2)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_into_unwrap(data: bytes) -> None:
    try:
        RECEIVER.unwrap(data, NOW_MS)
    except GarlicError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_valid_message_into_receive(data: st.DataObject) -> None:
    """A valid NS cut or with one byte changed: actions or GarlicError, nothing else."""
    sender = sessions(1)
    wire = bytearray(sender.wrap(RECEIVER.local.destination, (data_clove(1),), NOW_MS))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    for candidate in (bytes(wire), bytes(wire[:cut]), bytes(wire[:TAG_BYTES]) + bytes(wire)):
        try:
            RECEIVER.receive(candidate, NOW_MS)
        except GarlicError:
            pass


def test_unreachable_low_order_recipient_fails_at_once() -> None:
    alice = sessions(1)
    broken = Destination(signing_key=keys(5).signing_key, encryption_key=bytes(32))
    clove_id = alice.send(broken, b"x", NOW_MS)[0]
    actions = alice.tick(NOW_MS + 50)
    assert isinstance(clove_id, Queued)
    assert actions == [DeliveryFailed(broken.key, clove_id.clove_id)]
    assert alice.outstanding == 0
