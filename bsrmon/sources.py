"""Where events and statistics come from.

A source is an async iterator of lists of :data:`bsrmon.collector.Item`
(whatever arrived together, so the loop wakes once per batch): events
(:class:`bsr.model.Event`), :class:`Tick` (time to sample) and
:class:`Reset` (the source restarted).  Everything after the source is the
same code path.

* :class:`KernelSource` (default): bsr.ko over generic netlink.  A thread
  joins the ``events`` group, reads the initial state, passes on
  notifications and, every period, re-reads every object with its
  statistics (``GET_INITIAL_STATE`` dump) and the module statistics
  (``GET_VERSION``).  By default the decoded messages go to the collector
  as they are (:class:`~bsrmon.collector.KernelMessages`, one
  :class:`~bsrmon.collector.KernelPoll` per period), which converts only
  what changed (:mod:`bsrmon.kfeed`); with ``fast_stats = False`` the thread
  converts every message into events with :class:`bsr.kevents.Converter`
  and emits a Tick after each poll (the reference path, same output).
* :class:`Events2Source`: any ``events2`` text stream (``bsrsetup events2
  --statistics --timestamps --interval=1``, a recorded file, stdin, or a
  command that is restarted when it exits).  With ``clock="event"`` (the
  default for a regular file whose lines carry timestamps) ticks follow the
  timestamps in the stream, so a recording replays to the same files at any
  speed; with ``clock="wall"`` the daemon ticks every period.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import stat
import threading
import time
from datetime import datetime, timedelta
from typing import AsyncIterator, Callable, Iterable

from bsr.events2 import parse_line
from bsr.model import Event, Kind, Verb

from bsrmon.collector import Item, KernelMessages, KernelPoll, Reset, Tick

log = logging.getLogger("bsrmon")

RESTART_DELAY_S = 2.0
MAX_LINE = 1 << 20
READ_SIZE = 1 << 20  # bytes per read; also the pipe size asked for


class EventClock:
    """Ticks derived from event timestamps.

    A tick is due before an event that comes at least half a period after
    the previous one (the end of a statistics batch), or, in a stream
    without such pauses, one and a half periods after the last tick; its
    time is that of the last event before it."""

    def __init__(self, period: float) -> None:
        self.half = timedelta(seconds=period / 2)
        self.full = timedelta(seconds=period * 1.5)
        self.prev: datetime | None = None
        self.last_tick: datetime | None = None
        self.window: datetime | None = None  # first event after the last tick

    def before(self, ts: datetime | None) -> Tick | None:
        if ts is None:
            return None
        tick = None
        if self.prev is not None and self.window is not None and (
                ts - self.prev >= self.half or ts - self.window >= self.full):
            if self.last_tick is None or self.prev > self.last_tick:
                tick = Tick(self.prev)
                self.last_tick = self.prev
                self.window = ts
        if self.window is None:
            self.window = ts
        self.prev = ts
        return tick

    def final(self) -> Tick | None:
        if self.prev is not None and (self.last_tick is None or self.prev > self.last_tick):
            self.last_tick = self.prev
            return Tick(self.prev)
        return None


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.fstat(0).st_mode if path == "-" else os.stat(path).st_mode)
    except OSError:
        return False


class Events2Source:
    """events2 text from a file, ``-`` (stdin) or a shell command."""

    def __init__(self, *, path: str | None = None, command: str | None = None,
                 clock: str = "auto", period: float = 1.0) -> None:
        if (path is None) == (command is None):
            raise ValueError("give exactly one of path and command")
        self.path = path
        self.command = command
        self.period = period
        if clock == "auto":
            clock = "event" if path is not None and _is_regular(path) else "wall"
        self.clock = clock
        self.lines = 0
        self.bad_lines = 0

    @property
    def ticks_self(self) -> bool:
        return self.clock == "event"

    def describe(self) -> str:
        return f"events2 command {self.command!r}" if self.command else f"events2 {self.path}"

    async def items(self) -> AsyncIterator[list[Item]]:
        if self.command is not None:
            while True:
                async for items in self._from_command():
                    yield items
                log.warning("events command exited; restarting in %.0f s", RESTART_DELAY_S)
                await asyncio.sleep(RESTART_DELAY_S)
                yield [Reset("events command restarted")]
        else:
            async for items in self._from_path():
                yield items

    async def _from_path(self) -> AsyncIterator[list[Item]]:
        assert self.path is not None
        if self.path == "-" and not stat.S_ISREG(os.fstat(0).st_mode):
            reader = await _stdin_reader()
            async for items in self._from_reader(reader):
                yield items
            return
        src = os.fdopen(os.dup(0), "rb") if self.path == "-" else open(self.path, "rb")
        with src as f:
            clock = EventClock(self.period) if self.clock == "event" else None
            out: list[Item] = []
            for raw in f:
                self._lines((raw,), clock, out)
                if len(out) >= 2000:
                    yield out
                    out = []
            if clock is not None and (t := clock.final()) is not None:
                out.append(t)
            yield out

    async def _from_command(self) -> AsyncIterator[list[Item]]:
        assert self.command is not None
        proc = await asyncio.create_subprocess_shell(
            self.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        try:
            async for items in self._from_reader(proc.stdout):
                yield items
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()

    async def _from_reader(self, reader: asyncio.StreamReader) -> AsyncIterator[list[Item]]:
        """Whatever arrived, a chunk at a time (one wake-up per batch of lines)."""
        clock = EventClock(self.period) if self.clock == "event" else None
        rest = b""
        while True:
            chunk = await reader.read(READ_SIZE)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n")
            rest = data[cut + 1:]
            if len(rest) > MAX_LINE:  # garbage without newlines: drop it
                self.bad_lines += 1
                rest = b""
            if cut < 0:
                continue
            # one decode for all complete lines ("\n" never occurs inside a
            # UTF-8 sequence, so this equals decoding line by line)
            out: list[Item] = []
            self._lines(data[:cut].decode("utf-8", errors="replace").split("\n"), clock, out)
            if out:
                yield out
        out = []
        if rest.strip():
            self._lines((rest,), clock, out)
        if clock is not None and (t := clock.final()) is not None:
            out.append(t)
        if out:
            yield out

    def _line(self, raw: bytes | str, clock: EventClock | None) -> list[Item]:
        out: list[Item] = []
        self._lines((raw,), clock, out)
        return out

    def _lines(self, raws: Iterable[bytes | str], clock: EventClock | None,
               out: list[Item]) -> None:
        """Parse lines, appending their events (and due ticks) to ``out``."""
        add = out.append
        for raw in raws:
            self.lines += 1
            ev = parse_line(raw)
            if ev is None:
                if raw.strip():
                    self.bad_lines += 1
                continue
            if clock is not None:
                t = clock.before(ev.timestamp)
                if t is not None:
                    add(t)
            add(ev)


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    proto = asyncio.StreamReaderProtocol(reader)
    _grow_pipe(0)
    await loop.connect_read_pipe(lambda: proto, os.fdopen(os.dup(0), "rb", buffering=0))
    return reader


def _grow_pipe(fd: int) -> None:
    """Let a whole statistics batch sit in the pipe, so that it is read in
    one wake-up rather than 64 KiB at a time (best effort)."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ_SIZE)
    except OSError:
        pass


