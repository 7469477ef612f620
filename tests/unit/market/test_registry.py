"""The DSO's registry: signed records, bounded decoding, capacity and feeder limits."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.group import Scalar
from petranode.crypto.keys import PublicAddress, WalletKeys
from petranode.ledger.assets import AssetKind
from petranode.market.errors import MarketRecordInvalid, RecordFault, RequestRefused, RequestReject
from petranode.market.registry import (
    MAX_FEEDER_LIMIT_BYTES,
    MAX_GRANT_BYTES,
    MAX_POWER_W,
    MAX_REGISTRATION_BYTES,
    MAX_REQUEST_BYTES,
    AssetRequest,
    BookRows,
    CapacityBook,
    FeederLimit,
    Grant,
    Registration,
    peak_load,
)
from petranode.market.reputation import TierList
from petranode.net.identity import RouterKeys
from petranode.wire import codec

NETWORK = "petranode-test"
OPEN = 10  # first interval whose gate is open in these tests


def keys(n: int) -> RouterKeys:
    return RouterKeys.from_secrets(signing_seed=bytes([n]) * 32, static_secret=bytes([n]) * 32)


def counter_rng(seed: int) -> Callable[[int], bytes]:
    state = [0]

    def draw(n: int) -> bytes:
        state[0] += 1
        return hashlib.sha512(f"{seed}/{state[0]}".encode()).digest()[:n]

    return draw


DSO = keys(1)
ADDRESS = WalletKeys.from_spend_secret(Scalar.from_int(77)).address
CREDENTIAL = Scalar.from_int(99).mul_base().raw


def register(book: CapacityBook, n: int, *, gen: int = 1000, cons: int = 2000,
             feeder: str = "F1") -> RouterKeys:
    prosumer = keys(n)
    book.register(Registration.issue(
        DSO, NETWORK, meter_key=prosumer.signing_key, credential_key=CREDENTIAL,
        max_generation_w=gen, max_consumption_w=cons, feeder=feeder))
    return prosumer


_nonces = counter_rng(0)


def request(prosumer: RouterKeys, first: int | None, last: int | None, amount: int, *,
            kind: AssetKind = AssetKind.PRODUCTION, expires: int = 1000,
            network: str = NETWORK) -> AssetRequest:
    return AssetRequest.create(prosumer, network, kind=kind, amount=amount, expires=expires,
                               address=ADDRESS, first_interval=first, last_interval=last,
                               rng=_nonces)


def admit(book: CapacityBook, req: AssetRequest) -> Grant:
    return book.admit(req, network_id=NETWORK, first_open_interval=OPEN)


def refused(book: CapacityBook, req: AssetRequest) -> RequestReject:
    with pytest.raises(RequestRefused) as caught:
        admit(book, req)
    return caught.value.reason


@pytest.fixture
def book() -> CapacityBook:
    b = CapacityBook(max_span_intervals=96)
    b.set_feeder_limit(FeederLimit("F1", max_production_w=1500, max_consumption_w=10_000))
    b.set_feeder_limit(FeederLimit("F2", max_production_w=5000, max_consumption_w=10_000))
    return b


# -- capacity ---------------------------------------------------------------------------------


def test_within_capacity_is_granted(book: CapacityBook) -> None:
    p = register(book, 10)
    grant = admit(book, request(p, 12, 14, 1000))
    assert grant.feeder == "F1"
    assert [book.load(p.signing_key, AssetKind.PRODUCTION, i) for i in (11, 12, 14, 15)] == [
        0, 1000, 1000, 0]
    assert book.feeder_load("F1", AssetKind.PRODUCTION, 13) == 1000


def test_single_request_over_capacity(book: CapacityBook) -> None:
    p = register(book, 10)
    assert refused(book, request(p, 12, 12, 1001)) is RequestReject.OVER_CAPACITY


def test_two_requests_together_exceed(book: CapacityBook) -> None:
    p = register(book, 10)
    admit(book, request(p, 12, 12, 600))
    assert refused(book, request(p, 12, 12, 500)) is RequestReject.OVER_CAPACITY
    admit(book, request(p, 12, 12, 400))  # exactly at capacity is allowed
    assert book.load(p.signing_key, AssetKind.PRODUCTION, 12) == 1000


def test_spanning_asset_counts_toward_each_interval(book: CapacityBook) -> None:
    p = register(book, 10)
    admit(book, request(p, 20, 20, 600))
    # 15..25 overlaps interval 20 only; 600 + 500 > 1000 there.
    assert refused(book, request(p, 15, 25, 500)) is RequestReject.OVER_CAPACITY
    admit(book, request(p, 15, 19, 500))
    admit(book, request(p, 21, 25, 500))
    # A long asset already granted blocks a later short one inside it.
    assert refused(book, request(p, 17, 17, 501)) is RequestReject.OVER_CAPACITY
    admit(book, request(p, 17, 17, 500))


def test_consumption_has_its_own_capacity(book: CapacityBook) -> None:
    p = register(book, 10, gen=0, cons=2000)
    assert refused(book, request(p, 12, 12, 1)) is RequestReject.OVER_CAPACITY
    admit(book, request(p, 12, 12, 2000, kind=AssetKind.CONSUMPTION))
    assert refused(book, request(p, 12, 12, 1, kind=AssetKind.CONSUMPTION)) is (
        RequestReject.OVER_CAPACITY)


def test_feeder_limit(book: CapacityBook) -> None:
    a, b = register(book, 10), register(book, 11)
    c = register(book, 12, feeder="F2")
    admit(book, request(a, 12, 13, 1000))
    assert refused(book, request(b, 13, 14, 600)) is RequestReject.OVER_FEEDER_LIMIT
    admit(book, request(b, 14, 14, 600))  # interval 14: 1000 is only in a's 12..13
    admit(book, request(b, 12, 13, 500))  # 1500 is the limit, reached exactly
    admit(book, request(c, 12, 13, 1000))  # another feeder
    assert book.feeder_load("F1", AssetKind.PRODUCTION, 13) == 1500


def test_lowered_feeder_limit_refuses_new_requests(book: CapacityBook) -> None:
    p = register(book, 10)
    admit(book, request(p, 12, 12, 800))
    book.set_feeder_limit(FeederLimit("F1", 500, 10_000))
    assert book.load(p.signing_key, AssetKind.PRODUCTION, 12) == 800
    assert refused(book, request(p, 13, 13, 600)) is RequestReject.OVER_FEEDER_LIMIT


def test_unknown_feeder(book: CapacityBook) -> None:
    p = register(book, 10, feeder="F9")
    assert refused(book, request(p, 12, 12, 1)) is RequestReject.UNKNOWN_FEEDER


def test_authentication(book: CapacityBook) -> None:
    p = register(book, 10)
    stranger = keys(50)
    assert refused(book, request(stranger, 12, 12, 1)) is RequestReject.UNKNOWN_PROSUMER
    assert refused(book, request(p, 12, 12, 1, network="other")) is RequestReject.BAD_SIGNATURE
    forged = dataclasses.replace(request(stranger, 12, 12, 1), meter_key=p.signing_key)
    assert refused(book, forged) is RequestReject.BAD_SIGNATURE


def test_windows_and_replay(book: CapacityBook) -> None:
    p = register(book, 10)
    assert refused(book, request(p, OPEN - 1, OPEN, 1)) is RequestReject.GATE_CLOSED
    assert refused(book, request(p, 12, 12, 1, expires=OPEN - 1)) is RequestReject.EXPIRED
    assert refused(book, request(p, 12, 12 + 96, 1)) is RequestReject.SPAN_TOO_LONG
    req = request(p, 12, 12, 1)
    admit(book, req)
    assert refused(book, req) is RequestReject.DUPLICATE


def test_check_changes_nothing(book: CapacityBook) -> None:
    p = register(book, 10)
    req = request(p, 12, 12, 1000)
    book.check(req, network_id=NETWORK, first_open_interval=OPEN)
    assert book.load(p.signing_key, AssetKind.PRODUCTION, 12) == 0
    admit(book, req)


def test_money_requests(book: CapacityBook) -> None:
    p = register(book, 10)
    req = request(p, None, None, 10**12, kind=AssetKind.MONEY, expires=OPEN)
    grant = admit(book, req)
    assert grant.first_interval is None
    assert refused(book, req) is RequestReject.DUPLICATE
    book.prune(OPEN + 1)
    assert book.grant(req.request_id) is None
    with pytest.raises(RequestRefused) as caught:
        book.admit(req, network_id=NETWORK, first_open_interval=OPEN + 1)
    assert caught.value.reason is RequestReject.EXPIRED


def test_release_and_prune(book: CapacityBook) -> None:
    p = register(book, 10)
    first = request(p, 12, 12, 1000)
    admit(book, first)
    assert book.release(first.request_id)
    assert not book.release(first.request_id)
    admit(book, request(p, 12, 12, 1000))
    later = request(p, 20, 20, 1000)
    admit(book, later)
    assert book.prune(13) == 1
    assert book.load(p.signing_key, AssetKind.PRODUCTION, 12) == 0
    assert book.load(p.signing_key, AssetKind.PRODUCTION, 20) == 1000
    # A pruned request replayed later is refused by its closed gate.
    with pytest.raises(RequestRefused) as caught:
        book.admit(first, network_id=NETWORK, first_open_interval=13)
    assert caught.value.reason is RequestReject.GATE_CLOSED


def test_register_twice_is_a_local_error(book: CapacityBook) -> None:
    p = register(book, 10)
    reg = book.registration(p.signing_key)
    assert reg is not None
    with pytest.raises(ValueError):
        book.register(reg)


# -- persistence ------------------------------------------------------------------------------


def test_rows_round_trip(book: CapacityBook) -> None:
    a, b = register(book, 10), register(book, 11, feeder="F2")
    admit(book, request(a, 12, 20, 700))
    admit(book, request(b, 15, 15, 300, kind=AssetKind.CONSUMPTION))
    admit(book, request(a, None, None, 5, kind=AssetKind.MONEY))
    rows = book.to_rows()
    again = CapacityBook.from_rows(rows, max_span_intervals=96)
    assert again.to_rows() == rows
    assert again.load(a.signing_key, AssetKind.PRODUCTION, 16) == 700
    assert refused(again, request(a, 16, 16, 301)) is RequestReject.OVER_CAPACITY
    assert refused(again, request(b, 16, 16, 1001)) is refused(book, request(b, 16, 16, 1001))
    admit(again, request(b, 15, 15, 1700, kind=AssetKind.CONSUMPTION))
    assert refused(again, request(b, 15, 15, 1, kind=AssetKind.CONSUMPTION)) is (
        RequestReject.OVER_CAPACITY)


def test_rows_with_mismatched_key_are_refused(book: CapacityBook) -> None:
    register(book, 10)
    rows = book.to_rows()
    bad = BookRows(registrations=((bytes(32), rows.registrations[0][1]),))
    with pytest.raises(MarketRecordInvalid):
        CapacityBook.from_rows(bad)


# -- records: round trips, bounds, bit flips ------------------------------------------------------


def test_registration_signature() -> None:
    reg = Registration.issue(DSO, NETWORK, meter_key=keys(5).signing_key,
                             credential_key=CREDENTIAL, max_generation_w=MAX_POWER_W,
                             max_consumption_w=0, feeder="x" * 32)
    reg.verify(DSO.signing_key, NETWORK)
    with pytest.raises(MarketRecordInvalid) as caught:
        reg.verify(DSO.signing_key, "another-network")
    assert caught.value.reason is RecordFault.BAD_SIGNATURE
    with pytest.raises(MarketRecordInvalid):
        reg.verify(keys(2).signing_key, NETWORK)
    assert len(reg.encode()) <= MAX_REGISTRATION_BYTES


def test_largest_records_fit_their_bounds() -> None:
    req = AssetRequest.create(keys(5), NETWORK, kind=AssetKind.CONSUMPTION, amount=MAX_POWER_W,
                              expires=2**63 - 1, address=ADDRESS, first_interval=2**63 - 2,
                              last_interval=2**63 - 1)
    assert len(req.encode()) <= MAX_REQUEST_BYTES
    assert len(FeederLimit("f" * 32, MAX_POWER_W, MAX_POWER_W).encode()) <= MAX_FEEDER_LIMIT_BYTES
    grant = Grant.of(req, "f" * 32)
    assert len(grant.encode()) <= MAX_GRANT_BYTES


def test_exact_bytes_of_a_feeder_limit() -> None:
    limit = FeederLimit("F1", 1500, 10_000)
    data = bytes.fromhex("9401a24631cd05dccd2710")
    assert limit.encode() == data
    assert FeederLimit.decode(data) == limit


def test_unsupported_version() -> None:
    data = bytes.fromhex("9402a24631cd05dccd2710")
    with pytest.raises(MarketRecordInvalid) as caught:
        FeederLimit.decode(data)
    assert caught.value.reason is RecordFault.UNSUPPORTED_VERSION


def test_energy_request_over_max_power_is_malformed() -> None:
    req = request(keys(5), 12, 12, 1)
    fields: list[codec.Encodable] = [
        1, req.meter_key, "production", 12, 12, MAX_POWER_W + 1, 1000, req.nonce,
        ADDRESS.spend.raw, ADDRESS.view.raw, req.signature]
    with pytest.raises(MarketRecordInvalid) as caught:
        AssetRequest.decode(codec.encode(fields))
    assert caught.value.reason is RecordFault.MALFORMED


powers = st.integers(0, MAX_POWER_W)
feeders = st.from_regex(r"[A-Za-z0-9._-]{1,32}", fullmatch=True)
seeds = st.integers(2, 255)


@st.composite
def registrations(draw: st.DrawFn) -> Registration:
    return Registration.issue(DSO, NETWORK, meter_key=keys(draw(seeds)).signing_key,
                              credential_key=CREDENTIAL, max_generation_w=draw(powers),
                              max_consumption_w=draw(powers), feeder=draw(feeders))


@st.composite
def asset_requests(draw: st.DrawFn) -> AssetRequest:
    kind = draw(st.sampled_from(AssetKind))
    if kind is AssetKind.MONEY:
        first = last = None
        amount = draw(st.integers(1, 2**64 - 1))
    else:
        first = draw(st.integers(0, 2**63 - 1))
        last = draw(st.integers(first, 2**63 - 1))
        amount = draw(st.integers(1, MAX_POWER_W))
    return AssetRequest.create(keys(draw(seeds)), NETWORK, kind=kind, amount=amount,
                               expires=draw(st.integers(0, 2**63 - 1)), address=ADDRESS,
                               first_interval=first, last_interval=last,
                               rng=counter_rng(draw(st.integers())))


@settings(max_examples=100, deadline=None)
@given(registrations())
def test_registration_round_trip(reg: Registration) -> None:
    data = reg.encode()
    assert len(data) <= MAX_REGISTRATION_BYTES
    assert Registration.decode(data) == reg
    Registration.decode(data).verify(DSO.signing_key, NETWORK)


@settings(max_examples=100, deadline=None)
@given(asset_requests())
def test_request_round_trip(req: AssetRequest) -> None:
    data = req.encode()
    assert len(data) <= MAX_REQUEST_BYTES
    again = AssetRequest.decode(data)
    assert again == req
    assert again.signature_valid(NETWORK)
    assert again.request_id == req.request_id


@settings(max_examples=100, deadline=None)
@given(asset_requests(), feeders)
def test_grant_and_limit_round_trip(req: AssetRequest, feeder: str) -> None:
    grant = Grant.of(req, feeder)
    assert Grant.decode(grant.encode()) == grant
    limit = FeederLimit(feeder, req.amount % (MAX_POWER_W + 1), 7)
    assert FeederLimit.decode(limit.encode()) == limit


@settings(max_examples=200, deadline=None)
@given(registrations(), st.data())
def test_registration_bit_flip_is_refused(reg: Registration, data: st.DataObject) -> None:
    raw = bytearray(reg.encode())
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        flipped = Registration.decode(bytes(raw))
    except MarketRecordInvalid:
        return
    with pytest.raises(MarketRecordInvalid) as caught:
        flipped.verify(DSO.signing_key, NETWORK)
    assert caught.value.reason is RecordFault.BAD_SIGNATURE


@settings(max_examples=200, deadline=None)
@given(asset_requests(), st.data())
def test_request_bit_flip_is_refused(req: AssetRequest, data: st.DataObject) -> None:
    raw = bytearray(req.encode())
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        flipped = AssetRequest.decode(bytes(raw))
    except MarketRecordInvalid:
        return
    assert not flipped.signature_valid(NETWORK)


def test_huge_claimed_lengths_are_refused_before_allocation() -> None:
    # A tier list whose member array header claims 2³²−1 elements, in 12 bytes.
    data = bytes.fromhex("950100cd1388dd") + b"\xff\xff\xff\xff" + b"\xc0"
    with pytest.raises(MarketRecordInvalid) as caught:
        TierList.decode(data)
    assert caught.value.reason is RecordFault.MALFORMED
    with pytest.raises(MarketRecordInvalid):
        Registration.decode(bytes(MAX_REGISTRATION_BYTES + 1))


DECODERS: list[Callable[[bytes], object]] = [
    Registration.decode, AssetRequest.decode, FeederLimit.decode, Grant.decode,
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(DECODERS))
def test_arbitrary_bytes_give_a_value_or_market_error(
    data: bytes, decode: Callable[[bytes], object]
) -> None:
    try:
        decode(data)
    except MarketRecordInvalid:
        pass


@settings(max_examples=100, deadline=None)
@given(asset_requests(), st.integers(0, MAX_REQUEST_BYTES))
def test_truncated_or_extended_requests_are_refused(req: AssetRequest, cut: int) -> None:
    data = req.encode()
    for variant in (data[:cut] if cut < len(data) else data + b"\x00", data + bytes(300)):
        with pytest.raises(MarketRecordInvalid):
            AssetRequest.decode(variant)


# -- properties of the book -----------------------------------------------------------------------

spans = st.tuples(st.integers(0, 30), st.integers(0, 10), st.integers(1, 800))


@settings(max_examples=200, deadline=None)
@given(st.lists(spans, max_size=12), st.integers(0, 40), st.integers(0, 40))
def test_peak_load_matches_brute_force(
    raw: list[tuple[int, int, int]], a: int, b: int
) -> None:
    first, last = sorted((a, b))
    grants = [Grant(bytes([i]) * 32, bytes(32), "F", AssetKind.PRODUCTION, s, s + n, p, 0)
              for i, (s, n, p) in enumerate(raw)]
    brute = max((sum(g.amount for g in grants if g.covers(i)) for i in range(first, last + 1)),
                default=0)
    assert peak_load(grants, first, last) == brute


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), spans), max_size=15))
def test_book_never_exceeds_capacity_or_feeder_limit(
    raw: list[tuple[int, tuple[int, int, int]]]
) -> None:
    book = CapacityBook(max_span_intervals=96)
    book.set_feeder_limit(FeederLimit("F1", 1500, 0))
    prosumers = [register(book, 20 + i) for i in range(3)]
    for who, (start, n, power) in raw:
        try:
            book.admit(request(prosumers[who], OPEN + start, OPEN + start + n, power),
                       network_id=NETWORK, first_open_interval=OPEN)
        except RequestRefused as exc:
            assert exc.reason in {RequestReject.OVER_CAPACITY, RequestReject.OVER_FEEDER_LIMIT}
    for i in range(OPEN, OPEN + 41):
        loads = [book.load(p.signing_key, AssetKind.PRODUCTION, i) for p in prosumers]
        assert all(load <= 1000 for load in loads)
        assert sum(loads) == book.feeder_load("F1", AssetKind.PRODUCTION, i) <= 1500


def test_public_address_is_what_the_dso_pays() -> None:
    req = request(keys(5), 12, 12, 1)
    assert isinstance(req.address, PublicAddress)
    assert req.asset.first_interval == 12
