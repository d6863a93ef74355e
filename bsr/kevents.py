"""Kernel notifications (and dump replies) as events2 :class:`~bsr.model.Event`.

:class:`Converter` turns a :class:`bsr.netlink.Message` of command
``EV_RESOURCE``, ``EV_DEVICE``, ``EV_CONNECTION``, ``EV_PEER_DEVICE``,
``EV_PATH``, ``EV_HELPER`` or ``EV_INITIAL_DONE`` into the events2 line DRBD 9's
``drbdsetup events2`` would print for it: identity keys first (REFERENCE
§2 order), then the state keys, then — with ``statistics`` — the standard
statistics keys and after them the bsr extension keys (docs/events2.md).

Units: sizes and transfer counters in KiB, in-flight amounts in sectors,
``eta`` in seconds, ``dbdt1`` in MiB/s.  ``done``/``eta``/``dbdt1`` are
computed from ``rs_total``/``rs_done`` and a short per-peer-device history
of samples kept by the converter, so one converter must see every message
of one stream (notifications and polls alike).

A gap in the kernel's ``notify.seq`` yields an extra ``- skipped N`` event
before the message; a message older than the last one seen (a duplicate of
what the initial dump already showed) yields nothing.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from bsr import abi
from bsr.model import Event, Kind, Verb
from bsr.netlink import Message, decode_addr

SEQ_MASK = 0xFFFFFFFF
RATE_WINDOW_S = 10.0  # dbdt1 is the rate over (at most) the last 10 seconds
HISTORY_S = 30.0

_KIND_OF_CMD: dict[str, Kind] = {
    "EV_RESOURCE": Kind.resource,
    "EV_DEVICE": Kind.device,
    "EV_CONNECTION": Kind.connection,
    "EV_PEER_DEVICE": Kind.peer_device,
    "EV_PATH": Kind.path,
}

_SYNCING = {
    abi.ReplState.SyncSource, abi.ReplState.SyncTarget, abi.ReplState.PausedSyncS,
    abi.ReplState.PausedSyncT, abi.ReplState.VerifyS, abi.ReplState.VerifyT,
}


def _yn(v: Any) -> str:
    return "yes" if v else "no"


# value -> name of every enum the converter prints (a dict lookup instead of
# an enum call: this runs for every object of every statistics poll)
_ENUM_NAMES: dict[type, dict[int, str]] = {
    cls: {int(m): m.name for m in cls}
    for cls in (abi.Role, abi.DiskState, abi.ConnState, abi.ReplState, abi.WriteOrdering)
}


def _enum_name(cls: type, v: Any, default: str = "Unknown") -> str:
    names = _ENUM_NAMES.get(cls)
    if names is not None and type(v) is int:
        return names.get(v, default)
    try:
        return cls(int(v)).name
    except (TypeError, ValueError):
        return default


def _kib(sectors: Any) -> int:
    return int(sectors or 0) // 2


def _u64_list(blob: Any) -> str:
    data = bytes(blob or b"")
    n = len(data) // 8
    return ",".join(map(str, struct.unpack(f"={n}Q", data[:n * 8])))


def suspended_text(info: dict[str, Any]) -> str:
    """events2 ``suspended`` value: ``no`` or a comma list of reasons."""
    reasons = []
    if info.get("susp"):
        reasons.append("user")
    if info.get("susp_nod"):
        reasons.append("no-data")
    return ",".join(reasons) or "no"


_SUSP_REASONS = tuple((int(r), str(r.name)) for r in abi.SuspReason)


def resync_suspended_text(bits: Any) -> str:
    b = int(bits or 0)
    if not b:
        return "no"
    return ",".join(name for bit, name in _SUSP_REASONS if b & bit) or "no"


# bsr extension statistics, printed after the standard keys (docs/events2.md):
# (events2 key, struct field, converter)
_Ext = tuple[str, str, Callable[[Any], Any]]
_DEVICE_EXT: tuple[_Ext, ...] = (
    ("read-ios", "read_ios", int), ("write-ios", "write_ios", int),
    ("flush-ios", "flush_ios", int), ("discard-ios", "discard_ios", int),
    ("al-hits", "al_hits", int), ("al-misses", "al_misses", int),
    ("al-starving", "al_starving", int), ("al-used", "al_used", int),
    ("local-lat-ns", "local_lat_ns", int), ("master-lat-ns", "master_lat_ns", int),
    ("completed-ios", "completed_ios", int),
    ("local-lat-hist", "local_lat_hist", _u64_list),
    ("master-lat-hist", "master_lat_hist", _u64_list),
    ("io-errors", "io_errors", int), ("oos", "out_of_sync", _kib),
)
_CONNECTION_EXT: tuple[_Ext, ...] = (
    ("sent-bytes", "sent_bytes", int), ("recv-bytes", "recv_bytes", int),
    ("sndbuf-fill", "sndbuf_fill", int), ("sndbuf-size", "sndbuf_size", int),
    ("pings", "pings", int), ("reconnects", "reconnects", int),
    ("barriers", "barriers", int),
)
_PEER_DEVICE_EXT: tuple[_Ext, ...] = (
    ("repl-sent", "repl_sent_sectors", _kib), ("rs-sent", "rs_sent_sectors", _kib),
    ("rs-total", "rs_total", _kib), ("rs-done", "rs_done", _kib),
    ("rs-paused-ms", "rs_paused_ms", int), ("rs-same-csum", "rs_same_csum", _kib),
    ("ov-mismatch", "ov_mismatch", _kib),
    ("net-lat-ns", "net_lat_ns", int), ("acked-ios", "acked_ios", int),
)


def _ext(out: dict[str, str], stats: dict[str, Any], table: tuple[_Ext, ...]) -> None:
    for key, name, conv in table:
        v = stats.get(name)
        if v is not None:
            out[key] = str(v) if conv is int and type(v) is int else str(conv(v))
        elif name in stats:
            out[key] = str(conv(v))


@dataclass
class SyncProgress:
    """``done``/``eta``/``dbdt1`` of one peer device at one moment."""

    done: float
    eta: int | None
    dbdt1: float


@dataclass
class SyncHistory:
    """Recent ``(time, rs_done)`` samples of one peer device."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, total: int, done: int) -> SyncProgress:
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # a new resync or verify started
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > HISTORY_S:
            self.samples.popleft()
        base = None
        for t, d in self.samples:
            if now - t <= RATE_WINDOW_S and t < now:
                base = (t, d)
                break
        if base is None and len(self.samples) >= 2 and self.samples[-2][0] < now:
            base = self.samples[-2]
        rate = 0.0  # sectors per second
        if base is not None:
            rate = (done - base[1]) / (now - base[0])
        pct = 100.0 * done / total if total > 0 else 0.0
        remaining = max(total - done, 0)
        eta = int(remaining / rate + 0.5) if rate > 0 else None
        return SyncProgress(min(pct, 100.0), eta, rate * 512 / (1 << 20))


