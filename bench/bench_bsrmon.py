#!/usr/bin/env python3
"""CPU cost of bsrmon with many resources.

Feeds ``bsrmon run`` a synthetic ``events2 --statistics`` stream of N
resources (one volume and one peer each; ``python -m bsrmon.synthetic``) at
a 1 s period through a pipe, lets it warm up, then measures the collector's
own CPU time (utime + stime from /proc/PID/stat, all threads; the main
thread and the writer thread are also shown apart) over the measuring window.

    bench/bench_bsrmon.py --resources 100 --seconds 60

``--kernel`` runs the daemon on its default source instead, the kernel
(generic netlink), answered by a fake bsr.ko with recorded dump bytes;
``--text`` only the events2 stream.  Without either, both are measured,
one after the other (what `make bench` runs).  The fake stands where the
socket is: BsrNetlink's own dump() and version() run every period (request
bytes, DumpReader, bsr.nlfast), and the answers come in datagrams of at
most 32 KiB carrying the request's sequence number, as bsr.ko sends them.
What it cannot count is the kernel's share (building the dump inside
recv(), about the system time of the write()s again).

Prints a human summary and one JSON line per source; exits 1 when the share
of one core exceeds --limit (default 2 %) for any of them.

``--netlink`` measures instead, in this process, what one period costs the
kernel source before the common path: decoding a GET_INITIAL_STATE dump of
the same objects (generic netlink bytes built from bsr/abi.py) the way
BsrNetlink.dump() does (bsr.netlink.DumpReader, attributes decoded by
bsr.nlfast) and converting it with bsr.kevents into events for the
collector, next to the events2 text of the same objects parsed into the
collector.  That path needs bsr.ko to run for real; the bytes are what the
module sends.  ``--pyroute2`` times the old decoding (pyroute2's nla
objects) for comparison.

Measured on the 2-core build host, 100 resources (400 objects, 158 KB of
netlink per period): pyroute2 decoding 90-180 ms per period; bsr.nlfast
~4 ms decode + ~4 ms conversion (~8 ms, 0.8 % of a core) plus ~1.5 ms in
the collector, against ~4.5 ms for the events2 text path.  Since then the
decoding alone went from 3.3 to 2.45 ms (whole-message layouts).

The daemon (medians of 3 x 30 s, load average 2-4 from the team's guests;
runs of one setting spread by +-0.2 %): kernel source 2.13 % of one core
with the honest fake and the old code (2.08 % was measured with a fake
whose version() and requests cost nothing), 1.73-1.93 % now; interleaved
runs under heavier load 2.30 % before against 2.06 % now.  events2 text
1.56-1.63 % (unchanged: the changes are on the kernel side).  Second
round (counters as tuples, per-object series, a leaner writer, two-read
message layouts), before/after run one after the other at a load average of
1.7-3.5: kernel 2.16 % -> 2.00 % (main 1.03 %, netlink thread 0.50 %,
writer 0.43 %), events2 text 2.23 % -> 1.93 % (main 1.53 %).  Third
round (the events2 timestamp parsed once per batch), before/after
interleaved, three rounds of 30 s, load average 2.0-9.4: text 1.63 % ->
1.57 % (runs 1.52-1.90), kernel (unchanged code: noise) 1.96 % / 1.70 %
(runs 1.40-1.98).  See docs/bsrmon.md, "Cost".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def cpu_seconds(pid: int, task: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all threads) or of one thread."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of every thread of a process."""
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            u, s = cpu_seconds(pid, int(task))
        except (OSError, ValueError, IndexError):
            continue
        out[int(task)] = u + s
    return out


def thread_names(root: Path) -> dict[int, str]:
    """Native thread id -> Python thread name, as the kernel child wrote them."""
    try:
        with open(root / "threads.json") as f:
            return {int(k): v for k, v in json.load(f).items()}
    except (OSError, ValueError):
        return {}


def count_lines(root: Path) -> int:
    n = 0
    for p in (root / "perfmon").rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                n += sum(1 for line in f if not line.startswith(b"#"))
    return n


# -- --netlink: the kernel source's conversion, in process ---------------

EV_STRUCTS = {
    "EV_RESOURCE": ("ctx", "notify", "res_info", "res_stats"),
    "EV_DEVICE": ("ctx", "notify", "device_info", "device_stats"),
    "EV_CONNECTION": ("ctx", "notify", "conn_info", "conn_stats"),
    "EV_PEER_DEVICE": ("ctx", "notify", "peer_device_info", "peer_device_stats"),
}


