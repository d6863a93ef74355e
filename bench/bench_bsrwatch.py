#!/usr/bin/env python3
"""bsrwatch scale benchmark: 1000 resources x 2 peers, 10 000 events/s.

1. parser: events2 lines through bsr.events2.parse_line alone, and through
   the whole store (parse + State merge + rates + change log) — lines/s;
2. view: time to build the overview view model for all resources;
3. UI: the Textual app headless at 160x50, fed 10 000 events/s for a few
   seconds; counts redraws per second (the refresh is throttled to 5/s, so
   5 fps is the ceiling by design) and the time each redraw takes.

Run: .venv/bin/python bench/bench_bsrwatch.py [--resources N] [--rate EPS] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from datetime import datetime, timedelta, timezone

from bsr.events2 import parse_line
from bsrwatch.app import BsrWatchApp
from bsrwatch.settings import Settings
from bsrwatch.store import Store
from bsrwatch.view import build_overview

T0 = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)


def dump(n: int) -> list[str]:
    out = []
    for r in range(n):
        name = f"res{r:04d}"
        out.append(f"exists resource name:{name} role:Secondary suspended:no write-ordering:flush")
        out.append(f"exists device name:{name} volume:0 minor:{r} disk:UpToDate client:no "
                   f"quorum:yes size:1048576 read:0 written:0 al-writes:0 bm-writes:0 "
                   f"upper-pending:0 lower-pending:0 al-suspended:no blocked:no")
        for p in (1, 2):
            c = f"name:{name} peer-node-id:{p} conn-name:node{p}"
            out.append(f"exists connection {c} connection:Connected role:Secondary "
                       f"congested:no ap-in-flight:0 rs-in-flight:0")
            out.append(f"exists peer-device {c} volume:0 replication:Established "
                       f"peer-disk:UpToDate peer-client:no resync-suspended:no received:0 "
                       f"sent:0 out-of-sync:0 pending:0 unacked:0")
    out.append("exists -")
    return out


def changes(n_res: int, count: int, start: int, rng: random.Random) -> list[str]:
    """``count`` change lines, timestamps 100 us apart (10 000 events/s)."""
    out = []
    for i in range(count):
        k = start + i
        ts = (T0 + timedelta(microseconds=100 * k)).isoformat(timespec="microseconds")
        name = f"res{rng.randrange(n_res):04d}"
        p = 1 + (k & 1)
        pick = k % 10
        if pick < 5:
            out.append(f"{ts} change device name:{name} volume:0 minor:0 read:{k * 4} "
                       f"written:{k * 8} al-writes:{k // 16}")
        elif pick < 9:
            oos = max(1048576 - k, 0)
            out.append(f"{ts} change peer-device name:{name} peer-node-id:{p} "
                       f"conn-name:node{p} volume:0 sent:{k * 8} received:{k} "
                       f"out-of-sync:{oos} pending:{k % 7} unacked:{k % 5}")
        else:
            repl = rng.choice(["SyncSource", "Established", "Ahead", "Established"])
            out.append(f"{ts} change peer-device name:{name} peer-node-id:{p} "
                       f"conn-name:node{p} volume:0 replication:{repl}")
    return out


def bench_parser(n_res: int, n_lines: int) -> tuple[float, float]:
    rng = random.Random(7)
    lines = dump(n_res) + changes(n_res, n_lines, 0, rng)
    # CPU time, not wall time: the figure must not depend on what else the
    # (shared) machine is doing while the benchmark runs
    t = time.process_time()
    for line in lines:
        parse_line(line)
    parse_only = len(lines) / (time.process_time() - t)
    store = Store()
    t = time.process_time()
    for line in lines:
        store.feed_line(line)
    full = len(lines) / (time.process_time() - t)
    return parse_only, full


def bench_view(n_res: int) -> float:
    store = Store()
    for line in dump(n_res) + changes(n_res, 20000, 0, random.Random(3)):
        store.feed_line(line)
    t = time.process_time()
    runs = 5
    for _ in range(runs):
        build_overview(store)
    return (time.process_time() - t) / runs


class FloodSource:
    """The dump, then ``rate`` change lines a second in 20 ms batches."""

    can_act = False
    description = "benchmark flood"

    def __init__(self, n_res: int, rate: int) -> None:
        self.n_res, self.rate = n_res, rate
        self.fed = 0

    async def run(self, sink) -> None:
        sink.set_status("benchmark flood", ok=True)
        for line in dump(self.n_res):
            sink.feed_line(line)
        rng = random.Random(11)
        batch = self.rate // 50
        start = time.monotonic()
        while True:
            for line in changes(self.n_res, batch, self.fed, rng):
                sink.feed_line(line)
            self.fed += batch
            due = start + self.fed / self.rate
            await asyncio.sleep(max(due - time.monotonic(), 0))


async def bench_ui(n_res: int, rate: int, seconds: float) -> dict[str, float]:
    src = FloodSource(n_res, rate)
    app = BsrWatchApp(src, Settings(refresh=0.2))
    frame_times: list[float] = []
    orig = app.refresh_view

    def timed(force: bool = False) -> None:
        t = time.process_time()
        before = app.redraws
        orig(force)
        if app.redraws != before:
            frame_times.append(time.process_time() - t)
    app.refresh_view = timed  # type: ignore[method-assign]
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(1.0)  # dump and warm-up
        r0, f0, t0, c0 = app.redraws, src.fed, time.monotonic(), time.process_time()
        await pilot.pause(seconds)
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - c0
        await pilot.press("pagedown", "pagedown")  # still answers keys under the flood
        fps = (app.redraws - r0) / elapsed
        eps = (src.fed - f0) / elapsed
    frame_times.sort()
    return {"fps": fps, "events_per_s": eps, "cpu_share": cpu / elapsed,
            "frame_ms_median": 1000 * frame_times[len(frame_times) // 2] if frame_times else 0,
            "frame_ms_max": 1000 * frame_times[-1] if frame_times else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=10000, help="events per second for the UI run")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--lines", type=int, default=100000, help="change lines for the parser run")
    a = ap.parse_args()
    parse_only, full = bench_parser(a.resources, a.lines)
    print(f"parser: parse_line {parse_only:,.0f} lines/s; parse+store {full:,.0f} lines/s "
          f"({a.resources} resources x 2 peers)")
    print(f"view model: {1000 * bench_view(a.resources):.1f} ms per overview build")
    ui = asyncio.run(bench_ui(a.resources, a.rate, a.seconds))
    print(f"ui: {ui['fps']:.2f} redraws/s (throttle ceiling 5) while fed "
          f"{ui['events_per_s']:,.0f} events/s, using {100 * ui['cpu_share']:.0f}% of one CPU; "
          f"redraw CPU median {ui['frame_ms_median']:.0f} ms, max {ui['frame_ms_max']:.0f} ms")
    frame_s = ui["frame_ms_median"] / 1000
    ingest = a.rate / full  # CPU share needed to merge the flood
    if frame_s > 0:
        print(f"projected on one free CPU: {a.rate:,} events/s take {100 * ingest:.0f}% of it; "
              f"redraw capacity {(1 - ingest) / frame_s:.1f} fps (bsrwatch draws at most 5)")
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs (wall-clock rates drop when the machine is shared)")


if __name__ == "__main__":
    main()
