"""Turn the merged state into one sample per series and period.

Counters are read from the :class:`bsr.model.State` objects: the typed
attributes events2 defines (``read``/``written`` KiB, ``al-writes``, ...)
and the bsr extension keys that carry every ABI statistic (kept by the model
in ``extra``; see :mod:`bsr.kevents` and docs/events2.md, e.g.
``write-ios``, ``local-lat-ns``, ``local-lat-hist``, ``repl-sent``).  Rates are counter
growth (:func:`bsr.model.counter_delta`, so a reset is not a negative rate)
divided by the time between two samples of the same object.

Latency (``ioclat``): the average is Δ(latency sum) / Δ(completed requests).
The kernel keeps log2 histograms of microseconds (bucket *i* holds
[2^i, 2^(i+1)) µs, bucket 0 is [0, 2), the last is open-ended); the
minimum of a period is the lower bound of the lowest bucket that grew, the
maximum the upper bound of the highest bucket that grew (the lower bound
for the open last bucket), both clamped so that min <= avg <= max.
"""

from __future__ import annotations

import operator
import os
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from bsr.abi import LAT_BUCKETS
from bsr.model import Connection, Device, PeerDevice, State, counter_delta

from bsrmon.series import SeriesKey

Values = tuple[float | int | None, ...]


def _int(obj: Any, key: str) -> int | None:
    v = obj.extra.get(key)
    if v is None:
        return None
    try:
        n = int(v, 10)
    except ValueError:
        return None
    return n if n >= 0 else None


def _ints(extra: dict[str, str], names: tuple[tuple[str, str], ...],
          out: dict[str, Any]) -> dict[str, Any]:
    """Counters from extension keys: ``out[name] = int(extra[key])`` (None
    when absent, negative or not a number)."""
    get = extra.get
    for name, key in names:
        v = get(key)
        if v is not None:
            try:
                n = int(v)
                v = n if n >= 0 else None
            except ValueError:
                v = None
        out[name] = v
    return out


_DEVICE_KEYS = (
    ("read_ios", "read-ios"), ("write_ios", "write-ios"), ("al_hits", "al-hits"),
    ("al_misses", "al-misses"), ("al_starving", "al-starving"),
    ("local_lat_ns", "local-lat-ns"), ("master_lat_ns", "master-lat-ns"),
    ("completed_ios", "completed-ios"), ("io_errors", "io-errors"), ("al_used", "al-used"),
)
_PEER_DEVICE_KEYS = (
    ("repl_sent_kib", "repl-sent"), ("rs_sent_kib", "rs-sent"), ("acked_ios", "acked-ios"),
    ("net_lat_ns", "net-lat-ns"),
)


@lru_cache(maxsize=4096)
def parse_hist(text: str | None) -> tuple[int, ...] | None:
    """``"0,3,17,..."`` -> bucket counts (None when absent or damaged)."""
    if not text:
        return None
    try:
        vals = tuple(map(int, text.split(",")))
    except ValueError:
        return None
    return vals if min(vals) >= 0 else None


def _counters_device(d: Device) -> dict[str, Any]:
    ex = d.extra
    return _ints(ex, _DEVICE_KEYS, {
        "read_kib": d.read_kib,
        "write_kib": d.written_kib,
        "al_writes": d.al_writes,
        "bm_writes": d.bm_writes,
        "local_hist": parse_hist(ex.get("local-lat-hist")),
        "master_hist": parse_hist(ex.get("master-lat-hist")),
        "upper_pending": d.upper_pending,
        "lower_pending": d.lower_pending,
    })


def _counters_peer_device(p: PeerDevice) -> dict[str, Any]:
    return _ints(p.extra, _PEER_DEVICE_KEYS, {
        "syncing": p.syncing,
        "sent_kib": p.sent_kib,
        "pending": p.pending,
        "unacked": p.unacked,
        "oos_kib": p.out_of_sync_kib,
    })