class Converter:
    """Messages of one stream -> events, with seq-gap and progress tracking."""

    def __init__(self, *, statistics: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:
        self.statistics = statistics
        self._clock = clock
        self._now = now
        self._last_seq: int | None = None
        self.malformed = 0
        self._history: dict[tuple[str, ...], SyncHistory] = {}

    # -- sequence numbers -------------------------------------------------

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    def baseline(self, seq: int | None) -> None:
        """Treat ``seq`` as seen (the initial dump reflects everything up to it)."""
        if seq:
            self._last_seq = seq & SEQ_MASK

    def _check_seq(self, seq: int) -> int | None:
        """Number of lost events before ``seq``; None if ``seq`` is stale."""
        if self._last_seq is None:
            self._last_seq = seq
            return 0
        diff = (seq - self._last_seq) & SEQ_MASK
        if diff == 0 or diff >= 1 << 31:
            return None
        self._last_seq = seq
        return diff - 1

    # -- conversion -------------------------------------------------------

    def convert(self, msg: Message, *, live: bool = False,
                verb: Verb | None = None) -> list[Event]:
        """Events for one message: [skipped?, event] or [] when not an event.

        ``live`` messages (multicast notifications) are checked against the
        sequence; dump replies are not.  ``verb`` overrides the notify type
        (polls print dump replies as ``change``).  A message whose values
        have the wrong types is counted in ``malformed`` and ignored.
        """
        try:
            return self._convert(msg, live, verb)
        except (TypeError, ValueError, OverflowError, AttributeError, struct.error):
            self.malformed += 1
            return []

    def _convert(self, msg: Message, live: bool, verb: Verb | None) -> list[Event]:
        notify = msg.structs.get("notify", {})
        out: list[Event] = []
        if live and "seq" in notify:
            lost = self._check_seq(int(notify["seq"]))
            if lost is None:
                return []
            if lost:
                out.append(Event(None, Kind.other, timestamp=self._now(), skipped=lost))
        if msg.cmd == "EV_INITIAL_DONE":
            out.append(Event(Verb.exists, Kind.other, timestamp=self._now(), raw_object="-"))
            return out
        if msg.cmd == "EV_HELPER":
            out.extend(self._helper(msg, notify))
            return out
        kind = _KIND_OF_CMD.get(msg.cmd)
        if kind is None:
            return out
        if verb is None:
            ntype = int(notify.get("type", abi.NotifyType.exists)) & ~abi.NOTIFY_CONTINUES
            try:
                verb = Verb(abi.NotifyType(ntype).name)
            except ValueError:
                return out
        fields = self.fields(kind, msg, destroy=verb is Verb.destroy)
        if fields is None:
            return out
        if verb is Verb.destroy and kind is Kind.peer_device:
            self._history.pop(_history_key(fields), None)
        out.append(Event(verb, kind, fields, timestamp=self._now(), raw_object=kind.value))
        return out

    def _helper(self, msg: Message, notify: dict[str, Any]) -> list[Event]:
        """``call helper name:R peer-node-id:N conn-name:C volume:V helper:H``
        (a ``response`` adds ``status:S``), as DRBD 9 prints handler calls."""
        ntype = int(notify.get("type", abi.NotifyType.call)) & ~abi.NOTIFY_CONTINUES
        if ntype not in (abi.NotifyType.call, abi.NotifyType.response):
            return []
        ctx = msg.structs.get("ctx", {})
        info = msg.structs.get("helper_info", {})
        if "res_name" not in ctx or not info.get("helper_name"):
            return []
        f = {"name": str(ctx["res_name"])}
        if "peer_node_id" in ctx:
            f["peer-node-id"] = str(int(ctx["peer_node_id"]))
            f["conn-name"] = str(ctx.get("conn_name", ""))
        if "volume" in ctx:
            f["volume"] = str(int(ctx["volume"]))
        f["helper"] = str(info["helper_name"])
        verb = Verb(abi.NotifyType(ntype).name)
        if verb is Verb.response:
            f["status"] = str(int(info.get("helper_status", 0)))
        return [Event(verb, Kind.helper, f, timestamp=self._now(), raw_object="helper")]

    def fields(self, kind: Kind, msg: Message, *, destroy: bool = False) -> dict[str, str] | None:
        """events2 key:value pairs of one object (identity keys first)."""
        ctx = msg.structs.get("ctx", {})
        if "res_name" not in ctx:
            return None
        f: dict[str, str] = {"name": str(ctx["res_name"])}
        if kind is Kind.device:
            f["volume"] = str(int(ctx.get("volume", 0)))
            f["minor"] = str(msg.minor)
        elif kind is not Kind.resource:
            f["peer-node-id"] = str(int(ctx.get("peer_node_id", 0)))
            f["conn-name"] = str(ctx.get("conn_name", ""))
            if kind is Kind.peer_device:
                f["volume"] = str(int(ctx.get("volume", 0)))
            elif kind is Kind.path:
                try:
                    f["local"] = decode_addr(bytes(ctx.get("my_addr", b"")))
                    f["peer"] = decode_addr(bytes(ctx.get("peer_addr", b"")))
                except ValueError:
                    return None
        if destroy:
            return f
        _DETAILS[kind](self, f, msg)
        return f

    def _resource(self, f: dict[str, str], msg: Message) -> None:
        info = msg.structs.get("res_info", {})
        f["role"] = _enum_name(abi.Role, info.get("role"))
        f["suspended"] = suspended_text(info)
        if self.statistics:
            stats = msg.structs.get("res_stats", {})
            wo = stats.get("write_ordering", info.get("write_ordering"))
            f["write-ordering"] = _enum_name(abi.WriteOrdering, wo, "none")

    def _device(self, f: dict[str, str], msg: Message) -> None:
        info = msg.structs.get("device_info", {})
        f["disk"] = _enum_name(abi.DiskState, info.get("disk_state"), "Diskless")
        f["client"] = _yn(info.get("client"))
        f["backing_dev"] = str(info.get("backing_dev") or "none")
        f["open"] = _yn(info.get("open_count"))
        if not self.statistics:
            return
        s = msg.structs.get("device_stats", {})
        f["size"] = str(_kib(s.get("capacity")))
        f["read"] = str(_kib(s.get("read_sectors")))
        f["written"] = str(_kib(s.get("write_sectors")))
        f["al-writes"] = str(int(s.get("al_writes", 0)))
        f["bm-writes"] = str(int(s.get("bm_writes", 0)))
        f["upper-pending"] = str(int(s.get("upper_pending", 0)))
        f["lower-pending"] = str(int(s.get("lower_pending", 0)))
        f["al-suspended"] = _yn(s.get("al_suspended"))
        f["blocked"] = "upper" if s.get("blocked") else "no"
        _ext(f, s, _DEVICE_EXT)

    def _connection(self, f: dict[str, str], msg: Message) -> None:
        info = msg.structs.get("conn_info", {})
        f["connection"] = _enum_name(abi.ConnState, info.get("conn_state"), "StandAlone")
        f["role"] = _enum_name(abi.Role, info.get("peer_role"))
        if not self.statistics:
            return
        s = msg.structs.get("conn_stats", {})
        f["congested"] = _yn(s.get("congested"))
        f["ap-in-flight"] = str(int(s.get("ap_in_flight", 0)))
        f["rs-in-flight"] = str(int(s.get("rs_in_flight", 0)))
        _ext(f, s, _CONNECTION_EXT)

    def _peer_device(self, f: dict[str, str], msg: Message) -> None:
        info = msg.structs.get("peer_device_info", {})
        repl = _enum_name(abi.ReplState, info.get("repl_state"), "Off")
        f["replication"] = repl
        f["peer-disk"] = _enum_name(abi.DiskState, info.get("peer_disk_state"), "DUnknown")
        f["peer-client"] = _yn(info.get("peer_client"))
        f["resync-suspended"] = resync_suspended_text(info.get("resync_susp"))
        s = msg.structs.get("peer_device_stats", {})
        key = _history_key(f)
        progress = None
        if repl in abi.ReplState.__members__ and abi.ReplState[repl] in _SYNCING:
            hist = self._history.setdefault(key, SyncHistory())
            progress = hist.add(self._clock(), int(s.get("rs_total", 0)),
                                int(s.get("rs_done", 0)))
        else:
            self._history.pop(key, None)
        if not self.statistics:
            return
        f["received"] = str(_kib(s.get("received_sectors")))
        f["sent"] = str(_kib(s.get("sent_sectors")))
        f["out-of-sync"] = str(_kib(s.get("out_of_sync")))
        f["pending"] = str(int(s.get("pending", 0)))
        f["unacked"] = str(int(s.get("unacked", 0)))
        if progress is not None:
            f["done"] = f"{progress.done:.2f}"
            if progress.eta is not None:
                f["eta"] = str(progress.eta)
            f["dbdt1"] = f"{progress.dbdt1:.2f}"
        _ext(f, s, _PEER_DEVICE_EXT)

    def _path(self, f: dict[str, str], msg: Message) -> None:
        f["established"] = _yn(msg.structs.get("path_info", {}).get("established"))


# kind -> the Converter method adding the state (and statistics) keys
_DETAILS: dict[Kind, Callable[[Converter, dict[str, str], Message], None]] = {
    Kind.resource: Converter._resource, Kind.device: Converter._device,
    Kind.connection: Converter._connection, Kind.peer_device: Converter._peer_device,
    Kind.path: Converter._path,
}


def _history_key(f: dict[str, str]) -> tuple[str, ...]:
    return (f["name"], f.get("peer-node-id", ""), f.get("volume", ""))
