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


def _num(v: str | None) -> int | None:
    """An extension key's counter: None when absent, negative or not a number."""
    if v is None:
        return None
    try:
        n = int(v)
    except ValueError:
        return None
    return n if n >= 0 else None


def _int(obj: Any, key: str) -> int | None:
    return _num(obj.extra.get(key))


# An object's counters are a tuple in these orders (the sampler reads them
# by position).  A device's first DEVICE_RATES are the ones shown as rates.
DEVICE_FIELDS = (
    "read_ios", "read_kib", "write_ios", "write_kib", "al_hits", "al_misses",
    "al_starving", "al_writes", "bm_writes", "completed_ios", "io_errors",
    "local_lat_ns", "master_lat_ns", "local_hist", "master_hist",
    "upper_pending", "lower_pending", "al_used")
DEVICE_RATES = 11
PEER_DEVICE_FIELDS = (
    "acked_ios", "repl_sent_kib", "rs_sent_kib", "net_lat_ns", "sent_kib", "received_kib",
    "pending", "unacked", "oos_kib", "syncing")
CONNECTION_FIELDS = (
    "sent_bytes", "recv_bytes", "sndbuf_fill", "sndbuf_size", "ap_in_flight", "rs_in_flight")
# positions used by name
D_COMPLETED = 9
D_LOCAL_NS, D_MASTER_NS, D_LOCAL_HIST, D_MASTER_HIST, D_UPPER, D_LOWER, D_AL_USED = range(11, 18)
(P_ACKED, P_REPL, P_RS, P_NET_NS, P_SENT, P_RECEIVED, P_PENDING, P_UNACKED, P_OOS,
 P_SYNCING) = range(10)
C_SENT, C_RECV = 0, 1


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


def _nums(extra: dict[str, str], keys: tuple[str, ...]) -> list[int | None]:
    """:func:`_num` of several extension keys; one pass over them when all
    are there and are counters (events2 from bsr always has them)."""
    raw = list(map(extra.get, keys))
    try:
        vals = list(map(int, raw))  # type: ignore[arg-type]
        if min(vals) >= 0:
            return vals  # type: ignore[return-value]
    except (TypeError, ValueError):
        pass
    return list(map(_num, raw))


_DEVICE_EXTRA = ("read-ios", "write-ios", "al-hits", "al-misses", "al-starving",
                 "completed-ios", "io-errors", "local-lat-ns", "master-lat-ns", "al-used")
_PEER_DEVICE_EXTRA = ("acked-ios", "repl-sent", "rs-sent", "net-lat-ns")


def device_counters(d: Device) -> tuple[Any, ...]:
    """A device's counters in DEVICE_FIELDS order, from the State."""
    ex = d.extra
    (r_ios, w_ios, hits, misses, starving, completed, errors, local_ns, master_ns,
     used) = _nums(ex, _DEVICE_EXTRA)
    return (
        r_ios, d.read_kib, w_ios, d.written_kib, hits, misses, starving,
        d.al_writes, d.bm_writes, completed, errors, local_ns, master_ns,
        parse_hist(ex.get("local-lat-hist")), parse_hist(ex.get("master-lat-hist")),
        d.upper_pending, d.lower_pending, used)


def peer_device_counters(p: PeerDevice) -> tuple[Any, ...]:
    """A peer device's counters in PEER_DEVICE_FIELDS order, from the State."""
    return (*_nums(p.extra, _PEER_DEVICE_EXTRA), p.sent_kib, p.received_kib, p.pending,
            p.unacked, p.out_of_sync_kib, p.syncing)


def connection_counters(c: Connection,
                        peer_devices: Callable[[], Iterable[PeerDevice]]
                        ) -> tuple[Any, ...]:
    """A connection's counters in CONNECTION_FIELDS order, from the State."""
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
    ap, rs = c.ap_in_flight_sectors, c.rs_in_flight_sectors
    return (sent, recv, _int(c, "sndbuf-fill"), _int(c, "sndbuf-size"),
            None if ap is None else 512 * ap, None if rs is None else 512 * rs)


def _counters_device(d: Device) -> dict[str, Any]:
    return dict(zip(DEVICE_FIELDS, device_counters(d)))


def _counters_peer_device(p: PeerDevice) -> dict[str, Any]:
    return dict(zip(PEER_DEVICE_FIELDS, peer_device_counters(p)))


def _counters_connection(c: Connection,
                         peer_devices: Callable[[], Iterable[PeerDevice]]) -> dict[str, Any]:
    return dict(zip(CONNECTION_FIELDS, connection_counters(c, peer_devices)))


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
    return _lat(n, prev.get(sum_key), cur.get(sum_key), prev.get(hist_key), cur.get(hist_key))


def _lat(n: int | None, ps: int | None, cs: int | None, ph: tuple[int, ...] | None,
         ch: tuple[int, ...] | None) -> Values:
    """(min, avg, max) µs from the completions ``n``, the latency sums and
    the histograms at both ends of a period."""
    if n == 0:
        return 0.0, 0.0, 0.0
    if ps is None or cs is None or not n:
        avg = None
    else:
        avg = (cs if cs < ps else cs - ps) / n / 1000.0
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


