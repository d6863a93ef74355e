"""Host-side pieces of the harness that need no guest."""
from __future__ import annotations

from pathlib import Path

from harness.kernel_log import find_problems, find_problems_in_text
from harness.lab import HostUdpBuffers, NetemSettings, free_udp_ports


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


def test_netem_settings_render_tc_arguments() -> None:
    assert NetemSettings(delay_ms=20, loss_pct=1.5, rate="100mbit").tc_args() == "delay 20ms loss 1.5% rate 100mbit"
    assert NetemSettings().tc_args() == ""
