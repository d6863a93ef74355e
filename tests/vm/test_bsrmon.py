"""bsrmon against the real module in a guest (single node).

A 256 MiB fio write to /dev/bsr0 shows up in iostat and report within 5 %;
the Prometheus endpoint serves text that prometheus_client's parser accepts;
role and disk changes land in events.log; SIGKILL and restart lose nothing.
(Disconnect, resync and network traffic need replication: not yet here.)
"""
from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import Guest
from harness.plugin import pick_disks

pytestmark = pytest.mark.vm

T = 300  # guests run under TCG on a busy host
LOG = "/tmp/bsrlog"
MON = f"bsrmon --file-path {LOG} --socket /tmp/bsrmon.sock --pid-file /tmp/bsrmon.pid"
FIO_MIB = 256


@pytest.fixture(scope="module")
def node(solo: Guest, bsr_ko) -> Guest:
    g = solo
    g.insmod(bsr_ko)
    disk = pick_disks(g, [FIO_MIB + 64])[0].device
    g.check(f"bsrmeta --force 0 v1 {disk} internal create-md --max-peers=1 --peer-node-ids=1",
            timeout=T)
    g.check(f"rm -rf {LOG}; {MON} start --timeout 240 --listen 127.0.0.1:9942", timeout=T)
    g.check(f"bsrsetup new-resource r0 0 && bsrsetup new-minor r0 0 0 && "
            f"bsrsetup attach 0 {disk} {disk} internal && bsrsetup primary --force r0", timeout=T)
    yield g
    if g.alive:
        g.run(f"{MON} stop; bsrsetup down r0", timeout=T)
        g.rmmod("bsr")


def _wait_lines(g: Guest, rel: str, n: int, timeout: float = 120) -> list[str]:
    end = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < end:
        r = g.run(f"grep -v '^#' {LOG}/perfmon/{rel} 2>/dev/null", timeout=T)
        lines = r.stdout.splitlines()
        if len(lines) >= n:
            return lines
        time.sleep(0.25)
    raise AssertionError(f"{rel}: only {len(lines)} lines after {timeout} s")


def test_fio_write_shows_up_in_iostat_and_report_within_5_percent(node: Guest) -> None:
    g = node
    _wait_lines(g, "r0/vnr0_iostat", 2)
    g.check(f"fio --name=w --filename=/dev/bsr0 --rw=write --bs=1M --size={FIO_MIB}M "
            "--direct=1 --ioengine=psync --output=/dev/null", timeout=T)
    time.sleep(4)  # two more periods: the last counters are sampled
    rep = json.loads(g.check(f"{MON} report iostat r0 --json", timeout=T).stdout)
    (io,) = rep
    kib = io["columns"]["w_kibs"]["total"]
    print(f"fio wrote {FIO_MIB * 1024} KiB; report total {kib:.1f} KiB "
          f"({100 * kib / (FIO_MIB * 1024):.2f} %), w_iops total {io['columns']['w_iops']['total']:.1f}, "
          f"max {io['columns']['w_kibs']['max']:.0f} KiB/s")
    assert kib == pytest.approx(FIO_MIB * 1024, rel=0.05), io
    assert io["columns"]["w_iops"]["total"] == pytest.approx(FIO_MIB, rel=0.05)
    assert io["columns"]["w_kibs"]["max"] > 0
    # the same from the raw lines: sum of rate x interval
    lines = _wait_lines(g, "r0/vnr0_iostat", 2)
    total = sum(float(ln.split()[5]) * float(ln.split()[1]) / 1000 for ln in lines)
    assert total == pytest.approx(FIO_MIB * 1024, rel=0.05)
    lat = _wait_lines(g, "r0/vnr0_ioclat", 2)
    busy = [ln.split() for ln in lat if ln.split()[3] not in ("0", "-")]
    assert busy, "no latency recorded while fio ran"
    lo, avg, hi = (float(x) for x in busy[0][2:5])
    assert 0 <= lo <= avg <= hi


def test_metrics_endpoint_is_valid_exposition_text(node: Guest) -> None:
    text = node.check("curl -sf http://127.0.0.1:9942/metrics", timeout=T).stdout
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    (w,) = fams["bsr_device_written_bytes"].samples
    assert w.labels == {"name": "r0", "volume": "0", "minor": "0"}
    assert w.value >= FIO_MIB << 20 or w.value == 0  # 0 when run before the fio test
    roles = {s.labels["role"]: s.value for s in fams["bsr_resource_role"].samples}
    assert roles["Primary"] == 1
    disk = {s.labels["state"]: s.value for s in fams["bsr_device_state"].samples}
    assert disk["UpToDate"] == 1


def test_role_and_disk_changes_are_in_the_event_log(node: Guest) -> None:
    log = node.check(f"cat {LOG}/events.log", timeout=T).stdout
    assert "create resource name:r0" in log
    assert "device name:r0 volume:0 minor:0 disk:UpToDate" in log
    assert "change resource name:r0 role:Primary" in log
    assert "written:" not in log  # statistics are series, not events


def test_sigkill_and_restart_lose_nothing(node: Guest) -> None:
    g = node
    before = _wait_lines(g, "r0/vnr0_iostat", 3)
    g.check("kill -9 $(cat /tmp/bsrmon.pid)", timeout=T)
    assert g.run(f"{MON} status", timeout=T).rc == 3
    g.check(f"{MON} start --timeout 240 --listen 127.0.0.1:9942", timeout=T)
    after = _wait_lines(g, "r0/vnr0_iostat", len(before) + 3)
    assert after[:len(before)] == before
    assert g.check(f"{MON} status", timeout=T).rc == 0
