"""bsradm on the two lab guests: one bsr.conf in the seeds' style with an
``on HOST`` section per node, driven only through bsradm (issue #5).

Node a picks its section with ``--host a``, node b with $BSR_HOSTNAME, so
both ways of naming the local host are exercised against the real module.
"""
from __future__ import annotations

import re
import shlex
import time

import pytest

from harness import Guest, Pending
from harness.lab import Lab

pytestmark = pytest.mark.vm

T = 900  # one bsradm call: a Python start in a TCG guest on a loaded host


def volume(nr: int, disk: str) -> str:
    return (f"        volume {nr} {{\n"
            f"            device /dev/bsr{nr} minor {nr};\n"
            f"            disk {disk};\n"
            f"            meta-disk internal;\n"
            f"        }}\n")


def config(lab: Lab, ping_int: int = 10, protocol: str = "C", resync_rate: str = "20M",
           vol1: dict[str, str] | None = None, disk_extra: str = "") -> str:
    """r0 with volume 0 on the lab disk; ``vol1`` (node name -> device) adds volume 1."""
    hosts = ""
    for node_id, g in enumerate(lab.nodes):
        hosts += (f"    on {g.name} {{\n"
                  f"        node-id {node_id};\n"
                  f"        address ipv4 {Lab.addr(g)}:7789;\n"
                  + volume(0, g.spec.disks[0].device)
                  + (volume(1, vol1[g.name]) if vol1 else "")
                  + "    }\n")
    return ("resource r0 {\n"
            f"    net {{\n        protocol {protocol};\n        ping-int {ping_int};\n"
            "        connect-int 2;\n    }\n"
            f"    disk {{\n        resync-rate {resync_rate};\n{disk_extra}    }}\n"
            f"{hosts}}}\n")


def adm_cmd(g: Guest, args: str) -> str:
    if g.name == "a":
        return f"bsradm --host a {args}"
    return f"BSR_HOSTNAME={g.name} bsradm {args}"


def adm(g: Guest, args: str) -> str:
    return g.check(adm_cmd(g, args), timeout=T).stdout


def on_both(lab: Lab, args: str) -> None:
    """Run the same bsradm command on a and b at the same time."""
    pending: list[Pending] = [g.run_async(adm_cmd(g, args), timeout=T) for g in lab.nodes]
    for g, p in zip(lab.nodes, pending):
        r = p.wait()
        assert r.rc == 0, f"{g.name}: bsradm {args}: rc={r.rc}\n{r.stdout}{r.stderr}"


def write_config(lab: Lab, **opts: object) -> None:
    text = config(lab, **opts)  # type: ignore[arg-type]
    for g in lab.nodes:
        g.check(f"printf %s {shlex.quote(text)} > /etc/bsr.conf")


