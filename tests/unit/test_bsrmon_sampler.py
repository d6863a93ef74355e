"""Rates, counter resets and the ioclat method (histogram bounds + sums)."""
from __future__ import annotations

from datetime import datetime, timedelta

from bsr.events2 import parse_line
from bsr.model import State

from bsrmon.sampler import Sampler, hist_bounds, latency
from bsrmon.series import SeriesKey

T0 = datetime(2026, 11, 21, 10, 0, 0)


def dev(**kv: object) -> str:
    fields = " ".join(f"{k.replace('_', '-')}:{v}" for k, v in kv.items())
    return f"change device name:r0 volume:0 minor:0 disk:UpToDate {fields}"


def run(lines: list[str], types: tuple[str, ...] = ("iostat",)) -> list[tuple]:
    st, s, out = State(), Sampler(types), []
    for i, line in enumerate(lines):
        ev = parse_line(line)
        assert ev is not None
        st.apply(ev)
        out.append(dict(s.sample(st, T0 + timedelta(seconds=2 * i))))
    return out


def test_rates_divide_growth_by_the_time_between_samples() -> None:
    out = run([dev(read=0, written=0, read_ios=0, write_ios=0),
               dev(read=100, written=2000, read_ios=10, write_ios=500)])
    assert out[0] == {}  # no previous sample: no rates yet
    assert out[1][SeriesKey("iostat", "r0", 0)] == (2000, 5.0, 50.0, 250.0, 1000.0)


def test_counter_reset_counts_the_new_value_not_a_negative_rate() -> None:
    out = run([dev(written=5000), dev(written=5400), dev(written=200)])
    assert out[1][SeriesKey("iostat", "r0", 0)][4] == 200.0
    assert out[2][SeriesKey("iostat", "r0", 0)][4] == 100.0  # 200 KiB since reset / 2 s


def test_unknown_counters_are_written_as_dash() -> None:
    out = run([dev(written=0), dev(written=10)])
    assert out[1][SeriesKey("iostat", "r0", 0)] == (2000, None, None, None, 5.0)


def test_hist_bounds_use_bucket_edges() -> None:
    h = [0] * 24
    assert hist_bounds(h) == (None, None)
    h[0], h[5] = 1, 3  # [0,2) and [32,64)
    assert hist_bounds(h) == (0.0, 64.0)
    h[23] = 1  # the open last bucket reports its lower bound
    assert hist_bounds(h) == (0.0, float(1 << 23))


def test_latency_avg_from_sums_min_max_from_histogram_delta() -> None:
    prev = {"completed_ios": 10, "local_lat_ns": 1_000_000, "local_hist": tuple([0] * 24)}
    h = [0] * 24
    h[4], h[9] = 3, 1  # [16,32) and [512,1024) µs
    cur = {"completed_ios": 14, "local_lat_ns": 1_000_000 + 4 * 150_000, "local_hist": tuple(h)}
    assert latency(prev, cur, "local") == (16.0, 150.0, 1024.0)
    # no request completed: zeros, not a division by zero
    assert latency(cur, cur, "local") == (0.0, 0.0, 0.0)


def test_min_and_max_are_widened_to_contain_the_average() -> None:
    h = [0] * 24
    h[2] = 2  # histogram says [4,8) but the sum says 10 µs on average
    prev = {"completed_ios": 0, "master_lat_ns": 0, "master_hist": tuple([0] * 24)}
    cur = {"completed_ios": 2, "master_lat_ns": 20_000, "master_hist": tuple(h)}
    assert latency(prev, cur, "master") == (4.0, 10.0, 10.0)


def test_destroyed_objects_are_forgotten() -> None:
    st, s = State(), Sampler(("iostat",))
    st.apply(parse_line(dev(written=0)))
    s.sample(st, T0)
    st.apply(parse_line("destroy device name:r0 volume:0 minor:0"))
    assert s.sample(st, T0 + timedelta(seconds=1)) == []
    st.apply(parse_line(dev(written=50)))
    assert s.sample(st, T0 + timedelta(seconds=2)) == []  # new object: starts over
