"""bsr.nlfast decodes exactly what pyroute2 decodes, and refuses garbage cleanly.

The corpus is built byte by byte here (not with pyroute2's encoder) so that
it can hold what the kernel or a newer module may send and pyroute2 would
never write: unknown attributes, flags on the attribute type, duplicates.
"""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsr import abi
from bsr import netlink as nl
from bsr.nlfast import DecodeError, Decoder

FAMILY_ID = 0x1F
NESTED = 0x8000
NET_BYTEORDER = 0x4000
_PACK = {"u8": "=B", "u32": "=I", "s32": "=i", "u64": "=Q"}
CMD_IDS = abi.command_ids()
TOP_IDS = abi.top_attr_ids()


def nla(typ: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, typ) + payload + bytes(-length % 4)


def leaf(f: abi.Field, value: object) -> bytes:
    t = f.nla_type
    if t == "str":
        return str(value).encode() + b"\0"
    if t == "bin":
        return bytes(value)  # type: ignore[arg-type]
    return struct.pack(_PACK[t], value)


def struct_attr(s: abi.Struct, values: dict, *, nested: bool = True,
                unknown: bool = False, leaf_flags: int = 0) -> bytes:
    ids = dict((f.name, i) for f, i in abi.field_ids(s))
    body = b"".join(nla(ids[k] | leaf_flags, leaf(s.field(k), v)) for k, v in values.items())
    if unknown:  # a field of a newer module, then the PAD attribute
        body += nla(len(s.fields) + 7, b"newer field") + nla(len(s.fields) + 1, b"")
    return nla(TOP_IDS[s.attr] | (NESTED if nested else 0), body)


def message(cmd: str, attrs: bytes, minor: int = abi.MINOR_NONE, ret: int = 0,
            seq: int = 1, mtype: int = FAMILY_ID, flags: int = 0) -> bytes:
    body = struct.pack("=BBHIi", CMD_IDS[cmd], abi.FAMILY_VERSION, 0, minor, ret) + attrs
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body