def _counters_connection(c: Connection,
                         peer_devices: Callable[[], Iterable[PeerDevice]]) -> dict[str, Any]:
    sent = _int(c, "sent-bytes")
    recv = _int(c, "recv-bytes")
    if sent is None or recv is None:
        # events2 without bsr keys: the peer devices' KiB counters
        pds = list(peer_devices())
        s_kib = [p.sent_kib for p in pds]
        r_kib = [p.received_kib for p in pds]
        if sent is None and s_kib and None not in s_kib:
            sent = 1024 * sum(s_kib)  # type: ignore[arg-type]
        if recv is None and r_kib and None not in r_kib:
            recv = 1024 * sum(r_kib)  # type: ignore[arg-type]
    sect = (lambda s: None if s is None else 512 * s)
    return {
        "sent_bytes": sent,
        "recv_bytes": recv,
        "sndbuf_fill": _int(c, "sndbuf-fill"),
        "sndbuf_size": _int(c, "sndbuf-size"),
        "ap_in_flight": sect(c.ap_in_flight_sectors),
        "rs_in_flight": sect(c.rs_in_flight_sectors),
    }


def _rate(prev: dict[str, Any], cur: dict[str, Any], key: str, dt: float,
          scale: float = 1.0) -> float | None:
    d = counter_delta(prev.get(key), cur.get(key))
    if d is None:
        return None
    return d * scale / dt


def _hist_delta(prev: tuple[int, ...] | None, cur: tuple[int, ...] | None) -> list[int] | None:
    if prev is None or cur is None or len(prev) != len(cur):
        return None
    if prev == cur:
        return [0] * len(cur)
    out = list(map(operator.sub, cur, prev))
    if min(out) < 0:  # reset: the new histogram is the growth
        return list(cur)
    return out


def hist_bounds(delta: list[int] | None) -> tuple[float | None, float | None]:
    """(min, max) µs of the requests counted in a histogram delta."""
    if not delta:
        return None, None
    grew = list(map(bool, delta))
    if True not in grew:
        return None, None
    lo = grew.index(True)
    grew.reverse()
    hi = len(grew) - 1 - grew.index(True)
    low = 0.0 if lo == 0 else float(1 << lo)
    high = float(1 << (hi + 1)) if hi < min(len(delta), LAT_BUCKETS) - 1 else float(1 << hi)
    return low, high


_LAT_KEYS = {w: (f"{w}_lat_ns", f"{w}_hist") for w in ("local", "master")}


def latency(prev: dict[str, Any], cur: dict[str, Any], which: str) -> Values:
    """(min, avg, max) µs of one latency kind over a period."""
    n = counter_delta(prev.get("completed_ios"), cur.get("completed_ios"))
    keys = _LAT_KEYS.get(which) or (f"{which}_lat_ns", f"{which}_hist")
    return _latency(n, prev, cur, *keys)


def _latency(n: int | None, prev: dict[str, Any], cur: dict[str, Any], sum_key: str,
             hist_key: str) -> Values:
    if n == 0:
        return 0.0, 0.0, 0.0
    s = counter_delta(prev.get(sum_key), cur.get(sum_key))
    avg = (s / n / 1000.0) if n and s is not None else None
    ph, ch = prev.get(hist_key), cur.get(hist_key)
    if ph is None or ch is None or ph == ch:  # nothing counted in the histogram
        lo = hi = None
    else:
        lo, hi = hist_bounds(_hist_delta(ph, ch))
    if avg is not None:
        lo = None if lo is None else min(lo, avg)
        hi = None if hi is None else max(hi, avg)
    return lo, avg, hi


def _interval(a: datetime, b: datetime) -> float:
    """Seconds between samples, rounded to the millisecond the files show,
    so that rate x dt_ms / 1000 gives back the exact counter growth."""
    return max(1, round((b - a).total_seconds() * 1000)) / 1000


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(0.0, a - b)


def _rates(p: dict[str, Any], cur: dict[str, Any], keys: tuple[str, ...],
           dt: float) -> list[float | None]:
    """:func:`_rate` of several counters at once (one call per object)."""
    out: list[float | None] = []
    add = out.append
    for key in keys:
        a = p.get(key)
        b = cur.get(key)
        if a is None or b is None:
            add(None)
        else:
            add((b if b < a else b - a) / dt)
    return out


