"""Severity rules: normal / warning / alert per object, propagated upward.

Alerts: a disk that is not UpToDate (Diskless is fine for a client), a
connection that is not Connected, Ahead/Behind, an unknown role, suspended
I/O, a split brain.  Warnings: a resync or verify running (or paused), OOS
> 0 while both sides claim UpToDate, congestion, a user-suspended resync.
A local disk that is Inconsistent *because* it is the target of a running
resync is a warning, not an alert: the sync is the cure already under way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bsr.model import (ConnState, Connection, Device, DiskState, PeerDevice, ReplState,
                       Resource, Role)


class Severity(enum.IntEnum):
    normal = 0
    warning = 1
    alert = 2


@dataclass
class Verdict:
    """A severity with the reasons that produced it (most severe first)."""

    severity: Severity = Severity.normal
    reasons: list[str] = field(default_factory=list)

    def add(self, sev: Severity, reason: str) -> None:
        if sev > self.severity:
            self.severity = sev
        if sev is not Severity.normal:
            self.reasons.append(reason)

    def absorb(self, other: "Verdict", prefix: str = "") -> None:
        if not other.reasons and other.severity is Severity.normal:
            return
        if other.severity > self.severity:
            self.severity = other.severity
        self.reasons.extend(prefix + r for r in other.reasons)


SYNC_TARGET_STATES = frozenset({
    ReplState.SyncTarget, ReplState.PausedSyncT, ReplState.StartingSyncT,
    ReplState.WFBitMapT, ReplState.WFSyncUUID,
})
SYNC_SOURCE_STATES = frozenset({
    ReplState.SyncSource, ReplState.PausedSyncS, ReplState.StartingSyncS, ReplState.WFBitMapS,
})
VERIFY_STATES = frozenset({ReplState.VerifyS, ReplState.VerifyT})
SYNCING_STATES = SYNC_TARGET_STATES | SYNC_SOURCE_STATES | VERIFY_STATES


def resource_verdict(res: Resource | None, split_brain: bool = False) -> Verdict:
    v = Verdict()
    if res is None or res.role is None or res.role is Role.Unknown:
        v.add(Severity.alert, "role unknown")
    if res is not None and res.suspended not in (None, "no"):
        v.add(Severity.alert, f"I/O suspended ({res.suspended})")
    if split_brain:
        v.add(Severity.alert, "split brain")
    return v


def device_verdict(dev: Device, being_synced: bool) -> Verdict:
    v = Verdict()
    disk = dev.disk
    if disk is DiskState.UpToDate:
        return v
    if disk is DiskState.Diskless and dev.client:
        return v
    if disk is DiskState.Inconsistent and being_synced:
        v.add(Severity.warning, f"volume {dev.volume} Inconsistent, resync running")
        return v
    v.add(Severity.alert, f"volume {dev.volume} disk {disk.name if disk else 'unknown'}")
    return v


def connection_verdict(conn: Connection) -> Verdict:
    v = Verdict()
    cs = conn.connection
    if cs is not ConnState.Connected:
        v.add(Severity.alert, f"connection {cs.name if cs else 'unknown'}")
        return v
    if conn.peer_role is None or conn.peer_role is Role.Unknown:
        v.add(Severity.alert, "peer role unknown")
    if conn.congested:
        v.add(Severity.warning, "congested")
    return v


def peer_device_verdict(pd: PeerDevice, local_disk: DiskState | None) -> Verdict:
    v = Verdict()
    rs = pd.replication
    vol = f"volume {pd.volume}"
    if rs in (ReplState.Ahead, ReplState.Behind):
        v.add(Severity.alert, f"{vol} {rs.name}")
    elif rs in VERIFY_STATES:
        v.add(Severity.warning, f"{vol} verify running")
    elif rs in SYNCING_STATES:
        paused = rs in (ReplState.PausedSyncS, ReplState.PausedSyncT)
        v.add(Severity.warning, f"{vol} resync {'paused' if paused else 'running'}")
    pdisk = pd.peer_disk
    connected = rs is not None and rs is not ReplState.Off
    if connected and pdisk is not DiskState.UpToDate:
        if pdisk is DiskState.Diskless and pd.peer_client:
            pass
        elif pdisk is DiskState.Inconsistent and rs in SYNC_SOURCE_STATES:
            v.add(Severity.warning, f"{vol} peer Inconsistent, resync running")
        else:
            v.add(Severity.alert, f"{vol} peer disk {pdisk.name if pdisk else 'unknown'}")
    if (pd.out_of_sync_kib or 0) > 0 and rs is ReplState.Established \
            and pdisk is DiskState.UpToDate and local_disk is DiskState.UpToDate:
        v.add(Severity.warning, f"{vol} out of sync {pd.out_of_sync_kib} KiB while UpToDate")
    if pd.resync_suspended not in (None, "no") and rs in SYNCING_STATES:
        v.add(Severity.warning, f"{vol} resync suspended ({pd.resync_suspended})")
    return v
