"""The collector writes each sample as series.format_line would (it formats
the lines itself, with the tick's time stamp made once)."""
from __future__ import annotations

from datetime import datetime

from bsrmon.collector import Collector, _dest
from bsrmon.config import Config
from bsrmon.sampler import DEVICE_FIELDS, Snapshot
from bsrmon.series import format_line


def test_tick_lines_equal_format_line_of_each_sample_including_empty_and_none() -> None:
    batches: list = []  # type: ignore[type-arg]
    col = Collector(Config().types, lambda b: batches.append(b) or True)
    snap = Snapshot()
    counters = {"upper_pending": 1, "lower_pending": None, "al_used": 2.5}
    snap.devices[("d", ("r0", "0"))] = ("r0", 0, tuple(map(counters.get, DEVICE_FIELDS)))
    t = datetime(2026, 11, 21, 10, 0, 0, 123456)
    col.tick(t, {"requests_allocated": 3}, snap)
    lines = {rel: line for rel, _h, line in batches[-1]}
    assert len(lines) == len(col.latest) >= 2  # io_pending and memstat
    for key, (when, values) in col.latest.items():
        assert lines[_dest(key)[0]] == format_line(when, values)
    assert lines["perfmon/r0/vnr0_io_pending"] == "2026-11-21_10:00:00.123 1 - 2.5\n"
    assert format_line(t, ()) == "2026-11-21_10:00:00.123\n"


def test_values_print_ints_as_is_floats_with_at_most_three_decimals() -> None:
    from bsrmon.series import values_text
    assert values_text((1000, None, 2.5, 8192.0, -0.0, 1 / 3, True, 12345678901234)) == \
        "1000 - 2.5 8192 0 0.333 1 12345678901234"
