"""``bsrsetup status``: the state of resources, as text or JSON.

The state is read with one ``GET_INITIAL_STATE`` dump, converted to events2
events (:mod:`bsr.kevents`) and merged into a :class:`bsr.model.State`; the
text mirrors ``drbdsetup status``::

    r0 role:Primary
      disk:UpToDate
      node-b role:Secondary
        replication:SyncSource peer-disk:Inconsistent done:45.20

The JSON layout is described in docs/bsrsetup.md.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Iterable

from bsr.kevents import Converter
from bsr.model import (ConnState, Connection, Device, PeerDevice, ReplState, Resource,
                       State, Verb)
from bsr.setup.events import Netlink

_RESET = "\x1b[0m"
_GREEN, _YELLOW, _RED, _BOLD = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m"

_GOOD = {"UpToDate", "Connected", "Established", "Primary", "Secondary", "no"}
_WARN = {"Inconsistent", "Consistent", "Outdated", "Negotiating", "Attaching", "Detaching",
         "Connecting", "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT",
         "VerifyS", "VerifyT", "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT",
         "WFSyncUUID", "Ahead", "Behind", "Unknown"}


def load_state(nl: Netlink, resource: str | None) -> State:
    """One consistent snapshot of every object (of one resource)."""
    ctx = {"ctx": {"res_name": resource}} if resource else {}
    conv = Converter(statistics=True)
    st = State()
    for msg in nl.dump("GET_INITIAL_STATE", **ctx):
        for ev in conv.convert(msg, verb=Verb.exists):
            if resource is None or ev.fields.get("name") in (None, resource):
                st.apply(ev)
    return st


def _name(v: Any) -> str:
    if v is None:
        return "Unknown"
    if isinstance(v, enum.Enum):
        return v.name
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


class _Paint:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, key: str, value: Any) -> str:
        text = _name(value)
        if not self.color:
            return f"{key}:{text}"
        tint = _GREEN if text in _GOOD else _YELLOW if text in _WARN else _RED
        if key == "role" and text == "Primary":
            tint = _BOLD + _GREEN
        return f"{key}:{tint}{text}{_RESET}"


def _stats(pairs: Iterable[tuple[str, Any]]) -> str:
    return " ".join(f"{k}:{_name(v)}" for k, v in pairs if v is not None)


def format_text(st: State, *, verbose: bool = False, statistics: bool = False,
                color: bool = False) -> str:
    paint = _Paint(color)
    out: list[str] = []
    for res_name in st.resource_names():
        res = st.resources.get((res_name,)) or Resource(name=res_name)
        out.extend(_resource_lines(st, res, paint, verbose, statistics))
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def _resource_lines(st: State, res: Resource, paint: _Paint, verbose: bool,
                    statistics: bool) -> list[str]:
    line = f"{res.name} {paint('role', res.role)}"
    if verbose or (res.suspended not in (None, "no")):
        line += f" suspended:{res.suspended or 'no'}"
    lines = [line]
    if statistics and res.write_ordering:
        lines.append(f"    write-ordering:{res.write_ordering}")
    devices = st.devices_of(res.name)
    many = len(devices) > 1 or any(d.volume for d in devices)
    for d in devices:
        lines.extend(_device_lines(d, paint, verbose or many, verbose, statistics))
    for c in st.connections_of(res.name):
        lines.extend(_connection_lines(st, c, paint, verbose, statistics, many))
    return lines


def _device_lines(d: Device, paint: _Paint, show_volume: bool, verbose: bool,
                  statistics: bool) -> list[str]:
    parts = []
    if show_volume:
        parts.append(f"volume:{d.volume}")
    if verbose:
        parts.append(f"minor:{d.minor}")
    parts.append(paint("disk", d.disk))
    if verbose or d.client:
        parts.append(f"client:{_name(bool(d.client))}")
    if verbose:
        parts.append(f"backing_dev:{d.backing_dev or 'none'} open:{_name(bool(d.open))}")
    lines = ["  " + " ".join(parts)]
    if statistics:
        lines.append("      " + _stats((
            ("size", d.size_kib), ("read", d.read_kib), ("written", d.written_kib),
            ("al-writes", d.al_writes), ("bm-writes", d.bm_writes),
            ("upper-pending", d.upper_pending), ("lower-pending", d.lower_pending),
            ("al-suspended", d.al_suspended), ("blocked", d.blocked))))
    return lines


def _connection_lines(st: State, c: Connection, paint: _Paint, verbose: bool,
                      statistics: bool, many: bool) -> list[str]:
    parts = [c.conn_name or f"peer-node-id:{c.peer_node_id}"]
    if verbose:
        parts.append(f"node-id:{c.peer_node_id}")
    connected = c.connection is ConnState.Connected
    if verbose or not connected:
        parts.append(paint("connection", c.connection))
    if verbose or connected:
        parts.append(paint("role", c.peer_role))
    if verbose or c.congested:
        parts.append(f"congested:{_name(bool(c.congested))}")
    lines = ["  " + " ".join(parts)]
    if statistics:
        lines.append("      " + _stats((("ap-in-flight", c.ap_in_flight_sectors),
                                        ("rs-in-flight", c.rs_in_flight_sectors))))
    for p in st.peer_devices_of(c.name, c.peer_node_id):
        if not verbose and not statistics and p.replication in (None, ReplState.Off):
            continue
        lines.extend(_peer_device_lines(p, paint, verbose, statistics, many))
    return lines


def _peer_device_lines(p: PeerDevice, paint: _Paint, verbose: bool, statistics: bool,
                       many: bool) -> list[str]:
    parts = []
    if verbose or many:
        parts.append(f"volume:{p.volume}")
    if verbose or p.replication is not ReplState.Established:
        parts.append(paint("replication", p.replication))
    parts.append(paint("peer-disk", p.peer_disk))
    if verbose or p.peer_client:
        parts.append(f"peer-client:{_name(bool(p.peer_client))}")
    if verbose or p.resync_suspended not in (None, "no"):
        parts.append(f"resync-suspended:{p.resync_suspended or 'no'}")
    if p.syncing and p.done_pct is not None:
        parts.append(f"done:{p.done_pct:.2f}")
    lines = ["    " + " ".join(parts)]
    if statistics:
        lines.append("        " + _stats((
            ("received", p.received_kib), ("sent", p.sent_kib),
            ("out-of-sync", p.out_of_sync_kib), ("pending", p.pending),
            ("unacked", p.unacked))))
    return lines


# ------------------------------------------------------------------- JSON

def _num(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        return v


def _enum_or_none(v: Any) -> Any:
    return v.name if isinstance(v, enum.Enum) else v


def to_json(st: State) -> list[dict[str, Any]]:
    out = []
    for res_name in st.resource_names():
        res = st.resources.get((res_name,)) or Resource(name=res_name)
        out.append({
            "name": res.name,
            "role": _enum_or_none(res.role),
            "suspended": res.suspended,
            "write-ordering": res.write_ordering,
            "devices": [_device_json(d) for d in st.devices_of(res_name)],
            "connections": [_connection_json(st, c) for c in st.connections_of(res_name)],
        })
    return out


def _device_json(d: Device) -> dict[str, Any]:
    return {
        "volume": d.volume, "minor": d.minor, "disk-state": _enum_or_none(d.disk),
        "client": d.client, "backing-dev": d.backing_dev, "open": d.open,
        "size": d.size_kib, "read": d.read_kib, "written": d.written_kib,
        "al-writes": d.al_writes, "bm-writes": d.bm_writes,
        "upper-pending": d.upper_pending, "lower-pending": d.lower_pending,
        "al-suspended": d.al_suspended, "blocked": d.blocked,
        **{k: _num(v) for k, v in d.extra.items()},
    }


def _connection_json(st: State, c: Connection) -> dict[str, Any]:
    return {
        "peer-node-id": c.peer_node_id, "name": c.conn_name,
        "connection-state": _enum_or_none(c.connection), "peer-role": _enum_or_none(c.peer_role),
        "congested": c.congested, "ap-in-flight": c.ap_in_flight_sectors,
        "rs-in-flight": c.rs_in_flight_sectors,
        **{k: _num(v) for k, v in c.extra.items()},
        "peer_devices": [_peer_device_json(p) for p in st.peer_devices_of(c.name, c.peer_node_id)],
    }


def _peer_device_json(p: PeerDevice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "volume": p.volume, "replication-state": _enum_or_none(p.replication),
        "peer-disk-state": _enum_or_none(p.peer_disk), "peer-client": p.peer_client,
        "resync-suspended": p.resync_suspended, "received": p.received_kib,
        "sent": p.sent_kib, "out-of-sync": p.out_of_sync_kib, "pending": p.pending,
        "unacked": p.unacked, "has-sync-details": p.syncing,
    }
    if p.syncing:
        out["percent-in-sync"] = p.done_pct
        out["eta"] = p.eta_s
        out["dbdt1"] = p.dbdt1_mibs
    out.update({k: _num(v) for k, v in p.extra.items()})
    return out


def format_json(st: State) -> str:
    return json.dumps(to_json(st), indent=2) + "\n"


def role_text(st: State, res: str) -> str | None:
    r = st.resources.get((res,))
    return None if r is None else _name(r.role)


def cstate_text(st: State, res: str, peer: int) -> str | None:
    c = st.connections.get((res, str(peer)))
    return None if c is None else _name(c.connection)


def dstate_text(st: State, minor: int) -> str | None:
    for d in st.devices.values():
        if d.minor == minor:
            peers = [p for p in st.peer_devices.values()
                     if p.name == d.name and p.volume == d.volume]
            peers.sort(key=lambda p: p.peer_node_id)
            return "/".join([_name(d.disk)] + [_name(p.peer_disk) for p in peers])
    return None


__all__ = ["load_state", "format_text", "format_json", "to_json", "role_text",
           "cstate_text", "dstate_text"]
