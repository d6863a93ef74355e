"""The bsrwatch command itself, in a real pseudo-terminal."""

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from bsrwatch.cli import build_parser, is_drbd_stream, main

DATA = Path(__file__).parent / "data" / "bsrwatch"
pytestmark = pytest.mark.timeout(60)


def _read_until(fd: int, want: bytes, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while want not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


def test_stream_on_stdin_keyboard_on_the_terminal(tmp_path):
    """``--events -``: the stream comes from a pipe, keys from /dev/tty; q quits with 0."""
    rd, wr = os.pipe()
    pid, master = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal, stdin the pipe
        os.dup2(rd, 0)
        os.close(wr)
        os.environ.update(TERM="xterm-256color", COLUMNS="100", LINES="30",
                          XDG_CONFIG_HOME=str(tmp_path))
        os.execv(sys.executable, [sys.executable, "-m", "bsrwatch.cli", "--events", "-"])
    os.close(rd)
    try:
        os.write(wr, (DATA / "initial.events2").read_bytes())
        seen = _read_until(master, b"Outdated", 30)
        assert b"Outdated" in seen and b"logs" in seen
        os.write(wr, (DATA / "disconnect.events2").read_bytes())
        seen = _read_until(master, b"Connecting", 20)
        assert b"Connecting" in seen
        os.write(master, b"q")
        _read_until(master, b"\x00never", 3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        os.close(wr)
        os.close(master)


def test_help_reads_like_a_man_page():
    text = build_parser().format_help()
    for want in ("--events FILE|-", "--events-cmd CMD", "--command CMD", "--expert", "--ascii",
                 "data sources:", "drbdsetup events2", "settings file:", "exit status:"):
        assert want in text, want


def test_stdin_that_is_a_terminal_is_refused(monkeypatch, capsys):
    class Tty:
        def isatty(self):
            return True
    monkeypatch.setattr(sys, "stdin", Tty())
    assert main(["--events", "-", "--config", "/nonexistent/bsrwatch.toml"]) == 1
    assert "standard input is a terminal" in capsys.readouterr().err


def test_drbdsetup_sources_are_recognised():
    p = build_parser()
    assert is_drbd_stream(p.parse_args(["--events-cmd", "ssh n1 drbdsetup events2 --now"]))
    assert is_drbd_stream(p.parse_args(["--events-cmd", "/usr/sbin/drbdsetup events2"]))
    assert not is_drbd_stream(p.parse_args(["--events-cmd", "bsrsetup events2"]))
    assert not is_drbd_stream(p.parse_args(["--events", "x.events2"]))
