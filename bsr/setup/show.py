"""``bsrsetup show``: the configuration the kernel has in force.

Source: the ``GET_CONFIG`` dump (one message per resource, device,
connection and peer device) plus the ``GET_PATHS`` dump.  A message is
classified by the struct it carries: ``res_opts`` resource, ``disk_conf``
device (minor in the header; an empty ``backing_dev`` means diskless),
``net_conf`` connection, ``peer_device_conf`` peer device, ``path_info``
path (addresses in the ctx).

``--json`` prints the contract bsradm adjust reads (docs/bsrsetup.md):
option dicts keyed by ``Field.key``, values in ABI base units, enums as
keywords, flags as booleans, sensitive fields omitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bsr import abi
from bsr.netlink import Message, decode_addr
from bsr.setup.args import option_fields
from bsr.setup.events import Netlink
from bsr.units import enum_keyword, format_value


@dataclass
class _Volume:
    volume: int
    minor: int
    disk: dict[str, Any] | None = None


@dataclass
class _Conn:
    peer_node_id: int
    name: str = ""
    net: dict[str, Any] = field(default_factory=dict)
    paths: list[tuple[str, str]] = field(default_factory=list)
    peer_devices: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Res:
    name: str
    node_id: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    volumes: dict[int, _Volume] = field(default_factory=dict)
    conns: dict[int, _Conn] = field(default_factory=dict)


def collect(msgs: list[Message]) -> list[_Res]:
    """Group GET_CONFIG messages by resource."""
    out: dict[str, _Res] = {}
    for m in msgs:
        ctx = m.structs.get("ctx", {})
        name = ctx.get("res_name")
        if not name:
            continue
        res = out.setdefault(name, _Res(name))
        s = m.structs
        if "res_opts" in s:
            res.node_id = s["res_opts"].get("node_id", res.node_id)
            res.options.update(s["res_opts"])
        elif "disk_conf" in s:
            vol = int(ctx.get("volume", 0))
            disk = dict(s["disk_conf"]) if s["disk_conf"].get("backing_dev") else None
            res.volumes[vol] = _Volume(vol, m.minor, disk)
        elif "peer_device_conf" in s:
            _conn(res, ctx).peer_devices[int(ctx.get("volume", 0))] = dict(s["peer_device_conf"])
        elif "net_conf" in s:
            _conn(res, ctx).net.update(s["net_conf"])
        elif "path_info" in s:
            try:
                pair = (decode_addr(bytes(ctx.get("my_addr", b""))),
                        decode_addr(bytes(ctx.get("peer_addr", b""))))
            except ValueError:
                continue
            _conn(res, ctx).paths.append(pair)
    return [out[k] for k in sorted(out)]


def _conn(res: _Res, ctx: dict[str, Any]) -> _Conn:
    pid = int(ctx.get("peer_node_id", 0))
    c = res.conns.setdefault(pid, _Conn(pid))
    if ctx.get("conn_name"):
        c.name = str(ctx["conn_name"])
    return c


def _json_value(f: abi.Field, v: Any) -> Any:
    if f.type == "flag":
        return bool(v)
    if f.enum is not None:
        try:
            return enum_keyword(f.enum(int(v)))
        except ValueError:
            return int(v)
    if f.type == "str":
        return str(v)
    return int(v)


def _options(group: str, values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in option_fields(group):
        if f.flags & abi.SENSITIVE or f.name not in values:
            continue
        out[f.key] = _json_value(f, values[f.name])
    return out


def to_json(resources: list[_Res]) -> list[dict[str, Any]]:
    return [_res_json(r) for r in resources]


def _res_json(r: _Res) -> dict[str, Any]:
    return {
        "resource": r.name,
        "node-id": r.node_id,
        "options": _options("res_opts", r.options),
        "volumes": [_volume_json(r.volumes[v]) for v in sorted(r.volumes)],
        "connections": [_conn_json(r.conns[p]) for p in sorted(r.conns)],
    }


def _volume_json(v: _Volume) -> dict[str, Any]:
    disk = None
    if v.disk is not None:
        idx = int(v.disk.get("meta_dev_idx", abi.MD_INDEX_INTERNAL))
        disk = {
            "backing-dev": v.disk.get("backing_dev"),
            "meta-dev": "internal" if idx == abi.MD_INDEX_INTERNAL else v.disk.get("meta_dev"),
            "meta-dev-idx": idx,
            **_options("disk_conf", v.disk),
        }
    return {"volume": v.volume, "minor": v.minor, "disk": disk}


def _conn_json(c: _Conn) -> dict[str, Any]:
    return {
        "peer-node-id": c.peer_node_id,
        "name": c.name,
        "net": _options("net_conf", c.net),
        "paths": [{"local": lo, "peer": pe} for lo, pe in c.paths],
        "peer-devices": [{"volume": v, "options": _options("peer_device_conf", c.peer_devices[v])}
                         for v in sorted(c.peer_devices)],
    }


# ------------------------------------------------------------------- text

def _text_options(group: str, values: dict[str, Any], show_defaults: bool) -> list[str]:
    lines = []
    for f in option_fields(group):
        if f.flags & abi.SENSITIVE or f.name not in values:
            continue
        v = values[f.name]
        is_default = f.default is not None and _same(f, v, f.default)
        if is_default and not show_defaults:
            continue
        text = format_value(f, v)
        if f.type == "str":
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{f.key:<24}{text};" + ("  # default" if is_default else ""))
    return lines


def _same(f: abi.Field, a: Any, b: Any) -> bool:
    if f.type == "str":
        return str(a) == str(b)
    return int(a) == int(b)


def _block(head: str, body: list[str], indent: int) -> list[str]:
    pad = "    " * indent
    return [f"{pad}{head} {{"] + [f"{pad}    {ln}" for ln in body] + [f"{pad}}}"]


def _addr_words(a: str) -> str:
    af, _, rest = a.partition(":")
    return f"{af} {rest}"


def format_text(resources: list[_Res], *, show_defaults: bool = False) -> str:
    out: list[str] = []
    for r in resources:
        body: list[str] = []
        opts = _text_options("res_opts", r.options, show_defaults)
        if opts:
            body += _block("options", opts, 0)
        host: list[str] = [f"node-id {r.node_id};"]
        for v in sorted(r.volumes):
            host += _block(f"volume {v}", _volume_text(r.volumes[v], show_defaults), 0)
        body += _block("_this_host", host, 0)
        for p in sorted(r.conns):
            body += _block("connection", _conn_text(r.conns[p], show_defaults), 0)
        out += _block(f"resource {r.name}", body, 0)
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def _volume_text(v: _Volume, show_defaults: bool) -> list[str]:
    lines = [f"device minor {v.minor};"]
    if v.disk is None:
        lines.append("disk none;")
        return lines
    lines.append(f'disk "{v.disk.get("backing_dev", "")}";')
    idx = int(v.disk.get("meta_dev_idx", abi.MD_INDEX_INTERNAL))
    if idx == abi.MD_INDEX_INTERNAL:
        lines.append("meta-disk internal;")
    elif idx == abi.MD_INDEX_FLEX_EXT:
        lines.append(f'meta-disk "{v.disk.get("meta_dev", "")}";')
    else:
        lines.append(f'meta-disk "{v.disk.get("meta_dev", "")}" {idx};')
    opts = _text_options("disk_conf", v.disk, show_defaults)
    if opts:
        lines += _block("disk", opts, 0)
    return lines


def _conn_text(c: _Conn, show_defaults: bool) -> list[str]:
    lines = [f"_peer_node_id {c.peer_node_id};"]
    for lo, pe in c.paths:
        lines += _block("path", [f"_this_host {_addr_words(lo)};",
                                 f"_remote_host {_addr_words(pe)};"], 0)
    net = [f'_name "{c.name}";'] + _text_options("net_conf", c.net, show_defaults)
    lines += _block("net", net, 0)
    for v in sorted(c.peer_devices):
        opts = _text_options("peer_device_conf", c.peer_devices[v], show_defaults)
        if opts:
            lines += _block(f"volume {v}", _block("disk", opts, 0), 0)
    return lines


def load(nl: Netlink, resource: str | None) -> list[_Res]:
    ctx = {"ctx": {"res_name": resource}} if resource else {}
    res = collect(nl.dump("GET_CONFIG", **ctx) + nl.dump("GET_PATHS", **ctx))
    if resource:
        res = [r for r in res if r.name == resource]
    return res


def format_json(resources: list[_Res]) -> str:
    return json.dumps(to_json(resources), indent=2) + "\n"
