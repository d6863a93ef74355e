"""bsrmon configuration: ``/etc/bsr/bsrmon.toml`` (flat ``key = value``).

Every key has a default, so a missing file means "all defaults".  Values
are checked when loaded; a bad value raises :class:`ConfigError` naming the
file, the key, what was given and what is accepted.

Keys (spelled with dashes or underscores, both accepted)::

    file-path         = "/var/log/bsr"   # root of events.log and perfmon/
    period            = 1.0              # seconds between samples (0.1 .. 3600)
    types             = ["iostat", ...]  # series to write (default: all)
    file-size-limit   = "16M"            # rotate a series file beyond this
    total-size-limit  = "256M"           # budget per resource directory
    compress          = true             # gzip rotated files (else keep plain)
    listen            = ""               # "ADDR:PORT" serves Prometheus text
    socket            = "/run/bsrmon/bsrmon.sock"
    pid-file          = "/run/bsrmon/bsrmon.pid"
    queue-size        = 64               # sample batches buffered for the writer

When run by a non-root user the defaults of ``file-path``, ``socket`` and
``pid-file`` move to platformdirs' per-user log and runtime directories, and
the config file to the per-user config directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from bsrmon.series import TYPES

APP = "bsrmon"
SYSTEM_CONFIG = Path("/etc/bsr/bsrmon.toml")

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*$")
_SIZE_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ConfigError(ValueError):
    """A configuration value is not acceptable."""


def is_root() -> bool:
    return os.geteuid() == 0


def default_config_path() -> Path:
    if is_root():
        return SYSTEM_CONFIG
    return Path(platformdirs.user_config_dir(APP)) / "bsrmon.toml"


def _default_log_dir() -> Path:
    return Path("/var/log/bsr") if is_root() else Path(platformdirs.user_log_dir(APP))


def _default_run_dir() -> Path:
    return Path("/run/bsrmon") if is_root() else Path(platformdirs.user_runtime_dir(APP))


@dataclass
class Config:
    file_path: Path = field(default_factory=_default_log_dir)
    period: float = 1.0
    types: tuple[str, ...] = tuple(TYPES)
    file_size_limit: int = 16 << 20
    total_size_limit: int = 256 << 20
    compress: bool = True
    listen: str = ""
    socket: Path = field(default_factory=lambda: _default_run_dir() / "bsrmon.sock")
    pid_file: Path = field(default_factory=lambda: _default_run_dir() / "bsrmon.pid")
    queue_size: int = 64
    source: Path | None = None  # the file this config came from

    @property
    def perfmon_dir(self) -> Path:
        return self.file_path / "perfmon"

    def get(self, key: str) -> str:
        """A value as ``bsrmon get`` prints it."""
        name = _attr(key)
        v = getattr(self, name)
        if name == "types":
            return ",".join(v)
        if name in ("file_size_limit", "total_size_limit"):
            return format_size(v)
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    def with_value(self, key: str, value: Any) -> "Config":
        """A copy with one key changed (value as text or TOML value)."""
        name = _attr(key)
        return replace(self, **{name: _convert(name, value, "command line")})


SETTABLE = ("period", "types", "file-path", "file-size-limit", "total-size-limit",
            "compress", "listen")


def _attr(key: str) -> str:
    name = key.strip().replace("-", "_")
    if name not in _KEYS:
        raise ConfigError(f"unknown key {key!r}; known keys: "
                          + ", ".join(k.replace("_", "-") for k in sorted(_KEYS)))
    return name


_KEYS = {f.name for f in fields(Config)} - {"source"}


def parse_size(value: Any, what: str) -> int:
    """``1048576``, ``"512K"``, ``"16M"``, ``"1GiB"`` -> bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size like 16M, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise ConfigError(f"{what}: {value!r} is not a size (examples: 4096, 512K, 16M, 1G)")
        n = int(m.group(1)) * _SIZE_MULT[m.group(2).lower()]
    else:
        raise ConfigError(f"{what}: expected a size like 16M, got {value!r}")
    if n <= 0:
        raise ConfigError(f"{what}: must be greater than 0, got {value!r}")
    return n


def format_size(n: int) -> str:
    for suffix, mult in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % mult == 0:
            return f"{n // mult}{suffix}"
    return str(n)


def _convert(name: str, value: Any, where: str) -> Any:
    what = f"{where}: {name.replace('_', '-')}"
    if name == "period":
        try:
            p = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: expected seconds (e.g. 1 or 0.5), got {value!r}") from None
        if isinstance(value, bool) or not 0.1 <= p <= 3600:
            raise ConfigError(f"{what}: must be between 0.1 and 3600 seconds, got {value!r}")
        return p
    if name == "types":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise ConfigError(f"{what}: expected a list of types, got {value!r}")
        out: list[str] = []
        for t in items:
            t = str(t).strip()
            if t == "all":
                return tuple(TYPES)
            if t not in TYPES:
                raise ConfigError(f"{what}: unknown type {t!r}; known: {', '.join(TYPES)}")
            if t not in out:
                out.append(t)
        return tuple(out)
    if name in ("file_size_limit", "total_size_limit"):
        return parse_size(value, what)
    if name == "compress":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("yes", "true", "1", "on"):
            return True
        if str(value).lower() in ("no", "false", "0", "off"):
            return False
        raise ConfigError(f"{what}: expected yes or no, got {value!r}")
    if name == "listen":
        s = str(value).strip()
        if s:
            parse_listen(s, what)
        return s
    if name in ("file_path", "socket", "pid_file"):
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ConfigError(f"{what}: expected a path, got {value!r}")
        return Path(value)
    if name == "queue_size":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100000:
            raise ConfigError(f"{what}: expected an integer 1..100000, got {value!r}")
        return value
    raise ConfigError(f"{what}: unknown key")


def parse_listen(s: str, what: str = "listen") -> tuple[str, int]:
    """``ADDR:PORT`` / ``[v6]:PORT`` / ``:PORT`` -> (host, port)."""
    host, sep, port_s = s.rpartition(":")
    if not sep or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ConfigError(f"{what}: expected ADDR:PORT (e.g. 127.0.0.1:9942), got {s!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_s)


def load(path: Path | None = None, *, must_exist: bool = False) -> Config:
    """Read a config file; a missing default file gives the defaults."""
    explicit = path is not None
    path = path or default_config_path()
    cfg = Config()
    try:
        text = path.read_text()
    except FileNotFoundError:
        if explicit or must_exist:
            raise ConfigError(f"{path}: no such file") from None
        return cfg
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}; known keys: "
                              + ", ".join(k.replace("_", "-") for k in sorted(_KEYS)))
        values[name] = _convert(name, value, str(path))
    return replace(cfg, source=path, **values)


def _toml_value(name: str, cfg: Config) -> str:
    v = getattr(cfg, name)
    if name == "types":
        return "[" + ", ".join(f'"{t}"' for t in v) + "]"
    if name in ("file_size_limit", "total_size_limit"):
        return f'"{format_size(v)}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"{v:g}" if isinstance(v, float) else str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def save_key(path: Path, cfg: Config, key: str) -> None:
    """Write one key into the file, keeping every other line (and comments)."""
    name = _attr(key)
    line = f"{name.replace('_', '-')} = {_toml_value(name, cfg)}\n"
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    pat = re.compile(rf"^\s*{re.escape(name).replace('_', '[-_]')}\s*=")
    for i, old in enumerate(lines):
        if pat.match(old):
            lines[i] = line
            break
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)