def edge_values(f: abi.Field, which: str) -> object:
    t = f.nla_type
    if t == "str":
        return {"min": "", "max": "x" * max(f.maxlen - 1, 1),
                "utf8": "r\u00e9sum\u00e9-\u2713-\U0001f4be"}[which]
    if t == "bin":
        return {"min": b"", "max": bytes(range(256))[:f.maxlen or 16] or b"\xff",
                "utf8": b"\0\xff\0"}[which]
    lo, hi = {"u8": (0, 255), "u32": (0, 2**32 - 1), "s32": (-2**31, 2**31 - 1),
              "u64": (0, 2**64 - 1)}[t]
    return {"min": lo, "max": hi, "utf8": hi // 3}[which]


def both(data: bytes) -> tuple[list[nl.Message], list[nl.Message]]:
    """(pyroute2 reference, fast path via pyroute2's split)."""
    ref = [nl.decode_reference(m) for m in nl.parse_reference(data, FAMILY_ID)]
    fast = [nl.decode(m) for m in nl.parse(data, FAMILY_ID)]
    return ref, fast


def corpus(s: abi.Struct) -> bytes:
    """One datagram: ``s`` in a message of every command, with edge values and
    the oddities the wire allows (no NLA_F_NESTED, flags on leaves, unknown
    attributes at both levels, UNSPEC)."""
    out = []
    for i, c in enumerate(abi.COMMANDS):
        j = abi.STRUCTS.index(s)
        which = ("min", "max", "utf8")[(i + j) % 3]
        values = {f.name: edge_values(f, which) for f in s.fields}
        oddity = (i + j) % 4
        attrs = struct_attr(s, values, nested=oddity != 1, unknown=oddity == 2,
                            leaf_flags=NET_BYTEORDER if oddity == 3 else 0)
        if oddity == 2:  # an unknown top-level struct and the UNSPEC attribute
            attrs = nla(NESTED | 0x3FF0, nla(1, b"abcd")) + attrs + nla(0, b"")
        ctx = struct_attr(abi.CTX, {"res_name": f"r{i}", "volume": j})
        out.append(message(c.name, ctx + attrs, minor=j, ret=-i))
    return b"".join(out)


CORPUS = {s.name: corpus(s) for s in abi.STRUCTS}


@pytest.mark.parametrize("name", CORPUS)
def test_fast_decoder_equals_pyroute2_for_every_struct_in_every_command(name: str) -> None:
    data = CORPUS[name]
    ref, fast = both(data)
    assert len(ref) == len(abi.COMMANDS)
    assert fast == ref
    assert nl.decode_messages(data, FAMILY_ID) == ref


def test_corpus_covers_every_field_and_the_reference_sees_them() -> None:
    seen: set[tuple[str, str]] = set()
    for data in CORPUS.values():
        for m in nl.decode_messages(data, FAMILY_ID):
            seen |= {(s, f) for s, fields in m.structs.items() for f in fields}
    assert seen == {(s.name, f.name) for s in abi.STRUCTS for f in s.fields}


def test_a_whole_dump_in_one_datagram_decodes_like_pyroute2_twice_over() -> None:
    data = b"".join(CORPUS.values())
    ref, _ = both(data)
    dec = Decoder(nl.Message)
    assert list(dec.messages(data, FAMILY_ID)) == ref  # walks, remembers layouts
    assert list(dec.messages(data, FAMILY_ID)) == ref  # replays them


def test_a_remembered_layout_is_not_used_for_another_of_the_same_size() -> None:
    dec = Decoder(nl.Message)
    s = abi.CONN_INFO  # three u32 fields: any order has the same size
    a = message("EV_CONNECTION", struct_attr(s, {"conn_state": 9, "peer_role": 1,
                                                 "agreed_proto": 2}))
    b = message("EV_CONNECTION", struct_attr(s, {"agreed_proto": 3, "conn_state": 2,
                                                 "peer_role": 2}))
    c = message("EV_CONNECTION", struct_attr(abi.CTX, {"res_name": "r1"}))
    d = message("EV_CONNECTION", struct_attr(abi.CTX, {"res_name": "r12"}))
    for data in (a, b, a, c, d, c, d):
        assert dec.message(data) == both(data)[0][0]


def test_strings_lose_nul_bytes_at_both_ends_and_bad_utf8_stays_bytes() -> None:
    name = nla(1, b"\0\0r0\0\0")
    path = nla(4, b"\xff\xfe\0")
    data = message("EV_RESOURCE", nla(NESTED | TOP_IDS["CTX"], name + path))
    (m,) = nl.decode_messages(data, FAMILY_ID)
    assert m.structs["ctx"] == {"res_name": "r0", "conn_name": b"\xff\xfe"}
    assert [m] == both(data)[0]


def test_a_repeated_attribute_overrides_the_earlier_one() -> None:
    s = abi.NOTIFY
    data = message("EV_DEVICE", nla(NESTED | TOP_IDS["NOTIFY"],
                                    nla(2, struct.pack("=I", 5)) + nla(2, struct.pack("=I", 6))))
    assert nl.decode_messages(data, FAMILY_ID)[0].structs == {s.name: {"seq": 6}}
    assert both(data)[0] == nl.decode_messages(data, FAMILY_ID)


def test_a_repeated_string_attribute_decodes_the_same_from_a_remembered_layout() -> None:
    """Found by the mutation test: the replayed layout decoded the string twice."""
    twice = nla(1, b"r0\0") + nla(1, b"r1\0")
    data = message("EV_RESOURCE", nla(NESTED | TOP_IDS["CTX"], twice))
    dec = Decoder(nl.Message)
    first = list(dec.messages(data, FAMILY_ID))
    again = list(dec.messages(data, FAMILY_ID))  # now through the remembered layout
    assert first[0].structs["ctx"] == again[0].structs["ctx"] == {"res_name": "r1"}


def test_header_fields_and_unknown_command_numbers() -> None:
    body = struct.pack("=BBHIi", 250, 1, 0, 7, -95)
    data = struct.pack("=IHHII", 16 + len(body), FAMILY_ID, 0, 1, 0) + body
    (m,) = nl.decode_messages(data, FAMILY_ID)
    assert (m.cmd, m.minor, m.ret_code, m.structs) == ("250", 7, -95, {})


def test_messages_of_other_netlink_types_are_skipped() -> None:
    done = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)
    data = done + message("EV_INITIAL_DONE", b"") + done
    assert [m.cmd for m in nl.decode_messages(data, FAMILY_ID)] == ["EV_INITIAL_DONE"]


# ---------------------------------------------------------------- malformed

VALID = message("EV_DEVICE", struct_attr(abi.CTX, {"res_name": "r0", "volume": 1})
                + struct_attr(abi.DEVICE_STATS, {"capacity": 8, "blocked": 1}))


@pytest.mark.parametrize("attrs, what", [
    (nla(NESTED | 1, struct.pack("=HH", 0, 2) + b"\0" * 4), "length 0"),
    (nla(NESTED | 1, struct.pack("=HH", 2, 2)), "length 2"),
    (nla(NESTED | 1, struct.pack("=HHI", 40, 2, 1)), "past its struct"),
    (nla(NESTED | 1, nla(2, b"\1\0")), "2 bytes, expected 4"),
    (nla(NESTED | 1, nla(2, b"\1\0\0\0\0\0\0\0")), "8 bytes, expected 4"),
    (nla(NESTED | 1, nla(1, b"r0\0")) + b"\0\0", "left over"),
    (struct.pack("=HH", 0, NESTED | 1), "length 0"),
    (struct.pack("=HH", 200, NESTED | 1), "past the message"),
])
def test_malformed_attributes_raise_decode_error(attrs: bytes, what: str) -> None:
    data = message("EV_RESOURCE", attrs)
    with pytest.raises(DecodeError) as e:
        nl.decode_messages(data, FAMILY_ID)
    assert isinstance(e.value, ValueError)
    assert str(e.value)