def _seq_of(msgs: list) -> int | None:
    seqs = [int(m.structs.get("notify", {}).get("seq", 0)) for m in msgs]
    return max(seqs) if seqs else None


Put = Callable[[Item | BaseException | None], None]


class _EventFeed:
    """Converts in the netlink thread: an event per object and poll."""

    def __init__(self, put: Put) -> None:
        from bsr.kevents import Converter
        self.put = put
        self.conv = Converter(statistics=True)

    def initial(self, msgs: list) -> None:  # type: ignore[type-arg]
        done = False
        for m in msgs:
            for ev in self.conv.convert(m, verb=Verb.exists):
                done = done or ev.is_initial_done
                self.put(ev)
        if not done:
            self.put(Event(Verb.exists, Kind.other, raw_object="-"))
        self.conv.baseline(_seq_of(msgs))

    def notify(self, msg) -> None:  # type: ignore[no-untyped-def]
        for ev in self.conv.convert(msg, live=True):
            self.put(ev)

    def poll(self, msgs: list, tick: Tick) -> None:  # type: ignore[type-arg]
        for m in msgs:
            for ev in self.conv.convert(m, verb=Verb.change):
                if ev.kind is not Kind.other:
                    self.put(ev)
        self.put(tick)


class _RawFeed:
    """Passes decoded messages on; the collector converts (bsrmon.kfeed)."""

    def __init__(self, put: Put) -> None:
        self.put = put

    def initial(self, msgs: list) -> None:  # type: ignore[type-arg]
        self.put(KernelMessages(msgs, initial=True))

    def notify(self, msg) -> None:  # type: ignore[no-untyped-def]
        self.put(KernelMessages([msg], live=True))

    def poll(self, msgs: list, tick: Tick) -> None:  # type: ignore[type-arg]
        self.put(KernelPoll(msgs, tick))


