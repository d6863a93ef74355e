"""A recorded events2 stream replays into the expected files."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bsrmon.cli import main
from bsrmon.series import SeriesKey, format_time, read_samples

DATA = Path(__file__).parent / "data" / "bsrmon"
REC = DATA / "r0_write.events2"


def local(h: int, m: int, s: int, ms: int) -> str:
    t = datetime(2026, 11, 21, h, m, s, ms * 1000, tzinfo=timezone.utc)
    return format_time(t.astimezone().replace(tzinfo=None))


@pytest.fixture
def replayed(tmp_path: Path) -> Path:
    assert main(["--file-path", str(tmp_path), "run", "--no-control", "--events", str(REC)]) == 0
    return tmp_path


def test_replay_creates_one_file_per_series_and_object(replayed: Path) -> None:
    files = sorted(str(p.relative_to(replayed)) for p in replayed.rglob("*") if p.is_file())
    assert files == [
        "events.log",
        "perfmon/_global/memstat",
        "perfmon/r0/peer1_network",
        "perfmon/r0/peer1_sendbuf",
        "perfmon/r0/vnr0_alstat",
        "perfmon/r0/vnr0_io_pending",
        "perfmon/r0/vnr0_ioclat",
        "perfmon/r0/vnr0_iostat",
        "perfmon/r0/vnr0_peer1_peer_reqstat",
        "perfmon/r0/vnr0_peer1_resync_ratio",
        "perfmon/r0/vnr0_reqstat",
    ]


def test_iostat_lines_carry_the_recorded_rates(replayed: Path) -> None:
    text = (replayed / "perfmon/r0/vnr0_iostat").read_text().splitlines()
    assert text[0] == "# bsrmon 1 iostat r0 vnr=0"
    assert text[1] == "# time dt_ms[ms] r_iops[IO/s] r_kibs[KiB/s] w_iops[IO/s] w_kibs[KiB/s]"
    # the first sample follows the initial dump (ends .006), then one per batch
    assert text[3:] == [f"{local(10, 0, s, 5)} 1000 0 0 1024 4096" for s in (2, 3, 4, 5)]
    assert text[2].startswith(f"{local(10, 0, 1, 5)} 999 0 0 ")
    samples = list(read_samples(replayed / "perfmon", SeriesKey("iostat", "r0", 0)))
    written = sum(s.values[4] * s.values[0] / 1000 for s in samples)
    assert written == pytest.approx(5 * 4096, abs=0.01)


def test_latency_network_and_peer_series_follow_the_counters(replayed: Path) -> None:
    last = lambda rel: (replayed / "perfmon/r0" / rel).read_text().splitlines()[-1].split()[1:]
    assert last("vnr0_ioclat") == ["1000", "64", "100", "128", "128", "150", "256"]
    assert last("peer1_network") == ["1000", str(4096 * 1024 + 1000), "100"]
    assert last("vnr0_peer1_resync_ratio") == ["1000", "4096", "0", "0", "0"]
    assert last("vnr0_peer1_peer_reqstat") == ["1000", "1024", "50", "2", "0"]
    assert last("vnr0_alstat") == ["1000", "24", "1000", "24", "0", "24", "2"]
    assert last("vnr0_reqstat") == ["1000", "1024", "100", "150", "50", "0"]
    assert last("peer1_sendbuf") == ["65536", "4194304", "32768", "0"]
    assert last("vnr0_io_pending") == ["3", "1", "24"]


def test_event_log_has_state_changes_but_no_statistics(replayed: Path) -> None:
    lines = (replayed / "events.log").read_text().splitlines()
    assert len(lines) == 9  # 4 exists + "exists -" + 2 changes down + 2 changes up
    assert lines[4].endswith(" exists -")
    assert "change connection name:r0 peer-node-id:1 conn-name:bravo connection:Connecting" in lines[5]
    assert "replication:Off" in lines[6]
    assert "connection:Connected" in lines[7] and "replication:Established" in lines[8]
    assert not any("written:" in ln or "sent-bytes" in ln for ln in lines)
    assert all(ln[:4] == "2026" and ln[10] == "T" for ln in lines)


def test_replaying_from_stdin_on_the_event_clock_gives_the_same_iostat(tmp_path: Path) -> None:
    rc = subprocess.run(
        [sys.executable, "-m", "bsrmon", "--file-path", str(tmp_path), "run", "--no-control",
         "--events", "-", "--clock", "event"],
        stdin=REC.open("rb"), capture_output=True, timeout=60)
    assert rc.returncode == 0, rc.stderr
    again = tmp_path / "b"
    assert main(["--file-path", str(again), "run", "--no-control", "--events", str(REC)]) == 0
    assert (tmp_path / "perfmon/r0/vnr0_iostat").read_text() == \
        (again / "perfmon/r0/vnr0_iostat").read_text()


def test_replaying_through_a_pipe_gives_the_same_files_as_the_file(tmp_path: Path) -> None:
    piped = tmp_path / "piped"
    p = subprocess.Popen(
        [sys.executable, "-m", "bsrmon", "--file-path", str(piped), "run", "--no-control",
         "--events", "-", "--clock", "event"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdin is not None
    data = REC.read_bytes()
    for i in range(0, len(data), 777):  # lines cut across writes
        p.stdin.write(data[i:i + 777])
        p.stdin.flush()
    p.stdin.close()
    assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
    again = tmp_path / "file"
    assert main(["--file-path", str(again), "run", "--no-control", "--events", str(REC)]) == 0
    files = sorted(str(f.relative_to(again)) for f in again.rglob("*") if f.is_file())
    assert files and files == sorted(
        str(f.relative_to(piped)) for f in piped.rglob("*") if f.is_file())
    for rel in files:
        if "_global" not in rel:  # memstat carries the process's own RSS
            assert (piped / rel).read_text() == (again / rel).read_text(), rel


def test_only_configured_types_are_written(tmp_path: Path) -> None:
    cfg = tmp_path / "bsrmon.toml"
    cfg.write_text('types = ["iostat", "network"]\n')
    assert main(["-c", str(cfg), "--file-path", str(tmp_path / "log"), "run", "--no-control",
                 "--events", str(REC)]) == 0
    files = sorted(p.name for p in (tmp_path / "log/perfmon/r0").iterdir())
    assert files == ["peer1_network", "vnr0_iostat"]


def test_show_without_a_daemon_reads_the_last_line_of_each_file(
        replayed: Path, capsys: pytest.CaptureFixture) -> None:
    import json
    sock = ["--socket", str(replayed / "none.sock")]
    assert main(["--file-path", str(replayed), *sock, "show", "--json"]) == 0
    show = json.loads(capsys.readouterr().out)
    (io,) = [s for s in show if s["type"] == "iostat"]
    assert io["values"]["w_kibs"] == 4096 and io["volume"] == 0 and io["resource"] == "r0"
    assert main(["--file-path", str(replayed), *sock, "/show"]) == 0
    text = capsys.readouterr().out
    assert "iostat r0 vnr0 " in text and "w_kibs=4.0MiB/s" in text


def test_drbd9_resync_and_disconnect_recording(tmp_path: Path) -> None:
    """A DRBD 9 stream (change lines carry only what changed): connect, full
    resync while the node becomes Primary, disconnect."""
    from bsrmon.report import report
    rec = DATA / "drbd9_resync.events2"
    assert main(["--file-path", str(tmp_path), "run", "--no-control", "--events", str(rec)]) == 0
    log = (tmp_path / "events.log").read_text()
    for needle in ("change connection name:r0 peer-node-id:1 conn-name:node-b connection:Connected",
                   "replication:SyncSource",
                   "replication:Established peer-disk:UpToDate",
                   "connection:Disconnecting", "connection:StandAlone",
                   "destroy connection name:r0 peer-node-id:1 conn-name:node-b",
                   "call helper name:r0", "change resource name:r0 role:Primary"):
        assert needle in log, needle
    assert "sent:" not in log and "out-of-sync:" not in log
    perfmon = tmp_path / "perfmon"
    (net,) = report(perfmon, "network", "r0", peer=1)
    c = {s.name: s for s in net.columns}
    assert c["send_bps"].total == pytest.approx(1052604 * 1024, rel=1e-6)
    assert c["send_bps"].max > 30e6
    (rr,) = report(perfmon, "resync_ratio", "r0", volume=0, peer=1)
    c = {s.name: s for s in rr.columns}
    assert c["resync_kibs"].total == pytest.approx(1052604, rel=1e-6)
    assert c["repl_kibs"].total == 0
    assert (c["oos_kib"].max, c["oos_kib"].min) == (1048508, 0)
