"""The crypto bench prints one row per operation with its floor (no timing assertions)."""

from __future__ import annotations

import io

from petranode.crypto import bench


def test_quick_bench_prints_every_row() -> None:
    out = io.StringIO()
    bench.run_crypto_bench(out, quick=True)
    lines = out.getvalue().splitlines()
    expected = [f"clsag {op} n={n}" for n in bench.RING_SIZES for op in ("sign", "verify")]
    expected += [f"bp+ {op} m={m}" for m in bench.BP_OUTPUTS for op in ("prove", "verify")]
    expected += ["scan output (view tags)"]
    header = next(i for i, line in enumerate(lines) if line.startswith("operation"))
    assert lines[header].split()[:5] == ["operation", "median", "best", "floor", "best/floor"]
    rows = lines[header + 1:header + 1 + len(expected)]
    for name, row in zip(expected, rows, strict=True):
        assert row.startswith(name)
        # median, best and floor are durations, the ratio a number.
        cells = row[len(name):].split()
        assert all(cells[i] in ("s", "ms", "µs") for i in (1, 3, 5))
        float(cells[6])
    assert "outputs/s" in rows[-1]
    assert any(line.startswith("unit costs:") for line in lines)


def test_table_is_aligned() -> None:
    rows = [bench.Row("a", 0.6, 0.5, 0.25, "V1"),
            bench.Row("longer name", 3e-6, 2e-6, 1e-6, "B2", "x")]
    assert rows[0].ratio == 2.0
    lines = bench.format_table(rows)
    first = len("longer name")
    assert all(line[first:first + 2] == "  " for line in lines)
    # Numeric columns are right-aligned: every row's median ends where the header's does.
    end = lines[0].index("median") + len("median")
    assert all(line[end - 1] != " " and line[end] == " " for line in lines)
