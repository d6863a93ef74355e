"""bsrmon on the two lab guests (issue #4): a partition and a resync land in
events.log, replication traffic in the ``network`` series."""
from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Guest
from harness.lab import Lab

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import demo_lab  # noqa: E402

pytestmark = pytest.mark.vm

T = 900
LOG = "/tmp/bsrlog"
MON = f"bsrmon --file-path {LOG} --socket /tmp/bsrmon.sock --pid-file /tmp/bsrmon.pid"
FIO_MIB = 32


def adm(g: Guest, args: str) -> str:
    return g.check(f"bsradm {args}", timeout=T, env={"BSR_HOSTNAME": g.name}).stdout


def events_log(g: Guest) -> str:
    return g.check(f"cat {LOG}/events.log", timeout=T).stdout


def wait_log(g: Guest, pattern: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    log = ""
    while time.monotonic() < deadline:
        log = events_log(g)
        if re.search(pattern, log, re.M):
            return log
        time.sleep(2)
    return log


def series(g: Guest, rel: str) -> list[list[str]]:
    out = g.run(f"grep -v '^#' {LOG}/perfmon/{rel} 2>/dev/null", timeout=T).stdout
    return [ln.split() for ln in out.splitlines()]


@pytest.fixture
def monitored(lab: Lab, bsr_ko: Path) -> Iterator[Lab]:
    """bsrmon running on both guests, then r0 up on both and Connected."""
    conf = demo_lab.bsr_conf({g.name: g.spec.disks[0].device for g in lab.nodes},
                             {g.name: Lab.addr(g) for g in lab.nodes})
    for g in lab.nodes:
        g.insmod(bsr_ko)
        g.check(f"printf %s {shlex.quote(conf)} > /etc/bsr.conf")
    starts = [g.run_async(f"rm -rf {LOG}; {MON} start --timeout 600", timeout=T) for g in lab.nodes]
    for p in starts:
        assert p.wait().rc == 0
    ups = [g.run_async("bsradm create-md --force r0 && bsradm up r0", timeout=T,
                       env={"BSR_HOSTNAME": g.name}) for g in lab.nodes]
    for p in ups:
        r = p.wait()
        assert r.rc == 0, r
    assert re.search(r"connection name:r0 .*connection:Connected",
                     wait_log(lab.a, r"connection name:r0 .*connection:Connected", 240))
    yield lab
    for g in lab.nodes:
        if g.alive:
            g.run(f"{MON} stop", timeout=T)
            g.run("bsradm down r0", timeout=T, env={"BSR_HOSTNAME": g.name})


def test_a_partition_and_the_reconnect_are_in_events_log(monitored: Lab) -> None:
    a = monitored.a
    monitored.cut_link()
    log = wait_log(a, r"^\S+ change connection name:r0 peer-node-id:1 .*connection:"
                      r"(NetworkFailure|Timeout|BrokenPipe|Unconnected|Connecting)", 180)
    lost = [ln for ln in log.splitlines()
            if "change connection name:r0" in ln and "connection:Connected" not in ln
            and "connection:" in ln]
    assert lost, f"no disconnect in events.log:\n{log}"
    monitored.restore_link()
    log = wait_log(a, r"change connection name:r0 .*connection:Connected", 240)
    after = log.split(lost[0], 1)[1]
    assert re.search(r"change connection name:r0 .*connection:Connected", after), log
    assert "sent:" not in log  # statistics go to series, not to the event log


def test_resync_and_replication_traffic_are_recorded(monitored: Lab) -> None:
    a, b = monitored.a, monitored.b
    adm(a, "primary --force r0")
    log = wait_log(a, r"replication:SyncSource", 120)
    assert "replication:SyncSource" in log, f"primary --force started no resync:\n{log[-2000:]}"
    log = wait_log(a, r"peer-disk:UpToDate", 600)
    assert re.search(r"change peer-device name:r0 .*replication:Established", log), log
    assert re.search(r"peer-disk:UpToDate", log), log

    a.check(f"fio --name=w --filename=/dev/bsr0 --rw=write --bs=1M --size={FIO_MIB}M "
            "--direct=1 --ioengine=psync --output=/dev/null", timeout=T)
    stats = a.check("bsrsetup status --statistics r0", timeout=T).stdout
    sent = max((int(v) for v in re.findall(r"\bsent:(\d+)", stats)), default=0)
    assert sent >= FIO_MIB * 1024, f"sent:{sent} KiB after {FIO_MIB} MiB written\n{stats}"
    # replication (not resync) KiB in the resync_ratio series: the periods
    # after the sync hold fio's writes once bsrmon has sampled them
    want_kib = FIO_MIB * 1024 * 0.99  # rate x period, rounded per sample
    deadline = time.monotonic() + 120
    while True:
        ratio = series(a, "r0/vnr0_peer1_resync_ratio")
        repl_kib = sum(float(ln[2]) * float(ln[1]) / 1000 for ln in ratio if ln[2] != "-")
        if repl_kib >= want_kib or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert repl_kib >= want_kib, (f"replication recorded: {repl_kib:.0f} KiB after "
                                        f"{FIO_MIB} MiB written: {ratio[-8:]}")
    out_lines = series(a, "r0/peer1_network")
    in_lines = series(b, "r0/peer0_network")
    sent_b = sum(float(ln[2]) * float(ln[1]) / 1000 for ln in out_lines if ln[2] != "-")
    recv_b = sum(float(ln[3]) * float(ln[1]) / 1000 for ln in in_lines if ln[3] != "-")
    print(f"network series: a sent {sent_b / 2**20:.1f} MiB, b received {recv_b / 2**20:.1f} MiB "
          f"for {FIO_MIB} MiB written (+ resync)")
    assert sent_b >= FIO_MIB << 20, out_lines[-5:]
    assert recv_b >= FIO_MIB << 20, in_lines[-5:]
    assert any(ln[3] not in ("0", "-") and float(ln[3]) > 0 for ln in ratio), ratio[-5:]
