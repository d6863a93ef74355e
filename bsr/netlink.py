"""Low-level client of the bsr generic-netlink family.

The pyroute2 message classes are built at import time from :mod:`bsr.abi`,
so the Python side can never drift from the kernel tables.  Every
top-level attribute is a nested struct; inside, attribute numbers follow
the field order of the struct, with a trailing PAD attribute for 64-bit
alignment that is ignored on decode.

Requests go through a pyroute2 ``GenericNetlinkSocket`` bound to the
``bsr`` family.  Notifications are read from a second, plain netlink socket
joined to the ``events`` multicast group, so that a reader can wait with a
timeout and never mixes events with command replies.

pyroute2 builds the requests and handles the socket, acks and errors, but
it only splits replies into messages (:data:`BsrRawMsg` keeps the
attributes undecoded); :mod:`bsr.nlfast` decodes the attributes, about
thirty times faster than pyroute2's generic attribute objects, which
matters for the per-period statistics dumps of bsrmon and ``bsrsetup
events2 --statistics``.  The pyroute2 decoding (:func:`parse_reference`,
:func:`decode_reference`) stays as the reference the fast decoder is
tested against.

Example::

    with BsrNetlink() as nl:
        nl.request("NEW_RESOURCE", ctx={"res_name": "r0"}, res_opts={"node_id": 0})
        for dev in nl.dump("GET_DEVICES"):
            print(dev.minor, dev.structs["device_info"]["disk_state"])
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from bsr import pyroute2_light

pyroute2_light.load()

from pyroute2.netlink import (  # noqa: E402 (after the light package is registered)
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_GENERIC,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    SOL_NETLINK,
    genlmsg,
    nla,
)
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.generic import GenericNetlinkSocket  # noqa: E402
from pyroute2.netlink.nlsocket import Marshal  # noqa: E402

from bsr import abi  # noqa: E402
from bsr.nlfast import Decoder, DecodeError  # noqa: E402

NETLINK_EXT_ACK = 11
Value = int | str | bytes

_NLA_TYPES = {
    "u8": "uint8",
    "u32": "uint32",
    "s32": "int32",
    "u64": "uint64",
    "str": "asciiz",
    "bin": "cdata",
}

CMD_IDS: dict[str, int] = abi.command_ids()
CMD_NAMES: dict[int, str] = {v: k for k, v in CMD_IDS.items()}


class BsrError(Exception):
    """A command failed: ``errno`` is positive, ``text`` the kernel's reason."""

    def __init__(self, err: int, text: str = "") -> None:
        self.errno = abs(err)
        self.text = text or errno.errorcode.get(self.errno, "error")
        super().__init__(f"({-self.errno}) {self.text}")


class ModuleNotLoaded(BsrError):
    def __init__(self) -> None:
        super().__init__(errno.ENOENT, "bsr kernel module not loaded")


@dataclass
class Message:
    """One decoded bsr message (reply, dump entry or notification)."""

    cmd: str
    minor: int = abi.MINOR_NONE
    ret_code: int = 0
    structs: dict[str, dict[str, Value]] = field(default_factory=dict)

    def get(self, struct_name: str, field_name: str, default: Any = None) -> Any:
        return self.structs.get(struct_name, {}).get(field_name, default)

    @property
    def info_text(self) -> str:
        return str(self.get("reply", "info_text", ""))


# ---------------------------------------------------------------- classes

def _struct_class(s: abi.Struct) -> type[nla]:
    nla_map: list[tuple[str, str]] = [("UNSPEC", "none")]
    nla_map += [(f.name, _NLA_TYPES[f.nla_type]) for f in s.fields]
    nla_map.append(("PAD", "none"))
    return type(f"bsr_{s.name}", (nla,), {
        "__slots__": (),
        "nla_flags": NLA_F_NESTED,
        "nla_map": tuple(nla_map),
    })


