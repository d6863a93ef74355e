"""One resource as this host sees it: its node, volumes and peers.

Option sets are merged in DRBD's order (later wins): resource section
(already merged with ``common``), then host, volume or connection level.
"""
from __future__ import annotations

from dataclasses import dataclass

from bsr.config import ConfigError, Resource
from bsr.config.model import Address, Connection, Host, Options, Volume
from bsr.config.schema import (
    DISK_ONLY, NET_OPTIONS, PEER_DEVICE_OPTIONS, RES_OPTIONS, SVC_AUTO_UP,
)


@dataclass(frozen=True)
class Peer:
    host: Host
    conn: Connection
    paths: tuple[tuple[Address, Address], ...]  # (local, peer)

    @property
    def node_id(self) -> int:
        return self.host.node_id

    @property
    def name(self) -> str:
        return self.host.name


@dataclass(frozen=True)
class LocalResource:
    res: Resource
    me: Host
    only_peer: str | None = None  # RES:PEER on the command line: that peer alone

    @property
    def name(self) -> str:
        return self.res.name

    @property
    def volumes(self) -> list[Volume]:
        return [self.me.volumes[n] for n in sorted(self.me.volumes)]

    def volume(self, number: int) -> Volume:
        if number not in self.me.volumes:
            raise ConfigError(self.res.pos, f"resource '{self.name}' has no volume {number}")
        return self.me.volumes[number]

    @property
    def peers(self) -> list[Peer]:
        out = []
        for conn in self.res.connections:
            if self.me.name not in conn.hosts:
                continue
            peer = self.res.hosts[conn.peer_of(self.me.name)]
            if self.only_peer is not None and peer.name != self.only_peer:
                continue
            paths = tuple((p.addresses[self.me.name], p.addresses[peer.name]) for p in conn.paths)
            out.append(Peer(peer, conn, paths))
        return sorted(out, key=lambda p: p.node_id)

    def res_opts(self) -> Options:
        merged = {**self.res.section("options"), **self.me.options}
        return {k: v for k, v in merged.items() if k in RES_OPTIONS}

    def svc_auto_up(self) -> bool:
        return bool(self.me.options.get(SVC_AUTO_UP.key, SVC_AUTO_UP.default))

    def disk_opts(self, vol: Volume) -> Options:
        merged = {**self.res.section("disk"), **vol.disk_opts}
        return {k: v for k, v in merged.items() if k in DISK_ONLY}

    def net_opts(self, peer: Peer) -> Options:
        merged = {**self.res.section("net"), **peer.conn.net}
        return {k: v for k, v in merged.items() if k in NET_OPTIONS}

    def peer_device_opts(self, peer: Peer, vol: Volume) -> Options:
        merged = {**self.res.section("disk"), **vol.disk_opts, **peer.conn.disk}
        return {k: v for k, v in merged.items() if k in PEER_DEVICE_OPTIONS}

    def max_peers(self) -> int:
        return max(1, len(self.res.hosts) - 1)


def localize(res: Resource, hostname: str) -> LocalResource:
    me = res.host_for(hostname)
    if me is None:
        raise ConfigError(res.pos, f"resource '{res.name}' has no 'on {hostname}' section "
                          "(this host's name; override with --host or BSR_HOSTNAME)")
    return LocalResource(res, me)
