"""bsrwatch command line."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bsrwatch.settings import MIN_REFRESH, default_path, load
from bsrwatch.sources import (DEFAULT_EVENTS_CMD, CommandSource, FileSource, NetlinkSource,
                              Source, netlink_available)

DESCRIPTION = """\
Live monitor for bsr resources, for the terminal (and SSH).

Shows every resource with its role, disk, connection, replication and peer
disk states, resync/verify progress with speed and ETA, out-of-sync amounts
and congestion, with a severity (normal, warning, alert) that propagates to
the resource; problems sort first.  Keys run bsradm on the selected
resource, peer or volume, after a confirmation that shows the exact
command ('?' lists every key).
"""

EPILOG = """\
data sources:
  default                 the bsr module's netlink events, read directly
                          (what "%(default_cmd)s" prints)
  --events FILE|-         a recorded events2 stream, or standard input
  --events-cmd CMD        any command printing events2, e.g.
                          "ssh node1 bsrsetup events2 --statistics --timestamps";
                          restarted when it exits (state is rebuilt)
  A DRBD 9 "drbdsetup events2" stream works too; actions are then disabled
  unless --command names a tool for it (e.g. --command drbdadm).

settings file: %(config)s
  theme = "dark" | "light"   refresh = 0.25   expert = false   ascii = false
  command = "bsradm"   timeout = 30.0   show_command = "bsrsetup show"

exit status: 0 on a normal quit, 1 on a usage or startup error.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bsrwatch", description=DESCRIPTION,
        epilog=EPILOG % {"default_cmd": DEFAULT_EVENTS_CMD, "config": default_path()},
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--events", metavar="FILE|-", help="read an events2 stream from FILE or stdin")
    src.add_argument("--events-cmd", metavar="CMD", help="run CMD and read its events2 output")
    p.add_argument("--command", metavar="CMD",
                   help="how actions are run (default from settings: bsradm)")
    p.add_argument("--expert", action="store_true", default=None,
                   help="dangerous actions need no typed confirmation")
    p.add_argument("--ascii", action="store_true", default=None, help="no Unicode glyphs")
    p.add_argument("--theme", choices=("dark", "light"), help="colour theme")
    p.add_argument("--refresh", type=float, metavar="SECONDS",
                   help=f"redraw interval (minimum {MIN_REFRESH}, default 0.25)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="action timeout (default 30)")
    p.add_argument("--config", type=Path, metavar="FILE", help="settings file to use")
    return p


def is_drbd_stream(args: argparse.Namespace) -> bool:
    cmd = args.events_cmd or ""
    return any(os.path.basename(w) == "drbdsetup" for w in shlex.split(cmd)) if cmd else False


def _stdin_stream() -> int:
    """Keep the piped stream on a new fd and give the terminal back to fd 0."""
    fd = os.dup(0)
    tty = os.open("/dev/tty", os.O_RDWR)
    os.dup2(tty, 0)
    os.close(tty)
    sys.stdin = open(0, closefd=False)
    sys.__stdin__ = sys.stdin
    return fd


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config or default_path()
    settings, problems = load(path)
    for msg in problems:
        print(f"bsrwatch: {msg}", file=sys.stderr)
    over = {k: getattr(args, k) for k in ("command", "expert", "ascii", "theme", "refresh",
                                         "timeout") if getattr(args, k) is not None}
    settings = replace(settings, **over).checked()

    source: Source
    if args.events == "-":
        if sys.stdin.isatty():
            print("bsrwatch: --events -: standard input is a terminal, not a stream",
                  file=sys.stderr)
            return 1
        try:
            source = FileSource("-", fd=_stdin_stream())
        except OSError as e:
            print(f"bsrwatch: --events -: no terminal for the keyboard: {e}", file=sys.stderr)
            return 1
    elif args.events:
        source = FileSource(args.events)
    elif args.events_cmd:
        source = CommandSource(args.events_cmd)
    elif netlink_available():
        source = NetlinkSource()
    else:
        source = CommandSource(DEFAULT_EVENTS_CMD)
    drbd = is_drbd_stream(args)
    enabled = not drbd or args.command is not None
    reason = "the source is drbdsetup; start with --command drbdadm to act on it"

    from bsrwatch.app import BsrWatchApp  # Textual loads only when we really run

    app = BsrWatchApp(source, settings, settings_path=path, actions_enabled=enabled,
                      disabled_reason=reason)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
