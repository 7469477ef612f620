"""``petranode bench netdb``: records validated per second by one node, beside Ed25519 verify.

SPEC §6 asks each benchmark to print, beside its figure, the figure it is compared with in the
same run. Validating a netDb record is dominated by signature checks — a RouterInfo needs two
(its own and its authority certificate's), a LeaseSet one — so the comparison is the cost of
one libsodium Ed25519 verify measured in this run: the *floor* is verifies × that cost, and
the *ratio* figure/floor is what decoding, hashing and the table's newest-wins bookkeeping add.

Each row offers fresh records (distinct routers or destinations, valid certificates) to an empty
:class:`~petranode.net.netdb.table.RecordTable`, exactly the path a STORE from the network takes
after its datagram is parsed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, TextIO

from petranode.crypto import _sodium as na
from petranode.net import cert
from petranode.net.identity import RouterKeys
from petranode.net.netdb.leaseset import Destination, Lease, sign_leaseset
from petranode.net.netdb.records import ValidationPolicy
from petranode.net.netdb.routerinfo import Address, sign_routerinfo
from petranode.net.netdb.table import RecordTable

NETWORK: Final = "bench-net"
RECORDS: Final = 400
QUICK_RECORDS: Final = 50


def _routerinfos(count: int, authority: RouterKeys, now: float) -> list[tuple[bytes, bytes]]:
    records = []
    for _ in range(count):
        keys = RouterKeys.generate()
        certificate = cert.issue(authority, keys.identity, network_id=NETWORK,
                                 valid_from=int(now) - 60, valid_until=int(now) + 3600)
        info = sign_routerinfo(
            keys, NETWORK, identity=keys.identity,
            addresses=(Address("tcp", "127.0.0.1", 7000), Address("udp", "127.0.0.1", 7001)),
            roles=("prosumer",), published_ms=int(now * 1000), certificate=certificate)
        records.append((info.encode(), info.key))
    return records


def _leasesets(count: int, now: float) -> list[tuple[bytes, bytes]]:
    records = []
    now_ms = int(now * 1000)
    for i in range(count):
        keys = RouterKeys.generate()
        leases = tuple(Lease(bytes([j + 1]) * 32, 1 + i * 4 + j, now_ms + 600_000)
                       for j in range(4))
        ls = sign_leaseset(keys, NETWORK, destination=Destination(keys.signing_key,
                                                                  keys.static_key),
                           revocation_key=RouterKeys.generate().signing_key, leases=leases,
                           published_ms=now_ms, expires_ms=now_ms + 600_000)
        records.append((ls.encode(), ls.key))
    return records


def _seconds_per(run: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / count


def run_netdb_bench(out: TextIO, *, quick: bool = False) -> None:
    """Print records validated per second (RouterInfo, LeaseSet) beside one Ed25519 verify."""
    count = QUICK_RECORDS if quick else RECORDS
    now = time.time()
    authority = RouterKeys.generate()
    policy = ValidationPolicy(network_id=NETWORK, authorities=frozenset({authority.signing_key}),
                              max_clock_skew_s=60, max_routerinfo_age_s=3600,
                              max_leaseset_lifetime_s=660)
    message = b"\x00" * 400  # about the size of a RouterInfo's signed bytes
    signer = RouterKeys.generate()
    signature = signer.sign("bench", NETWORK, message)
    # One untimed call first, so the timing does not include libsodium's first-use setup.
    na.crypto_sign_verify_detached(signature, message, signer.signing_key)

    def verify_many() -> None:
        for _ in range(count * 4):
            na.crypto_sign_verify_detached(signature, message, signer.signing_key)

    verify_s = _seconds_per(verify_many, count * 4)
    rows: list[tuple[str, int, float]] = []
    for label, records, verifies in (("routerinfo", _routerinfos(count, authority, now), 2),
                                     ("leaseset", _leasesets(count, now), 1)):
        table = RecordTable(policy, max_routers=count, max_leasesets=count)

        def offer_all(batch: Sequence[tuple[bytes, bytes]] = records,
                      into: RecordTable = table) -> None:
            for data, key in batch:
                into.offer(data, key, now)

        rows.append((label, verifies, _seconds_per(offer_all, count)))
        assert len(table) == count
    out.write(f"netdb validation, {count} fresh records per kind, one core\n")
    out.write(f"{'record':<11} {'records/s':>10} {'us/record':>10} {'verifies':>9} "
              f"{'floor us':>9} {'ratio':>6}\n")
    for label, verifies, per_record in rows:
        floor = verifies * verify_s
        out.write(f"{label:<11} {1 / per_record:>10.0f} {per_record * 1e6:>10.1f} "
                  f"{verifies:>9} {floor * 1e6:>9.1f} {per_record / floor:>6.2f}\n")
    out.write(f"baseline: one Ed25519 verify (libsodium) {verify_s * 1e6:.1f} us "
              f"= {1 / verify_s:.0f}/s in this run\n")
