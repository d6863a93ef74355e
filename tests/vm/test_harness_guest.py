"""The harness's own guarantees for a single guest."""
from __future__ import annotations

import time

import pytest

from harness import CommandFailed, CommandTimeout, Guest
from harness.guest import GuestError
from harness.plugin import SOLO_DISKS_MB, pick_disks, zero_disks

pytestmark = pytest.mark.vm


def test_run_returns_rc_stdout_stderr(guest: Guest) -> None:
    r = guest.run("echo out; echo err >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_check_raises_with_output_on_nonzero_exit(guest: Guest) -> None:
    with pytest.raises(CommandFailed, match=r"rc=1.*\n(.*\n)*boom"):
        guest.check("echo boom; false")


def test_command_over_its_bound_is_killed_in_the_guest(guest: Guest) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        guest.run("echo started; sleep 300", timeout=2)
    assert time.monotonic() - start < 20
    # the killed process group is gone
    # (one process for all of /proc: forking per process is slow under TCG;
    # the [0] keeps the probe from matching its own command line)
    find_sleep = "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'sleep 3[0]0 '"
    assert guest.run(find_sleep, timeout=30).rc == 1
    # ...and the probe does see such a process when there is one
    assert guest.run("sleep 300 & sleep 0.5; " + find_sleep + "; rc=$?; kill $!; exit $rc", timeout=30).rc == 0


def test_background_command_runs_alongside_foreground(guest: Guest) -> None:
    bg = guest.run_async("sleep 3; echo bg-done", timeout=30)
    fg = guest.check("echo fg-done", timeout=10)
    assert fg.stdout == "fg-done\n"
    assert not bg.done()
    assert bg.wait().stdout == "bg-done\n"


def test_tcp_request_reaches_a_guest_local_server_and_returns_its_reply(guest: Guest) -> None:
    # a one-shot server that answers the line it got, upper-cased, and closes
    server = ("import socket; s = socket.socket(); "
              "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('127.0.0.1', 9771)); s.listen(1); print('up', flush=True); "
              "c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()")
    bg = guest.run_async(f"python3 -c \"{server}\"", timeout=60)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert guest.tcp(9771, "hello", timeout=10) == "HELLO\n"
            break
        except GuestError:  # not listening yet
            assert time.monotonic() < deadline, bg.wait().stderr
            time.sleep(0.3)
    assert bg.wait().rc == 0
    with pytest.raises(GuestError, match="refused"):
        guest.tcp(9771, "again", timeout=5)


def test_project_venv_is_on_path_in_the_guest(guest: Guest) -> None:
    r = guest.check("command -v python; python -c 'import bsr.abi, pyroute2; print(\"ok\")'", timeout=120)
    assert r.stdout.splitlines() == [str(guest.env.venv_bin / "python"), "ok"]


def test_bsr_module_loads_and_is_unloaded_between_tests(guest: Guest, bsr_ko) -> None:
    assert not guest.module_loaded("bsr")
    guest.insmod(bsr_ko)
    assert guest.check("cat /sys/module/bsr/version").stdout.strip() == "0.1.0"


def test_next_test_starts_with_module_unloaded(guest: Guest) -> None:
    assert not guest.module_loaded("bsr")


def test_disks_are_attached_as_virtio_block_devices_of_their_size(guest: Guest) -> None:
    devices = [disk.device for disk in guest.spec.disks]
    assert len(set(devices)) == len(SOLO_DISKS_MB)
    for disk, mb in zip(guest.spec.disks, SOLO_DISKS_MB):
        assert disk.device.startswith("/dev/vd")
        size = int(guest.check(f"blockdev --getsize64 {disk.device}").stdout)
        assert size == disk.size_mb * 1024 * 1024 == mb << 20


def test_zeroed_disk_reads_zeros_in_the_guest(guest: Guest) -> None:
    disk = pick_disks(guest, [64, 64])[1]  # a disk no other test here writes
    guest.check(f"dd if=/dev/urandom of={disk.device} bs=1M count=4 status=none; "
                f"dd if={disk.device} bs=1M count=4 status=none | tr -d '\\0' | wc -c | grep -qvx 0")
    zero_disks(guest, [disk])
    # buffered read: no block cached before the zeroing may survive it
    r = guest.check(f"dd if={disk.device} bs=1M count=4 status=none | tr -d '\\0' | wc -c")
    assert r.stdout.strip() == "0"
    assert disk.path.stat().st_blocks == 0  # a hole on the host


GENL_PROBE = r'''
import json
from bsr.netlink import BsrNetlink
with BsrNetlink() as nl:
    reply = nl.version()
    print(json.dumps({"family_id": nl.family_id, "groups": sorted(nl.mcast_groups),
                      "version": reply.get("version_info", "version"),
                      "build": reply.get("version_info", "build")}))
'''


def test_guest_talks_generic_netlink_to_bsr_module(guest: Guest, bsr_ko) -> None:
    import json

    guest.insmod(bsr_ko)
    out = guest.check(f"python - <<'EOF'\n{GENL_PROBE}\nEOF", timeout=120).stdout
    info = json.loads(out.splitlines()[-1])
    assert info["family_id"] > 0
    assert info["groups"] == ["events"]
    assert info["version"] == "0.1.0"
    assert info["build"] == guest.env.kver
    guest.rmmod("bsr")
    assert not guest.module_loaded("bsr")
    # the post-test kernel-log scan fails this test if load/unload warned


def test_data_written_with_o_direct_survives_killing_qemu(guest: Guest) -> None:
    disk = guest.spec.disks[0]
    # 8 MiB of a seeded pseudo-random pattern, 1 MiB into the disk
    make_pattern = "python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(7).randbytes(8 << 20))'"
    want = guest.check(f"{make_pattern} | tee /tmp/pattern | sha256sum").stdout.split()[0]
    guest.check(f"dd if=/tmp/pattern of={disk.device} bs=1M seek=1 oflag=direct status=none")
    boots = guest.boots
    guest.kill()
    assert not guest.alive
    guest.boot()
    assert guest.boots == boots + 1
    got = guest.check(f"dd if={disk.device} bs=1M skip=1 count=8 iflag=direct status=none | sha256sum").stdout.split()[0]
    assert got == want


# ---- the tool zygote (harness/zygote_server.py) ----------------------------
def _zygote_on(guest: Guest) -> None:
    if guest.env.zygote is None:
        pytest.skip("BSR_VM_ZYGOTE=0")


def test_short_lived_tools_run_through_the_zygote_with_the_real_scripts_results(guest: Guest) -> None:
    _zygote_on(guest)
    assert guest.check("command -v bsrsetup").stdout.strip() == str(guest.env.zygote.bin_dir / "bsrsetup")
    for cmd in ("bsrsetup --version", "bsradm --help", "bsrmeta --help", "bsrsetup status", "bsrsetup no-such-cmd"):
        fast = guest.run(cmd, timeout=120)
        real = guest.run(f'"$BSR_ZYGOTE_REAL"/{cmd}', timeout=120)
        assert (fast.rc, fast.stdout, fast.stderr) == (real.rc, real.stdout, real.stderr), cmd
    # bsrsetup without the module: exit 20, as from the real script
    assert guest.run("bsrsetup status").rc == 20


def test_zygote_tool_gets_stdin_cwd_and_environment(guest: Guest) -> None:
    _zygote_on(guest)
    conf = "resource r0 {\n  on nodeX {\n    node-id 0;\n    address ipv4 10.0.0.1:7789;\n" \
           "    volume 0 { device /dev/bsr0 minor 0; disk /dev/vda; meta-disk internal; }\n  }\n}\n"
    r = guest.check(f"mkdir -p /tmp/zc && cd /tmp/zc && printf %s '{conf}' > rel.conf && "
                    "BSR_HOSTNAME=nodeX bsradm -c rel.conf -d up r0 && "
                    f"printf %s '{conf}' | BSR_HOSTNAME=nodeX bsradm -c /dev/stdin -d up r0", timeout=120)
    lines = r.stdout.splitlines()
    assert lines[0] == "bsrsetup new-resource r0 0", r.stdout
    assert lines[: len(lines) // 2] == lines[len(lines) // 2:]


def test_killing_a_zygote_client_kills_its_tool(guest: Guest, bsr_ko) -> None:
    _zygote_on(guest)
    guest.insmod(bsr_ko)
    children = "pgrep -P $(pgrep -f zygote_server.py | head -n1) | wc -l"
    start = time.monotonic()
    r = guest.run("timeout 3 bsrsetup events2", timeout=60)
    assert r.rc == 124, r  # timeout(1)'s SIGTERM was forwarded; the tool ended
    assert time.monotonic() - start < 30
    r = guest.run("bsrsetup events2 >/dev/null & sleep 2; kill -9 $!; sleep 2; " + children, timeout=60)
    assert r.stdout.strip() == "0", r  # SIGKILL cannot be forwarded: the server noticed
