"""The kernel source's messages on the collector's thread, without an event
per object and period.

The kernel source re-reads every object once a period.  Turning each reply
into an events2 :class:`~bsr.model.Event` (strings), merging it into the
:class:`~bsr.model.State` and reading the counters back out of it cost more
than everything else bsrmon does.  :class:`KernelFeed` instead:

* converts a reply into an event only when the object's state part (its
  ``*_info`` struct, the minor, its ``ctx``) differs from the last message
  seen for it, or while it resyncs or verifies (``done``/``eta`` need every
  sample): that event goes through the collector as before, so
  ``events.log`` is unchanged;
* takes the counters the sampler needs straight from the decoded
  ``*_stats`` structs, as tuples in the sampler's field order (one
  ``itemgetter`` call per struct when it has every statistic, as bsr.ko's
  always do), with the same defaults and units as :mod:`bsr.kevents` +
  :mod:`bsr.model` give them;
* keeps the other replies of the last poll and converts them into the State
  only when someone reads it (:meth:`KernelFeed.settle`: Prometheus,
  ``bsrmon status``).

Notifications and the initial dump are converted as they come, by the one
:class:`~bsr.kevents.Converter` of the stream (sequence gaps and resync
history stay exact).  tests/unit/test_bsrmon_kfeed.py checks that files,
events and the settled State equal the event path's.
"""

from __future__ import annotations

import operator
import struct
from typing import TYPE_CHECKING, Any

from bsr import abi
from bsr.kevents import Converter
from bsr.model import Event, Kind, Verb
from bsr.netlink import Message

from bsrmon.sampler import C_RECV, C_SENT, P_RECEIVED, P_SENT, Snapshot

if TYPE_CHECKING:
    from bsrmon.collector import Collector, KernelMessages, KernelPoll

# command -> (kind, struct holding its state, struct holding its counters)
_SPECS: dict[str, tuple[Kind, str, str]] = {
    "EV_RESOURCE": (Kind.resource, "res_info", "res_stats"),
    "EV_DEVICE": (Kind.device, "device_info", "device_stats"),
    "EV_CONNECTION": (Kind.connection, "conn_info", "conn_stats"),
    "EV_PEER_DEVICE": (Kind.peer_device, "peer_device_info", "peer_device_stats"),
    "EV_PATH": (Kind.path, "path_info", ""),
}
_SYNCING = frozenset(int(s) for s in (
    abi.ReplState.SyncSource, abi.ReplState.SyncTarget, abi.ReplState.PausedSyncS,
    abi.ReplState.PausedSyncT, abi.ReplState.VerifyS, abi.ReplState.VerifyT))
_EMPTY: dict[str, Any] = {}
_U64S: dict[int, Any] = {}

def _hist(blob: Any) -> tuple[int, ...] | None:
    """A latency histogram blob as bucket counts (what bsr.kevents prints and
    bsrmon.sampler.parse_hist reads back)."""
    if not blob:
        return None
    n = len(blob) // 8
    if not n:
        return None
    reader = _U64S.get(n)
    if reader is None:
        reader = _U64S[n] = struct.Struct(f"={n}Q").unpack_from
    return reader(blob)


def _kib(v: Any) -> int:
    return int(v or 0) // 2


# The statistics a device's counters come from, in DEVICE_FIELDS order:
# read at once when the struct has all of them (it always has, from bsr.ko).
_DEVICE_STATS = operator.itemgetter(
    "read_ios", "read_sectors", "write_ios", "write_sectors", "al_hits", "al_misses",
    "al_starving", "al_writes", "bm_writes", "completed_ios", "io_errors", "local_lat_ns",
    "master_lat_ns", "local_lat_hist", "master_lat_hist", "upper_pending", "lower_pending",
    "al_used")
_PEER_DEVICE_STATS = operator.itemgetter(
    "acked_ios", "repl_sent_sectors", "rs_sent_sectors", "net_lat_ns", "sent_sectors",
    "received_sectors", "pending", "unacked", "out_of_sync")
_CONNECTION_STATS = operator.itemgetter(
    "sent_bytes", "recv_bytes", "sndbuf_fill", "sndbuf_size", "ap_in_flight", "rs_in_flight")
_INTS = frozenset((int,))


def _device(s: dict[str, Any]) -> tuple[Any, ...]:
    """A device's counters (bsrmon.sampler.DEVICE_FIELDS) from device_stats."""
    try:
        (r_ios, r_sec, w_ios, w_sec, hits, misses, starving, al_w, bm_w, completed, errors,
         local_ns, master_ns, local_h, master_h, upper, lower, used) = _DEVICE_STATS(s)
    except KeyError:
        return _device_partial(s)
    if {r_sec.__class__, w_sec.__class__, al_w.__class__, bm_w.__class__,
            upper.__class__, lower.__class__} != _INTS:
        return _device_partial(s)
    return (r_ios, r_sec // 2, w_ios, w_sec // 2, hits, misses, starving, al_w, bm_w,
            completed, errors, local_ns, master_ns, _hist(local_h), _hist(master_h),
            upper, lower, used)


