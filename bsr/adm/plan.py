"""The low-level command lines each bsradm command stands for.

Pure functions from the configuration to argv lists (first word
``bsrsetup`` or ``bsrmeta``); nothing here runs anything, so ``-d`` and the
real run print and execute exactly the same sequence.
"""
from __future__ import annotations

from bsr.config.model import Options, Volume
from bsr.config.schema import SECTIONS, HOST_OPTIONS, Option

from .local import LocalResource, Peer

Argv = list[str]
SETUP = "bsrsetup"
META = "bsrmeta"

_ALL_OPTIONS: dict[str, Option] = {**HOST_OPTIONS, **SECTIONS["net"], **SECTIONS["disk"]}


def opt_args(opts: Options) -> list[str]:
    """``--key=value`` for each option, in schema order."""
    return [_ALL_OPTIONS[k].cli(opts[k]) for k in _ALL_OPTIONS if k in opts]


def meta_args(vol: Volume) -> list[str]:
    """META_DEV META_IDX as bsrsetup attach takes them."""
    if vol.meta_disk == "internal":
        return [vol.disk, "internal"]
    return [vol.meta_disk, "flexible" if vol.meta_index is None else str(vol.meta_index)]


def new_resource(lr: LocalResource) -> Argv:
    return [SETUP, "new-resource", lr.name, str(lr.me.node_id)] + opt_args(lr.res_opts())


def new_minor(lr: LocalResource, vol: Volume) -> Argv:
    return [SETUP, "new-minor", lr.name, str(vol.minor), str(vol.number)]


def attach(lr: LocalResource, vol: Volume) -> Argv:
    return [SETUP, "attach", str(vol.minor), vol.disk] + meta_args(vol) \
        + opt_args(lr.disk_opts(vol))


def new_peer(lr: LocalResource, peer: Peer) -> Argv:
    return [SETUP, "new-peer", lr.name, str(peer.node_id), f"--_name={peer.name}"] \
        + opt_args(lr.net_opts(peer))


def new_path(lr: LocalResource, peer: Peer, local: str, remote: str) -> Argv:
    return [SETUP, "new-path", lr.name, str(peer.node_id), local, remote]


def del_path(lr: LocalResource, peer_id: int, local: str, remote: str) -> Argv:
    return [SETUP, "del-path", lr.name, str(peer_id), local, remote]


def peer_device_options(lr: LocalResource, peer: Peer, vol: Volume,
                        opts: Options | None = None) -> Argv:
    opts = lr.peer_device_opts(peer, vol) if opts is None else opts
    return [SETUP, "peer-device-options", lr.name, str(peer.node_id), str(vol.number)] \
        + opt_args(opts)


def connect(lr: LocalResource, peer: Peer, discard_my_data: bool = False) -> Argv:
    argv = [SETUP, "connect", lr.name, str(peer.node_id)]
    return argv + (["--discard-my-data"] if discard_my_data else [])


def add_peer(lr: LocalResource, peer: Peer, vols: list[Volume] | None = None,
             with_connect: bool = True) -> list[Argv]:
    """new-peer, its paths, peer-device options that differ from defaults, connect."""
    cmds = [new_peer(lr, peer)]
    cmds += [new_path(lr, peer, a.spec(), b.spec()) for a, b in peer.paths]
    for vol in lr.volumes if vols is None else vols:
        if lr.peer_device_opts(peer, vol):
            cmds.append(peer_device_options(lr, peer, vol))
    if with_connect:
        cmds.append(connect(lr, peer))
    return cmds


def add_volume(lr: LocalResource, vol: Volume) -> list[Argv]:
    cmds = [new_minor(lr, vol)]
    if not vol.diskless:
        cmds.append(attach(lr, vol))
    return cmds


def up(lr: LocalResource) -> list[Argv]:
    """new-resource, new-minor(s), attach, new-peer/new-path, connect."""
    cmds = [new_resource(lr)]
    cmds += [new_minor(lr, v) for v in lr.volumes]
    cmds += [attach(lr, v) for v in lr.volumes if not v.diskless]
    for peer in lr.peers:
        cmds += add_peer(lr, peer)
    return cmds


def create_md(lr: LocalResource, vol: Volume, force: bool = False,
              max_peers: int | None = None) -> Argv:
    argv = [META] + (["--force"] if force else []) + [f"--node-id={lr.me.node_id}"]
    argv += [str(vol.minor), "v1", vol.disk]
    if vol.meta_disk == "internal":
        argv.append("internal")
    else:
        argv += meta_args(vol)
    argv += ["create-md", f"--max-peers={max_peers or lr.max_peers()}"]
    al = lr.disk_opts(vol).get("al-extents")
    if al is not None:
        argv.append(f"--al-extents={al}")
    return argv
