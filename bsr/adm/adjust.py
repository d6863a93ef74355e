"""``bsradm adjust``: bring the running resource in line with bsr.conf.

The running state comes from ``bsrsetup show --json`` (format in
docs/bsradm.md); the result is the list of low-level commands that change
only what differs.  When nothing differs the list is empty, so a second
adjust does nothing.
"""
from __future__ import annotations

from typing import Any

from bsr import abi
from bsr.config.model import Options, Volume
from bsr.config.schema import (
    DISK_ONLY, NET_OPTIONS, PEER_DEVICE_OPTIONS, RES_OPTIONS, Kind, Option,
)

from . import plan
from .local import LocalResource, Peer
from .plan import SETUP, Argv


class ShowFormatError(ValueError):
    """``bsrsetup show --json`` printed something this bsradm cannot read."""


def _norm(opt: Option, value: Any) -> Any:
    if value is None:
        return None
    if opt.kind is Kind.FLAG:
        if isinstance(value, str):
            return opt.parse_text(value)
        return bool(value)
    if opt.kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ShowFormatError(f"'{opt.key}': expected a number, got {value!r}")
        return value if isinstance(value, int) else opt.parse_text(value)
    if opt.kind is Kind.ENUM:
        return str(value)
    return str(value)


def diff_options(want: Options, running: dict[str, Any] | None,
                 table: dict[str, Option], skip: tuple[str, ...] = ()) -> Options:
    """Options whose running value differs from the wanted one (or its default)."""
    running = running or {}
    out: Options = {}
    for key, opt in table.items():
        if opt.sensitive or key in skip:
            continue
        try:
            have = _norm(opt, running.get(key))
        except ValueError as e:
            raise ShowFormatError(str(e)) from None
        if not opt.same(want.get(key), have):
            value = want.get(key, opt.default)
            assert value is not None
            out[key] = value
    return out


def _by(items: list[dict[str, Any]] | None, key: str) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for item in items or []:
        if not isinstance(item, dict) or not isinstance(item.get(key), int):
            raise ShowFormatError(f"expected objects with an integer '{key}'")
        out[item[key]] = item
    return out


def find_running(show: Any, name: str) -> dict[str, Any] | None:
    if not isinstance(show, list):
        raise ShowFormatError("expected a JSON list of resources")
    for res in show:
        if isinstance(res, dict) and res.get("resource") == name:
            return res
    return None


def _same_disk(vol: Volume, disk: dict[str, Any]) -> bool:
    if disk.get("backing-dev") != vol.disk:
        return False
    meta, idx = disk.get("meta-dev"), disk.get("meta-dev-idx")
    if vol.meta_disk == "internal":
        return meta in ("internal", vol.disk) and idx in (abi.MD_INDEX_INTERNAL, None)
    if meta != vol.meta_disk:
        return False
    want = abi.MD_INDEX_FLEX_EXT if vol.meta_index is None else vol.meta_index
    return idx == want


def _volume_cmds(lr: LocalResource, vol: Volume, run: dict[str, Any]) -> list[Argv]:
    cmds: list[Argv] = []
    disk = run.get("disk")
    if disk is not None and not isinstance(disk, dict):
        raise ShowFormatError("'disk' must be null or an object")
    minor = str(vol.minor)
    if vol.diskless:
        if disk is not None:
            cmds.append([SETUP, "detach", minor])
        return cmds
    if disk is None:
        return [plan.attach(lr, vol)]
    if not _same_disk(vol, disk):
        return [[SETUP, "detach", minor], plan.attach(lr, vol)]
    changed = diff_options(lr.disk_opts(vol), disk, DISK_ONLY, skip=("size",))
    if changed:
        cmds.append([SETUP, "disk-options", minor] + plan.opt_args(changed))
    size = diff_options(lr.disk_opts(vol), disk, {"size": DISK_ONLY["size"]})
    if size:
        cmds.append([SETUP, "resize", minor] + plan.opt_args(size))
    return cmds


def _paths(run_conn: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for p in run_conn.get("paths") or []:
        if not isinstance(p, dict):
            raise ShowFormatError("'paths' must hold objects")
        out.add((str(p.get("local")), str(p.get("peer"))))
    return out


def _peer_cmds(lr: LocalResource, peer: Peer, run: dict[str, Any],
               new_vols: set[int]) -> list[Argv]:
    cmds: list[Argv] = []
    pid = peer.node_id
    net = diff_options(lr.net_opts(peer), run.get("net"), NET_OPTIONS)
    if net:
        cmds.append([SETUP, "net-options", lr.name, str(pid)] + plan.opt_args(net))
    want = {(a.spec(), b.spec()) for a, b in peer.paths}
    have = _paths(run)
    for local, remote in sorted(have - want):
        cmds.append(plan.del_path(lr, pid, local, remote))
    for local, remote in sorted(want - have):
        cmds.append(plan.new_path(lr, peer, local, remote))
    pds = _by(run.get("peer-devices"), "volume")
    for vol in lr.volumes:
        if vol.number in new_vols or vol.number not in pds:
            if lr.peer_device_opts(peer, vol):
                cmds.append(plan.peer_device_options(lr, peer, vol))
            continue
        changed = diff_options(lr.peer_device_opts(peer, vol), pds[vol.number].get("options"),
                               PEER_DEVICE_OPTIONS)
        if changed:
            cmds.append(plan.peer_device_options(lr, peer, vol, changed))
    return cmds


def adjust(lr: LocalResource, show: Any) -> list[Argv]:
    """Commands that turn the running resource (from ``show``) into ``lr``."""
    run = find_running(show, lr.name)
    if run is None:
        return plan.up(lr)
    cmds: list[Argv] = []
    res_opts = diff_options(lr.res_opts(), run.get("options"), RES_OPTIONS)
    if res_opts:
        cmds.append([SETUP, "resource-options", lr.name] + plan.opt_args(res_opts))

    run_conns = _by(run.get("connections"), "peer-node-id")
    peers = {p.node_id: p for p in lr.peers}
    for pid in sorted(set(run_conns) - set(peers)):
        cmds.append([SETUP, "del-peer", lr.name, str(pid)])

    run_vols = _by(run.get("volumes"), "volume")
    want_vols = {v.number: v for v in lr.volumes}
    for number in sorted(set(run_vols) - set(want_vols), reverse=True):
        gone = run_vols[number]
        minor = str(gone.get("minor"))
        if gone.get("disk") is not None:
            cmds.append([SETUP, "detach", minor])
        cmds.append([SETUP, "del-minor", minor])
    new_vols: set[int] = set()
    for number, vol in want_vols.items():
        have = run_vols.get(number)
        if have is not None and have.get("minor") != vol.minor:
            cmds.append([SETUP, "detach", str(have.get("minor"))] if have.get("disk") else [])
            cmds.append([SETUP, "del-minor", str(have.get("minor"))])
            have = None
        if have is None:
            new_vols.add(number)
            cmds += plan.add_volume(lr, vol)
        else:
            cmds += _volume_cmds(lr, vol, have)

    for pid, peer in peers.items():
        if pid in run_conns:
            cmds += _peer_cmds(lr, peer, run_conns[pid], new_vols)
        else:
            cmds += plan.add_peer(lr, peer)
    return [c for c in cmds if c]
