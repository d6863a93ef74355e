"""Numbers with unit suffixes, as bsr.conf and the bsrsetup command line take them.

A bare number is in the option's base unit (the unit of the ABI field):

=========  =====================  ==========================================
unit       bare number means      suffixes
=========  =====================  ==========================================
sectors    512-byte sectors       ``s`` sectors; ``k``/``K``, ``M``, ``G``,
                                  ``T`` are bytes (KiB, MiB, GiB, TiB)
bytes      bytes                  ``k``, ``M``, ``G``, ``T`` (powers of
                                  1024), ``s`` sectors
KiB/s      KiB per second         ``k``, ``M``, ``G`` (per second)
ds/s/count that unit              none
=========  =====================  ==========================================

Suffixes are case-insensitive except that ``m``/``M`` both mean MiB.
"""
from __future__ import annotations

import re

_NUM = re.compile(r"^([0-9]+)([A-Za-z]?)$")
_POW = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
SIZE_UNITS = ("sectors", "bytes", "KiB/s")


class UnitError(ValueError):
    """The text is not a number valid for the unit; str() says what is expected."""


def parse_number(text: str, unit: str) -> int:
    """Convert ``text`` (e.g. ``40M``) to an integer in ``unit``."""
    m = _NUM.match(text)
    if not m:
        raise UnitError(_expected(unit))
    value, suffix = int(m.group(1)), m.group(2).lower()
    if not suffix:
        return value
    if unit == "sectors":
        if suffix == "s":
            return value
        if suffix in _POW:
            nbytes = value * _POW[suffix]
            if nbytes % 512:
                raise UnitError(f"'{text}' is not a whole number of 512-byte sectors")
            return nbytes // 512
    elif unit == "bytes":
        if suffix == "s":
            return value * 512
        if suffix in _POW:
            return value * _POW[suffix]
    elif unit == "KiB/s":
        if suffix in _POW:
            return value * _POW[suffix] // 1024
    raise UnitError(f"unknown unit suffix '{m.group(2)}': {_expected(unit)}")


def _expected(unit: str) -> str:
    if unit == "sectors":
        return "expected a size: a number of 512-byte sectors, or bytes with a k/M/G/T suffix"
    if unit == "bytes":
        return "expected a size in bytes, optionally with a k/M/G/T suffix"
    if unit == "KiB/s":
        return "expected a rate: a number of KiB/s, or with a k/M/G suffix (per second)"
    return "expected a whole number"


def format_number(value: int, unit: str) -> str:
    """The shortest exact spelling of ``value``; parse_number() reads it back."""
    if value <= 0:
        return str(value)
    if unit == "sectors":
        steps = (("T", 1 << 31), ("G", 1 << 21), ("M", 1 << 11))
    elif unit == "bytes":
        steps = (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10))
    elif unit == "KiB/s":
        steps = (("G", 1 << 20), ("M", 1 << 10))
    else:
        return str(value)
    for suffix, size in steps:
        if value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)