def _delta(a: int | None, b: int | None) -> int | None:
    """:func:`bsr.model.counter_delta` inline."""
    if a is None or b is None:
        return None
    return b if b < a else b - a


# What a series line goes to: (key, file relative to the root, header of a
# new file), made once per object by the ``dest`` the Sampler is given.
Out = tuple[SeriesKey, str, str]
Row = tuple[Out, Values]
DEVICE_TYPES = ("io_pending", "iostat", "ioclat", "alstat", "reqstat")
PEER_DEVICE_TYPES = ("peer_reqstat", "resync_ratio")
CONNECTION_TYPES = ("sendbuf", "network")


def _no_dest(key: SeriesKey) -> tuple[str, str]:
    return "", ""


# One object's counters, as the sampler takes them:
#   devices: ("d", key) -> (resource, volume, DEVICE_FIELDS tuple)
#   peer devices: ("p", key) -> (resource, volume, peer, PEER_DEVICE_FIELDS tuple)
#   connections: ("c", key) -> (resource, peer, CONNECTION_FIELDS tuple)
ObjKey = tuple[str, tuple[str, ...]]


@dataclass
class Snapshot:
    """Every object's counters at one moment, whatever they were read from
    (:meth:`from_state`, or the kernel source's dump: :mod:`bsrmon.kfeed`)."""

    devices: dict[ObjKey, tuple[str, int, tuple[Any, ...]]] = field(default_factory=dict)
    peer_devices: dict[ObjKey, tuple[str, int, int, tuple[Any, ...]]] = \
        field(default_factory=dict)
    connections: dict[ObjKey, tuple[str, int, tuple[Any, ...]]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: State) -> "Snapshot":
        snap = cls()
        for key, d in state.devices.items():
            snap.devices[("d", key)] = (d.name, d.volume, device_counters(d))
        for key, pd in state.peer_devices.items():
            snap.peer_devices[("p", key)] = (pd.name, pd.volume, pd.peer_node_id,
                                             peer_device_counters(pd))
        for key, c in state.connections.items():
            cur = connection_counters(
                c, lambda c=c: state.peer_devices_of(c.name, c.peer_node_id))
            snap.connections[("c", key)] = (c.name, c.peer_node_id, cur)
        return snap


@dataclass
class Sampler:
    """Keeps the previous counters of every object between periods.

    ``dest`` names a series' file and header (the collector's); it is asked
    once per series while the object lives, as are its keys."""

    types: tuple[str, ...]
    dest: Callable[[SeriesKey], tuple[str, str]] = _no_dest
    # object -> (time, counters) of its previous sample
    _prev: dict[ObjKey, tuple[datetime, tuple[Any, ...]]] = field(default_factory=dict)
    # object -> its series (None where the type is not sampled), for _outs_types
    _outs: dict[ObjKey, tuple[Out | None, ...]] = field(default_factory=dict)
    _outs_types: tuple[str, ...] = ()

    def reset(self) -> None:
        self._prev.clear()

    def sample(self, state: State, t: datetime,
               module: dict[str, int] | None = None) -> list[tuple[SeriesKey, Values]]:
        return self.sample_snapshot(Snapshot.from_state(state), t, module)

    def sample_snapshot(self, snap: Snapshot, t: datetime,
                        module: dict[str, int] | None = None
                        ) -> list[tuple[SeriesKey, Values]]:
        return [(o[0], v) for o, v in self.rows(snap, t, module)]

    def _series(self, types: tuple[str, ...], res: str, vol: int | None,
                peer: int | None) -> tuple[Out | None, ...]:
        want = self.types
        dest = self.dest
        out: list[Out | None] = []
        for name in types:
            if name in want:
                key = SeriesKey(name, res, vol, peer)
                out.append((key, *dest(key)))
            else:
                out.append(None)
        return tuple(out)

    def rows(self, snap: Snapshot, t: datetime,
             module: dict[str, int] | None = None) -> list[Row]:
        """One row per series: where it goes and its values."""
        out: list[Row] = []
        old = self._prev
        new: dict[ObjKey, tuple[datetime, tuple[Any, ...]]] = {}
        if self._outs_types != self.types:
            self._outs = {}
            self._outs_types = self.types
        outs = self._outs
        dts: dict[datetime, float] = {}  # previous sample time -> interval
        series = self._series
        for k, (res, vol, cur) in snap.devices.items():
            new[k] = (t, cur)
            o = outs.get(k)
            if o is None:
                o = outs[k] = series(DEVICE_TYPES, res, vol, None)
            prev = old.get(k)
            if prev is None or prev[0] >= t:
                if o[0] is not None:
                    out.append((o[0], (cur[D_UPPER], cur[D_LOWER], cur[D_AL_USED])))
                continue
            dt = dts.get(prev[0])
            if dt is None:
                dt = dts[prev[0]] = _interval(prev[0], t)
            _device(o, prev[1], cur, dt, out)
        for k, (res, vol, peer, cur) in snap.peer_devices.items():
            new[k] = (t, cur)
            prev = old.get(k)
            if prev is None or prev[0] >= t:
                continue
            o = outs.get(k)
            if o is None:
                o = outs[k] = series(PEER_DEVICE_TYPES, res, vol, peer)
            dt = dts.get(prev[0])
            if dt is None:
                dt = dts[prev[0]] = _interval(prev[0], t)
            _peer_device(o, prev[1], cur, dt, out)
        for k, (res, peer, cur) in snap.connections.items():
            new[k] = (t, cur)
            o = outs.get(k)
            if o is None:
                o = outs[k] = series(CONNECTION_TYPES, res, None, peer)
            if o[0] is not None:
                out.append((o[0], cur[2:6]))
            prev = old.get(k)
            if prev is None or prev[0] >= t or o[1] is None:
                continue
            dt = dts.get(prev[0])
            if dt is None:
                dt = dts[prev[0]] = _interval(prev[0], t)
            p = prev[1]
            out.append((o[1], (round(dt * 1000),
                               None if p[0] is None or cur[0] is None else
                               (cur[0] if cur[0] < p[0] else cur[0] - p[0]) / dt,
                               None if p[1] is None or cur[1] is None else
                               (cur[1] if cur[1] < p[1] else cur[1] - p[1]) / dt)))
        if "memstat" in self.types:
            o = outs.get(_MODULE)
            if o is None:
                o = outs[_MODULE] = series(("memstat",), "", None, None)
            out.append((o[0], self._memstat(module)))  # type: ignore[arg-type]
        if len(outs) > 2 * len(new) + 16:  # objects gone: forget their series
            self._outs = {k: v for k, v in outs.items() if k in new or k == _MODULE}
        self._prev = new  # objects not seen this time were destroyed
        return out

    @staticmethod
    def _memstat(module: dict[str, int] | None) -> Values:
        m = module or {}
        return (m.get("requests_allocated"), m.get("peer_requests_allocated"),
                m.get("pages_allocated"), own_rss_kib())


