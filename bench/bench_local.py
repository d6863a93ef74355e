#!/usr/bin/env python3
"""Local (single node, no peer) I/O overhead of bsr against the raw disk and DRBD 8.4.

usage: bench_local.py [--quick] [--runtime SECONDS] [--rounds N] [--kernel VMLINUZ] [--ko BSR_KO]

Boots one guest (virtme-ng, TCG) with four RAM disks of the same size and
measures, one target after the other:

  raw        /dev/ram0
  dm-linear  device-mapper linear over /dev/ram3: a stacking block driver
             that does nothing but remap, the floor for any driver stacked
             on a disk (bsr's goal is measured against raw, not this)
  bsr        /dev/bsr0 on /dev/ram1 (Primary, no peer, internal metadata)
  drbd       /dev/drbd0 on /dev/ram2 (DRBD 8.4 standalone, internal metadata)

with fio --direct=1:

  seq    1 MiB sequential writes, iodepth 4 (bandwidth, MiB/s)
  lat    4 KiB random writes, iodepth 1, O_SYNC (mean completion latency, us)

and prints one table with the ratios to raw.  Each run lasts --runtime
seconds (default 12; --quick: 5).  The targets are measured in turns,
--rounds times (default 5; --quick: 1), raw/bsr/drbd/raw/bsr/drbd..., so
that a change in the host's load hits all of them alike.  The table shows
per target the median of the rounds and the spread (min-max) of the
latency; the ratios to raw are the medians of each round's ratio (a target
against the raw run of the same round, seconds apart), which the host's
load drifting between rounds does not move.  With more than one round the
rounds follow the table.  Absolute numbers under TCG are much
lower than on hardware; the ratios are what this is for.  Not a test: it
always exits 0 when the measurements ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RD_SIZE_KIB = 256 * 1024


@dataclass
class Row:
    target: str
    seq_mib_s: float
    lat_us: float
    lat_min_us: float = 0.0
    lat_max_us: float = 0.0


def median_row(target: str, runs: list[Row]) -> Row:
    lats = sorted(r.lat_us for r in runs)
    return Row(target, statistics.median(r.seq_mib_s for r in runs), statistics.median(lats),
               lats[0], lats[-1])


def sh(cmd: str, check: bool = True) -> str:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"{cmd}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def default_kernel() -> str:
    """The newest installed guest kernel with build headers (tools/kver.sh),
    the one the module under kmod/ was built against."""
    kver = sh(f"{ROOT}/tools/kver.sh").strip()
    return f"/boot/vmlinuz-{kver}" if kver else ""


def fio(dev: str, job: str, runtime: int) -> dict:
    common = (f"fio --name={job} --filename={dev} --direct=1 --time_based --runtime={runtime} "
              f"--size=200M --output-format=json --group_reporting")
    if job == "seq":
        args = "--rw=write --bs=1M --ioengine=libaio --iodepth=4"
    else:
        args = "--rw=randwrite --bs=4k --ioengine=psync --iodepth=1 --sync=1"
    out = json.loads(sh(f"{common} {args}"))
    return out["jobs"][0]["write"]


def measure(name: str, dev: str, runtime: int) -> Row:
    seq = fio(dev, "seq", runtime)
    lat = fio(dev, "lat", runtime)
    return Row(name, seq["bw"] / 1024.0, lat["clat_ns"]["mean"] / 1000.0)


def setup_bsr(dev: str, ko: str) -> str:
    sys.path.insert(0, str(ROOT))
    from bsr.netlink import BsrNetlink

    sh(f"insmod {ko}")
    sh(f"cd {ROOT} && {sys.executable} -m bsr.meta_cli --force --node-id=0 0 v1 {dev} internal "
       f"create-md --max-peers=1")
    with BsrNetlink() as nl:
        nl.request("NEW_RESOURCE", ctx={"res_name": "bench"}, res_opts={"node_id": 0})
        nl.request("NEW_MINOR", ctx={"res_name": "bench"}, new_minor_parms={"minor": 0})
        nl.request("ATTACH", minor=0, disk_conf={"backing_dev": dev, "meta_dev": dev})
        nl.request("PRIMARY", ctx={"res_name": "bench"}, role_parms={"force": 1})
    return "/dev/bsr0"


def setup_dm_linear(dev: str) -> str:
    sectors = int(sh(f"blockdev --getsz {dev}"))
    sh(f"dmsetup create bench-linear --table '0 {sectors} linear {dev} 0'")
    return "/dev/mapper/bench-linear"


def setup_drbd(dev: str) -> str:
    setup = "/usr/lib/drbd/drbdsetup-84"
    sh("modprobe drbd usermode_helper=/bin/true")
    sh(f"drbdmeta --force 0 v08 {dev} internal create-md </dev/null")
    sh(f"{setup} new-resource bench84")
    sh(f"{setup} new-minor bench84 0 0")
    sh(f"{setup} attach 0 {dev} {dev} internal")
    sh(f"{setup} primary 0 --force")
    return "/dev/drbd0"


def in_guest(runtime: int, rounds: int, ko: str) -> dict[str, list[Row]]:
    sh(f"modprobe brd rd_nr=4 rd_size={RD_SIZE_KIB}")
    targets = {"raw": "/dev/ram0", "dm-linear": setup_dm_linear("/dev/ram3"),
               "bsr": setup_bsr("/dev/ram1", ko),
               "drbd 8.4": setup_drbd("/dev/ram2")}
    runs: dict[str, list[Row]] = {t: [] for t in targets}
    for _ in range(rounds):
        for name, dev in targets.items():
            runs[name].append(measure(name, dev, runtime))
    return runs


@dataclass
class Ratio:
    seq: float
    lat: float


def round_ratios(runs: dict[str, list[Row]]) -> dict[str, Ratio]:
    """Per target, the median over the rounds of its ratio to the raw run
    of the same round."""
    raw = runs["raw"]
    return {name: Ratio(statistics.median(r.seq_mib_s / w.seq_mib_s for r, w in zip(rs, raw)),
                        statistics.median(r.lat_us / w.lat_us for r, w in zip(rs, raw)))
            for name, rs in runs.items()}


def table(runs: dict[str, list[Row]]) -> str:
    ratios = round_ratios(runs)
    lines = [f"{'target':<10} {'seq 1M MiB/s':>13} {'x raw':>7} {'4k sync lat us':>15} {'x raw':>7}"
             f" {'lat min-max us':>15}"]
    for name, rs in runs.items():
        r, q = median_row(name, rs), ratios[name]
        spread = f"{r.lat_min_us:.1f}-{r.lat_max_us:.1f}"
        lines.append(f"{r.target:<10} {r.seq_mib_s:>13.1f} {q.seq:>7.3f} "
                     f"{r.lat_us:>15.1f} {q.lat:>7.3f} {spread:>15}")
    if len(runs["raw"]) > 1:
        lines.append("rounds (seq MiB/s / lat us):")
        for name, rs in runs.items():
            lines.append(f"  {name:<10} " + "  ".join(f"{r.seq_mib_s:.1f}/{r.lat_us:.1f}" for r in rs))
    return "\n".join(lines)


def on_host(runtime: int, rounds: int, kernel: str, ko: str, append: list[str]) -> int:
    me = shlex.quote(str(Path(__file__).resolve()))
    py = shlex.quote(sys.executable)
    cmd = f"{py} {me} --in-guest --runtime {runtime} --rounds {rounds} --ko {shlex.quote(ko)}"
    env = dict(os.environ, PATH=f"{ROOT}/.venv/bin:{os.environ.get('PATH', '')}")
    args = ["vng", "-r", kernel, "--disable-kvm", "--force-9p", "-p", "2", "-m", "2G"]
    for a in append:
        args += ["-a", a]
    r = subprocess.run(args + ["-e", cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    marker = "BENCH_JSON "
    for line in r.stdout.splitlines():
        if line.startswith(marker):
            doc = json.loads(line[len(marker):])
            runs = {t: [Row(**x) for x in rs] for t, rs in doc["runs"].items()}
            print(f"bench_local: {runtime} s per run, {rounds} round(s), guest clocksource "
                  f"{doc['clocksource']}{' (' + ' '.join(append) + ')' if append else ''}")
            print(table(runs))
            return 0
    sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s per run instead of 20")
    ap.add_argument("--runtime", type=int, default=None, help="seconds per fio run")
    ap.add_argument("--rounds", type=int, default=None,
                    help="measure every target this many times, in turns (default 5; --quick: 1)")
    ap.add_argument("--kernel", default=None,
                    help="guest kernel (default: the newest with headers, tools/kver.sh)")
    ap.add_argument("--ko", default=str(ROOT / "kmod/bsr.ko"), help="bsr.ko to load")
    ap.add_argument("--append", action="append", default=[], metavar="ARG",
                    help="extra guest kernel argument, e.g. tsc=reliable (repeatable)")
    ap.add_argument("--in-guest", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    runtime = a.runtime or (5 if a.quick else 12)
    rounds = a.rounds or (1 if a.quick else 5)
    if a.in_guest:
        runs = in_guest(runtime, rounds, a.ko)
        clock = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        print("BENCH_JSON " + json.dumps({"runs": {t: [r.__dict__ for r in rs]
                                                   for t, rs in runs.items()},
                                          "clocksource": clock.read_text().strip()}), flush=True)
        return 0
    kernel = a.kernel or default_kernel()
    if not kernel:
        sys.stderr.write("bench_local: no guest kernel (linux-image + linux-headers); run make setup\n")
        return 1
    return on_host(runtime, rounds, kernel, a.ko, a.append)


if __name__ == "__main__":
    sys.exit(main())