def _message_class() -> type[genlmsg]:
    body: dict[str, Any] = {
        "__slots__": (),
        "fields": genlmsg.fields + (("minor", "I"), ("ret_code", "i")),
    }
    nla_map: list[tuple[str, str]] = [("UNSPEC", "none")]
    for s in abi.STRUCTS:
        body[f"s_{s.name}"] = _struct_class(s)
        nla_map.append((s.name, f"s_{s.name}"))
    body["nla_map"] = tuple(nla_map)
    return type("bsr_msg", (genlmsg,), body)


BsrMsg = _message_class()


class BsrRawMsg(genlmsg):
    """A bsr message as pyroute2 hands it over: headers decoded, attributes
    left in ``data[offset + 28:offset + length]`` for :mod:`bsr.nlfast`."""

    __slots__ = ()
    fields = genlmsg.fields + (("minor", "I"), ("ret_code", "i"))
    nla_map = ()


def _field_value(f: abi.Field, v: Value) -> Value:
    t = f.nla_type
    if t == "str":
        if not isinstance(v, str):
            raise TypeError(f"{f.name}: expected str")
        return v
    if t == "bin":
        return bytes(v) if not isinstance(v, str) else bytes.fromhex(v)
    if isinstance(v, bool):
        return int(v)
    if not isinstance(v, int):
        raise TypeError(f"{f.name}: expected int")
    return int(v)


def build(cmd: str, minor: int = abi.MINOR_NONE, **structs: dict[str, Value]) -> genlmsg:
    """Build an (unencoded) message; struct and field names are checked."""
    msg = BsrMsg()
    msg["cmd"] = CMD_IDS[cmd]
    msg["version"] = abi.FAMILY_VERSION
    msg["minor"] = minor
    msg["ret_code"] = 0
    attrs = []
    for sname, fields in structs.items():
        if fields is None:
            continue
        s = abi.struct_by_name(sname)
        inner = [[fname, _field_value(s.field(fname), v)] for fname, v in fields.items()]
        attrs.append([s.name, {"attrs": inner}])
    msg["attrs"] = attrs
    return msg


_DECODER = Decoder(Message)


def decode(msg: genlmsg) -> Message:
    """Decode a message split off by pyroute2 (:func:`parse`, a socket reply).

    Raises :class:`bsr.nlfast.DecodeError` when it is malformed.
    """
    return _DECODER.message(msg.data, msg.offset, msg.length)


def parse(data: bytes, family_id: int) -> list[genlmsg]:
    """Split a netlink datagram into messages (attributes still encoded)."""
    marshal = Marshal()
    marshal.msg_map = {family_id: BsrRawMsg}
    return list(marshal.parse(data))


def decode_messages(data: bytes, family_id: int) -> list[Message]:
    """Every bsr message of a datagram, decoded (other message types skipped)."""
    return list(_DECODER.messages(data, family_id))


def parse_reference(data: bytes, family_id: int) -> list[genlmsg]:
    """pyroute2's full decoding, the reference for :mod:`bsr.nlfast`."""
    marshal = Marshal()
    marshal.msg_map = {family_id: BsrMsg}
    return list(marshal.parse(data))


def decode_reference(msg: genlmsg) -> Message:
    """Turn a message of :func:`parse_reference` into a :class:`Message`."""
    out = Message(cmd=CMD_NAMES.get(msg["cmd"], str(msg["cmd"])),
                  minor=msg["minor"], ret_code=msg["ret_code"])
    for name, value in msg.get("attrs", ()):
        if name in ("UNSPEC", "UNKNOWN") or not hasattr(value, "get_attrs"):
            continue
        fields: dict[str, Value] = {}
        for fname, fval in value.get("attrs", ()):
            if fname in ("UNSPEC", "PAD", "UNKNOWN"):
                continue
            fields[fname] = fval
        out.structs[name] = fields
    return out


# ---------------------------------------------------------------- addresses

def encode_addr(s: str) -> bytes:
    """``ipv4:1.2.3.4:7789`` / ``ipv6:[fd00::1]:7789`` -> sockaddr bytes."""
    af, _, rest = s.partition(":")
    host, sep, port_s = rest.rpartition(":")
    if not sep:
        raise ValueError(f"address without port: {s!r}")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {s!r}")
    if af == "ipv4":
        a4 = ipaddress.IPv4Address(host)
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) \
            + a4.packed + bytes(8)
    if af == "ipv6":
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError(f"ipv6 address must be in brackets: {s!r}")
        a6 = ipaddress.IPv6Address(host[1:-1])
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) \
            + a6.packed + struct.pack("=I", 0)
    raise ValueError(f"unknown address family in {s!r} (ipv4|ipv6)")


