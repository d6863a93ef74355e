"""CI runs a short version of the single-node benchmark: every row is
measured and the table is printed (the numbers are not judged here --
speed is judged by `make bench`, not by a timed test)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.guest import UNUSED_DRIVERS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.vm

# the harness's guests boot without udev loading drivers no test uses: so does this one
BLACKLIST = "modprobe.blacklist=" + ",".join(UNUSED_DRIVERS)


def test_bench_local_quick_prints_a_row_for_raw_dm_linear_bsr_and_drbd(kernel_env, bsr_ko) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench/bench_local.py"), "--quick", "--runtime", "1",
         "--kernel", str(kernel_env.vmlinuz), "--ko", str(bsr_ko), "--append", "tsc=reliable",
         "--append", BLACKLIST],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    head, *lines = r.stdout.strip().splitlines()
    # the guest's clock source is named: it decides what a timestamp costs
    assert head.startswith("bench_local: 1 s per run, 1 round(s), guest clocksource "), r.stdout
    assert head.endswith(f"(tsc=reliable {BLACKLIST})"), r.stdout
    assert lines[0].split()[0] == "target", r.stdout
    names = [ln.split()[0] for ln in lines[1:]]
    assert names == ["raw", "dm-linear", "bsr", "drbd"], r.stdout
    for ln in lines[1:]:
        seq, lat = float(ln.split()[-5]), float(ln.split()[-3])
        assert seq > 0 and lat > 0, ln
