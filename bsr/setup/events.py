"""``bsrsetup events2``: the initial dump, then a stream of notifications.

Order of work (so that nothing is lost between dump and stream):

1. join the ``events`` multicast group;
2. dump ``GET_INITIAL_STATE`` and print every object as ``exists``, then
   ``exists -`` (``--now`` stops here);
3. print notifications as ``create``/``change``/``destroy``; those the dump
   already covered (sequence number not newer than the dump's) are dropped,
   a gap in the sequence is printed as ``- skipped N``;
4. with ``--interval=SEC`` re-read the state every SEC seconds and print a
   ``change`` line carrying only the keys that changed; with ``--poll``
   the same happens when a line ``n`` arrives on stdin (end of stdin ends
   the program).

Every line is flushed.  If the kernel reports that its queue overflowed
(ENOBUFS), ``- skipped 1`` is printed and the state is re-read at once:
changed objects as ``change``, new ones as ``create``, vanished ones as
``destroy``.
"""

from __future__ import annotations

import errno
import os
import select
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, TextIO

from bsr.events2 import format_event, format_json
from bsr.kevents import Converter
from bsr.model import IDENTITY_KEYS, Event, Kind, Verb
from bsr.netlink import BsrError, Message

POLL_TICK_S = 0.2


class Netlink(Protocol):
    """What the events2 loop needs of :class:`bsr.netlink.BsrNetlink`."""

    def subscribe(self) -> None: ...

    def request(self, cmd: str, *, minor: int = ..., **structs: dict) -> Message: ...

    def dump(self, cmd: str, *, minor: int = ..., **structs: dict) -> list[Message]: ...

    def events(self, timeout: float | None = None) -> Iterator[Message]: ...


class PollInput(Protocol):
    def commands(self) -> list[str] | None:
        """Lines that arrived (without blocking); None at end of input."""


@dataclass
class Events2Options:
    resource: str | None = None
    now: bool = False
    statistics: bool = False
    timestamps: bool = False
    json: bool = False
    interval: float | None = None
    poll: bool = False


@dataclass
class Printer:
    """Prints events and remembers what each object last showed."""

    out: TextIO
    opts: Events2Options
    shown: dict[tuple[Kind, tuple[str, ...]], dict[str, str]] = field(default_factory=dict)

    def wanted(self, ev: Event) -> bool:
        if self.opts.resource is None or ev.kind is Kind.other:
            return True
        return ev.fields.get("name") == self.opts.resource

    def emit(self, ev: Event) -> None:
        if not self.wanted(ev):
            return
        key = ev.key()
        if key is not None:
            if ev.verb is Verb.destroy:
                self.shown.pop((ev.kind, key), None)
                if ev.kind is Kind.resource:
                    self._forget(key[0])
            else:
                self.shown.setdefault((ev.kind, key), {}).update(ev.fields)
        self._write(ev)

    def emit_changes(self, ev: Event) -> None:
        """Print only the keys that differ from what this object last showed."""
        key = ev.key()
        if key is None or not self.wanted(ev):
            return
        before = self.shown.get((ev.kind, key))
        if before is None:
            return  # not created yet as far as we printed; its create will come
        changed = {k: v for k, v in ev.fields.items() if before.get(k) != v}
        if not changed:
            return
        fields = {k: v for k, v in ev.fields.items() if k in _identity(ev.kind)}
        fields.update(changed)
        before.update(changed)
        self._write(Event(Verb.change, ev.kind, fields, ev.timestamp, raw_object=ev.raw_object))

    def identity(self, kind: Kind, key: tuple[str, ...]) -> list[str]:
        """Identity values of a shown object, in IDENTITY_KEYS order."""
        shown = self.shown.get((kind, key), {})
        return [shown.get(k, "") for k in IDENTITY_KEYS[kind]]

    def _forget(self, res: str) -> None:
        for k in [k for k in self.shown if k[1][0] == res]:
            del self.shown[k]

    def _write(self, ev: Event) -> None:
        if self.opts.json:
            line = format_json(ev, timestamps=self.opts.timestamps)
        else:
            line = format_event(ev, timestamps=self.opts.timestamps)
        self.out.write(line + "\n")
        self.out.flush()


