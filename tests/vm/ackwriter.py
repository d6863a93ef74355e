#!/usr/bin/env python3
"""Acknowledged-write workload and checker for crash tests (guest side).

    ackwriter.py write DEV --log DIR --blocks N [--threads T] [--seconds S] [--seed X]
    ackwriter.py check DEV --log DIR --blocks N

``write`` runs T threads; thread t owns the blocks b with b % T == t, so
writes to one block never overlap and their order is the thread's order.
Each write is one 4 KiB block opened O_DIRECT|O_DSYNC: when pwrite()
returns the device has acknowledged the write as durable.  Only then the
thread appends "SEQ BLOCK" to DIR/ack.T (one write() per record on an
unbuffered file: on virtme's 9p share the line reaches the host file at
write() time, so the log survives a SIGKILL of the guest).

Every block carries a stamp: magic, block number, sequence number, a fill
derived from both, and a CRC32 of all of it.  ``check`` reads the first N
blocks of DEV with O_DIRECT and, for every block, compares the stamp with
the newest acknowledged sequence number of that block:

  lost     the block holds an older write than the newest acknowledged one
           (or zeros although a write was acknowledged)
  garbage  not zeros and not a valid stamp of this block (torn/misplaced)
  newer    holds a write issued but not yet acknowledged (allowed)

It prints one JSON summary line and exits 0 when nothing was lost and no
block is garbage, 1 otherwise.  Stdlib only: it runs under any python3.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 4096
MAGIC = b"BSRACKW1"
HEAD = struct.Struct("<8sQQ")  # magic, block, seq
TAIL = struct.Struct("<I")  # crc32 of everything before it
FILL_LEN = BLOCK - HEAD.size - TAIL.size
ZERO = bytes(BLOCK)


def stamp(block: int, seq: int) -> bytes:
    head = HEAD.pack(MAGIC, block, seq)
    unit = struct.pack("<QQ", seq ^ 0x5A5A5A5A5A5A5A5A, block * 2654435761 & (2**64 - 1))
    fill = (unit * (FILL_LEN // len(unit) + 1))[:FILL_LEN]
    body = head + fill
    return body + TAIL.pack(zlib.crc32(body))


def parse(data: bytes, block: int) -> int | None:
    """Sequence number of a valid stamp for ``block``; -1 for zeros; None for garbage."""
    if data == ZERO:
        return -1
    magic, blk, seq = HEAD.unpack_from(data)
    if magic != MAGIC or blk != block:
        return None
    if data != stamp(block, seq):
        return None
    return seq


def aligned_buffer() -> mmap.mmap:
    return mmap.mmap(-1, BLOCK)  # page aligned, as O_DIRECT wants


# ------------------------------------------------------------------ writer
@dataclass
class Writer:
    dev: str
    log: Path
    blocks: int
    threads: int = 4
    seconds: float = 60.0
    seed: int = 1
    start_seq: int = 0
    done: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> dict[str, object]:
        self.log.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.seconds
        ts = [threading.Thread(target=self._thread, args=(t, deadline)) for t in range(self.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return {"acked": sum(self.done), "errors": self.errors[:5]}

    def _thread(self, tid: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + tid)
        mine = range(tid, self.blocks, self.threads)
        buf = aligned_buffer()
        fd = os.open(self.dev, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
        logfd = os.open(self.log / f"ack.{tid}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        count = 0
        # sequence numbers: unique across threads, increasing within one
        seq = self.start_seq + tid
        try:
            while time.monotonic() < deadline:
                block = mine[rng.randrange(len(mine))]
                seq += self.threads
                buf.seek(0)
                buf.write(stamp(block, seq))
                if os.pwritev(fd, [buf], block * BLOCK) != BLOCK:
                    raise OSError(f"short write at block {block}")
                os.write(logfd, f"{seq} {block}\n".encode())
                count += 1
        except OSError as e:
            self.errors.append(f"thread {tid}: {e}")
        finally:
            os.close(fd)
            os.close(logfd)
            self.done.append(count)


# ----------------------------------------------------------------- checker
def read_acks(log: Path) -> tuple[dict[int, int], int]:
    """Newest acknowledged seq per block, and the number of acks."""
    newest: dict[int, int] = {}
    total = 0
    for f in sorted(log.glob("ack.*")):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) != 2:  # a line cut by the crash was never complete
                continue
            seq, block = int(parts[0]), int(parts[1])
            total += 1
            if seq > newest.get(block, -1):
                newest[block] = seq
    return newest, total


def check(dev: str, log: Path, blocks: int) -> dict[str, object]:
    newest, total = read_acks(log)
    lost: list[dict[str, int]] = []
    garbage: list[int] = []
    newer = 0
    buf = aligned_buffer()
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        for block in range(blocks):
            if os.preadv(fd, [buf], block * BLOCK) != BLOCK:
                raise OSError(f"short read at block {block}")
            found = parse(bytes(buf), block)
            acked = newest.get(block, -1)
            if found is None:
                garbage.append(block)
            elif found < acked:
                lost.append({"block": block, "acked": acked, "found": found})
            elif found > acked:
                newer += 1
    finally:
        os.close(fd)
    return {"acked_writes": total, "acked_blocks": len(newest), "blocks": blocks,
            "lost": len(lost), "lost_first": lost[:10], "garbage": len(garbage),
            "garbage_first": garbage[:10], "newer_than_acked": newer,
            "ok": not lost and not garbage}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("write", "check"))
    ap.add_argument("dev", help="block device (or file) to write/check")
    ap.add_argument("--log", type=Path, required=True, help="directory of the ack.* logs")
    ap.add_argument("--blocks", type=int, required=True, help="number of 4 KiB blocks from offset 0")
    ap.add_argument("--threads", type=int, default=4, help="concurrent writers (default 4)")
    ap.add_argument("--seconds", type=float, default=60.0, help="write for this long (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the block choice")
    ap.add_argument("--start-seq", type=int, default=0,
                    help="sequence numbers start above this (a second run on the same blocks)")
    a = ap.parse_args(argv)
    if a.mode == "write":
        w = Writer(a.dev, a.log, a.blocks, a.threads, a.seconds, a.seed, a.start_seq)
        out = w.run()
        print(json.dumps(out), flush=True)
        return 1 if out["errors"] else 0
    out = check(a.dev, a.log, a.blocks)
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
