"""The canonical configuration model: what bsr.conf means once resolved.

Inheritance is already applied: a resource's sections include what it
inherits from ``common``; every host carries all its volumes (resource-level
volume definitions merged with its own); connections are explicit, with
their paths.  Option dicts hold only what the admin set (values in the ABI
base unit); anything absent means the ABI default.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Pos
from .schema import Value

Options = dict[str, Value]


@dataclass(frozen=True)
class Address:
    af: str  # "ipv4" | "ipv6"
    host: str
    port: int

    def spec(self) -> str:
        """``ipv4:1.2.3.4:7789`` / ``ipv6:[fd00::1]:7789`` (bsrsetup, events2)."""
        return f"{self.af}:{self._hostport()}"

    def conf(self) -> str:
        """``ipv4 1.2.3.4:7789`` as written after ``address`` in bsr.conf."""
        return f"{self.af} {self._hostport()}"

    def _hostport(self) -> str:
        h = f"[{self.host}]" if self.af == "ipv6" else self.host
        return f"{h}:{self.port}"


@dataclass
class Volume:
    number: int
    minor: int
    device: str
    disk: str  # backing device, or "none" for a diskless (client) volume
    meta_disk: str  # "internal" or an external device ("" when diskless)
    meta_index: int | None = None  # external: None = flexible, N = index [N]
    disk_opts: Options = field(default_factory=dict)
    pos: Pos | None = None

    @property
    def diskless(self) -> bool:
        return self.disk == "none"


@dataclass
class Host:
    name: str
    node_id: int
    address: Address | None
    volumes: dict[int, Volume] = field(default_factory=dict)
    options: Options = field(default_factory=dict)
    pos: Pos | None = None


@dataclass
class Path:
    addresses: dict[str, Address]  # host name -> address, two entries


@dataclass
class Connection:
    hosts: tuple[str, str]
    paths: list[Path] = field(default_factory=list)
    net: Options = field(default_factory=dict)
    disk: Options = field(default_factory=dict)  # peer-device options
    pos: Pos | None = None

    def peer_of(self, host: str) -> str:
        return self.hosts[1] if self.hosts[0] == host else self.hosts[0]


@dataclass
class Resource:
    name: str
    sections: dict[str, Options] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    pos: Pos | None = None

    def section(self, name: str) -> Options:
        return self.sections.get(name, {})

    def host_for(self, hostname: str) -> Host | None:
        """The ``on`` section for ``hostname`` (exact, else short name)."""
        if hostname in self.hosts:
            return self.hosts[hostname]
        short = hostname.split(".", 1)[0]
        for name, h in self.hosts.items():
            if name.split(".", 1)[0] == short:
                return h
        return None


@dataclass
class Config:
    file: str
    global_opts: Options = field(default_factory=dict)
    common: dict[str, Options] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
