"""Turn parsed statements into the canonical model, checking everything.

Errors point at the statement or value at fault and say what was expected.
"""
from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field

from bsr import abi

from .errors import ConfigError, Pos
from .lexer import Kind as TokKind
from .model import Address, Config, Connection, Host, Options, Path, Resource, Volume
from .schema import GLOBAL, HOST_OPTIONS, SECTIONS, Option, unknown
from .syntax import Statement, after

_SECTION_KEYWORDS = tuple(SECTIONS)
_VOLUME_KEYWORDS = ("device", "disk", "meta-disk")
_RESOURCE_KEYWORDS = _SECTION_KEYWORDS + ("volume", "on", "connection", "connection-mesh") \
    + _VOLUME_KEYWORDS
_HOST_KEYWORDS = ("node-id", "address", "volume", "options") + _VOLUME_KEYWORDS
_CONNECTION_KEYWORDS = ("host", "path", "net", "disk")
_MESH_KEYWORDS = ("hosts", "net")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$")
_DEV_MINOR = re.compile(r"^/dev/bsr(\d+)$")


def build(statements: list[Statement], file: str) -> Config:
    cfg = Config(file=file)
    seen_global: Statement | None = None
    seen_common: Statement | None = None
    for st in statements:
        if st.name == "global":
            _no_args(st)
            if seen_global:
                _dup(st, seen_global)
            seen_global = st
            cfg.global_opts = _options(_block(st), GLOBAL, "global")
        elif st.name == "common":
            _no_args(st)
            if seen_common:
                _dup(st, seen_common)
            seen_common = st
            cfg.common = _sections(_block(st), _SECTION_KEYWORDS, "common")[0]
        elif st.name == "resource":
            name = _one_name(st, "resource")
            if name in cfg.resources:
                prev = cfg.resources[name].pos
                raise ConfigError(st.args[0].pos, f"resource '{name}' is already defined at {prev}")
            cfg.resources[name] = _resource(st, name, cfg.common)
        else:
            raise ConfigError(st.pos, unknown(st.name, ("global", "common", "resource", "include")))
    _check_minors(cfg)
    return cfg


# -- helpers ---------------------------------------------------------------

def _block(st: Statement) -> list[Statement]:
    if st.block is None:
        raise ConfigError(st.end or st.pos, f"expected '{{' after '{st.head()}'")
    return st.block


def _no_block(st: Statement) -> None:
    if st.block is not None:
        raise ConfigError(st.pos, f"'{st.name}' takes a value, not a '{{ }}' block")


def _no_args(st: Statement) -> None:
    if st.args:
        raise ConfigError(st.args[0].pos, f"expected '{{' after '{st.name}'")


def _dup(st: Statement, prev: Statement) -> None:
    raise ConfigError(st.pos, f"'{st.head()}' is already given at {prev.pos.line}:{prev.pos.col}"
                      + (f" of {prev.pos.file}" if prev.pos.file != st.pos.file else ""))


def _one_name(st: Statement, what: str) -> str:
    if not st.args:
        raise ConfigError(st.end or st.pos, f"expected a name after '{what}'")
    if len(st.args) > 1:
        raise ConfigError(st.args[1].pos, f"expected '{{' after '{what} {st.args[0].text}'")
    tok = st.args[0]
    if not _NAME.match(tok.text) or len(tok.text) >= abi.NAME_LEN:
        raise ConfigError(tok.pos, f"bad {what} name '{tok.text}': expected letters, digits, "
                          f"'_', '-', '.' (at most {abi.NAME_LEN - 1} characters)")
    return tok.text


def _values(st: Statement, count: int, expected: str) -> list[str]:
    """Exactly ``count`` arguments, else an error saying what was expected."""
    _no_block(st)
    if len(st.args) < count:
        raise ConfigError(st.end or st.pos, f"expected {expected}")
    if len(st.args) > count:
        shown = " ".join([st.name] + [a.text for a in st.args[:count]])
        raise ConfigError(after(st.args[count - 1] if count else st.keyword),
                          f"expected ';' after '{shown}'")
    return [a.text for a in st.args]


