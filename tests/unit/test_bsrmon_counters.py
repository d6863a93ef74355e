"""Counters as tuples: the kernel source's one-call reading of a *_stats
struct equals the field-by-field reading (and falls back to it), and the
sampler's per-object series follow a change of the sampled types."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

from bsr import netlink as nl

from bsrmon import kfeed
from bsrmon.sampler import (CONNECTION_FIELDS, DEVICE_FIELDS, PEER_DEVICE_FIELDS, Sampler,
                            Snapshot)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from bench_bsrmon import DUMP_SEQ, NETLINK_FAMILY_ID, dump_done, netlink_dump  # noqa: E402


def _stats(cmd: str, name: str) -> dict:  # type: ignore[type-arg]
    reader = nl.DumpReader(NETLINK_FAMILY_ID, DUMP_SEQ)
    reader.feed(netlink_dump(1, 3) + dump_done())
    return dict(next(m for m in reader.messages if m.cmd == cmd).structs[name])


def test_device_counters_at_once_equal_field_by_field_and_missing_ones_default() -> None:
    s = _stats("EV_DEVICE", "device_stats")
    fast = kfeed._device(s)
    assert len(fast) == len(DEVICE_FIELDS)
    assert fast == kfeed._device_partial(s)
    assert fast[DEVICE_FIELDS.index("write_kib")] == s["write_sectors"] // 2
    del s["read_sectors"], s["al_hits"], s["upper_pending"]
    partial = dict(zip(DEVICE_FIELDS, kfeed._device(s)))
    assert (partial["read_kib"], partial["al_hits"], partial["upper_pending"]) == (0, None, 0)


def test_peer_device_and_connection_counters_at_once_equal_field_by_field() -> None:
    s = _stats("EV_PEER_DEVICE", "peer_device_stats")
    fast = kfeed._peer_device({"repl_state": 0}, s)
    assert len(fast) == len(PEER_DEVICE_FIELDS)
    assert fast == kfeed._peer_device_partial(False, s)
    del s["repl_sent_sectors"], s["pending"]
    partial = dict(zip(PEER_DEVICE_FIELDS, kfeed._peer_device({}, s)))
    assert (partial["repl_sent_kib"], partial["pending"]) == (None, 0)
    c = _stats("EV_CONNECTION", "conn_stats")
    got = dict(zip(CONNECTION_FIELDS, kfeed._connection(c)))
    assert got["ap_in_flight"] == 512 * c["ap_in_flight"]
    del c["sent_bytes"], c["rs_in_flight"]
    got = dict(zip(CONNECTION_FIELDS, kfeed._connection(c)))
    assert (got["sent_bytes"], got["rs_in_flight"]) == (None, 0)


def test_sampler_rows_follow_a_change_of_types_and_name_their_files() -> None:
    sampler = Sampler(("iostat", "io_pending"), dest=lambda k: (f"f/{k.type}", "#\n"))
    snap = Snapshot()
    t = datetime(2026, 11, 21, 10, 0, 0)
    cur = tuple(0 if f != "local_hist" and f != "master_hist" else None for f in DEVICE_FIELDS)
    snap.devices[("d", ("r0", "0"))] = ("r0", 0, cur)
    assert [o[1] for o, _v in sampler.rows(snap, t)] == ["f/io_pending"]
    rows = sampler.rows(snap, t + timedelta(seconds=1))
    assert [o[1] for o, _v in rows] == ["f/io_pending", "f/iostat"]
    assert rows[1][1] == (1000, 0.0, 0.0, 0.0, 0.0)
    sampler.types = ("alstat",)
    rows = sampler.rows(snap, t + timedelta(seconds=2))
    assert [(o[0].type, o[1]) for o, _v in rows] == [("alstat", "f/alstat")]


def test_extension_counters_read_in_one_pass_or_one_by_one_when_one_is_odd() -> None:
    from bsrmon.sampler import _nums
    keys = ("a", "b", "c")
    assert _nums({"a": "1", "b": "22", "c": "0"}, keys) == [1, 22, 0]
    assert _nums({"a": "1", "c": "3"}, keys) == [1, None, 3]
    assert _nums({"a": "1", "b": "-4", "c": "3"}, keys) == [1, None, 3]
    assert _nums({"a": "x", "b": "2", "c": "3"}, keys) == [None, 2, 3]
