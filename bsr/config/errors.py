"""Configuration errors: every one names file:line:column."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pos:
    """Where a token starts: file name as the admin wrote/sees it, 1-based."""
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ConfigError(Exception):
    """A configuration problem the admin must fix (bsradm exit code 10)."""

    def __init__(self, pos: Pos | None, message: str) -> None:
        self.pos = pos
        self.message = message
        super().__init__(f"{pos}: {message}" if pos else message)