def _int(st: Statement, idx: int, what: str, lo: int, hi: int) -> int:
    tok = st.args[idx]
    if tok.kind is TokKind.WORD and tok.text.isdigit():
        value = int(tok.text)
        if lo <= value <= hi:
            return value
        raise ConfigError(tok.pos, f"{what} {value} is out of range: allowed {lo}..{hi}")
    raise ConfigError(tok.pos, f"expected {what} (a number {lo}..{hi}), not '{tok.text}'")


def _options(block: list[Statement], table: dict[str, Option], where: str,
             into: Options | None = None) -> Options:
    out: Options = dict(into or {})
    seen: dict[str, Statement] = {}
    for st in block:
        opt = table.get(st.name)
        if opt is None:
            raise ConfigError(st.pos, unknown(st.name, table, where))
        _no_block(st)
        if st.name in seen:
            _dup(st, seen[st.name])
        seen[st.name] = st
        out[st.name] = opt.parse(st)
    return out


def _sections(block: list[Statement], allowed: tuple[str, ...], where: str,
              inherited: dict[str, Options] | None = None
              ) -> tuple[dict[str, Options], list[Statement]]:
    """Read option sections; return them and the statements that are not sections."""
    out = {k: dict(v) for k, v in (inherited or {}).items()}
    seen: dict[str, Statement] = {}
    rest: list[Statement] = []
    for st in block:
        if st.name in allowed and st.block is None and st.name not in _VOLUME_KEYWORDS:
            raise ConfigError(st.end or st.pos, f"expected '{{' after '{st.head()}'")
        if st.name in SECTIONS and st.block is not None and st.name in allowed:
            _no_args(st)
            if st.name in seen:
                _dup(st, seen[st.name])
            seen[st.name] = st
            out[st.name] = _options(st.block, SECTIONS[st.name], st.name, out.get(st.name))
        else:
            rest.append(st)
    if where == "common":
        for st in rest:
            raise ConfigError(st.pos, unknown(st.name, allowed, "common"))
    return out, rest


# -- volumes ---------------------------------------------------------------

@dataclass
class _VolumeDraft:
    """Volume fields as written at one level; merged into hosts later."""
    number: int
    pos: Pos
    device: str | None = None
    minor: int | None = None
    disk: str | None = None
    meta_disk: str | None = None
    meta_index: int | None = None
    meta_set: bool = False
    disk_opts: Options = field(default_factory=dict)
    seen: dict[str, Statement] = field(default_factory=dict)

    def take(self, st: Statement) -> bool:
        """Apply a device/disk/meta-disk statement; False if not one of those."""
        if st.name == "disk" and st.block is not None:
            _no_args(st)
            if "disk{}" in self.seen:
                _dup(st, self.seen["disk{}"])
            self.seen["disk{}"] = st
            self.disk_opts = _options(st.block, SECTIONS["disk"], "disk", self.disk_opts)
            return True
        if st.name not in _VOLUME_KEYWORDS:
            return False
        if st.name in self.seen:
            _dup(st, self.seen[st.name])
        self.seen[st.name] = st
        if st.name == "device":
            self._device(st)
        elif st.name == "disk":
            self.disk = _values(st, 1, "a backing device path or 'none' after 'disk'")[0]
            _check_path(st, self.disk, allow_none=True)
        else:
            self._meta(st)
        return True

    def _device(self, st: Statement) -> None:
        _no_block(st)
        words = [a.text for a in st.args]
        if len(words) == 2 and words[0] == "minor":
            self.minor = _int(st, 1, "minor", 0, abi.MAX_MINORS - 1)
            return
        if len(words) == 3 and words[1] == "minor":
            self.minor = _int(st, 2, "minor", 0, abi.MAX_MINORS - 1)
        elif len(words) != 1:
            at = st.args[3].pos if len(words) > 3 else (st.end or st.pos)
            raise ConfigError(at, "expected 'device /dev/bsrN;', 'device DEV minor N;' "
                              "or 'device minor N;'")
        self.device = words[0]
        _check_path(st, self.device)
        m = _DEV_MINOR.match(self.device)
        if self.minor is None:
            if not m:
                raise ConfigError(st.args[0].pos, f"cannot tell the minor of '{self.device}': "
                                  f"write 'device {self.device} minor N;'")
            self.minor = int(m.group(1))
            if self.minor >= abi.MAX_MINORS:
                raise ConfigError(st.args[0].pos, f"minor {self.minor} is out of range: "
                                  f"allowed 0..{abi.MAX_MINORS - 1}")

    def _meta(self, st: Statement) -> None:
        _no_block(st)
        words = [a.text for a in st.args]
        self.meta_set = True
        if words == ["internal"]:
            self.meta_disk, self.meta_index = "internal", None
            return
        if len(words) == 1:
            m = re.match(r"^(/[^\[\]]+)\[(\d+)\]$", words[0])
            if m:
                self.meta_disk, self.meta_index = m.group(1), int(m.group(2))
            else:
                self.meta_disk, self.meta_index = words[0], None
        elif len(words) == 2 and re.match(r"^\[\d+\]$", words[1]):
            self.meta_disk, self.meta_index = words[0], int(words[1][1:-1])
        elif len(words) == 2 and words[1] == "flexible":
            self.meta_disk, self.meta_index = words[0], None
        else:
            at = st.args[1].pos if len(words) > 1 else (st.end or st.pos)
            raise ConfigError(at, "expected 'meta-disk internal;', 'meta-disk DEV;' "
                              "or 'meta-disk DEV [INDEX];'")
        _check_path(st, self.meta_disk)
        if self.meta_index is not None and self.meta_index > 255:
            raise ConfigError(st.args[-1].pos, f"meta-disk index {self.meta_index} is out of "
                              "range: allowed 0..255")


