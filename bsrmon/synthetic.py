"""A synthetic ``events2 --statistics --timestamps`` stream, for benchmarks,
demos and tests: N resources with one volume and one peer each, writing a
steady load.  ``python -m bsrmon.synthetic --resources 100 --interval 1``
prints the initial dump and then one statistics batch per interval, like
``bsrsetup events2 --statistics --timestamps --interval=1`` would.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import TextIO

WRITE_KIB_PER_S = 4096
IOPS = 1024


def _hist(bucket: int, n: int) -> str:
    h = ["0"] * 24
    h[bucket] = str(n)
    return ",".join(h)


def batch(n_res: int, k: int, verb: str, interval: float = 1.0,
          now: datetime | None = None) -> list[str]:
    """The lines of batch ``k``: counters as after ``k * interval`` seconds of
    WRITE_KIB_PER_S KiB/s in IOPS writes."""
    ts = (now or datetime.now().astimezone()).isoformat(timespec="microseconds")
    out = []
    w, io = int(WRITE_KIB_PER_S * k * interval), int(IOPS * k * interval)
    for r in range(n_res):
        name = f"r{r}"
        out.append(f"{ts} {verb} resource name:{name} role:Primary suspended:no "
                   "write-ordering:flush")
        out.append(
            f"{ts} {verb} device name:{name} volume:0 minor:{r} disk:UpToDate client:no "
            f"backing_dev:/dev/vd{r} open:yes size:1048576 read:{w // 8} written:{w} "
            f"al-writes:{24 * k} bm-writes:{2 * k} upper-pending:1 lower-pending:1 "
            f"al-suspended:no blocked:no read-ios:{io // 8} write-ios:{io} al-hits:{io - 24 * k} "
            f"al-misses:{24 * k} al-starving:0 al-used:24 local-lat-ns:{io * 100000} "
            f"master-lat-ns:{io * 150000} completed-ios:{io + io // 8} "
            f"local-lat-hist:{_hist(6, io)} master-lat-hist:{_hist(7, io)} io-errors:0")
        out.append(
            f"{ts} {verb} connection name:{name} peer-node-id:1 conn-name:peer connection:Connected "
            f"role:Secondary congested:no ap-in-flight:64 rs-in-flight:0 "
            f"sent-bytes:{w * 1024 + 100 * k} recv-bytes:{100 * k} sndbuf-fill:4096 "
            "sndbuf-size:4194304")
        out.append(
            f"{ts} {verb} peer-device name:{name} peer-node-id:1 conn-name:peer volume:0 "
            "replication:Established peer-disk:UpToDate peer-client:no resync-suspended:no "
            f"received:0 sent:{w} out-of-sync:0 pending:1 unacked:0 repl-sent:{w} rs-sent:0 "
            f"acked-ios:{io} net-lat-ns:{io * 50000}")
    return out


def stream(out: TextIO, n_res: int, interval: float, count: int | None = None) -> None:
    out.write("\n".join(batch(n_res, 0, "exists")) + "\n")
    out.write(datetime.now().astimezone().isoformat(timespec="microseconds") + " exists -\n")
    out.flush()
    k = 0
    start = time.monotonic()
    while count is None or k < count:
        k += 1
        time.sleep(max(0.0, start + k * interval - time.monotonic()))
        out.write("\n".join(batch(n_res, k, "change", interval)) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bsrmon.synthetic", description=__doc__)
    p.add_argument("--resources", type=int, default=1)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--count", type=int, help="stop after COUNT batches")
    a = p.parse_args(argv)
    try:
        stream(sys.stdout, a.resources, a.interval, a.count)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
