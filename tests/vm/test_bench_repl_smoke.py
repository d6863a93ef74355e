"""CI runs the two-node replication benchmark short (--quick): it prints a
row for every target and every resync variant, and every row (raw, DRBD
8.4 and bsr) carries a positive number (the numbers themselves are judged
by `make bench`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_repl  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.vm


def test_bench_repl_quick_measures_every_row(kernel_env, bsr_ko) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench/bench_repl.py"), "--quick", "--ko", str(bsr_ko)],
                       capture_output=True, text=True, timeout=1800, cwd=ROOT)
    print(r.stdout)  # the table, for -s / -rA
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = bench_repl.IO_ROWS + bench_repl.RESYNC_ROWS
    width = bench_repl.NAME_WIDTH
    rows = {ln[:width].rstrip(): ln[width:].split() for ln in r.stdout.splitlines()
            if ln[:width].rstrip() in names}
    assert set(rows) == set(bench_repl.IO_ROWS + bench_repl.RESYNC_ROWS), r.stdout
    for name, cells in rows.items():
        assert cells[0] != "failed:", f"{name}: {r.stdout}"
        assert float(cells[0]) > 0, f"{name}: {r.stdout}"