def decode_addr(b: bytes) -> str:
    if len(b) < 2:
        raise ValueError("short sockaddr")
    (af,) = struct.unpack_from("=H", b)
    if af == socket.AF_INET and len(b) >= 8:
        port = struct.unpack_from("!H", b, 2)[0]
        return f"ipv4:{ipaddress.IPv4Address(b[4:8])}:{port}"
    if af == socket.AF_INET6 and len(b) >= 24:
        port = struct.unpack_from("!H", b, 2)[0]
        return f"ipv6:[{ipaddress.IPv6Address(b[8:24])}]:{port}"
    raise ValueError(f"unsupported sockaddr family {af}")


# ---------------------------------------------------------------- client

class BsrNetlink:
    """A connection to bsr.ko; use as a context manager."""

    def __init__(self) -> None:
        self._sock = GenericNetlinkSocket(ext_ack=True)
        try:
            self._sock.bind(abi.FAMILY_NAME, BsrMsg)
        except NetlinkError as e:
            self._sock.close()
            if e.code in (errno.ENOENT, errno.EOPNOTSUPP):
                raise ModuleNotLoaded() from None
            raise
        self.family_id: int = self._sock.prid
        self._sock.marshal.msg_map[self.family_id] = BsrRawMsg
        self.mcast_groups: dict[str, int] = dict(self._sock.mcast_groups)
        self._ev: socket.socket | None = None
        self._channel = PlainChannel(self.family_id)
        self._pending: list[Message] = []

    def __enter__(self) -> "BsrNetlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ev is not None:
            self._ev.close()
            self._ev = None
        self._channel.close()
        self._sock.close()

    def _run(self, msg: genlmsg, flags: int) -> list[Message]:
        try:
            raw = list(self._sock.nlm_request(msg, msg_type=self.family_id,
                                              msg_flags=flags))
        except NetlinkError as e:
            raise BsrError(e.code, _netlink_text(e)) from None
        try:
            return [decode(m) for m in raw
                    if m.get("header", {}).get("type") == self.family_id]
        except DecodeError as e:
            raise _malformed(e) from None

    def version(self) -> Message:
        """GET_VERSION (module version and allocation counters), answered on
        the plain socket of :meth:`dump`: bsrmon asks for it every period."""
        replies = self._plain("GET_VERSION", NLM_F_REQUEST | NLM_F_ACK, abi.MINOR_NONE, {})
        return replies[0] if replies else Message(cmd="GET_VERSION")

    def request(self, cmd: str, *, minor: int = abi.MINOR_NONE,
                **structs: dict[str, Value]) -> Message:
        """Run one command; raises :class:`BsrError` unless it succeeded."""
        replies = self._run(build(cmd, minor, **structs), NLM_F_REQUEST | NLM_F_ACK)
        if not replies:
            return Message(cmd=cmd, minor=minor)
        reply = replies[0]
        if reply.ret_code:
            raise BsrError(reply.ret_code, reply.info_text)
        return reply

    def dump(self, cmd: str, *, minor: int = abi.MINOR_NONE,
             **structs: dict[str, Value]) -> list[Message]:
        """Every reply of a dump command, in order.

        Dumps run on a plain socket of their own: pyroute2's synchronous
        API runs its event loop once per reply message (~30 us each), which
        at a dump of 400 objects a second was as costly as all the rest of
        bsrmon.  The request is encoded by pyroute2 once; a repeated request
        reuses those bytes with a new sequence number (:class:`PlainChannel`).
        """
        return self._plain(cmd, NLM_F_REQUEST | NLM_F_DUMP, minor, structs)

    def _plain(self, cmd: str, flags: int, minor: int,
               structs: dict[str, dict[str, Value]]) -> list[Message]:
        return self._channel.run(cmd, flags, minor, structs)

    def send_raw(self, data: bytes) -> list[genlmsg]:
        """Send pre-encoded bytes (fuzzing/testing) and return what came back."""
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            s.bind((0, 0))
            s.settimeout(5)
            s.send(data)
            return parse(s.recv(1 << 16), self.family_id)
        finally:
            s.close()

    def subscribe(self) -> None:
        """Join the ``events`` multicast group (on a dedicated socket)."""
        if self._ev is not None:
            return
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((0, 0))
        s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
                     self.mcast_groups[abi.MCAST_GROUP_EVENTS])
        self._ev = s

    def events(self, timeout: float | None = None) -> Iterator[Message]:
        """Yield notifications; stops after ``timeout`` seconds of silence."""
        if self._ev is None:
            self.subscribe()
        assert self._ev is not None
        while True:
            while self._pending:
                yield self._pending.pop(0)
            deadline = None if timeout is None else time.monotonic() + timeout
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._ev], [], [], wait)
            if not ready:
                return
            try:
                data = self._ev.recv(1 << 18)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    raise BsrError(errno.ENOBUFS, "event queue overrun: events were lost")
                raise
            try:
                self._pending.extend(_DECODER.messages(data, self.family_id))
            except DecodeError as e:
                raise _malformed(e) from None