def _field_value(abi, f, res: int, k: int, sname: str = ""):  # type: ignore[no-untyped-def]
    """A plausible value: names and states of a connected Primary, counters
    (in the *_stats structs) that grow with the period number k."""
    if f.nla_type == "str":
        return {"res_name": f"r{res}", "conn_name": "peer"}.get(f.name, f"/dev/vd{res}")
    if f.nla_type == "bin":
        if not f.name.endswith("hist"):
            return b""
        hist = [0] * abi.LAT_BUCKETS  # every request of the period in one bucket
        hist[6 if f.name.startswith("local") else 7] = 1024 * k
        return struct.pack(f"={abi.LAT_BUCKETS}Q", *hist)
    fixed = {"volume": 0, "peer_node_id": 1, "type": int(abi.NotifyType.exists),
             "role": int(abi.Role.Primary), "peer_role": int(abi.Role.Secondary),
             "disk_state": int(abi.DiskState.UpToDate),
             "peer_disk_state": int(abi.DiskState.UpToDate),
             "conn_state": int(abi.ConnState.Connected),
             "repl_state": int(abi.ReplState.Established)}
    if f.name in fixed:
        return fixed[f.name]
    if f.nla_type in ("u8", "flag"):
        return 0
    return 8192 * k + res if sname.endswith("_stats") or sname == "notify" else res


def netlink_dump(n_res: int, k: int) -> bytes:
    """The GET_INITIAL_STATE dump of n_res resources as bsr.ko sends it."""
    from bsr import abi, netlink as nl
    out = []
    for r in range(n_res):
        for cmd, names in EV_STRUCTS.items():
            structs = {name: {f.name: _field_value(abi, f, r, k, name)
                              for f in abi.struct_by_name(name).fields} for name in names}
            msg = nl.build(cmd, r if cmd == "EV_DEVICE" else abi.MINOR_NONE, **structs)
            msg["header"]["type"] = NETLINK_FAMILY_ID
            msg["header"]["flags"] = NLM_F_MULTI
            msg["header"]["sequence_number"] = DUMP_SEQ
            msg.encode()
            out.append(bytes(msg.data))
    return b"".join(out)


def dump_done() -> bytes:
    """The NLMSG_DONE that ends the dump."""
    return struct.pack("=IHHIIi", 20, NLMSG_DONE, NLM_F_MULTI, DUMP_SEQ, 0, 0)


NETLINK_FAMILY_ID = 0x20
DUMP_SEQ = 7
NLM_F_MULTI = 2
NLMSG_DONE = 3


