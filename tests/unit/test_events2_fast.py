"""The events2 parser's word splitting and the State's merge of changed keys
only give what a word-by-word parse and a key-by-key merge give."""

from __future__ import annotations

import enum
from dataclasses import fields as dc_fields
from typing import Any

from hypothesis import given, settings, strategies as st

from bsr.events2 import parse_line
from bsr.model import _IDENTITY, _MERGE_PLAN, _new, Event, Kind, State, Verb


def reference_fields(words: list[str]) -> dict[str, str] | None:
    """key:value words, one at a time (None for a word that is not one)."""
    out: dict[str, str] = {}
    for w in words:
        k, sep, v = w.partition(":")
        if not sep or not k:
            return None
        out[k] = v
    return out


def reference_merge(obj: Any, kind: Kind, ev: Event, parsed: dict[str, str]) -> None:
    """Every key of the event looked at, typed keys parsed when their text changed."""
    plan = _MERGE_PLAN[kind]
    for k, v in ev.fields.items():
        spec = plan.get(k)
        if spec is None:
            obj.extra[k] = v
            continue
        if spec is _IDENTITY or parsed.get(k) == v:
            continue
        parsed[k] = v
        attr, parse = spec
        try:
            setattr(obj, attr, parse(v))
        except (ValueError, KeyError, OverflowError):
            setattr(obj, attr, None)
            obj.extra[k] = v
        else:
            obj.extra.pop(k, None)
    if ev.timestamp is not None:
        obj.updated = ev.timestamp


def snapshot(obj: Any) -> tuple[Any, ...]:
    out = []
    for f in dc_fields(obj):
        if f.name.startswith("_"):  # what an object remembers to merge faster
            continue
        v = getattr(obj, f.name)
        out.append((f.name, v.name if isinstance(v, enum.Enum) else v))
    return tuple(out), tuple(obj.extra.items())  # extra in its order too


def test_values_with_colons_and_bad_words():
    ev = parse_line("change path name:r0 peer-node-id:1 conn-name:b local:ipv4:10.0.0.1:7789 "
                    "peer:ipv4:10.0.0.2:7789 established:yes")
    assert ev is not None
    assert ev.fields["local"] == "ipv4:10.0.0.1:7789"
    assert ev.fields["peer"] == "ipv4:10.0.0.2:7789"
    assert parse_line("change device name:r0 volume:0 disk") is None
    assert parse_line("change device name:r0 :x") is None
    assert parse_line("change device name:r0 volume:").fields == {"name": "r0", "volume": ""}
    assert parse_line("change resource name:a name:b").fields == {"name": "b"}


def test_lines_sharing_a_timestamp_get_equal_times():
    ts = "2026-11-21T10:00:00.123456+00:00"
    a = parse_line(f"{ts} change resource name:r0 role:Primary")
    b = parse_line(f"{ts} change resource name:r1 role:Primary")
    assert a.timestamp == b.timestamp and a.timestamp.microsecond == 123456
    assert parse_line("2026-13-99T10:00:00 change resource name:r0") is None


WORD = st.text(alphabet="ab:-1", max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, max_size=8))
def test_fields_are_split_as_word_by_word(words):
    ev = parse_line(" ".join(["change", "device", *words]))
    ref = reference_fields([w for w in " ".join(words).split()])
    if ref is None:
        assert ev is None
    else:
        assert ev is not None and ev.fields == ref and list(ev.fields) == list(ref)


KEYS = {
    Kind.device: ["disk", "size", "read", "written", "client", "write-ios", "local-lat-hist",
                  "minor", "blocked"],
    Kind.peer_device: ["replication", "peer-disk", "sent", "received", "done", "eta",
                       "acked-ios", "conn-name"],
    Kind.connection: ["connection", "role", "ap-in-flight", "sent-bytes", "conn-name"],
}
VALUES = st.sampled_from(["0", "7", "-3", "x", "UpToDate", "Primary", "Established",
                          "Connected", "yes", "no", "1.5", "nan", "1,2,3"])
IDENT = {
    Kind.device: {"name": "r0", "volume": "0"},
    Kind.peer_device: {"name": "r0", "peer-node-id": "1", "volume": "0"},
    Kind.connection: {"name": "r0", "peer-node-id": "1"},
}


@st.composite
def event_streams(draw):  # type: ignore[no-untyped-def]
    kind = draw(st.sampled_from(sorted(KEYS, key=lambda k: k.value)))
    evs = []
    same = draw(st.booleans())  # every event with the same keys, as statistics come
    fixed = draw(st.lists(st.sampled_from(KEYS[kind]), max_size=6))
    for _ in range(draw(st.integers(1, 6))):
        keys = fixed if same else draw(st.lists(st.sampled_from(KEYS[kind]), max_size=6))
        fields = dict(IDENT[kind])
        for k in keys:
            fields[k] = draw(VALUES)
        evs.append(Event(draw(st.sampled_from([Verb.exists, Verb.change])), kind, fields))
    return kind, evs


@settings(max_examples=400, deadline=None)
@given(event_streams())
def test_merging_changed_keys_only_equals_merging_every_key(stream):
    kind, evs = stream
    state = State()
    ref = None
    parsed: dict[str, str] = {}
    for ev in evs:
        obj = state.apply(ev)
        assert obj is not None
        if ref is None:
            ref = _new(kind, ev)  # a fresh object of the same identity
        reference_merge(ref, kind, ev, parsed)
        assert snapshot(obj) == snapshot(ref)


def test_a_statistics_change_touches_only_changed_keys():
    state = State()
    line = ("change device name:r0 volume:0 minor:0 disk:UpToDate read:{} written:8 "
            "write-ios:{}")
    state.apply(parse_line(line.format(1, 1)))
    dev = state.devices[("r0", "0")]
    state.apply(parse_line(line.format(2, 5)))
    assert (dev.read_kib, dev.written_kib, dev.extra) == (2, 8, {"write-ios": "5"})
    state.apply(parse_line(line.format("bad", 5)))
    assert dev.read_kib is None and dev.extra == {"write-ios": "5", "read": "bad"}
    state.apply(parse_line(line.format(3, 5)))
    assert dev.read_kib == 3 and dev.extra == {"write-ios": "5"}
