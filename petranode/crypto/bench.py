"""``petranode bench crypto``: transaction-cryptography timings against their libsodium floor.

SPEC §6 asks each benchmark to print, beside its figure, the figure it is compared with in
the same run. For the transaction cryptography that comparison is the libsodium work the
operation performs: during one (untimed) run of each operation every call through
:mod:`petranode.crypto._sodium` — variable-base and base-point scalar multiplications, point
additions, subgroup checks, scalar arithmetic — and every evaluation of Monero's hash-to-point
map (pure Python in :mod:`group`, but as unavoidable as a multiplication) is counted. The
*floor* is those counts times the cost of one such call, each measured in this run; the
*ratio* figure/floor is what the Python around them costs. A ratio near 1 means the operation
is bound by libsodium (which has no multi-scalar multiplication, so Straus/Pippenger savings
that Monero's C++ gets are out of reach here).

Rows: CLSAG sign and verify at ring sizes 11, 16, 64 and 128 (:mod:`clsag`); Bulletproofs+
prove and verify for 1, 2 and 16 outputs with the proof size (:mod:`bpplus`); and scanning
outputs with a view key (:mod:`stealth`), where, as on a real ledger, roughly one output in
256 passes the view-tag filter and needs the full one-time-key check.

Counting works by swapping the ``_sodium`` functions for counting wrappers inside a context
manager, for the one untimed run only; nothing else in the package is aware of it.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, ParamSpec, TextIO, TypeVar, final

from petranode.crypto import _sodium as na
from petranode.crypto import bpplus, clsag, group, stealth
from petranode.crypto.group import G, Point, Scalar, os_rng
from petranode.crypto.keys import ViewKeys
from petranode.crypto.pedersen import commit
from petranode.crypto.stealth import StealthOutput

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

RING_SIZES: Final = (11, 16, 64, 128)
BP_OUTPUTS: Final = (1, 2, 16)

#: The libsodium calls that are counted, with the short label used in the ops column.
_COUNTED: Final = {
    "crypto_scalarmult_ed25519_noclamp": "V",
    "crypto_scalarmult_ed25519_base_noclamp": "B",
    "crypto_core_ed25519_add": "A",
    "crypto_core_ed25519_sub": "A",
    "crypto_core_ed25519_is_valid_point": "C",
    "crypto_core_ed25519_scalar_mul": "S",
    "crypto_core_ed25519_scalar_add": "S",
    "crypto_core_ed25519_scalar_sub": "S",
    "crypto_core_ed25519_scalar_negate": "S",
    "crypto_core_ed25519_scalar_reduce": "S",
    "crypto_core_ed25519_scalar_invert": "I",
}
_MAP: Final = "hash_to_point_raw"
_LEGEND: Final = (
    "V variable-base mult (crypto_scalarmult_ed25519_noclamp), B base mult, "
    "A point add/sub, C subgroup check, S scalar op, I scalar inversion, "
    "M hash-to-point map"
)


@final
@dataclass(frozen=True, slots=True)
class Row:
    """One benchmarked operation."""

    name: str
    median: float
    best: float
    floor: float
    ops: str
    note: str = ""

    @property
    def ratio(self) -> float:
        """Best run over the floor: both are best cases, so load on a shared machine (which
        inflates medians) does not distort the comparison."""
        return self.best / self.floor if self.floor > 0 else float("inf")


def _counted(fn: Callable[_P, _R], name: str, counts: Counter[str]) -> Callable[_P, _R]:
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        counts[name] += 1
        return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _counting() -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    saved_na = {name: getattr(na, name) for name in _COUNTED}
    saved_map = group.hash_to_point_raw
    try:
        for name, fn in saved_na.items():
            setattr(na, name, _counted(fn, name, counts))
        setattr(group, _MAP, _counted(saved_map, _MAP, counts))
        yield counts
    finally:
        for name, fn in saved_na.items():
            setattr(na, name, fn)
        setattr(group, _MAP, saved_map)


#: Unit costs are the best of this many batches (timeit's advice): a batch slowed by another
#: process on a shared machine must not inflate the floor.
_UNIT_BATCHES = 10


def _time_per_call(fn: Callable[[], object], calls: int) -> float:
    batch = max(1, calls // _UNIT_BATCHES)
    best = float("inf")
    for _ in range(_UNIT_BATCHES):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, (time.perf_counter() - start) / batch)
    return best


def unit_costs(calls: int) -> dict[str, float]:
    """Seconds per call of each counted primitive, measured now."""
    s = Scalar.random(os_rng)
    t = Scalar.random(os_rng)
    p = (s * G).raw
    q = (t * G).raw
    wide = os_rng(64)
    h = os_rng(32)
    probes: dict[str, Callable[[], object]] = {
        "crypto_scalarmult_ed25519_noclamp": lambda: na.crypto_scalarmult_ed25519_noclamp(t.raw, p),
        "crypto_scalarmult_ed25519_base_noclamp": lambda: na.crypto_scalarmult_ed25519_base_noclamp(
            t.raw
        ),
        "crypto_core_ed25519_add": lambda: na.crypto_core_ed25519_add(p, q),
        "crypto_core_ed25519_sub": lambda: na.crypto_core_ed25519_sub(p, q),
        "crypto_core_ed25519_is_valid_point": lambda: na.crypto_core_ed25519_is_valid_point(p),
        "crypto_core_ed25519_scalar_mul": lambda: na.crypto_core_ed25519_scalar_mul(s.raw, t.raw),
        "crypto_core_ed25519_scalar_add": lambda: na.crypto_core_ed25519_scalar_add(s.raw, t.raw),
        "crypto_core_ed25519_scalar_sub": lambda: na.crypto_core_ed25519_scalar_sub(s.raw, t.raw),
        "crypto_core_ed25519_scalar_negate": lambda: na.crypto_core_ed25519_scalar_negate(s.raw),
        "crypto_core_ed25519_scalar_reduce": lambda: na.crypto_core_ed25519_scalar_reduce(wide),
        "crypto_core_ed25519_scalar_invert": lambda: na.crypto_core_ed25519_scalar_invert(s.raw),
        _MAP: lambda: group.hash_to_point_raw(h),
    }
    return {name: _time_per_call(fn, calls) for name, fn in probes.items()}


def _ops_label(counts: Counter[str], per: int) -> str:
    by_label: Counter[str] = Counter()
    for name, n in counts.items():
        by_label[_COUNTED.get(name, "M")] += n
    return " ".join(f"{label}{_count(by_label[label] / per)}" for label in "VBACSIM"
                    if by_label[label])


def _count(x: float) -> str:
    return str(int(x)) if x.is_integer() else f"{x:.3g}"


def _measure(
    name: str,
    fn: Callable[[], object],
    repeats: int,
    costs: dict[str, float],
    *,
    per: int = 1,
    note: str = "",
) -> Row:
    """Median seconds per item over ``repeats`` runs of ``fn`` (which handles ``per`` items)."""
    with _counting() as counts:
        fn()
    floor = sum(n * costs[op] for op, n in counts.items()) / per
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / per)
    return Row(name, statistics.median(times), min(times), floor, _ops_label(counts, per), note)


def _random_point() -> Point:
    return Scalar.random(os_rng).mul_base()


def clsag_rows(n: int, repeats: int, costs: dict[str, float]) -> list[Row]:
    amount = 10_000
    ring = [(_random_point(), _random_point()) for _ in range(n)]
    p = Scalar.random(os_rng)
    input_mask = Scalar.random(os_rng)
    pseudo_mask = Scalar.random(os_rng)
    real = n // 2
    ring[real] = (p.mul_base(), commit(amount, input_mask))
    c_offset = commit(amount, pseudo_mask)
    z = input_mask - pseudo_mask
    message = bytes(range(32))
    sig, key_image = clsag.sign(message, ring, c_offset, real, p, z)
    if not clsag.verify(message, ring, c_offset, key_image, sig):
        raise AssertionError("CLSAG bench signature does not verify")
    size = f"{len(sig.encode())} B"
    return [
        _measure(
            f"clsag sign n={n}",
            lambda: clsag.sign(message, ring, c_offset, real, p, z),
            repeats,
            costs,
            note=size,
        ),
        _measure(
            f"clsag verify n={n}",
            lambda: clsag.verify(message, ring, c_offset, key_image, sig),
            repeats,
            costs,
            note=size,
        ),
    ]


def bpplus_rows(m: int, repeats: int, costs: dict[str, float]) -> list[Row]:
    amounts = [int.from_bytes(os_rng(8), "little") for _ in range(m)]
    masks = [Scalar.random(os_rng) for _ in range(m)]
    commitments, proof = bpplus.prove(amounts, masks)
    if not bpplus.verify(commitments, proof):
        raise AssertionError("Bulletproofs+ bench proof does not verify")
    size = f"{proof.size} B"
    return [
        _measure(
            f"bp+ prove m={m}", lambda: bpplus.prove(amounts, masks), repeats, costs, note=size
        ),
        _measure(
            f"bp+ verify m={m}",
            lambda: bpplus.verify(commitments, proof),
            repeats,
            costs,
            note=size,
        ),
    ]


def scan_rows(n_outputs: int, repeats: int, costs: dict[str, float]) -> list[Row]:
    """Scan ``n_outputs`` outputs, two per transaction, none of which are ours."""
    view_keys = ViewKeys(Scalar.random(os_rng), _random_point())
    txs: list[tuple[Point, list[StealthOutput]]] = [
        (_random_point(), [StealthOutput(_random_point(), os_rng(1)[0]) for _ in range(2)])
        for _ in range((n_outputs + 1) // 2)]
    n = 2 * len(txs)
    hits = 0
    for tx_public, outs in txs:
        derivation = stealth.generate_key_derivation(tx_public, view_keys.view_secret)
        hits += sum(1 for i, o in enumerate(outs)
                    if stealth.derive_view_tag(derivation, i) == o.view_tag)

    def scan() -> int:
        return sum(len(stealth.scan_transaction(view_keys, tx_public, outs))
                   for tx_public, outs in txs)

    row = _measure("scan output (view tags)", scan, repeats, costs, per=n)
    return [Row(row.name, row.median, row.best, row.floor, row.ops,
                f"{1 / row.median:,.0f} outputs/s, tag hits {hits}/{n}")]


def format_table(rows: Sequence[Row]) -> list[str]:
    header = ("operation", "median", "best", "floor", "best/floor", "libsodium ops per item",
              "note")
    cells = [header] + [
        (r.name, _fmt_seconds(r.median), _fmt_seconds(r.best), _fmt_seconds(r.floor),
         f"{r.ratio:.2f}", r.ops, r.note)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {1, 2, 3, 4}
    lines = []
    for c in cells:
        parts = [
            c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i])
            for i in range(len(header))
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def run_crypto_bench(out: TextIO, *, quick: bool = False) -> None:
    """Print the transaction-cryptography benchmark table to ``out``.

    ``quick`` runs every row once (for tests and smoke checks, about 5 s); the full run
    repeats each operation (median of 5 to 9) and takes about 20 s on one core.
    """
    clsag_repeats, bp_repeats, scan_outputs = (1, 1, 256) if quick else (9, 5, 2048)
    costs = unit_costs(100 if quick else 2000)
    out.write(
        "petranode crypto bench — floor = libsodium calls counted in one run × their "
        "unit cost measured now (best of batches); ratio = best run / floor\n"
    )
    rows: list[Row] = []
    for n in RING_SIZES:
        rows += clsag_rows(n, clsag_repeats, costs)
    for m in BP_OUTPUTS:
        rows += bpplus_rows(m, bp_repeats, costs)
    rows += scan_rows(scan_outputs, clsag_repeats, costs)
    out.writelines(line + "\n" for line in format_table(rows))
    out.write(f"ops: {_LEGEND}\n")
    out.write(
        "unit costs: "
        + ", ".join(
            f"{label}={_fmt_seconds(costs[name])}"
            for name, label in (
                ("crypto_scalarmult_ed25519_noclamp", "V"),
                ("crypto_scalarmult_ed25519_base_noclamp", "B"),
                ("crypto_core_ed25519_add", "A"),
                ("crypto_core_ed25519_is_valid_point", "C"),
                ("crypto_core_ed25519_scalar_mul", "S"),
                ("crypto_core_ed25519_scalar_invert", "I"),
                (_MAP, "M"),
            )
        )
        + "\n"
    )
