"""events.log gets a line when an object's state changes, not when an event
repeats the state (the collector's quick check) or leaves a state key out."""
from __future__ import annotations

from bsr.events2 import parse_line

from bsrmon.collector import Collector
from bsrmon.config import Config


def _lines(events: list[str]) -> list[str]:
    out: list[str] = []
    col = Collector(Config().types, lambda b: out.extend(e[2] for e in b) or True)
    for text in events:
        ev = parse_line(text)
        assert ev is not None
        col.handle(ev)
    col.flush_log()
    return [line.split(" ", 1)[1].rstrip("\n") for line in out]


def test_repeated_or_partial_state_is_not_logged_again_a_change_is() -> None:
    ts = "2026-11-21T10:00:00.000000+00:00"
    lines = _lines([
        f"{ts} exists device name:r0 volume:0 minor:0 disk:UpToDate client:no written:8",
        f"{ts} change device name:r0 volume:0 minor:0 disk:UpToDate client:no written:16",
        f"{ts} change device name:r0 volume:0 minor:0 written:24",  # no state keys
        f"{ts} change device name:r0 volume:0 minor:0 disk:UpToDate client:no written:32",
        f"{ts} change device name:r0 volume:0 minor:0 disk:Outdated client:no written:40",
        f"{ts} change device name:r0 volume:0 minor:0 disk:Outdated client:no written:48",
        f"{ts} destroy device name:r0 volume:0 minor:0",
        f"{ts} change device name:r0 volume:0 minor:0 disk:Outdated client:no written:8",
    ])
    assert lines == [
        "exists device name:r0 volume:0 minor:0 disk:UpToDate client:no",
        "change device name:r0 volume:0 minor:0 disk:Outdated client:no",
        "destroy device name:r0 volume:0 minor:0",
        "change device name:r0 volume:0 minor:0 disk:Outdated client:no",
    ]
