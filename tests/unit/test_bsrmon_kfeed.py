"""The kernel source's fast path (bsrmon.kfeed: counters straight from the
decoded dump, events only for changes) against the event path (an event per
object and poll, merged into the State, sampled from it): same series lines,
same events.log, same State once settled, same Prometheus text."""
from __future__ import annotations

import copy
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bsr import abi
from bsr import netlink as nl
from bsr.kevents import Converter
from bsr.model import Kind, Verb, typed_fields

from bsrmon import prometheus
from bsrmon.collector import Collector, KernelMessages, KernelPoll, Tick
from bsrmon.config import Config
from bsrmon.kfeed import KernelFeed
from bsrmon.sources import _seq_of

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from bench_bsrmon import DUMP_SEQ, NETLINK_FAMILY_ID, dump_done, netlink_dump  # noqa: E402

T0 = datetime(2026, 11, 21, 10, 0, 0, 250000).astimezone()


class Clock:
    def __init__(self) -> None:
        self.k = 0

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.k)

    def mono(self) -> float:
        return 1000.0 + self.k


def decoded(n_res: int, k: int) -> list[nl.Message]:
    reader = nl.DumpReader(NETLINK_FAMILY_ID, DUMP_SEQ)
    reader.feed(netlink_dump(n_res, k) + dump_done())
    return reader.messages


def _find(msgs: list[nl.Message], cmd: str, res: str) -> nl.Message:
    return next(m for m in msgs if m.cmd == cmd and m.structs["ctx"]["res_name"] == res)


def notification(m: nl.Message, ntype: abi.NotifyType, seq: int, **info: Any) -> nl.Message:
    n = copy.deepcopy(m)
    n.structs["notify"] = {"type": int(ntype), "seq": seq}
    for sname in list(n.structs):
        if sname.endswith("_stats"):
            del n.structs[sname]
    for sname, vals in info.items():
        n.structs[sname].update(vals)
    return n


def scenario() -> list[tuple[list[nl.Message], list[nl.Message]]]:
    """(notifications before the poll, the poll) per period: state changes,
    a resync, a notification the next poll contradicts, a destroyed and a
    new resource."""
    out = []
    seq = 100
    for k in range(9):
        msgs = [copy.deepcopy(m) for m in decoded(4, k)]
        notes: list[nl.Message] = []
        if k < 6:
            msgs = [m for m in msgs if m.structs["ctx"]["res_name"] != "r3"]
        if k >= 6:
            msgs = [m for m in msgs if m.structs["ctx"]["res_name"] != "r2"]
        if k == 3:
            _find(msgs, "EV_DEVICE", "r1").structs["device_info"]["disk_state"] = \
                int(abi.DiskState.Inconsistent)
        if k == 4:
            seq += 1
            notes.append(notification(_find(msgs, "EV_DEVICE", "r1"), abi.NotifyType.change,
                                      seq, device_info={"disk_state": int(abi.DiskState.Outdated)}))
        if 2 <= k <= 5:
            pd = _find(msgs, "EV_PEER_DEVICE", "r2").structs
            pd["peer_device_info"]["repl_state"] = int(abi.ReplState.SyncSource)
            pd["peer_device_stats"].update(rs_total=100000, rs_done=15000 * k)
        if k == 5:
            _find(msgs, "EV_CONNECTION", "r0").structs["conn_info"]["conn_state"] = \
                int(abi.ConnState.Connecting)
        if k == 6:
            seq += 1
            old = out[-1][1]
            notes.append(notification(_find(old, "EV_RESOURCE", "r2"), abi.NotifyType.destroy,
                                      seq))
        out.append((notes, msgs))
    return out


