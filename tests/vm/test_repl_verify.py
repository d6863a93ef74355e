"""Online verify between two nodes: an identical pair verifies clean, a
block changed behind bsr's back is found, marked out of sync and moved by
the resync that disconnect/connect starts."""
from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest

from harness.lab import Lab
from repl_lab import Node, check_nl, connect, disconnect, kmsg_after, kmsg_mark, nl, wait_state
from test_repl_resync import (ESTABLISHED, compare, primary, probe, secondary, skip_sync_pair,
                              wait_synced, write)

pytestmark = pytest.mark.vm

BAD_SECTOR = 8 * 2048 + 26  # 8 MiB + 13 KiB: inside the 4 KiB block at sector 16408


def ov_ctx(n: Node) -> dict[str, Any]:
    return {"res_name": "r0", "peer_node_id": n.peer_id, "volume": 0}


def verify(a: Node, b: Node, seconds: float = 900) -> tuple[dict[str, Any], dict[str, Any]]:
    """Online verify from a; returns both probes once it ended on both."""
    marks = [kmsg_mark(n) for n in (a, b)]
    check_nl(a, "START_OV", ctx=ov_ctx(a), start_ov_parms={})
    deadline = time.monotonic() + seconds
    while True:
        pa, pb = probe(a), probe(b)
        if pa["repl"] == pb["repl"] == ESTABLISHED and \
                all("online verify done" in kmsg_after(n, m) for n, m in zip((a, b), marks)):
            return pa, pb
        assert time.monotonic() < deadline, f"verify did not end: a {pa}, b {pb}"
        time.sleep(2)


def corrupt_on_host(n: Node, sector: int) -> None:
    """Change 512 bytes of n's backing disk through the host side of its image."""
    fd = os.open(n.image, os.O_WRONLY)
    try:
        os.pwrite(fd, os.urandom(512), sector * 512)
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_done_kib(n: Node, mark: str) -> list[int]:
    """Out-of-sync KiB of every verify that ended after ``mark``."""
    return [int(k) for k in re.findall(r"online verify done: (\d+) KiB out of sync",
                                       kmsg_after(n, mark))]


def test_verify_without_verify_alg_is_refused_with_the_reason(lab: Lab, bsr_ko) -> None:
    a, b = skip_sync_pair(lab, bsr_ko)
    r = nl(a, "START_OV", ctx=ov_ctx(a), start_ov_parms={})
    assert not r["ok"] and "verify-alg" in str(r), r
    assert probe(a)["repl"] == ESTABLISHED


def test_verify_finds_a_block_changed_behind_bsr_and_reconnect_resyncs_it(
        lab: Lab, bsr_ko) -> None:
    a, b = skip_sync_pair(lab, bsr_ko, {"verify_alg": "crc32c"})
    marks = [kmsg_mark(n) for n in (a, b)]
    mark = marks[0]
    primary(a)
    write(a, 4, 16, "before-verify")
    pa, pb = verify(a, b)
    assert pa["ov_mismatch"] == pb["ov_mismatch"] == 0, (pa, pb)
    assert pa["out_of_sync"] == pb["out_of_sync"] == 0
    assert pa["rs_done"] == pa["rs_total"] > 0, pa
    assert [verify_done_kib(n, m) for n, m in zip((a, b), marks)] == [[0], [0]]

    corrupt_on_host(b, BAD_SECTOR)
    pa, pb = verify(a, b)
    # exactly the one 4 KiB block, found on both sides
    assert pa["ov_mismatch"] == pb["ov_mismatch"] == 8, (pa, pb)
    assert pa["out_of_sync"] == pb["out_of_sync"] == 8, (pa, pb)
    assert [verify_done_kib(n, m) for n, m in zip((a, b), marks)] == [[0, 4], [0, 4]]
    assert f"out of sync: start={BAD_SECTOR & ~7}, size=8" in kmsg_after(a, mark)

    # both Secondary: equal UUIDs, marked blocks -> rule 41, lower node id (a) is SyncSource
    # (a Primary would start a new generation when it disconnects: rule 50, same blocks)
    secondary(a)
    disconnect(a)
    wait_state(a, "StandAlone", 60)
    connect(a)
    pb = wait_synced(b, 300)
    wait_synced(a, 300)
    assert "uuid compare rule 41: bitmap-based resync, this node is SyncSource" in kmsg_after(a, mark)
    assert pb["rs_total"] == 8, pb
    compare(a, b)


def test_stop_verify_ends_it_early_on_both_nodes(lab: Lab, bsr_ko) -> None:
    a, b = skip_sync_pair(lab, bsr_ko, {"verify_alg": "sha256"})
    check_nl(a, "PEER_DEVICE_OPTS", ctx=ov_ctx(a),
             peer_device_conf={"c_plan_ahead": 0, "resync_rate": 2048})
    mark = [kmsg_mark(n) for n in (a, b)]
    check_nl(a, "START_OV", ctx=ov_ctx(a), start_ov_parms={})
    time.sleep(3)
    p = probe(a)
    assert p["repl"] == 9 and 0 < p["rs_done"] < p["rs_total"], p  # VerifyS
    assert probe(b)["repl"] == 10  # VerifyT
    check_nl(b, "STOP_OV", ctx=ov_ctx(b))
    deadline = time.monotonic() + 120
    while probe(a)["repl"] != ESTABLISHED or probe(b)["repl"] != ESTABLISHED:
        assert time.monotonic() < deadline, (probe(a), probe(b))
        time.sleep(1)
    for n, m in zip((a, b), mark):
        assert "online verify stopped after" in kmsg_after(n, m)
    assert probe(a)["rs_done"] < probe(a)["rs_total"]
