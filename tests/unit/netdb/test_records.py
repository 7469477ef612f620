"""RouterInfo and LeaseSet codecs and the validation tiers (SPEC §4.3, §5)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netdb_helpers import (
    AUTHORITY,
    LS_LIFETIME_S,
    MAX_AGE_S,
    NETWORK,
    NOW,
    NOW_MS,
    SKEW_S,
    STRANGER,
    certificate,
    destination_keys,
    leaseset,
    policy,
    router_keys,
    routerinfo,
    unsigned,
)

from petranode.net.netdb.errors import RecordInvalid, RejectReason
from petranode.net.netdb.leaseset import (
    MAX_LEASES,
    MAX_LEASESET_BYTES,
    Destination,
    Lease,
    LeaseSet,
    sign_leaseset,
)
from petranode.net.netdb.records import (
    MAX_RECORD_BYTES,
    Record,
    decode_record,
    newest,
    supersedes,
    validate,
)
from petranode.net.netdb.routerinfo import (
    MAX_ADDRESSES,
    MAX_HOST_CHARS,
    MAX_ROLES,
    MAX_ROUTERINFO_BYTES,
    Address,
    RouterInfo,
    sign_routerinfo,
)
from petranode.wire import codec
from petranode.wire.errors import DecodeError

_RI_HEX = (
    "980001c4469301c4208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5cc420fb"
    "41b1fcf75c1227fa08876056a5ed07ac44fe0c116ec2de80b8e523959d78249293a3746370a93132372e302e"
    "302e31cd1b5893a3756470a93132372e302e302e31cd1b5991a870726f73756d6572cf000001941f297c00c4"
    "c19701a8746573742d6e6574c4469301c4208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf374"
    "8801b40f6f5cc420fb41b1fcf75c1227fa08876056a5ed07ac44fe0c116ec2de80b8e523959d7824c42097ff"
    "c883c80bee7237ef95d9b9b703d4ad63e60a21e605867682b75b8b3f4303ce67733400ce6775d700c44002b6"
    "37c6aeec580673ac2ae6149361067e6ba79b246308d1166d3358da46be428f6cdde21225cd498a7b84651604"
    "5eba1aa69457477c8ae5619e7bc8fa5de600c4400ddfbcfca289ccba14065ba6394bad45427d4c50049458ea"
    "26108b7568a536813a9586ace193df3ef356980c7b0e661906ea2ae2485b8481b8def868a6c7b80e"
)
_LS_HEX = (
    "980101c44b94a46465737401c42017cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e180"
    "80cec420214710727d2453f979603598982ad6c845085adba2b59fc3b30ecf7d8e8f3f6dc420c050c5637a44"
    "fa8629fff3cccce2300cb362a63d99d95fc54145266f4332445a9293c4200101010101010101010101010101"
    "010101010101010101010101010101010101cd03e8cf000001941f32a3c093c4200202020202020202020202"
    "020202020202020202020202020202020202020202cd03e9cf000001941f32a3c0cf000001941f297c00cf00"
    "0001941f32a3c0c440616e1379a7254f1158ee8d6a463a3a899c02d178bd50ac9c82864c96de83c86b9b20c8"
    "9feff21dad3afbaacf356d84cfb3536d023becd3b1f013348621a0c90c"
)
_DEST_HEX = (
    "94a46465737401c42017cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080cec42021"
    "4710727d2453f979603598982ad6c845085adba2b59fc3b30ecf7d8e8f3f6d"
)

# -- exact bytes, both ways (h11 test_io.py) ------------------------------------------------

VALUE_VECTORS = [
    (Address("udp", "127.0.0.1", 7001), "93a3756470a93132372e302e302e31cd1b59", Address.from_value),
    (Lease(b"\x01" * 32, 1000, NOW_MS + 600_000),
     "93c420" + "01" * 32 + "cd03e8cf000001941f32a3c0", Lease.from_value),
]


@pytest.mark.parametrize(("value", "hex_bytes", "parse"), VALUE_VECTORS)
def test_value_vectors(value: Address | Lease, hex_bytes: str, parse: object) -> None:
    assert codec.encode(value.to_value()).hex() == hex_bytes
    assert callable(parse)
    assert parse(codec.decode(bytes.fromhex(hex_bytes), max_size=200)) == value


def _dest() -> Destination:
    keys = destination_keys(1)
    return Destination(keys.signing_key, keys.static_key)


RECORD_VECTORS: list[tuple[object, str]] = [
    (routerinfo(), _RI_HEX), (leaseset(), _LS_HEX), (_dest(), _DEST_HEX),
]


@pytest.mark.parametrize(("record", "hex_bytes"), RECORD_VECTORS)
def test_record_vectors(record: RouterInfo | LeaseSet | Destination, hex_bytes: str) -> None:
    assert record.encode().hex() == hex_bytes
    assert type(record).decode(bytes.fromhex(hex_bytes)) == record


def test_keys_are_the_hash_of_identity_and_destination() -> None:
    info, ls = routerinfo(), leaseset()
    assert info.key == router_keys(1).router_hash
    assert ls.key == _dest().key != destination_keys(1).router_hash
    assert decode_record(info.encode()) == info
    assert decode_record(ls.encode()) == ls


def test_largest_records_fit_their_bounds_exactly() -> None:
    keys = router_keys(3)
    cert = certificate(keys, network_id="\U0001f50b" * 64, valid_from=2**32,
                       valid_until=2**63 - 1)
    info = sign_routerinfo(
        keys, NETWORK, identity=keys.identity,
        addresses=tuple(Address("tcp", "h" * (MAX_HOST_CHARS - 1) + str(i), 65_535)
                        for i in range(MAX_ADDRESSES)),
        roles=tuple(f"role{i}".ljust(16, "x") for i in range(MAX_ROLES)),
        published_ms=2**63 - 1, certificate=cert)
    assert len(info.encode()) == MAX_ROUTERINFO_BYTES
    assert RouterInfo.decode(info.encode()) == info
    dkeys = destination_keys(3)
    ls = sign_leaseset(
        dkeys, NETWORK, destination=Destination(dkeys.signing_key, dkeys.static_key),
        revocation_key=keys.signing_key,
        leases=tuple(Lease(bytes([i]) * 32, 2**32 - 1, 2**63 - 1) for i in range(MAX_LEASES)),
        published_ms=2**63 - 2, expires_ms=2**63 - 1)
    assert len(ls.encode()) == MAX_LEASESET_BYTES
    assert LeaseSet.decode(ls.encode()) == ls


# -- hypothesis: round trips and arbitrary bytes --------------------------------------------

_hosts = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                 max_size=MAX_HOST_CHARS)
_addresses = st.builds(Address, st.sampled_from(["tcp", "udp"]), _hosts,
                       st.integers(1, 65_535))


@st.composite
def _routerinfos(draw: st.DrawFn) -> RouterInfo:
    return dataclasses.replace(
        routerinfo(draw(st.integers(1, 20))),
        addresses=tuple(draw(st.lists(_addresses, max_size=MAX_ADDRESSES, unique=True))),
        roles=tuple(draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
                                  max_size=MAX_ROLES, unique=True))),
        published_ms=draw(st.integers(0, 2**63 - 1)),
        signature=draw(st.sampled_from([b"", bytes(64), b"\x07" * 64])))


@st.composite
def _leasesets(draw: st.DrawFn) -> LeaseSet:
    published = draw(st.integers(0, 2**62))
    expires = published + draw(st.integers(1, 2**40))
    leases = draw(st.lists(st.builds(Lease, st.binary(min_size=32, max_size=32),
                                     st.integers(1, 2**32 - 1),
                                     st.integers(published + 1, expires)),
                           min_size=1, max_size=MAX_LEASES))
    return dataclasses.replace(leaseset(draw(st.integers(1, 20))), leases=tuple(leases),
                               published_ms=published, expires_ms=expires,
                               signature=draw(st.sampled_from([b"", b"\x09" * 64])))


@settings(max_examples=100, deadline=None)
@given(st.one_of(_routerinfos(), _leasesets()))
def test_round_trip(record: Record) -> None:
    data = record.encode()
    assert decode_record(data) == record
    assert type(record).decode(data) == record
    assert len(data) <= MAX_RECORD_BYTES


def _outcome(data: bytes) -> None:
    try:
        record = validate(data, b"\x00" * 32, NOW, policy())
    except RecordInvalid:
        return
    raise AssertionError(f"accepted {record!r}")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2 * MAX_RECORD_BYTES))
def test_arbitrary_bytes_give_a_record_or_record_invalid(data: bytes) -> None:
    _outcome(data)
    for decoder in (RouterInfo.decode, LeaseSet.decode):
        try:
            decoder(data)
        except DecodeError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.one_of(_routerinfos(), _leasesets()), st.data())
def test_mutated_records_give_a_record_or_record_invalid(record: Record, data: st.DataObject
                                                         ) -> None:
    encoded = bytearray(record.encode())
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for candidate in (bytes(encoded), bytes(encoded[:cut])):
        try:
            decode_record(candidate)
        except RecordInvalid as exc:
            assert exc.reason in (RejectReason.GARBAGE, RejectReason.OVERSIZED)


# -- validation tiers: every rejection reason -----------------------------------------------

def _reason(data: bytes, key: bytes, now: float = NOW) -> RejectReason:
    with pytest.raises(RecordInvalid) as raised:
        validate(data, key, now, policy())
    return raised.value.reason


def test_valid_records_pass_under_full_key_and_dht_prefix() -> None:
    for record in (routerinfo(), leaseset()):
        assert validate(record.encode(), record.key, NOW, policy()) == record
        assert validate(record.encode(), record.key[:20], NOW, policy()) == record


def test_garbage_and_oversized() -> None:
    key = routerinfo().key
    assert _reason(b"", key) is RejectReason.GARBAGE
    assert _reason(b"\xc1hello", key) is RejectReason.GARBAGE
    assert _reason(codec.encode([7, 1, 2, 3, 4, 5, 6, 7]), key) is RejectReason.GARBAGE
    assert _reason(routerinfo().encode() + b"\x00", key) is RejectReason.GARBAGE
    assert _reason(b"\x00" * (MAX_RECORD_BYTES + 1), key) is RejectReason.OVERSIZED
    # A LeaseSet's own, smaller bound applies before parsing.
    assert _reason(b"\x98\x01" + b"\x00" * MAX_LEASESET_BYTES, key) is RejectReason.OVERSIZED


def test_wrong_key() -> None:
    info, ls = routerinfo(1), leaseset(1)
    assert _reason(info.encode(), routerinfo(2).key) is RejectReason.WRONG_KEY
    assert _reason(ls.encode(), info.key) is RejectReason.WRONG_KEY
    assert _reason(info.encode(), info.key[:19]) is RejectReason.WRONG_KEY


@pytest.mark.parametrize("make", [routerinfo, leaseset])
def test_unsigned_and_wrongly_signed(make: object) -> None:
    assert callable(make)
    record: Record = make()
    assert _reason(unsigned(record).encode(), record.key) is RejectReason.UNSIGNED
    forged: Record = make(signer=router_keys(99))
    assert _reason(forged.encode(), record.key) is RejectReason.BAD_SIGNATURE
    other_network: Record = make(network_id="other-net")
    assert _reason(other_network.encode(), record.key) is RejectReason.BAD_SIGNATURE
    flipped = bytearray(record.encode())
    flipped[-1] ^= 1
    assert _reason(bytes(flipped), record.key) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("cert_of", [
    lambda: certificate(router_keys(1), authority=STRANGER),  # signed by a non-authority
    lambda: certificate(router_keys(2)),  # genuine, but for another router
    lambda: certificate(router_keys(1), network_id="other-net"),
    lambda: certificate(router_keys(1), valid_until=int(NOW) - 1),  # expired
    lambda: certificate(router_keys(1), valid_from=int(NOW) + 1),  # not yet valid
    lambda: dataclasses.replace(certificate(router_keys(1)), signature=b"\x01" * 64),
])
def test_not_member(cert_of: object) -> None:
    assert callable(cert_of)
    info = routerinfo(1, certificate_of=cert_of())
    assert _reason(info.encode(), info.key) is RejectReason.NOT_MEMBER


def test_times() -> None:
    skew_ms = SKEW_S * 1000
    ok_future = routerinfo(published_ms=NOW_MS + skew_ms)
    assert validate(ok_future.encode(), ok_future.key, NOW, policy()) == ok_future
    future = routerinfo(published_ms=NOW_MS + skew_ms + 1)
    assert _reason(future.encode(), future.key) is RejectReason.FUTURE
    old = routerinfo(published_ms=NOW_MS - int(MAX_AGE_S * 1000) - 1)
    assert _reason(old.encode(), old.key) is RejectReason.EXPIRED
    expired = leaseset(published_ms=NOW_MS - 600_000, lifetime_ms=600_000)
    assert _reason(expired.encode(), expired.key) is RejectReason.EXPIRED
    future_ls = leaseset(published_ms=NOW_MS + skew_ms + 1)
    assert _reason(future_ls.encode(), future_ls.key) is RejectReason.FUTURE
    too_long = leaseset(lifetime_ms=int(LS_LIFETIME_S * 1000) + 1)
    assert _reason(too_long.encode(), too_long.key) is RejectReason.FUTURE


def test_construction_refuses_bad_shapes() -> None:
    info = routerinfo()
    for change in ({"roles": ("Bad",)}, {"roles": ("a", "a")}, {"published_ms": -1},
                   {"signature": b"\x00" * 10}, {"version": 2},
                   {"addresses": (Address("tcp", "h", 1),) * 2}):
        with pytest.raises(ValueError):
            dataclasses.replace(info, **change)  # type: ignore[arg-type]
    for bad in (("smtp", "h", 1), ("tcp", "", 1), ("tcp", "a b", 1), ("tcp", "h", 0)):
        with pytest.raises(ValueError):
            Address(*bad)
    ls = leaseset()
    for change in ({"leases": ()}, {"expires_ms": ls.published_ms},
                   {"revocation_key": b"\x00" * 32}):
        with pytest.raises(ValueError):
            dataclasses.replace(ls, **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Lease(b"\x01" * 32, 0, 1)


# -- newest wins ---------------------------------------------------------------------------

def test_newest_wins_and_ties_break_by_bytes() -> None:
    old, new = routerinfo(published_ms=NOW_MS - 1000), routerinfo(published_ms=NOW_MS)
    assert supersedes(new, old) and not supersedes(old, new)
    assert not supersedes(new, new)
    twin = routerinfo(published_ms=NOW_MS, port=7100)
    assert supersedes(twin, new) != supersedes(new, twin)
    assert newest([old, twin, new]) == newest([new, old, twin]) == max(
        (new, twin), key=lambda r: r.encode())
    assert newest([]) is None


def test_authority_record_and_network_name_are_pinned() -> None:
    assert policy().authorities == frozenset({AUTHORITY.signing_key})
    assert routerinfo().certificate.network_id == NETWORK
