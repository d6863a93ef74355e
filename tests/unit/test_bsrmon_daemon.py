"""The daemon as admins drive it: start/status/show/get/set/stop through the
control socket, single instance by pid-file lock, SIGKILL and restart."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bsrmon.series import SeriesKey, parse_line, read_samples

PY = sys.executable
GEN = f"{PY} -m bsrmon.synthetic --resources 2 --interval 0.2"


def bsrmon(tmp: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    base = [PY, "-m", "bsrmon", "-c", str(tmp / "bsrmon.toml"), "--file-path", str(tmp / "log"),
            "--socket", str(tmp / "run/bsrmon.sock"), "--pid-file", str(tmp / "run/bsrmon.pid")]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)


def wait_for(pred, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def iostat_lines(tmp: Path, res: str = "r0") -> list[str]:
    p = tmp / "log/perfmon" / res / "vnr0_iostat"
    return p.read_text().splitlines() if p.exists() else []


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "bsrmon.toml").write_text("period = 0.2\n")
    r = bsrmon(tmp_path, "/start", "--events-cmd", GEN)
    assert r.returncode == 0, r.stderr
    assert "bsrmon started (pid" in r.stdout
    yield tmp_path
    bsrmon(tmp_path, "stop")


def test_start_status_show_get_set_stop(daemon: Path) -> None:
    wait_for(lambda: len(iostat_lines(daemon)) > 4)
    st = bsrmon(daemon, "status", "--json")
    assert st.returncode == 0
    info = json.loads(st.stdout)
    assert info["running"] and info["resources"] == 2 and info["period"] == 0.2
    again = bsrmon(daemon, "start")
    assert again.returncode == 0 and "already running" in again.stdout
    show = json.loads(bsrmon(daemon, "show", "/json").stdout)
    io = [s for s in show if s["type"] == "iostat" and s["resource"] == "r1"]
    assert io and io[0]["values"]["w_kibs"] == pytest.approx(4096, rel=0.2)
    assert bsrmon(daemon, "get", "period").stdout == "0.2\n"
    r = bsrmon(daemon, "set", "types", "iostat")
    assert r.returncode == 0 and "applied to the running daemon" in r.stdout
    assert bsrmon(daemon, "get", "types").stdout == "iostat\n"
    assert 'types = ["iostat"]' in (daemon / "bsrmon.toml").read_text()
    assert bsrmon(daemon, "set", "period", "-1").returncode == 1
    stop = bsrmon(daemon, "/stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert bsrmon(daemon, "status").returncode == 3
    assert not (daemon / "run/bsrmon.sock").exists()


def test_watch_prints_new_samples_in_human_units(daemon: Path) -> None:
    wait_for(lambda: len(iostat_lines(daemon)) > 3)
    r = bsrmon(daemon, "watch", "iostat", "r0", "0", "--count", "3")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "r_iops", "r_kibs"] and len(lines) == 4
    assert "MiB/s" in lines[-1]


def test_sigkill_loses_nothing_written_and_restart_resumes(tmp_path: Path) -> None:
    (tmp_path / "bsrmon.toml").write_text("period = 0.2\n")
    base = [PY, "-m", "bsrmon", "-c", str(tmp_path / "bsrmon.toml"),
            "--file-path", str(tmp_path / "log"), "--socket", str(tmp_path / "run/s"),
            "--pid-file", str(tmp_path / "run/pid")]
    first = subprocess.Popen(base + ["run", "--events-cmd", GEN], stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        wait_for(lambda: len(iostat_lines(tmp_path)) > 6)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    os.killpg(first.pid, signal.SIGKILL) if _group_alive(first.pid) else None
    before = iostat_lines(tmp_path)
    assert (tmp_path / "run/pid").exists()  # stale, but unlocked
    second = subprocess.Popen(base + ["run", "--events-cmd", GEN], stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_for(lambda: len(iostat_lines(tmp_path)) > len(before) + 4)
        after = iostat_lines(tmp_path)
    finally:
        second.terminate()
        second.wait(10)
        if _group_alive(second.pid):
            os.killpg(second.pid, signal.SIGKILL)
    # every complete line written before the kill is still there, in place
    complete = [ln for ln in before if parse_line(ln + "\n", 5) or ln.startswith("#")]
    assert after[:len(complete)] == complete
    samples = list(read_samples(tmp_path / "log/perfmon", SeriesKey("iostat", "r0", 0)))
    assert len(samples) == len(after) - 2  # no damaged lines
    assert all(a.time < b.time for a, b in zip(samples, samples[1:]))
    assert second.returncode == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_sighup_rereads_the_config_file(daemon: Path) -> None:
    pid = int((daemon / "run/bsrmon.pid").read_text())
    (daemon / "bsrmon.toml").write_text('period = 0.2\ntypes = ["network"]\n')
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: bsrmon(daemon, "get", "types").stdout == "network\n")
    (daemon / "bsrmon.toml").write_text("period = nonsense\n")
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.5)
    from bsrmon.daemon import running_pid
    assert running_pid(daemon / "run/bsrmon.pid") == pid  # a bad file keeps it running...
    (daemon / "bsrmon.toml").write_text("period = 0.2\n")  # (no SIGHUP: just for our CLI)
    assert bsrmon(daemon, "get", "types").stdout == "network\n"  # ...with its settings


def test_start_returns_only_once_the_source_delivers(tmp_path: Path) -> None:
    """`bsrmon start; bsradm up r0` must not lose the create events: start
    waits for the source, not just for the control socket."""
    (tmp_path / "bsrmon.toml").write_text("period = 0.2\n")
    r = bsrmon(tmp_path, "start", "--events-cmd", f"sleep 1.5; exec {GEN}")
    try:
        assert r.returncode == 0, r.stderr
        info = json.loads(bsrmon(tmp_path, "status", "--json").stdout)
        assert info["source_state"] == "live"
        assert info["events"] > 0
    finally:
        bsrmon(tmp_path, "stop")
