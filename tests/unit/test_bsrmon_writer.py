"""Series files: rotation within the per-file size and the per-resource
budget, compression, crash repair, and dropping samples on write errors."""
from __future__ import annotations

import errno
import gzip
import logging
from pathlib import Path

import pytest

from bsrmon.series import SeriesKey, read_samples
from bsrmon.writer import FileSet, Limits, Writer, repair_tail

HEADER = SeriesKey("io_pending", "r0", 0).header()
REL = "perfmon/r0/vnr0_io_pending"


def line(i: int) -> str:
    return f"2026-11-21_10:{i // 3600 % 60:02d}:{i % 60:02d}.{i % 1000:03d} {i} 0 0\n"


def _ticking_clock():
    t = [1_800_000_000.0]

    def clock() -> float:
        t[0] += 1.0
        return t[0]
    return clock


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir())


@pytest.mark.parametrize("compress", [False, True])
def test_rotation_keeps_each_file_under_the_limit_and_the_directory_within_budget(
        tmp_path: Path, compress: bool) -> None:
    fs = FileSet(tmp_path, Limits(file_size=2000, total_size=7000, compress=compress),
                 clock=_ticking_clock())
    for i in range(2000):
        fs.write_batch([(REL, HEADER, line(i))])
    fs.close()
    d = tmp_path / "perfmon/r0"
    names = sorted(p.name for p in d.iterdir())
    assert "vnr0_io_pending" in names and len(names) > 2
    for p in d.iterdir():
        assert p.stat().st_size <= 2000
        assert p.name.endswith(".gz") == (compress and p.name != "vnr0_io_pending")
    assert _dir_bytes(d) <= 7000
    assert fs.stats.removed_files > 0
    # what is left reads back in order, newest sample last
    vals = [s.values[0] for s in read_samples(tmp_path / "perfmon", SeriesKey("io_pending", "r0", 0))]
    assert vals == sorted(vals) and vals[-1] == 1999
    assert len(vals) > 40


def test_budget_never_removes_current_files(tmp_path: Path) -> None:
    fs = FileSet(tmp_path, Limits(file_size=10_000, total_size=100, compress=False))
    fs.write_batch([(f"perfmon/r0/vnr{v}_io_pending", HEADER, line(1)) for v in range(5)])
    fs.enforce_budget(tmp_path / "perfmon/r0")
    assert len(list((tmp_path / "perfmon/r0").iterdir())) == 5


def test_new_and_rotated_files_start_with_the_header(tmp_path: Path) -> None:
    fs = FileSet(tmp_path, Limits(file_size=300, total_size=1 << 20, compress=True),
                 clock=_ticking_clock())
    for i in range(30):
        fs.write_batch([(REL, HEADER, line(i))])
    fs.close()
    d = tmp_path / "perfmon/r0"
    for p in d.iterdir():
        text = gzip.open(p, "rt").read() if p.name.endswith(".gz") else p.read_text()
        assert text.startswith(HEADER)


def test_partial_last_line_from_a_crash_is_cut_when_reopened(tmp_path: Path) -> None:
    p = tmp_path / REL
    p.parent.mkdir(parents=True)
    p.write_text(HEADER + line(1) + "2026-11-21_10:00:0")
    repair_tail(p)
    assert p.read_text() == HEADER + line(1)
    fs = FileSet(tmp_path, Limits(1 << 20, 1 << 20, False))
    p.write_text(HEADER + line(1) + "2026-11-21_10:00:0")
    fs.write_batch([(REL, HEADER, line(2))])
    fs.close()
    assert p.read_text() == HEADER + line(1) + line(2)


class FullDisk(FileSet):
    """A FileSet whose disk is full until ``full`` is cleared."""

    full = True

    def write_batch(self, batch):  # type: ignore[no-untyped-def]
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write_batch(batch)


def test_full_disk_drops_samples_and_says_so_once(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    w = Writer(tmp_path, Limits(1 << 20, 1 << 20, False))
    w.fileset = FullDisk(tmp_path, w.limits)
    caplog.set_level(logging.WARNING, logger="bsrmon")
    for i in range(5):
        w._write([(REL, HEADER, line(i))])
    assert w.stats.dropped_write_error == 5
    errors = [r for r in caplog.records if "dropping samples" in r.getMessage()]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()
    w.fileset.full = False  # type: ignore[attr-defined]
    w._write([(REL, HEADER, line(9))])
    assert any("5 sample batches were dropped" in r.getMessage() for r in caplog.records)
    w.fileset.close()
    assert (tmp_path / REL).read_text() == HEADER + line(9)


def test_submit_never_blocks_when_the_writer_is_behind(tmp_path: Path) -> None:
    w = Writer(tmp_path, Limits(1 << 20, 1 << 20, False), queue_size=2)  # not started
    results = [w.submit([(REL, HEADER, line(i))]) for i in range(5)]
    assert results == [True, True, False, False, False]
    assert w.stats.dropped_full_queue == 3
    w.start()
    w.stop()
    assert (tmp_path / REL).read_text() == HEADER + line(0) + line(1)


def test_many_series_in_one_resource_still_fit_the_budget(tmp_path: Path) -> None:
    fs = FileSet(tmp_path, Limits(file_size=1 << 20, total_size=8000, compress=False),
                 clock=_ticking_clock())
    rels = [f"perfmon/r0/vnr{v}_io_pending" for v in range(8)]
    for i in range(600):
        fs.write_batch([(rel, HEADER, line(i)) for rel in rels])
    fs.close()
    d = tmp_path / "perfmon/r0"
    assert _dir_bytes(d) <= 8000
    assert fs.stats.rotations > 0
    assert all((d / Path(rel).name).exists() for rel in rels)


def test_a_new_file_in_the_directory_lowers_the_limit_of_files_already_open(
        tmp_path: Path) -> None:
    fs = FileSet(tmp_path, Limits(10_000, 3_000, False), clock=_ticking_clock())
    other = "perfmon/r0/vnr0_iostat"
    i = 0
    fs.write_batch([(REL, HEADER, line(i))])
    while (tmp_path / REL).stat().st_size < 1_200:
        i += 1
        fs.write_batch([(REL, HEADER, line(i))])  # alone: rotates at 3000 // 2
    assert fs.stats.rotations == 0
    i += 1
    fs.write_batch([(other, HEADER, line(0))])  # two files: rotate at 3000 // 3
    fs.write_batch([(REL, HEADER, line(i))])
    fs.close()
    assert (tmp_path / REL).stat().st_size <= 1_000
    assert fs.stats.rotations == 1


def test_a_short_write_leaves_no_partial_line(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fs = FileSet(tmp_path, Limits(1 << 20, 1 << 20, False))
    fs.write_batch([(REL, HEADER, line(1))])
    fs.write_batch([(REL, HEADER, line(2))])  # the file now has room: the quick path
    real_write = __import__("os").write
    monkeypatch.setattr("os.write", lambda fd, data: real_write(fd, data[:5]))
    with pytest.raises(OSError):
        fs.write_batch([(REL, HEADER, line(3))])
    monkeypatch.undo()
    fs.close()
    assert (tmp_path / REL).read_text() == HEADER + line(1) + line(2)
