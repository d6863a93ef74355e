"""Entry point of bsrsetup: parse, talk to the kernel, map errors to exit codes.

Exit codes (like drbdsetup): 0 success; 1 the kernel refused or failed
the command, its reason on stderr as ``OBJECT: REASON``; 10 the named
resource/device/connection does not exist (state queries: status, show,
events2 RES, role, cstate, dstate); 20 bad command line, or the bsr
module is not loaded ("Could not connect to 'bsr' generic netlink family").
Interrupting ``events2`` (SIGINT) or closing its output (EPIPE) exits 0.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from typing import Callable, TextIO

from bsr import abi
from bsr.netlink import BsrError, BsrNetlink, ModuleNotLoaded
from bsr.setup import show, status
from bsr.setup.args import PROG, UsageError, build_parser
from bsr.setup.commands import build_request, resolve_minor
from bsr.setup.events import Events2, Events2Options, Netlink, StdinPoll

EXIT_OK = 0
EXIT_KERNEL = 1
EXIT_NO_OBJECT = 10
EXIT_USAGE = 20


def userland_version() -> str:
    try:
        from importlib.metadata import version
        return version("bsr-utils")
    except Exception:  # not installed: running from the source tree
        return "0.1.0"


def error_text(label: str, e: BsrError) -> str:
    """``r0: State change failed: (-2) Need access to UpToDate data``.

    The kernel's text is ``[CATEGORY: ]REASON`` or ``OBJECT: REASON``; an
    object prefix (one word, or ``minor N``) is replaced by our own label.
    """
    head, sep, tail = e.text.partition(": ")
    if sep and (" " not in head or re.fullmatch(r"minor \d+", head)):
        return f"{label}: Failure: ({-e.errno}) {tail}"
    if sep:
        return f"{label}: {head}: ({-e.errno}) {tail}"
    return f"{label}: Failure: ({-e.errno}) {e.text}"


class _Ctx:
    def __init__(self, stdout: TextIO, stderr: TextIO, stdin: TextIO | None) -> None:
        self.out, self.err, self.stdin = stdout, stderr, stdin

    def fail(self, msg: str, code: int) -> int:
        self.err.write(msg + "\n")
        self.err.flush()
        return code


def main(argv: list[str] | None = None, *,
         netlink: Callable[[], Netlink] = BsrNetlink,
         stdout: TextIO | None = None, stderr: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    io = _Ctx(stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin)
    try:
        return _main(argv, netlink, io)
    except UsageError as e:
        return io.fail(f"{PROG}: {e}", EXIT_USAGE)
    except ModuleNotLoaded:
        return io.fail(f"Could not connect to '{abi.FAMILY_NAME}' generic netlink family "
                       f"(is the bsr module loaded?)", EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        if io.out is sys.stdout:
            _silence_stdout()  # so that the exit-time flush does not complain
        return EXIT_OK


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(argv: list[str] | None, netlink: Callable[[], Netlink], io: _Ctx) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.version:
        return _version(netlink, io)
    if ns.command is None:
        io.err.write(parser.format_usage())
        return io.fail(f"{PROG}: missing COMMAND (see {PROG} --help)", EXIT_USAGE)
    if ns.command in ("status", "show", "events2", "role", "cstate", "dstate"):
        return _query(ns, netlink, io)
    req = build_request(ns)  # argument errors before touching the kernel
    nl = netlink()
    try:
        resolve_minor(nl, req)
        reply = nl.request(req.cmd, minor=req.minor, **req.structs)
    except BsrError as e:
        return io.fail(error_text(req.label, e), EXIT_KERNEL)
    finally:
        _close(nl)
    if reply.info_text:
        io.err.write(f"{req.label}: {reply.info_text}\n")
    return EXIT_OK


def _close(nl: Netlink) -> None:
    close = getattr(nl, "close", None)
    if close is not None:
        close()


def _version(netlink: Callable[[], Netlink], io: _Ctx) -> int:
    io.out.write(f"{PROG} {userland_version()} (userland, ABI {abi.ABI_VERSION})\n")
    try:
        nl = netlink()
    except ModuleNotLoaded:
        io.out.write("bsr module: not loaded\n")
        return EXIT_OK
    try:
        v = nl.request("GET_VERSION").structs.get("version_info", {})
    except BsrError as e:
        return io.fail(error_text("bsr module", e), EXIT_KERNEL)
    finally:
        _close(nl)
    io.out.write(f"bsr module: {v.get('version', '?')} (ABI {v.get('abi_version', '?')}, "
                 f"protocol {v.get('proto_min', '?')}-{v.get('proto_max', '?')}, "
                 f"built for {v.get('build', '?')})\n")
    return EXIT_OK


def _query(ns: argparse.Namespace, netlink: Callable[[], Netlink], io: _Ctx) -> int:
    res = None if getattr(ns, "resource", "all") in (None, "all") else ns.resource
    if ns.command == "dstate":
        res = None
    nl = netlink()
    try:
        return _run_query(ns, nl, res, io)
    except BsrError as e:
        if e.errno in (errno.ENOENT, errno.ENODEV) and res:
            return io.fail(f"{res}: No such resource", EXIT_NO_OBJECT)
        return io.fail(error_text(res or PROG, e), EXIT_KERNEL)
    finally:
        _close(nl)


def _run_query(ns: argparse.Namespace, nl: Netlink, res: str | None, io: _Ctx) -> int:
    c = ns.command
    if c == "events2":
        opts = Events2Options(resource=res, now=ns.now, statistics=ns.statistics,
                              timestamps=ns.timestamps, json=ns.json,
                              interval=ns.interval, poll=ns.poll)
        poll = StdinPoll(io.stdin.fileno()) if ns.poll and io.stdin is not None else None
        return Events2(nl, opts, io.out, poll).run()
    if c == "show":
        conf = show.load(nl, res)
        if res and not conf:
            return io.fail(f"{res}: No such resource", EXIT_NO_OBJECT)
        io.out.write(show.format_json(conf) if ns.json
                     else show.format_text(conf, show_defaults=ns.show_defaults))
        return EXIT_OK
    st = status.load_state(nl, res)
    if c == "status":
        if res and not st.resource_names():
            return io.fail(f"{res}: No such resource", EXIT_NO_OBJECT)
        if ns.json:
            io.out.write(status.format_json(st))
        else:
            color = ns.color == "always" or (ns.color == "auto" and _isatty(io.out))
            io.out.write(status.format_text(st, verbose=ns.verbose,
                                            statistics=ns.statistics, color=color))
        return EXIT_OK
    if c == "role":
        text = status.role_text(st, ns.resource)
        what = f"{ns.resource}: No such resource"
    elif c == "cstate":
        text = status.cstate_text(st, ns.resource, ns.peer_node_id)
        what = f"{ns.resource}: No such connection to peer-node-id:{ns.peer_node_id}"
    else:
        text = status.dstate_text(st, ns.minor)
        what = f"minor:{ns.minor}: No such device"
    if text is None:
        return io.fail(what, EXIT_NO_OBJECT)
    io.out.write(text + "\n")
    return EXIT_OK


def _isatty(f: TextIO) -> bool:
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False
