"""The bsrsetup command line (drbdsetup 9 grammar; the contract with bsradm).

Options are spelled as the config keywords (``Field.key`` of :mod:`bsr.abi`)
and take the same values as bsr.conf (see :mod:`bsr.units`).  Every parse
error raises :class:`UsageError`, which the entry point turns into exit
code 20 — never argparse's exit code 2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from bsr import abi
from bsr.units import INT_NAMES, enum_keyword, format_value, parse_value

PROG = "bsrsetup"


class UsageError(Exception):
    """Bad command line; the message is printed after ``bsrsetup: ``."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sub = self.prog.removeprefix(PROG).strip()
        raise UsageError(f"{sub}: {message}" if sub else message)


# Option groups a command can take: (abi struct, fields that are not options)
OPTION_GROUPS: dict[str, tuple[abi.Struct, tuple[str, ...]]] = {
    "res_opts": (abi.RES_OPTS, ("node_id",)),
    "disk_conf": (abi.DISK_CONF, ("backing_dev", "meta_dev", "meta_dev_idx")),
    "net_conf": (abi.NET_CONF, ()),
    "peer_device_conf": (abi.PEER_DEVICE_CONF, ()),
}
_GROUP_TITLES = {
    "res_opts": "resource options",
    "disk_conf": "disk options",
    "net_conf": "net options",
    "peer_device_conf": "peer-device options",
}


def option_fields(group: str) -> list[abi.Field]:
    struct, skip = OPTION_GROUPS[group]
    return [f for f in struct.fields if f.name not in skip]


def _dest(group: str, f: abi.Field) -> str:
    return f"opt__{group}__{f.name}"


def _option_help(f: abi.Field) -> str:
    parts = [f.doc] if f.doc else []
    if f.type == "flag":
        parts.append("yes|no")
    elif f.enum is not None:
        parts.append("|".join(enum_keyword(m) for m in f.enum))
    elif f.type == "str":
        parts.append(f"text, at most {f.maxlen - 1} bytes")
    else:
        unit = {"sectors": "512-byte sectors; k/M/G/T suffixes are bytes",
                "bytes": "bytes; k/M/G/T suffixes",
                "KiB/s": "KiB/s; k/M/G suffixes",
                "ds": "tenths of a second", "s": "seconds"}.get(f.unit, f.unit)
        rng = f"{'' if f.min is None else f.min}..{'' if f.max is None else f.max}"
        names = INT_NAMES.get(f.name)
        parts.append(f"{unit + ', ' if unit else ''}range {rng}"
                     + (f" or {'|'.join(names)}" if names else ""))
    if f.flags & abi.SENSITIVE:
        parts.append("never shown")
    if f.default is not None and not (f.type == "str" and f.default == ""):
        parts.append(f"default {format_value(f, f.default)}")
    return "; ".join(p for p in parts if p).replace("%", "%%")


def add_options(p: argparse.ArgumentParser, group: str) -> None:
    g = p.add_argument_group(_GROUP_TITLES[group])
    for f in option_fields(group):
        kw: dict[str, Any] = {"dest": _dest(group, f), "default": None,
                              "help": _option_help(f), "metavar": "VALUE"}
        if f.type == "flag":
            kw.update(nargs="?", const="yes", metavar="yes|no")
        g.add_argument(f"--{f.key}", **kw)


def collect(ns: argparse.Namespace, group: str, *, set_defaults: bool = False) -> dict[str, Any]:
    """Wire values of the options given for ``group`` (UsageError on bad values)."""
    out: dict[str, Any] = {}
    for f in option_fields(group):
        text = getattr(ns, _dest(group, f), None)
        if text is None:
            if set_defaults and f.default is not None:
                out[f.name] = int(f.default) if not isinstance(f.default, str) else f.default
            continue
        try:
            out[f.name] = parse_value(f, text)
        except ValueError as e:
            raise UsageError(f"--{f.key}: {e}") from None
    return out


# -------------------------------------------------------------- positionals

