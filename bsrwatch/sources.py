"""Where events come from.

* :class:`CommandSource` runs a command that prints an events2 stream
  (``bsrsetup events2 ...``, ``ssh node drbdsetup events2 ...``) and
  restarts it, with back-off, whenever it exits;
* :class:`FileSource` reads a recorded stream, or standard input (``-``);
* :class:`NetlinkSource` listens to the bsr module directly, when
  ``bsr.kevents`` is available.

Every source pushes into a :class:`Sink` (the :class:`~bsrwatch.store.Store`).
Lines are split here, not with ``readline()``, so that binary noise and
over-long lines are counted and dropped instead of raising.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from bsr.events2 import MAX_LINE

CHUNK = 64 * 1024
DEFAULT_EVENTS_CMD = "bsrsetup events2 --statistics --timestamps --interval=1"


class Sink(Protocol):
    def feed_line(self, line: str | bytes) -> object: ...
    def reset(self, reason: str) -> None: ...
    def set_status(self, text: str, ok: bool, ended: bool = False) -> None: ...
    def log(self, text: str, level: str = "info") -> None: ...


class LineSplitter:
    """Bytes in, complete lines out; a line longer than MAX_LINE is dropped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False
        self.dropped = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        *parts, rest = self._buf.split(b"\n")
        lines = [bytes(p) for p in parts]
        self._buf = bytearray(rest)
        if self._discarding and lines:
            lines = lines[1:]  # tail of the over-long line
            self._discarding = False
        if len(self._buf) > MAX_LINE:
            self._buf.clear()
            self.dropped += 1
            self._discarding = True
        return lines

    def flush(self) -> list[bytes]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [] if self._discarding or not rest else [rest]


async def pump(reader: asyncio.StreamReader, sink: Sink) -> int:
    """Feed every line of a stream to the sink until EOF; returns lines fed."""
    split = LineSplitter()
    n = 0
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            break
        for line in split.feed(chunk):
            sink.feed_line(line)
            n += 1
        await asyncio.sleep(0)  # let the UI breathe between big chunks
    for line in split.flush():
        sink.feed_line(line)
        n += 1
    return n


class Source(Protocol):
    description: str
    can_act: bool  # actions make sense for what this source shows

    async def run(self, sink: Sink) -> None: ...