def wait_cstate(g: Guest, wanted: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    seen = ""
    while time.monotonic() < deadline:
        seen = g.run(adm_cmd(g, "cstate r0"), timeout=T).stdout.strip()
        if seen == wanted:
            return
        time.sleep(1)
    pytest.fail(f"{g.name}: cstate stayed {seen!r}, wanted {wanted} within {seconds:g}s")


def status(g: Guest) -> str:
    return adm(g, "status r0")


@pytest.fixture
def pair(lab: Lab, bsr_ko) -> Lab:
    for g in lab.nodes:
        g.insmod(bsr_ko)
    write_config(lab)
    yield lab
    for g in lab.nodes:
        if g.alive:
            g.run(adm_cmd(g, "down r0"), timeout=T)


def test_up_on_both_connects_then_adjust_applies_only_changes_and_down_cleans_up(pair: Lab) -> None:
    a, b = pair.a, pair.b
    dev_a = a.spec.disks[0].device
    assert adm(a, "-d up r0").splitlines() == [
        "bsrsetup new-resource r0 0",
        "bsrsetup new-minor r0 0 0",
        f"bsrsetup attach 0 {dev_a} {dev_a} internal",
        "bsrsetup new-peer r0 1 --_name=b --protocol=C --connect-int=2 --ping-int=10",
        "bsrsetup new-path r0 1 ipv4:198.18.0.1:7789 ipv4:198.18.0.2:7789",
        "bsrsetup peer-device-options r0 1 0 --resync-rate=20480",
        "bsrsetup connect r0 1",
    ]
    on_both(pair, "create-md --force r0")
    on_both(pair, "up r0")
    wait_cstate(a, "Connected")
    wait_cstate(b, "Connected")

    # like drbdadm status: resource line, own disk, then one block per peer
    out = status(a)
    assert re.search(r"^r0 role:Secondary$", out, re.M), out
    assert re.search(r"^  disk:Inconsistent$", out, re.M), out
    assert re.search(r"^  b role:Secondary$", out, re.M), out
    assert re.search(r"^    peer-disk:Inconsistent$", out, re.M), out
    assert re.search(r"^  a role:Secondary$", status(b), re.M)

    # nothing changed: adjust has nothing to do on either node
    for g in pair.nodes:
        assert adm(g, "-d adjust r0") == "", g.name

    # a net option and a peer-device option change: only those are applied
    write_config(pair, ping_int=7, resync_rate="30M")
    assert adm(a, "-d adjust r0").splitlines() == [
        "bsrsetup net-options r0 1 --ping-int=7",
        "bsrsetup peer-device-options r0 1 0 --resync-rate=30720",
    ]
    on_both(pair, "adjust r0")
    for g in pair.nodes:
        assert adm(g, "-d adjust r0") == "", g.name
    shown = a.check("bsrsetup show r0", timeout=T).stdout
    assert re.search(r"ping-int\s+7;", shown), shown
    assert re.search(r"resync-rate\s+(30M|30720k?);", shown), shown  # 30 MiB/s, either unit
    wait_cstate(a, "Connected", 60)  # the change did not cost the connection

    # disconnect/connect on one side: the other keeps trying meanwhile
    adm(a, "disconnect r0")
    assert adm(a, "cstate r0").strip() == "StandAlone"
    wait_cstate(b, "Connecting", 120)
    adm(a, "connect r0")
    wait_cstate(a, "Connected")
    wait_cstate(b, "Connected")

    on_both(pair, "down r0")
    for g in pair.nodes:
        assert g.run("test -e /dev/bsr0").rc != 0, g.name
        assert g.run(adm_cmd(g, "role r0"), timeout=T).rc == 1, g.name
        assert g.check("bsrsetup status", timeout=T).stdout.strip() == "", g.name


def test_protocol_change_is_applied_by_adjust_while_connected(pair: Lab) -> None:
    on_both(pair, "create-md --force r0")
    on_both(pair, "up r0")
    wait_cstate(pair.a, "Connected")
    write_config(pair, protocol="A")
    assert adm(pair.a, "-d adjust r0").splitlines() == ["bsrsetup net-options r0 1 --protocol=A"]
    on_both(pair, "adjust r0")
    for g in pair.nodes:
        assert adm(g, "-d adjust r0") == "", g.name
        assert re.search(r"protocol\s+A;", g.check("bsrsetup show r0", timeout=T).stdout)
    wait_cstate(pair.a, "Connected", 120)


def wait_peer_disk(g: Guest, wanted: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    out = ""
    while time.monotonic() < deadline:
        out = status(g)
        if re.search(rf"^    peer-disk:{wanted}$", out, re.M):
            return out
        time.sleep(2)
    return out


def test_seed_scenario_initial_sync_manual_failover_and_down_while_primary(pair: Lab) -> None:
    """The seeds' admin guide (002): up, primary --force starts the initial
    sync, manual fail-over (secondary here, primary there), down demotes
    first."""
    a, b = pair.a, pair.b
    on_both(pair, "create-md --force r0")
    on_both(pair, "up r0")
    wait_cstate(a, "Connected")

    adm(a, "primary --force r0")
    out = status(a)
    assert re.search(r"^r0 role:Primary$", out, re.M), out
    assert re.search(r"^  disk:UpToDate$", out, re.M), out
    assert re.search(r"^  a role:Primary$", status(b), re.M)

    out = wait_peer_disk(a, "UpToDate", 300)
    assert re.search(r"^    peer-disk:UpToDate$", out, re.M), \
        f"initial sync after primary --force did not finish within 300 s:\n{out}"

    # manual fail-over, as the guide describes it
    adm(a, "secondary r0")
    adm(b, "primary r0")
    assert adm(b, "role r0").strip() == "Primary"
    assert re.search(r"^  b role:Primary$", status(a), re.M)

    # down on the Primary demotes first, then disconnects, detaches, deletes
    assert adm(b, "-d down r0").splitlines() == ["bsrsetup down r0"]
    adm(b, "down r0")
    assert b.run("test -e /dev/bsr0").rc != 0
    wait_cstate(a, "Connecting", 120)
    adm(a, "down r0")


# ---------------------------------------------------------------- adjust adds and removes a volume

LISTEN = "setsid bsrsetup events2 r0 > {out} 2>&1 < /dev/null & echo $! > {out}.pid"
# a bounded write load on /dev/bsr0: 64 KiB direct writes until /tmp/stop (or 3000 of them)
LOAD = ("i=0; while [ ! -e /tmp/stop ] && [ $i -lt 3000 ]; do "
        "dd if=/dev/urandom of=/dev/bsr0 bs=64k count=1 seek=$((i % 900)) "
        "oflag=direct conv=notrunc status=none || exit 1; i=$((i+1)); done; echo $i")


def fields(line: str) -> tuple[str, str, dict[str, str]]:
    """verb, object, key:value pairs of one events2 text line."""
    words = line.split()
    kv = dict(w.split(":", 1) for w in words[2:] if ":" in w)
    return words[0], words[1], kv


def objects_now(g: Guest) -> list[tuple[str, dict[str, str]]]:
    out = g.check("bsrsetup events2 --now r0", timeout=T).stdout
    return [(obj, kv) for verb, obj, kv in map(fields, out.splitlines())
            if verb == "exists" and obj != "-"]


def vol_state(g: Guest, vol: int) -> tuple[str, str, str]:
    """(disk, replication, peer-disk) of volume ``vol``; '' for what is not there."""
    disk = repl = peer = ""
    for obj, kv in objects_now(g):
        if kv.get("volume") != str(vol):
            continue
        if obj == "device":
            disk = kv.get("disk", "")
        elif obj == "peer-device":
            repl, peer = kv.get("replication", ""), kv.get("peer-disk", "")
    return disk, repl, peer


def wait_vol(g: Guest, vol: int, want: tuple[str, str, str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    seen = vol_state(g, vol)
    while seen != want and time.monotonic() < deadline:
        time.sleep(2)
        seen = vol_state(g, vol)
    assert seen == want, f"{g.name}: volume {vol} is {seen}, wanted {want} within {seconds:g}s"


def loop_disk(g: Guest, mib: int) -> str:
    g.check("modprobe loop", timeout=T)
    g.check(f"truncate -s {mib}M /tmp/vol1.img", timeout=T)
    return g.check("losetup -f --show /tmp/vol1.img", timeout=T).stdout.strip()


def data_sha(g: Guest, disk: str, nbytes: int) -> str:
    return g.check(f"dd if={disk} bs=1M count={nbytes} iflag=direct,count_bytes status=none "
                   "| sha256sum", timeout=T).stdout.split()[0]


def undisturbed(log: str) -> list[str]:
    """events2 lines that show the connection or volume 0's replication moving."""
    bad = []
    for line in log.splitlines():
        verb, obj, kv = fields(line) if len(line.split()) >= 2 else ("", "", {})
        if verb not in ("change", "destroy"):
            continue
        if obj == "connection" and (verb == "destroy" or kv.get("connection", "Connected") != "Connected"):
            bad.append(line)
        if obj == "peer-device" and kv.get("volume") == "0" and (
                verb == "destroy" or kv.get("replication", "Established") != "Established"):
            bad.append(line)
    return bad


def test_adjust_adds_a_volume_to_a_replicating_primary_and_removes_it_without_disturbing_volume_0(
        pair: Lab) -> None:
    a, b = pair.a, pair.b
    on_both(pair, "create-md --force r0")
    on_both(pair, "up r0")
    wait_cstate(a, "Connected")
    wait_cstate(b, "Connected")
    adm(a, "primary --force r0")
    wait_vol(a, 0, ("UpToDate", "Established", "UpToDate"), 300)
    for g in pair.nodes:
        g.check("rm -f /tmp/stop /tmp/ev.log; " + LISTEN.format(out="/tmp/ev.log"), timeout=T)
    load = a.run_async(LOAD, timeout=1200)

    # the configuration gains volume 1 on a loop device of each node
    vol1 = {g.name: loop_disk(g, 64) for g in pair.nodes}
    write_config(pair, vol1=vol1)
    on_both(pair, "create-md --force r0/1")
    plan = adm(a, "-d adjust r0").splitlines()
    assert plan[:2] == ["bsrsetup new-minor r0 1 1",
                        f"bsrsetup attach 1 {vol1['a']} {vol1['a']} internal"], plan
    adm(a, "adjust r0")  # a first: its P_VOL_JOIN waits on b for b's volume
    wait_vol(a, 1, ("Inconsistent", "Off", "DUnknown"), 30)
    t0 = time.monotonic()
    adm(b, "adjust r0")
    for g in pair.nodes:
        wait_vol(g, 1, ("Inconsistent", "Established", "Inconsistent"), 60)
        assert re.search(r"volume:1", status(g)), status(g)
    joined = time.monotonic() - t0

    # the DRBD 9 way to the initial sync of an added volume: primary --force on the Primary
    t0 = time.monotonic()
    adm(a, "primary --force r0")
    wait_vol(a, 1, ("UpToDate", "Established", "UpToDate"), 300)
    wait_vol(b, 1, ("UpToDate", "Established", "UpToDate"), 60)
    print(f"volume 1: Established on both {joined:.1f} s after adjust on b; "
          f"initial sync of 64 MiB done {time.monotonic() - t0:.1f} s after primary --force")
    a.check("dd if=/dev/urandom of=/dev/bsr1 bs=1M count=8 seek=4 oflag=direct status=none",
            timeout=T)

    a.check("touch /tmp/stop", timeout=T)
    r = load.wait()
    assert r.rc == 0 and int(r.stdout.split()[-1]) > 0, r
    print(f"write load on /dev/bsr0: {r.stdout.split()[-1]} x 64 KiB while volume 1 was added")
    for g in pair.nodes:
        assert adm(g, "-d adjust r0") == "", g.name
    wait_vol(a, 0, ("UpToDate", "Established", "UpToDate"), 30)
    for vol, disks in ((0, {g.name: g.spec.disks[0].device for g in pair.nodes}), (1, vol1)):
        nbytes = int(a.check(f"blockdev --getsize64 /dev/bsr{vol}", timeout=T).stdout)
        assert nbytes > 0
        sums = {g.name: data_sha(g, disks[g.name], nbytes) for g in pair.nodes}
        assert sums["a"] == sums["b"], f"volume {vol}: {sums}"

    # volume 1 leaves the configuration: adjust detaches and deletes it on both
    write_config(pair)
    assert adm(a, "-d adjust r0").splitlines() == ["bsrsetup detach 1", "bsrsetup del-minor 1"]
    adm(a, "adjust r0")
    adm(b, "adjust r0")
    for g in pair.nodes:
        assert g.run("test -e /dev/bsr1").rc != 0, g.name
        assert vol_state(g, 1) == ("", "", ""), g.name
        assert adm(g, "-d adjust r0") == "", g.name
        g.check(f"losetup -d {vol1[g.name]}", timeout=T)
    wait_vol(a, 0, ("UpToDate", "Established", "UpToDate"), 30)
    a.check("dd if=/dev/urandom of=/dev/bsr0 bs=64k count=16 oflag=direct status=none", timeout=T)

    for g in pair.nodes:
        print(g.name, g.check("dmesg | grep -E 'r0/1|joined|detached its' || true", timeout=T).stdout)
        g.check("kill $(cat /tmp/ev.log.pid)", timeout=T)
        log = g.check("cat /tmp/ev.log", timeout=T).stdout
        assert re.search(r"^create device name:r0 volume:1", log, re.M), log
        assert re.search(r"^destroy device name:r0 volume:1", log, re.M), log
        assert undisturbed(log) == [], f"{g.name}:\n" + "\n".join(undisturbed(log))


def oos_kib(g: Guest) -> int:
    out = g.check("bsrsetup events2 --now --statistics r0", timeout=T).stdout
    for verb, obj, kv in map(fields, out.splitlines()):
        if verb == "exists" and obj == "peer-device" and kv.get("volume") == "0":
            return int(kv["out-of-sync"])
    raise AssertionError(out)


def sync_rate(g: Guest, seconds: float) -> float:
    """MiB/s the out-of-sync count of ``g``'s peer shrinks by over ``seconds``."""
    t0, before = time.monotonic(), oos_kib(g)
    time.sleep(seconds)
    t1, after = time.monotonic(), oos_kib(g)
    assert after > 0, "the resync finished before the rate was measured"
    return (before - after) / 1024 / (t1 - t0)


def test_adjust_changes_the_resync_rate_of_a_running_resync(pair: Lab) -> None:
    a, b = pair.a, pair.b
    write_config(pair, resync_rate="512k", disk_extra="        c-plan-ahead 0;\n")
    on_both(pair, "create-md --force r0")
    on_both(pair, "up r0")
    wait_cstate(a, "Connected")
    wait_cstate(b, "Connected")
    adm(a, "primary --force r0")  # full sync of the 128 MiB disk at a fixed 512 KiB/s
    time.sleep(3)
    slow = sync_rate(a, 8)

    # 8M, not more: on an idle host a faster sync would end before it is measured
    write_config(pair, resync_rate="8M", disk_extra="        c-plan-ahead 0;\n")
    assert adm(a, "-d adjust r0").splitlines() == [
        "bsrsetup peer-device-options r0 1 0 --resync-rate=8192"]
    on_both(pair, "adjust r0")
    time.sleep(1)
    fast = sync_rate(a, 3)
    print(f"resync rate: {slow:.2f} MiB/s at resync-rate 512k, {fast:.2f} MiB/s after adjust to 8M")
    assert 0.2 < slow < 1.0, slow
    assert fast > 3 * slow, (slow, fast)
    for g in pair.nodes:
        assert adm(g, "-d adjust r0") == "", g.name


def resync_kib(g: Guest, since: int) -> list[int]:
    """KiB of each 'SyncSource: N KiB to sync' of volume 1 logged after dmesg line ``since``."""
    out = g.check("dmesg", timeout=T).stdout.splitlines()[since:]
    return [int(m.group(1)) for line in out
            if (m := re.search(r"r0/1 peer \d+: SyncSource: (\d+) KiB to sync", line))]


def test_adjust_on_both_at_once_and_a_reattached_volume_resyncs_only_its_changes(pair: Lab) -> None:
    a, b = pair.a, pair.b
    on_both(pair, "create-md --force r0")
    on_both(pair, "up r0")
    wait_cstate(a, "Connected")
    adm(a, "primary --force r0")
    wait_vol(a, 0, ("UpToDate", "Established", "UpToDate"), 300)
    for g in pair.nodes:
        g.check("rm -f /tmp/ev.log; " + LISTEN.format(out="/tmp/ev.log"), timeout=T)

    # both nodes adjust at the same time: the two P_VOL_JOINs cross
    vol1 = {g.name: loop_disk(g, 32) for g in pair.nodes}
    write_config(pair, vol1=vol1)
    on_both(pair, "create-md --force r0/1")
    on_both(pair, "adjust r0")
    for g in pair.nodes:
        wait_vol(g, 1, ("Inconsistent", "Established", "Inconsistent"), 60)
    adm(a, "primary --force r0")
    wait_vol(b, 1, ("UpToDate", "Established", "UpToDate"), 300)

    # b detaches volume 1 while a writes to it; attached again it gets only the changes
    adm(b, "detach r0/1")
    wait_vol(a, 1, ("UpToDate", "Established", "Diskless"), 30)
    a.check("dd if=/dev/urandom of=/dev/bsr1 bs=1M count=4 seek=8 oflag=direct status=none",
            timeout=T)
    mark = len(a.check("dmesg", timeout=T).stdout.splitlines())
    adm(b, "adjust r0")  # the configuration still has the disk: adjust attaches it
    wait_vol(b, 1, ("UpToDate", "Established", "UpToDate"), 120)
    wait_vol(a, 1, ("UpToDate", "Established", "UpToDate"), 30)
    synced = resync_kib(a, mark)
    print(f"re-attached volume 1: resync of {synced} KiB after 4 MiB written without it")
    assert synced and 4096 <= synced[0] <= 8192, synced
    nbytes = int(a.check("blockdev --getsize64 /dev/bsr1", timeout=T).stdout)
    sums = {g.name: data_sha(g, vol1[g.name], nbytes) for g in pair.nodes}
    assert sums["a"] == sums["b"], sums

    # and both remove it at the same time: the two P_VOL_LEAVEs cross the del-minors
    write_config(pair)
    on_both(pair, "adjust r0")
    for g in pair.nodes:
        assert vol_state(g, 1) == ("", "", ""), g.name
        assert adm(g, "-d adjust r0") == "", g.name
        g.check(f"losetup -d {vol1[g.name]}", timeout=T)
        g.check("kill $(cat /tmp/ev.log.pid)", timeout=T)
        log = g.check("cat /tmp/ev.log", timeout=T).stdout
        assert undisturbed(log) == [], f"{g.name}:\n" + "\n".join(undisturbed(log))
    wait_vol(a, 0, ("UpToDate", "Established", "UpToDate"), 30)
