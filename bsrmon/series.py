"""Series types, their files and their line format.

Layout under ``file-path`` (default ``/var/log/bsr``)::

    events.log                              state changes, events2 lines
    perfmon/<RES>/vnr<V>_<TYPE>             device series (iostat, ioclat, ...)
    perfmon/<RES>/vnr<V>_peer<N>_<TYPE>     peer-device series
    perfmon/<RES>/peer<N>_<TYPE>            connection series (network, sendbuf)
    perfmon/_global/<TYPE>                  module-wide series (memstat)

A series file starts with a header comment naming its columns and then has
one line per sample::

    # bsrmon 1 iostat r0 vnr=0
    # time dt_ms r_iops r_kibs w_iops w_kibs
    2026-11-21_06:34:32.123 1000 0 0 250 64000

``time`` is local time with milliseconds; ``dt_ms`` is the length of the
interval the per-second rates cover, so ``rate * dt_ms / 1000`` summed over
lines is exactly the counter growth.  A value that is not known is ``-``.
Rotated files get a ``.YYYYmmdd-HHMMSS`` suffix (plus ``.gz`` when
compressed); lines starting with ``#`` are comments wherever they appear.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from pathlib import Path
from typing import Iterator, NamedTuple

FORMAT_VERSION = 1
TIME_FMT = "%Y-%m-%d_%H:%M:%S"
GLOBAL_DIR = "_global"


@dataclass(frozen=True)
class Column:
    name: str
    unit: str  # "/s" marks a per-second rate (summable with dt_ms)
    doc: str = ""

    @property
    def is_rate(self) -> bool:
        return self.unit.endswith("/s")


@dataclass(frozen=True)
class SeriesType:
    name: str
    scope: str  # device | peer_device | connection | global
    columns: tuple[Column, ...]
    doc: str

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


C = Column
DT = C("dt_ms", "ms", "interval covered by the rates")

TYPES: dict[str, SeriesType] = {t.name: t for t in (
    SeriesType("iostat", "device", (
        DT, C("r_iops", "IO/s"), C("r_kibs", "KiB/s"), C("w_iops", "IO/s"), C("w_kibs", "KiB/s"),
    ), "application reads and writes on the bsr device"),
    SeriesType("ioclat", "device", (
        DT, C("local_min", "us"), C("local_avg", "us"), C("local_max", "us"),
        C("master_min", "us"), C("master_avg", "us"), C("master_max", "us"),
    ), "completion latency: local = backing disk, master = whole request incl. replication"),
    SeriesType("io_pending", "device", (
        C("upper_pending", "req"), C("lower_pending", "req"), C("al_used", "ext"),
    ), "requests in flight above and below bsr, active AL extents"),
    SeriesType("alstat", "device", (
        DT, C("al_used", "ext"), C("hits", "op/s"), C("misses", "op/s"), C("starving", "op/s"),
        C("al_writes", "op/s"), C("bm_writes", "op/s"),
    ), "activity log: hits, misses, writes that waited for a slot, metadata writes"),
    SeriesType("reqstat", "device", (
        DT, C("completed", "IO/s"), C("local_avg", "us"), C("master_avg", "us"),
        C("repl_extra", "us"), C("errors", "IO/s"),
    ), "request stages: backing disk time, total time, and what replication added"),
    SeriesType("peer_reqstat", "peer_device", (
        DT, C("acked", "IO/s"), C("net_avg", "us"), C("pending", "req"), C("unacked", "req"),
    ), "requests to one peer: acks, send-to-ack time, in flight"),
    SeriesType("resync_ratio", "peer_device", (
        DT, C("repl_kibs", "KiB/s"), C("resync_kibs", "KiB/s"), C("resync_pct", "%"),
        C("oos_kib", "KiB"),
    ), "replication vs resync traffic to one peer, out-of-sync amount"),
    SeriesType("network", "connection", (
        DT, C("send_bps", "B/s"), C("recv_bps", "B/s"),
    ), "bytes sent to and received from one peer"),
    SeriesType("sendbuf", "connection", (
        C("fill_bytes", "B"), C("size_bytes", "B"), C("ap_in_flight", "B"), C("rs_in_flight", "B"),
    ), "send buffer fill and data in flight to one peer"),
    SeriesType("memstat", "global", (
        C("requests", "obj"), C("peer_requests", "obj"), C("pages", "page"),
        C("bsrmon_rss_kib", "KiB"),
    ), "module allocations and bsrmon's own memory"),
)}


def sort_key(k: "SeriesKey") -> tuple[str, str, int, int]:
    return (k.resource, k.type, -1 if k.volume is None else k.volume,
            -1 if k.peer is None else k.peer)


class SeriesKey(NamedTuple):
    """Which file a sample goes to (a tuple: cheap to hash, sorts naturally)."""

    type: str
    resource: str = ""
    volume: int | None = None
    peer: int | None = None

    def relpath(self) -> str:
        return _relpath(self)

    def header(self) -> str:
        return _header(self)


@lru_cache(maxsize=65536)
def _relpath(key: SeriesKey) -> str:
    if not key.resource:
        return f"{GLOBAL_DIR}/{key.type}"
    parts = []
    if key.volume is not None:
        parts.append(f"vnr{key.volume}")
    if key.peer is not None:
        parts.append(f"peer{key.peer}")
    parts.append(key.type)
    return f"{key.resource}/" + "_".join(parts)


@lru_cache(maxsize=65536)
def _header(key: SeriesKey) -> str:
    t = TYPES[key.type]
    ident = [f"# bsrmon {FORMAT_VERSION} {key.type} {key.resource or '-'}"]
    if key.volume is not None:
        ident.append(f"vnr={key.volume}")
    if key.peer is not None:
        ident.append(f"peer={key.peer}")
    cols = " ".join(f"{c.name}[{c.unit}]" for c in t.columns)
    return " ".join(ident) + f"\n# time {cols}\n"


_NAME_RE = re.compile(r"^(?:vnr(\d+)_)?(?:peer(\d+)_)?([a-z_]+?)(?:\.\d{8}-\d{6}(?:-\d+)?(?:\.gz)?)?$")


def key_from_path(path: Path, perfmon: Path) -> SeriesKey | None:
    """The key of a series file (current or rotated), None if not one."""
    try:
        rel = path.relative_to(perfmon)
    except ValueError:
        return None
    if len(rel.parts) != 2:
        return None
    res, fname = rel.parts
    m = _NAME_RE.match(fname)
    if not m or m.group(3) not in TYPES:
        return None
    vol = int(m.group(1)) if m.group(1) is not None else None
    peer = int(m.group(2)) if m.group(2) is not None else None
    return SeriesKey(m.group(3), "" if res == GLOBAL_DIR else res, vol, peer)


def format_time(t: datetime) -> str:
    return t.strftime(TIME_FMT) + f".{t.microsecond // 1000:03d}"


def parse_time(s: str) -> datetime:
    base, _, ms = s.partition(".")
    t = datetime.strptime(base, TIME_FMT)
    return t.replace(microsecond=int(ms or 0) * 1000)


def format_line(t: datetime | str, values: tuple[float | int | None, ...]) -> str:
    """One data line; ``t`` may be given preformatted (one tick, many lines).
    Floats keep at most three decimals, integral values print as integers."""
    stamp = t if isinstance(t, str) else format_time(t)
    if not values:
        return stamp + "\n"
    return f"{stamp} {values_text(values)}\n"


def values_text(values: tuple[float | int | None, ...]) -> str:
    """The values of a line, as :func:`format_line` writes them."""
    try:
        return _values_text(values)
    except TypeError:  # a list, not a tuple: not hashable
        return _values_text.__wrapped__(tuple(values))


def _value_text(v: float | int | None) -> str:
    if v is None:
        return "-"
    if v.__class__ is int:
        return str(v)
    text = ("%.3f" % v).rstrip("0").rstrip(".")  # "%.3f" never has an exponent
    return "0" if text == "-0" else text


@lru_cache(maxsize=4096)
def _values_text(values: tuple[float | int | None, ...]) -> str:
    """The values of a line.  Cached: a quiet cluster repeats its lines (zero
    rates, constant fills) every period.  Tuples that compare equal print
    the same (1 == 1.0 == True all print ``1``; -0.0 prints ``0``)."""
    return " ".join([str(v) if v.__class__ is int else _value_text(v) for v in values])


@dataclass
class Sample:
    time: datetime
    values: tuple[float | None, ...]


def parse_line(line: str, ncols: int) -> Sample | None:
    """One data line; None for comments and damaged lines."""
    if not line or line.startswith("#") or not line.endswith("\n"):
        return None
    words = line.split()
    if len(words) != ncols + 1:
        return None
    try:
        t = parse_time(words[0])
        vals = tuple(None if w == "-" else float(w) for w in words[1:])
    except ValueError:
        return None
    return Sample(t, vals)


def series_files(perfmon: Path, key: SeriesKey) -> list[Path]:
    """Rotated files (oldest first) followed by the current file."""
    cur = perfmon / key.relpath()
    rotated = sorted(cur.parent.glob(cur.name + ".*")) if cur.parent.is_dir() else []
    rotated = [p for p in rotated if not p.name.endswith(".tmp")]
    return rotated + ([cur] if cur.exists() else [])


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", errors="replace")
    return open(path, "r", errors="replace")


def read_samples(perfmon: Path, key: SeriesKey) -> Iterator[Sample]:
    """Every sample of a series in file order (which is time order)."""
    ncols = len(TYPES[key.type].columns)
    for path in series_files(perfmon, key):
        try:
            with _open_text(path) as f:
                for line in f:
                    s = parse_line(line, ncols)
                    if s is not None:
                        yield s
        except (OSError, EOFError):
            continue


def list_keys(perfmon: Path) -> list[SeriesKey]:
    """Every series present on disk."""
    keys: set[SeriesKey] = set()
    if not perfmon.is_dir():
        return []
    for d in perfmon.iterdir():
        if not d.is_dir():
            continue
        for p in d.iterdir():
            k = key_from_path(p, perfmon)
            if k is not None:
                keys.add(k)
    return sorted(keys, key=sort_key)
