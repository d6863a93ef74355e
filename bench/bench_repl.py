#!/usr/bin/env python3
"""Replication cost of bsr against the raw disk and DRBD 8.4, two nodes.

usage: bench_repl.py [--quick] [--runtime SECONDS] [--rounds N] [--resync-mib MIB] [--ko BSR_KO]

Boots the two guests of the test lab (virtme-ng, TCG, one dgram link with
a 9000-byte MTU, host UDP buffers raised for the run), gives each a RAM
disk of 256 MiB (brd) and measures, on node a, with fio --direct=1:

  seq    1 MiB sequential writes, libaio iodepth 4      (MiB/s)
  lat    4 KiB random writes, iodepth 1, O_SYNC         (mean completion latency, us)
  iops   4 KiB random writes, libaio iodepth 32         (IOPS)

for the raw RAM disk, DRBD 8.4 protocol C and A, bsr protocol C and A;
then a full resync of --resync-mib MiB from a to b (DRBD: primary --force
on fresh metadata; bsr likewise) with the default controller and with a
fixed rate (c-plan-ahead 0, resync-rate 100M), in MiB/s.

The targets are measured in turns, --rounds times (default 3; --quick: 1):
raw, then per protocol DRBD and bsr, DRBD first in odd rounds and bsr
first in even ones, so that a change in the host's load hits both alike.
Every cell of the table is the median of the rounds, and every "x drbd"
the median of each round's ratio (bsr against the DRBD run of its own
round); the lines under it list each round's numbers, to show the spread.

Prints one table with the ratios to raw and to DRBD (same protocol).  A
row that failed in any round reads "failed:" with the reason.  Absolute numbers under
TCG are far below hardware; compare ratios.  Exits 0 when every row was
measured, 1 when any row failed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "vm"))
sys.path.insert(0, str(ROOT))

from harness import Guest, find_env  # noqa: E402
from harness.lab import HostUdpBuffers, Lab  # noqa: E402
import repl_lab  # noqa: E402
from repl_lab import Drbd84Pair, Node, nodes  # noqa: E402

RAM_MIB = 256
FIO_SIZE = "192M"  # inside every data area (metadata sits at the end)
FIXED = "c-plan-ahead 0; resync-rate 100M;"
IO_ROWS = ("raw", "drbd84 C", "drbd84 A", "bsr C", "bsr A")
RESYNC_ROWS = ("drbd84 default", "drbd84 fixed 100M", "bsr default", "bsr fixed 100M")
NAME_WIDTH = 19  # the target column, with its trailing space
QUICK_RUNTIME, QUICK_RESYNC_MIB = 1, 4  # --quick: seconds per fio run, MiB resynced
DEFAULT_RUNTIME, DEFAULT_RESYNC_MIB, DEFAULT_ROUNDS = 10, 64, 3


@dataclass
class IoRow:
    target: str
    seq_mib_s: float = 0.0
    lat_us: float = 0.0
    iops: float = 0.0
    note: str = ""


@dataclass
class ResyncRow:
    target: str
    mib_s: float = 0.0
    seconds: float = 0.0
    note: str = ""


@dataclass
class Results:
    io: list[IoRow] = field(default_factory=list)
    resync: list[ResyncRow] = field(default_factory=list)
    rounds: int = 1
    io_runs: dict[str, list[IoRow]] = field(default_factory=dict)
    resync_runs: dict[str, list[ResyncRow]] = field(default_factory=dict)


def median_io(name: str, runs: list[IoRow]) -> IoRow:
    """The row of @runs' medians; a failure in any round fails the row."""
    failed = [r for r in runs if r.note]
    if failed:
        return IoRow(name, note=failed[0].note)
    med = (lambda attr: statistics.median(getattr(r, attr) for r in runs))
    return IoRow(name, med("seq_mib_s"), med("lat_us"), med("iops"))


def median_resync(name: str, runs: list[ResyncRow]) -> ResyncRow:
    failed = [r for r in runs if r.note]
    if failed:
        return ResyncRow(name, note=failed[0].note)
    return ResyncRow(name, statistics.median(r.mib_s for r in runs),
                     statistics.median(r.seconds for r in runs))


# ------------------------------------------------------------------- fio
FIO_JOBS = {
    "seq": "--rw=write --bs=1M --ioengine=libaio --iodepth=4",
    "lat": "--rw=randwrite --bs=4k --ioengine=psync --iodepth=1 --sync=1",
    "iops": "--rw=randwrite --bs=4k --ioengine=libaio --iodepth=32",
}