# ---------------------------------------------------------------- dumps

NETLINK_CAP_ACK = 10
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1
DUMP_RECV_SIZE = 1 << 18
DUMP_TIMEOUT_S = 30.0
_NLMSGHDR = struct.Struct("=IHHII")


def _plain_socket(rcvbuf: int) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        s.bind((0, 0))
        s.settimeout(DUMP_TIMEOUT_S)
    except OSError:
        s.close()
        raise
    return s


def encode_request(cmd: str, flags: int, minor: int, structs: dict[str, dict[str, Value]],
                   family_id: int, seq: int) -> bytes:
    """A request as pyroute2 encodes it (header pid 0: the kernel fills it in)."""
    msg = build(cmd, minor, **structs)
    msg["header"]["type"] = family_id
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = 0
    msg.encode()
    return bytes(msg.data)


def _request_key(cmd: str, flags: int, minor: int,
                 structs: dict[str, dict[str, Value]]) -> tuple[Any, ...] | None:
    """What identifies a request's bytes but for the sequence number; None
    when a value cannot be a dictionary key (a bytearray)."""
    key = (cmd, flags, minor, tuple((name, tuple(fields.items()))
                                    for name, fields in structs.items() if fields is not None))
    try:
        hash(key)
    except TypeError:
        return None
    return key


_SEQ_OFFSET = 8  # of nlmsg_seq in struct nlmsghdr
_U32 = struct.Struct("=I")


