"""Planned failover and back: Primary A writes, A steps down, B takes over
and writes, B steps down, A takes over and writes again.  After every step
the data areas of both backing disks are identical (sha256), and the new
Primary sees every acknowledged write of the old one (ackwriter check).

Runs against DRBD 8.4 (reference) and bsr (protocol C)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.lab import Lab
from repl_lab import BACKENDS, PAIRS, Node, Pair, ackwriter_cmd, data_sha256, nodes, zero_image

pytestmark = pytest.mark.vm

BLOCKS = 4096  # 16 MiB
SECONDS = 8


def write_and_check(pair: Pair, writer: Node, log: Path, start_seq: int) -> int:
    """ackwriter on ``writer`` (must be Primary), then a check on it; acks."""
    w = writer.g.run(ackwriter_cmd("write", pair.device, log, BLOCKS, threads=4, seconds=SECONDS,
                                   seed=start_seq + 1, start_seq=start_seq), timeout=SECONDS + 300)
    assert w.rc == 0, f"{writer.g.name}: writer failed: {w.stdout}{w.stderr}"
    return int(json.loads(w.stdout.strip().splitlines()[-1])["acked"])


def check_on(pair: Pair, n: Node, log: Path) -> dict[str, object]:
    r = n.g.run(ackwriter_cmd("check", pair.device, log, BLOCKS), timeout=600)
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.rc == 0 and found["ok"], f"{n.g.name}: acknowledged writes missing: {found}"
    return found


def same_data(pair: Pair, step: str) -> None:
    size = pair.data_bytes(pair.a if pair.a.g.alive else pair.b)
    ha, hb = (data_sha256(n, pair.disk_of(n), size) for n in (pair.a, pair.b))
    assert ha == hb, f"after {step}: data areas differ: a {ha} b {hb}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_planned_failover_to_b_and_back_keeps_both_disks_identical(lab: Lab, backend: str,
                                                                   request: pytest.FixtureRequest) -> None:
    ko = request.getfixturevalue("bsr_ko") if backend == "bsr" else Path()
    a, b = nodes(lab)
    pair = PAIRS[backend](ko, "C")(a, b)
    log = lab.workdir / "shared" / "failover-acks"
    log.mkdir(parents=True, exist_ok=True)
    for f in log.glob("ack.*"):
        f.unlink()
    try:
        for n in (a, b):
            zero_image(n)
        pair.setup(primary=a)
        assert write_and_check(pair, a, log, 0) > 0
        same_data(pair, "writes on A")
        # A -> B
        pair.secondary(a)
        pair.primary(b)
        check_on(pair, b, log)
        assert write_and_check(pair, b, log, 10**9) > 0
        same_data(pair, "failover to B and writes on B")
        # B -> A
        pair.secondary(b)
        pair.primary(a)
        found = check_on(pair, a, log)
        assert write_and_check(pair, a, log, 2 * 10**9) > 0
        same_data(pair, "failback to A and writes on A")
        assert found["acked_blocks"] > 0
    finally:
        pair.teardown()
