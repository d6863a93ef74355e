"""A zip of precompiled Python modules for fast imports inside guests.

Under TCG every file the guest opens over 9p costs several emulated round
trips, so a Python command that imports ~250 modules (bsrsetup: stdlib +
pyroute2) spends most of its time looking for and reading files.  The
harness builds one zip of compiled modules on the host, the guest copies it
into its tmpfs once at boot, and commands find it first on PYTHONPATH:
imports then come from RAM.  Only pure-Python code goes in; extension
modules and packages that read data files next to their code (textual's
CSS, the project itself, which changes while you work) stay on 9p.
"""
from __future__ import annotations

import hashlib
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

GUEST_PATH = "/tmp/bsr-py.zip"

# Third-party distributions the command-line tools import.
THIRD_PARTY = ("pyroute2", "platformdirs", "tomli")

# Never needed by the tools, anywhere in a tree.
SKIP_ANYWHERE = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "pydoc_data", "__pycache__",
}
# Top-level entries of the stdlib directory that are not stdlib modules.
SKIP_TOP = SKIP_ANYWHERE | {"site-packages", "lib-dynload", "venv"}


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _site_dir() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _key() -> str:
    parts = [sys.version]
    for dist in THIRD_PARTY:
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _top_level_names(dist: str) -> list[str]:
    try:
        text = metadata.distribution(dist).read_text("top_level.txt") or ""
    except metadata.PackageNotFoundError:
        return []
    names = [n.strip() for n in text.splitlines() if n.strip()]
    return names or [dist]


def _add_tree(zf: zipfile.PyZipFile, root: Path, names: list[str] | None) -> None:
    for entry in sorted(root.iterdir()):
        if names is not None and entry.stem not in names and entry.name not in names:
            continue
        if entry.name in SKIP_TOP or entry.name.startswith("config-"):
            continue
        if entry.is_dir() and (entry / "__init__.py").exists():
            zf.writepy(str(entry), filterfunc=_keep)
        elif entry.is_file() and entry.suffix == ".py":
            zf.writepy(str(entry))


def _keep(path: str) -> bool:
    return Path(path).name not in SKIP_ANYWHERE


def build(cache_dir: Path) -> Path:
    """The zip for this interpreter and these package versions (built once)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / f"guest-py-{_key()}.zip"
    if dest.exists():
        return dest
    tmp = dest.with_suffix(".tmp")
    with zipfile.PyZipFile(tmp, "w", compression=zipfile.ZIP_STORED, optimize=0) as zf:
        _add_tree(zf, _stdlib_dir(), None)
        wanted = [n for d in THIRD_PARTY for n in _top_level_names(d)]
        _add_tree(zf, _site_dir(), wanted)
    tmp.rename(dest)
    return dest
