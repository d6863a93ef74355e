"""Fast decoder for bsr's own generic-netlink messages.

Why this exists: pyroute2 decodes every attribute through a generic object
model (one ``nla`` instance, one dict and several method calls per
attribute, decoded lazily on first access).  That is the right tool for
talking to any family, but bsrmon re-reads every object once a period and
``bsrsetup events2 --statistics`` does the same: with 100 resources (400
objects, ~13 000 attributes) pyroute2 spent 90-200 ms per period, 10-20 %
of a core, decoding what is in fact a handful of fixed layouts.

This module knows those layouts from :mod:`bsr.abi` (the single source of
truth) and walks the attribute buffer with precompiled ``struct.Struct``
readers, producing the same :class:`bsr.netlink.Message` the pyroute2 path
produces.  pyroute2 stays in charge of everything else: the socket, family
resolution, multicast membership, acks and errors, and building requests.

Decoding rules (the same as the pyroute2 path for every well-formed
message, see tests/unit/test_netlink_fast.py):

* top-level attribute numbers name a struct (:func:`bsr.abi.top_attr_ids`),
  nested ones a field in declaration order (:func:`bsr.abi.field_ids`);
  ``NLA_F_NESTED`` and ``NLA_F_NET_BYTEORDER`` are masked off the type;
* attribute 0, the trailing PAD attribute of a struct and attributes this
  version does not know are skipped, so a newer module can add fields;
* integers are host byte order; strings lose their NUL bytes at both ends
  and are UTF-8 (text that is not valid UTF-8 stays ``bytes``, as pyroute2
  leaves it); binary fields are ``bytes``;
* a repeated attribute overrides the earlier one.

Anything malformed raises :class:`DecodeError` (a ``ValueError``) naming
what and where: an attribute shorter than its header or running past its
container, bytes left over after the last attribute, an integer field of
the wrong size, a message shorter than its headers.  Every attribute
advances the walk by at least four bytes, so no input can make it loop.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterator, Union

from bsr import abi

Value = Union[int, str, bytes]
# One known field: (name, payload size or _STR/_BIN, integer reader or None,
# struct format letter of an integer).
_Leaf = tuple[str, int, Any, str]
_Table = dict[int, _Leaf]

NLA_TYPE_MASK = 0x3FFF  # clears NLA_F_NESTED (0x8000) and NLA_F_NET_BYTEORDER
NLMSG_HDRLEN = 16
GENL_HDRLEN = 4
BSR_HDRLEN = 8  # u32 minor, s32 ret_code
ATTRS_OFFSET = NLMSG_HDRLEN + GENL_HDRLEN + BSR_HDRLEN

_NLA_HDR = struct.Struct("=HH").unpack_from
_NLMSG_HDR = struct.Struct("=IHHII").unpack_from
_GENL_BSR_HDR = struct.Struct("=BBHIi").unpack_from

_INT_READERS = {
    "u8": struct.Struct("=B"),
    "u32": struct.Struct("=I"),
    "s32": struct.Struct("=i"),
    "u64": struct.Struct("=Q"),
}
_STR = 0  # size marker for strings
_BIN = -1  # size marker for binary fields
MAX_LAYOUTS = 4096  # remembered (struct, size) keys before starting over
LAYOUTS_PER_SIZE = 4


class DecodeError(ValueError):
    """A bsr netlink message is malformed or truncated."""


def _leaf(f: abi.Field) -> _Leaf:
    t = f.nla_type
    if t == "str":
        return (f.name, _STR, None, "")
    if t == "bin":
        return (f.name, _BIN, None, "")
    reader = _INT_READERS[t]
    return (f.name, reader.size, reader.unpack_from, reader.format[1:])


def _struct_table(s: abi.Struct) -> _Table:
    return {attr: _leaf(f) for f, attr in abi.field_ids(s)}


def _text(raw: bytes) -> Value:
    raw = raw.strip(b"\0")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _walk(buf: bytes, off: int, end: int, table: _Table, sname: str,
          layout: list[tuple[int, int, _Leaf]]) -> dict[str, Value]:
    """Decode the attributes of one struct one by one.

    ``layout`` receives ``(length, type, field)`` of each attribute, or
    is emptied when the struct holds something a template cannot replay
    (an attribute this version does not know).
    """
    out: dict[str, Value] = {}
    record = True
    while off < end:
        if end - off < 4:
            raise DecodeError(f"{sname}: {end - off} bytes left over at {off}")
        length, typ = _NLA_HDR(buf, off)
        if length < 4 or off + length > end:
            raise DecodeError(f"{sname}: attribute {typ & NLA_TYPE_MASK} at {off}: "
                              f"length {length} outside 4..{end - off}")
        leaf = table.get(typ & NLA_TYPE_MASK)
        if leaf is None:
            record = False
        else:
            name, size, read, _fmt = leaf
            if size > 0:
                if length - 4 != size:
                    raise DecodeError(f"{sname}.{name}: {length - 4} bytes, "
                                      f"expected {size}")
                out[name] = read(buf, off + 4)[0]
            elif size == _STR:
                out[name] = _text(buf[off + 4:off + length])
            else:
                out[name] = buf[off + 4:off + length]
            if record:
                layout.append((length, typ, leaf))
        off += (length + 3) & ~3
    if not record or off != end:  # a replay must not read past the struct
        layout.clear()
    return out


class _Template:
    """A struct layout seen before, replayed with one ``unpack_from``.

    The kernel sends every struct of a given kind with the same attributes
    in the same order, so after one walk the whole struct (headers and
    values) can be read at once; it is used only when every header read
    back equals the recorded one, which also proves every length right.
    """

    __slots__ = ("reader", "values", "lengths", "types", "names", "strings")

    def __init__(self, layout: list[tuple[int, int, _Leaf]]) -> None:
        fmt = []
        # each attribute's value as a struct format (for a _MessageTemplate)
        self.values = tuple(letter if size > 0 else f"{length - 4}s"
                            for length, _typ, (_name, size, _read, letter) in layout)
        for (length, _typ, _leaf), value in zip(layout, self.values):
            fmt.append(f"HH{value}{(-length) % 4}x")
        self.reader = struct.Struct("=" + "".join(fmt))
        self.lengths = tuple(a[0] for a in layout)
        self.types = tuple(a[1] for a in layout)
        self.names = tuple(a[2][0] for a in layout)
        # once per name: a repeated attribute (the last one wins) is still one value
        self.strings = tuple(dict.fromkeys(a[2][0] for a in layout if a[2][1] == _STR))

    def match(self, buf: bytes, off: int) -> dict[str, Value] | None:
        vals = self.reader.unpack_from(buf, off)
        if vals[1::3] != self.types or vals[0::3] != self.lengths:
            return None
        out: dict[str, Value] = dict(zip(self.names, vals[2::3]))
        for name in self.strings:
            out[name] = _text(out[name])  # type: ignore[arg-type]
        return out


class _MessageTemplate:
    """Every struct of a message layout seen before, read with two
    ``unpack_from`` calls: a statistics dump sends each kind of object with
    the same structs, in the same order, period after period.

    Built from the struct templates that decoded the message
    (``(attribute length, attribute type, struct name, template)`` per
    top-level attribute).  One reader takes every attribute header, top-level
    and nested, skipping the values; the message is used only when they all
    read back as recorded.  The other reader takes the values, skipping the
    headers, so that each struct's values are one contiguous slice.
    """

    __slots__ = ("heads", "values", "expected", "parts")

    def __init__(self, parts: list[tuple[int, int, str, _Template]]) -> None:
        heads, values = ["="], ["="]
        expected: list[int] = []
        self.parts: list[tuple[str, tuple[str, ...], int, int, tuple[str, ...]]] = []
        pos = 0
        for length, typ, sname, tpl in parts:
            heads.append("HH")
            values.append("4x")
            expected += (length, typ)
            for inner_len, inner_typ, value in zip(tpl.lengths, tpl.types, tpl.values):
                pad = (-inner_len) % 4
                heads.append(f"HH{inner_len - 4 + pad}x")
                values.append(f"4x{value}{pad}x")
                expected += (inner_len, inner_typ)
            pad = (-length) % 4
            heads.append(f"{pad}x")
            values.append(f"{pad}x")
            n = len(tpl.names)
            self.parts.append((sname, tpl.names, pos, pos + n, tpl.strings))
            pos += n
        self.heads = struct.Struct("".join(heads)).unpack_from
        self.values = struct.Struct("".join(values)).unpack_from
        self.expected = tuple(expected)

    def match(self, buf: bytes, off: int) -> dict[str, dict[str, Value]] | None:
        if self.heads(buf, off) != self.expected:
            return None
        vals = self.values(buf, off)
        out: dict[str, dict[str, Value]] = {}
        for sname, names, start, stop, strings in self.parts:
            fields: dict[str, Value] = dict(zip(names, vals[start:stop]))
            for name in strings:
                fields[name] = _text(fields[name])  # type: ignore[arg-type]
            out[sname] = fields
        return out


def _match_recent(tpls: list[Any], buf: bytes, off: int) -> Any:
    """What the first of ``tpls`` (templates of one size) that fits the bytes
    at ``off`` reads there, None when none fits; the one that fitted moves
    to the front, most recently used first."""
    for tpl in tpls:
        got = tpl.match(buf, off)
        if got is not None:
            if tpl is not tpls[0]:
                tpls.remove(tpl)
                tpls.insert(0, tpl)
            return got
    return None


class Decoder:
    """Precomputed tables of every struct; one instance serves all messages.

    ``make_message(cmd=, minor=, ret_code=, structs=)`` builds the result
    (:class:`bsr.netlink.Message`, passed in to keep the imports one-way).
    """

    def __init__(self, make_message: Callable[..., Any]) -> None:
        ids = abi.top_attr_ids()
        self._make = make_message
        self._structs: dict[int, tuple[str, _Table]] = {
            ids[s.attr]: (s.name, _struct_table(s)) for s in abi.STRUCTS}
        self._cmd_names: dict[int, str] = {v: k for k, v in abi.command_ids().items()}
        # (struct attr, payload size) -> layouts seen with that size
        self._templates: dict[tuple[int, int], list[_Template]] = {}
        # size of a message's attributes -> message layouts seen with that size
        self._messages: dict[int, list[_MessageTemplate]] = {}

    # -------------------------------------------------------- attributes

    def structs(self, buf: bytes, off: int, end: int) -> dict[str, dict[str, Value]]:
        """Decode the top-level attribute chain ``buf[off:end]``."""
        out: dict[str, dict[str, Value]] = {}
        known = self._structs
        templates = self._templates  # (inlined here: this loop is the hot path)
        while off < end:
            if end - off < 4:
                raise DecodeError(f"{end - off} bytes left over after the attributes at {off}")
            length, typ = _NLA_HDR(buf, off)
            if length < 4 or off + length > end:
                raise DecodeError(f"attribute {typ & NLA_TYPE_MASK} at {off}: length "
                                  f"{length} outside 4..{end - off}")
            sid = typ & NLA_TYPE_MASK
            s = known.get(sid)
            if s is not None:
                tpls = templates.get((sid, length - 4))
                fields = None if tpls is None else _match_recent(tpls, buf, off + 4)
                if fields is None:
                    fields = self._fields(buf, off + 4, off + length, sid, s[1], s[0])
                out[s[0]] = fields
            off += (length + 3) & ~3
        return out

    def _fields(self, buf: bytes, off: int, end: int, sid: int, table: _Table,
                sname: str) -> dict[str, Value]:
        """One struct the hard way, remembering its layout for next time."""
        key = (sid, end - off)
        layout: list[tuple[int, int, _Leaf]] = []
        out = _walk(buf, off, end, table, sname, layout)
        if layout:
            self._remember(key, _Template(layout))
        return out

    def _remember(self, key: tuple[int, int], tpl: "_Template") -> None:
        if len(self._templates) >= MAX_LAYOUTS:
            self._templates.clear()
        tpls = self._templates.setdefault(key, [])
        if len(tpls) >= LAYOUTS_PER_SIZE:
            tpls.pop()  # the least recently used
        tpls.insert(0, tpl)

    # ---------------------------------------------------------- messages

    def message(self, buf: bytes, off: int = 0, length: int | None = None) -> Any:
        """Decode one bsr message (netlink header included) at ``buf[off:]``."""
        if type(buf) is not bytes:  # bytearray/memoryview: fields must be bytes
            buf = bytes(buf)
        if length is None:
            if len(buf) - off < NLMSG_HDRLEN:
                raise DecodeError("message shorter than the netlink header")
            length = _NLMSG_HDR(buf, off)[0]
        end = off + length
        if length < ATTRS_OFFSET or end > len(buf):
            raise DecodeError(f"message of {length} bytes at {off} does not fit "
                              f"({ATTRS_OFFSET}..{len(buf) - off})")
        cmd, _version, _reserved, minor, ret_code = _GENL_BSR_HDR(buf, off + NLMSG_HDRLEN)
        start = off + ATTRS_OFFSET
        tpls = self._messages.get(end - start)
        structs = None if tpls is None else _match_recent(tpls, buf, start)
        if structs is None:
            structs = self.structs(buf, start, end)
            self._remember_message(buf, start, end)
        return self._make(cmd=self._cmd_names.get(cmd) or str(cmd), minor=minor,
                          ret_code=ret_code, structs=structs)

    def _remember_message(self, buf: bytes, off: int, end: int) -> None:
        """A template of the message just decoded, when each of its
        top-level attributes is a known struct that has one (nothing
        unknown, nothing left over)."""
        size = end - off
        parts: list[tuple[int, int, str, _Template]] = []
        while off < end:
            length, typ = _NLA_HDR(buf, off)
            sid = typ & NLA_TYPE_MASK
            s = self._structs.get(sid)
            if s is None or length % 4:
                return
            tpl = next((t for t in self._templates.get((sid, length - 4), ())
                        if t.match(buf, off + 4) is not None), None)
            if tpl is None:
                return
            parts.append((length, typ, s[0], tpl))
            off += length
        if not parts or off != end:
            return
        if len(self._messages) >= MAX_LAYOUTS:
            self._messages.clear()
        tpls = self._messages.setdefault(size, [])
        if len(tpls) >= LAYOUTS_PER_SIZE:
            tpls.pop()
        tpls.insert(0, _MessageTemplate(parts))

    def messages(self, buf: bytes, family_id: int) -> Iterator[Any]:
        """Every bsr message of a netlink datagram; other types are skipped."""
        if type(buf) is not bytes:
            buf = bytes(buf)
        off, n = 0, len(buf)
        while off < n:
            if n - off < NLMSG_HDRLEN:
                raise DecodeError(f"{n - off} bytes left over after the messages")
            length, mtype = _NLMSG_HDR(buf, off)[:2]
            if length < NLMSG_HDRLEN or off + length > n:
                raise DecodeError(f"message at {off}: length {length} outside "
                                  f"{NLMSG_HDRLEN}..{n - off}")
            if mtype == family_id:
                yield self.message(buf, off, length)
            off += (length + 3) & ~3