def run(fast: bool) -> tuple[dict[str, str], Collector]:
    files: dict[str, str] = {}

    def submit(batch: list) -> bool:  # type: ignore[type-arg]
        for rel, _header, line in batch:
            if rel.endswith("memstat"):  # without bsrmon's own RSS
                line = line.rsplit(" ", 1)[0] + "\n"
            files[rel] = files.get(rel, "") + line
        return True

    clock = Clock()
    col = Collector(Config().types, submit)
    conv = Converter(statistics=True, clock=clock.mono, now=clock.now)
    if fast:
        col._feed = KernelFeed()
        col._feed.conv = conv
    for k, (notes, msgs) in enumerate(scenario()):
        clock.k = k
        tick = Tick(clock.now(), {"requests_allocated": k})
        if fast:
            if k == 0:
                col.handle(KernelMessages(msgs, initial=True))
            for n in notes:
                col.handle(KernelMessages([n], live=True))
            col.handle(KernelPoll(msgs, tick))
            continue
        if k == 0:
            for m in msgs:
                for ev in conv.convert(m, verb=Verb.exists):
                    col.handle(ev)
            col.handle(nl_done_event())
            conv.baseline(_seq_of(msgs))
        for n in notes:
            for ev in conv.convert(n, live=True):
                col.handle(ev)
        for m in msgs:
            for ev in conv.convert(m, verb=Verb.change):
                if ev.kind is not Kind.other:
                    col.handle(ev)
        col.handle(tick)
    # the end-of-dump marker carries no time: it is printed with the wall clock
    files["events.log"] = re.sub(r"^\S+ exists -$", "exists -", files["events.log"],
                                 flags=re.M)
    return files, col


def nl_done_event():  # type: ignore[no-untyped-def]
    from bsr.model import Event
    return Event(Verb.exists, Kind.other, raw_object="-")


def state_of(col: Collector) -> dict[str, Any]:
    st = col.state
    return {kind.value + repr(key): (typed_fields(obj), dict(obj.extra))
            for kind in (Kind.resource, Kind.device, Kind.connection, Kind.peer_device)
            for key, obj in st._table(kind).items()}  # type: ignore[union-attr]


def test_fast_path_writes_the_same_series_and_events_log_as_the_event_path() -> None:
    slow_files, _ = run(fast=False)
    fast_files, _ = run(fast=True)
    assert sorted(fast_files) == sorted(slow_files)
    for rel in slow_files:
        assert fast_files[rel] == slow_files[rel], rel
    log = slow_files["events.log"]
    assert "change device name:r1 volume:0 minor:1 disk:Inconsistent" in log
    assert "disk:Outdated" in log and "replication:SyncSource" in log
    assert "connection:Connecting" in log and "destroy resource name:r2" in log
    assert "exists resource name:r3" not in log and "resource name:r3 role:Primary" in log
    assert len(slow_files["perfmon/r0/vnr0_iostat"].splitlines()) == 8
    assert len(slow_files["perfmon/r3/vnr0_ioclat"].splitlines()) == 2


def test_fast_path_state_settles_to_the_event_paths_state() -> None:
    _, slow = run(fast=False)
    _, fast = run(fast=True)
    assert fast._feed is not None and fast._feed.deferred  # unchanged objects wait
    assert state_of(fast) == state_of(slow)
    assert not fast._feed.deferred
    assert prometheus.render(fast.state) == prometheus.render(slow.state)


def test_an_unchanged_object_costs_no_event_but_a_changed_one_does() -> None:
    feed = KernelFeed()
    col = Collector(("iostat",), lambda b: True)
    col._feed = feed
    msgs = decoded(2, 0)
    col.handle(KernelMessages(msgs, initial=True))
    events = col.events_seen
    col.handle(KernelPoll(decoded(2, 1), Tick(T0)))
    assert len(feed.deferred) == 8  # every object of both resources
    moved = decoded(2, 2)
    _find(moved, "EV_DEVICE", "r0").structs["device_info"]["disk_state"] = \
        int(abi.DiskState.Failed)
    col.handle(KernelPoll(moved, Tick(T0 + timedelta(seconds=1))))
    assert (Kind.device, ("r0", "0")) not in feed.deferred and len(feed.deferred) == 7
    assert col.raw_state.devices[("r0", "0")].disk is abi.DiskState.Failed
    assert col.events_seen == events + 16
