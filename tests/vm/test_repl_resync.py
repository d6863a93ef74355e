"""Resync between two nodes: full sync of a fresh pair, bitmap-based resync
after a cut link, split brain and its resolution by discard-my-data,
pause/resume, the rate controller under application writes."""
from __future__ import annotations

import json
import shlex
import time
from typing import Any

import pytest

from harness.lab import Lab
from repl_lab import (HERE, T, DmNode, Node, check_nl, configure, create_md, events, kmsg,
                      nodes, wait_state, zero_image)

pytestmark = pytest.mark.vm

MIB = 1 << 20

PROBE = r"""
import json, sys
sys.path.insert(0, %r)
from bsr.netlink import BsrNetlink
out = {}
with BsrNetlink() as nl:
    for m in nl.dump("GET_DEVICES", ctx={"res_name": "r0"}):
        out["disk"] = int(m.get("device_info", "disk_state"))
        out["current_uuid"] = int(m.get("device_info", "current_uuid"))
    for m in nl.dump("GET_PEER_DEVICES", ctx={"res_name": "r0"}):
        out["repl"] = int(m.get("peer_device_info", "repl_state"))
        out["peer_disk"] = int(m.get("peer_device_info", "peer_disk_state"))
        out["susp"] = int(m.get("peer_device_info", "resync_susp"))
        out.update({k: int(v) for k, v in m.structs.get("peer_device_stats", {}).items()})
print(json.dumps(out))
""" % str(HERE.parents[1])

UPTODATE, INCONSISTENT = 9, 5
ESTABLISHED, SYNC_SOURCE, SYNC_TARGET, PAUSED_S = 1, 7, 8, 11