def _check_path(st: Statement, path: str, allow_none: bool = False) -> None:
    if allow_none and path == "none":
        return
    if not path.startswith("/") or len(path.encode()) >= abi.PATH_LEN:
        raise ConfigError(st.args[0].pos, f"expected an absolute device path "
                          f"(shorter than {abi.PATH_LEN} bytes), not '{path}'")


def _volume_block(st: Statement) -> _VolumeDraft:
    _block(st)
    if len(st.args) != 1:
        at = st.args[1].pos if len(st.args) > 1 else st.pos
        raise ConfigError(at, "expected 'volume N {'")
    draft = _VolumeDraft(_int(st, 0, "volume number", 0, abi.MAX_VOLUMES - 1), st.pos)
    for sub in st.block or []:
        if not draft.take(sub):
            raise ConfigError(sub.pos, unknown(sub.name, _VOLUME_KEYWORDS, "volume"))
    return draft


def _collect_volumes(block: list[Statement], where: str, allowed: tuple[str, ...]
                     ) -> tuple[dict[int, _VolumeDraft], list[Statement]]:
    """Volumes of a resource or host; bare device/disk/meta-disk form volume 0."""
    vols: dict[int, _VolumeDraft] = {}
    implicit: _VolumeDraft | None = None
    rest: list[Statement] = []
    for st in block:
        if st.name == "volume":
            d = _volume_block(st)
            if d.number in vols:
                raise ConfigError(st.args[0].pos, f"volume {d.number} is already defined at "
                                  f"{vols[d.number].pos.line}:{vols[d.number].pos.col}")
            vols[d.number] = d
        elif st.name in _VOLUME_KEYWORDS and not (st.name == "disk" and st.block is not None):
            if implicit is None:
                implicit = _VolumeDraft(0, st.pos)
            implicit.take(st)
        else:
            rest.append(st)
    if implicit is not None:
        if vols:
            raise ConfigError(implicit.pos, f"'{where}' mixes 'volume N {{...}}' blocks with "
                              "device/disk/meta-disk outside a volume")
        vols[0] = implicit
    return vols, rest