class PlainChannel:
    """Requests of one family on a plain netlink socket, answers read by
    :class:`DumpReader` (bsr messages decoded by :mod:`bsr.nlfast`).

    A request is encoded by pyroute2 (:func:`encode_request`) the first time
    it is seen; the bytes are kept, and the next time only the sequence
    number is put in: bsrmon sends the same two requests every period.
    ``open_socket`` makes the socket (anything with send, recv and close;
    default: a NETLINK_GENERIC socket), again after a failed request.
    """

    MAX_REQUESTS = 64  # remembered encodings before starting over

    def __init__(self, family_id: int,
                 open_socket: Callable[[], Any] | None = None) -> None:
        self.family_id = family_id
        self._open = open_socket or (lambda: _plain_socket(rcvbuf=1 << 20))
        self._sock: Any = None
        self.seq = 0
        self._requests: dict[tuple[Any, ...], bytes] = {}

    def close(self) -> None:
        """After a failed request the socket may hold the rest of its answer."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request_bytes(self, cmd: str, flags: int, minor: int,
                      structs: dict[str, dict[str, Value]], seq: int) -> bytes:
        """The encoded request with sequence number ``seq``."""
        key = _request_key(cmd, flags, minor, structs)
        data = None if key is None else self._requests.get(key)
        if data is None:
            data = encode_request(cmd, flags, minor, structs, self.family_id, 0)
            if key is not None:
                if len(self._requests) >= self.MAX_REQUESTS:
                    self._requests.clear()
                self._requests[key] = data
        return data[:_SEQ_OFFSET] + _U32.pack(seq) + data[_SEQ_OFFSET + 4:]

    def run(self, cmd: str, flags: int, minor: int,
            structs: dict[str, dict[str, Value]]) -> list[Message]:
        """Send one request; its replies up to the NLMSG_DONE (dump) or the
        ack (NLM_F_ACK)."""
        self.seq = seq = (self.seq + 1) & 0xFFFFFFFF or 1
        data = self.request_bytes(cmd, flags, minor, structs, seq)
        if self._sock is None:
            self._sock = self._open()
        s = self._sock
        reader = DumpReader(self.family_id, seq)
        try:
            s.send(data)
            while not reader.done:
                reader.feed(s.recv(DUMP_RECV_SIZE))
        except socket.timeout:
            self.close()
            raise BsrError(errno.ETIMEDOUT, f"{cmd}: no answer from bsr.ko") from None
        except OSError as e:
            self.close()
            raise BsrError(e.errno or errno.EIO, f"{cmd}: {e.strerror or e}") from None
        except BsrError:
            self.close()
            raise
        return reader.messages


class DumpReader:
    """Collects the answer to one dump request, datagram by datagram.

    bsr messages of the request's sequence number are decoded with
    :mod:`bsr.nlfast`; ``NLMSG_DONE`` ends the dump, an ``NLMSG_ERROR`` (or a
    ``NLMSG_DONE`` carrying an error) raises :class:`BsrError` with the
    kernel's extended-ack text; messages of other sequences are ignored.
    """

    def __init__(self, family_id: int, seq: int) -> None:
        self.family_id = family_id
        self.seq = seq
        self.messages: list[Message] = []
        self.done = False

    def feed(self, data: bytes) -> None:
        off, n = 0, len(data)
        while off + 16 <= n and not self.done:
            length, mtype, flags, seq, _pid = _NLMSGHDR.unpack_from(data, off)
            if length < 16 or off + length > n:
                raise _malformed(DecodeError(f"netlink message at {off}: length {length}"))
            if seq == self.seq:
                self._one(data, off, length, mtype, flags)
            off += (length + 3) & ~3

    def _one(self, data: bytes, off: int, length: int, mtype: int, flags: int) -> None:
        if mtype == self.family_id:
            try:
                self.messages.append(_DECODER.message(data, off, length))
            except DecodeError as e:
                raise _malformed(e) from None
        elif mtype in (NLMSG_DONE, NLMSG_ERROR):
            self.done = True
            if length < 20:
                return
            (code,) = struct.unpack_from("=i", data, off + 16)
            if code == 0:
                return
            tlvs = off + 20
            if mtype == NLMSG_ERROR:  # then the request's header, or all of it
                echoed = 16
                if not flags & NLM_F_CAPPED and length >= 36:
                    echoed = _NLMSGHDR.unpack_from(data, off + 20)[0]
                tlvs += (echoed + 3) & ~3
            text = _ack_text(data, tlvs, off + length) if flags & NLM_F_ACK_TLVS else ""
            raise BsrError(code, text)


def _ack_text(data: bytes, off: int, end: int) -> str:
    """NLMSGERR_ATTR_MSG of an extended ack, or ""."""
    while off + 4 <= end:
        length, typ = struct.unpack_from("=HH", data, off)
        if length < 4 or off + length > end:
            return ""
        if typ & 0x3FFF == NLMSGERR_ATTR_MSG:
            return data[off + 4:off + length].rstrip(b"\0").decode(errors="replace")
        off += (length + 3) & ~3
    return ""


def _netlink_text(e: NetlinkError) -> str:
    msg = e.args[1] if len(e.args) > 1 and e.args[1] else ""
    return str(msg) or errno.errorcode.get(e.code, "error")


def _malformed(e: DecodeError) -> BsrError:
    return BsrError(errno.EBADMSG, f"malformed message from bsr.ko: {e}")
