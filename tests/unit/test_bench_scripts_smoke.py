"""CI runs a short version of the userland benchmarks: they run to the end
and print their summary (speed itself is judged by `make bench`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_bench_bsrmon_short_run_reports_the_cpu_share_of_both_sources_as_json() -> None:
    out = run("bench_bsrmon.py", "--resources", "5", "--seconds", "2", "--warmup", "1",
              "--limit", "100")
    summaries = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert [s["source"] for s in summaries] == ["events2 text", "kernel"], out
    for summary in summaries:
        assert summary["bench"] == "bsrmon_cpu" and summary["resources"] == 5
        assert summary["lines_per_s"] > 0


def test_bench_bsrwatch_short_run_reports_parser_and_redraw_rates() -> None:
    out = run("bench_bsrwatch.py", "--resources", "20", "--rate", "200", "--seconds", "1",
              "--lines", "2000")
    assert "lines/s" in out and "redraws/s" in out