_DEVICE_RATES = ("read_ios", "read_kib", "write_ios", "write_kib", "al_hits", "al_misses",
                 "al_starving", "al_writes", "bm_writes", "completed_ios", "io_errors")
_PEER_DEVICE_RATES = ("acked_ios", "repl_sent_kib", "rs_sent_kib")


@lru_cache(maxsize=16384)
def _device_keys(res: str, vol: int) -> dict[str, SeriesKey]:
    return {t: SeriesKey(t, res, vol, None)
            for t in ("io_pending", "iostat", "ioclat", "alstat", "reqstat")}


@lru_cache(maxsize=16384)
def _peer_device_keys(res: str, vol: int, peer: int) -> dict[str, SeriesKey]:
    return {t: SeriesKey(t, res, vol, peer) for t in ("peer_reqstat", "resync_ratio")}


@lru_cache(maxsize=16384)
def _connection_keys(res: str, peer: int) -> dict[str, SeriesKey]:
    return {t: SeriesKey(t, res, None, peer) for t in ("sendbuf", "network")}


# One object's counters, as the sampler takes them:
#   devices: ("d", key) -> (resource, volume, counters)
#   peer devices: ("p", key) -> (resource, volume, peer, counters)
#   connections: ("c", key) -> (resource, peer, counters)
ObjKey = tuple[str, tuple[str, ...]]


