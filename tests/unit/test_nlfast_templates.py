"""bsr.nlfast's remembered layouts: structs of the same size but different
layouts (names of different lengths) each keep their template, the one used
last is tried first, and the least recently used one is dropped."""
from __future__ import annotations

from bsr import abi
from bsr import netlink as nl
from bsr.nlfast import LAYOUTS_PER_SIZE, Decoder

FAMILY_ID = 0x1F


def encoded(res_name: str) -> bytes:
    msg = nl.build("EV_RESOURCE", ctx={"res_name": res_name}, res_info={"role": 1})
    msg["header"]["type"] = FAMILY_ID
    msg.encode()
    return bytes(msg.data)


def ctx_templates(dec: Decoder, data: bytes) -> list:  # type: ignore[type-arg]
    """The templates of the ctx struct (these tests use one size of it)."""
    sid = abi.top_attr_ids()[abi.CTX.attr]
    return next(v for (s, _n), v in dec._templates.items() if s == sid)


def test_same_size_layouts_decode_right_and_the_last_used_is_tried_first() -> None:
    dec = Decoder(nl.Message)
    a, b = encoded("r1"), encoded("r10")  # "r1\0" and "r10\0" pad to 4 bytes
    assert len(a) == len(b)
    for data, name in ((a, "r1"), (b, "r10"), (b, "r10"), (a, "r1"), (b, "r10")):
        assert dec.message(data).structs["ctx"] == {"res_name": name}
    tpls = ctx_templates(dec, b)
    assert len(tpls) == 2
    assert tpls[0].match(b, 28 + 4) == {"res_name": "r10"}
    assert tpls[1].match(b, 28 + 4) is None


def test_the_least_recently_used_layout_is_dropped() -> None:
    dec = Decoder(nl.Message)
    # five layouts of one padded size: strings of 1..4 bytes with their NUL
    ctxs = [{"res_name": r, "conn_name": "c"} for r in ("", "r", "rx", "rxx")]
    ctxs.append({"res_name": "r", "conn_name": "cx"})
    datas = [encoded_ctx(c) for c in ctxs]
    assert len({len(d) for d in datas}) == 1 and len(ctxs) > LAYOUTS_PER_SIZE
    for d, c in zip(datas, ctxs):
        assert dec.message(d).structs["ctx"] == c
    tpls = ctx_templates(dec, datas[0])
    assert len(tpls) == LAYOUTS_PER_SIZE
    assert all(t.match(datas[0], 32) is None for t in tpls)  # the oldest went
    assert all(t.match(d, 32) is not None for t, d in zip(tpls, reversed(datas)))
    assert dec.message(datas[0]).structs["ctx"] == ctxs[0]  # walked again


def encoded_ctx(ctx: dict) -> bytes:  # type: ignore[type-arg]
    msg = nl.build("EV_CONNECTION", ctx=ctx)
    msg["header"]["type"] = FAMILY_ID
    msg.encode()
    return bytes(msg.data)


def dump_messages() -> list[bytes]:
    """A statistics dump as bench/bench_bsrmon.py records it, one message each."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_bsrmon import netlink_dump
    data = netlink_dump(12, 3)
    out, off = [], 0
    while off < len(data):
        length = int.from_bytes(data[off:off + 4], "little")
        out.append(data[off:off + length])
        off += (length + 3) & ~3
    return out


def test_whole_messages_replayed_from_their_layout_decode_as_pyroute2_does() -> None:
    dec = Decoder(nl.Message)
    msgs = dump_messages()
    for _ in range(3):  # first by struct, then whole messages
        for data in msgs:
            ref = nl.decode_reference(nl.parse_reference(data, int.from_bytes(
                data[4:6], "little"))[0])
            got = dec.message(data)
            assert (got.cmd, got.minor, got.structs) == (ref.cmd, ref.minor, ref.structs)
    assert dec._messages  # layouts remembered
    assert sum(len(v) for v in dec._messages.values()) < len(msgs)


def test_a_message_of_a_known_size_but_another_layout_is_decoded_the_long_way() -> None:
    dec = Decoder(nl.Message)
    a = encoded_ctx({"res_name": "rx", "conn_name": "c"})
    b = encoded_ctx({"res_name": "r", "conn_name": "cx"})  # same size, other lengths
    swapped = bytearray(a)  # conn_name's attribute number where res_name's was
    ids = dict((f.name, i) for f, i in abi.field_ids(abi.CTX))
    first = 28 + 4  # the first nested attribute: res_name
    swapped[first + 2:first + 4] = ids["conn_name"].to_bytes(2, "little")
    assert dec.message(a).structs["ctx"] == {"res_name": "rx", "conn_name": "c"}
    assert dec.message(b).structs["ctx"] == {"res_name": "r", "conn_name": "cx"}
    assert dec.message(bytes(swapped)).structs["ctx"] == {"conn_name": "c"}  # the last wins
    assert dec.message(a).structs["ctx"] == {"res_name": "rx", "conn_name": "c"}


def _header_offsets(data: bytes) -> list[int]:
    """Offsets of every attribute header of a message, top-level and nested."""
    out, off = [], 28
    while off < len(data):
        length = int.from_bytes(data[off:off + 2], "little")
        out.append(off)
        inner = off + 4
        while inner < off + length:
            out.append(inner)
            inner += (int.from_bytes(data[inner:inner + 2], "little") + 3) & ~3
        off += (length + 3) & ~3
    return out


def test_a_remembered_message_layout_checks_every_attribute_header() -> None:
    data = next(m for m in dump_messages() if m[16] == nl.CMD_IDS["EV_DEVICE"])
    dec = Decoder(nl.Message)
    for _ in range(2):
        dec.message(data)
    assert dec._messages
    heads = _header_offsets(data)
    assert len(heads) > 40
    for off in heads:
        changed = bytearray(data)
        changed[off + 2:off + 4] = (0x3FF0).to_bytes(2, "little")  # an unknown attribute
        got = dec.message(bytes(changed))
        want = Decoder(nl.Message).message(bytes(changed))  # the long way
        assert got.structs == want.structs, off
