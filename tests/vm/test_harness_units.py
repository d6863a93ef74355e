"""Host-side pieces of the harness that need no guest."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import zygote
from harness.kernel_log import find_problems, find_problems_in_text
from harness.guest import Disk, Guest, GuestSpec
from harness.lab import HostUdpBuffers, NetemSettings, free_udp_ports
from harness.plugin import pick_disks


def test_kernel_log_scan_flags_each_kind_of_trouble() -> None:
    lines = [
        "WARNING: CPU: 0 PID: 1 at drivers/x.c:1 f+0x1/0x2",
        "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "Oops: 0000 [#1] PREEMPT SMP",
        "general protection fault, probably for non-canonical address",
        "Kernel panic - not syncing: Fatal exception",
        "INFO: task bsr_worker:123 blocked for more than 120 seconds.",
        "kmemleak: 2 new suspected memory leaks",
        "unreferenced object 0xffff888003a1b000 (size 64):",
    ]
    assert len(find_problems_in_text("\n".join(lines))) == len(lines)


def test_kernel_log_scan_passes_ordinary_lines() -> None:
    ok = [(1, 6, "bsr: module loaded, version 0.1.0"), (2, 4, "virtio_net virtio1 enp0s3: renamed")]
    assert find_problems(ok) == []


def test_udp_buffers_raised_then_restored(tmp_path: Path) -> None:
    core = tmp_path / "net" / "core"
    core.mkdir(parents=True)
    (core / "rmem_max").write_text("212992\n")
    (core / "rmem_default").write_text("16777216\n")  # already larger: left alone
    buffers = HostUdpBuffers(root=tmp_path)
    assert buffers.raise_()
    assert (core / "rmem_max").read_text() == str(8 * 1024 * 1024)
    assert (core / "rmem_default").read_text() == "16777216\n"
    buffers.restore()
    assert (core / "rmem_max").read_text() == "212992"
    assert (core / "rmem_default").read_text() == "16777216\n"


def test_udp_buffers_report_when_sysctl_is_not_writable(tmp_path: Path) -> None:
    assert not HostUdpBuffers(root=tmp_path / "missing").raise_()


def test_free_udp_ports_are_distinct() -> None:
    a, b = free_udp_ports(2)
    assert a != b and a > 0 and b > 0


def _disks_guest(tmp_path: Path, sizes: list[int]) -> Guest:
    disks = [Disk(tmp_path / f"d{i}.img", mb) for i, mb in enumerate(sizes)]
    return Guest(GuestSpec(name="g", workdir=tmp_path, disks=disks), env=None)  # type: ignore[arg-type]


def test_pick_disks_takes_distinct_disks_of_the_sizes_asked_in_order(tmp_path: Path) -> None:
    g = _disks_guest(tmp_path, [320, 64, 128, 64])
    picked = pick_disks(g, [64, 128, 64])
    assert [d.path.name for d in picked] == ["d1.img", "d2.img", "d3.img"]
    assert [d.size_mb for d in pick_disks(g, [320])] == [320]


def test_pick_disks_names_the_size_it_cannot_find(tmp_path: Path) -> None:
    g = _disks_guest(tmp_path, [64, 64])
    with pytest.raises(ValueError, match=r"no free 64 MiB disk.*\[64, 64\] MiB"):
        pick_disks(g, [64, 64, 64])
    with pytest.raises(ValueError, match="no free 96 MiB disk"):
        pick_disks(g, [96])


def test_netem_settings_render_tc_arguments() -> None:
    assert NetemSettings(delay_ms=20, loss_pct=1.5, rate="100mbit").tc_args() == "delay 20ms loss 1.5% rate 100mbit"
    assert NetemSettings().tc_args() == ""


# ---- the tool zygote, exercised on the host --------------------------------
@pytest.fixture
def host_zygote(tmp_path: Path):
    repo = Path(__file__).resolve().parents[2]
    zyg = zygote.build(tmp_path / "zyg", repo / "pyproject.toml")
    sock = tmp_path / "z.sock"
    args = [sys.executable, str(zygote.SERVER), str(sock)] + [f"{t}={e}" for t, e in zyg.entries]
    server = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert server.poll() is None and time.monotonic() < deadline, "zygote server did not start"
        time.sleep(0.05)
    env = dict(os.environ, BSR_ZYGOTE_SOCK=str(sock), BSR_ZYGOTE_REAL=str(Path(sys.executable).parent))
    yield zyg, env, server
    server.kill()
    server.wait()


def test_zygote_entry_points_are_the_console_scripts() -> None:
    repo = Path(__file__).resolve().parents[2]
    entries = zygote.entry_points(repo / "pyproject.toml")
    assert set(entries) == set(zygote.TOOLS)
    assert entries["bsrsetup"] == "bsr.setup_cli:main"


def test_zygote_client_matches_the_real_script(host_zygote) -> None:
    zyg, env, _ = host_zygote
    real_bin = Path(env["BSR_ZYGOTE_REAL"])
    for argv in (["bsrsetup", "--version"], ["bsradm", "--help"], ["bsrsetup", "nope"],
                 ["bsradm", "-c", "/dev/stdin", "dump"]):
        fast = subprocess.run([str(zyg.bin_dir / argv[0])] + argv[1:], env=env, capture_output=True,
                              text=True, input="resource r0 {}\n", timeout=60)
        real = subprocess.run([str(real_bin / argv[0])] + argv[1:], env=env, capture_output=True,
                              text=True, input="resource r0 {}\n", timeout=60)
        assert (fast.returncode, fast.stdout, fast.stderr) == (real.returncode, real.stdout, real.stderr), argv


def test_zygote_client_falls_back_to_the_real_script_without_a_server(host_zygote, tmp_path: Path) -> None:
    zyg, env, _ = host_zygote
    env = dict(env, BSR_ZYGOTE_SOCK=str(tmp_path / "absent.sock"))
    r = subprocess.run([str(zyg.bin_dir / "bsrsetup"), "--version"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "bsrsetup" in r.stdout


def test_zygote_forwards_signals_and_reports_death_by_signal(host_zygote, tmp_path: Path) -> None:
    zyg, env, _ = host_zygote
    # a tool that blocks reading stdin until told otherwise
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    client = subprocess.Popen([str(zyg.bin_dir / "bsradm"), "-c", str(fifo), "dump"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == 128 + signal.SIGTERM