class KernelSource:
    """bsr.ko via :mod:`bsr.netlink`, converted by :mod:`bsr.kevents`."""

    ticks_self = True

    def __init__(self, period: float = 1.0,
                 netlink_factory: Callable[[], object] | None = None) -> None:
        self.period = period
        self._factory = netlink_factory
        self._stop = threading.Event()
        self.polls = 0
        self.poll_seconds = 0.0
        self.waiting = False  # the module is not loaded; retrying
        self.fast_stats = True  # False: an event per object and poll (bsrmon.kfeed)

    def describe(self) -> str:
        return "kernel (generic netlink family bsr)"

    def stop(self) -> None:
        self._stop.set()

    async def items(self) -> AsyncIterator[list[Item]]:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[Item | BaseException | None] = asyncio.Queue()

        def put(item: Item | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(q.put_nowait, item)
            except RuntimeError:  # the loop is gone: we are shutting down
                self._stop.set()

        th = threading.Thread(target=self._thread, args=(put,), name="bsrmon-netlink",
                              daemon=True)
        th.start()
        try:
            while True:
                batch = [await q.get()]
                while not q.empty():
                    batch.append(q.get_nowait())
                out: list[Item] = []
                for item in batch:
                    if item is None:
                        yield out
                        return
                    if isinstance(item, BaseException):
                        raise item
                    out.append(item)
                yield out
        finally:
            self._stop.set()

    def _open(self):  # type: ignore[no-untyped-def]
        if self._factory is not None:
            return self._factory()
        from bsr.netlink import BsrNetlink
        return BsrNetlink()

    def _thread(self, put: Callable[[Item | BaseException | None], None]) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self._session(put, first)
            except Exception as e:  # noqa: BLE001 - reported, then retried
                from bsr.netlink import ModuleNotLoaded
                if first and not isinstance(e, ModuleNotLoaded):
                    put(e)
                    return
                self.waiting = isinstance(e, ModuleNotLoaded)
                log.warning("kernel source: %s; retrying in %.0f s", e, RESTART_DELAY_S)
            first = False
            if self._stop.wait(RESTART_DELAY_S):
                break
            put(Reset("kernel source reconnected"))
        put(None)

    def _session(self, put: Callable[[Item | BaseException | None], None], first: bool) -> None:
        from bsr.netlink import BsrError

        feed = _RawFeed(put) if self.fast_stats else _EventFeed(put)
        nl = self._open()
        try:
            nl.subscribe()
            feed.initial(nl.dump("GET_INITIAL_STATE"))
            self._poll(nl, feed)
            next_poll = time.monotonic() + self.period
            while not self._stop.is_set():
                wait = max(0.0, next_poll - time.monotonic())
                try:
                    for msg in nl.events(timeout=min(wait, 0.5)):
                        feed.notify(msg)
                        if time.monotonic() >= next_poll:
                            break
                except BsrError as e:
                    if e.errno != errno.ENOBUFS:
                        raise
                    put(Event(None, Kind.other, skipped=1))
                if time.monotonic() >= next_poll:
                    self._poll(nl, feed)
                    next_poll = max(next_poll + self.period, time.monotonic())
        finally:
            nl.close()

    def _poll(self, nl, feed: _EventFeed | _RawFeed) -> None:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        msgs = nl.dump("GET_INITIAL_STATE")
        module = None
        try:
            v = nl.version()
            module = {k: int(x) for k, x in v.structs.get("module_stats", {}).items()}
        except Exception:  # noqa: BLE001 - module stats are optional
            module = None
        feed.poll(msgs, Tick(datetime.now().astimezone(), module))
        self.polls += 1
        self.poll_seconds += time.monotonic() - start
