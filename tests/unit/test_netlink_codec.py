"""Encode/decode round trips of bsr netlink messages (no kernel needed)."""

from __future__ import annotations

import pytest

from bsr import abi
from bsr import netlink as nl

FAMILY_ID = 0x1234


def sample_value(f: abi.Field) -> int | str | bytes:
    t = f.nla_type
    if t == "str":
        return ("x" * (f.maxlen - 1)) if f.maxlen else "v"
    if t == "bin":
        return bytes(range(f.maxlen))
    if t == "u8":
        return 1
    if t == "s32":
        return -7
    if t == "u64":
        return (1 << 64) - 3
    return 0xFFFFFFFE


def roundtrip(cmd: str, minor: int, **structs: dict) -> nl.Message:
    msg = nl.build(cmd, minor, **structs)
    msg["header"]["type"] = FAMILY_ID
    msg.encode()
    (parsed,) = nl.parse(msg.data, FAMILY_ID)
    return nl.decode(parsed)


@pytest.mark.parametrize("s", abi.STRUCTS, ids=lambda s: s.name)
def test_every_struct_survives_a_roundtrip_with_extreme_values(s: abi.Struct) -> None:
    values = {f.name: sample_value(f) for f in s.fields}
    out = roundtrip("GET_VERSION", 5, **{s.name: values})
    assert out.cmd == "GET_VERSION"
    assert out.minor == 5
    assert out.structs == {s.name: values}


def test_nested_attributes_carry_nla_f_nested_and_abi_numbers() -> None:
    msg = nl.build("NEW_MINOR", 0, ctx={"res_name": "r0"}, new_minor_parms={"minor": 9})
    msg["header"]["type"] = FAMILY_ID
    msg.encode()
    data = msg.data
    # nlmsghdr(16) + genlmsghdr(4) + bsr header(8), then the first attribute
    off = 28
    nla_len, nla_type = int.from_bytes(data[off:off + 2], "little"), \
        int.from_bytes(data[off + 2:off + 4], "little")
    assert nla_type == 0x8000 | abi.top_attr_ids()["CTX"]
    assert data[16] == abi.command_ids()["NEW_MINOR"]
    assert nla_len > 4


def test_header_ret_code_is_signed() -> None:
    msg = nl.build("PRIMARY", 0)
    msg["ret_code"] = -16
    msg["header"]["type"] = FAMILY_ID
    msg.encode()
    assert nl.decode(nl.parse(msg.data, FAMILY_ID)[0]).ret_code == -16


def test_unknown_field_is_rejected_before_sending() -> None:
    with pytest.raises(KeyError):
        nl.build("NEW_RESOURCE", ctx={"no_such_field": 1})


def test_wrong_value_type_is_rejected() -> None:
    with pytest.raises(TypeError):
        nl.build("NEW_RESOURCE", ctx={"res_name": 5})


@pytest.mark.parametrize("text", [
    "ipv4:1.2.3.4:7789", "ipv4:0.0.0.0:0", "ipv6:[fd00::1]:7789", "ipv6:[::]:65535",
])
def test_addresses_roundtrip(text: str) -> None:
    b = nl.encode_addr(text)
    assert len(b) in (16, 28)
    assert nl.decode_addr(b) == text


def test_ipv4_sockaddr_layout() -> None:
    b = nl.encode_addr("ipv4:10.0.0.1:7789")
    assert b[:2] == (2).to_bytes(2, "little")
    assert b[2:4] == (7789).to_bytes(2, "big")
    assert b[4:8] == bytes([10, 0, 0, 1])


@pytest.mark.parametrize("bad", [
    "1.2.3.4:7789", "ipv4:1.2.3.4", "ipv4:1.2.3.400:1", "ipv6:fd00::1:7789",
    "ipv4:1.2.3.4:70000", "sdp:1.2.3.4:1",
])
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        nl.encode_addr(bad)


def test_bsr_error_carries_errno_and_text() -> None:
    e = nl.BsrError(-2, "r0: no such resource")
    assert e.errno == 2
    assert "no such resource" in str(e)