def _merge_volume(base: _VolumeDraft | None, own: _VolumeDraft | None, host: str,
                  res: str) -> Volume:
    parts = [d for d in (base, own) if d is not None]
    get = lambda attr: next((getattr(d, attr) for d in reversed(parts)  # noqa: E731
                             if getattr(d, attr) is not None), None)
    pos = parts[-1].pos
    number = parts[0].number
    minor, device, disk = get("minor"), get("device"), get("disk")
    meta_src = next((d for d in reversed(parts) if d.meta_set), None)
    where = f"resource '{res}', host '{host}', volume {number}"
    if minor is None:
        raise ConfigError(pos, f"{where}: no device: expected 'device /dev/bsrN;' "
                          "or 'device minor N;'")
    if disk is None:
        raise ConfigError(pos, f"{where}: no disk: expected 'disk /dev/...;' or 'disk none;'")
    if meta_src is None and disk != "none":
        raise ConfigError(pos, f"{where}: no meta-disk: expected 'meta-disk internal;' "
                          "or 'meta-disk DEV;'")
    opts: Options = {}
    for d in parts:
        opts.update(d.disk_opts)
    return Volume(
        number=number, minor=minor, device=device or f"/dev/bsr{minor}", disk=disk,
        meta_disk=meta_src.meta_disk if meta_src and meta_src.meta_disk else "",
        meta_index=meta_src.meta_index if meta_src else None,
        disk_opts=opts, pos=pos)


# -- hosts and addresses ---------------------------------------------------

def parse_address(st: Statement, first: int) -> tuple[Address, int]:
    """``[ipv4|ipv6] ADDR:PORT`` at argument ``first``; (address, index after it)."""
    args = st.args[first:]
    if args and args[0].text in ("ipv4", "ipv6"):
        af, args = args[0].text, args[1:]
    else:
        af = ""
    if not args:
        raise ConfigError(st.end or st.pos, "expected an address: [ipv4|ipv6] ADDR:PORT")
    tok = args[0]
    text = tok.text
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:\[\]]+):(\d+)$", text)
    if not m:
        raise ConfigError(tok.pos, f"bad address '{text}': expected ADDR:PORT "
                          "(IPv6 as [ADDR]:PORT)")
    host, port = m.group(1), int(m.group(2))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(tok.pos, f"bad address '{host}': expected an IPv4 or IPv6 "
                          "address") from None
    real_af = "ipv4" if ip.version == 4 else "ipv6"
    if af and af != real_af:
        raise ConfigError(tok.pos, f"'{host}' is not an {af} address")
    if not 1 <= port <= 65535:
        raise ConfigError(tok.pos, f"port {port} is out of range: allowed 1..65535")
    return Address(real_af, str(ip), port), first + (2 if af else 1)


@dataclass
class _HostDraft:
    name: str
    pos: Pos
    node_id: int | None = None
    address: Address | None = None
    options: Options = field(default_factory=dict)
    volumes: dict[int, _VolumeDraft] = field(default_factory=dict)


def _host(st: Statement, res_opts: Options) -> _HostDraft:
    name = _one_name(st, "on")
    draft = _HostDraft(name, st.args[0].pos)
    vols, rest = _collect_volumes(_block(st), f"on {name}", _HOST_KEYWORDS)
    draft.volumes = vols
    seen: dict[str, Statement] = {}
    for sub in rest:
        if sub.name not in _HOST_KEYWORDS:
            raise ConfigError(sub.pos, unknown(sub.name, _HOST_KEYWORDS, f"on {name}"))
        if sub.name in seen:
            _dup(sub, seen[sub.name])
        seen[sub.name] = sub
        if sub.name == "node-id":
            _values(sub, 1, "a node id after 'node-id'")
            draft.node_id = _int(sub, 0, "node-id", 0, abi.MAX_PEERS)
        elif sub.name == "address":
            _no_block(sub)
            draft.address, used = parse_address(sub, 0)
            if len(sub.args) > used:
                shown = " ".join(["address"] + [a.text for a in sub.args[:used]])
                raise ConfigError(after(sub.args[used - 1]), f"expected ';' after '{shown}'")
        elif sub.name == "options":
            _no_args(sub)
            draft.options = _options(_block(sub), HOST_OPTIONS, f"on {name} options")
    if draft.node_id is None:
        raise ConfigError(draft.pos, f"host '{name}' has no node-id: expected 'node-id N;'")
    return draft


# -- connections -----------------------------------------------------------

@dataclass
class _ConnDraft:
    pos: Pos
    hosts: list[tuple[str, Pos, Address | None, int | None]] = field(default_factory=list)
    paths: list[list[tuple[str, Pos, Address | None, int | None]]] = field(default_factory=list)
    net: Options = field(default_factory=dict)
    disk: Options = field(default_factory=dict)