@pytest.mark.parametrize("cut", range(1, len(VALID)))
def test_every_truncation_of_a_message_is_refused(cut: int) -> None:
    data = VALID[:cut]
    if cut >= 16:  # the header still claims the full length
        with pytest.raises(DecodeError):
            nl.decode_messages(data, FAMILY_ID)
    # a header that claims only what is there
    data = struct.pack("=I", cut) + VALID[4:cut] if cut >= 16 else data
    try:
        msgs = nl.decode_messages(data, FAMILY_ID)
    except DecodeError:
        return
    assert all(isinstance(m, nl.Message) for m in msgs)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_attribute_bytes_decode_or_raise_decode_error_only(blob: bytes) -> None:
    data = message("EV_DEVICE", blob)
    try:
        msgs = nl.decode_messages(data, FAMILY_ID)
    except DecodeError:
        return
    assert len(msgs) == 1 and isinstance(msgs[0].structs, dict)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_valid_messages_decode_or_raise_decode_error_only(data: st.DataObject) -> None:
    buf = bytearray(VALID + VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    dec = Decoder(nl.Message)
    for _ in range(2):  # the second time through remembered layouts
        try:
            msgs = list(dec.messages(bytes(buf), FAMILY_ID))
        except DecodeError:
            continue
        assert all(isinstance(m, nl.Message) for m in msgs)


def test_events_and_dumps_report_malformed_messages_as_ebadmsg() -> None:
    reader = nl.DumpReader(FAMILY_ID, seq=1)
    with pytest.raises(nl.BsrError) as e:
        reader.feed(message("EV_RESOURCE", struct.pack("=HH", 0, NESTED | 1)))
    assert e.value.errno == errno.EBADMSG
    assert "malformed message from bsr.ko" in str(e.value)


# ---------------------------------------------------------------- dump replies

def done(seq: int = 1, code: int = 0, text: str = "") -> bytes:
    tlv = nla(1, text.encode() + b"\0") if text else b""
    flags = 0x2 | (0x200 if text else 0)
    return struct.pack("=IHHIIi", 20 + len(tlv), 3, flags, seq, 0, code) + tlv


def error(seq: int, code: int, text: str = "", capped: bool = True) -> bytes:
    request = message("GET_INITIAL_STATE", b"", seq=seq, flags=0x301)
    echoed = request[:16] if capped else request
    tlv = nla(1, text.encode() + b"\0") if text else b""
    flags = (0x100 if capped else 0) | (0x200 if text else 0)
    body = struct.pack("=i", code) + echoed + tlv
    return struct.pack("=IHHII", 16 + len(body), 2, flags, seq, 0) + body


def test_dump_reader_collects_messages_over_several_datagrams_until_done() -> None:
    reader = nl.DumpReader(FAMILY_ID, seq=9)
    a = message("EV_RESOURCE", struct_attr(abi.CTX, {"res_name": "r0"}), seq=9, flags=2)
    b = message("EV_DEVICE", struct_attr(abi.CTX, {"res_name": "r0"}), seq=9, flags=2)
    stale = message("EV_PATH", b"", seq=8, flags=2)
    reader.feed(a + stale)
    assert not reader.done
    reader.feed(b + done(9))
    assert reader.done
    assert [m.cmd for m in reader.messages] == ["EV_RESOURCE", "EV_DEVICE"]
    assert reader.messages[1].structs == {"ctx": {"res_name": "r0"}}


@pytest.mark.parametrize("capped", [True, False])
def test_dump_reader_raises_the_kernels_error_and_its_extended_ack_text(capped: bool) -> None:
    reader = nl.DumpReader(FAMILY_ID, seq=3)
    with pytest.raises(nl.BsrError) as e:
        reader.feed(error(3, -errno.ENOENT, "r9: no such resource", capped))
    assert e.value.errno == errno.ENOENT and e.value.text == "r9: no such resource"


def test_dump_reader_error_without_text_names_the_errno_and_done_may_carry_one() -> None:
    with pytest.raises(nl.BsrError) as e:
        nl.DumpReader(FAMILY_ID, seq=3).feed(error(3, -errno.EPERM))
    assert e.value.text == "EPERM"
    with pytest.raises(nl.BsrError) as e:
        nl.DumpReader(FAMILY_ID, seq=4).feed(done(4, -errno.EINVAL, "bad ctx"))
    assert e.value.errno == errno.EINVAL and e.value.text == "bad ctx"


def test_dump_reader_ack_of_zero_ends_an_empty_dump() -> None:
    reader = nl.DumpReader(FAMILY_ID, seq=5)
    reader.feed(error(5, 0))
    assert reader.done and reader.messages == []


def test_plain_request_reader_takes_the_reply_then_ends_at_the_ack() -> None:
    """BsrNetlink.version() reads a request's answer this way: the reply
    message, then the NLMSG_ERROR of code 0 that acknowledges it."""
    reader = nl.DumpReader(FAMILY_ID, seq=6)
    reply = message("GET_VERSION", struct_attr(abi.CTX, {"res_name": "r0"}), seq=6, flags=0)
    reader.feed(reply)
    assert not reader.done
    reader.feed(error(6, 0))
    assert reader.done and [m.cmd for m in reader.messages] == ["GET_VERSION"]
