"""bench_repl's table: "x drbd" is the median of each round's bsr/DRBD ratio
(both measured minutes apart in the same round), failed rounds left out."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT / "bench", ROOT / "tests/vm", ROOT):
    sys.path.insert(0, str(p))

import bench_repl as b  # noqa: E402


def results() -> "b.Results":
    io = {"raw": [b.IoRow("raw", 100, 10, 1000)] * 3,
          # the host slows down by half after round 1: bsr is 1.1x DRBD in every round
          "drbd84 A": [b.IoRow("drbd84 A", 20, 50, 200), b.IoRow("drbd84 A", 10, 100, 100),
                       b.IoRow("drbd84 A", 10, 100, 100)],
          "bsr A": [b.IoRow("bsr A", 22, 55, 220), b.IoRow("bsr A", 11, 110, 110),
                    b.IoRow("bsr A", note="failed: no")]}
    rs = {"drbd84 default": [b.ResyncRow("drbd84 default", 4, 1)] * 3,
          "bsr default": [b.ResyncRow("bsr default", 16, 1)] * 3}
    return b.Results([b.median_io(n, r) for n, r in io.items()],
                     [b.median_resync(n, r) for n, r in rs.items()], 3, io, rs)


def test_round_ratio_is_the_median_of_per_round_ratios_without_failed_rounds() -> None:
    r = results()
    assert b.round_ratio(r.io_runs["bsr A"], r.io_runs["drbd84 A"], "iops") == "1.10"
    assert b.round_ratio(r.io_runs["bsr A"], r.io_runs["drbd84 A"], "lat_us") == "1.10"
    assert b.round_ratio([b.IoRow("x", note="failed")], [b.IoRow("y", 1, 1, 1)], "iops") == "-"


def test_resync_rows_compare_each_round_with_drbd() -> None:
    lines = b.table(results()).splitlines()
    row = next(ln for ln in lines if ln.startswith("bsr default"))
    assert row.split()[-1] == "4.00"
