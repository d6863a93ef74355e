"""The derived view model: what the screens draw, computed from a Store.

Plain dataclasses, no Textual.  :func:`build_overview` sorts problems
first, applies the ``/`` filter and the problems-only toggle, and computes
progress, speed and ETA (from ``done``/``eta``/``dbdt1`` when the source
gives them, else from the out-of-sync amount over time).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from bsr.model import Connection, Device, PeerDevice, ReplState

from bsrwatch.rates import clamp_pct, eta_seconds
from bsrwatch.severity import (SYNC_TARGET_STATES, SYNCING_STATES, VERIFY_STATES, Severity,
                               Verdict, connection_verdict, device_verdict,
                               peer_device_verdict, resource_verdict)
from bsrwatch.store import Store


@dataclass
class Progress:
    kind: str  # "resync" | "verify"
    percent: float | None
    speed_kib_s: float | None
    eta_s: float | None
    paused: bool = False


@dataclass
class VolumeView:
    volume: int
    minor: int | None
    disk: str
    size_kib: int | None
    client: bool
    verdict: Verdict
    read_kib_s: float | None = None
    write_kib_s: float | None = None


@dataclass
class PeerVolumeView:
    volume: int
    replication: str
    peer_disk: str
    out_of_sync_kib: int | None
    progress: Progress | None
    verdict: Verdict
    sent_kib_s: float | None = None
    received_kib_s: float | None = None


@dataclass
class PeerView:
    peer_node_id: int
    conn_name: str
    connection: str
    peer_role: str
    congested: bool
    in_flight_kib: int | None
    sndbuf_fill: int | None
    sndbuf_size: int | None
    split_brain: bool
    verdict: Verdict
    volumes: list[PeerVolumeView] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.conn_name or f"peer-{self.peer_node_id}"


@dataclass
class ResourceView:
    name: str
    role: str
    verdict: Verdict
    volumes: list[VolumeView] = field(default_factory=list)
    peers: list[PeerView] = field(default_factory=list)

    @property
    def severity(self) -> Severity:
        return self.verdict.severity


@dataclass
class Overview:
    ready: bool
    resources: list[ResourceView]
    total: int
    counts: dict[Severity, int]
    status_text: str
    status_ok: bool
    generation: int


def _name(e: object) -> str:
    return getattr(e, "name", None) or "Unknown"


def _opt_int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def progress_of(pd: PeerDevice, dev: Device | None, store: Store) -> Progress | None:
    rs = pd.replication
    if rs not in SYNCING_STATES:
        return None
    kind = "verify" if rs in VERIFY_STATES else "resync"
    track = store.syncs.get((pd.name, str(pd.peer_node_id), str(pd.volume)))
    pct = pd.done_pct
    if pct is None and track is not None:
        pct = track.percent(pd.out_of_sync_kib)
    if pct is None and kind == "resync" and dev is not None and dev.size_kib and \
            pd.out_of_sync_kib is not None:
        pct = 100.0 * (dev.size_kib - pd.out_of_sync_kib) / dev.size_kib
    speed = pd.dbdt1_mibs * 1024.0 if pd.dbdt1_mibs is not None else None
    if speed is None and track is not None:
        speed = track.speed_kib_s()
    eta: float | None = float(pd.eta_s) if pd.eta_s is not None else None
    if eta is None:
        eta = eta_seconds(pd.out_of_sync_kib, speed)
    paused = rs in (ReplState.PausedSyncS, ReplState.PausedSyncT) or \
        pd.resync_suspended not in (None, "no")
    return Progress(kind, clamp_pct(pct) if pct is not None else None, speed, eta, paused)


def _volume(dev: Device, res: str, syncing_vols: set[int], store: Store) -> VolumeView:
    key = ("device", (res, str(dev.volume)))
    return VolumeView(
        volume=dev.volume, minor=dev.minor, disk=_name(dev.disk), size_kib=dev.size_kib,
        client=bool(dev.client), verdict=device_verdict(dev, dev.volume in syncing_vols),
        read_kib_s=store.rates.rate(key, "read"), write_kib_s=store.rates.rate(key, "written"))


def _peer(conn: Connection, res: str, store: Store, devs: dict[int, Device],
          pds: list[PeerDevice]) -> PeerView:
    sb = (res, conn.peer_node_id) in store.split_brain or (res, -1) in store.split_brain
    inflight = None
    if conn.ap_in_flight_sectors is not None or conn.rs_in_flight_sectors is not None:
        inflight = ((conn.ap_in_flight_sectors or 0) + (conn.rs_in_flight_sectors or 0)) // 2
    v = connection_verdict(conn)
    if sb:
        v.add(Severity.alert, "split brain")
    pv = PeerView(
        peer_node_id=conn.peer_node_id, conn_name=conn.conn_name or "",
        connection=_name(conn.connection), peer_role=_name(conn.peer_role),
        congested=bool(conn.congested), in_flight_kib=inflight,
        sndbuf_fill=_opt_int(conn.extra.get("sndbuf-fill")),
        sndbuf_size=_opt_int(conn.extra.get("sndbuf-size")), split_brain=sb, verdict=v)
    for pd in pds:
        dev = devs.get(pd.volume)
        pdv = peer_device_verdict(pd, dev.disk if dev else None)
        key = ("peer-device", (res, str(pd.peer_node_id), str(pd.volume)))
        pv.volumes.append(PeerVolumeView(
            volume=pd.volume, replication=_name(pd.replication), peer_disk=_name(pd.peer_disk),
            out_of_sync_kib=pd.out_of_sync_kib, progress=progress_of(pd, dev, store),
            verdict=pdv, sent_kib_s=store.rates.rate(key, "sent"),
            received_kib_s=store.rates.rate(key, "received")))
        pv.verdict.absorb(pdv)
    return pv


@dataclass
class _Index:
    """Objects grouped by resource name, built in one pass per view build."""

    devices: dict[str, list[Device]] = field(default_factory=dict)
    connections: dict[str, list[Connection]] = field(default_factory=dict)
    peer_devices: dict[tuple[str, int], list[PeerDevice]] = field(default_factory=dict)
    sync_targets: dict[str, set[int]] = field(default_factory=dict)
    split_brain: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, store: Store) -> "_Index":
        ix = cls()
        st = store.state
        for d in st.devices.values():
            ix.devices.setdefault(d.name, []).append(d)
        for c in st.connections.values():
            ix.connections.setdefault(c.name, []).append(c)
        for p in st.peer_devices.values():
            ix.peer_devices.setdefault((p.name, p.peer_node_id), []).append(p)
            if p.replication in SYNC_TARGET_STATES:
                ix.sync_targets.setdefault(p.name, set()).add(p.volume)
        for lst in ix.devices.values():
            lst.sort(key=lambda d: d.volume)
        for cl in ix.connections.values():
            cl.sort(key=lambda c: c.peer_node_id)
        for pl in ix.peer_devices.values():
            pl.sort(key=lambda p: p.volume)
        ix.split_brain = {k[0] for k in store.split_brain}
        return ix


def build_resource(store: Store, name: str, index: _Index | None = None) -> ResourceView:
    ix = index or _Index.of(store)
    res = store.state.resources.get((name,))
    devs = {d.volume: d for d in ix.devices.get(name, [])}
    v = resource_verdict(res, split_brain=name in ix.split_brain)
    rv = ResourceView(name=name, role=_name(res.role if res else None), verdict=v)
    syncing = ix.sync_targets.get(name, set())
    for dev in devs.values():
        vv = _volume(dev, name, syncing, store)
        rv.volumes.append(vv)
        v.absorb(vv.verdict)
    for conn in ix.connections.get(name, []):
        pv = _peer(conn, name, store, devs, ix.peer_devices.get((name, conn.peer_node_id), []))
        rv.peers.append(pv)
        v.absorb(pv.verdict, prefix=f"{pv.label}: ")
    return rv


def matches(name: str, pattern: str) -> bool:
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern.lower() in name.lower()


class ViewCache:
    """Resource views kept between refreshes; only touched resources are rebuilt."""

    def __init__(self) -> None:
        self.views: dict[str, ResourceView] = {}

    def get(self, store: Store, names: list[str]) -> dict[str, ResourceView]:
        touched = store.take_touched()
        if touched is None:
            self.views.clear()
            stale = names
        else:
            stale = [n for n in names if n in touched or n not in self.views]
        if stale:
            ix = _Index.of(store)
            for n in stale:
                self.views[n] = build_resource(store, n, ix)
        if len(self.views) > len(names):
            keep = set(names)
            for n in [n for n in self.views if n not in keep]:
                del self.views[n]
        return self.views


def build_overview(store: Store, pattern: str = "", problems_only: bool = False,
                   cache: ViewCache | None = None) -> Overview:
    """The overview; with a cache, only resources touched since the last build are rebuilt."""
    counts = {s: 0 for s in Severity}
    rows: list[ResourceView] = []
    names = store.state.resource_names() if store.ready else []
    if cache is not None:
        views = cache.get(store, names)
    else:
        ix = _Index.of(store)
        views = {n: build_resource(store, n, ix) for n in names}
    for name in names:
        rv = views[name]
        counts[rv.severity] += 1
        if problems_only and rv.severity is Severity.normal:
            continue
        if not matches(name, pattern):
            continue
        rows.append(rv)
    rows.sort(key=lambda r: (-r.severity, r.name))
    return Overview(ready=store.ready, resources=rows, total=len(names), counts=counts,
                    status_text=store.status.text, status_ok=store.status.ok,
                    generation=store.generation)
