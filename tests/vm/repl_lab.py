"""Shared steps of the replication tests: one resource r0 with volume 0 on
each lab node, connected to the other node (a = node 0, b = node 1).

Commands go through repl_agent.py (one long-lived Python per guest); the
metadata is created on the host side of the disk image (bsrmeta on the
image file) while bsr has the disk closed."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bsr.netlink import encode_addr
from harness import Guest
from harness.guest import GuestError
from harness.lab import Lab

T = 120
PORT = 7789
AGENT_PORT = 9555
HERE = Path(__file__).resolve().parent
BSRMETA = str(Path(sys.executable).with_name("bsrmeta"))


@dataclass
class Node:
    g: Guest
    node_id: int
    peer_id: int
    ip: str
    peer_ip: str

    @property
    def disk(self) -> str:
        return self.g.spec.disks[0].device

    @property
    def image(self) -> Path:
        return self.g.spec.disks[0].path


def call(g: Guest, req: dict[str, Any], timeout: float = T) -> dict[str, Any]:
    try:
        out = g.tcp(AGENT_PORT, json.dumps(req), timeout=timeout)
    except GuestError as e:
        raise RuntimeError(f"{g.name}: repl agent did not answer {req}: {e}") from None
    if not out.strip():
        raise RuntimeError(f"{g.name}: repl agent closed without answering {req}")
    return json.loads(out.strip().splitlines()[-1])


def ensure_agent(g: Guest) -> None:
    """Start repl_agent.py in the guest unless it answers already."""
    try:
        if call(g, {"op": "ping"}, timeout=30).get("ok"):
            return
    except Exception:
        pass
    g.check(f"cd {HERE} && (setsid {g.py} repl_agent.py serve {AGENT_PORT} "
            f"> /tmp/repl-agent.log 2>&1 < /dev/null &)", timeout=60)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(0.3)  # it answers within about a second of its start
        try:
            if call(g, {"op": "ping"}, timeout=30).get("ok"):
                return
        except Exception:
            continue
    log = g.run("cat /tmp/repl-agent.log", timeout=30).stdout
    raise RuntimeError(f"{g.name}: repl agent did not start:\n{log}")


def nodes(lab: Lab, family: int = 4) -> tuple[Node, Node]:
    a_ip, b_ip = Lab.addr(lab.a, family), Lab.addr(lab.b, family)
    return Node(lab.a, 0, 1, a_ip, b_ip), Node(lab.b, 1, 0, b_ip, a_ip)


def addr(ip: str, port: int = PORT) -> str:
    return f"ipv6:[{ip}]:{port}" if ":" in ip else f"ipv4:{ip}:{port}"


def create_md(n: Node, peer_ids: str | None = None) -> None:
    """New metadata on the host side of the image (bsr must not have it open)."""
    subprocess.run(
        [BSRMETA, "--force", f"--node-id={n.node_id}", "0", "v1", str(n.image), "internal",
         "create-md", "--max-peers=2", f"--peer-node-ids={peer_ids or n.peer_id}"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


def nl(n: Node, cmd: str, minor: int = 0xFFFFFFFF, **structs: dict[str, Any]) -> dict[str, Any]:
    return call(n.g, {"op": "nl", "cmd": cmd, "minor": minor, "structs": structs})


def check_nl(n: Node, cmd: str, minor: int = 0xFFFFFFFF, **structs: dict[str, Any]) -> None:
    r = nl(n, cmd, minor, **structs)
    assert r["ok"], f"{n.g.name}: {cmd} failed: {r}"


def check_nl_all(n: Node, steps: list[tuple[str, int, dict[str, Any]]]) -> None:
    """Several netlink requests in one agent round trip (each one costs about
    half a second of TCG time on its own); the first failure is raised."""
    reqs = [{"cmd": cmd, "minor": minor, "structs": structs} for cmd, minor, structs in steps]
    r = call(n.g, {"op": "nl_batch", "reqs": reqs})
    assert r["ok"], f"{n.g.name}: {r.get('cmd')} failed: {r}"


def bring_up_steps(n: Node, peer_id: int, disk: str, disk_size_sectors: int,
                   net_conf: dict[str, Any], peer_ip: str,
                   peer_conf: dict[str, Any] | None = None,
                   connect: bool = True) -> list[tuple[str, int, dict[str, Any]]]:
    """r0 with volume 0 on ``disk`` (internal metadata), peer ``peer_id``, one path."""
    res = {"res_name": "r0"}
    peer = {"res_name": "r0", "peer_node_id": peer_id}
    any_minor = 0xFFFFFFFF
    steps = [
        ("NEW_RESOURCE", any_minor, {"ctx": res, "res_opts": {"node_id": n.node_id}}),
        ("NEW_MINOR", any_minor, {"ctx": {**res, "volume": 0},
                                  "new_minor_parms": {"minor": 0}}),
        ("ATTACH", 0, {"disk_conf": {"backing_dev": disk, "meta_dev": disk, "meta_dev_idx": -1,
                                     "disk_size": disk_size_sectors}}),
        ("NEW_PEER", any_minor, {"ctx": {**peer, "conn_name": "peer"}, "net_conf": net_conf,
                                 "new_peer_parms": {"peer_node_id": peer_id}}),
    ]
    if peer_conf:
        steps.append(("PEER_DEVICE_OPTS", any_minor, {"ctx": {**peer, "volume": 0},
                                                      "peer_device_conf": peer_conf}))
    steps.append(("NEW_PATH", any_minor, {"ctx": path_ctx(n, peer_id, addr(n.ip),
                                                          addr(peer_ip))}))
    if connect:
        steps.append(("CONNECT", any_minor, {"ctx": peer}))
    return steps


def path_ctx(n: Node, peer_id: int, my: str, peer: str) -> dict[str, Any]:
    return {"res_name": "r0", "peer_node_id": peer_id,
            "my_addr": {"hex": encode_addr(my).hex()},
            "peer_addr": {"hex": encode_addr(peer).hex()}}


def configure(n: Node, ko: Path, net_conf: dict[str, Any] | None = None, disk_size: int = 0,
              connect: bool = True, peer_ip: str | None = None, peer_id: int | None = None) -> None:
    """insmod, subscribe to events, create r0 with disk, peer, path; connect."""
    pid = n.peer_id if peer_id is None else peer_id
    nc = {"connect_int": 1, "ping_timeo": 20, **(net_conf or {})}
    n.g.check(f"insmod {shlex.quote(str(ko))}", timeout=T)
    ensure_agent(n.g)
    assert call(n.g, {"op": "events_reset"})["ok"]
    check_nl_all(n, bring_up_steps(n, pid, n.disk, disk_size, nc, peer_ip or n.peer_ip,
                                   connect=connect))


def connect(n: Node) -> None:
    check_nl(n, "CONNECT", ctx={"res_name": "r0", "peer_node_id": n.peer_id})


def disconnect(n: Node, force: bool = False) -> None:
    check_nl(n, "DISCONNECT", ctx={"res_name": "r0", "peer_node_id": n.peer_id},
             disconnect_parms={"force": int(force)})


def state(n: Node) -> dict[str, Any]:
    return call(n.g, {"op": "show", "res": "r0", "peer": n.peer_id})["state"]


def wait_state(n: Node, states: str, seconds: float = 60) -> dict[str, Any]:
    r = call(n.g, {"op": "wait", "res": "r0", "peer": n.peer_id, "states": states.split(","),
                   "seconds": seconds}, timeout=seconds + T)
    assert r["ok"], f"{n.g.name}: not {states} within {seconds}s: {r}"
    return r["state"]


def holds_state(n: Node, state_: str, seconds: float) -> dict[str, Any]:
    r = call(n.g, {"op": "hold", "res": "r0", "peer": n.peer_id, "states": state_.split(","),
                   "seconds": seconds}, timeout=seconds + T)
    assert r["ok"], f"{n.g.name}: left {state_} within {seconds}s: {r}"
    return r["state"]


def events(n: Node) -> str:
    return "\n".join(call(n.g, {"op": "events"})["lines"])


def kmsg(n: Node) -> str:
    return n.g.check("dmesg", timeout=T).stdout


def kmsg_mark(n: Node) -> str:
    """Put a unique line into the kernel log; see :func:`kmsg_after`.  (An
    offset into ``dmesg`` breaks once the ring buffer wraps, which a guest
    that lives for the whole session does.)"""
    token = f"bsr-test-mark-{time.monotonic_ns()}"
    n.g.check(f"echo {token} > /dev/kmsg", timeout=T)
    return token


def kmsg_after(n: Node, token: str) -> str:
    text = kmsg(n)
    at = text.rfind(token)
    assert at >= 0, f"{n.g.name}: kernel log mark {token} is gone (ring buffer too small?)"
    return text[at:]


def down(n: Node) -> None:
    nl(n, "DOWN", ctx={"res_name": "r0"})


# =====================================================================
# Replicated pairs for the crash, failover and benchmark code (owner: T).
# One small interface over DRBD 8.4 and bsr, so the same workload and
# checker run against DRBD (the reference) and against bsr.  Nothing
# above this line is changed by it.

DRBDADM84 = "/usr/lib/drbd/drbdadm-84"
DRBD_CONF = "/etc/bsrtest-drbd84.conf"  # /etc is a tmpfs overlay in the guest
DRBD_PORT = 7790


def drbd84_conf(a: Node, b: Node, disk_a: str, disk_b: str, protocol: str = "C",
                disk_opts: str = "") -> str:
    """drbd.conf (8.4 syntax) for resource r0 on /dev/drbd0 between a and b."""
    return (
        "global { usage-count no; }\n"
        "resource r0 {\n"
        f"  net {{ protocol {protocol}; }}\n"
        f"  disk {{ {disk_opts} }}\n"
        "  device /dev/drbd0; meta-disk internal;\n"
        f"  on {a.g.name} {{ disk {disk_a}; address {a.ip}:{DRBD_PORT}; }}\n"
        f"  on {b.g.name} {{ disk {disk_b}; address {b.ip}:{DRBD_PORT}; }}\n"
        "}\n")


class Drbd84Pair:
    """r0 on /dev/drbd0 of both lab nodes with DRBD 8.4 (drbdadm-84)."""

    name = "drbd84"
    device = "/dev/drbd0"

    def __init__(self, a: Node, b: Node, protocol: str = "C", disk_opts: str = "",
                 disks: tuple[str, str] | None = None) -> None:
        self.a, self.b = a, b
        self.protocol = protocol
        self.disk_opts = disk_opts
        self.disks = disks or (a.disk, b.disk)

    def adm(self, n: Node, args: str, timeout: float = T) -> str:
        return n.g.check(f"{DRBDADM84} -c {DRBD_CONF} {args} </dev/null", timeout=timeout).stdout

    def up(self, n: Node, create_md: bool) -> None:
        """Config, module and (optionally) new metadata, then attach+connect."""
        conf = drbd84_conf(self.a, self.b, *self.disks, self.protocol, self.disk_opts)
        n.g.check(f"cat > {DRBD_CONF} <<'EOF'\n{conf}EOF\n"
                  "test -e /proc/drbd || modprobe drbd usermode_helper=/bin/true", timeout=T)
        if create_md:
            self.adm(n, "-- --force create-md r0")
        self.adm(n, "up r0")

    def wait(self, n: Node, what: str, want: str, seconds: float = 120) -> str:
        """Poll `drbdadm WHAT r0` (cstate, dstate, role) until it prints WANT."""
        cmd = (f"for i in $(seq {int(seconds * 4)}); do s=$({DRBDADM84} -c {DRBD_CONF} {what} r0 "
               f"2>/dev/null); [ \"$s\" = {shlex.quote(want)} ] && exit 0; sleep 0.25; done; "
               f"echo \"$s\"; cat /proc/drbd; exit 1")
        r = n.g.run(cmd, timeout=seconds + T)
        assert r.rc == 0, f"{n.g.name}: {what} not {want} within {seconds}s: {r.stdout}"
        return want

    def setup(self, primary: Node) -> None:
        """Both up with new metadata, connected, UpToDate without a sync, and
        ``primary`` Primary."""
        for n in (self.a, self.b):
            self.up(n, create_md=True)
        for n in (self.a, self.b):
            self.wait(n, "cstate", "Connected")
        self.adm(primary, "-- --clear-bitmap new-current-uuid r0")
        for n in (self.a, self.b):
            self.wait(n, "dstate", "UpToDate/UpToDate")
        self.primary(primary)

    def primary(self, n: Node, force: bool = False) -> None:
        self.adm(n, "-- --force primary r0" if force else "primary r0")

    def secondary(self, n: Node) -> None:
        self.adm(n, "secondary r0")

    def wait_peer_lost(self, n: Node, seconds: float = 120) -> None:
        self.wait(n, "cstate", "WFConnection", seconds)

    def restart(self, n: Node) -> None:
        """After a reboot of ``n``: up again on its old metadata (connects)."""
        self.up(n, create_md=False)

    def wait_in_sync(self, seconds: float = 600) -> None:
        for n in (self.a, self.b):
            self.wait(n, "cstate", "Connected", seconds)
            self.wait(n, "dstate", "UpToDate/UpToDate", seconds)

    def data_bytes(self, n: Node) -> int:
        """Usable size of /dev/drbd0 (the data area at the start of the disk)."""
        out = n.g.check("cat /sys/block/drbd0/size", timeout=T).stdout
        return int(out) * 512

    def disk_of(self, n: Node) -> str:
        return self.disks[0 if n is self.a else 1]

    def teardown(self) -> None:
        for n in (self.a, self.b):
            if n.g.alive:
                n.g.run(f"{DRBDADM84} -c {DRBD_CONF} down r0; rmmod drbd; true", timeout=T)


def data_sha256(n: Node, disk: str, nbytes: int) -> str:
    """sha256 of the first ``nbytes`` of ``disk`` in the guest (O_DIRECT)."""
    out = n.g.check(f"dd if={disk} bs=1M count={nbytes} iflag=direct,count_bytes status=none "
                    "| sha256sum",
                    timeout=600).stdout
    return out.split()[0]


ACKWRITER = HERE / "ackwriter.py"


def ackwriter_cmd(mode: str, device: str, log: Path, blocks: int, **opts: object) -> str:
    """Command line of ackwriter.py (guest's python3: stdlib only, starts fast)."""
    extra = " ".join(f"--{k.replace('_', '-')}={v}" for k, v in opts.items())
    return f"python3 {ACKWRITER} {mode} {device} --log={log} --blocks={blocks} {extra}"


UP_TO_DATE_MD_FLAGS = 0x53  # CONSISTENT | WAS_UP_TO_DATE | AL_CLEAN | CLEAN_SHUTDOWN


def zero_image(n: Node) -> None:
    """Zero the whole backing image on the host (a hole: instant)."""
    size = n.image.stat().st_size
    subprocess.run(["fallocate", "--punch-hole", "--offset", "0", "--length", str(size),
                    str(n.image)], check=True, timeout=60)


def uptodate_md(n: Node, current: int) -> None:
    """New metadata, then current UUID ``current`` and UpToDate flags (host side),
    so two nodes with equal data and equal UUIDs connect without a resync."""
    create_md(n)
    base = [BSRMETA, "--force", "0", "v1", str(n.image), "internal"]
    dump = subprocess.run(base + ["dump-md"], check=True, capture_output=True, text=True,
                          timeout=120).stdout
    dump = re.sub(r"current-uuid 0x[0-9A-F]+", f"current-uuid 0x{current:016X}", dump)
    dump = re.sub(r"flags 0x[0-9A-F]+ #.*", f"flags 0x{UP_TO_DATE_MD_FLAGS:08X}", dump, count=1)
    f = n.image.with_suffix(".md.txt")
    f.write_text(dump)
    subprocess.run(base + ["restore-md", str(f)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=120)


LOST = "Connecting,Unconnected,Timeout,BrokenPipe,NetworkFailure,StandAlone"


class BsrPair:
    """r0 on /dev/bsr0 of both lab nodes (file-backed disks, host-side metadata)."""

    name = "bsr"
    device = "/dev/bsr0"

    def __init__(self, a: Node, b: Node, ko: Path, protocol: str = "C") -> None:
        self.a, self.b = a, b
        self.ko = ko
        self.net_conf = {"wire_protocol": "ABC".index(protocol) + 1}
        self.disks = (a.disk, b.disk)

    def disk_of(self, n: Node) -> str:
        return n.disk

    def setup(self, primary: Node) -> None:
        """Zeroed disks, equal UUIDs, UpToDate both, connected, ``primary`` Primary."""
        uuid = int.from_bytes(os.urandom(8), "little") & ~1
        for n in (self.a, self.b):
            zero_image(n)
            uptodate_md(n, uuid)
        for n in (self.a, self.b):
            configure(n, self.ko, self.net_conf)
        self.wait_in_sync(120)
        self.primary(primary)

    def primary(self, n: Node, force: bool = False) -> None:
        check_nl(n, "PRIMARY", ctx={"res_name": "r0"}, role_parms={"force": int(force)})

    def secondary(self, n: Node) -> None:
        check_nl(n, "SECONDARY", ctx={"res_name": "r0"}, role_parms={})

    def wait_peer_lost(self, n: Node, seconds: float = 120) -> None:
        wait_state(n, LOST, seconds)

    def restart(self, n: Node) -> None:
        configure(n, self.ko, self.net_conf)

    def wait_in_sync(self, seconds: float = 600) -> None:
        deadline = time.monotonic() + seconds
        for n in (self.a, self.b):
            snap = wait_state(n, "Connected", seconds)
            while snap["peer_devices"].get("0", {}).get("peer_disk") != "UpToDate" or \
                    snap["peer_devices"]["0"]["replication"] != "Established":
                assert time.monotonic() < deadline, f"{n.g.name}: peer not UpToDate: {snap}"
                time.sleep(0.2)
                snap = state(n)

    def data_bytes(self, n: Node) -> int:
        return int(n.g.check("cat /sys/block/bsr0/size", timeout=T).stdout) * 512

    def teardown(self) -> None:
        """r0 down and bsr.ko unloaded, so the next setup starts from scratch
        (the soak loop sets the same guests up again)."""
        for n in (self.a, self.b):
            if n.g.alive and n.g.module_loaded("bsr"):
                down(n)
                n.g.rmmod("bsr")


Pair = Drbd84Pair | BsrPair


def drbd84_pairs(ko: Path, protocol: str = "C"):
    return lambda a, b: Drbd84Pair(a, b, protocol)


def bsr_pairs(ko: Path, protocol: str = "C"):
    return lambda a, b: BsrPair(a, b, ko, protocol)


PAIRS = {"drbd84": drbd84_pairs, "bsr": bsr_pairs}
# Test parameters: bsr always; the DRBD 8.4 reference run (same scenario,
# proves the scenario itself can pass) only under `make soak`.
BACKENDS = ["bsr", pytest.param("drbd84", marks=pytest.mark.soak)]


# ------------------------------------------- a backing disk that can fail
class DmNode(Node):
    """A lab node whose bsr backing disk is a device-mapper device over its
    virtio disk (same sectors), so that a range can be made to fail."""

    @property
    def disk(self) -> str:
        return "/dev/mapper/bsrbk"

    def dm_table(self, bad: tuple[int, int] | None = None) -> None:
        raw = self.g.spec.disks[0].device
        size = int(self.g.check(f"blockdev --getsz {raw}", timeout=T).stdout)
        rows = [f"0 {size} linear {raw} 0"]
        if bad:
            start, nr = bad
            rows = [f"0 {start} linear {raw} 0", f"{start} {nr} error",
                    f"{start + nr} {size - start - nr} linear {raw} {start + nr}"]
        table = "\\n".join(rows)
        if self.g.run("test -e /dev/mapper/bsrbk", timeout=T).rc:
            self.g.check(f"modprobe dm-mod; printf '{table}\\n' | "
                         "dmsetup --noudevsync create bsrbk && dmsetup mknodes", timeout=T)
        else:
            self.g.check(f"printf '{table}\\n' | dmsetup --noudevsync reload bsrbk "
                         "&& dmsetup --noudevsync resume bsrbk", timeout=T)