def bench_netlink(a: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bsr import netlink as nl
    from bsr.events2 import parse_line
    from bsr.kevents import Converter
    from bsr.model import Verb
    from bsrmon.collector import Collector
    from bsrmon.config import Config
    from bsrmon.synthetic import batch

    periods = max(2, int(a.seconds))
    dumps = [netlink_dump(a.resources, k) + dump_done() for k in range(periods + 1)]
    texts = [batch(a.resources, k, "change") for k in range(periods + 1)]
    conv = Converter(statistics=True)
    kcol = Collector(Config().types, lambda b: True)

    def decoded(k: int) -> list:  # type: ignore[type-arg]
        if a.pyroute2:
            return [nl.decode_reference(m)
                    for m in nl.parse_reference(dumps[k], NETLINK_FAMILY_ID)
                    if m["header"]["type"] == NETLINK_FAMILY_ID]
        reader = nl.DumpReader(NETLINK_FAMILY_ID, DUMP_SEQ)
        reader.feed(dumps[k])
        assert reader.done
        return reader.messages

    def kernel(k: int) -> list:  # type: ignore[type-arg]
        return [ev for m in decoded(k) for ev in conv.convert(m, verb=Verb.change)]

    def text(k: int) -> list:  # type: ignore[type-arg]
        return [parse_line(line) for line in texts[k]]

    def timed(f, *args):  # type: ignore[no-untyped-def]
        t0 = time.process_time()
        r = f(*args)
        return 1000 * (time.process_time() - t0), r

    text(0)
    for ev in kernel(0):  # warm up: first layouts, first series
        kcol.event(ev)
    samples: dict[str, list[float]] = {"kernel": [], "text": [], "collector": []}
    for k in range(1, periods + 1):
        ms, kev = timed(kernel, k)
        samples["kernel"].append(ms)
        ms, tev = timed(text, k)
        samples["text"].append(ms)
        ms, _ = timed(lambda evs: [kcol.event(ev) for ev in evs], kev)
        samples["collector"].append(ms)
        assert len(kev) == len(tev) == 4 * a.resources
    k_ms, t_ms, c_ms = (statistics.median(samples[n]) for n in ("kernel", "text", "collector"))
    objs = 4 * a.resources
    pct = k_ms / (10 * a.period)
    print(f"per period (median of {periods}), {a.resources} resources ({objs} objects): "
          f"netlink dump decode + convert ({'pyroute2' if a.pyroute2 else 'bsr.nlfast'}) "
          f"{k_ms:.1f} ms ({1000 * k_ms / objs:.0f} us/object, {pct:.2f} % of one core); "
          f"events2 text parse {t_ms:.1f} ms ({1000 * t_ms / objs:.0f} us/object); "
          f"the collector, the same for both, {c_ms:.1f} ms (limit {a.decode_limit:g} %)")
    print(json.dumps({"bench": "bsrmon_decode", "resources": a.resources, "periods": periods,
                      "decoder": "pyroute2" if a.pyroute2 else "nlfast",
                      "netlink_ms_per_period": round(k_ms, 2),
                      "text_ms_per_period": round(t_ms, 2),
                      "collector_ms_per_period": round(c_ms, 2),
                      "netlink_pct_one_core": round(pct, 3),
                      "limit_pct": a.decode_limit,
                      "dump_bytes": len(dumps[1])}))
    return 0 if a.pyroute2 or pct <= a.decode_limit else 1


# -- --kernel: the real daemon on the kernel source, fed a fake bsr.ko ------

DATAGRAM_MAX = 32 * 1024 - 320  # what netlink_recvmsg lets a dump skb grow to


class Recorded:
    """One recorded answer of bsr.ko: its datagrams (cut at message
    boundaries, at most DATAGRAM_MAX bytes each, as a netlink dump is) and
    where each message header is, so that the sequence number of the
    request can be put in."""

    def __init__(self, data: bytes) -> None:
        self.datagrams: list[bytes] = []
        self.headers: list[list[int]] = []
        off, start, heads = 0, 0, []
        while off < len(data):
            length = struct.unpack_from("=I", data, off)[0]
            size = (length + 3) & ~3
            if heads and off + size - start > DATAGRAM_MAX:
                self.datagrams.append(data[start:off])
                self.headers.append([h - start for h in heads])
                start, heads = off, []
            heads.append(off)
            off += size
        self.datagrams.append(data[start:])
        self.headers.append([h - start for h in heads])

    def with_seq(self, seq: int) -> list[bytes]:
        out = []
        put = struct.Struct("=I").pack_into
        for data, heads in zip(self.datagrams, self.headers):
            buf = bytearray(data)
            for h in heads:
                put(buf, h + 8, seq)
            out.append(bytes(buf))
        return out


class FakeBsrSocket:
    """bsr.ko's end of BsrNetlink's plain socket: checks each request and
    answers GET_INITIAL_STATE with the next recorded dump (the last one
    again when they run out), GET_VERSION with a recorded reply and its ack,
    both carrying the request's sequence number."""

    def __init__(self, dumps: list[Recorded], version: Recorded) -> None:
        from bsr import netlink as nl
        self.dumps = dumps
        self.version = version
        self.next = 0
        self.queue: list[bytes] = []
        self.cmds = {nl.CMD_IDS["GET_INITIAL_STATE"]: "dump", nl.CMD_IDS["GET_VERSION"]: "version"}

    def send(self, data: bytes) -> int:
        length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", data)
        assert length == len(data) and mtype == NETLINK_FAMILY_ID and flags & 1, "bad request"
        what = self.cmds[data[16]]
        if what == "dump":
            assert flags & 0x300 == 0x300, "a dump request without NLM_F_DUMP"
            rec = self.dumps[min(self.next, len(self.dumps) - 1)]
            self.next += 1
        else:
            rec = self.version
        self.queue = rec.with_seq(seq)
        return len(data)

    def recv(self, _size: int) -> bytes:
        return self.queue.pop(0)

    def close(self) -> None:
        pass


def version_reply() -> bytes:
    """GET_VERSION's reply and the ack that follows it (NLM_F_ACK)."""
    from bsr import netlink as nl
    msg = nl.build("GET_VERSION", version_info={
        "version": "0.9.0", "abi_version": 1, "proto_min": 1, "proto_max": 1,
        "build": "6.1.0-56-amd64"}, module_stats={
        "requests_allocated": 64, "peer_requests_allocated": 8, "pages_allocated": 512,
        "notifications_sent": 0, "notifications_dropped": 0})
    msg["header"]["type"] = NETLINK_FAMILY_ID
    msg["header"]["sequence_number"] = DUMP_SEQ
    msg.encode()
    ack = struct.pack("=IHHIIi", 36, NLMSG_ERROR, NLM_F_CAPPED, DUMP_SEQ, 0, 0)
    ack += struct.pack("=IHHII", 16 + 4 + 8, NETLINK_FAMILY_ID, 5, DUMP_SEQ, 0)
    return bytes(msg.data) + ack


NLMSG_ERROR = 2
NLM_F_CAPPED = 0x100


def fake_netlink(dumps: list[bytes]):  # type: ignore[no-untyped-def]
    """A BsrNetlink whose plain socket is a FakeBsrSocket: dump() and
    version() run BsrNetlink's own code (request bytes, DumpReader,
    bsr.nlfast), only the kernel is recorded."""
    from bsr import netlink as nl

    class FakeBsrNetlink(nl.BsrNetlink):
        def __init__(self) -> None:  # no pyroute2 socket: there is no family to bind
            sock = FakeBsrSocket([Recorded(d) for d in dumps], Recorded(version_reply()))
            self.family_id = NETLINK_FAMILY_ID
            self.mcast_groups = {}
            self._ev = None
            self._pending = []
            self._channel = nl.PlainChannel(NETLINK_FAMILY_ID, open_socket=lambda: sock)

        def subscribe(self) -> None:
            pass

        def close(self) -> None:
            self._channel.close()

        def events(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
            time.sleep(timeout or 0)  # no notifications: a steady load
            return iter(())

    return FakeBsrNetlink()


def kernel_child(a: argparse.Namespace) -> int:
    """``bsrmon run`` (the Daemon with the default KernelSource) on FakeBsrNetlink."""
    import asyncio
    import pickle
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bsrmon.config import Config
    from bsrmon.daemon import Daemon
    from bsrmon.sources import KernelSource

    with open(a.kernel_child, "rb") as f:
        dumps = pickle.load(f)
    threading.Timer(1.0, _write_thread_names, (Path(a.file_path).parent,)).start()
    fake = fake_netlink(dumps)
    cfg = Config(file_path=Path(a.file_path), period=a.period)
    src = KernelSource(cfg.period, netlink_factory=lambda: fake)
    if a.event_path:
        src.fast_stats = False
    return asyncio.run(Daemon(cfg, src, control=False).run())


def _write_thread_names(root: Path) -> None:
    """Which native thread is which (the bench's per-thread CPU shares)."""
    names = {t.native_id: t.name for t in threading.enumerate()
             if t is not threading.current_thread()}
    with open(root / "threads.json", "w") as f:
        json.dump(names, f)


def kernel_dumps(n_res: int, periods: int) -> list[bytes]:
    return [netlink_dump(n_res, k) + dump_done() for k in range(periods)]


def measure(mon: subprocess.Popen, root: Path, a: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """CPU share of one core of ``mon`` over a.seconds after a.warmup."""
    time.sleep(a.warmup)
    if mon.poll() is not None:
        raise SystemExit(f"bsrmon exited early ({mon.returncode})")
    c0, t0, l0 = cpu_seconds(mon.pid), time.monotonic(), count_lines(root / "log")
    m0 = cpu_seconds(mon.pid, mon.pid)
    th0 = thread_cpu(mon.pid)
    time.sleep(a.seconds)
    c1, t1 = cpu_seconds(mon.pid), time.monotonic()
    m1 = cpu_seconds(mon.pid, mon.pid)
    th1 = thread_cpu(mon.pid)
    l1 = count_lines(root / "log")
    user, system = c1[0] - c0[0], c1[1] - c0[1]
    names = thread_names(root)
    threads = {names.get(tid, "main" if tid == mon.pid else str(tid)):
               round(100.0 * (cpu - th0.get(tid, 0.0)) / (t1 - t0), 3)
               for tid, cpu in th1.items() if tid != mon.pid}
    return {"seconds": t1 - t0, "user": user, "system": system, "threads": threads,
            "pct": 100.0 * (user + system) / (t1 - t0),
            "main_pct": 100.0 * (m1[0] - m0[0] + m1[1] - m0[1]) / (t1 - t0),
            "lines_per_s": (l1 - l0) / (t1 - t0)}


def run_text(a: argparse.Namespace, root: Path) -> dict:  # type: ignore[type-arg]
    gen = subprocess.Popen(
        [sys.executable, "-m", "bsrmon.synthetic", "--resources", str(a.resources),
         "--interval", str(a.period)], stdout=subprocess.PIPE)
    mon = subprocess.Popen(
        [sys.executable, "-m", "bsrmon", "--file-path", str(root / "log"), "run",
         "--no-control", "--events", "-", "--clock", "wall", "--period", str(a.period)],
        stdin=gen.stdout, stderr=subprocess.DEVNULL)
    assert gen.stdout is not None
    gen.stdout.close()
    try:
        return measure(mon, root, a)
    finally:
        mon.terminate()
        gen.terminate()
        mon.wait(10)
        gen.wait(10)


def run_kernel(a: argparse.Namespace, root: Path, dump_file: Path) -> dict:  # type: ignore[type-arg]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--kernel-child", str(dump_file),
           "--file-path", str(root / "log"), "--period", str(a.period)]
    if a.event_path:
        cmd.append("--event-path")
    mon = subprocess.Popen(cmd)
    try:
        return measure(mon, root, a)
    finally:
        mon.terminate()
        mon.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resources", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="measuring window (--netlink: number of periods)")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--period", type=float, default=1.0)
    ap.add_argument("--limit", type=float, default=2.0, help="max %% of one core")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of --seconds each; the median is judged")
    ap.add_argument("--kernel", action="store_true",
                    help="only the daemon on its default (kernel) source, fed recorded dumps")
    ap.add_argument("--text", action="store_true",
                    help="only the events2 text source (default: text, then kernel)")
    ap.add_argument("--event-path", action="store_true",
                    help="with --kernel: sample through events and the State (the old path)")
    ap.add_argument("--netlink", action="store_true",
                    help="cost of the kernel source's decoding instead (in process)")
    ap.add_argument("--decode-limit", type=float, default=1.0,
                    help="with --netlink: max %% of one core for decode + convert")
    ap.add_argument("--pyroute2", action="store_true",
                    help="with --netlink: the old pyroute2 decoding, for comparison")
    ap.add_argument("--kernel-child", help=argparse.SUPPRESS)
    ap.add_argument("--file-path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.kernel_child:
        return kernel_child(a)
    if a.netlink:
        return bench_netlink(a)
    kernels = [False] if a.text else [True] if a.kernel else [False, True]
    over = [k for k in kernels if measure_source(a, k) > a.limit]
    return 1 if over else 0


def measure_source(a: argparse.Namespace, kernel: bool) -> float:
    """Median CPU share of --repeat runs on one source; prints the summary."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bsrmon-bench-") as tmp:
        dump_file = Path(tmp) / "dumps.pickle"
        if kernel:
            import pickle
            periods = int((a.warmup + a.seconds + 10) / a.period) + 2
            with open(dump_file, "wb") as f:
                pickle.dump(kernel_dumps(a.resources, periods), f)
        for i in range(a.repeat):
            root = Path(tmp) / f"run{i}"
            root.mkdir()
            runs.append(run_kernel(a, root, dump_file) if kernel else run_text(a, root))
            r = runs[-1]
            print(f"run {i + 1}: {r['pct']:.2f} % (main thread {r['main_pct']:.2f} %)",
                  file=sys.stderr)
    r = sorted(runs, key=lambda x: x["pct"])[len(runs) // 2]
    pct, main_pct = r["pct"], r["main_pct"]
    source = ("kernel (event path)" if a.event_path else "kernel") if kernel else "events2 text"
    print(f"bsrmon, {source} source: {a.resources} resources, period {a.period:g} s, "
          f"{r['seconds']:.0f} s measured (median of {len(runs)}): "
          f"{pct:.2f} % of one core (user {r['user']:.2f} s, system {r['system']:.2f} s), "
          f"{r['lines_per_s']:.0f} series lines/s; main thread {main_pct:.2f} %, "
          f"other threads {pct - main_pct:.2f} % ("
          f"{', '.join(f'{n} {v:.2f} %' for n, v in sorted(r['threads'].items()))}) "
          f"(limit {a.limit:g} %); "
          f"runs: {', '.join(format(x['pct'], '.2f') for x in runs)}")
    print(json.dumps({"bench": "bsrmon_cpu", "source": source, "resources": a.resources,
                      "period_s": a.period, "seconds": round(r["seconds"], 1),
                      "cpu_pct_one_core": round(pct, 3),
                      "runs_pct": [round(x["pct"], 3) for x in runs],
                      "user_s": round(r["user"], 2), "system_s": round(r["system"], 2),
                      "main_thread_pct": round(main_pct, 3), "threads_pct": r["threads"],
                      "lines_per_s": round(r["lines_per_s"], 1), "limit_pct": a.limit}))
    return pct


if __name__ == "__main__":
    sys.exit(main())
