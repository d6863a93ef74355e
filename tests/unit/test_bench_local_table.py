"""bench_local's table: ratios to raw are medians of per-round ratios (each
target against the raw run of its own round), so a host that slows down
between rounds does not move them."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench_local():
    spec = importlib.util.spec_from_file_location("bench_local", ROOT / "bench/bench_local.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_ratio_is_the_median_of_each_rounds_ratio_not_the_ratio_of_medians() -> None:
    m = bench_local()
    # the host halves its speed after round 1; bsr is always 1.2x raw's latency
    runs = {"raw": [m.Row("raw", 1000, 10), m.Row("raw", 500, 20), m.Row("raw", 500, 20)],
            "bsr": [m.Row("bsr", 900, 12), m.Row("bsr", 450, 24), m.Row("bsr", 900, 24)]}
    r = m.round_ratios(runs)
    assert r["raw"].seq == r["raw"].lat == 1.0
    assert r["bsr"].lat == 1.2
    assert r["bsr"].seq == 0.9


def test_table_prints_medians_spreads_and_each_round() -> None:
    m = bench_local()
    runs = {"raw": [m.Row("raw", 1000, 10), m.Row("raw", 800, 14)],
            "bsr": [m.Row("bsr", 950, 13), m.Row("bsr", 760, 16.8)]}
    lines = m.table(runs).splitlines()
    assert lines[0].split()[0] == "target"
    bsr = lines[2].split()
    assert bsr[0] == "bsr" and bsr[2] == "0.950" and bsr[4] == "1.250" and bsr[5] == "13.0-16.8"
    assert lines[3] == "rounds (seq MiB/s / lat us):"
    assert lines[5] == "  bsr        950.0/13.0  760.0/16.8"


def test_one_round_prints_only_the_table() -> None:
    m = bench_local()
    runs = {"raw": [m.Row("raw", 1000, 10)], "bsr": [m.Row("bsr", 950, 12)]}
    assert len(m.table(runs).splitlines()) == 3