def probe(n: Node) -> dict[str, Any]:
    out = n.g.check(f"{n.g.py} -c {shlex.quote(PROBE)}", timeout=T).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_synced(n: Node, seconds: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        p = probe(n)
        if p.get("repl") == ESTABLISHED and p.get("disk") == UPTODATE and \
                p.get("peer_disk") == UPTODATE and p.get("out_of_sync") == 0:
            return p
        assert time.monotonic() < deadline, f"{n.g.name}: not in sync: {p}"
        time.sleep(1)


def primary(n: Node, force: bool = False) -> None:
    check_nl(n, "PRIMARY", ctx={"res_name": "r0"}, role_parms={"force": int(force)})


def secondary(n: Node) -> None:
    check_nl(n, "SECONDARY", ctx={"res_name": "r0"}, role_parms={})


def sha(n: Node, mib: int) -> str:
    return n.g.check(f"dd if={n.disk} bs=1M count={mib} iflag=direct status=none | sha256sum",
                     timeout=600).stdout.split()[0]


def data_mib(n: Node) -> int:
    return int(n.g.check("cat /sys/block/bsr0/size", timeout=T).stdout) * 512 // MIB


def write(n: Node, offset_mib: int, mib: int, seed: str) -> None:
    """Write ``mib`` MiB of pseudo-random data at ``offset_mib`` on /dev/bsr0."""
    n.g.check(f"openssl enc -aes-128-ctr -nosalt -pass pass:{seed} -pbkdf2 </dev/zero 2>/dev/null"
              f" | dd of=/dev/bsr0 bs=1M seek={offset_mib} count={mib} iflag=fullblock"
              " oflag=direct status=none", timeout=600)


def compare(a: Node, b: Node) -> None:
    """After down on both: the data areas are identical (read from the backing disks)."""
    mib = data_mib(a)
    for n in (a, b):
        check_nl(n, "DOWN", ctx={"res_name": "r0"})
    assert sha(a, mib) == sha(b, mib)


def fresh_pair(lab: Lab, ko, peer_conf: dict[str, Any] | None = None) -> tuple[Node, Node]:
    a, b = nodes(lab)
    for n in (a, b):
        create_md(n)
        configure(n, ko)
        if peer_conf:
            check_nl(n, "PEER_DEVICE_OPTS", ctx={"res_name": "r0", "peer_node_id": n.peer_id,
                                                 "volume": 0}, peer_device_conf=peer_conf)
    for n in (a, b):
        wait_state(n, "Connected", 60)
    return a, b


def skip_sync_pair(lab: Lab, ko, net_conf: dict[str, Any] | None = None) -> tuple[Node, Node]:
    """Zeroed disks, new metadata, connected; new-current-uuid --clear-bitmap
    on a: both UpToDate without a resync (skip-initial-sync)."""
    a, b = nodes(lab)
    for n in (a, b):
        zero_image(n)
        create_md(n)
        configure(n, ko, net_conf)
    for n in (a, b):
        wait_state(n, "Connected", 60)
    check_nl(a, "NEW_C_UUID", minor=0, new_c_uuid_parms={"clear_bm": 1})
    for n in (a, b):
        wait_synced(n, 120)
    return a, b


def full_sync(a: Node, b: Node) -> float:
    """primary --force on a: full sync to b; returns MiB/s seen on b."""
    write_start = time.monotonic()
    primary(a, force=True)
    pb = wait_synced(b)
    secs = time.monotonic() - write_start
    pa = wait_synced(a)
    assert pa["rs_total"] == pb["rs_total"] > 0
    return pb["rs_total"] / 2048 / secs


def test_fresh_pair_primary_force_full_sync_makes_both_uptodate_and_equal(
        lab: Lab, bsr_ko) -> None:
    a, b = fresh_pair(lab, bsr_ko)
    rate = full_sync(a, b)
    print(f"full sync, default settings: {rate:.1f} MiB/s")
    assert "SyncTarget" in kmsg(b) and "resync done" in kmsg(a)
    write(a, 3, 5, "after")
    compare(a, b)


def test_cut_link_while_primary_writes_then_bitmap_resync_moves_only_the_changes(
        lab: Lab, bsr_ko) -> None:
    a, b = fresh_pair(lab, bsr_ko)
    full_sync(a, b)
    lab.cut_link()
    wait_state(a, "Connecting,Unconnected,Timeout,NetworkFailure,BrokenPipe", 120)
    write(a, 10, 8, "while-cut")
    lab.restore_link()
    pb = wait_synced(b, 300)
    wait_synced(a, 300)
    assert "rule 50: bitmap-based resync, this node is SyncSource" in kmsg(a)
    # 8 MiB written: the resync moves that, not the disk (128 MiB)
    assert 8 * 2048 <= pb["rs_total"] <= 12 * 2048, pb
    compare(a, b)


def test_split_brain_goes_standalone_and_discard_my_data_resolves_it(lab: Lab, bsr_ko) -> None:
    a, b = fresh_pair(lab, bsr_ko)
    full_sync(a, b)
    lab.cut_link()
    for n in (a, b):
        wait_state(n, "Connecting,Unconnected,Timeout,NetworkFailure,BrokenPipe", 120)
    primary(b)
    write(a, 20, 4, "a-side")
    write(b, 40, 4, "b-side")
    lab.restore_link()
    for n in (a, b):
        wait_state(n, "StandAlone", 120)
        assert "split brain detected" in kmsg(n)
        ev = events(n)
        assert "connection:StandAlone" in ev
        assert "call helper name:r0 peer-node-id:%d conn-name:peer volume:0 helper:split-brain" \
            % n.peer_id in ev, ev
    secondary(b)
    check_nl(b, "CONNECT", ctx={"res_name": "r0", "peer_node_id": b.peer_id},
             connect_parms={"discard_my_data": 1})
    check_nl(a, "CONNECT", ctx={"res_name": "r0", "peer_node_id": a.peer_id})
    pb = wait_synced(b, 300)
    wait_synced(a, 300)
    assert "discards its changes and becomes SyncTarget" in kmsg(b)
    assert pb["rs_total"] <= 10 * 2048, pb  # both sides' changes, not the disk
    compare(a, b)


def test_pause_sync_holds_the_resync_and_resume_finishes_it(lab: Lab, bsr_ko) -> None:
    a, b = fresh_pair(lab, bsr_ko, {"c_plan_ahead": 0, "resync_rate": 20480})
    check_nl(a, "PAUSE_SYNC", ctx={"res_name": "r0", "peer_node_id": 1, "volume": 0})
    primary(a, force=True)
    time.sleep(5)
    pa, pb = probe(a), probe(b)
    assert pa["repl"] == PAUSED_S and pa["rs_done"] == 0 and pa["susp"] & 1, pa
    assert pb["susp"] & 2, pb  # "peer"
    check_nl(a, "RESUME_SYNC", ctx={"res_name": "r0", "peer_node_id": 1, "volume": 0})
    pb = wait_synced(b)
    pa = wait_synced(a)
    assert pa["rs_paused_ms"] >= 4000, pa
    compare(a, b)


def test_variable_rate_resync_and_application_writes_both_progress(lab: Lab, bsr_ko) -> None:
    a, b = fresh_pair(lab, bsr_ko, {"c_plan_ahead": 20, "c_min_rate": 4096})
    primary(a, force=True)
    time.sleep(2)
    fio = a.g.run("fio --name=w --filename=/dev/bsr0 --rw=randwrite --bs=64k --direct=1 "
                  "--size=64M --runtime=15 --time_based --output-format=json", timeout=300)
    assert fio.rc == 0, fio.stderr
    written = json.loads(fio.stdout)["jobs"][0]["write"]["io_bytes"]
    assert written > MIB
    assert probe(a)["rs_done"] > 0
    wait_synced(b, 600)
    wait_synced(a, 600)
    compare(a, b)


def test_new_current_uuid_clear_bitmap_skips_the_initial_sync_and_writes_keep_both_equal(
        lab: Lab, bsr_ko) -> None:
    a, b = skip_sync_pair(lab, bsr_ko)
    pa, pb = probe(a), probe(b)
    assert pa["current_uuid"] == pb["current_uuid"] not in (0, 4), (pa, pb)
    assert pa["rs_total"] == pb["rs_total"] == 0, (pa, pb)  # no resync ran
    assert "the peer started a new generation with a cleared bitmap" in kmsg(b)
    primary(a)
    write(a, 0, 8, "skip-1")
    write(a, 100, 16, "skip-2")
    pa, pb = wait_synced(a, 60), wait_synced(b, 60)
    assert pa["rs_total"] == pb["rs_total"] == 0
    compare(a, b)


def test_write_error_on_the_sync_target_stops_the_resync_and_reconnect_resumes_it(
        lab: Lab, bsr_ko) -> None:
    a, b0 = nodes(lab)
    b = DmNode(b0.g, b0.node_id, b0.peer_id, b0.ip, b0.peer_ip)
    b.dm_table()
    try:
        for n in (a, b):
            create_md(n)
            configure(n, bsr_ko)
            check_nl(n, "PEER_DEVICE_OPTS", ctx={"res_name": "r0", "peer_node_id": n.peer_id,
                                                 "volume": 0},
                     peer_device_conf={"c_plan_ahead": 0, "resync_rate": 8192})
        for n in (a, b):
            wait_state(n, "Connected", 60)
        b.dm_table(bad=(110 * 2048, 2048))  # 110 MiB..111 MiB fail (of 128)
        primary(a, force=True)
        deadline = time.monotonic() + 600
        while "resync stopped by an I/O error" not in kmsg(a):
            assert time.monotonic() < deadline, probe(a)
            time.sleep(2)
        assert "resync: write error at sector" in kmsg(b)
        assert "resync stopped by an I/O error" in kmsg(b)
        pa, pb = probe(a), probe(b)
        assert pa["repl"] == pb["repl"] == ESTABLISHED, (pa, pb)
        assert pb["disk"] == INCONSISTENT and pa["peer_disk"] == INCONSISTENT, (pa, pb)
        assert 2048 <= pa["out_of_sync"] < 128 * 2048, pa
        b.dm_table()
        check_nl(a, "DISCONNECT", ctx={"res_name": "r0", "peer_node_id": a.peer_id},
                 disconnect_parms={})
        wait_state(a, "StandAlone", 60)
        check_nl(a, "CONNECT", ctx={"res_name": "r0", "peer_node_id": a.peer_id})
        pb = wait_synced(b, 600)
        wait_synced(a, 600)
        assert "rule 50: bitmap-based resync, this node is SyncSource" in kmsg(a)
        assert pb["rs_total"] < 32 * 2048, pb  # what was left, not the disk
        compare(a, b)
    finally:
        b.g.run("dmsetup remove bsrbk", timeout=T)


def test_default_controller_keeps_up_with_a_fixed_100M_rate_on_an_idle_device(
        lab: Lab, bsr_ko) -> None:
    rates = {}
    for name, conf in (("default", None), ("fixed 100M", {"c_plan_ahead": 0,
                                                          "resync_rate": 100 << 10})):
        a, b = fresh_pair(lab, bsr_ko, conf)
        rates[name] = full_sync(a, b)
        for n in (a, b):
            check_nl(n, "DOWN", ctx={"res_name": "r0"})
            n.g.rmmod("bsr")
    print("full sync of the 128 MiB disk: " + ", ".join(f"{k} {v:.1f} MiB/s" for k, v in rates.items()))
    # Idle device: the default runs at c-max-rate like the fixed rate.  On this shared
    # TCG host the same sync varies by 2x between runs (seen: 4.4/9.6 and 6.4/4.3), so
    # the bound only catches a controller that crawls (one stuck at its start rate
    # would be 20x slower).
    assert rates["default"] >= 0.3 * rates["fixed 100M"], rates