@dataclass
class FileSource:
    """A recorded stream, or standard input when ``path`` is ``-`` (``fd`` set)."""

    path: str
    fd: int | None = None
    can_act: bool = True

    @property
    def description(self) -> str:
        return "stdin" if self.path == "-" else self.path

    async def run(self, sink: Sink) -> None:
        sink.set_status(f"reading {self.description}", ok=True)
        try:
            if self.fd is not None:
                await self._run_pipe(sink, self.fd)
            else:
                await self._run_file(sink)
        except OSError as e:
            sink.set_status(f"{self.description}: {e.strerror or e}", ok=False, ended=True)
            return
        sink.set_status(f"end of {self.description}", ok=True, ended=True)

    async def _run_file(self, sink: Sink) -> None:
        split = LineSplitter()
        with open(self.path, "rb") as f:
            while chunk := f.read(CHUNK):
                for line in split.feed(chunk):
                    sink.feed_line(line)
                await asyncio.sleep(0)
        for line in split.flush():
            sink.feed_line(line)

    async def _run_pipe(self, sink: Sink, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK * 4)
        pipe = os.fdopen(fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            await pump(reader, sink)
        finally:
            transport.close()


@dataclass
class CommandSource:
    """A command printing events2; restarted with back-off when it exits."""

    command: str
    backoff: float = 1.0
    max_backoff: float = 10.0
    stable_after: float = 10.0  # a run this long resets the back-off
    can_act: bool = True

    @property
    def description(self) -> str:
        return self.command

    async def run(self, sink: Sink) -> None:
        delay = self.backoff
        runs = 0
        while True:
            started = time.monotonic()
            if runs:
                sink.reset("source restarted: state cleared, rebuilding")
            runs += 1
            rc, err = await self._run_once(sink)
            if time.monotonic() - started >= self.stable_after:
                delay = self.backoff
            why = f"exit {rc}" if rc is not None else "could not start"
            tail = f": {err}" if err else ""
            sink.set_status(f"source died ({why}{tail}); reconnecting in {delay:g}s", ok=False)
            sink.log(f"source {self.command!r} died ({why}{tail})", "alert")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _run_once(self, sink: Sink) -> tuple[int | None, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(self.command), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        except (OSError, ValueError) as e:
            return None, str(getattr(e, "strerror", None) or e)
        sink.set_status(f"live: {self.command}", ok=True)
        assert proc.stdout is not None and proc.stderr is not None
        err_task = asyncio.create_task(proc.stderr.read())
        try:
            await pump(proc.stdout, sink)
            rc = await proc.wait()
        except asyncio.CancelledError:
            _kill(proc)
            err_task.cancel()
            await proc.communicate()  # drain and close the pipes, reap the process
            raise
        err = (await err_task).decode("utf-8", "replace").strip().splitlines()
        return rc, err[-1][:200] if err else ""


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the command and everything it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def netlink_available() -> bool:
    """True when bsr's netlink client and the events2 engine are importable."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("bsr.kevents", "bsr.netlink", "bsr.setup.events"))


def _open_netlink() -> Any:
    from bsr.netlink import BsrNetlink
    return BsrNetlink()


class _StopFlag:
    """The PollInput of bsr.setup.events.Events2: ends its loop when set."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def commands(self) -> list[str] | None:
        return None if self.stop.is_set() else []


@dataclass
class NetlinkSource:
    """The bsr module's notifications, read in-process (no subprocess, no text).

    Runs ``bsrsetup events2 --statistics --interval=1``'s engine
    (:class:`bsr.setup.events.Events2`) in a thread; every event it would
    print is handed to the store as an :class:`~bsr.model.Event` instead.
    When the module is missing or the socket fails, the source says so,
    waits, reconnects, and the store rebuilds from the new dump.
    """

    interval: float = 1.0
    backoff: float = 1.0
    max_backoff: float = 10.0
    connect: Callable[[], Any] = _open_netlink
    can_act: bool = True
    description: str = "bsr netlink events"

    async def run(self, sink: Sink) -> None:
        delay = self.backoff
        runs = 0
        loop = asyncio.get_running_loop()
        while True:
            if runs:
                sink.reset("source restarted: state cleared, rebuilding")
            runs += 1
            flag = _StopFlag()
            push = _pusher(loop, sink)
            started = time.monotonic()
            try:
                why = await asyncio.to_thread(self._run_thread, flag, push, sink, loop)
            except asyncio.CancelledError:
                flag.stop.set()
                raise
            except Exception as e:  # a bug below us must not kill the monitor
                why = f"{type(e).__name__}: {e}"
            if time.monotonic() - started >= 10.0:
                delay = self.backoff
            sink.set_status(f"netlink source died ({why}); reconnecting in {delay:g}s", ok=False)
            sink.log(f"netlink source died ({why})", "alert")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def _run_thread(self, flag: _StopFlag, push: Callable[[Any], None], sink: Sink,
                    loop: asyncio.AbstractEventLoop) -> str:
        from bsr.netlink import BsrError
        from bsr.setup.events import Events2, Events2Options, Printer

        class _Forward(Printer):
            def _write(self, ev: Any) -> None:
                if flag.stop.is_set():
                    raise _Stopped
                push(ev)

        opts = Events2Options()
        opts.statistics, opts.timestamps, opts.interval = True, True, self.interval
        try:
            nl = self.connect()
        except (BsrError, OSError) as e:
            return str(e)
        try:
            loop.call_soon_threadsafe(sink.set_status, "live: bsr netlink events", True)
            e2 = Events2(nl, opts, out=None, poll_input=flag)  # type: ignore[arg-type]
            e2.printer = _Forward(None, opts)  # type: ignore[arg-type]
            e2.run()
            return "event stream ended"
        except _Stopped:
            return "stopped"
        except (BsrError, OSError) as e:
            return str(e)
        finally:
            close = getattr(nl, "close", None)
            if close is not None:
                close()


class _Stopped(Exception):
    pass


def _pusher(loop: asyncio.AbstractEventLoop, sink: Sink) -> Callable[[Any], None]:
    feed = getattr(sink, "feed", None)
    if feed is None:  # a sink that only takes lines
        from bsr.events2 import format_event
        return lambda ev: loop.call_soon_threadsafe(
            sink.feed_line, format_event(ev, timestamps=True))
    return lambda ev: loop.call_soon_threadsafe(feed, ev)
