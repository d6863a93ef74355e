"""Canonical text of a configuration (what ``bsradm dump`` prints).

Everything inherited is written out where it applies (sections merged with
``common``, volumes in every host, connections and their paths explicit),
options in schema order, values in their canonical spelling.  Parsing the
output and dumping again gives the same text.
"""
from __future__ import annotations

from .model import Config, Connection, Host, Options, Resource, Volume
from .schema import GLOBAL, HOST_OPTIONS, SECTION_ORDER, SECTIONS, Option

INDENT = "    "


def _opts(lines: list[str], depth: int, name: str, values: Options,
          table: dict[str, Option]) -> None:
    if not values:
        return
    pad = INDENT * depth
    lines.append(f"{pad}{name} {{")
    for key, opt in table.items():
        if key in values:
            lines.append(f"{pad}{INDENT}{key} {opt.format(values[key])};")
    lines.append(f"{pad}}}")


def _volume(lines: list[str], depth: int, vol: Volume) -> None:
    pad = INDENT * depth
    lines.append(f"{pad}volume {vol.number} {{")
    lines.append(f"{pad}{INDENT}device {vol.device} minor {vol.minor};")
    lines.append(f"{pad}{INDENT}disk {vol.disk};")
    if not vol.diskless:
        meta = vol.meta_disk
        if vol.meta_index is not None:
            meta += f" [{vol.meta_index}]"
        lines.append(f"{pad}{INDENT}meta-disk {meta};")
    _opts(lines, depth + 1, "disk", vol.disk_opts, SECTIONS["disk"])
    lines.append(f"{pad}}}")


def _host(lines: list[str], host: Host) -> None:
    pad = INDENT
    lines.append(f"{pad}on {host.name} {{")
    lines.append(f"{pad}{INDENT}node-id {host.node_id};")
    if host.address:
        lines.append(f"{pad}{INDENT}address {host.address.conf()};")
    _opts(lines, 2, "options", host.options, HOST_OPTIONS)
    for vol in host.volumes.values():
        _volume(lines, 2, vol)
    lines.append(f"{pad}}}")


def _connection(lines: list[str], conn: Connection) -> None:
    pad = INDENT
    lines.append(f"{pad}connection {{")
    if len(conn.paths) == 1:
        for name in conn.hosts:
            lines.append(f"{pad}{INDENT}host {name} address {conn.paths[0].addresses[name].conf()};")
    else:
        for name in conn.hosts:
            lines.append(f"{pad}{INDENT}host {name};")
        for path in conn.paths:
            lines.append(f"{pad}{INDENT}path {{")
            for name in conn.hosts:
                lines.append(f"{pad}{INDENT * 2}host {name} address {path.addresses[name].conf()};")
            lines.append(f"{pad}{INDENT}}}")
    _opts(lines, 2, "net", conn.net, SECTIONS["net"])
    _opts(lines, 2, "disk", conn.disk, SECTIONS["disk"])
    lines.append(f"{pad}}}")


def dump_resource(res: Resource) -> str:
    lines = [f"resource {res.name} {{"]
    for name in SECTION_ORDER:
        _opts(lines, 1, name, res.section(name), SECTIONS[name])
    for host in res.hosts.values():
        _host(lines, host)
    for conn in res.connections:
        _connection(lines, conn)
    lines.append("}")
    return "\n".join(lines) + "\n"


def dump(cfg: Config, names: list[str] | None = None) -> str:
    """The whole configuration, or only the resources ``names``."""
    parts: list[str] = []
    if names is None:
        head: list[str] = []
        _opts(head, 0, "global", cfg.global_opts, GLOBAL)
        common: list[str] = []
        for name in SECTION_ORDER:
            _opts(common, 1, name, cfg.common.get(name, {}), SECTIONS[name])
        if common:
            head += ["common {"] + common + ["}"]
        if head:
            parts.append("\n".join(head) + "\n")
        names = list(cfg.resources)
    parts.extend(dump_resource(cfg.resources[n]) for n in names)
    return "\n".join(parts)