def fio_all(g: Guest, dev: str, runtime: int) -> dict[str, dict]:
    """The three jobs one after the other (stonewall) in one fio process:
    fio's start-up (seconds under TCG) is paid once per target, not per job."""
    jobs = " ".join(f"--name={name} {'--stonewall ' if i else ''}{args}"
                    for i, (name, args) in enumerate(FIO_JOBS.items()))
    out = g.check(f"fio --filename={dev} --direct=1 --time_based --runtime={runtime} "
                  f"--size={FIO_SIZE} --output-format=json {jobs}",
                  timeout=3 * runtime + 300).stdout
    return {j["jobname"]: j["write"] for j in json.loads(out[out.index("{"):])["jobs"]}


def measure(g: Guest, name: str, dev: str, runtime: int) -> IoRow:
    r = fio_all(g, dev, runtime)
    return IoRow(name, r["seq"]["bw"] / 1024.0, r["lat"]["clat_ns"]["mean"] / 1000.0,
                 r["iops"]["iops"])


# ------------------------------------------------------------------- bsr
class BsrRam:
    """r0 on /dev/bsr0 over /dev/ram0 of both nodes, metadata made in the guest."""

    device = "/dev/bsr0"

    def __init__(self, a: Node, b: Node, ko: Path, protocol: str = "C",
                 peer_conf: dict | None = None, size_kib: int = 0) -> None:
        self.a, self.b, self.ko = a, b, ko
        self.net_conf = {"wire_protocol": "ABC".index(protocol) + 1, "connect_int": 1,
                         "ping_timeo": 20}
        self.peer_conf = peer_conf or {}
        self.size_kib = size_kib

    def create_md(self, n: Node, uptodate_uuid: int = 0) -> None:
        # `bsrmeta` on the guest PATH: the harness's tool zygote when it runs
        meta = f"bsrmeta --force --node-id={n.node_id} 0 v1 /dev/ram0 internal"
        cmd = f"{meta} create-md --max-peers=2 --peer-node-ids={n.peer_id} </dev/null"
        if uptodate_uuid:
            cmd += (f" && {meta} dump-md > /tmp/md.txt && sed -i -E "
                    f"'s/current-uuid 0x[0-9A-F]+/current-uuid 0x{uptodate_uuid:016X}/; "
                    f"0,/flags 0x[0-9A-F]+ #.*/s//flags 0x{repl_lab.UP_TO_DATE_MD_FLAGS:08X}/' "
                    f"/tmp/md.txt && {meta} restore-md /tmp/md.txt </dev/null")
        n.g.check(f"cd {ROOT} && {cmd}", timeout=600)

    def up(self, n: Node) -> None:
        n.g.check(f"insmod {shlex.quote(str(self.ko))}", timeout=120)
        repl_lab.ensure_agent(n.g)
        repl_lab.check_nl_all(n, repl_lab.bring_up_steps(
            n, n.peer_id, "/dev/ram0", self.size_kib * 2, self.net_conf, n.peer_ip,
            peer_conf=self.peer_conf))

    def wait_peer_uptodate(self, n: Node, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            snap = repl_lab.state(n)
            pd = snap["peer_devices"].get("0", {})
            if snap["connection"] == "Connected" and pd.get("peer_disk") == "UpToDate" \
                    and pd.get("replication") == "Established":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n.g.name}: peer not UpToDate in {seconds}s: {snap}")
            time.sleep(0.5)

    def primary(self, n: Node, force: bool = False) -> None:
        repl_lab.check_nl(n, "PRIMARY", ctx={"res_name": "r0"}, role_parms={"force": int(force)})

    def teardown(self) -> None:
        for n in (self.a, self.b):
            if n.g.alive and n.g.module_loaded("bsr"):
                repl_lab.down(n)
                n.g.run("rmmod bsr", timeout=120)


# ------------------------------------------------------------------ rows
def drbd_io(a: Node, b: Node, protocol: str, runtime: int) -> IoRow:
    pair = Drbd84Pair(a, b, protocol, disks=("/dev/ram0", "/dev/ram0"))
    try:
        pair.setup(primary=a)
        return measure(a.g, f"drbd84 {protocol}", pair.device, runtime)
    finally:
        pair.teardown()


def bsr_io(a: Node, b: Node, ko: Path, protocol: str, runtime: int) -> IoRow:
    pair = BsrRam(a, b, ko, protocol)
    try:
        uuid = int(time.time() * 1000) << 1
        for n in (a, b):
            pair.create_md(n, uptodate_uuid=uuid)
        for n in (a, b):
            pair.up(n)
        for n in (a, b):
            pair.wait_peer_uptodate(n, 120)
        pair.primary(a)
        return measure(a.g, f"bsr {protocol}", pair.device, runtime)
    finally:
        pair.teardown()


