"""Reading the series back: ``report`` (min/avg/max over a time range),
``watch`` (live tail in human units) and the file fallback of ``show``.

Arithmetic of ``report``: over the samples whose time lies in
[from, to] (both inclusive), ``min``/``max`` are the extremes and ``avg``
the arithmetic mean of the lines' values (``-`` values are left out).  For
per-second rate columns ``total`` is Σ value × dt_ms / 1000, the amount
the counter grew in the range (e.g. KiB written).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, TextIO

from bsrmon.series import (
    TYPES, Sample, SeriesKey, format_time, list_keys, parse_line, read_samples,
)


class ReportError(ValueError):
    pass


def parse_when(s: str, day: date | None = None, *, end: bool = False) -> datetime:
    """``2026-11-21_06:30[:00[.000]]``, ``2026-11-21 06:30``, ``06:30[:00]``
    (on ``day`` or today) or ``2026-11-21`` (start of the day; with
    ``end`` the end of that day)."""
    s = s.strip().replace("T", "_").replace(" ", "_")
    try:
        if len(s) == 10 and s[4] == "-":
            d = datetime.strptime(s, "%Y-%m-%d")
            return d + timedelta(days=1, microseconds=-1) if end else d
        if "_" in s:
            dpart, tpart = s.split("_", 1)
            base = datetime.strptime(dpart, "%Y-%m-%d").date()
        else:
            tpart, base = s, day or date.today()
        main, _, ms = tpart.partition(".")
        fmt = "%H:%M:%S" if main.count(":") == 2 else "%H:%M"
        t = datetime.strptime(main, fmt).time()
        out = datetime.combine(base, t).replace(microsecond=int((ms + "000")[:3]) * 1000)
        if end and fmt == "%H:%M" and not ms:
            out += timedelta(seconds=59, microseconds=999000)
        return out
    except ValueError:
        raise ReportError(f"cannot read the time {s!r} (use YYYY-MM-DD_HH:MM[:SS] or HH:MM[:SS])") \
            from None


@dataclass
class ColumnStats:
    name: str
    unit: str
    count: int
    min: float | None
    avg: float | None
    max: float | None
    total: float | None


@dataclass
class SeriesReport:
    key: SeriesKey
    first: datetime | None
    last: datetime | None
    samples: int
    columns: list[ColumnStats]


def summarize(key: SeriesKey, samples: Iterable[Sample], start: datetime | None = None,
              stop: datetime | None = None) -> SeriesReport:
    cols = TYPES[key.type].columns
    n = len(cols)
    vals: list[list[float]] = [[] for _ in range(n)]
    totals: list[float] = [0.0] * n
    dt_idx = next((i for i, c in enumerate(cols) if c.name == "dt_ms"), None)
    first = last = None
    count = 0
    for s in samples:
        if (start is not None and s.time < start) or (stop is not None and s.time > stop):
            continue
        count += 1
        first = s.time if first is None else first
        last = s.time
        dt = s.values[dt_idx] if dt_idx is not None else None
        for i, v in enumerate(s.values):
            if v is None:
                continue
            vals[i].append(v)
            if cols[i].is_rate and dt is not None:
                totals[i] += v * dt / 1000.0
    stats = []
    for i, c in enumerate(cols):
        v = vals[i]
        stats.append(ColumnStats(
            c.name, c.unit, len(v),
            min(v) if v else None, sum(v) / len(v) if v else None, max(v) if v else None,
            totals[i] if c.is_rate and dt_idx is not None and v else None))
    return SeriesReport(key, first, last, count, stats)


def matching_keys(perfmon: Path, type_: str, resource: str | None = None,
                  volume: int | None = None, peer: int | None = None) -> list[SeriesKey]:
    if type_ not in TYPES:
        raise ReportError(f"unknown type {type_!r}; known: {', '.join(TYPES)}")
    return [k for k in list_keys(perfmon)
            if k.type == type_ and (resource is None or k.resource == resource)
            and (volume is None or k.volume == volume) and (peer is None or k.peer == peer)]


def report(perfmon: Path, type_: str, resource: str | None = None, volume: int | None = None,
           peer: int | None = None, start: datetime | None = None,
           stop: datetime | None = None) -> list[SeriesReport]:
    return [summarize(k, read_samples(perfmon, k), start, stop)
            for k in matching_keys(perfmon, type_, resource, volume, peer)]


def key_label(k: SeriesKey) -> str:
    parts = [k.type, k.resource or "(module)"]
    if k.volume is not None:
        parts.append(f"vnr{k.volume}")
    if k.peer is not None:
        parts.append(f"peer{k.peer}")
    return " ".join(parts)


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.2f}"


def format_report(reports: list[SeriesReport]) -> str:
    out: list[str] = []
    for r in reports:
        span = "no samples in range" if r.first is None else \
            f"{format_time(r.first)} .. {format_time(r.last)}, {r.samples} samples"  # type: ignore[arg-type]
        out.append(f"{key_label(r.key)}: {span}")
        if r.first is None:
            continue
        out.append(f"  {'column':<14} {'unit':<6} {'min':>12} {'avg':>12} {'max':>12} {'total':>14}")
        for c in r.columns:
            if c.name == "dt_ms":
                continue
            out.append(f"  {c.name:<14} {c.unit:<6} {_num(c.min):>12} {_num(c.avg):>12} "
                       f"{_num(c.max):>12} {_num(c.total):>14}")
    return "\n".join(out) + ("\n" if out else "")


def report_json(reports: list[SeriesReport]) -> list[dict]:
    return [{
        "type": r.key.type, "resource": r.key.resource, "volume": r.key.volume,
        "peer": r.key.peer, "samples": r.samples,
        "from": r.first.isoformat(timespec="milliseconds") if r.first else None,
        "to": r.last.isoformat(timespec="milliseconds") if r.last else None,
        "columns": {c.name: {"unit": c.unit, "min": c.min, "avg": c.avg, "max": c.max,
                             "total": c.total} for c in r.columns},
    } for r in reports]


# -- human units ------------------------------------------------------------

_BIN = ("", "Ki", "Mi", "Gi", "Ti", "Pi")


def human(v: float | None, unit: str) -> str:
    """A value with a readable unit: 65536 KiB/s -> '64.0 MiB/s'."""
    if v is None:
        return "-"
    if unit in ("B", "B/s", "KiB", "KiB/s"):
        per = "/s" if unit.endswith("/s") else ""
        x = v * (1024 if unit.startswith("KiB") else 1)
        i = 0
        while abs(x) >= 1024 and i < len(_BIN) - 1:
            x /= 1024
            i += 1
        return f"{x:.0f} B{per}" if i == 0 else f"{x:.1f} {_BIN[i]}B{per}"
    if unit == "us":
        if v >= 1e6:
            return f"{v / 1e6:.2f} s"
        if v >= 1000:
            return f"{v / 1000:.2f} ms"
        return f"{v:.0f} us"
    if unit == "ms":
        return f"{v:.0f} ms"
    if unit == "%":
        return f"{v:.1f} %"
    if v == int(v):
        return f"{int(v)} {unit}"
    return f"{v:.1f} {unit}"


def watch_header(key: SeriesKey) -> str:
    cols = [c.name for c in TYPES[key.type].columns if c.name != "dt_ms"]
    return f"{'time':<23} " + " ".join(f"{c:>14}" for c in cols)


def watch_line(key: SeriesKey, s: Sample) -> str:
    cols = TYPES[key.type].columns
    vals = [human(v, c.unit) for c, v in zip(cols, s.values) if c.name != "dt_ms"]
    return f"{format_time(s.time):<23} " + " ".join(f"{v:>14}" for v in vals)


def watch(path: Path, key: SeriesKey, out: TextIO, *, interval: float = 0.5,
          count: int | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Follow a series file (across rotations), printing each new sample."""
    ncols = len(TYPES[key.type].columns)
    out.write(watch_header(key) + "\n")
    out.flush()
    shown = 0
    f = None
    ino = None
    buf = ""
    while count is None or shown < count:
        if f is None:
            try:
                f = open(path, "r", errors="replace")
            except FileNotFoundError:
                sleep(interval)
                continue
            ino = os.fstat(f.fileno()).st_ino
            last = _last_line(f)
            if last is not None and (s := parse_line(last, ncols)) is not None:
                out.write(watch_line(key, s) + "\n")
                shown += 1
            f.seek(0, os.SEEK_END)
            continue
        chunk = f.read()
        if chunk:
            buf += chunk
            *lines, buf = buf.split("\n")
            for line in lines:
                s = parse_line(line + "\n", ncols)
                if s is not None and (count is None or shown < count):
                    out.write(watch_line(key, s) + "\n")
                    shown += 1
            out.flush()
            continue
        try:
            st = os.stat(path)
            if st.st_ino != ino or st.st_size < f.tell():
                f.close()
                f = open(path, "r", errors="replace")  # rotated: read the new file from the top
                ino = os.fstat(f.fileno()).st_ino
                buf = ""
                continue
        except FileNotFoundError:
            pass
        sleep(interval)
    if f is not None:
        f.close()
    return 0


