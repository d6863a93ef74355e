"""bsrmeta and bsr.ko agree on the metadata; attach refuses what is not ours;
a crash while Primary is recovered from the activity log."""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from bsr import meta as M
from bsr.abi import MdFlag
from harness import Disk, Guest
from harness.plugin import pick_disks

pytestmark = pytest.mark.vm

DEVINFO = r"""
import json
from bsr.netlink import BsrNetlink
with BsrNetlink() as nl:
    for m in nl.dump("GET_DEVICES"):
        if m.minor == 0:
            print(json.dumps({"info": m.structs.get("device_info", {}),
                              "stats": m.structs.get("device_stats", {})}, default=str))
"""
T = 300  # bound for one guest command: guests share 2 host cores with the team


def devinfo(g: Guest) -> dict:
    out = g.check(f"{g.py} -c {shlex.quote(DEVINFO)}", timeout=T).stdout.strip().splitlines()
    assert out, "device 0 not found"
    return json.loads(out[-1])


def setup_device(g: Guest) -> None:
    g.check("bsrsetup new-resource r0 0 && bsrsetup new-minor r0 0 0", timeout=T)


def attach(g: Guest, disk: str) -> "object":
    return g.run(f"bsrsetup attach 0 {disk} {disk} internal", timeout=T)


def sha(g: Guest, disk: str) -> str:
    return g.check(f"sha256sum {disk}", timeout=T).stdout.split()[0]


@pytest.fixture(scope="module")
def disks(solo: Guest) -> list[Disk]:
    """The module's two 64 MiB disks of the session's single-node guest."""
    return pick_disks(solo, [64, 64])


@pytest.fixture
def node(solo: Guest, bsr_ko) -> Guest:
    g = solo
    if not g.alive:
        g.boot()
    g.rmmod("bsr")
    g.insmod(bsr_ko)
    yield g
    if g.alive:
        g.run("bsrsetup down r0", timeout=T)
        g.rmmod("bsr")


def test_create_md_attach_detach_and_dump_md_agree(node: Guest, disks: list[Disk]) -> None:
    d = disks[0].device
    node.check(f"bsrmeta --force 0 v1 {d} internal create-md --max-peers=2 --peer-node-ids=1",
               timeout=T)
    setup_device(node)
    r = attach(node, d)
    assert r.ok, r.stderr
    info = devinfo(node)
    di = info["info"]
    assert int(di["current_uuid"]) == M.UUID_JUST_CREATED
    assert int(di["max_peers"]) == 2
    assert not int(di["md_flags"]) & MdFlag.AL_CLEAN  # in use
    assert not int(di.get("unclean_attach", 0))
    # while attached bsrmeta must not write the disk
    r = node.run(f"bsrmeta --force 0 v1 {d} internal create-md", timeout=T)
    assert r.rc == 10 and "in use" in r.stderr, r.stderr
    node.check("bsrsetup primary --force r0", timeout=T)
    node.check("dd if=/dev/urandom of=/dev/bsr0 bs=1M count=8 seek=4 oflag=direct", timeout=T)
    st = devinfo(node)["stats"]
    assert int(st["al_writes"]) >= 1 and int(st["al_misses"]) >= 2
    cur = int(devinfo(node)["info"]["current_uuid"])
    node.check("bsrsetup secondary r0 && bsrsetup detach 0", timeout=T)
    dump = node.check(f"bsrmeta 0 v1 {d} internal dump-md", timeout=T).stdout
    assert f"current-uuid 0x{cur:016X}\n" in dump
    flags = int(dump.split("\nflags ")[1].split()[0], 16)
    assert flags & MdFlag.AL_CLEAN and flags & MdFlag.CLEAN_SHUTDOWN
    assert "peer 0 node-id 1 " in dump
    # the clean close left nothing to replay
    out = node.check(f"bsrmeta --force 0 v1 {d} internal apply-al", timeout=T).stdout
    assert "applied 0 activity log extents" in out


def _refused(node: Guest, d: str, why: str) -> None:
    before = sha(node, d)
    setup_device(node)
    r = attach(node, d)
    assert r.rc != 0
    assert why in (r.stderr + r.stdout), r.stderr
    assert devinfo(node)["info"]["disk_state"] in (0, "0", "Diskless")
    assert sha(node, d) == before
    node.check("bsrsetup down r0", timeout=T)


def test_attach_refuses_ext4_without_writing(node: Guest, disks: list[Disk]) -> None:
    d = disks[1].device
    node.check(f"mkfs.ext4 -q -F {d}", timeout=T)
    _refused(node, d, "no bsr metadata found on")


