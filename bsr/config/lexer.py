"""Tokenizer for bsr.conf: words, quoted strings, braces and semicolons.

Every token keeps its position so that later stages can point at it.
``#`` starts a comment that runs to the end of the line.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterator

from .errors import ConfigError, Pos


class Kind(enum.Enum):
    WORD = "word"
    STRING = "string"
    LBRACE = "'{'"
    RBRACE = "'}'"
    SEMI = "';'"
    EOF = "end of file"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    pos: Pos

    def describe(self) -> str:
        if self.kind is Kind.WORD:
            return f"'{self.text}'"
        if self.kind is Kind.STRING:
            return f'"{self.text}"'
        return self.kind.value


_PUNCT = {"{": Kind.LBRACE, "}": Kind.RBRACE, ";": Kind.SEMI}
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def tokenize(text: str, file: str) -> Iterator[Token]:
    """Yield the tokens of ``text``; the last one is always EOF."""
    i, line, col = 0, 1, 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            i, line, col = i + 1, line + 1, 1
            continue
        if ch.isspace():
            i, col = i + 1, col + 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        pos = Pos(file, line, col)
        if ch in _PUNCT:
            yield Token(_PUNCT[ch], ch, pos)
            i, col = i + 1, col + 1
            continue
        if ch == '"':
            value, used, lines = _string(text, i, pos)
            yield Token(Kind.STRING, value, pos)
            i += used
            if lines:
                line += lines
                col = i - text.rfind("\n", 0, i)
            else:
                col += used
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] not in '{};"#':
            i += 1
        yield Token(Kind.WORD, text[start:i], pos)
        col += i - start
    yield Token(Kind.EOF, "", Pos(file, line, col))


def _string(text: str, start: int, pos: Pos) -> tuple[str, int, int]:
    """Read a quoted string at ``start``; return (value, chars used, newlines)."""
    out: list[str] = []
    i = start + 1
    lines = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1 - start, lines
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            if nxt == "\n":
                lines += 1
            i += 2
            continue
        if ch == "\n":
            lines += 1
        out.append(ch)
        i += 1
    raise ConfigError(pos, "unterminated string: expected a closing '\"'")
