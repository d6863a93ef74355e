"""bench/bench_bsrmon.py --netlink: the kernel source's decoding, measured in
process on a dump built from the ABI (bsr.ko cannot run here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_netlink_mode_decodes_a_dump_of_every_object_and_reports_both_paths() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_bsrmon.py"), "--netlink",
                        "--resources", "3", "--seconds", "2"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["bench"] == "bsrmon_decode" and out["resources"] == 3
    assert out["netlink_ms_per_period"] > 0 and out["text_ms_per_period"] > 0
    assert out["dump_bytes"] > 3 * 4 * 100  # four messages per resource, all structs


def test_the_dump_converts_to_the_same_objects_as_the_text_stream() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_bsrmon import NETLINK_FAMILY_ID, netlink_dump

    from bsr import netlink as nl
    from bsr.kevents import Converter
    from bsr.model import State

    st = State()
    conv = Converter(statistics=True)
    for m in nl.parse(netlink_dump(2, 1), NETLINK_FAMILY_ID):
        for ev in conv.convert(nl.decode(m)):
            st.apply(ev)
    assert sorted(st.devices) == [("r0", "0"), ("r1", "0")]
    assert sorted(st.peer_devices) == [("r0", "1", "0"), ("r1", "1", "0")]
    assert sorted(st.connections) == [("r0", "1"), ("r1", "1")]
    assert st.devices[("r1", "0")].extra["write-ios"] == str(8192 + 1)


def test_the_kernel_benchs_fake_answers_through_bsrnetlinks_own_request_path() -> None:
    """--kernel: dump() and version() run BsrNetlink's code (request bytes,
    DumpReader), each answer carrying its request's sequence number."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_bsrmon import fake_netlink, kernel_dumps

    fake = fake_netlink(kernel_dumps(2, 2))
    sock = fake._channel._open()
    for k in (0, 1, 1):  # the last dump again when they run out
        msgs = fake.dump("GET_INITIAL_STATE")
        assert len(msgs) == 2 * 4
        dev = next(m for m in msgs if m.cmd == "EV_DEVICE")
        assert dev.structs["device_stats"]["write_ios"] == 8192 * k + dev.minor
        v = fake.version()
        assert v.structs["module_stats"]["pages_allocated"] == 512
    assert fake._channel.seq == 6 and sock.next == 3
