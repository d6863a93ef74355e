"""The crash tests' acknowledged-write checker (tests/vm/ackwriter.py) finds
lost and garbage blocks and accepts writes newer than the last ack."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "vm" / "ackwriter.py"
spec = importlib.util.spec_from_file_location("ackwriter", SRC)
assert spec is not None and spec.loader is not None
ackwriter = importlib.util.module_from_spec(spec)
sys.modules["ackwriter"] = ackwriter  # dataclasses look their module up
spec.loader.exec_module(ackwriter)

BLOCKS = 256


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Path]:
    dev = tmp_path / "dev.img"
    dev.write_bytes(bytes(BLOCKS * ackwriter.BLOCK))
    log = tmp_path / "log"
    try:
        out = ackwriter.Writer(str(dev), log, BLOCKS, threads=3, seconds=0.5).run()
    except OSError as e:  # O_DIRECT unsupported by this filesystem
        pytest.skip(f"O_DIRECT not available under {tmp_path}: {e}")
    assert out["errors"] == [] and out["acked"] > 0
    return dev, log


def put(dev: Path, block: int, data: bytes) -> None:
    with open(dev, "r+b") as f:
        f.seek(block * ackwriter.BLOCK)
        f.write(data)


def test_a_clean_run_checks_ok_with_every_ack_counted(written: tuple[Path, Path]) -> None:
    dev, log = written
    acks = sum(len(f.read_text().splitlines()) for f in log.glob("ack.*"))
    out = ackwriter.check(str(dev), log, BLOCKS)
    assert out["ok"] and out["lost"] == 0 and out["garbage"] == 0
    assert out["acked_writes"] == acks


def test_an_older_stamp_than_the_last_ack_is_a_lost_write(written: tuple[Path, Path]) -> None:
    dev, log = written
    newest, _ = ackwriter.read_acks(log)
    block, seq = next(iter(newest.items()))
    put(dev, block, ackwriter.stamp(block, seq - 1))
    out = ackwriter.check(str(dev), log, BLOCKS)
    assert not out["ok"] and out["lost"] == 1
    assert out["lost_first"] == [{"block": block, "acked": seq, "found": seq - 1}]


def test_zeros_where_a_write_was_acked_are_lost(written: tuple[Path, Path]) -> None:
    dev, log = written
    block = next(iter(ackwriter.read_acks(log)[0]))
    put(dev, block, ackwriter.ZERO)
    assert ackwriter.check(str(dev), log, BLOCKS)["lost"] == 1


def test_a_torn_or_misplaced_block_is_garbage(written: tuple[Path, Path]) -> None:
    dev, log = written
    torn = bytearray(ackwriter.stamp(7, 10**9))
    torn[2000] ^= 0xFF
    put(dev, 7, bytes(torn))
    put(dev, 8, ackwriter.stamp(9, 10**9))  # right stamp, wrong place
    out = ackwriter.check(str(dev), log, BLOCKS)
    assert out["garbage"] == 2 and out["garbage_first"] == [7, 8]


def test_a_write_newer_than_the_last_ack_is_allowed(written: tuple[Path, Path]) -> None:
    dev, log = written
    block, seq = next(iter(ackwriter.read_acks(log)[0].items()))
    put(dev, block, ackwriter.stamp(block, seq + 10**6))
    out = ackwriter.check(str(dev), log, BLOCKS)
    assert out["ok"] and out["newer_than_acked"] == 1


def test_a_log_line_cut_by_the_crash_is_ignored(written: tuple[Path, Path], capsys) -> None:
    dev, log = written
    with open(log / "ack.0", "a") as f:
        f.write("12345")
    assert ackwriter.main(["check", str(dev), "--log", str(log), "--blocks", str(BLOCKS)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
