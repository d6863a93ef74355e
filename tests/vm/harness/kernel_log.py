"""Recognise kernel log lines that mean a test must fail."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# Each pattern is searched in the text of one kernel log record.
BAD_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("oops", re.compile(r"\bOops\b")),
    ("warning", re.compile(r"WARNING:")),
    ("bug", re.compile(r"\bBUG:")),
    ("gpf", re.compile(r"general protection fault")),
    ("panic", re.compile(r"Kernel panic")),
    ("hung task", re.compile(r"blocked for more than \d+ seconds")),
    ("kmemleak", re.compile(r"kmemleak|unreferenced object")),
    ("lockdep", re.compile(r"possible (circular|recursive) locking dependency")),
)


class KernelLogProblem(AssertionError):
    """The guest kernel logged something no test may leave behind."""


def find_problems(records: Iterable[Sequence[Any]]) -> list[str]:
    """Return the offending lines of ``records`` ([seq, level, text] each)."""
    bad: list[str] = []
    for rec in records:
        text = str(rec[2])
        for label, pattern in BAD_PATTERNS:
            if pattern.search(text):
                bad.append(f"[{label}] {text}")
                break
    return bad


def find_problems_in_text(text: str) -> list[str]:
    """Same as :func:`find_problems` for plain dmesg/console text."""
    return find_problems((0, 0, line) for line in text.splitlines())


def format_records(records: Iterable[Sequence[Any]]) -> str:
    return "\n".join(f"<{rec[1]}>[{rec[0]}] {rec[2]}" for rec in records)