def _uint(name: str, hi: int) -> Callable[[str], int]:
    def conv(text: str) -> int:
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, not '{text}'") from None
        if not 0 <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} {v} is out of range 0..{hi}")
        return v
    conv.__name__ = name
    return conv


def _name(text: str) -> str:
    if not text or len(text.encode()) >= abi.NAME_LEN or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a valid name (1..{abi.NAME_LEN - 1} bytes, no blanks)")
    return text


def _addr(text: str) -> str:
    from bsr.netlink import encode_addr
    try:
        encode_addr(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{e}; expected ipv4:ADDR:PORT or ipv6:[ADDR]:PORT") from None
    return text


RES = ("resource", _name, "RES", "resource name")
NODE_ID = ("node_id", _uint("NODE_ID", abi.MAX_PEERS), "NODE_ID", "this node's id (0..31)")
PEER = ("peer_node_id", _uint("PEER_NODE_ID", abi.MAX_PEERS), "PEER_NODE_ID",
        "node id of the peer (0..31)")
MINOR = ("minor", _uint("MINOR", abi.MAX_MINORS - 1), "MINOR", "device minor number (/dev/bsrMINOR)")
VOLUME = ("volume", _uint("VOLUME", abi.MAX_VOLUMES - 1), "VOLUME", "volume number in the resource")
LOCAL = ("local_addr", _addr, "LOCAL_ADDR", "local address, ipv4:1.2.3.4:7789 or ipv6:[fd00::1]:7789")
REMOTE = ("remote_addr", _addr, "REMOTE_ADDR", "the peer's address, same syntax")


@dataclass(frozen=True)
class Spec:
    name: str
    summary: str
    description: str
    positionals: tuple[tuple[str, Callable[[str], Any], str, str], ...] = ()
    groups: tuple[str, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()  # (--flag, help)
    set_defaults: bool = False  # *-options commands: --set-defaults


def _spec(name: str, summary: str, description: str, *positionals: Any,
          groups: tuple[str, ...] = (), flags: tuple[tuple[str, str], ...] = (),
          set_defaults: bool = False) -> Spec:
    return Spec(name, summary, description, tuple(positionals), groups, flags, set_defaults)


FORCE = ("--force", "")
SPECS: tuple[Spec, ...] = (
    _spec("new-resource", "create a resource",
          "Create resource RES in the kernel with this node as NODE_ID.  The "
          "resource has no volumes or connections yet.", RES, NODE_ID, groups=("res_opts",)),
    _spec("resource-options", "change resource options",
          "Change the options of RES.  Options not given keep their value, "
          "unless --set-defaults is given.", RES, groups=("res_opts",), set_defaults=True),
    _spec("new-minor", "create a device",
          "Create device /dev/bsrMINOR as volume VOLUME of RES.  The device "
          "is diskless until attach.", RES, MINOR, VOLUME),
    _spec("del-minor", "delete a device",
          "Delete the (detached, unused) device MINOR.", MINOR),
    _spec("del-resource", "delete a resource",
          "Delete RES; it must have no devices and no connections left.", RES),
    _spec("down", "take a resource down",
          "Disconnect all peers, detach all disks, delete all devices and then "
          "the resource itself.", RES),
    _spec("attach", "attach a backing disk",
          "Attach LOWER_DEV as the backing disk of MINOR with its metadata on "
          "META_DEV.  META_DEV 'internal' keeps the metadata at the end of "
          "LOWER_DEV (META_IDX is then ignored); otherwise META_IDX is "
          "'flexible' or an index.",
          MINOR,
          ("lower_dev", str, "LOWER_DEV", "backing block device"),
          ("meta_dev", str, "META_DEV", "'internal' or the metadata block device"),
          ("meta_idx", str, "META_IDX", "'flexible', 'internal' or an index"),
          groups=("disk_conf",)),
    _spec("disk-options", "change disk options",
          "Change the disk options of the attached device MINOR.  Options not "
          "given keep their value, unless --set-defaults is given.",
          MINOR, groups=("disk_conf",), set_defaults=True),
    _spec("detach", "detach the backing disk",
          "Detach the backing disk of MINOR; the device becomes Diskless.  "
          "--force detaches at once, failing outstanding I/O.",
          MINOR, flags=(("--force", "do not wait for outstanding I/O"),)),
    _spec("resize", "resize a device",
          "Re-examine the size of the backing disk of MINOR (or use --size).",
          MINOR, flags=(("--size", "new size: sectors, or bytes with k/M/G/T"),
                        ("--force", "resize even without all peers' agreement"))),
    _spec("primary", "promote a resource",
          "Make RES Primary on this node.  --force also promotes without "
          "UpToDate data (the data becomes the sync source).", RES,
          flags=(("--force", "promote without UpToDate data"),)),
    _spec("secondary", "demote a resource",
          "Make RES Secondary; fails while a device is open.", RES),
    _spec("new-current-uuid", "generate a new current UUID",
          "Generate a new current UUID for MINOR.  --clear-bitmap starts the "
          "peers without an initial full sync (both sides must be empty or "
          "identical).", MINOR,
          flags=(("--clear-bitmap", "clear the bitmap: skip the initial sync"),)),
    _spec("new-peer", "create a connection",
          "Create the connection of RES to PEER_NODE_ID, named by --_name.",
          RES, PEER, groups=("net_conf",),
          flags=(("--_name", "the peer's name (usually its host name)"),)),
    _spec("del-peer", "delete a connection",
          "Delete the (disconnected) connection of RES to PEER_NODE_ID.", RES, PEER),
    _spec("forget-peer", "forget a peer",
          "Drop the bitmap slot of the deleted peer PEER_NODE_ID.", RES, PEER),
    _spec("new-path", "add a network path",
          "Add the path LOCAL_ADDR -> REMOTE_ADDR to the connection.",
          RES, PEER, LOCAL, REMOTE),
    _spec("del-path", "remove a network path",
          "Remove the path LOCAL_ADDR -> REMOTE_ADDR from the connection.",
          RES, PEER, LOCAL, REMOTE),
    _spec("net-options", "change net options",
          "Change the net options of the connection.  Options not given keep "
          "their value, unless --set-defaults is given.",
          RES, PEER, groups=("net_conf",), set_defaults=True),
    _spec("peer-device-options", "change peer-device options",
          "Change the resync options of volume VOLUME towards PEER_NODE_ID.",
          RES, PEER, VOLUME, groups=("peer_device_conf",), set_defaults=True),
    _spec("connect", "connect to a peer",
          "Start connecting to PEER_NODE_ID over its paths.",
          RES, PEER, flags=(("--discard-my-data", "resolve a split brain as its victim"),)),
    _spec("disconnect", "disconnect from a peer",
          "Close the connection to PEER_NODE_ID (StandAlone).",
          RES, PEER, flags=(("--force", "do not wait for the peer"),)),
    _spec("verify", "start online verify",
          "Compare VOLUME with the peer block by block (needs verify-alg); "
          "differences are marked out of sync.", RES, PEER, VOLUME,
          flags=(("--start", "first sector to verify"), ("--stop", "sector to stop at"))),
    _spec("stop-verify", "stop online verify", "Stop a running verify.", RES, PEER, VOLUME),
    _spec("invalidate", "discard local data",
          "Mark the local data of MINOR out of date and resync it from a peer.", MINOR),
    _spec("invalidate-remote", "discard the peer's data",
          "Mark the peer's copy of VOLUME out of date and resync it from here.",
          RES, PEER, VOLUME),
    _spec("pause-sync", "pause resync", "Pause the resync of VOLUME with the peer.",
          RES, PEER, VOLUME),
    _spec("resume-sync", "resume resync", "Resume a paused resync.", RES, PEER, VOLUME),
    _spec("suspend-io", "suspend I/O", "Queue all new I/O on MINOR.", MINOR),
    _spec("resume-io", "resume I/O", "Resume suspended I/O on MINOR.", MINOR),
    _spec("outdate", "mark data outdated",
          "Mark the local data of MINOR Outdated (it will not be promoted).", MINOR),
)

STATE_SPECS = ("status", "show", "events2", "role", "cstate", "dstate")

DESCRIPTION = """\
bsrsetup configures the bsr kernel module (bsr.ko) directly, one object
at a time, the way drbdsetup does for DRBD 9.  Most admins use bsradm,
which reads /etc/bsr.conf and calls bsrsetup.

Exit status: 0 success; 1 the kernel refused or failed the command (its
reason on stderr); 10 no such resource, device or connection; 20 bad
command line or the bsr module is not loaded.
"""


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=DESCRIPTION,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true",
                   help="print the userland and kernel module versions")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for s in SPECS:
        sp = sub.add_parser(s.name, help=s.summary, description=s.description)
        for dest, conv, meta, help_ in s.positionals:
            sp.add_argument(dest, type=conv, metavar=meta, help=help_)
        for flag, help_ in s.flags:
            if flag in ("--size", "--start", "--stop", "--_name"):
                sp.add_argument(flag, metavar="VALUE", help=help_,
                                required=flag == "--_name")
            else:
                sp.add_argument(flag, action="store_true", help=help_)
        for g in s.groups:
            add_options(sp, g)
        if s.set_defaults:
            sp.add_argument("--set-defaults", action="store_true",
                            help="reset every option not given to its default")
    _state_parsers(sub)
    return p


def _state_parsers(sub: Any) -> None:
    res_all = dict(nargs="?", default="all", metavar="RES|all",
                   help="one resource, or all (the default)")
    st = sub.add_parser("status", help="show the state of resources",
                        description="Show roles, disk, connection and replication "
                        "states like drbdsetup status.")
    st.add_argument("resource", **res_all)
    st.add_argument("--verbose", action="store_true", help="show all state fields")
    st.add_argument("--statistics", action="store_true", help="show the counters")
    st.add_argument("--json", action="store_true", help="print JSON (docs/bsrsetup.md)")
    st.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                    help="colour states (default: auto, when stdout is a terminal)")
    sh = sub.add_parser("show", help="show the configuration in force",
                        description="Show the options the kernel uses, as a "
                        "configuration text (non-default options only unless "
                        "--show-defaults) or as JSON for bsradm adjust.")
    sh.add_argument("resource", **res_all)
    sh.add_argument("--show-defaults", action="store_true", help="include default values")
    sh.add_argument("--json", action="store_true", help="print JSON (docs/bsrsetup.md)")
    ev = sub.add_parser("events2", help="print state changes as they happen",
                        description="Print the state of every object as 'exists' "
                        "lines, then 'exists -', then one line per change "
                        "(create/change/destroy), in the format of drbdsetup "
                        "events2 (docs/events2.md).")
    ev.add_argument("resource", **res_all)
    ev.add_argument("--now", action="store_true", help="exit after the initial state")
    ev.add_argument("--statistics", action="store_true", help="include statistics keys")
    ev.add_argument("--timestamps", action="store_true", help="prefix lines with the time")
    ev.add_argument("--json", action="store_true", help="one JSON object per line")
    ev.add_argument("--interval", type=_interval, metavar="SEC", default=None,
                    help="re-read the state every SEC seconds and print what changed")
    ev.add_argument("--poll", action="store_true",
                    help="re-read the state when a line 'n' arrives on stdin")
    ro = sub.add_parser("role", help="print the role of a resource",
                        description="Print Primary, Secondary or Unknown.")
    ro.add_argument("resource", type=_name, metavar="RES")
    cs = sub.add_parser("cstate", help="print a connection state",
                        description="Print the connection state towards a peer.")
    cs.add_argument("resource", type=_name, metavar="RES")
    cs.add_argument("peer_node_id", type=PEER[1], metavar="PEER_NODE_ID")
    ds = sub.add_parser("dstate", help="print disk states",
                        description="Print the local disk state of MINOR, then the "
                        "peers' disk states of that volume, separated by '/'.")
    ds.add_argument("minor", type=MINOR[1], metavar="MINOR")


def _interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0.1 <= v <= 86400:
        raise argparse.ArgumentTypeError(f"{text} is out of range 0.1..86400")
    return v


def spec(name: str) -> Spec:
    for s in SPECS:
        if s.name == name:
            return s
    raise KeyError(name)
