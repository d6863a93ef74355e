"""report arithmetic, time parsing and reading rotated files back."""
from __future__ import annotations

import gzip
from datetime import date, datetime
from pathlib import Path

import pytest

from bsrmon.cli import main
from bsrmon.report import ReportError, human, parse_when, report, report_json
from bsrmon.series import SeriesKey

KEY = SeriesKey("iostat", "r0", 0)
HDR = KEY.header()
# time dt_ms r_iops r_kibs w_iops w_kibs
LINES = [
    "2026-11-21_10:00:01.000 1000 10 40 100 400\n",
    "2026-11-21_10:00:02.000 1000 20 80 300 1200\n",
    "2026-11-21_10:00:03.000 500 - - 50 200\n",
    "2026-11-21_10:00:04.000 2000 30 120 0 0\n",
]


@pytest.fixture
def perfmon(tmp_path: Path) -> Path:
    d = tmp_path / "perfmon/r0"
    d.mkdir(parents=True)
    # the two oldest lines were rotated and compressed, one damaged line in between
    with gzip.open(d / "vnr0_iostat.20261121-100002.gz", "wt") as f:
        f.write(HDR + LINES[0] + LINES[1])
    (d / "vnr0_iostat").write_text(HDR + "2026-11-21_10:00:02.5 garbage\n" + LINES[2] + LINES[3])
    return tmp_path / "perfmon"


def test_min_avg_max_and_totals_match_hand_computation(perfmon: Path) -> None:
    (r,) = report(perfmon, "iostat", "r0")
    assert r.samples == 4
    c = {s.name: s for s in r.columns}
    # r_iops: 10, 20, -, 30 -> min 10, avg 20, max 30; total 10*1 + 20*1 + 30*2 = 90
    assert (c["r_iops"].min, c["r_iops"].avg, c["r_iops"].max) == (10, 20, 30)
    assert c["r_iops"].total == pytest.approx(90)
    # w_kibs: 400, 1200, 200, 0 -> avg 450; total 400 + 1200 + 100 + 0 = 1700
    assert (c["w_kibs"].min, c["w_kibs"].avg, c["w_kibs"].max) == (0, 450, 1200)
    assert c["w_kibs"].total == pytest.approx(1700)
    assert c["dt_ms"].total is None


def test_time_range_is_inclusive_at_both_ends(perfmon: Path) -> None:
    (r,) = report(perfmon, "iostat", "r0", start=datetime(2026, 11, 21, 10, 0, 2),
                  stop=datetime(2026, 11, 21, 10, 0, 3))
    c = {s.name: s for s in r.columns}
    assert r.samples == 2
    assert (c["w_iops"].min, c["w_iops"].avg, c["w_iops"].max) == (50, 175, 300)
    assert c["r_iops"].avg == 20  # the "-" of 10:00:03 is left out


def test_parse_when_accepts_the_documented_forms() -> None:
    d = date(2026, 11, 21)
    assert parse_when("2026-11-21_10:00:02") == datetime(2026, 11, 21, 10, 0, 2)
    assert parse_when("2026-11-21 10:00") == datetime(2026, 11, 21, 10, 0)
    assert parse_when("10:00:02.250", d) == datetime(2026, 11, 21, 10, 0, 2, 250000)
    assert parse_when("10:00", d, end=True) == datetime(2026, 11, 21, 10, 0, 59, 999000)
    assert parse_when("2026-11-21", end=True) == datetime(2026, 11, 21, 23, 59, 59, 999999)
    with pytest.raises(ReportError, match="cannot read the time"):
        parse_when("yesterday")


def test_report_cli_with_bsr_slash_options(perfmon: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["--file-path", str(perfmon.parent), "/report", "iostat", "r0",
               "/d", "2026-11-21", "/s", "10:00:02", "/e", "10:00:03"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "iostat r0 vnr0: 2026-11-21_10:00:02.000 .. 2026-11-21_10:00:03.000, 2 samples" in out
    assert any(ln.split()[:5] == ["w_iops", "IO/s", "50", "175", "300"] for ln in out.splitlines())


def test_report_json_and_unknown_series(perfmon: Path, capsys: pytest.CaptureFixture) -> None:
    (j,) = report_json(report(perfmon, "iostat"))
    assert j["columns"]["w_kibs"]["total"] == pytest.approx(1700)
    assert main(["--file-path", str(perfmon.parent), "report", "network", "r0"]) == 1
    assert "no network series" in capsys.readouterr().err


def test_human_units() -> None:
    assert human(65536, "KiB/s") == "64.0 MiB/s"
    assert human(512, "B/s") == "512 B/s"
    assert human(1500, "us") == "1.50 ms"
    assert human(None, "us") == "-"
