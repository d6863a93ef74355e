"""CI runs the two-node replication benchmark short (--quick sizes): it
measures a row for every target and every resync variant, and every row
(raw, DRBD 8.4 and bsr) carries a positive number (the numbers themselves
are judged by `make bench`).

The smoke runs on the session's two-node lab rather than booting a pair of
its own through ``bench_repl.py``: the measuring code is the script's own
(``run_all`` and ``table``), only the boot is shared."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_repl  # noqa: E402
from harness.lab import Lab  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.vm


def test_bench_repl_usage_names_every_option() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench/bench_repl.py"), "--help"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for opt in ("--quick", "--runtime", "--rounds", "--resync-mib", "--ko", "--json"):
        assert opt in r.stdout


def test_bench_repl_quick_measures_every_row(lab: Lab, bsr_ko) -> None:
    try:
        res = bench_repl.run_all(lab, bsr_ko, bench_repl.QUICK_RUNTIME,
                                 bench_repl.QUICK_RESYNC_MIB)
    finally:
        for g in lab.nodes:
            if g.alive:
                g.run("rmmod drbd; rmmod brd; true", timeout=120)
    out = bench_repl.table(res)
    print(out)  # the table, for -s / -rA
    names = bench_repl.IO_ROWS + bench_repl.RESYNC_ROWS
    width = bench_repl.NAME_WIDTH
    rows = {ln[:width].rstrip(): ln[width:].split() for ln in out.splitlines()
            if ln[:width].rstrip() in names}
    assert set(rows) == set(names), out
    for name, cells in rows.items():
        assert cells[0] != "failed:", f"{name}: {out}"
        assert float(cells[0]) > 0, f"{name}: {out}"