def _host_ref(st: Statement) -> tuple[str, Pos, Address | None, int | None]:
    """``host NAME [address [AF] A:P] [port P];``"""
    _no_block(st)
    if not st.args:
        raise ConfigError(st.end or st.pos, "expected a host name after 'host'")
    name = st.args[0].text
    addr: Address | None = None
    port: int | None = None
    i = 1
    while i < len(st.args):
        word = st.args[i].text
        if word == "address":
            addr, i = parse_address(st, i + 1)
        elif word == "port" and i + 1 < len(st.args):
            port = _int(st, i + 1, "port", 1, 65535)
            i += 2
        else:
            raise ConfigError(st.args[i].pos, f"expected 'address', 'port' or ';' after "
                              f"'{' '.join(a.text for a in st.args[:i])}', not '{word}'")
    return name, st.args[0].pos, addr, port


def _connection(st: Statement) -> _ConnDraft:
    if st.args:
        raise ConfigError(st.args[0].pos, "expected '{' after 'connection'")
    draft = _ConnDraft(st.pos)
    sections, rest = _sections(_block(st), ("net", "disk"), "connection")
    draft.net, draft.disk = sections.get("net", {}), sections.get("disk", {})
    for sub in rest:
        if sub.name == "host":
            draft.hosts.append(_host_ref(sub))
        elif sub.name == "path":
            _no_args(sub)
            refs = []
            for h in _block(sub):
                if h.name != "host":
                    raise ConfigError(h.pos, unknown(h.name, ("host",), "path"))
                refs.append(_host_ref(h))
            if len(refs) != 2:
                raise ConfigError(sub.pos, f"a path names exactly two hosts, found {len(refs)}")
            draft.paths.append(refs)
        else:
            raise ConfigError(sub.pos, unknown(sub.name, _CONNECTION_KEYWORDS, "connection"))
    if not draft.hosts and draft.paths:
        draft.hosts = [(n, p, None, None) for n, p, _, _ in draft.paths[0]]
    if len(draft.hosts) != 2:
        raise ConfigError(st.pos, f"a connection names exactly two hosts "
                          f"('host A; host B;'), found {len(draft.hosts)}")
    return draft


def _mesh(st: Statement) -> tuple[list[tuple[str, Pos]], Options, Pos]:
    if st.args:
        raise ConfigError(st.args[0].pos, "expected '{' after 'connection-mesh'")
    sections, rest = _sections(_block(st), ("net",), "connection-mesh")
    hosts: list[tuple[str, Pos]] = []
    for sub in rest:
        if sub.name != "hosts":
            raise ConfigError(sub.pos, unknown(sub.name, _MESH_KEYWORDS, "connection-mesh"))
        _no_block(sub)
        if len(sub.args) < 2:
            raise ConfigError(sub.end or sub.pos, "expected at least two host names after 'hosts'")
        hosts.extend((a.text, a.pos) for a in sub.args)
    if not hosts:
        raise ConfigError(st.pos, "connection-mesh needs 'hosts A B ...;'")
    return hosts, sections.get("net", {}), st.pos


# -- resource --------------------------------------------------------------

def _resource(st: Statement, name: str, common: dict[str, Options]) -> Resource:
    res = Resource(name=name, pos=st.args[0].pos)
    sections, rest = _sections(_block(st), _SECTION_KEYWORDS, "resource", common)
    res.sections = sections
    res_vols, rest = _collect_volumes(rest, f"resource {name}", _RESOURCE_KEYWORDS)
    hosts: dict[str, _HostDraft] = {}
    conns: list[_ConnDraft] = []
    meshes = []
    for sub in rest:
        if sub.name == "on":
            h = _host(sub, res.section("options"))
            if h.name in hosts:
                raise ConfigError(h.pos, f"host '{h.name}' is already defined at "
                                  f"{hosts[h.name].pos.line}:{hosts[h.name].pos.col}")
            hosts[h.name] = h
        elif sub.name == "connection":
            conns.append(_connection(sub))
        elif sub.name == "connection-mesh":
            meshes.append(_mesh(sub))
        else:
            raise ConfigError(sub.pos, unknown(sub.name, _RESOURCE_KEYWORDS, f"resource {name}"))
    if not hosts:
        raise ConfigError(st.end or st.pos, f"resource '{name}' has no 'on HOST {{...}}' section")
    _check_node_ids(hosts)
    for h in hosts.values():
        numbers = sorted(set(res_vols) | set(h.volumes))
        vols = {n: _merge_volume(res_vols.get(n), h.volumes.get(n), h.name, name) for n in numbers}
        res.hosts[h.name] = Host(h.name, h.node_id or 0, h.address, vols, h.options, h.pos)
    res.connections = _connections(res, hosts, conns, meshes)
    return res