_MODULE: ObjKey = ("m", ())


def _device(o: tuple[Out | None, ...], p: tuple[Any, ...], cur: tuple[Any, ...], dt: float,
            out: list[Row]) -> None:
    """The rows of a device sampled before (o: its DEVICE_TYPES series)."""
    pending, iostat, ioclat, alstat, reqstat = o
    if pending is not None:
        out.append((pending, (cur[D_UPPER], cur[D_LOWER], cur[D_AL_USED])))
    (r_ios, r_kib, w_ios, w_kib, hits, misses, starving, al_writes, bm_writes, completed,
     errors) = [None if a is None or b is None else (b if b < a else b - a) / dt
                for a, b in zip(p[:DEVICE_RATES], cur[:DEVICE_RATES])]
    ms = round(dt * 1000)
    if iostat is not None:
        out.append((iostat, (ms, r_ios, r_kib, w_ios, w_kib)))
    n = _delta(p[D_COMPLETED], cur[D_COMPLETED])
    local = _lat(n, p[D_LOCAL_NS], cur[D_LOCAL_NS], p[D_LOCAL_HIST], cur[D_LOCAL_HIST])
    master = _lat(n, p[D_MASTER_NS], cur[D_MASTER_NS], p[D_MASTER_HIST], cur[D_MASTER_HIST])
    if ioclat is not None:
        out.append((ioclat, (ms,) + local + master))
    if alstat is not None:
        out.append((alstat, (ms, cur[D_AL_USED], hits, misses, starving, al_writes, bm_writes)))
    if reqstat is not None:
        out.append((reqstat, (ms, completed, local[1], master[1], _sub(master[1], local[1]),
                              errors)))


def _peer_device(o: tuple[Out | None, ...], p: tuple[Any, ...], cur: tuple[Any, ...],
                 dt: float, out: list[Row]) -> None:
    """The rows of a peer device sampled before (o: its PEER_DEVICE_TYPES series)."""
    reqstat, ratio = o
    acked, repl, rs = [None if a is None or b is None else (b if b < a else b - a) / dt
                       for a, b in zip(p[:3], cur[:3])]
    ms = round(dt * 1000)
    if reqstat is not None:
        n = _delta(p[P_ACKED], cur[P_ACKED])
        s = _delta(p[P_NET_NS], cur[P_NET_NS])
        avg = (s / n / 1000.0) if n and s is not None else (0.0 if n == 0 else None)
        out.append((reqstat, (ms, acked, avg, cur[P_PENDING], cur[P_UNACKED])))
    if ratio is not None:
        if repl is None and rs is None:
            # plain events2: sent data is resync if a resync ran at either
            # end of the period, else replication
            a, b = p[P_SENT], cur[P_SENT]
            total = None if a is None or b is None else (b if b < a else b - a) / dt
            repl, rs = (0.0, total) if p[P_SYNCING] or cur[P_SYNCING] else (total, 0.0)
        both = (repl or 0.0) + (rs or 0.0)
        pct = (100.0 * (rs or 0.0) / both) if both > 0 else 0.0
        out.append((ratio, (ms, repl, rs, pct, cur[P_OOS])))


def own_rss_kib() -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024
