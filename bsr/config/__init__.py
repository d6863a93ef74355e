"""bsr.conf: parser, schema (units, ranges, defaults from bsr.abi), model, dump.

>>> cfg = load("/etc/bsr.conf")          # raises ConfigError(file:line:col: ...)
>>> print(dump(cfg))
"""
from __future__ import annotations

from .build import build
from .dump import dump
from .errors import ConfigError, Pos
from .model import Address, Config, Connection, Host, Path, Resource, Volume
from .syntax import parse_file, parse_text

DEFAULT_CONFIG = "/etc/bsr.conf"


def load(path: str) -> Config:
    """Read and check a configuration file with its includes."""
    return build(parse_file(path), path)


def loads(text: str, name: str = "<string>", base_dir: str = ".") -> Config:
    """Read configuration text; includes are relative to ``base_dir``."""
    return build(parse_text(text, name, base_dir), name)


__all__ = [
    "Address", "Config", "ConfigError", "Connection", "DEFAULT_CONFIG", "Host", "Path",
    "Pos", "Resource", "Volume", "dump", "load", "loads",
]