@dataclass
class Snapshot:
    """Every object's counters at one moment, whatever they were read from
    (:meth:`from_state`, or the kernel source's dump: :mod:`bsrmon.kfeed`)."""

    devices: dict[ObjKey, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    peer_devices: dict[ObjKey, tuple[str, int, int, dict[str, Any]]] = \
        field(default_factory=dict)
    connections: dict[ObjKey, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: State) -> "Snapshot":
        snap = cls()
        for key, d in state.devices.items():
            snap.devices[("d", key)] = (d.name, d.volume, _counters_device(d))
        for key, pd in state.peer_devices.items():
            snap.peer_devices[("p", key)] = (pd.name, pd.volume, pd.peer_node_id,
                                             _counters_peer_device(pd))
        for key, c in state.connections.items():
            cur = _counters_connection(
                c, lambda c=c: state.peer_devices_of(c.name, c.peer_node_id))
            snap.connections[("c", key)] = (c.name, c.peer_node_id, cur)
        return snap


@dataclass
class Sampler:
    """Keeps the previous counters of every object between periods."""

    types: tuple[str, ...]
    # object -> (time, counters) of its previous sample
    _prev: dict[ObjKey, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)

    def reset(self) -> None:
        self._prev.clear()

    def sample(self, state: State, t: datetime,
               module: dict[str, int] | None = None) -> list[tuple[SeriesKey, Values]]:
        return self.sample_snapshot(Snapshot.from_state(state), t, module)

    def sample_snapshot(self, snap: Snapshot, t: datetime,
                        module: dict[str, int] | None = None
                        ) -> list[tuple[SeriesKey, Values]]:
        out: list[tuple[SeriesKey, Values]] = []
        want = frozenset(self.types)
        old = self._prev
        new: dict[ObjKey, tuple[datetime, dict[str, Any]]] = {}
        dts: dict[datetime, float] = {}  # previous sample time -> interval

        def step(k: ObjKey, cur: dict[str, Any]) -> tuple[dict[str, Any], float] | None:
            new[k] = (t, cur)
            prev = old.get(k)
            if prev is None or prev[0] >= t:
                return None
            dt = dts.get(prev[0])
            if dt is None:
                dt = dts[prev[0]] = _interval(prev[0], t)
            return prev[1], dt

        for k, (res, vol, cur) in snap.devices.items():
            self._device(res, vol, step(k, cur), cur, want, out)
        for k, (res, vol, peer, cur) in snap.peer_devices.items():
            self._peer_device(res, vol, peer, step(k, cur), cur, want, out)
        for k, (res, peer, cur) in snap.connections.items():
            self._connection(res, peer, step(k, cur), cur, want, out)
        if "memstat" in want:
            out.append(self._memstat(module))
        self._prev = new  # objects not seen this time were destroyed
        return out

    @staticmethod
    def _device(res: str, vol: int, prev: tuple[dict[str, Any], float] | None,
                cur: dict[str, Any], want: frozenset[str],
                out: list[tuple[SeriesKey, Values]]) -> None:
        keys = _device_keys(res, vol)
        if "io_pending" in want:
            out.append((keys["io_pending"],
                        (cur["upper_pending"], cur["lower_pending"], cur["al_used"])))
        if prev is None:
            return
        p, dt = prev
        (r_ios, r_kib, w_ios, w_kib, hits, misses, starving, al_writes, bm_writes, completed,
         errors) = _rates(p, cur, _DEVICE_RATES, dt)
        ms = round(dt * 1000)
        if "iostat" in want:
            out.append((keys["iostat"], (ms, r_ios, r_kib, w_ios, w_kib)))
        n = counter_delta(p.get("completed_ios"), cur.get("completed_ios"))
        local = _latency(n, p, cur, "local_lat_ns", "local_hist")
        master = _latency(n, p, cur, "master_lat_ns", "master_hist")
        if "ioclat" in want:
            out.append((keys["ioclat"], (ms,) + local + master))
        if "alstat" in want:
            out.append((keys["alstat"], (
                ms, cur["al_used"], hits, misses, starving, al_writes, bm_writes)))
        if "reqstat" in want:
            out.append((keys["reqstat"], (
                ms, completed, local[1], master[1], _sub(master[1], local[1]), errors)))

    @staticmethod
    def _peer_device(res: str, vol: int, peer: int,
                     prev: tuple[dict[str, Any], float] | None,
                     cur: dict[str, Any], want: frozenset[str],
                     out: list[tuple[SeriesKey, Values]]) -> None:
        if prev is None:
            return
        keys = _peer_device_keys(res, vol, peer)
        p, dt = prev
        acked, repl, rs = _rates(p, cur, _PEER_DEVICE_RATES, dt)
        ms = round(dt * 1000)
        if "peer_reqstat" in want:
            n = counter_delta(p.get("acked_ios"), cur.get("acked_ios"))
            s = counter_delta(p.get("net_lat_ns"), cur.get("net_lat_ns"))
            avg = (s / n / 1000.0) if n and s is not None else (0.0 if n == 0 else None)
            out.append((keys["peer_reqstat"], (
                ms, acked, avg, cur.get("pending"), cur.get("unacked"))))
        if "resync_ratio" in want:
            if repl is None and rs is None:
                # plain events2: sent data is resync if a resync ran at either
                # end of the period, else replication
                total = _rate(p, cur, "sent_kib", dt)
                syncing = p.get("syncing") or cur["syncing"]
                repl, rs = (0.0, total) if syncing else (total, 0.0)
            both = (repl or 0.0) + (rs or 0.0)
            pct = (100.0 * (rs or 0.0) / both) if both > 0 else 0.0
            out.append((keys["resync_ratio"], (ms, repl, rs, pct, cur.get("oos_kib"))))

    @staticmethod
    def _connection(res: str, peer: int, prev: tuple[dict[str, Any], float] | None,
                    cur: dict[str, Any], want: frozenset[str],
                    out: list[tuple[SeriesKey, Values]]) -> None:
        keys = _connection_keys(res, peer)
        if "sendbuf" in want:
            out.append((keys["sendbuf"], (
                cur["sndbuf_fill"], cur["sndbuf_size"], cur["ap_in_flight"], cur["rs_in_flight"])))
        if prev is None or "network" not in want:
            return
        p, dt = prev
        sent, recv = _rates(p, cur, ("sent_bytes", "recv_bytes"), dt)
        out.append((keys["network"], (round(dt * 1000), sent, recv)))

    @staticmethod
    def _memstat(module: dict[str, int] | None) -> tuple[SeriesKey, Values]:
        m = module or {}
        return SeriesKey("memstat"), (
            m.get("requests_allocated"), m.get("peer_requests_allocated"),
            m.get("pages_allocated"), own_rss_kib())


def own_rss_kib() -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024
