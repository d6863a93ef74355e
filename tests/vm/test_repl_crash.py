"""The Primary dies under protocol C while writing: no acknowledged write is
lost on the Secondary that takes over, and the old Primary comes back as
its sync target with identical data.

Workload: tests/vm/ackwriter.py on the Primary (4 threads of O_DIRECT|
O_DSYNC stamped 4 KiB writes, every completed write logged to a file on the
host share), plus a finished fio --verify=crc32c job on a separate region.
The Primary's QEMU is SIGKILLed at a random moment; the Secondary is
promoted (no --force: it is UpToDate) and checks every acknowledged write.

Each test runs against DRBD 8.4 (the reference: proves workload and
checker) and against bsr.  One iteration in the normal run; ``make soak``
(-m soak) runs BSR_SOAK_ITERATIONS (default 20) with random kill times.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import GuestError
from harness.lab import Lab
from repl_lab import BACKENDS, PAIRS, Node, Pair, ackwriter_cmd, data_sha256, nodes, zero_image

pytestmark = pytest.mark.vm

BLOCKS = 8192  # ackwriter region: the first 32 MiB
FIO_OFFSET_MIB, FIO_MIB = 40, 8  # a finished fio job's region
WRITE_SECONDS = 40  # the writer's own bound; the kill comes well before
ITERATION_SECONDS = 900  # everything in one iteration, boots included


def fio_args(dev: str) -> str:
    return (f"fio --name=acked --filename={dev} --direct=1 --ioengine=libaio --iodepth=16 "
            f"--rw=randwrite --bs=4k --offset={FIO_OFFSET_MIB}M --size={FIO_MIB}M "
            f"--verify=crc32c --verify_fatal=1 --randrepeat=1 --output-format=terse")


def wait_for_acks(log: Path, minimum: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count = sum(f.read_text().count("\n") for f in log.glob("ack.*"))
        if count >= minimum:
            return count
        time.sleep(0.2)
    raise AssertionError(f"writer logged only {count} acknowledged writes in {seconds}s")


def crash_iteration(lab: Lab, pair: Pair, it: int, rng: random.Random, log: Path) -> dict[str, object]:
    """One crash of the Primary; returns what was seen (for the soak log)."""
    a, b = pair.a, pair.b
    started = time.monotonic()
    for n in (a, b):  # stamps of an earlier iteration must not look valid
        zero_image(n)
    pair.setup(primary=a)
    # a finished job: every one of its writes was acknowledged before the crash
    a.g.check(fio_args(pair.device) + " --do_verify=0", timeout=600)
    shutil.rmtree(log, ignore_errors=True)
    log.mkdir(parents=True)
    writer = a.g.run_async(ackwriter_cmd("write", pair.device, log, BLOCKS, threads=4,
                                         seconds=WRITE_SECONDS, seed=rng.randrange(1 << 30)),
                           timeout=WRITE_SECONDS + 120)
    wait_for_acks(log, 20, 120)
    delay = rng.uniform(0.5, 15.0)
    time.sleep(delay)
    if writer.done():
        raise AssertionError(f"iteration {it}: writer ended before the kill: {writer.wait()}")
    lab.a.kill()
    try:
        writer.wait()
    except GuestError:
        pass  # the guest died under it: expected
    pair.wait_peer_lost(b)
    pair.primary(b)
    r = b.g.run(ackwriter_cmd("check", pair.device, log, BLOCKS), timeout=600)
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.rc == 0 and found["ok"], (
        f"iteration {it} ({pair.name}, kill {delay:.1f}s after the first acks): "
        f"acknowledged writes lost on the new Primary: {found}")
    assert found["acked_writes"] >= 20, found
    v = b.g.run(fio_args(pair.device) + " --verify_only", timeout=600)
    assert v.rc == 0, f"iteration {it}: fio verify of the finished job on the new Primary:\n{v.stdout}{v.stderr}"
    seen = {"iteration": it, "kill_after_s": round(delay, 1), **found}
    # the old Primary returns: it must become B's sync target and end identical
    lab.boot()
    pair.restart(a)
    pair.wait_in_sync()
    size = pair.data_bytes(b)
    ha, hb = (data_sha256(n, pair.disk_of(n), size) for n in (a, b))
    assert ha == hb, f"iteration {it}: data differs after the old Primary rejoined: {ha} != {hb}"
    assert time.monotonic() - started < ITERATION_SECONDS, f"iteration {it} took too long"
    return seen


def run_iterations(lab: Lab, make_pair: Callable[[Node, Node], Pair], count: int, seed: int) -> None:
    rng = random.Random(seed)
    log = lab.workdir / "shared" / "acklog"
    for it in range(1, count + 1):
        a, b = nodes(lab)
        pair = make_pair(a, b)
        try:
            seen = crash_iteration(lab, pair, it, rng, log)
        except BaseException:
            print(f"crash loop: failed in iteration {it} of {count} (seed {seed})")
            raise
        finally:
            pair.teardown()
        print(f"crash loop: {json.dumps(seen)}")


def make_pairs(request: pytest.FixtureRequest, backend: str) -> Callable[[Node, Node], Pair]:
    """Pair factory; bsr.ko is built only for the bsr backend."""
    ko = request.getfixturevalue("bsr_ko") if backend == "bsr" else Path()
    return PAIRS[backend](ko, "C")


@pytest.mark.parametrize("backend", BACKENDS)
def test_primary_killed_under_protocol_c_loses_no_acknowledged_write(lab: Lab, backend: str,
                                                                    request: pytest.FixtureRequest) -> None:
    run_iterations(lab, make_pairs(request, backend), 1, seed=int(time.time()))


@pytest.mark.soak
@pytest.mark.parametrize("backend", sorted(PAIRS))
def test_soak_primary_killed_repeatedly_loses_no_acknowledged_write(lab: Lab, backend: str,
                                                                     request: pytest.FixtureRequest) -> None:
    if "soak" not in (request.config.option.markexpr or ""):
        pytest.skip("soak: runs only under `make soak` (pytest -m soak)")
    count = int(os.environ.get("BSR_SOAK_ITERATIONS", "20"))
    run_iterations(lab, make_pairs(request, backend), count, seed=int(time.time()))
