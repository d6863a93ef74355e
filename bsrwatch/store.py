"""The store: one :class:`bsr.model.State` plus everything bsrwatch derives.

Sources push lines or events in; the UI asks for a view model
(:func:`bsrwatch.view.build_overview`) at most every refresh interval,
and only when :attr:`Store.generation` moved.  Nothing in here touches
Textual: the store is the reactive model, widgets only draw it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from bsr.events2 import parse_line
from bsr.model import Event, Kind, PeerDevice, State, Verb

from bsrwatch.rates import RateTracker, SyncTrack
from bsrwatch.severity import SYNCING_STATES

# events2 keys that are state (logged when they change), per object kind
STATE_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.resource: ("role", "suspended"),
    Kind.device: ("disk", "client", "quorum"),
    Kind.connection: ("connection", "role"),
    Kind.peer_device: ("replication", "peer-disk", "resync-suspended"),
    Kind.path: ("established",),
}
# counters whose per-second rate is tracked, per kind
RATE_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.device: ("read", "written", "al-writes"),
    Kind.peer_device: ("sent", "received"),
}
# object words some sources print that the model does not keep
SIDE_OBJECTS = ("split-brain", "io-error", "gi-uuid")


@dataclass
class LogEntry:
    when: datetime
    text: str
    level: str = "info"  # info | warning | alert


@dataclass
class SourceStatus:
    text: str = "starting"
    ok: bool = False
    ended: bool = False


@dataclass
class Store:
    clock: Callable[[], float] = time.time
    log_size: int = 1000
    state: State = field(default_factory=State)
    rates: RateTracker = field(default_factory=RateTracker)
    syncs: dict[tuple[str, ...], SyncTrack] = field(default_factory=dict)
    split_brain: set[tuple[str, int]] = field(default_factory=set)
    side: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    events: deque[LogEntry] = field(default_factory=deque)
    status: SourceStatus = field(default_factory=SourceStatus)
    bad_lines: int = 0
    lines: int = 0
    generation: int = 0
    event_total: int = 0  # log entries ever added (the log itself is bounded)
    seen_live: bool = False  # a create/change arrived: the dump is over even without "exists -"
    rebuilding: State | None = None  # after a source restart: the new dump, until complete
    touched: set[str] = field(default_factory=set)  # resources changed since take_touched()
    all_touched: bool = True  # everything may have changed (start, reset, rebuild)
    _last: dict[tuple[str, tuple[str, ...]], dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.events = deque(maxlen=self.log_size)

    # -- input --------------------------------------------------------------

    def feed_line(self, line: str | bytes) -> Event | None:
        self.lines += 1
        ev = parse_line(line)
        if ev is None:
            if (line.strip() if isinstance(line, (str, bytes)) else line):
                self.bad_lines += 1
            return None
        self.feed(ev)
        return ev

    def feed(self, ev: Event) -> None:
        """Merge one event; the hot path (thousands a second) stays lean."""
        ts = ev.timestamp
        now = ts.timestamp() if ts is not None else self.clock()
        kind = ev.kind
        if kind is Kind.other or ev.skipped:
            self._feed_other(ev, now)
            return
        verb = ev.verb
        if verb is not Verb.exists:
            self.seen_live = True
        if self.rebuilding is not None:
            self._rebuild(ev, self._when(ev, now))
            return
        fields = ev.fields
        word = kind._value_  # plain attribute: Enum hashing is slow on this path
        state_keys = _STATE_KEYS_BY_WORD.get(word, ())
        key = ev.key()
        if key is None:
            return
        if verb is Verb.destroy or verb is Verb.create or any(k in fields for k in state_keys):
            self._log_changes(ev, word, key, now)
        obj = self.state.apply(ev)
        self.generation += 1
        self.touched.add(key[0])
        if obj is None:
            return
        ident = (word, key)
        if verb is Verb.destroy:
            self.rates.forget(ident)
            return
        for name, attr in _RATE_BY_WORD.get(word, ()):
            if name in fields:
                v = getattr(obj, attr)
                if v is not None:
                    self.rates.observe(ident, name, v, now)
        if kind is Kind.peer_device:
            if "replication" in fields or "out-of-sync" in fields:
                self._track_sync(key, obj, now)  # type: ignore[arg-type]
        elif kind is Kind.connection and fields.get("connection") == "Connected":
            self.split_brain.discard((key[0], _int(key[1])))

    def _feed_other(self, ev: Event, now: float) -> None:
        when = self._when(ev, now)
        if ev.skipped:
            self.log(f"{ev.skipped} events lost by the source (state may be stale)", "warning", when)
        elif ev.is_initial_done and not self.state.initial_done and self.rebuilding is None:
            self.log(f"initial state: {len(self.state.resource_names())} resources", "info", when)
        if ev.raw_object in SIDE_OBJECTS:
            self._side(ev, when)
            self.touched.add(ev.fields.get("name", ""))
            self.generation += 1
            return
        if self.rebuilding is not None:
            self._rebuild(ev, when)
            return
        if self.state.apply(ev) is None and (ev.skipped or ev.is_initial_done):
            self.generation += 1

    def _when(self, ev: Event, now: float) -> datetime:
        return ev.timestamp or datetime.fromtimestamp(now).astimezone()

    def reset(self, reason: str) -> None:
        """The source restarted: drop everything and rebuild from its new dump.

        The old objects stay on screen (marked stale by the source status)
        until the new dump is complete, then the rebuilt state replaces them
        whole, so a source that restarts often (``events2 --now`` polled)
        does not flicker and objects that vanished meanwhile are gone.
        """
        self.rebuilding = State()
        self.all_touched = True
        self.seen_live = False
        self.log(reason, "warning")
        self.generation += 1

    def _rebuild(self, ev: Event, when: datetime) -> None:
        new = self.rebuilding
        assert new is not None
        new.apply(ev)
        if not (new.initial_done or self.seen_live):
            return
        self.rebuilding = None
        old = set(self.state.resource_names())
        self.state = new
        self.all_touched = True
        self.syncs.clear()
        self.split_brain.clear()
        self.side.clear()
        self._last.clear()
        for kind, obj in new.objects():
            self._remember(kind, obj)
        gone = old - set(new.resource_names())
        extra = f" ({', '.join(sorted(gone))} gone)" if gone else ""
        self.log(f"state rebuilt: {len(new.resource_names())} resources{extra}", "info", when)
        self.generation += 1

    def _remember(self, kind: Kind, obj: object) -> None:
        """Seed the change log with the state of a rebuilt object."""
        ident = _ident(kind, obj)
        if ident is None:
            return
        self._last[(kind.value, ident)] = {
            k: v for k, v in _state_text(kind, obj).items() if k in STATE_KEYS.get(kind, ())}

    def set_status(self, text: str, ok: bool, ended: bool = False) -> None:
        self.status = SourceStatus(text, ok, ended)
        self.generation += 1

    def log(self, text: str, level: str = "info", when: datetime | None = None) -> None:
        self.events.append(LogEntry(when or datetime.now().astimezone(), text, level))
        self.event_total += 1
        self.generation += 1

    def take_touched(self) -> set[str] | None:
        """Resources changed since the last call (None: assume all of them)."""
        touched, everything = self.touched, self.all_touched
        self.touched, self.all_touched = set(), False
        return None if everything else touched

    @property
    def ready(self) -> bool:
        """Show objects only once the initial dump is complete (or obviously over)."""
        return self.state.initial_done or self.seen_live or self.status.ended

    # -- helpers ------------------------------------------------------------

    def _side(self, ev: Event, when: datetime) -> None:
        res = ev.fields.get("name", "")
        if not res:
            return
        desc = " ".join(f"{k}:{v}" for k, v in ev.fields.items() if k != "name")
        if ev.raw_object == "split-brain":
            pid = _int(ev.fields.get("peer-node-id", "-1"))
            if ev.verb is Verb.destroy:
                self.split_brain.discard((res, pid))
            else:
                self.split_brain.add((res, pid))
                self.log(f"{res}: split brain detected {desc}".rstrip(), "alert", when)
            return
        if ev.verb is Verb.destroy:
            self.side.get(res, {}).pop(ev.raw_object, None)
            return
        self.side.setdefault(res, {}).setdefault(ev.raw_object, {}).update(ev.fields)
        if ev.raw_object == "io-error":
            self.log(f"{res}: I/O error {desc}".rstrip(), "alert", when)

    def _log_changes(self, ev: Event, word: str, key: tuple[str, ...], now: float) -> None:
        ident = (word, key)
        verb = ev.verb
        if verb is Verb.destroy:
            self._last.pop(ident, None)
            self.log(f"{_describe(ev.kind, ev.fields)} destroyed", "info", self._when(ev, now))
            return
        if verb not in (Verb.exists, Verb.create, Verb.change):
            return
        last = self._last.get(ident)
        if last is None:
            last = self._last[ident] = {}
        changes = []
        fields = ev.fields
        for k in _STATE_KEYS_BY_WORD.get(word, ()):
            v = fields.get(k)
            if v is None:
                continue
            old = last.get(k)
            last[k] = v
            if old is not None and old != v:
                changes.append(f"{k}:{old}→{v}")
        if verb is Verb.create:
            self.log(f"{_describe(ev.kind, fields)} created", "info", self._when(ev, now))
        elif changes:
            self.log(f"{_describe(ev.kind, fields)} {' '.join(changes)}", _change_level(changes),
                     self._when(ev, now))

    def _track_sync(self, key: tuple[str, ...], pd: PeerDevice, now: float) -> None:
        if pd.replication in SYNCING_STATES:
            track = self.syncs.get(key)
            if track is None:
                track = self.syncs[key] = SyncTrack()
            if pd.out_of_sync_kib is not None:
                track.observe(pd.out_of_sync_kib, now)
        else:
            self.syncs.pop(key, None)


def _ident(kind: Kind, obj: object) -> tuple[str, ...] | None:
    g = lambda a: str(getattr(obj, a))  # noqa: E731
    if kind is Kind.resource:
        return (g("name"),)
    if kind is Kind.device:
        return (g("name"), g("volume"))
    if kind is Kind.connection:
        return (g("name"), g("peer_node_id"))
    if kind is Kind.peer_device:
        return (g("name"), g("peer_node_id"), g("volume"))
    if kind is Kind.path:
        return (g("name"), g("peer_node_id"), g("local"), g("peer"))
    return None


_STATE_ATTRS = {
    "role": ("role", "peer_role"), "suspended": ("suspended",), "disk": ("disk",),
    "client": ("client",), "quorum": ("quorum",), "connection": ("connection",),
    "replication": ("replication",), "peer-disk": ("peer_disk",),
    "resync-suspended": ("resync_suspended",), "established": ("established",),
}


def _state_text(kind: Kind, obj: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, attrs in _STATE_ATTRS.items():
        attr = attrs[1] if key == "role" and kind is Kind.connection else attrs[0]
        v = getattr(obj, attr, None)
        if v is None:
            continue
        if isinstance(v, bool):
            out[key] = "yes" if v else "no"
        else:
            out[key] = getattr(v, "name", str(v))
    return out


_STATE_KEYS_BY_WORD: dict[str, tuple[str, ...]] = {k.value: v for k, v in STATE_KEYS.items()}


_RATE_ATTR = {
    "read": "read_kib", "written": "written_kib", "al-writes": "al_writes",
    "sent": "sent_kib", "received": "received_kib",
}
_BAD_WORDS = ("StandAlone", "Diskless", "Failed", "Outdated", "Inconsistent", "Unknown",
              "Ahead", "Behind", "NetworkFailure", "BrokenPipe", "Timeout", "ProtocolError")


_RATE_BY_WORD: dict[str, tuple[tuple[str, str], ...]] = {
    k.value: tuple((n, _RATE_ATTR[n]) for n in names) for k, names in RATE_KEYS.items()}


def _change_level(changes: list[str]) -> str:
    news = [c.rsplit("→", 1)[-1] for c in changes]
    return "warning" if any(n in _BAD_WORDS or n.startswith("DUnknown") for n in news) else "info"


def _describe(kind: Kind, f: dict[str, str]) -> str:
    name = f.get("name", "?")
    if kind is Kind.resource:
        return name
    if kind is Kind.device:
        return f"{name}/{f.get('volume', '?')}"
    peer = f.get("conn-name") or f"peer {f.get('peer-node-id', '?')}"
    if kind is Kind.connection:
        return f"{name}:{peer}"
    if kind is Kind.peer_device:
        return f"{name}:{peer}/{f.get('volume', '?')}"
    return f"{name}:{peer} path"


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return -1