def _device_partial(s: dict[str, Any]) -> tuple[Any, ...]:
    """:func:`_device` of a struct without some statistics (an older module):
    amounts default to 0, the others are unknown."""
    g = s.get
    return (
        g("read_ios"), int(g("read_sectors") or 0) // 2, g("write_ios"),
        int(g("write_sectors") or 0) // 2, g("al_hits"), g("al_misses"), g("al_starving"),
        int(g("al_writes", 0)), int(g("bm_writes", 0)), g("completed_ios"), g("io_errors"),
        g("local_lat_ns"), g("master_lat_ns"), _hist(g("local_lat_hist")),
        _hist(g("master_lat_hist")), int(g("upper_pending", 0)), int(g("lower_pending", 0)),
        g("al_used"))


def _peer_device(info: dict[str, Any], s: dict[str, Any]) -> tuple[Any, ...]:
    """A peer device's counters (bsrmon.sampler.PEER_DEVICE_FIELDS)."""
    syncing = info.get("repl_state") in _SYNCING
    try:
        acked, repl, rs, net_ns, sent, received, pending, unacked, oos = \
            _PEER_DEVICE_STATS(s)
    except KeyError:
        return _peer_device_partial(syncing, s)
    if {repl.__class__, rs.__class__, sent.__class__, received.__class__,
            pending.__class__, unacked.__class__, oos.__class__} != _INTS:
        return _peer_device_partial(syncing, s)
    return (acked, repl // 2, rs // 2, net_ns, sent // 2, received // 2, pending, unacked,
            oos // 2, syncing)


def _peer_device_partial(syncing: bool, s: dict[str, Any]) -> tuple[Any, ...]:
    g = s.get
    repl, rs = g("repl_sent_sectors"), g("rs_sent_sectors")
    return (
        g("acked_ios"), None if repl is None else int(repl) // 2,
        None if rs is None else int(rs) // 2, g("net_lat_ns"),
        int(g("sent_sectors") or 0) // 2, int(g("received_sectors") or 0) // 2,
        int(g("pending", 0)), int(g("unacked", 0)), int(g("out_of_sync") or 0) // 2, syncing)


def _connection(s: dict[str, Any]) -> tuple[Any, ...]:
    """A connection's counters (bsrmon.sampler.CONNECTION_FIELDS)."""
    try:
        sent, recv, fill, size, ap, rs = _CONNECTION_STATS(s)
    except KeyError:
        g = s.get
        sent, recv, fill, size = g("sent_bytes"), g("recv_bytes"), g("sndbuf_fill"), \
            g("sndbuf_size")
        ap, rs = int(g("ap_in_flight", 0)), int(g("rs_in_flight", 0))
    return (sent, recv, fill, size, 512 * int(ap), 512 * int(rs))


def _identity(kind: Kind, ctx: dict[str, Any]) -> tuple[str, ...] | None:
    """The State key of the object a message is about (as Event.key() of its
    converted event), None for kinds without counters."""
    name = str(ctx["res_name"])
    if kind is Kind.device:
        return (name, str(int(ctx.get("volume", 0))))
    if kind is Kind.peer_device:
        return (name, str(int(ctx.get("peer_node_id", 0))), str(int(ctx.get("volume", 0))))
    if kind is Kind.connection:
        return (name, str(int(ctx.get("peer_node_id", 0))))
    if kind is Kind.resource:
        return (name,)
    return None


# where an object's counters go (the last item of its place)
_NO_COUNTERS, _DEVICE, _PEER_DEVICE, _CONNECTION = range(4)


def _place(kind: Kind, ctx: dict[str, Any]) -> tuple[Any, ...]:
    """(State key, Snapshot key, the Snapshot entry but for its counters, key
    of a deferred reply, where its counters go) of an object: computed once
    while the object lives, not every period."""
    ident = _identity(kind, ctx)
    if ident is None:
        return (None, None, (), None, _NO_COUNTERS)
    defer = (kind, ident)
    if kind is Kind.device:
        return (ident, ("d", ident), (ident[0], int(ident[1])), defer, _DEVICE)
    if kind is Kind.peer_device:
        return (ident, ("p", ident), (ident[0], int(ident[2]), int(ident[1])), defer,
                _PEER_DEVICE)
    if kind is Kind.connection:
        return (ident, ("c", ident), (ident[0], int(ident[1])), defer, _CONNECTION)
    return (ident, None, (), defer, _NO_COUNTERS)


def _fill_connection_fallback(snap: Snapshot) -> None:
    """A connection without byte counters (an older module): the sum of its
    peer devices' KiB, as the sampler does for plain events2."""
    for k, (res, peer, cur) in snap.connections.items():
        sent, recv = cur[C_SENT], cur[C_RECV]
        if sent is not None and recv is not None:
            continue
        pds = [c for (r, _v, p, c) in snap.peer_devices.values() if r == res and p == peer]
        if not pds:
            continue
        if sent is None:
            sent = 1024 * sum(c[P_SENT] for c in pds)
        if recv is None:
            recv = 1024 * sum(c[P_RECEIVED] for c in pds)
        snap.connections[k] = (res, peer, (sent, recv) + cur[2:])


class KernelFeed:
    """Converter + change detection + deferred State updates of one stream."""

    def __init__(self) -> None:
        self.conv = Converter(statistics=True)
        # (command, ctx values) -> (minor, state struct) last seen
        self._seen: dict[tuple[Any, ...], tuple[int, Any]] = {}
        # (kind, State key) -> a reply of the last poll not yet in the State
        self.deferred: dict[tuple[Kind, tuple[str, ...]], Message] = {}
        self.deferred_time: Any = None
        # (command, ctx values) -> where its counters go, as _place() gives it
        self._places: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    # -- messages converted as they come ------------------------------------

    def messages(self, item: "KernelMessages", col: "Collector") -> None:
        """The initial dump or notifications: every message becomes events."""
        conv = self.conv
        done = False
        for m in item.msgs:
            self._remember(m)
            if item.live:
                evs = conv.convert(m, live=True)
            else:
                evs = conv.convert(m, verb=Verb.exists)
            for ev in evs:
                done = done or ev.is_initial_done
                col.event(ev)
        if item.initial:
            if not done:
                col.event(Event(Verb.exists, Kind.other, raw_object="-"))
            seqs = [int(m.structs.get("notify", {}).get("seq", 0)) for m in item.msgs]
            conv.baseline(max(seqs) if seqs else None)

    def _remember(self, m: Message) -> None:
        spec = _SPECS.get(m.cmd)
        ctx = m.structs.get("ctx")
        if spec is None or ctx is None:
            return
        self._seen[(m.cmd, *ctx.values())] = (m.minor, m.structs.get(spec[1]))

    # -- the periodic statistics dump ---------------------------------------

    def poll(self, item: "KernelPoll", col: "Collector") -> Snapshot:
        """Events for objects whose state changed, counters of all of them."""
        conv = self.conv
        seen = self._seen
        fresh: dict[tuple[Any, ...], tuple[int, Any]] = {}
        places, new_places = self._places, {}
        deferred: dict[tuple[Kind, tuple[str, ...]], Message] = {}
        snap = Snapshot()
        devices, peer_devices, connections = snap.devices, snap.peer_devices, snap.connections
        event = col.event
        unchanged = 0
        for m in item.msgs:
            structs = m.structs
            spec = _SPECS.get(m.cmd)
            ctx = structs.get("ctx")
            if spec is None or ctx is None or "res_name" not in ctx:
                for ev in conv.convert(m, verb=Verb.change):
                    if ev.kind is not Kind.other:
                        event(ev)
                continue
            info = structs.get(spec[1])
            sig = (m.minor, info)
            memo = (m.cmd, *ctx.values())
            fresh[memo] = sig
            try:
                place = places.get(memo)
                if place is None:
                    place = _place(spec[0], ctx)
                new_places[memo] = place
                ident, key, base, defer, where = place
                syncing = where == _PEER_DEVICE and info is not None and \
                    info.get("repl_state") in _SYNCING
                if syncing or seen.get(memo) != sig:
                    for ev in conv.convert(m, verb=Verb.change):
                        if ev.kind is not Kind.other:
                            event(ev)
                elif ident is not None:
                    unchanged += 1
                    deferred[defer] = m
                if where == _DEVICE:
                    devices[key] = (*base, _device(structs.get(spec[2]) or _EMPTY))
                elif where == _PEER_DEVICE:
                    peer_devices[key] = (*base, _peer_device(info or _EMPTY,
                                                             structs.get(spec[2]) or _EMPTY))
                elif where == _CONNECTION:
                    connections[key] = (*base, _connection(structs.get(spec[2]) or _EMPTY))
            except (TypeError, ValueError, OverflowError, AttributeError, struct.error):
                conv.malformed += 1
        col.events_seen += unchanged
        self._seen = fresh
        self._places = new_places
        self.deferred = deferred
        self.deferred_time = item.tick.time
        _fill_connection_fallback(snap)
        return snap

    def forget(self, kind: Kind, ident: tuple[str, ...]) -> None:
        """An event about this object reached the State: its deferred reply is older."""
        self.deferred.pop((kind, ident), None)

    def settle(self, col: "Collector") -> None:
        """Bring the State up to the last poll (counters of unchanged objects)."""
        deferred, self.deferred = self.deferred, {}
        apply = col.raw_state.apply
        for m in deferred.values():
            for ev in self.conv.convert(m, verb=Verb.change):
                ev.timestamp = self.deferred_time
                apply(ev)