def _check_node_ids(hosts: dict[str, _HostDraft]) -> None:
    seen: dict[int, _HostDraft] = {}
    for h in hosts.values():
        assert h.node_id is not None
        if h.node_id in seen:
            other = seen[h.node_id]
            raise ConfigError(h.pos, f"node-id {h.node_id} of host '{h.name}' is already used "
                              f"by host '{other.name}' at {other.pos.line}:{other.pos.col}")
        seen[h.node_id] = h


def _resolve_ref(ref, hosts: dict[str, _HostDraft]) -> tuple[str, Address]:
    name, pos, addr, port = ref
    if name not in hosts:
        raise ConfigError(pos, unknown(name, hosts, what="host")
                          + " (expected a host with an 'on' section)")
    addr = addr or hosts[name].address
    if addr is None:
        raise ConfigError(pos, f"host '{name}' has no address: give 'address ADDR:PORT;' "
                          f"in 'on {name}' or 'host {name} address ADDR:PORT;' here")
    if port is not None:
        addr = Address(addr.af, addr.host, port)
    return name, addr


def _connections(res: Resource, hosts: dict[str, _HostDraft], conns: list[_ConnDraft],
                 meshes) -> list[Connection]:
    out: list[Connection] = []
    pairs: dict[frozenset[str], Pos] = {}

    def add(conn: Connection) -> None:
        a, b = conn.hosts
        if a == b:
            raise ConfigError(conn.pos, f"a connection needs two different hosts, not '{a}' twice")
        key = frozenset(conn.hosts)
        if key in pairs:
            prev = pairs[key]
            raise ConfigError(conn.pos, f"hosts '{a}' and '{b}' are already connected at "
                              f"{prev.line}:{prev.col}")
        pairs[key] = conn.pos or res.pos
        out.append(conn)

    for d in conns:
        refs = [_resolve_ref(r, hosts) for r in d.hosts]
        names = (refs[0][0], refs[1][0])
        if d.paths:
            paths = []
            for p in d.paths:
                resolved = dict(_resolve_ref(r, hosts) for r in p)
                if set(resolved) != set(names):
                    raise ConfigError(p[0][1], f"a path must name the connection's hosts "
                                      f"'{names[0]}' and '{names[1]}'")
                paths.append(Path(resolved))
        else:
            paths = [Path(dict(refs))]
        add(Connection(names, paths, d.net, d.disk, d.pos))
    for mesh_hosts, net, pos in meshes:
        for (a, pa), (b, pb) in itertools.combinations(mesh_hosts, 2):
            ra, rb = _resolve_ref((a, pa, None, None), hosts), _resolve_ref((b, pb, None, None), hosts)
            add(Connection((a, b), [Path(dict([ra, rb]))], dict(net), {}, pos))
    if not conns and not meshes:
        for a, b in itertools.combinations(hosts, 2):
            ra = _resolve_ref((a, hosts[a].pos, None, None), hosts)
            rb = _resolve_ref((b, hosts[b].pos, None, None), hosts)
            add(Connection((a, b), [Path(dict([ra, rb]))], {}, {}, res.pos))
    return out


def _check_minors(cfg: Config) -> None:
    """A minor belongs to one volume of one resource on a given host."""
    seen: dict[tuple[str, int], tuple[str, int, Pos | None]] = {}
    for res in cfg.resources.values():
        for host in res.hosts.values():
            for vol in host.volumes.values():
                key = (host.name, vol.minor)
                if key in seen:
                    other_res, other_vol, pos = seen[key]
                    raise ConfigError(vol.pos, f"minor {vol.minor} on host '{host.name}' is "
                                      f"already used by resource '{other_res}' volume "
                                      f"{other_vol}" + (f" at {pos}" if pos else ""))
                seen[key] = (res.name, vol.number, vol.pos)
