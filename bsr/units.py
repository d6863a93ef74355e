"""Option values as admins type them, checked against the ABI.

One function each way, shared by bsrsetup and bsradm:

* :func:`parse_value` turns the text of ``--KEY=TEXT`` (or a bsr.conf value)
  into what goes on the wire: an ``int`` in the field's base unit, or a
  ``str`` for string fields.  It raises :class:`ValueError` whose message
  completes ``"--KEY: "``, e.g. ``70000 is out of range 67..65534``.
* :func:`format_value` spells a wire value the way ``parse_value`` reads
  it back (shortest exact suffix for sizes and rates).

Units (the ``unit`` column of :mod:`bsr.abi`):

==========  ======================  =========================================
unit        bare number means       suffixes accepted
==========  ======================  =========================================
sectors     512-byte sectors        ``s`` sectors; ``k`` ``M`` ``G`` ``T``
                                    bytes in powers of 1024
bytes       bytes                   ``k`` ``M`` ``G`` ``T``; ``s`` sectors
KiB/s       KiB per second          ``k`` ``M`` ``G`` (per second)
ds          tenths of a second      none
s, count    seconds, a count        none
==========  ======================  =========================================

Suffix letters are case-insensitive.  Enumerations take their keyword with
dashes (``pull-ahead``, ``discard-zero-changes``, ``C``), case-insensitive;
flags take ``yes``/``no`` (also ``on``/``off``, ``true``/``false``, 1/0).
"""

from __future__ import annotations

import re

from bsr import abi

_NUMBER = re.compile(r"^(-?[0-9]+)([A-Za-z]?)$")
_POWERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_YES = ("yes", "on", "true", "1")
_NO = ("no", "off", "false", "0")

# Integer fields whose values also have names (index = value).
INT_NAMES: dict[str, tuple[str, ...]] = {
    "on_no_data_accessible": ("io-error", "suspend-io"),
}


def enum_keyword(member: object) -> str:
    """The admin spelling of an enum member: ``pull_ahead`` -> ``pull-ahead``."""
    return str(getattr(member, "name")).replace("_", "-")


class UnitError(ValueError):
    """The text is not a number valid for the unit; str() says what is expected."""


_SUFFIXES = {"sectors": "s, k, M, G, T", "bytes": "k, M, G, T, s", "KiB/s": "k, M, G"}


def _expected(unit: str) -> str:
    if unit == "sectors":
        return "expected a size: a number of 512-byte sectors, or bytes with a k/M/G/T suffix"
    if unit == "bytes":
        return "expected a size in bytes, optionally with a k/M/G/T suffix"
    if unit == "KiB/s":
        return "expected a rate: a number of KiB/s, or with a k/M/G suffix (per second)"
    return "expected a whole number"


def _scale(value: int, suffix: str, unit: str) -> int:
    s = suffix.lower()
    if not s:
        return value
    if unit == "sectors":
        if s == "s":
            return value
        if s in _POWERS:
            return value * _POWERS[s] // 512  # every suffix is a multiple of 512
    elif unit == "bytes":
        if s == "s":
            return value * 512
        if s in _POWERS:
            return value * _POWERS[s]
    elif unit == "KiB/s":
        if s in _POWERS and s != "t":
            return value * _POWERS[s] // 1024
    allowed = _SUFFIXES.get(unit)
    if allowed is None:
        raise UnitError(f"no unit suffix allowed here (the unit is {unit or 'a number'})")
    raise UnitError(f"unknown unit suffix '{suffix}' (allowed: {allowed})")


def parse_number(text: str, unit: str, signed: bool = False) -> int:
    """``text`` (e.g. ``40M``) as an integer in ``unit``, without a range check.

    The one place where unit suffixes are read: bsr.conf values (through
    :mod:`bsr.config.schema`) and bsrsetup options (:func:`parse_value`).
    Raises :class:`UnitError` saying what is expected."""
    m = _NUMBER.match(text.strip())
    if not m or (m.group(1).startswith("-") and not signed):
        raise UnitError(_expected(unit))
    return _scale(int(m.group(1)), m.group(2), unit)


def format_number(value: int, unit: str) -> str:
    """The shortest exact spelling of ``value``; :func:`parse_number` reads it back."""
    return _shortest(value, unit)


def _range_text(f: abi.Field) -> str:
    lo = "" if f.min is None else str(f.min)
    hi = "" if f.max is None else str(f.max)
    return f"{lo}..{hi}"


def _parse_int(f: abi.Field, text: str) -> int:
    names = INT_NAMES.get(f.name, ())
    if text in names:
        return names.index(text)
    m = _NUMBER.match(text.strip())
    if not m:
        what = f"a number ({f.unit})" if f.unit else "a number"
        if names:
            what += " or one of " + ", ".join(names)
        raise ValueError(f"'{text}' is not {what}")
    try:
        value = _scale(int(m.group(1)), m.group(2), f.unit)
    except UnitError as e:
        raise ValueError(f"{text}: {e}") from None
    lo = f.min
    if lo is None:
        lo = -(1 << 31) if f.type == "s32" else 0
    hi = f.max
    if hi is None:
        hi = {"u8": 0xFF, "u32": 0xFFFFFFFF, "s32": (1 << 31) - 1}.get(f.type, (1 << 64) - 1)
    if not lo <= value <= hi:
        if m.group(2):
            raise ValueError(f"{text} ({value} {f.unit}) is out of range {_range_text(f)}")
        raise ValueError(f"{text} is out of range {_range_text(f)}")
    return value


def parse_value(field: abi.Field, text: str) -> int | str:
    """Convert admin text for ``field`` to its wire value (see module doc)."""
    if field.type == "flag":
        low = text.strip().lower()
        if low in _YES:
            return 1
        if low in _NO:
            return 0
        raise ValueError(f"'{text}' is not yes or no")
    enum_cls = field.enum
    if enum_cls is not None:
        want = text.strip().lower().replace("_", "-")
        for member in enum_cls:
            if enum_keyword(member).lower() == want:
                return int(member)
        choices = ", ".join(enum_keyword(m) for m in enum_cls)
        raise ValueError(f"'{text}' is not one of {choices}")
    if field.type == "str":
        if field.maxlen and len(text.encode()) >= field.maxlen:
            raise ValueError(f"'{text}' is longer than {field.maxlen - 1} bytes")
        if "\0" in text:
            raise ValueError("value contains a NUL byte")
        return text
    if field.type == "bin":
        raise ValueError("binary fields cannot be set from text")
    return _parse_int(field, text)


def format_value(field: abi.Field, v: int | str) -> str:
    """Spell a wire value so that :func:`parse_value` reads it back."""
    if field.type == "flag":
        return "yes" if v else "no"
    enum_cls = field.enum
    if enum_cls is not None:
        try:
            return enum_keyword(enum_cls(int(v)))
        except ValueError:
            return str(v)
    if field.type == "str":
        return str(v)
    value = int(v)
    names = INT_NAMES.get(field.name, ())
    if 0 <= value < len(names):
        return names[value]
    return _shortest(value, field.unit)


def _shortest(value: int, unit: str) -> str:
    if value <= 0:
        return str(value)
    if unit == "sectors":
        steps = (("T", 1 << 31), ("G", 1 << 21), ("M", 1 << 11), ("k", 2))
    elif unit == "bytes":
        steps = (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10))
    elif unit == "KiB/s":
        steps = (("G", 1 << 20), ("M", 1 << 10), ("k", 1))
    else:
        return str(value)
    for suffix, size in steps:
        if value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)
