"""Typed state of bsr (or DRBD 9) resources, shared by bsrsetup, bsrmon and bsrwatch.

Everything that reports state — the kernel's netlink notifications, an
``events2`` text stream, a recorded file — is turned into :class:`Event`
objects whose ``fields`` are events2 ``key:value`` strings.  :class:`State`
merges events into typed objects (:class:`Resource`, :class:`Device`,
:class:`Connection`, :class:`PeerDevice`, :class:`Path`).

Merging rules (what newer drbdsetup versions require of a consumer):

* a ``change`` may carry only some fields: the others keep their values;
* keys the model does not know are kept verbatim in ``extra``;
* values that do not parse (an unknown state name, garbage) leave the typed
  attribute ``None`` and keep the raw text in ``extra`` — never an exception;
* counters are Python ints (64-bit and beyond); a counter that goes down is
  a reset of its source, see :func:`counter_delta`.

Units follow events2: sizes and transfer counters in KiB, in-flight amounts
in sectors (512 bytes), ``eta`` in seconds, ``dbdt1`` in MiB/s.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, field, fields as dc_fields
from datetime import datetime
from typing import Any, Callable, Iterator

from bsr.abi import ConnState, DiskState, ReplState, Role

__all__ = [
    "Role", "DiskState", "ConnState", "ReplState",
    "Verb", "Kind", "Event", "Resource", "Device", "Connection", "PeerDevice", "Path",
    "State", "counter_delta", "typed_fields", "IDENTITY_KEYS",
]


class Verb(enum.Enum):
    exists = "exists"
    create = "create"
    change = "change"
    destroy = "destroy"
    call = "call"
    response = "response"
    rename = "rename"

    # members are singletons: hash by identity in C (Enum's own __hash__
    # is Python code, and every event looks up several tables by kind)
    __hash__ = object.__hash__


class Kind(enum.Enum):
    resource = "resource"
    device = "device"
    connection = "connection"
    peer_device = "peer-device"
    path = "path"
    # objects some sources print that the state model does not keep
    helper = "helper"
    other = "-"

    __hash__ = object.__hash__


# Identity keys of each object, in the order events2 prints them.
IDENTITY_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.resource: ("name",),
    Kind.device: ("name", "volume", "minor"),
    Kind.connection: ("name", "peer-node-id", "conn-name"),
    Kind.peer_device: ("name", "peer-node-id", "conn-name", "volume"),
    Kind.path: ("name", "peer-node-id", "conn-name", "local", "peer"),
}


@dataclass
class Event:
    """One events2 line: ``[timestamp ]verb object key:value ...``.

    ``fields`` holds every key in order, identity keys first.  An event with
    ``kind`` ``other`` and verb ``exists`` is the end-of-initial-dump marker
    (``exists -``); ``skipped`` > 0 marks lost events (``- skipped N``).
    """

    verb: Verb | None
    kind: Kind
    fields: dict[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None
    skipped: int = 0
    raw_object: str = ""  # the object word as printed, for unknown objects

    @property
    def is_initial_done(self) -> bool:
        return self.verb is Verb.exists and self.kind is Kind.other and not self.skipped

    def key(self) -> tuple[str, ...] | None:
        """Identity of the object (None when identity keys are missing)."""
        get = _KEY_GETTERS.get(self.kind)
        if get is None:
            return None
        try:
            return get(self.fields)
        except KeyError:
            return None


# Which identity keys make an object unique in State (minor and conn-name
# may be renamed; name + numbers are stable).
_KEY_NAMES: dict[Kind, tuple[str, ...]] = {
    Kind.resource: ("name",),
    Kind.device: ("name", "volume"),
    Kind.connection: ("name", "peer-node-id"),
    Kind.peer_device: ("name", "peer-node-id", "volume"),
    Kind.path: ("name", "peer-node-id", "local", "peer"),
}


def _getter(names: tuple[str, ...]) -> Callable[[dict[str, str]], tuple[str, ...]]:
    if len(names) == 1:
        name = names[0]
        return lambda f: (f[name],)
    return operator.itemgetter(*names)  # a tuple, built in C


_KEY_GETTERS = {kind: _getter(names) for kind, names in _KEY_NAMES.items()}


# --------------------------------------------------------------------------
# value parsers: text -> typed value, raising ValueError on garbage
# --------------------------------------------------------------------------

def _int(v: str) -> int:
    n = int(v, 10)
    if n < 0:
        raise ValueError(v)
    return n


def _float(v: str) -> float:
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(v)
    return f


def _yesno(v: str) -> bool:
    if v in ("yes", "true", "1"):
        return True
    if v in ("no", "false", "0"):
        return False
    raise ValueError(v)


def _enum(cls: type[enum.Enum]) -> Callable[[str], Any]:
    def parse(v: str) -> Any:
        return cls[v]
    return parse


def _text(v: str) -> str:
    return v


# events2 key -> (attribute, parser) per kind
_FIELD_MAP: dict[Kind, dict[str, tuple[str, Callable[[str], Any]]]] = {
    Kind.resource: {
        "role": ("role", _enum(Role)),
        "suspended": ("suspended", _text),
        "write-ordering": ("write_ordering", _text),
        "may_promote": ("may_promote", _yesno),
        "promotion_score": ("promotion_score", _int),
    },
    Kind.device: {
        "minor": ("minor", _int),
        "disk": ("disk", _enum(DiskState)),
        "client": ("client", _yesno),
        "quorum": ("quorum", _yesno),
        "backing_dev": ("backing_dev", _text),
        "open": ("open", _yesno),
        "size": ("size_kib", _int),
        "read": ("read_kib", _int),
        "written": ("written_kib", _int),
        "al-writes": ("al_writes", _int),
        "bm-writes": ("bm_writes", _int),
        "upper-pending": ("upper_pending", _int),
        "lower-pending": ("lower_pending", _int),
        "al-suspended": ("al_suspended", _yesno),
        "blocked": ("blocked", _text),
    },
    Kind.connection: {
        "conn-name": ("conn_name", _text),
        "connection": ("connection", _enum(ConnState)),
        "role": ("peer_role", _enum(Role)),
        "congested": ("congested", _yesno),
        "ap-in-flight": ("ap_in_flight_sectors", _int),
        "rs-in-flight": ("rs_in_flight_sectors", _int),
    },
    Kind.peer_device: {
        "conn-name": ("conn_name", _text),
        "replication": ("replication", _enum(ReplState)),
        "peer-disk": ("peer_disk", _enum(DiskState)),
        "peer-client": ("peer_client", _yesno),
        "resync-suspended": ("resync_suspended", _text),
        "received": ("received_kib", _int),
        "sent": ("sent_kib", _int),
        "out-of-sync": ("out_of_sync_kib", _int),
        "pending": ("pending", _int),
        "unacked": ("unacked", _int),
        "done": ("done_pct", _float),
        "eta": ("eta_s", _int),
        "dbdt1": ("dbdt1_mibs", _float),
    },
    Kind.path: {
        "conn-name": ("conn_name", _text),
        "established": ("established", _yesno),
    },
}


# per kind: typed key -> (attribute, parser), identity-only key -> _IDENTITY;
# any other key goes to ``extra``
_IDENTITY = ("", _text)
_MERGE_PLAN: dict[Kind, dict[str, tuple[str, Callable[[str], Any]]]] = {
    kind: {**{k: _IDENTITY for k in IDENTITY_KEYS[kind]}, **table}
    for kind, table in _FIELD_MAP.items()
}
_TABLE_ATTRS: dict[Kind, str] = {
    Kind.resource: "resources",
    Kind.device: "devices",
    Kind.connection: "connections",
    Kind.peer_device: "peer_devices",
    Kind.path: "paths",
}


@dataclass
class _Obj:
    name: str
    extra: dict[str, str] = field(default_factory=dict)
    updated: datetime | None = None
    # raw text last merged for each typed key: an unchanged value (most of
    # every statistics event) is not parsed again
    _merged: dict[str, str] = field(default_factory=dict, init=False, repr=False,
                                    compare=False)

    def merge(self, kind: Kind, ev: Event) -> None:
        plan = _MERGE_PLAN[kind]
        extra = self.extra
        merged = self._merged
        for k, v in ev.fields.items():
            spec = plan.get(k)
            if spec is None:
                extra[k] = v
                continue
            if spec is _IDENTITY or merged.get(k) == v:
                continue
            merged[k] = v
            attr, parse = spec
            try:
                setattr(self, attr, parse(v))
            except (ValueError, KeyError, OverflowError):
                setattr(self, attr, None)
                extra[k] = v
            else:
                if k in extra:
                    del extra[k]
        if ev.timestamp is not None:
            self.updated = ev.timestamp


@dataclass
class Resource(_Obj):
    role: Role | None = None
    suspended: str | None = None
    write_ordering: str | None = None
    may_promote: bool | None = None
    promotion_score: int | None = None


@dataclass
class Device(_Obj):
    volume: int = 0
    minor: int | None = None
    disk: DiskState | None = None
    client: bool | None = None
    quorum: bool | None = None
    backing_dev: str | None = None
    open: bool | None = None
    size_kib: int | None = None
    read_kib: int | None = None
    written_kib: int | None = None
    al_writes: int | None = None
    bm_writes: int | None = None
    upper_pending: int | None = None
    lower_pending: int | None = None
    al_suspended: bool | None = None
    blocked: str | None = None


@dataclass
class Connection(_Obj):
    peer_node_id: int = 0
    conn_name: str | None = None
    connection: ConnState | None = None
    peer_role: Role | None = None
    congested: bool | None = None
    ap_in_flight_sectors: int | None = None
    rs_in_flight_sectors: int | None = None


@dataclass
class PeerDevice(_Obj):
    peer_node_id: int = 0
    volume: int = 0
    conn_name: str | None = None
    replication: ReplState | None = None
    peer_disk: DiskState | None = None
    peer_client: bool | None = None
    resync_suspended: str | None = None
    received_kib: int | None = None
    sent_kib: int | None = None
    out_of_sync_kib: int | None = None
    pending: int | None = None
    unacked: int | None = None
    done_pct: float | None = None
    eta_s: int | None = None
    dbdt1_mibs: float | None = None

    @property
    def syncing(self) -> bool:
        return self.replication in (
            ReplState.SyncSource, ReplState.SyncTarget, ReplState.PausedSyncS,
            ReplState.PausedSyncT, ReplState.VerifyS, ReplState.VerifyT,
        )


@dataclass
class Path(_Obj):
    peer_node_id: int = 0
    local: str = ""
    peer: str = ""
    conn_name: str | None = None
    established: bool | None = None


_CLASSES: dict[Kind, type[_Obj]] = {
    Kind.resource: Resource,
    Kind.device: Device,
    Kind.connection: Connection,
    Kind.peer_device: PeerDevice,
    Kind.path: Path,
}


def _new(kind: Kind, ev: Event) -> _Obj | None:
    f = ev.fields
    try:
        name = f["name"]
        if kind is Kind.resource:
            return Resource(name=name)
        if kind is Kind.device:
            return Device(name=name, volume=_int(f["volume"]))
        pid = _int(f["peer-node-id"])
        if kind is Kind.connection:
            return Connection(name=name, peer_node_id=pid)
        if kind is Kind.peer_device:
            return PeerDevice(name=name, peer_node_id=pid, volume=_int(f["volume"]))
        if kind is Kind.path:
            return Path(name=name, peer_node_id=pid, local=f["local"], peer=f["peer"])
    except (KeyError, ValueError):
        return None
    return None


@dataclass
class State:
    """All objects known from one source, keyed by identity.

    ``initial_done`` becomes True at the ``exists -`` marker; ``skipped``
    counts events the source reported lost.  :meth:`apply` returns the
    object it touched (or None when the event was ignored).
    """

    resources: dict[tuple[str, ...], Resource] = field(default_factory=dict)
    devices: dict[tuple[str, ...], Device] = field(default_factory=dict)
    connections: dict[tuple[str, ...], Connection] = field(default_factory=dict)
    peer_devices: dict[tuple[str, ...], PeerDevice] = field(default_factory=dict)
    paths: dict[tuple[str, ...], Path] = field(default_factory=dict)
    initial_done: bool = False
    skipped: int = 0
    generation: int = 0  # bumps on every applied event (cheap change detection)

    def _table(self, kind: Kind) -> dict[tuple[str, ...], Any] | None:
        attr = _TABLE_ATTRS.get(kind)
        return None if attr is None else getattr(self, attr)

    def clear(self) -> None:
        """Forget everything (the source restarted); keeps nothing but counters."""
        for t in (self.resources, self.devices, self.connections, self.peer_devices, self.paths):
            t.clear()
        self.initial_done = False
        self.generation += 1

    def apply(self, ev: Event) -> _Obj | None:
        if ev.skipped:
            self.skipped += ev.skipped
            self.generation += 1
            return None
        if ev.is_initial_done:
            self.initial_done = True
            self.generation += 1
            return None
        table = self._table(ev.kind)
        key = ev.key()
        if table is None or key is None or ev.verb is None:
            return None
        if ev.verb is Verb.destroy:
            obj = table.pop(key, None)
            if ev.kind is Kind.resource and obj is not None:
                self._drop_children(key[0])
            self.generation += 1
            return obj
        if ev.verb not in (Verb.exists, Verb.create, Verb.change, Verb.rename):
            return None
        obj = table.get(key)
        if obj is None:
            obj = _new(ev.kind, ev)
            if obj is None:
                return None
            table[key] = obj
        obj.merge(ev.kind, ev)
        self.generation += 1
        return obj

    def _drop_children(self, res: str) -> None:
        for t in (self.devices, self.connections, self.peer_devices, self.paths):
            for k in [k for k in t if k[0] == res]:
                del t[k]

    # convenient views -----------------------------------------------------

    def resource_names(self) -> list[str]:
        names = {k[0] for k in self.resources}
        for t in (self.devices, self.connections, self.peer_devices):
            names.update(k[0] for k in t)
        return sorted(names)

    def devices_of(self, res: str) -> list[Device]:
        return sorted((d for d in self.devices.values() if d.name == res), key=lambda d: d.volume)

    def connections_of(self, res: str) -> list[Connection]:
        return sorted((c for c in self.connections.values() if c.name == res),
                      key=lambda c: c.peer_node_id)

    def peer_devices_of(self, res: str, peer_node_id: int | None = None) -> list[PeerDevice]:
        return sorted(
            (p for p in self.peer_devices.values()
             if p.name == res and (peer_node_id is None or p.peer_node_id == peer_node_id)),
            key=lambda p: (p.peer_node_id, p.volume))

    def paths_of(self, res: str, peer_node_id: int) -> list[Path]:
        return [p for p in self.paths.values() if p.name == res and p.peer_node_id == peer_node_id]

    def objects(self) -> Iterator[tuple[Kind, _Obj]]:
        for kind in (Kind.resource, Kind.device, Kind.connection, Kind.peer_device, Kind.path):
            table = self._table(kind)
            assert table is not None
            for obj in table.values():
                yield kind, obj


def counter_delta(prev: int | None, cur: int | None) -> int | None:
    """Growth of a monotonic counter between two samples.

    None when either sample is missing; when the counter went down its
    source was reset (module reloaded, object re-created), so the growth
    since the reset is the new value itself.
    """
    if prev is None or cur is None:
        return None
    if cur < prev:
        return cur
    return cur - prev


def typed_fields(obj: _Obj) -> dict[str, Any]:
    """The typed attributes of an object (for JSON output and tests)."""
    out: dict[str, Any] = {}
    for f in dc_fields(obj):
        if f.name in ("extra", "updated", "_merged"):
            continue
        v = getattr(obj, f.name)
        out[f.name] = v.name if isinstance(v, enum.Enum) else v
    return out