def _last_line(f: TextIO) -> str | None:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 8192))
    lines = [ln for ln in f.read().splitlines(keepends=True) if not ln.startswith("#")]
    return lines[-1] if lines and lines[-1].endswith("\n") else None


def latest_from_files(perfmon: Path) -> list[dict]:
    """``show`` without a daemon: the last sample of every current file."""
    out = []
    for k in list_keys(perfmon):
        p = perfmon / k.relpath()
        try:
            with open(p, "r", errors="replace") as f:
                last = _last_line(f)
        except OSError:
            continue
        s = parse_line(last, len(TYPES[k.type].columns)) if last else None
        if s is None:
            continue
        out.append({"type": k.type, "resource": k.resource, "volume": k.volume, "peer": k.peer,
                    "time": s.time.isoformat(timespec="milliseconds"),
                    "values": {c.name: v for c, v in zip(TYPES[k.type].columns, s.values)}})
    return out


def format_show(samples: list[dict]) -> str:
    out = []
    for s in samples:
        key = SeriesKey(s["type"], s["resource"], s["volume"], s["peer"])
        cols = TYPES[key.type].columns
        vals = " ".join(f"{c.name}={human(s['values'].get(c.name), c.unit).replace(' ', '')}"
                        for c in cols if c.name != "dt_ms")
        out.append(f"{key_label(key)} {s['time']} {vals}")
    return "\n".join(out) + ("\n" if out else "")
