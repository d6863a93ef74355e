"""Commands that create, change or delete kernel objects.

:func:`build_request` turns parsed arguments into one netlink request
(:class:`Request`); the entry point sends it.  Objects are addressed the
way DRBD 9 does: resource-level commands by a ``ctx`` naming the resource
(and peer node id / volume / addresses), device-level commands by the
minor in the message header.
"""

from __future__ import annotations

import argparse
import errno
from dataclasses import dataclass, field
from typing import Any

from bsr import abi
from bsr.netlink import BsrError, encode_addr
from bsr.setup.args import UsageError, collect, spec
from bsr.units import parse_value


@dataclass
class Request:
    cmd: str
    label: str  # names the object in error messages: "r0", "minor:3", ...
    minor: int = abi.MINOR_NONE
    structs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _res(ns: argparse.Namespace) -> dict[str, Any]:
    return {"res_name": ns.resource}


def _peer(ns: argparse.Namespace) -> dict[str, Any]:
    return {"res_name": ns.resource, "peer_node_id": ns.peer_node_id}


def _peer_vol(ns: argparse.Namespace) -> dict[str, Any]:
    return {**_peer(ns), "volume": ns.volume}


def _label(ctx: dict[str, Any]) -> str:
    out = ctx["res_name"]
    if "peer_node_id" in ctx:
        out += f" peer-node-id:{ctx['peer_node_id']}"
    if "volume" in ctx:
        out += f" volume:{ctx['volume']}"
    return out


def _opts(ns: argparse.Namespace, group: str) -> dict[str, Any]:
    return collect(ns, group, set_defaults=getattr(ns, "set_defaults", False))


def meta_location(lower: str, meta_dev: str, meta_idx: str) -> tuple[str, int]:
    """``attach`` META_DEV/META_IDX -> (meta_dev, meta_dev_idx)."""
    if meta_dev == "internal":
        return lower, abi.MD_INDEX_INTERNAL
    if meta_idx == "internal":
        return meta_dev, abi.MD_INDEX_INTERNAL
    if meta_idx == "flexible":
        return meta_dev, abi.MD_INDEX_FLEX_EXT
    try:
        idx = int(meta_idx, 10)
    except ValueError:
        raise UsageError(f"attach: META_IDX must be 'flexible', 'internal' or an index, "
                         f"not '{meta_idx}'") from None
    hi = abi.DISK_CONF.field("meta_dev_idx").max
    if not 0 <= idx <= (hi or 0):
        raise UsageError(f"attach: META_IDX {idx} is out of range 0..{hi}")
    return meta_dev, idx


def _sectors(name: str, text: str | None, fld: abi.Field) -> int | None:
    if text is None:
        return None
    try:
        v = parse_value(fld, text)
    except ValueError as e:
        raise UsageError(f"--{name}: {e}") from None
    assert isinstance(v, int)
    return v


def build_request(ns: argparse.Namespace) -> Request:
    """The netlink request of a configuration command (UsageError if invalid)."""
    c = ns.command
    spec(c)  # KeyError for commands that are not configuration commands
    if c == "new-resource":
        opts = {"node_id": ns.node_id, **_opts(ns, "res_opts")}
        return Request("NEW_RESOURCE", ns.resource, structs={"ctx": _res(ns), "res_opts": opts})
    if c == "resource-options":
        return Request("RESOURCE_OPTS", ns.resource,
                       structs={"ctx": _res(ns), "res_opts": _opts(ns, "res_opts")})
    if c in ("del-resource", "down", "secondary"):
        cmd = {"del-resource": "DEL_RESOURCE", "down": "DOWN", "secondary": "SECONDARY"}[c]
        return Request(cmd, ns.resource, structs={"ctx": _res(ns)})
    if c == "primary":
        return Request("PRIMARY", ns.resource,
                       structs={"ctx": _res(ns), "role_parms": {"force": int(ns.force)}})
    if c == "new-minor":
        return Request("NEW_MINOR", ns.resource, ns.minor,
                       {"ctx": {"res_name": ns.resource, "volume": ns.volume},
                        "new_minor_parms": {"minor": ns.minor}})
    if c in _MINOR_ONLY:
        return Request(_MINOR_ONLY[c], f"minor:{ns.minor}", ns.minor)
    if c == "attach":
        meta_dev, idx = meta_location(ns.lower_dev, ns.meta_dev, ns.meta_idx)
        disk = {"backing_dev": ns.lower_dev, "meta_dev": meta_dev, "meta_dev_idx": idx,
                **_opts(ns, "disk_conf")}
        _check_path("LOWER_DEV", ns.lower_dev)
        _check_path("META_DEV", meta_dev)
        return Request("ATTACH", f"minor:{ns.minor}", ns.minor, {"disk_conf": disk})
    if c == "disk-options":
        return Request("DISK_OPTS", f"minor:{ns.minor}", ns.minor,
                       {"disk_conf": _opts(ns, "disk_conf")})
    if c == "detach":
        return Request("DETACH", f"minor:{ns.minor}", ns.minor,
                       {"detach_parms": {"force": int(ns.force)}})
    if c == "resize":
        parms: dict[str, Any] = {"resize_force": int(ns.force)}
        size = _sectors("size", ns.size, abi.DISK_CONF.field("disk_size"))
        if size is not None:
            parms["resize_size"] = size
        return Request("RESIZE", f"minor:{ns.minor}", ns.minor, {"resize_parms": parms})
    if c == "new-current-uuid":
        return Request("NEW_C_UUID", f"minor:{ns.minor}", ns.minor,
                       {"new_c_uuid_parms": {"clear_bm": int(ns.clear_bitmap)}})
    return _peer_request(ns)


