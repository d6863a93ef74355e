"""bsrmon command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bsrmon.config import SETTABLE, Config, ConfigError, default_config_path, load, save_key
from bsrmon.control import NotRunning, call
from bsrmon.series import TYPES, SeriesKey

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # LSB "program is not running"

DESCRIPTION = """\
bsrmon collects the health and performance history of bsr resources.

The daemon (`bsrmon run`, or `bsrmon start` in the background) follows the
bsr kernel module's events and reads its statistics every period.  It writes
state changes to FILE-PATH/events.log (events2 lines with timestamps) and one
line per period and series to FILE-PATH/perfmon/<resource>/ (see TYPES).
Without root, or for testing, it can read any `bsrsetup events2` text
stream instead (--events, --events-cmd).
"""

EPILOG = """\
types:
""" + "\n".join(f"  {t.name:<13} {t.doc}" for t in TYPES.values()) + """

BSR's slash forms are accepted: /start /stop /status /show /json /watch
/report (/d DATE /s START /e END) /set /get.

files:  /etc/bsr/bsrmon.toml (config; per-user config dir when not root),
        /var/log/bsr/events.log, /var/log/bsr/perfmon/<res>/vnr<V>_<type>,
        /run/bsrmon/bsrmon.sock, /run/bsrmon/bsrmon.pid