def _identity(kind: Kind) -> tuple[str, ...]:
    return IDENTITY_KEYS.get(kind, ())


def _ctx(opts: Events2Options) -> dict[str, dict]:
    return {"ctx": {"res_name": opts.resource}} if opts.resource else {}


def _seq_of(msgs: list[Message]) -> int | None:
    seq = None
    for m in msgs:
        s = m.structs.get("notify", {}).get("seq")
        if s:
            seq = int(s)
    return seq


@dataclass
class Events2:
    nl: Netlink
    opts: Events2Options
    out: TextIO
    poll_input: PollInput | None = None
    clock: Callable[[], float] = time.monotonic
    conv: Converter = field(init=False)
    printer: Printer = field(init=False)

    def __post_init__(self) -> None:
        self.conv = Converter(statistics=self.opts.statistics, clock=self.clock)
        self.printer = Printer(self.out, self.opts)

    def run(self) -> int:
        try:
            self.nl.subscribe()
            self.initial()
            if self.opts.now:
                return 0
            self.stream()
        except KeyboardInterrupt:
            pass
        return 0

    def initial(self) -> None:
        msgs = self.nl.dump("GET_INITIAL_STATE", **_ctx(self.opts))
        done = False
        for m in msgs:
            for ev in self.conv.convert(m, verb=Verb.exists):
                done = done or ev.is_initial_done
                self.printer.emit(ev)
        if not done:
            self.printer.emit(Event(Verb.exists, Kind.other, raw_object="-"))
        self.conv.baseline(_seq_of(msgs))

    def poll(self, *, resync: bool = False) -> None:
        """Re-read the state; print what changed since it was last shown.

        With ``resync`` (events were lost) objects never shown are printed
        as ``create`` and shown objects that are gone as ``destroy``.
        """
        msgs = self.nl.dump("GET_INITIAL_STATE", **_ctx(self.opts))
        present = set()
        for m in msgs:
            for ev in self.conv.convert(m, verb=Verb.change):
                key = ev.key()
                if ev.kind is Kind.other or key is None:
                    continue
                present.add((ev.kind, key))
                if resync and (ev.kind, key) not in self.printer.shown:
                    ev.verb = Verb.create
                    self.printer.emit(ev)
                else:
                    self.printer.emit_changes(ev)
        if resync:
            self.conv.baseline(_seq_of(msgs))  # the dump covers what was lost
            for kind, key in [k for k in self.printer.shown if k not in present]:
                ident = dict(zip(IDENTITY_KEYS[kind], self.printer.identity(kind, key)))
                self.printer.emit(Event(Verb.destroy, kind, ident, raw_object=kind.value))

    def stream(self) -> None:
        tick = POLL_TICK_S if (self.opts.interval or self.opts.poll) else None
        next_poll = self.clock() + self.opts.interval if self.opts.interval else None
        while True:
            started = self.clock()
            try:
                for msg in self.nl.events(timeout=tick):
                    for ev in self.conv.convert(msg, live=True):
                        self.printer.emit(ev)
                    if tick is not None and self.clock() - started >= tick:
                        break  # under a flood of events, still serve polls
            except BsrError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.printer.emit(Event(None, Kind.other, skipped=1))
                self.poll(resync=True)
                continue
            if tick is None:
                return  # the source ended
            if self.poll_input is not None:
                cmds = self.poll_input.commands()
                if cmds is None:
                    return
                if any(c.strip() == "n" for c in cmds):
                    self.poll()
            if next_poll is not None and self.clock() >= next_poll:
                self.poll()
                next_poll = max(next_poll + self.opts.interval, self.clock())  # type: ignore


class StdinPoll:
    """Non-blocking line reader of a file descriptor (``--poll``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def commands(self) -> list[str] | None:
        lines: list[str] = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 4096)
            if not data:
                return None
            self.buf += data
            *done, self.buf = self.buf.split(b"\n")
            lines.extend(d.decode(errors="replace") for d in done)
        return lines