_MINOR_ONLY = {
    "del-minor": "DEL_MINOR", "invalidate": "INVALIDATE", "suspend-io": "SUSPEND_IO",
    "resume-io": "RESUME_IO", "outdate": "OUTDATE",
}
_PEER_ONLY = {"del-peer": "DEL_PEER", "forget-peer": "FORGET_PEER"}
_PEER_VOLUME = {
    "stop-verify": "STOP_OV", "invalidate-remote": "INVAL_PEER",
    "pause-sync": "PAUSE_SYNC", "resume-sync": "RESUME_SYNC",
}


# Device-level commands the kernel addresses by resource: the minor is
# looked up in the device list and sent as a ctx (resource + volume).
_BY_RESOURCE = ("SUSPEND_IO", "RESUME_IO")


def resolve_minor(nl: Any, req: Request) -> None:
    """Add the ctx of ``req.minor`` for commands addressed by resource.

    Raises BsrError(ENODEV) when no device has that minor.
    """
    if req.cmd not in _BY_RESOURCE:
        return
    for m in nl.dump("GET_DEVICES"):
        ctx = m.structs.get("ctx", {})
        if m.minor == req.minor and ctx.get("res_name"):
            req.structs["ctx"] = {"res_name": ctx["res_name"], "volume": int(ctx.get("volume", 0))}
            return
    raise BsrError(errno.ENODEV, f"minor {req.minor}: no such device")


def _check_path(what: str, path: str) -> None:
    if not path.startswith("/") or len(path.encode()) >= abi.PATH_LEN:
        raise UsageError(f"attach: {what} must be an absolute device path "
                         f"shorter than {abi.PATH_LEN} bytes, not '{path}'")


def _peer_request(ns: argparse.Namespace) -> Request:
    c = ns.command
    if c == "new-peer":
        ctx = {**_peer(ns), "conn_name": ns._name}
        if not ns._name or len(ns._name.encode()) >= abi.NAME_LEN:
            raise UsageError(f"new-peer: --_name must be 1..{abi.NAME_LEN - 1} bytes")
        return Request("NEW_PEER", _label(_peer(ns)), structs={
            "ctx": ctx, "net_conf": _opts(ns, "net_conf"),
            "new_peer_parms": {"peer_node_id": ns.peer_node_id}})
    if c in _PEER_ONLY:
        return Request(_PEER_ONLY[c], _label(_peer(ns)), structs={"ctx": _peer(ns)})
    if c in ("new-path", "del-path"):
        ctx = {**_peer(ns), "my_addr": encode_addr(ns.local_addr),
               "peer_addr": encode_addr(ns.remote_addr)}
        return Request("NEW_PATH" if c == "new-path" else "DEL_PATH",
                       f"{_label(_peer(ns))} {ns.local_addr} {ns.remote_addr}",
                       structs={"ctx": ctx})
    if c == "net-options":
        return Request("NET_OPTS", _label(_peer(ns)),
                       structs={"ctx": _peer(ns), "net_conf": _opts(ns, "net_conf")})
    if c == "peer-device-options":
        return Request("PEER_DEVICE_OPTS", _label(_peer_vol(ns)), structs={
            "ctx": _peer_vol(ns), "peer_device_conf": _opts(ns, "peer_device_conf")})
    if c == "connect":
        return Request("CONNECT", _label(_peer(ns)), structs={
            "ctx": _peer(ns), "connect_parms": {"discard_my_data": int(ns.discard_my_data)}})
    if c == "disconnect":
        return Request("DISCONNECT", _label(_peer(ns)), structs={
            "ctx": _peer(ns), "disconnect_parms": {"force": int(ns.force)}})
    if c == "verify":
        parms: dict[str, Any] = {}
        sector = abi.DISK_CONF.field("disk_size")  # sectors, with size suffixes
        for name, fname in (("start", "ov_start_sector"), ("stop", "ov_stop_sector")):
            v = _sectors(name, getattr(ns, name), sector)
            if v is not None:
                parms[fname] = v
        return Request("START_OV", _label(_peer_vol(ns)),
                       structs={"ctx": _peer_vol(ns), "start_ov_parms": parms})
    if c in _PEER_VOLUME:
        return Request(_PEER_VOLUME[c], _label(_peer_vol(ns)), structs={"ctx": _peer_vol(ns)})
    raise KeyError(c)
