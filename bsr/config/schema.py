"""What may be written where in bsr.conf, and how values are read and printed.

Kernel options (section ``options``, ``net``, ``disk``) come from
:mod:`bsr.abi`: the keyword is ``Field.key``, and the unit, default and
range are the field's.  Keywords that exist only in the configuration
(``svc-auto-up``, handlers, startup, global) are declared here.
"""
from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from typing import Union

from bsr import abi

from .errors import ConfigError
from .syntax import Statement, after
from bsr.units import UnitError, format_number, parse_number

Value = Union[int, bool, str]


class Kind(enum.Enum):
    INT = "int"
    FLAG = "flag"
    ENUM = "enum"
    STR = "str"


@dataclass(frozen=True)
class Option:
    key: str
    kind: Kind
    struct: str = ""  # abi struct name the option belongs to, "" = config only
    unit: str = ""
    min: int | None = None
    max: int | None = None
    default: Value | None = None
    choices: tuple[str, ...] = ()  # ENUM keywords; for INT: names of 0, 1, ...
    maxlen: int = 0
    sensitive: bool = False
    doc: str = ""

    def parse(self, st: Statement) -> Value:
        """Read the value of ``st`` (``KEY VALUE;``), or raise ConfigError."""
        if self.kind is Kind.FLAG and not st.args:
            return True
        if not st.args:
            raise ConfigError(st.end or st.pos, f"expected a value after '{self.key}'")
        if len(st.args) > 1:
            raise ConfigError(after(st.args[0]),
                              f"expected ';' after '{self.key} {st.args[0].text}'")
        tok = st.args[0]
        try:
            return self.parse_text(tok.text)
        except ValueError as e:
            raise ConfigError(tok.pos, str(e)) from None

    def parse_text(self, text: str) -> Value:
        """Convert one value; raises ValueError with a message for the admin."""
        if self.kind is Kind.FLAG:
            low = text.lower()
            if low in ("yes", "true", "on", "1"):
                return True
            if low in ("no", "false", "off", "0"):
                return False
            raise ValueError(f"'{self.key}' expects yes or no, not '{text}'")
        if self.kind is Kind.ENUM:
            for c in self.choices:
                if c.lower() == text.lower():
                    return c
            raise ValueError(f"'{self.key}' expects one of {', '.join(self.choices)}; "
                             f"not '{text}'" + _hint(text, self.choices))
        if self.kind is Kind.STR:
            if self.maxlen and len(text.encode()) >= self.maxlen:
                raise ValueError(f"'{self.key}' is longer than {self.maxlen - 1} bytes")
            return text
        if self.choices and text in self.choices:
            return self.choices.index(text)
        try:
            value = parse_number(text, self.unit)
        except UnitError as e:
            extra = f" or one of {', '.join(self.choices)}" if self.choices else ""
            raise ValueError(f"bad value '{text}' for '{self.key}': {e}{extra}") from None
        if (self.min is not None and value < self.min) or \
                (self.max is not None and value > self.max):
            raise ValueError(f"'{self.key}' {text} is out of range: allowed "
                             f"{self.describe_range()}")
        return value

    def describe_range(self) -> str:
        lo = format_number(self.min or 0, self.unit)
        hi = format_number(self.max, self.unit) if self.max is not None else "..."
        unit = f" ({self.unit})" if self.unit else ""
        return f"{lo}..{hi}{unit}"

    def format(self, value: Value) -> str:
        """Spell ``value`` for bsr.conf (what dump prints; parse_text reads it)."""
        if self.kind is Kind.FLAG:
            return "yes" if value else "no"
        if self.kind is Kind.STR:
            return quote(str(value))
        if self.kind is Kind.ENUM:
            return str(value)
        assert isinstance(value, int)
        if self.choices and 0 <= value < len(self.choices):
            return self.choices[value]
        return format_number(value, self.unit)

    def cli(self, value: Value) -> str:
        """``--key=value`` for bsrsetup: numbers bare in the base unit."""
        if self.kind is Kind.FLAG:
            return f"--{self.key}={'yes' if value else 'no'}"
        return f"--{self.key}={value}"

    def same(self, a: Value | None, b: Value | None) -> bool:
        """Compare two values, None meaning the default."""
        a = self.default if a is None else a
        b = self.default if b is None else b
        if self.kind is Kind.FLAG:
            return bool(a) == bool(b)
        if self.kind is Kind.ENUM and isinstance(a, str) and isinstance(b, str):
            return a.lower() == b.lower()
        if self.kind is Kind.STR:
            return (a or "") == (b or "")
        return a == b


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _hint(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown(word: str, choices, where: str = "", what: str = "keyword") -> str:
    """Message for an unknown keyword, with the closest known one."""
    place = f" in '{where}'" if where else ""
    return f"unknown {what} '{word}'{place}" + _hint(word, choices)


# Config spellings of integer fields whose values have names.
_INT_NAMES: dict[str, tuple[str, ...]] = {
    "on_no_data_accessible": ("io-error", "suspend-io"),
}


def _from_field(f: abi.Field, struct: str) -> Option:
    default = f.default
    if f.type == "flag":
        return Option(f.key, Kind.FLAG, struct, default=bool(default), doc=f.doc)
    if f.enum is not None:
        names = tuple(m.name.replace("_", "-") for m in f.enum)
        dflt = f.enum(default).name.replace("_", "-") if default is not None else None
        return Option(f.key, Kind.ENUM, struct, choices=names, default=dflt, doc=f.doc)
    if f.type == "str":
        return Option(f.key, Kind.STR, struct, default=default, maxlen=f.maxlen,
                      sensitive=bool(f.flags & abi.SENSITIVE), doc=f.doc)
    return Option(f.key, Kind.INT, struct, unit=f.unit, min=f.min, max=f.max,
                  default=default, choices=_INT_NAMES.get(f.name, ()), doc=f.doc)


def _table(*items: tuple[abi.Struct, tuple[str, ...]]) -> dict[str, Option]:
    out: dict[str, Option] = {}
    for struct, skip in items:
        for f in struct.fields:
            if f.name not in skip:
                out[f.key] = _from_field(f, struct.name)
    return out


RES_OPTIONS = _table((abi.RES_OPTS, ("node_id",)))
NET_OPTIONS = _table((abi.NET_CONF, ()))
DISK_ONLY = _table((abi.DISK_CONF, ("backing_dev", "meta_dev", "meta_dev_idx")))
PEER_DEVICE_OPTIONS = _table((abi.PEER_DEVICE_CONF, ()))
# The disk section carries both disk_conf and peer_device_conf options.
DISK_OPTIONS = {**DISK_ONLY, **PEER_DEVICE_OPTIONS}

SVC_AUTO_UP = Option("svc-auto-up", Kind.FLAG, default=True,
                     doc="bring the resource up when bsr.service starts")
HOST_OPTIONS = {**RES_OPTIONS, SVC_AUTO_UP.key: SVC_AUTO_UP}

_HANDLER_NAMES = (
    "pri-on-incon-degr", "pri-lost-after-sb", "pri-lost", "fence-peer",
    "unfence-peer", "local-io-error", "split-brain", "before-resync-target",
    "after-resync-target", "before-resync-source", "after-resync-source",
    "out-of-sync", "initial-split-brain", "quorum-lost", "disconnected",
)
HANDLERS = {n: Option(n, Kind.STR, maxlen=4096) for n in _HANDLER_NAMES}

STARTUP = {
    "wfc-timeout": Option("wfc-timeout", Kind.INT, unit="s", min=0, max=1 << 31, default=0),
    "degr-wfc-timeout": Option("degr-wfc-timeout", Kind.INT, unit="s", min=0, max=1 << 31,
                               default=0),
    "outdated-wfc-timeout": Option("outdated-wfc-timeout", Kind.INT, unit="s", min=0,
                                   max=1 << 31, default=0),
    "wait-after-sb": Option("wait-after-sb", Kind.FLAG, default=False),
    "become-primary-on": Option("become-primary-on", Kind.STR, maxlen=abi.NAME_LEN),
}

GLOBAL = {
    "usage-count": Option("usage-count", Kind.ENUM, choices=("yes", "no", "ask"), default="no"),
    "udev-always-use-vnr": Option("udev-always-use-vnr", Kind.FLAG, default=False),
    "disable-ip-verification": Option("disable-ip-verification", Kind.FLAG, default=False),
    "dialog-refresh": Option("dialog-refresh", Kind.INT, unit="s", min=0, max=600, default=1),
    "minor-count": Option("minor-count", Kind.INT, unit="count", min=1,
                          max=abi.MAX_MINORS, default=32),
}

SECTIONS: dict[str, dict[str, Option]] = {
    "options": RES_OPTIONS, "net": NET_OPTIONS, "disk": DISK_OPTIONS,
    "handlers": HANDLERS, "startup": STARTUP,
}
# The order in which dump prints sections.
SECTION_ORDER = ("options", "net", "disk", "handlers", "startup")