@pytest.mark.skipif(not shutil.which("drbdmeta"), reason="needs drbd-utils")
def test_attach_refuses_drbd84_metadata_without_writing(node: Guest, disks: list[Disk]) -> None:
    d = disks[1].device
    node.check(f"dd if=/dev/zero of={d} bs=1M count=64 oflag=direct status=none", timeout=T)
    node.check(f"drbdmeta --force 0 v08 {d} internal create-md </dev/null", timeout=T)
    _refused(node, d, "no bsr metadata found on")


def test_attach_refuses_bad_checksum_without_writing(node: Guest, disks: list[Disk]) -> None:
    d = disks[1].device
    node.check(f"bsrmeta --force 0 v1 {d} internal create-md", timeout=T)
    # flip one byte of the node-id field in the last 4 KiB (the superblock)
    size = int(node.check(f"blockdev --getsize64 {d}", timeout=T).stdout)
    off = size - 4096 + 0x4C
    node.check(f"printf '\\x07' | dd of={d} bs=1 seek={off} conv=notrunc status=none", timeout=T)
    _refused(node, d, "metadata checksum mismatch")


def _host_md(img: Path) -> M.Metadata:
    dev = M.Device(str(img))
    return M.read_metadata(dev, M.geometry(M.Layout.INTERNAL, dev.size, dev.size))


def test_crash_while_primary_replays_the_activity_log(node: Guest, disks: list[Disk], tmp_path: Path,
                                                      bsr_ko) -> None:
    disk = disks[0]
    d = disk.device
    node.check(f"bsrmeta --force 0 v1 {d} internal create-md --al-extents=67", timeout=T)
    setup_device(node)
    assert attach(node, d).ok
    node.check("bsrsetup primary --force r0", timeout=T)
    fio = node.run_async(
        "fio --name=w --filename=/dev/bsr0 --direct=1 --rw=randwrite --bs=4k "
        "--iodepth=8 --ioengine=libaio --time_based --runtime=60 --size=60M",
        timeout=T)
    # let fio get going: a few thousand completed writes on /dev/bsr0
    node.check("for i in $(seq 1500); do w=$(awk '{print $5}' /sys/block/bsr0/stat); "
               "[ \"$w\" -gt 3000 ] && exit 0; sleep 0.2; done; exit 1", timeout=T)
    assert not fio.done(), "fio ended early"
    node.kill()

    # offline: the AL is unclean and names the extents fio was writing
    img = disk.path
    md = _host_md(img)
    assert not md.sb.flags & MdFlag.AL_CLEAN
    assert md.sb.flags & MdFlag.PRIMARY_IND
    active, last_tr = M.al_replay(md.read_al())
    md.meta.close()
    assert last_tr > 0 and active, "no active extents in the AL"
    copy = tmp_path / "copy.img"
    subprocess.run(["cp", "--sparse=always", str(img), str(copy)], check=True)
    from bsr.meta_cli import run
    assert run(["0", "v1", str(copy), "internal", "apply-al"]) == 0
    cmd = _host_md(copy)
    oos_blocks = M.count_bits(cmd.read_bitmap(0))
    cmd.meta.close()
    assert oos_blocks >= len(active) * M.BITS_PER_EXTENT - M.BITS_PER_EXTENT

    node.boot()
    node.insmod(bsr_ko)
    setup_device(node)
    r = attach(node, d)
    assert r.ok, r.stderr
    info = devinfo(node)
    di, st = info["info"], info["stats"]
    assert int(di["unclean_attach"]) == 1
    assert int(di["al_replayed"]) == len(active)
    assert int(di["md_flags"]) & MdFlag.CRASHED_PRIMARY
    assert int(st["out_of_sync"]) == oos_blocks * 8
    assert "unclean shutdown detected" in node.dmesg()


def test_external_flexible_metadata_attaches_and_detaches_clean(node: Guest, disks: list[Disk]) -> None:
    data, meta = (disk.device for disk in disks)
    node.check(f"bsrmeta --force 0 v1 {data} {meta} flexible create-md", timeout=T)
    setup_device(node)
    r = node.run(f"bsrsetup attach 0 {data} {meta} flexible", timeout=T)
    assert r.ok, r.stderr
    di = devinfo(node)["info"]
    assert int(di["meta_dev_idx"]) == -2
    assert int(devinfo(node)["stats"]["capacity"]) == 64 << 11  # the whole data disk
    node.check("bsrsetup detach 0", timeout=T)
    out = node.check(f"bsrmeta 0 v1 {data} {meta} flexible get-gi", timeout=T).stdout
    assert out.strip().endswith(":1:0:1")  # AL_CLEAN, not AL_DISABLED, CLEAN_SHUTDOWN
