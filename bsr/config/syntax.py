"""Generic statement syntax of bsr.conf, with ``include`` expansion.

The file is a list of statements ``KEYWORD ARG... ;`` or
``KEYWORD ARG... { STATEMENT... }``.  What keywords mean and how many
arguments they take is decided later (``build.py``) against the schema;
this stage only checks the punctuation and expands includes, so that every
later error can still point at the token that caused it.

``include "PATTERN";`` may appear anywhere a statement may.  PATTERN is a
glob relative to the directory of the file that contains it; files are
included in sorted order.  A pattern without wildcards must name a readable
file; a pattern with wildcards may match nothing.  A file that (directly or
indirectly) includes itself is an error.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from .errors import ConfigError, Pos
from .lexer import Kind, Token, tokenize

MAX_FILE_BYTES = 16 << 20


@dataclass
class Statement:
    keyword: Token
    args: list[Token]
    block: list["Statement"] | None = None
    end: Pos | None = None  # position of the ';' or the closing '}'

    @property
    def pos(self) -> Pos:
        return self.keyword.pos

    @property
    def name(self) -> str:
        return self.keyword.text

    def head(self) -> str:
        """The statement as written up to its ';' or '{', for messages."""
        return " ".join([self.keyword.text] + [a.text for a in self.args])


@dataclass
class Source:
    """Reads configuration files; ``root`` anchors the names shown in errors."""
    root: str
    stack: list[str] = field(default_factory=list)

    def display(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        return path if rel.startswith("..") else rel


def parse_file(path: str) -> list[Statement]:
    """Parse the configuration file ``path`` with all its includes."""
    src = Source(root=os.path.dirname(os.path.abspath(path)))
    return _parse_path(src, path, path, None)


def parse_text(text: str, name: str = "<string>", base_dir: str = ".") -> list[Statement]:
    """Parse configuration text; includes are resolved relative to base_dir."""
    src = Source(root=os.path.abspath(base_dir))
    fake = os.path.join(os.path.abspath(base_dir), name)
    src.stack.append(os.path.realpath(fake))
    try:
        return _parse_tokens(src, tokenize(text, name), os.path.abspath(base_dir))
    finally:
        src.stack.pop()


def _read(path: str, shown: str, at: Pos | None) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise ConfigError(at, f"cannot read '{shown}': is a directory") from None
    except OSError as e:
        raise ConfigError(at, f"cannot read '{shown}': {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(at, f"'{shown}' is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(Pos(shown, 1, 1), f"not valid UTF-8 (byte {e.start})") from None


def _parse_path(src: Source, path: str, shown: str, at: Pos | None) -> list[Statement]:
    real = os.path.realpath(path)
    if real in src.stack:
        chain = " -> ".join(src.display(p) for p in src.stack[src.stack.index(real):])
        raise ConfigError(at, f"include loop: {chain} -> {src.display(real)}")
    text = _read(path, shown, at)
    src.stack.append(real)
    try:
        return _parse_tokens(src, tokenize(text, shown), os.path.dirname(os.path.abspath(path)))
    finally:
        src.stack.pop()


def _include(src: Source, st: Statement, here: str) -> list[Statement]:
    if st.block is not None or len(st.args) != 1:
        raise ConfigError(st.pos, 'expected: include "PATTERN";')
    pattern = st.args[0].text
    full = pattern if os.path.isabs(pattern) else os.path.join(here, pattern)
    if glob.has_magic(pattern):
        paths = sorted(glob.glob(full))
    else:
        paths = [full]
    out: list[Statement] = []
    for p in paths:
        out.extend(_parse_path(src, p, src.display(os.path.abspath(p)), st.args[0].pos))
    return out


def _parse_tokens(src: Source, tokens, here: str) -> list[Statement]:
    """Iterative (no recursion limit) statement parser over a token stream."""
    root: list[Statement] = []
    open_blocks: list[Statement] = []
    children = root
    kw: Token | None = None
    args: list[Token] = []
    for tok in tokens:
        if tok.kind in (Kind.WORD, Kind.STRING):
            if kw is None:
                if tok.kind is Kind.STRING:
                    raise ConfigError(tok.pos, f"expected a keyword, found {tok.describe()}")
                kw = tok
            else:
                args.append(tok)
        elif tok.kind is Kind.SEMI:
            if kw is None:
                raise ConfigError(tok.pos, "unexpected ';': expected a keyword")
            st = Statement(kw, args, None, tok.pos)
            if kw.text == "include":
                children.extend(_include(src, st, here))
            else:
                children.append(st)
            kw, args = None, []
        elif tok.kind is Kind.LBRACE:
            if kw is None:
                raise ConfigError(tok.pos, "unexpected '{': expected a keyword before it")
            st = Statement(kw, args, [])
            children.append(st)
            open_blocks.append(st)
            children = st.block
            kw, args = None, []
        elif tok.kind is Kind.RBRACE:
            if kw is not None:
                raise ConfigError(after(args[-1] if args else kw),
                                  f"expected ';' after '{_head(kw, args)}'")
            if not open_blocks:
                raise ConfigError(tok.pos, "unexpected '}': no block is open here")
            open_blocks.pop().end = tok.pos
            children = open_blocks[-1].block if open_blocks else root
        else:  # EOF
            if kw is not None:
                raise ConfigError(after(args[-1] if args else kw),
                                  f"expected ';' after '{_head(kw, args)}'")
            if open_blocks:
                st = open_blocks[-1]
                raise ConfigError(
                    tok.pos, f"expected '}}' to close '{st.head()}' opened at {st.pos.line}:{st.pos.col}")
    return root


def _head(kw: Token, args: list[Token]) -> str:
    return " ".join([kw.text] + [a.text for a in args])


def after(tok: Token) -> Pos:
    """The position just after a word (where a missing ';' belongs)."""
    width = len(tok.text) + (2 if tok.kind is Kind.STRING else 0)
    return Pos(tok.pos.file, tok.pos.line, tok.pos.col + width)
