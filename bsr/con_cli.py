"""bsrcon: information about the bsr kernel module and its parameters.

    bsrcon info                 module version, ABI, build, module statistics
    bsrcon get-param [NAME]     one parameter, or all as NAME=VALUE lines
    bsrcon set-param NAME VALUE change a writable parameter
    bsrcon --version

Parameters live in /sys/module/bsr/parameters.  Exit status: 0 success,
1 the kernel refused (e.g. a read-only parameter or a bad value), 10 no
such parameter, 20 usage error or the module is not loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn, TextIO

from bsr import abi
from bsr.netlink import BsrError, BsrNetlink, ModuleNotLoaded

PROG = "bsrcon"
PARAMS = Path("/sys/module/bsr/parameters")


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


def build_parser() -> _Parser:
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0] + ".",
                epilog="Exit status: 0 success; 1 the kernel refused; 10 no such "
                "parameter; 20 usage error or the bsr module is not loaded.")
    p.add_argument("--version", action="store_true", help="print the userland and module versions")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="module version, ABI, build and statistics",
                   description="Print the module's version, ABI and protocol range, the "
                   "kernel it was built for, and its statistics (GET_VERSION).")
    g = sub.add_parser("get-param", help="print module parameters",
                       description="Print parameter NAME, or every parameter as NAME=VALUE.")
    g.add_argument("name", nargs="?", metavar="NAME")
    s = sub.add_parser("set-param", help="change a module parameter",
                       description="Write VALUE to the writable parameter NAME.")
    s.add_argument("name", metavar="NAME")
    s.add_argument("value", metavar="VALUE")
    return p


def main(argv: list[str] | None = None, *, netlink: Callable[[], BsrNetlink] = BsrNetlink,
         params: Path = PARAMS, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        ns = build_parser().parse_args(argv)
    except _Usage as e:
        err.write(f"{PROG}: {e}\n")
        return 20
    try:
        if ns.version:
            return _version(netlink, out)
        if ns.command == "info":
            return _info(netlink, out)
        if ns.command == "get-param":
            return _get(params, ns.name, out, err)
        if ns.command == "set-param":
            return _set(params, ns.name, ns.value, err)
    except ModuleNotLoaded:
        err.write(f"{PROG}: the bsr module is not loaded\n")
        return 20
    except BsrError as e:
        err.write(f"{PROG}: {e}\n")
        return 1
    err.write(f"{PROG}: missing COMMAND (see {PROG} --help)\n")
    return 20


def _version(netlink: Callable[[], BsrNetlink], out: TextIO) -> int:
    from bsr.setup.cli import userland_version
    out.write(f"{PROG} {userland_version()} (userland, ABI {abi.ABI_VERSION})\n")
    try:
        v, _ = _get_version(netlink)
    except ModuleNotLoaded:
        out.write("bsr module: not loaded\n")
        return 0
    out.write(f"bsr module: {v.get('version', '?')} (ABI {v.get('abi_version', '?')})\n")
    return 0


def _get_version(netlink: Callable[[], BsrNetlink]) -> tuple[dict, dict]:
    nl = netlink()
    try:
        m = nl.request("GET_VERSION")
    finally:
        nl.close()
    return m.structs.get("version_info", {}), m.structs.get("module_stats", {})


def _info(netlink: Callable[[], BsrNetlink], out: TextIO) -> int:
    v, stats = _get_version(netlink)
    out.write(f"version: {v.get('version', '?')}\n")
    out.write(f"abi: {v.get('abi_version', '?')} (userland {abi.ABI_VERSION})\n")
    out.write(f"protocol: {v.get('proto_min', '?')}-{v.get('proto_max', '?')}\n")
    out.write(f"build: {v.get('build', '?')}\n")
    for f in abi.MODULE_STATS.fields:
        out.write(f"{f.name.replace('_', '-')}: {stats.get(f.name, 0)}\n")
    return 0


def _param_dir(params: Path) -> Path:
    if not params.is_dir():
        raise ModuleNotLoaded()
    return params


def _get(params: Path, name: str | None, out: TextIO, err: TextIO) -> int:
    d = _param_dir(params)
    if name is None:
        for p in sorted(d.iterdir()):
            out.write(f"{p.name}={_read(p)}\n")
        return 0
    p = d / name
    if "/" in name or not p.is_file():
        return _unknown(d, name, err)
    out.write(_read(p) + "\n")
    return 0


def _read(p: Path) -> str:
    try:
        return p.read_text().strip()
    except OSError as e:
        return f"<unreadable: {e.strerror}>"


def _set(params: Path, name: str, value: str, err: TextIO) -> int:
    d = _param_dir(params)
    p = d / name
    if "/" in name or not p.is_file():
        return _unknown(d, name, err)
    try:
        p.write_text(value + "\n")
    except PermissionError:
        err.write(f"{PROG}: {name}: parameter is read-only (or you are not root)\n")
        return 1
    except OSError as e:
        err.write(f"{PROG}: {name}: the module refused '{value}': {e.strerror}\n")
        return 1
    return 0


def _unknown(d: Path, name: str, err: TextIO) -> int:
    known = ", ".join(sorted(p.name for p in d.iterdir())) or "none"
    err.write(f"{PROG}: unknown parameter '{name}' (known: {known})\n")
    return 10


if __name__ == "__main__":
    sys.exit(main())
