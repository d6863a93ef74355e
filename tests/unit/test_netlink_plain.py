"""bsr.netlink.PlainChannel: requests encoded by pyroute2 once, then reused
with a new sequence number; answers read until the ack or NLMSG_DONE;
a failed request drops its socket."""
from __future__ import annotations

import errno
import struct

import pytest

from bsr import abi
from bsr import netlink as nl

FAMILY_ID = 0x1F
DUMP = nl.NLM_F_REQUEST | nl.NLM_F_DUMP
ACKED = nl.NLM_F_REQUEST | nl.NLM_F_ACK


class Kernel:
    """A socket answering every request with ``answer(seq)``; records what it got."""

    def __init__(self, answer) -> None:  # type: ignore[no-untyped-def]
        self.answer = answer
        self.sent: list[bytes] = []
        self.queue: list[bytes] = []
        self.closed = False

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        seq = struct.unpack_from("=I", data, 8)[0]
        self.queue = list(self.answer(seq))
        return len(data)

    def recv(self, _size: int) -> bytes:
        if not self.queue:
            raise TimeoutError("no answer")
        return self.queue.pop(0)

    def close(self) -> None:
        self.closed = True


def reply(cmd: str, seq: int, flags: int = 0) -> bytes:
    ctx = nl.build(cmd, ctx={"res_name": "r0"})
    ctx["header"]["type"] = FAMILY_ID
    ctx["header"]["flags"] = flags
    ctx["header"]["sequence_number"] = seq
    ctx.encode()
    return bytes(ctx.data)


def done(seq: int, code: int = 0) -> bytes:
    return struct.pack("=IHHIIi", 20, nl.NLMSG_DONE, 2, seq, 0, code)


def ack(seq: int) -> bytes:
    return struct.pack("=IHHIIi", 36, nl.NLMSG_ERROR, nl.NLM_F_CAPPED, seq, 0, 0) + bytes(16)


@pytest.mark.parametrize("cmd,flags,minor,structs", [
    ("GET_INITIAL_STATE", DUMP, abi.MINOR_NONE, {}),
    ("GET_VERSION", ACKED, abi.MINOR_NONE, {}),
    ("GET_DEVICES", DUMP, 3, {"ctx": {"res_name": "r0", "volume": 1}}),
])
def test_cached_request_bytes_equal_pyroute2s_encoding_with_each_new_sequence_number(
        cmd: str, flags: int, minor: int, structs: dict) -> None:  # type: ignore[type-arg]
    ch = nl.PlainChannel(FAMILY_ID, open_socket=lambda: Kernel(lambda s: ()))
    for seq in (1, 2, 77, 0xFFFFFFFF):
        got = ch.request_bytes(cmd, flags, minor, structs, seq)
        assert got == nl.encode_request(cmd, flags, minor, structs, FAMILY_ID, seq)
        assert struct.unpack_from("=IHHII", got)[1:4] == (FAMILY_ID, flags, seq)


def test_requests_that_differ_in_a_field_get_their_own_bytes() -> None:
    ch = nl.PlainChannel(FAMILY_ID)
    a = ch.request_bytes("GET_DEVICES", DUMP, 0, {"ctx": {"res_name": "r0"}}, 5)
    b = ch.request_bytes("GET_DEVICES", DUMP, 0, {"ctx": {"res_name": "r1"}}, 5)
    c = ch.request_bytes("GET_DEVICES", ACKED, 0, {"ctx": {"res_name": "r0"}}, 5)
    assert len({a, b, c}) == 3
    assert b == nl.encode_request("GET_DEVICES", DUMP, 0, {"ctx": {"res_name": "r1"}},
                                  FAMILY_ID, 5)


def test_an_unhashable_value_is_encoded_every_time_and_a_bad_field_still_raises() -> None:
    ch = nl.PlainChannel(FAMILY_ID)
    addr = bytearray(nl.encode_addr("ipv4:10.0.0.1:7789"))
    structs = {"ctx": {"res_name": "r0", "my_addr": addr}}
    for seq in (3, 4):
        got = ch.request_bytes("NEW_PATH", ACKED, abi.MINOR_NONE, structs, seq)
        assert got == nl.encode_request("NEW_PATH", ACKED, abi.MINOR_NONE, structs,
                                        FAMILY_ID, seq)
    assert ch._requests == {}
    with pytest.raises(KeyError):
        ch.request_bytes("GET_DEVICES", DUMP, 0, {"ctx": {"no_such_field": 1}}, 4)


def test_the_cache_of_encodings_is_bounded() -> None:
    ch = nl.PlainChannel(FAMILY_ID)
    for i in range(3 * nl.PlainChannel.MAX_REQUESTS):
        ch.request_bytes("GET_DEVICES", DUMP, 0, {"ctx": {"res_name": f"r{i}"}}, 1)
    assert len(ch._requests) <= nl.PlainChannel.MAX_REQUESTS


def test_run_sends_increasing_sequence_numbers_and_reads_until_done_or_ack() -> None:
    kernel = Kernel(lambda seq: [reply("EV_RESOURCE", seq, 2), reply("EV_DEVICE", seq, 2)
                                 + done(seq)] if seq % 2 else [reply("GET_VERSION", seq), ack(seq)])
    ch = nl.PlainChannel(FAMILY_ID, open_socket=lambda: kernel)
    assert [m.cmd for m in ch.run("GET_INITIAL_STATE", DUMP, abi.MINOR_NONE, {})] == \
        ["EV_RESOURCE", "EV_DEVICE"]
    assert [m.cmd for m in ch.run("GET_VERSION", ACKED, abi.MINOR_NONE, {})] == ["GET_VERSION"]
    assert [m.cmd for m in ch.run("GET_INITIAL_STATE", DUMP, abi.MINOR_NONE, {})] == \
        ["EV_RESOURCE", "EV_DEVICE"]
    assert [struct.unpack_from("=I", d, 8)[0] for d in kernel.sent] == [1, 2, 3]
    assert kernel.sent[0][:8] + kernel.sent[0][12:] == kernel.sent[2][:8] + kernel.sent[2][12:]


def test_a_failed_request_closes_the_socket_and_the_next_one_opens_another() -> None:
    opened: list[Kernel] = []

    def open_socket() -> Kernel:
        k = Kernel(lambda seq: [done(seq, -errno.ENOENT)] if len(opened) == 1 else
                   [done(seq)])
        opened.append(k)
        return k

    ch = nl.PlainChannel(FAMILY_ID, open_socket=open_socket)
    with pytest.raises(nl.BsrError) as e:
        ch.run("GET_INITIAL_STATE", DUMP, abi.MINOR_NONE, {})
    assert e.value.errno == errno.ENOENT and opened[0].closed
    assert ch.run("GET_INITIAL_STATE", DUMP, abi.MINOR_NONE, {}) == []
    assert len(opened) == 2 and not opened[1].closed


def test_a_silent_kernel_is_a_timeout_error() -> None:
    ch = nl.PlainChannel(FAMILY_ID, open_socket=lambda: Kernel(lambda seq: ()))
    with pytest.raises(nl.BsrError) as e:
        ch.run("GET_VERSION", ACKED, abi.MINOR_NONE, {})
    assert e.value.errno == errno.ETIMEDOUT
