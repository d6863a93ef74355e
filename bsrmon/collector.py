"""The collector: events in, event-log lines and sample lines out.

It owns the merged :class:`bsr.model.State` of one source.  Every event is
applied to it; the ones that change state (not just counters) become
``events.log`` lines.  Every :class:`Tick` turns the current counters into
one line per series through :class:`bsrmon.sampler.Sampler`.  Output goes to
a ``submit`` callable (the writer) and never waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from bsr.events2 import format_event
from bsr.model import IDENTITY_KEYS, Event, Kind, State, Verb

from bsrmon.sampler import Sampler, Snapshot, Values
from functools import lru_cache

from bsrmon.series import SeriesKey, format_time, values_text
from bsrmon.writer import Entry

if TYPE_CHECKING:
    from bsrmon.kfeed import KernelFeed

EVENTS_LOG = "events.log"
PERFMON = "perfmon"

# Keys that describe state (logged) as opposed to statistics (sampled).
STATE_KEYS: dict[Kind, frozenset[str]] = {
    Kind.resource: frozenset({"role", "suspended", "may_promote", "promotion_score"}),
    Kind.device: frozenset({"disk", "client", "quorum", "backing_dev", "open"}),
    Kind.connection: frozenset({"connection", "role"}),
    Kind.peer_device: frozenset({"replication", "peer-disk", "peer-client", "resync-suspended"}),
    Kind.path: frozenset({"established"}),
}


# The same keys in a fixed order (an object's state values as one tuple).
_STATE_ORDER: dict[Kind, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in STATE_KEYS.items()}
_NOT_LOGGED_KINDS = frozenset((Kind.other, Kind.helper))


@dataclass
class Tick:
    """Sample now.  ``module`` carries module-wide statistics if known."""

    time: datetime
    module: dict[str, int] | None = None


@dataclass
class Reset:
    """The source restarted: forget the state, keep the files."""

    reason: str = ""


@dataclass
class KernelMessages:
    """Decoded bsr.ko messages to convert into events on the collector's
    thread: the initial dump (``initial``) or notifications (``live``)."""

    msgs: list[Any]
    live: bool = False
    initial: bool = False


@dataclass
class KernelPoll:
    """The kernel source's statistics dump of one period, then its tick
    (see :mod:`bsrmon.kfeed`)."""

    msgs: list[Any]
    tick: Tick


Item = Event | Tick | Reset | KernelMessages | KernelPoll


@lru_cache(maxsize=65536)
def _rel(key: SeriesKey) -> str:
    return f"{PERFMON}/{key.relpath()}"


@lru_cache(maxsize=65536)
def _dest(key: SeriesKey) -> tuple[str, str]:
    """(file relative to the root, header of a new file) of a series."""
    return _rel(key), key.header()


def local_naive(t: datetime) -> datetime:
    """Local wall-clock time without tzinfo (what series lines show)."""
    if t.tzinfo is not None:
        t = t.astimezone().replace(tzinfo=None)
    return t


@dataclass
class Collector:
    types: tuple[str, ...]
    submit: Callable[[list[Entry]], bool]
    raw_state: State = field(default_factory=State)  # without deferred kernel replies
    latest: dict[SeriesKey, tuple[datetime, Values]] = field(default_factory=dict)
    last_tick: datetime | None = None
    events_seen: int = 0
    ticks: int = 0
    _sampler: Sampler = field(init=False)
    _logged: dict[tuple[Kind, tuple[str, ...]], dict[str, str]] = field(default_factory=dict)
    # object -> its state values as its last event gave them (_STATE_ORDER)
    _last_state: dict[tuple[Kind, tuple[str, ...]], tuple[str | None, ...]] = \
        field(default_factory=dict)
    _pending_log: list[Entry] = field(default_factory=list)
    _feed: "KernelFeed | None" = None

    def __post_init__(self) -> None:
        self._sampler = Sampler(self.types, dest=_dest)

    @property
    def state(self) -> State:
        """The merged state, up to date (kernel replies deferred by
        :mod:`bsrmon.kfeed` are merged first)."""
        if self._feed is not None and self._feed.deferred:
            self._feed.settle(self)
        return self.raw_state

    def _kernel_feed(self) -> "KernelFeed":
        if self._feed is None:
            from bsrmon.kfeed import KernelFeed
            self._feed = KernelFeed()
        return self._feed

    def set_types(self, types: tuple[str, ...]) -> None:
        self.types = types
        self._sampler.types = types
        self.latest = {k: v for k, v in self.latest.items() if k.type in types}

    def handle(self, item: Item) -> None:
        if item.__class__ is Event:  # the common case first
            self.event(item)  # type: ignore[arg-type]
        elif item.__class__ is KernelPoll:
            snap = self._kernel_feed().poll(item, self)  # type: ignore[arg-type]
            self.tick(item.tick.time, item.tick.module, snap)  # type: ignore[union-attr]
        elif item.__class__ is KernelMessages:
            self._kernel_feed().messages(item, self)  # type: ignore[arg-type]
        elif isinstance(item, Tick):
            self.tick(item.time, item.module)
        elif isinstance(item, Reset):
            self.reset(item.reason)
        else:
            self.event(item)

    # -- events -----------------------------------------------------------

    def event(self, ev: Event) -> None:
        self.events_seen += 1
        line = self._log_line(ev)
        self.raw_state.apply(ev)
        feed = self._feed
        if feed is not None and feed.deferred and ev.kind in STATE_KEYS:
            ident = ev.key()
            if ident is not None:
                feed.forget(ev.kind, ident)
        if line is not None:
            self._pending_log.append((EVENTS_LOG, "", line + "\n"))
            if ev.verb is not Verb.exists or ev.is_initial_done:
                self.flush_log()

    def flush_log(self) -> None:
        if self._pending_log:
            self.submit(self._pending_log)
            self._pending_log = []

    def _log_line(self, ev: Event) -> str | None:
        """The events.log line for an event, None for statistics-only changes."""
        kind = ev.kind
        if ev.skipped or kind in _NOT_LOGGED_KINDS:
            return format_event(ev, timestamps=True)
        order = _STATE_ORDER.get(kind)
        ident = ev.key()
        if order is None or ident is None:
            return None
        oid = (kind, ident)
        if ev.verb is Verb.destroy:
            self._logged.pop(oid, None)
            self._last_state.pop(oid, None)
            return format_event(ev, timestamps=True)
        f = ev.fields
        values = tuple(map(f.get, order))
        if ev.verb is Verb.change and self._last_state.get(oid) == values:
            return None  # what the last event said: already in _logged
        self._last_state[oid] = values
        known = self._logged.get(oid)
        if known is None:
            known = self._logged[oid] = {}
        changed = False
        for k, v in zip(order, values):
            if v is not None and known.get(k) != v:
                known[k] = v
                changed = True
        if not changed and ev.verb is Verb.change:
            return None
        keys = STATE_KEYS[kind]
        state = {k: v for k, v in f.items() if k in keys}  # in the event's order
        idkeys = IDENTITY_KEYS[kind]
        fields = {k: v for k, v in f.items() if k in idkeys}
        fields.update(state)
        return format_event(Event(ev.verb, kind, fields, ev.timestamp), timestamps=True)

    def reset(self, reason: str) -> None:
        self.raw_state.clear()
        self._feed = None  # the new session has a new converter
        self._sampler.reset()
        self._logged.clear()
        self._last_state.clear()
        self.latest.clear()

    # -- samples ----------------------------------------------------------

    def tick(self, t: datetime, module: dict[str, int] | None = None,
             snap: Snapshot | None = None) -> None:
        """Sample the state (or ``snap``, the counters of the same moment)."""
        self.flush_log()
        t = local_naive(t)
        if self.last_tick is not None and t <= self.last_tick:
            return
        self.last_tick = t
        self.ticks += 1
        batch: list[Entry] = []
        stamp = format_time(t) + " "
        latest = self.latest
        add = batch.append
        text = values_text
        if snap is None:
            snap = Snapshot.from_state(self.state)
        for (key, rel, header), values in self._sampler.rows(snap, t, module):
            latest[key] = (t, values)
            add((rel, header, f"{stamp}{text(values)}\n" if values else f"{stamp[:-1]}\n"))
        self.submit(batch)
