"""The kernel source's loop against a fake netlink client: initial dump,
notifications, one statistics poll + tick per period, module statistics."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bsr.abi import DiskState, NotifyType, Role
from bsr.netlink import Message

from bsrmon.config import Config
from bsrmon.daemon import Daemon
from bsrmon.sources import KernelSource

KIB_PER_POLL = 1024


class FakeNetlink:
    """Counters grow by KIB_PER_POLL KiB and 8 writes on every dump."""

    polls = 0

    def subscribe(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _msgs(self, ntype: int) -> list[Message]:
        n = FakeNetlink.polls
        FakeNetlink.polls += 1
        notify = {"type": ntype, "seq": 1}
        return [
            Message("EV_RESOURCE", structs={"ctx": {"res_name": "r0"}, "notify": notify,
                                            "res_info": {"role": Role.Primary}}),
            Message("EV_DEVICE", minor=3, structs={
                "ctx": {"res_name": "r0", "volume": 0}, "notify": notify,
                "device_info": {"disk_state": DiskState.UpToDate},
                "device_stats": {"write_sectors": 2 * KIB_PER_POLL * n, "write_ios": 8 * n,
                                 "completed_ios": 8 * n, "local_lat_ns": 8 * n * 1000,
                                 "master_lat_ns": 8 * n * 2000}}),
            Message("EV_INITIAL_DONE", structs={"notify": notify}),
        ]

    def dump(self, cmd: str, **_: object) -> list[Message]:
        assert cmd == "GET_INITIAL_STATE"
        return self._msgs(NotifyType.exists)

    def events(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        time.sleep(timeout or 0)
        return iter(())

    def version(self) -> Message:
        return Message("GET_VERSION", structs={"module_stats": {
            "requests_allocated": 5, "peer_requests_allocated": 0, "pages_allocated": 7}})


def test_kernel_source_polls_converts_and_samples(tmp_path: Path) -> None:
    FakeNetlink.polls = 0
    cfg = Config(file_path=tmp_path, period=0.2, socket=tmp_path / "s", pid_file=tmp_path / "p")
    src = KernelSource(cfg.period, netlink_factory=FakeNetlink)
    d = Daemon(cfg, src, control=False)

    async def go() -> int:
        task = asyncio.create_task(d.run())
        await asyncio.sleep(1.5)
        d._stop.set()
        return await task

    assert asyncio.run(go()) == 0
    log = (tmp_path / "events.log").read_text()
    assert "exists resource name:r0 role:Primary" in log
    assert "exists device name:r0 volume:0 minor:3 disk:UpToDate" in log
    assert "written:" not in log
    rows = [ln.split() for ln in (tmp_path / "perfmon/r0/vnr0_iostat").read_text().splitlines()
            if not ln.startswith("#")]
    assert len(rows) >= 3
    for row in rows:
        dt = int(row[1]) / 1000
        assert float(row[5]) * dt == pytest.approx(KIB_PER_POLL, abs=0.001)  # 1 MiB a poll
        assert float(row[4]) * dt == pytest.approx(8, abs=0.001)
    lat = (tmp_path / "perfmon/r0/vnr0_reqstat").read_text().splitlines()[-1].split()
    assert lat[3:6] == ["1", "2", "1"]  # local 1 µs, master 2 µs, replication added 1 µs
    mem = (tmp_path / "perfmon/_global/memstat").read_text().splitlines()[-1].split()
    assert mem[1:4] == ["5", "0", "7"]
    assert src.polls >= 4


def test_events_command_is_restarted_and_the_state_rebuilt(tmp_path: Path) -> None:
    from bsrmon import sources
    from bsrmon.sources import Events2Source

    rec = tmp_path / "one.events2"
    rec.write_text("exists resource name:r9 role:Secondary suspended:no\nexists -\n")
    cfg = Config(file_path=tmp_path / "log", period=0.2, socket=tmp_path / "s",
                 pid_file=tmp_path / "p")
    src = Events2Source(command=f"cat {rec}", period=cfg.period)
    d = Daemon(cfg, src, control=False)
    old = sources.RESTART_DELAY_S
    sources.RESTART_DELAY_S = 0.3

    async def go() -> int:
        task = asyncio.create_task(d.run())
        await asyncio.sleep(1.6)
        d._stop.set()
        return await task

    try:
        assert asyncio.run(go()) == 0
    finally:
        sources.RESTART_DELAY_S = old
    log = (tmp_path / "log/events.log").read_text().splitlines()
    runs = [ln for ln in log if "exists resource name:r9 role:Secondary" in ln]
    assert len(runs) >= 2  # every restart dumps the state again, and it is logged again
    assert src.clock == "wall" and src.bad_lines == 0


def test_source_state_is_waiting_without_the_module_and_live_once_it_delivers(tmp_path: Path) -> None:
    from bsr.netlink import ModuleNotLoaded

    loaded = {"yes": False}

    def factory() -> FakeNetlink:
        if not loaded["yes"]:
            raise ModuleNotLoaded()
        return FakeNetlink()

    cfg = Config(file_path=tmp_path, period=0.2, socket=tmp_path / "s", pid_file=tmp_path / "p")
    d = Daemon(cfg, KernelSource(cfg.period, netlink_factory=factory), control=False)
    states = []

    async def go() -> int:
        task = asyncio.create_task(d.run())
        await asyncio.sleep(0.5)
        states.append(d.source_state())
        d._stop.set()
        return await task

    assert asyncio.run(go()) == 0
    assert states == ["waiting"]
    assert Daemon(cfg, KernelSource(cfg.period, netlink_factory=FakeNetlink),
                  control=False).source_state() == "starting"
