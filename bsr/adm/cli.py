"""bsradm: administer bsr resources as described in /etc/bsr.conf."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, NoReturn

from bsr.config import DEFAULT_CONFIG, Config, ConfigError, dump, load
from bsr.config.model import Volume

from . import plan
from .adjust import ShowFormatError, adjust
from .local import LocalResource, localize
from .plan import SETUP, Argv
from .runner import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Runner

PROG = "bsradm"
VERSION = "0.1.0"
HOST_ENV = "BSR_HOSTNAME"
STATE_ENV = "BSR_STATE_DIR"

DESCRIPTION = """\
bsradm reads the configuration (/etc/bsr.conf and what it includes) and
turns each command into the low-level bsrsetup/bsrmeta calls that carry it
out, like drbdadm does for DRBD.  Commands take one or more resource names,
or 'all' for every resource that has an 'on' section for this host.  Where
it makes sense a single volume can be named as RES/VOLUME."""

EPILOG = """\
The local host is the one whose 'on NAME' section matches `uname -n`
(exactly, or by its short name); --host or $BSR_HOSTNAME override it.

exit status:
  0   success
  1   a low-level command failed (the kernel refused it; its reason is shown)
  10  configuration error (file:line:column of the problem is shown)
  20  usage error (bad command line)

See docs/bsradm.md for the configuration reference and the JSON formats."""


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


@dataclass
class Ctx:
    args: argparse.Namespace
    runner: Runner
    _cfg: Config | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            self._cfg = load(self.args.config_file)
        return self._cfg

    @property
    def hostname(self) -> str:
        return self.args.host or os.environ.get(HOST_ENV) or os.uname().nodename

    def _target(self, word: str) -> tuple[LocalResource, int | None]:
        """RES, RES/VOL, RES:PEER or RES:PEER/VOL (drbdadm 9 spelling)."""
        target, _, vol = word.partition("/")
        name, colon, peer = target.partition(":")
        if name == "all":
            raise UsageError("'all' cannot be combined with resource names")
        if name not in self.cfg.resources:
            raise ConfigError(None, f"'{name}' is not defined in {self.args.config_file}")
        if vol and not vol.isdigit():
            raise UsageError(f"bad volume number in '{word}'")
        lr = localize(self.cfg.resources[name], self.hostname)
        if colon:
            if peer not in {p.name for p in lr.peers}:
                raise ConfigError(None, f"'{peer}' is not a peer of '{name}' on this host "
                                        f"in {self.args.config_file}")
            lr = dataclasses.replace(lr, only_peer=peer)
        return lr, int(vol) if vol else None

    def resources(self, only_auto: bool = False) -> list[tuple[LocalResource, int | None]]:
        """The named resources (RES or RES/VOL, or 'all') as this host sees them."""
        names: list[str] = self.args.resources
        if not names:
            raise UsageError("expected a resource name or 'all'")
        out: list[tuple[LocalResource, int | None]] = []
        if names == ["all"]:
            for res in self.cfg.resources.values():
                if res.host_for(self.hostname) is not None:
                    out.append((localize(res, self.hostname), None))
        else:
            for word in names:
                out.append(self._target(word))
        if only_auto:
            out = [(lr, v) for lr, v in out if lr.svc_auto_up()]
        return out


def _vols(lr: LocalResource, vol: int | None) -> list[Volume]:
    return lr.volumes if vol is None else [lr.volume(vol)]


def _disk_vols(lr: LocalResource, vol: int | None) -> list[Volume]:
    return [v for v in _vols(lr, vol) if not v.diskless]


def _each(ctx: Ctx, build: Callable[[LocalResource, int | None], list[Argv]],
          only_auto: bool = False) -> int:
    """Build and run the command list of each named resource in turn."""
    worst = EXIT_OK
    for lr, vol in ctx.resources(only_auto):
        rc = ctx.runner.run_all(build(lr, vol), f"{ctx.args.command} {lr.name}")
        worst = max(worst, rc)
    return worst


# -- commands --------------------------------------------------------------

def cmd_create_md(ctx: Ctx) -> int:
    a = ctx.args
    return _each(ctx, lambda lr, v: [plan.create_md(lr, vol, a.force, a.max_peers)
                                     for vol in _disk_vols(lr, v)])


def cmd_up(ctx: Ctx) -> int:
    worst = EXIT_OK
    for lr, _ in ctx.resources(ctx.args.svc_auto_up):
        rc = ctx.runner.run_all(plan.up(lr), f"up {lr.name}")
        if rc != EXIT_OK:
            sys.stderr.write(f"bsradm: {lr.name} is only partly up; "
                             f"'bsradm down {lr.name}' removes what was created\n")
        worst = max(worst, rc)
    return worst


def cmd_down(ctx: Ctx) -> int:
    return _each(ctx, lambda lr, v: [[SETUP, "down", lr.name]], ctx.args.svc_auto_up)


def cmd_attach(ctx: Ctx) -> int:
    return _each(ctx, lambda lr, v: [plan.attach(lr, vol) for vol in _disk_vols(lr, v)])


def cmd_detach(ctx: Ctx) -> int:
    force = ["--force"] if ctx.args.force else []
    return _each(ctx, lambda lr, v: [[SETUP, "detach", str(vol.minor)] + force
                                     for vol in _disk_vols(lr, v)])


def cmd_connect(ctx: Ctx) -> int:
    dmd = ctx.args.discard_my_data
    return _each(ctx, lambda lr, v: [plan.connect(lr, p, dmd) for p in lr.peers])


def cmd_disconnect(ctx: Ctx) -> int:
    force = ["--force"] if ctx.args.force else []
    return _each(ctx, lambda lr, v: [[SETUP, "disconnect", lr.name, str(p.node_id)] + force
                                     for p in lr.peers])


def _role_file(name: str) -> str:
    base = os.environ.get(STATE_ENV) or "/var/lib/bsr"
    return os.path.join(base, "persist-role", name)


def _record_role(ctx: Ctx, lr: LocalResource, role: str) -> None:
    """Remember the role asked for, for apply-persist-role after a restart."""
    if ctx.runner.dry_run or not lr.res_opts().get("persist-role"):
        return
    path = _role_file(lr.name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(role + "\n")
    except OSError as e:
        sys.stderr.write(f"bsradm: {lr.name}: cannot record persist-role in {path}: {e}\n")


def _role_cmd(ctx: Ctx, role: str, extra: list[str]) -> int:
    worst = EXIT_OK
    for lr, _ in ctx.resources():
        rc = ctx.runner.run_all([[SETUP, role.lower(), lr.name] + extra], f"{role} {lr.name}")
        if rc == EXIT_OK:
            _record_role(ctx, lr, role)
        worst = max(worst, rc)
    return worst


def cmd_primary(ctx: Ctx) -> int:
    return _role_cmd(ctx, "Primary", ["--force"] if ctx.args.force else [])


def cmd_secondary(ctx: Ctx) -> int:
    return _role_cmd(ctx, "Secondary", [])


def cmd_apply_persist_role(ctx: Ctx) -> int:
    def build(lr: LocalResource, v: int | None) -> list[Argv]:
        if not lr.res_opts().get("persist-role"):
            return []
        try:
            with open(_role_file(lr.name)) as f:
                role = f.read().strip()
        except OSError:
            return []
        return [[SETUP, "primary", lr.name]] if role == "Primary" else []
    return _each(ctx, build)


def _per_peer_volume(verb: str) -> Callable[[Ctx], int]:
    def run(ctx: Ctx) -> int:
        return _each(ctx, lambda lr, v: [[SETUP, verb, lr.name, str(p.node_id), str(vol.number)]
                                         for p in lr.peers for vol in _vols(lr, v)])
    return run


def _per_minor(verb: str, extra: Callable[[Ctx], list[str]] = lambda c: []
               ) -> Callable[[Ctx], int]:
    def run(ctx: Ctx) -> int:
        return _each(ctx, lambda lr, v: [[SETUP, verb, str(vol.minor)] + extra(ctx)
                                         for vol in _disk_vols(lr, v)])
    return run


def cmd_resize(ctx: Ctx) -> int:
    def build(lr: LocalResource, v: int | None) -> list[Argv]:
        cmds = []
        for vol in _disk_vols(lr, v):
            size = ctx.args.size or lr.disk_opts(vol).get("size")
            cmds.append([SETUP, "resize", str(vol.minor)] + ([f"--size={size}"] if size else []))
        return cmds
    return _each(ctx, build)


def cmd_adjust(ctx: Ctx) -> int:
    worst = EXIT_OK
    for lr, _ in ctx.resources(ctx.args.svc_auto_up):
        rc, out = ctx.runner.query([SETUP, "show", "--json", "all"])
        if rc != EXIT_OK:
            sys.stderr.write(f"bsradm: adjust {lr.name}: 'bsrsetup show --json all' failed "
                             f"(exit code {rc})\n")
            return EXIT_FAILED
        try:
            cmds = adjust(lr, json.loads(out or "[]"))
        except (ValueError, ShowFormatError) as e:
            sys.stderr.write(f"bsradm: adjust {lr.name}: cannot read 'bsrsetup show --json' "
                             f"output: {e}\n")
            return EXIT_FAILED
        worst = max(worst, ctx.runner.run_all(cmds, f"adjust {lr.name}"))
    return worst


def _passthrough_names(ctx: Ctx) -> list[str]:
    names = ctx.args.resources
    if not names or names == ["all"]:
        return ["all"]
    for n in names:
        if n not in ctx.cfg.resources:
            raise ConfigError(None, f"'{n}' is not defined in {ctx.args.config_file}")
    return names


def cmd_status(ctx: Ctx) -> int:
    a = ctx.args
    flags = (["--verbose"] if a.verbose_status else []) + \
        (["--statistics"] if a.statistics else []) + (["--json"] if a.json else [])
    worst = EXIT_OK
    for name in _passthrough_names(ctx):
        worst = max(worst, ctx.runner.run([SETUP, "status", name] + flags))
    return worst


def cmd_role(ctx: Ctx) -> int:
    return _each(ctx, lambda lr, v: [[SETUP, "role", lr.name]])


def cmd_cstate(ctx: Ctx) -> int:
    return _each(ctx, lambda lr, v: [[SETUP, "cstate", lr.name, str(p.node_id)]
                                     for p in lr.peers])


def _show(pick: Callable[[Volume], str]) -> Callable[[Ctx], int]:
    def run(ctx: Ctx) -> int:
        for lr, v in ctx.resources():
            for vol in _vols(lr, v):
                print(pick(vol))
        return EXIT_OK
    return run


def cmd_sh_resources(ctx: Ctx) -> int:
    names = [r.name for r in ctx.cfg.resources.values() if r.host_for(ctx.hostname)]
    print(" ".join(names))
    return EXIT_OK


def cmd_sh_udev(ctx: Ctx) -> int:
    """udev IMPORT{program}: KEY=value lines for the device with minor-N."""
    (word,) = ctx.args.resources
    if not word.startswith("minor-") or not word[6:].isdigit():
        raise UsageError("expected minor-N")
    minor = int(word[6:])
    for res in ctx.cfg.resources.values():
        me = res.host_for(ctx.hostname)
        for vol in (me.volumes.values() if me else ()):
            if vol.minor == minor:
                print(f"RESOURCE={res.name}\nVOLUME={vol.number}\n"
                      f"DEVICE={os.path.basename(vol.device)}\nDISK={vol.disk}\n"
                      f"DISK_NAME={os.path.basename(vol.disk)}")
                return EXIT_OK
    return EXIT_OK


def cmd_dump(ctx: Ctx) -> int:
    names = ctx.args.resources or None
    if names == ["all"]:
        names = None
    for n in names or []:
        if n not in ctx.cfg.resources:
            raise ConfigError(None, f"'{n}' is not defined in {ctx.args.config_file}")
    sys.stdout.write(dump(ctx.cfg, names))
    return EXIT_OK


# -- argument parsing ------------------------------------------------------

RES_HELP = "resource name, RES/VOLUME, RES:PEER[/VOLUME] (one peer), or 'all'"


def _common(p: argparse.ArgumentParser, top: bool, long_verbose: bool = True) -> None:
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    p.add_argument("-c", "--config-file", metavar="FILE", default=d(DEFAULT_CONFIG),
                   help=f"read FILE instead of {DEFAULT_CONFIG}")
    p.add_argument("-d", "--dry-run", action="store_true", default=d(False),
                   help="print the bsrsetup/bsrmeta calls, one per line, instead of running them")
    p.add_argument(*(("-v", "--verbose") if long_verbose else ("-v",)), dest="verbose",
                   action="store_true", default=d(False),
                   help="echo each low-level call to stderr before running it")
    p.add_argument("--host", metavar="NAME", default=d(None),
                   help=f"act as host NAME instead of `uname -n` (also ${HOST_ENV})")


# name -> (handler, one-line help, longer description, extra-arguments adder)
Adder = Callable[[argparse.ArgumentParser], None]


def _force(text: str) -> Adder:
    return lambda p: p.add_argument("--force", action="store_true", help=text)


def _auto(p: argparse.ArgumentParser) -> None:
    p.add_argument("--svc-auto-up", action="store_true",
                   help="only resources whose 'on HOST { options { svc-auto-up } }' is yes "
                        "(the default); used by bsr.service")


def _create_md_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="do not ask before overwriting metadata")
    p.add_argument("--max-peers", type=int, metavar="N",
                   help="bitmap slots to reserve (default: number of peers in the config, min 1)")


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", dest="verbose_status", action="store_true",
                   help="show all fields, including those at their usual values")
    p.add_argument("--statistics", action="store_true", help="add I/O and sync counters")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output (format in docs/bsradm.md)")


COMMANDS: dict[str, tuple[Callable[[Ctx], int], str, str, Adder | None]] = {
    "create-md": (cmd_create_md, "initialize the metadata of each volume",
                  "Runs 'bsrmeta ... create-md' for each volume with a disk.  Needed once "
                  "before the first 'up'; it destroys existing bsr metadata.", _create_md_args),
    "up": (cmd_up, "bring resources up",
           "new-resource, new-minor for each volume, attach each disk, new-peer and new-path "
           "for each peer, connect.  Stops at the first failure; 'down' cleans up what was "
           "created.", _auto),
    "down": (cmd_down, "take resources down (demote, disconnect, detach, delete)",
             "Runs 'bsrsetup down RES'.", _auto),
    "attach": (cmd_attach, "attach the backing disks", "", None),
    "detach": (cmd_detach, "detach the backing disks", "",
               _force("detach at once, failing I/O in flight")),
    "connect": (cmd_connect, "connect to the configured peers", "",
                lambda p: p.add_argument("--discard-my-data", action="store_true",
                                         help="resolve a split brain by becoming sync target")),
    "disconnect": (cmd_disconnect, "disconnect from the peers", "",
                   _force("drop the connection without waiting for pending data")),
    "primary": (cmd_primary, "promote to Primary",
                "With persist-role set, the role is remembered for apply-persist-role.",
                _force("promote even without UpToDate data (starts the initial sync)")),
    "secondary": (cmd_secondary, "demote to Secondary", "", None),
    "adjust": (cmd_adjust, "apply configuration changes to running resources",
               "Compares 'bsrsetup show --json' with the configuration and runs only the "
               "commands for what differs (options, volumes, peers, paths).  Brings a resource "
               "that is not running up.  A second adjust does nothing.", _auto),
    "verify": (_per_peer_volume("verify"), "start online verification against each peer",
               "", None),
    "invalidate": (_per_minor("invalidate"), "discard local data and resync it from a peer",
                   "", None),
    "invalidate-remote": (_per_peer_volume("invalidate-remote"),
                          "make the peers resync everything from here", "", None),
    "pause-sync": (_per_peer_volume("pause-sync"), "pause resynchronization", "", None),
    "resume-sync": (_per_peer_volume("resume-sync"), "resume resynchronization", "", None),
    "new-current-uuid": (_per_minor("new-current-uuid",
                                    lambda c: ["--clear-bitmap"] if c.args.clear_bitmap else []),
                         "start a new data generation",
                         "With --clear-bitmap on a fresh pair: skip the initial sync.",
                         lambda p: p.add_argument("--clear-bitmap", action="store_true",
                                                  help="also clear the bitmap (no resync)")),
    "resize": (cmd_resize, "grow the device to the backing size (or the configured size)", "",
               lambda p: p.add_argument("--size", metavar="SIZE",
                                        help="new size (sectors, or bytes with k/M/G/T)")),
    "status": (cmd_status, "show the state like 'drbdadm status'",
               "Runs 'bsrsetup status'.  Without a resource, or with 'all', shows every "
               "running resource.", _status_args),
    "role": (cmd_role, "print the role", "", None),
    "cstate": (cmd_cstate, "print the connection state towards each peer", "", None),
    "dstate": (_per_minor("dstate"), "print the disk state of each volume", "", None),
    "sh-dev": (_show(lambda v: v.device), "print the device of each volume", "", None),
    "sh-ll-dev": (_show(lambda v: v.disk), "print the backing disk of each volume", "", None),
    "sh-md-dev": (_show(lambda v: v.disk if v.meta_disk == "internal" else v.meta_disk),
                  "print the metadata device of each volume", "", None),
    "sh-resources": (cmd_sh_resources, "print the names of this host's resources", "", None),
    "apply-persist-role": (cmd_apply_persist_role,
                           "promote resources with persist-role that were Primary",
                           "For each resource whose options set persist-role, restore the role "
                           "last set with 'bsradm primary/secondary'.", None),
    "sh-udev": (cmd_sh_udev, "print udev environment (RESOURCE=, VOLUME=...) for minor-N",
                "Used by 65-bsr.rules to create /dev/bsr/by-res/RES/VOL.", None),
    "dump": (cmd_dump, "print the configuration in canonical form",
             "Parsing the output gives the same configuration; dumping it again gives the "
             "same text.", None),
}
_NO_RESOURCE_NEEDED = ("status", "sh-resources", "dump")


def build_parser() -> Parser:
    p = Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p, top=True)
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {VERSION}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, (_, short, long, adder) in COMMANDS.items():
        sp = sub.add_parser(name, help=short, description=f"{short}.\n\n{long}".strip(),
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(sp, top=False, long_verbose=(name != "status"))
        if adder:
            adder(sp)
        if name == "sh-udev":
            sp.add_argument("resources", nargs=1, metavar="minor-N", help="the device's minor")
            continue
        nargs = "*" if name in _NO_RESOURCE_NEEDED else "+"
        sp.add_argument("resources", nargs=nargs, metavar="RES", help=RES_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = Ctx(args, Runner(dry_run=args.dry_run, verbose=args.verbose))
    handler = COMMANDS[args.command][0]
    try:
        return handler(ctx)
    except ConfigError as e:
        sys.stderr.write(f"{e}\n")
        return EXIT_CONFIG
    except UsageError as e:
        sys.stderr.write(f"{PROG} {args.command}: {e}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
