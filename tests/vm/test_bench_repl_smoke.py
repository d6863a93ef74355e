"""CI runs the two-node replication benchmark short (--quick): it prints a
row for every target and every resync variant, the raw and DRBD rows carry
numbers, and a bsr row may only be "n/a" while the module lacks the
feature (the numbers themselves are judged by `make bench`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_repl  # noqa: E402
from repl_lab import kmod_lacks  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.vm


def test_bench_repl_quick_prints_every_row_with_numbers_where_the_module_can(kernel_env, bsr_ko) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench/bench_repl.py"), "--quick", "--ko", str(bsr_ko)],
                       capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = bench_repl.IO_ROWS + bench_repl.RESYNC_ROWS
    width = bench_repl.NAME_WIDTH
    rows = {ln[:width].rstrip(): ln[width:].split() for ln in r.stdout.splitlines()
            if ln[:width].rstrip() in names}
    assert set(rows) == set(bench_repl.IO_ROWS + bench_repl.RESYNC_ROWS), r.stdout
    missing = {"bsr C": kmod_lacks("bsr_repl.c"), "bsr A": kmod_lacks("bsr_repl.c"),
               "bsr default": kmod_lacks("bsr_repl.c") or kmod_lacks("bsr_resync.c")}
    missing["bsr fixed 100M"] = missing["bsr default"]
    for name, cells in rows.items():
        if cells[0] == "n/a:":
            assert missing.get(name), f"{name} not measured although the module has it: {r.stdout}"
            continue
        assert cells[0] != "failed:", f"{name}: {r.stdout}"
        assert float(cells[0]) > 0, f"{name}: {r.stdout}"