def drbd_resync(a: Node, b: Node, fixed: bool, mib: int) -> ResyncRow:
    name = "drbd84 fixed 100M" if fixed else "drbd84 default"
    opts = f"size {mib}M; " + (FIXED if fixed else "")
    pair = Drbd84Pair(a, b, "C", disk_opts=opts, disks=("/dev/ram0", "/dev/ram0"))
    try:
        for n in (a, b):
            pair.up(n, create_md=True)
        for n in (a, b):
            pair.wait(n, "cstate", "Connected")
        start = time.monotonic()
        pair.primary(a, force=True)
        pair.wait(a, "dstate", "UpToDate/UpToDate", seconds=3600)
        secs = time.monotonic() - start
        return ResyncRow(name, mib / secs, secs)
    finally:
        pair.teardown()


def bsr_resync(a: Node, b: Node, ko: Path, fixed: bool, mib: int) -> ResyncRow:
    peer_conf = {"c_plan_ahead": 0, "resync_rate": 100 * 1024} if fixed else {}
    pair = BsrRam(a, b, ko, "C", peer_conf=peer_conf, size_kib=mib * 1024)
    try:
        for n in (a, b):
            pair.create_md(n)
        for n in (a, b):
            pair.up(n)
        for n in (a, b):
            repl_lab.wait_state(n, "Connected", 120)
        start = time.monotonic()
        pair.primary(a, force=True)
        pair.wait_peer_uptodate(a, 3600)
        secs = time.monotonic() - start
        return ResyncRow("bsr fixed 100M" if fixed else "bsr default", mib / secs, secs)
    finally:
        pair.teardown()


