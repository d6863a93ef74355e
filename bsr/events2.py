"""The ``events2`` text format, both directions.

A line is ``[TIMESTAMP ]VERB OBJECT key:value key:value ...`` exactly as
``drbdsetup events2`` prints it (see docs/events2.md).  Two lines are
special: ``exists -`` ends the initial dump, ``- skipped N`` reports lost
events.  ``--json`` output is one object per line::

    {"timestamp": "...", "event": "change", "object": "device",
     "fields": {"name": "r0", "volume": "0", "minor": "0", "disk": "UpToDate"}}

Parsing never raises: a line that is not events2 comes back as ``None``
from :func:`parse_line` (callers count and skip it).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Iterable, Iterator

from bsr.model import Event, Kind, Verb

MAX_LINE = 64 * 1024  # longer lines are garbage, not events

_VERBS = {v.value: v for v in Verb}
_KINDS = {k.value: k for k in Kind if k is not Kind.other}


@lru_cache(maxsize=64)
def _parse_timestamp(word: str) -> datetime | None:
    """A timestamp word (None if it is not one).  Cached: the lines of one
    statistics batch share their timestamp, and datetimes are immutable."""
    if len(word) < 19 or word[4:5] != "-" or word[10:11] != "T":
        return None
    try:
        return datetime.fromisoformat(word)
    except ValueError:
        return None


def parse_line(line: str | bytes) -> Event | None:
    """Parse one line of events2 text or JSON; None if it is not an event."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line or len(line) > MAX_LINE:
        return None
    if line.startswith("{"):
        return _parse_json(line)
    words = line.split()
    ts = _parse_timestamp(words[0])
    if ts is not None:
        words = words[1:]
    if len(words) < 2:
        return None
    if words[0] == "-" and words[1] == "skipped":
        try:
            n = int(words[2]) if len(words) > 2 else 1
        except ValueError:
            return None
        return Event(None, Kind.other, timestamp=ts, skipped=max(n, 1))
    verb = _VERBS.get(words[0])
    if verb is None:
        return None
    if words[1] == "-":
        return Event(verb, Kind.other, timestamp=ts, raw_object="-")
    kind = _KINDS.get(words[1], Kind.helper if words[1] == "helper" else None)
    fields: dict[str, str] = {}
    for w in words[2:]:
        k, sep, v = w.partition(":")
        if not sep or not k:
            return None
        fields[k] = v
    if kind is None:
        return Event(verb, Kind.other, fields, ts, raw_object=words[1])
    return Event(verb, kind, fields, ts, raw_object=words[1])


def _parse_json(line: str) -> Event | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    ts = None
    if isinstance(obj.get("timestamp"), str):
        ts = _parse_timestamp(obj["timestamp"])
    if "skipped" in obj:
        n = obj["skipped"]
        return Event(None, Kind.other, timestamp=ts, skipped=n if isinstance(n, int) and n > 0 else 1)
    verb = _VERBS.get(obj.get("event")) if isinstance(obj.get("event"), str) else None
    if verb is None:
        return None
    name = obj.get("object")
    if name == "-" or name is None:
        return Event(verb, Kind.other, timestamp=ts, raw_object="-")
    if not isinstance(name, str):
        return None
    raw = obj.get("fields", {})
    if not isinstance(raw, dict):
        return None
    fields = {str(k): _json_value(v) for k, v in raw.items()}
    kind = _KINDS.get(name, Kind.other)
    return Event(verb, kind, fields, ts, raw_object=name)


def _json_value(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def iter_events(lines: Iterable[str | bytes]) -> Iterator[Event]:
    """Events of a stream, skipping lines that are not events."""
    for line in lines:
        ev = parse_line(line)
        if ev is not None:
            yield ev


def format_timestamp(ts: datetime) -> str:
    """Local time with microseconds and UTC offset, as drbdsetup prints it."""
    if ts.tzinfo is None:
        ts = ts.astimezone()
    return ts.isoformat(timespec="microseconds")


def format_event(ev: Event, *, timestamps: bool = False) -> str:
    """One events2 text line (no newline)."""
    prefix = ""
    if timestamps:
        prefix = format_timestamp(ev.timestamp or datetime.now().astimezone()) + " "
    if ev.skipped:
        return f"{prefix}- skipped {ev.skipped}"
    verb = ev.verb.value if ev.verb else "-"
    if ev.kind is Kind.other:
        obj = ev.raw_object or "-"
    else:
        obj = ev.kind.value
    if obj == "-":
        return f"{prefix}{verb} -"
    parts = [f"{prefix}{verb} {obj}"]
    parts.extend(f"{k}:{v}" for k, v in ev.fields.items())
    return " ".join(parts)


def format_json(ev: Event, *, timestamps: bool = False) -> str:
    """One JSON object (no newline)."""
    out: dict[str, object] = {}
    if timestamps:
        out["timestamp"] = format_timestamp(ev.timestamp or datetime.now().astimezone())
    if ev.skipped:
        out["skipped"] = ev.skipped
        return json.dumps(out)
    out["event"] = ev.verb.value if ev.verb else None
    out["object"] = ev.raw_object or ("-" if ev.kind is Kind.other else ev.kind.value)
    if ev.kind is not Kind.other or ev.fields:
        out["fields"] = dict(ev.fields)
    return json.dumps(out)