exit status: 0 ok, 1 error, 2 usage, 3 daemon not running.
See docs/bsrmon.md for the file format and the report arithmetic.
"""

_SLASH = {"/json": "--json", "/d": "--date", "/s": "--from", "/e": "--to",
          "/p": "--peer", "/f": "--from"}
_SLASH_CMDS = {"start", "stop", "status", "show", "watch", "report", "set", "get", "run"}


def translate_slash(argv: list[str]) -> list[str]:
    """Turn BSR's ``/report /s 10:00`` spelling into ours."""
    out = []
    for a in argv:
        if a in _SLASH:
            out.append(_SLASH[a])
        elif a.startswith("/") and a[1:] in _SLASH_CMDS:
            out.append(a[1:])
        else:
            out.append(a)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bsrmon", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", type=Path, help="config file (default %(default)s)",
                   default=None)
    p.add_argument("--file-path", type=Path, help="log directory (overrides the config)")
    p.add_argument("--socket", type=Path, help="control socket (overrides the config)")
    p.add_argument("--pid-file", type=Path, help="pid file (overrides the config)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def runopts(sp: argparse.ArgumentParser) -> None:
        src = sp.add_mutually_exclusive_group()
        src.add_argument("--events", metavar="FILE", help="read events2 text from FILE ('-' = stdin)")
        src.add_argument("--events-cmd", metavar="CMD",
                         help="read events2 text from a shell command, restarted when it exits "
                              "(e.g. 'bsrsetup events2 --statistics --timestamps --interval=1')")
        sp.add_argument("--clock", choices=("auto", "event", "wall"), default="auto",
                        help="sample on event timestamps (replaying a recording) or on the "
                             "wall clock; auto: event for a regular file, else wall")
        sp.add_argument("--listen", metavar="ADDR:PORT",
                        help="serve Prometheus text on http://ADDR:PORT/metrics")
        sp.add_argument("--period", type=float, help="seconds between samples (overrides the "
                                                     "config)")

    sp = sub.add_parser("run", help="run the collector in the foreground",
                        description="Collect until SIGTERM/SIGINT (SIGHUP re-reads the config). "
                                    "Default source: the bsr kernel module over netlink.")
    runopts(sp)
    sp.add_argument("--no-control", action="store_true",
                    help="no pid file and no control socket (one-shot replays)")
    sp = sub.add_parser("start", help="start the collector in the background")
    runopts(sp)
    sp.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for the daemon to answer (default %(default)s)")
    sp = sub.add_parser("stop", help="stop the running collector")
    sp.add_argument("--timeout", type=float, default=15.0)
    sp = sub.add_parser("status", help="is it running, and how is it doing (exit 3: not running)")
    sp.add_argument("--json", action="store_true", help="JSON output")
    sp = sub.add_parser("show", help="latest sample of every series",
                        description="Asks the running daemon; without one, reads the last "
                                    "line of every series file.")
    sp.add_argument("--json", action="store_true", help="JSON output")
    sp = sub.add_parser("watch", help="follow one series live, in human units",
                        description="Print the latest sample of one series file, then every "
                                    "new one as it is written (across rotations).")
    sp.add_argument("type", choices=list(TYPES), metavar="TYPE",
                    help="series type: " + ", ".join(TYPES))
    sp.add_argument("resource", nargs="?", default="", help="resource (not for memstat)")
    sp.add_argument("volume", nargs="?", type=int, help="volume number (device series)")
    sp.add_argument("--peer", type=int, help="peer node id (peer and connection series)")
    sp.add_argument("--count", type=int, help="stop after COUNT samples (default: until ^C)")
    sp = sub.add_parser(
        "report", help="min/avg/max of a series over a time range",
        description="Summarise series files (rotated and compressed ones included): per "
                    "column the minimum, the arithmetic mean and the maximum of the lines in "
                    "the range, and for per-second rates the total (sum of rate x dt_ms/1000, "
                    "e.g. KiB written).  TIME: YYYY-MM-DD_HH:MM[:SS], 'YYYY-MM-DD HH:MM', "
                    "HH:MM[:SS] (on --date, default today) or YYYY-MM-DD.")
    sp.add_argument("type", choices=list(TYPES), metavar="TYPE",
                    help="series type: " + ", ".join(TYPES))
    sp.add_argument("resource", nargs="?", help="resource (default: all)")
    sp.add_argument("--vol", "--volume", dest="volume", type=int, help="only this volume")
    sp.add_argument("--peer", type=int, help="only this peer node id")
    sp.add_argument("--date", help="day (YYYY-MM-DD) for --from/--to given as HH:MM[:SS]; "
                                   "alone: that whole day")
    sp.add_argument("--from", dest="start", metavar="TIME", help="start, inclusive")
    sp.add_argument("--to", dest="stop", metavar="TIME", help="end, inclusive")
    sp.add_argument("--json", action="store_true", help="JSON instead of a table")
    sp = sub.add_parser("set", help=f"change a setting ({', '.join(SETTABLE)}), live and in "
                                    "the config file")
    sp.add_argument("key", help=", ".join(SETTABLE) + " (BSR's file_path etc. also work)")
    sp.add_argument("value")
    sp = sub.add_parser("get", help="print a setting (all when no key)",
                        description="Asks the running daemon; without one, the config file.")
    sp.add_argument("key", nargs="?", help=", ".join(SETTABLE))
    return p


def _config(args: argparse.Namespace) -> Config:
    cfg = load(args.config)
    over: dict[str, Any] = {}
    for name in ("file_path", "socket", "pid_file", "listen", "period"):
        v = getattr(args, name, None)
        if v is not None:
            over[name] = v
    for k, v in over.items():
        cfg = cfg.with_value(k, v if not isinstance(v, Path) else str(v))
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = translate_slash(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.cmd:
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="bsrmon: %(message)s")
    try:
        cfg = _config(args)
        return COMMANDS[args.cmd](cfg, args)
    except ConfigError as e:
        print(f"bsrmon: {e}", file=sys.stderr)
        return EXIT_ERROR
    except NotRunning as e:
        print(f"bsrmon: {e}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK


def _source(cfg: Config, args: argparse.Namespace) -> Any:
    from bsrmon.sources import Events2Source, KernelSource
    if args.events:
        return Events2Source(path=args.events, clock=args.clock, period=cfg.period)
    if args.events_cmd:
        return Events2Source(command=args.events_cmd, clock=args.clock, period=cfg.period)
    return KernelSource(cfg.period)


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from bsrmon.daemon import AlreadyRunning, Daemon
    try:
        pinned = frozenset(n for n in ("file_path", "listen", "period")
                           if getattr(args, n, None) is not None)
        return asyncio.run(Daemon(cfg, _source(cfg, args), control=not args.no_control,
                                  pinned=pinned).run())
    except AlreadyRunning as e:
        print(f"bsrmon: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"bsrmon: {e}", file=sys.stderr)
        return EXIT_ERROR


def _global_args(args: argparse.Namespace) -> list[str]:
    out = []
    for opt, name in (("--config", "config"), ("--file-path", "file_path"),
                      ("--socket", "socket"), ("--pid-file", "pid_file")):
        v = getattr(args, name)
        if v is not None:
            out += [opt, str(v)]
    return out


def cmd_start(cfg: Config, args: argparse.Namespace) -> int:
    from bsrmon.daemon import running_pid
    pid = running_pid(cfg.pid_file)
    if pid is not None:
        print(f"bsrmon is already running (pid {pid})")
        return EXIT_OK
    run = [sys.executable, "-m", "bsrmon", *_global_args(args), "run", "--clock", args.clock]
    for opt, v in (("--events", args.events), ("--events-cmd", args.events_cmd),
                   ("--listen", args.listen), ("--period", args.period)):
        if v is not None:
            run += [opt, str(v)]
    cfg.file_path.mkdir(parents=True, exist_ok=True)
    logf = open(cfg.file_path / "bsrmon.log", "ab")
    proc = subprocess.Popen(run, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            start_new_session=True, close_fds=True)
    logf.close()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"bsrmon: failed to start (exit {proc.returncode}); see "
                  f"{cfg.file_path / 'bsrmon.log'}", file=sys.stderr)
            return EXIT_ERROR
        try:
            st = call(cfg.socket, {"cmd": "status"}, timeout=2)
        except (NotRunning, OSError):
            time.sleep(0.1)
            continue
        # Return only once the source is live, so nothing the caller does
        # next (bsradm up, ...) happens before bsrmon listens.
        state = st.get("source_state", "live")
        if state == "starting":
            time.sleep(0.1)
            continue
        note = " (waiting for the bsr module to be loaded)" if state == "waiting" else ""
        print(f"bsrmon started (pid {st.get('pid')}){note}")
        return EXIT_OK
    if proc.poll() is None and _answers(cfg):
        print(f"bsrmon: started (pid {proc.pid}), but its source delivered nothing within "
              f"{args.timeout:g} s", file=sys.stderr)
        return EXIT_OK
    print("bsrmon: did not answer in time", file=sys.stderr)
    return EXIT_ERROR


def _answers(cfg: Config) -> bool:
    """The daemon answers on its control socket."""
    try:
        call(cfg.socket, {"cmd": "status"}, timeout=2)
    except (NotRunning, OSError):
        return False
    return True


def cmd_stop(cfg: Config, args: argparse.Namespace) -> int:
    from bsrmon.daemon import running_pid
    pid = running_pid(cfg.pid_file)
    if pid is None:
        print("bsrmon is not running")
        return EXIT_OK
    try:
        call(cfg.socket, {"cmd": "stop"})
    except (NotRunning, OSError):
        if pid > 0:
            os.kill(pid, 15)  # the pid is held under its lock: it is ours
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if running_pid(cfg.pid_file) is None:
            print("bsrmon stopped")
            return EXIT_OK
        time.sleep(0.1)
    print(f"bsrmon: pid {pid} did not stop within {args.timeout:g} s", file=sys.stderr)
    return EXIT_ERROR


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    from bsrmon.daemon import running_pid
    if running_pid(cfg.pid_file) is None:
        if args.json:
            print(json.dumps({"running": False}))
        else:
            print("bsrmon is not running")
        return EXIT_NOT_RUNNING
    st = call(cfg.socket, {"cmd": "status"})
    st.pop("ok", None)
    if args.json:
        print(json.dumps({"running": True, **st}))
        return EXIT_OK
    print(f"bsrmon is running (pid {st['pid']}), up {st['uptime_s']:.0f} s")
    for k in ("source", "file_path", "period", "types", "resources", "events", "samples",
              "lines_written", "rotations", "removed_files", "dropped_queue_full",
              "dropped_write_error", "last_write_error", "listen"):
        v = st.get(k)
        if isinstance(v, list):
            v = ",".join(v)
        print(f"  {k.replace('_', '-'):<20} {v}")
    return EXIT_OK


def cmd_show(cfg: Config, args: argparse.Namespace) -> int:
    from bsrmon.report import format_show, latest_from_files
    try:
        samples = call(cfg.socket, {"cmd": "show"})["samples"]
    except (NotRunning, OSError):
        samples = latest_from_files(cfg.perfmon_dir)
    if args.json:
        print(json.dumps(samples, indent=1))
    else:
        sys.stdout.write(format_show(samples))
    return EXIT_OK


def _key(type_: str, resource: str, volume: int | None, peer: int | None) -> SeriesKey:
    scope = TYPES[type_].scope
    if scope == "global":
        return SeriesKey(type_)
    if not resource:
        raise ConfigError(f"{type_} needs a resource name")
    if scope in ("device", "peer_device") and volume is None:
        volume = 0
    if scope in ("peer_device", "connection") and peer is None:
        raise ConfigError(f"{type_} needs --peer NODE-ID")
    if scope == "connection":
        volume = None
    if scope == "device":
        peer = None
    return SeriesKey(type_, resource, volume, peer)


def cmd_watch(cfg: Config, args: argparse.Namespace) -> int:
    from bsrmon.report import watch
    key = _key(args.type, args.resource, args.volume, args.peer)
    return watch(cfg.perfmon_dir / key.relpath(), key, sys.stdout, count=args.count)


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    from datetime import datetime
    from bsrmon.report import ReportError, format_report, parse_when, report, report_json
    try:
        day = datetime.strptime(args.date, "%Y-%m-%d").date() if args.date else None
    except ValueError:
        print(f"bsrmon: --date {args.date!r}: expected YYYY-MM-DD", file=sys.stderr)
        return EXIT_USAGE
    try:
        start = parse_when(args.start, day) if args.start else (
            datetime.combine(day, datetime.min.time()) if day else None)
        stop = parse_when(args.stop, day, end=True) if args.stop else (
            datetime.combine(day, datetime.max.time()) if day else None)
        reps = report(cfg.perfmon_dir, args.type, args.resource, args.volume, args.peer,
                      start, stop)
    except ReportError as e:
        print(f"bsrmon: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not reps:
        print(f"bsrmon: no {args.type} series under {cfg.perfmon_dir}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report_json(reps), indent=1))
    else:
        sys.stdout.write(format_report(reps))
    return EXIT_OK


def cmd_set(cfg: Config, args: argparse.Namespace) -> int:
    key = args.key.replace("_", "-")
    if key not in SETTABLE:
        raise ConfigError(f"cannot set {args.key!r}; settable: {', '.join(SETTABLE)}")
    new = cfg.with_value(key, args.value)
    path = args.config or cfg.source or default_config_path()
    try:
        save_key(path, new, key)
    except OSError as e:
        print(f"bsrmon: cannot write {path}: {e.strerror}", file=sys.stderr)
        return EXIT_ERROR
    try:
        resp = call(cfg.socket, {"cmd": "set", "key": key, "value": args.value})
        if not resp.get("ok"):
            print(f"bsrmon: the running daemon refused: {resp.get('error')}", file=sys.stderr)
            return EXIT_ERROR
        print(f"{key} = {resp['value']} (saved to {path}, applied to the running daemon)")
    except (NotRunning, OSError):
        print(f"{key} = {new.get(key)} (saved to {path})")
    return EXIT_OK


def cmd_get(cfg: Config, args: argparse.Namespace) -> int:
    try:
        live = cfg if args.key is None else None
        if args.key is not None:
            resp = call(cfg.socket, {"cmd": "get", "key": args.key})
            if not resp.get("ok"):
                raise ConfigError(str(resp.get("error")))
            print(resp["value"])
            return EXIT_OK
    except (NotRunning, OSError):
        live = cfg
    assert live is not None
    keys = [args.key] if args.key else list(SETTABLE)
    for k in keys:
        v = live.get(k)
        print(v if args.key else f"{k} = {v}")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run, "start": cmd_start, "stop": cmd_stop, "status": cmd_status,
    "show": cmd_show, "watch": cmd_watch, "report": cmd_report, "set": cmd_set, "get": cmd_get,
}

if __name__ == "__main__":
    sys.exit(main())