def guarded(row_type, name: str, fn, *args):
    """Run one row; a row that fails keeps its place with the reason."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - one broken row must not hide the others
        first = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        return row_type(name, note=f"failed: {first}")


def turns(rnd: int, first, second) -> tuple:
    """DRBD first in odd rounds (1, 3, ...), bsr first in even ones."""
    return (first, second) if rnd % 2 == 0 else (second, first)


def run_all(lab: Lab, ko: Path, runtime: int, resync_mib: int, rounds: int = 1) -> Results:
    a, b = nodes(lab)
    for n in (a, b):
        n.g.check(f"modprobe brd rd_nr=1 rd_size={RAM_MIB * 1024}", timeout=120)
    io: dict[str, list[IoRow]] = {name: [] for name in IO_ROWS}
    rs: dict[str, list[ResyncRow]] = {name: [] for name in RESYNC_ROWS}
    for rnd in range(rounds):
        io["raw"].append(guarded(IoRow, "raw", measure, a.g, "raw", "/dev/ram0", runtime))
        for proto in ("C", "A"):
            for run in turns(rnd,
                             lambda: guarded(IoRow, f"drbd84 {proto}", drbd_io, a, b, proto,
                                             runtime),
                             lambda: guarded(IoRow, f"bsr {proto}", bsr_io, a, b, ko, proto,
                                             runtime)):
                row = run()
                io[row.target].append(row)
        for fixed in (False, True):
            for run in turns(rnd,
                             lambda: guarded(ResyncRow, RESYNC_ROWS[fixed], drbd_resync, a, b,
                                             fixed, resync_mib),
                             lambda: guarded(ResyncRow, RESYNC_ROWS[2 + fixed], bsr_resync, a,
                                             b, ko, fixed, resync_mib)):
                row = run()
                rs[row.target].append(row)
    return Results([median_io(n, runs) for n, runs in io.items()],
                   [median_resync(n, runs) for n, runs in rs.items()], rounds, io, rs)


# ----------------------------------------------------------------- table
def ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}" if x and base else "-"


def round_ratio(mine: list, ref: list, attr: str) -> str:
    """The median over the rounds of mine/ref, each round against its own
    (the runs of one round are minutes apart; the host's load drifts
    between rounds); rounds where either failed are left out."""
    q = [getattr(m, attr) / getattr(r, attr) for m, r in zip(mine, ref)
         if not m.note and not r.note and getattr(m, attr) and getattr(r, attr)]
    return f"{statistics.median(q):.2f}" if q else "-"


def table(res: Results) -> str:
    by = {r.target: r for r in res.io}
    raw = by["raw"]
    head = (f"{'target':<18} {'seq 1M MiB/s':>12} {'x raw':>6} {'x drbd':>6} "
            f"{'4k QD1 lat us':>13} {'x raw':>6} {'x drbd':>6} {'4k QD32 IOPS':>12} {'x raw':>6} {'x drbd':>6}")
    lines = [head]
    for r in res.io:
        if r.note:
            lines.append(f"{r.target:<18} {r.note}")
            continue
        ref = "drbd84 " + r.target.split()[-1]
        mine, theirs = res.io_runs.get(r.target, []), res.io_runs.get(ref, [])
        bsr = r.target.startswith("bsr")
        d = (lambda x, attr: round_ratio(mine, theirs, attr) if bsr else "-")
        lines.append(f"{r.target:<18} {r.seq_mib_s:>12.1f} {ratio(r.seq_mib_s, raw.seq_mib_s):>6} "
                     f"{d(r.seq_mib_s, 'seq_mib_s'):>6} {r.lat_us:>13.1f} {ratio(r.lat_us, raw.lat_us):>6} "
                     f"{d(r.lat_us, 'lat_us'):>6} {r.iops:>12.0f} {ratio(r.iops, raw.iops):>6} "
                     f"{d(r.iops, 'iops'):>6}")
    lines.append("")
    lines.append(f"{'resync':<18} {'MiB/s':>12} {'seconds':>8} {'x drbd':>6}")
    for r in res.resync:
        if r.note:
            lines.append(f"{r.target:<18} {r.note}")
            continue
        x = "-"
        if r.target.startswith("bsr"):
            x = round_ratio(res.resync_runs.get(r.target, []),
                            res.resync_runs.get(r.target.replace("bsr", "drbd84"), []), "mib_s")
        lines.append(f"{r.target:<18} {r.mib_s:>12.1f} {r.seconds:>8.1f} {x:>6}")
    if res.rounds > 1:
        lines += ["", f"each round (the table shows the median of {res.rounds}):"]
        for name, runs in res.io_runs.items():
            cells = ", ".join("failed" if r.note else
                              f"{r.seq_mib_s:.1f} MiB/s {r.lat_us:.0f} us {r.iops:.0f} IOPS"
                              for r in runs)
            lines.append(f"{name:<18} {cells}")
        for name, runs in res.resync_runs.items():
            cells = ", ".join("failed" if r.note else f"{r.mib_s:.1f} MiB/s" for r in runs)
            lines.append(f"{name:<18} {cells}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke: 1 s per fio run, 4 MiB resync, one round "
                         f"(default: {DEFAULT_RUNTIME} s, {DEFAULT_RESYNC_MIB} MiB, "
                         f"{DEFAULT_ROUNDS} rounds)")
    ap.add_argument("--runtime", type=int, default=None, help="seconds per fio run")
    ap.add_argument("--rounds", type=int, default=None,
                    help="measure every target this many times, in turns; the table shows medians")
    ap.add_argument("--resync-mib", type=int, default=None, help="size of the full resync")
    ap.add_argument("--ko", type=Path, default=ROOT / "kmod/bsr.ko", help="bsr.ko to load")
    ap.add_argument("--json", action="store_true", help="also print the rows as one JSON line")
    a = ap.parse_args()
    runtime = a.runtime or (QUICK_RUNTIME if a.quick else DEFAULT_RUNTIME)
    resync_mib = a.resync_mib or (QUICK_RESYNC_MIB if a.quick else DEFAULT_RESYNC_MIB)
    rounds = a.rounds or (1 if a.quick else DEFAULT_ROUNDS)
    env, why = find_env()
    if env is None:
        sys.stderr.write(f"bench_repl: cannot boot guests: {why}\n")
        return 1
    buffers = HostUdpBuffers()
    buffers.raise_()
    with tempfile.TemporaryDirectory(prefix="bench_repl.") as tmp:
        lab = Lab(env, Path(tmp), disks_per_node=0)
        try:
            lab.boot()
            res = run_all(lab, a.ko, runtime, resync_mib, rounds)
        finally:
            lab.shutdown()
            buffers.restore()
    print(f"bench_repl: fio {runtime} s per run, resync {resync_mib} MiB, {rounds} round(s), "
          f"TCG guests, brd {RAM_MIB} MiB")
    print(table(res))
    if a.json:
        print("BENCH_JSON " + json.dumps({"io": [r.__dict__ for r in res.io],
                                          "resync": [r.__dict__ for r in res.resync]}))
    return 1 if any(r.note for r in res.io + res.resync) else 0


if __name__ == "__main__":
    sys.exit(main())
