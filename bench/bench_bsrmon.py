#!/usr/bin/env python3
"""CPU cost of bsrmon with many resources.

Feeds ``bsrmon run`` a synthetic ``events2 --statistics`` stream of N
resources (one volume and one peer each; ``python -m bsrmon.synthetic``) at
a 1 s period through a pipe, lets it warm up, then measures the collector's
own CPU time (utime + stime from /proc/PID/stat, all threads) over the
measuring window.  The stream is parsed as text here; the kernel source
decodes netlink instead, which costs about the same per object.

    bench/bench_bsrmon.py --resources 100 --seconds 60

Prints a human summary and one JSON line; exits 1 when the share of one core
exceeds --limit (default 2 %).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def count_lines(root: Path) -> int:
    n = 0
    for p in (root / "perfmon").rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                n += sum(1 for line in f if not line.startswith(b"#"))
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resources", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--period", type=float, default=1.0)
    ap.add_argument("--limit", type=float, default=2.0, help="max %% of one core")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bsrmon-bench-") as tmp:
        root = Path(tmp)
        gen = subprocess.Popen(
            [sys.executable, "-m", "bsrmon.synthetic", "--resources", str(a.resources),
             "--interval", str(a.period)], stdout=subprocess.PIPE)
        mon = subprocess.Popen(
            [sys.executable, "-m", "bsrmon", "--file-path", str(root / "log"), "run",
             "--no-control", "--events", "-", "--clock", "wall", "--period", str(a.period)],
            stdin=gen.stdout, stderr=subprocess.DEVNULL)
        assert gen.stdout is not None
        gen.stdout.close()
        try:
            time.sleep(a.warmup)
            c0, t0, l0 = cpu_seconds(mon.pid), time.monotonic(), count_lines(root / "log")
            time.sleep(a.seconds)
            c1, t1 = cpu_seconds(mon.pid), time.monotonic()
            l1 = count_lines(root / "log")
        finally:
            mon.terminate()
            gen.terminate()
            mon.wait(10)
            gen.wait(10)
    user, system = c1[0] - c0[0], c1[1] - c0[1]
    pct = 100.0 * (user + system) / (t1 - t0)
    lines_per_s = (l1 - l0) / (t1 - t0)
    print(f"bsrmon: {a.resources} resources, period {a.period:g} s, {t1 - t0:.0f} s measured: "
          f"{pct:.2f} % of one core (user {user:.2f} s, system {system:.2f} s), "
          f"{lines_per_s:.0f} series lines/s "
          f"(limit {a.limit:g} %)")
    print(json.dumps({"bench": "bsrmon_cpu", "resources": a.resources, "period_s": a.period,
                      "seconds": round(t1 - t0, 1), "cpu_pct_one_core": round(pct, 3),
                      "user_s": round(user, 2), "system_s": round(system, 2),
                      "lines_per_s": round(lines_per_s, 1), "limit_pct": a.limit}))
    return 0 if pct <= a.limit else 1


if __name__ == "__main__":
    sys.exit(main())
