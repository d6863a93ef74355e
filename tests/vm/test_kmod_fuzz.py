"""Malformed and random generic-netlink messages against bsr.ko: every one
is answered (error or sane reply), nothing oopses or warns, and the module
still works afterwards."""
from __future__ import annotations

import json

import pytest

from harness import Guest

pytestmark = pytest.mark.vm

FUZZ = r'''
import json, os, random, socket, struct, sys
from bsr import abi
from bsr.netlink import BsrNetlink

N = int(sys.argv[1])
rnd = random.Random(int(sys.argv[2]))
fam = BsrNetlink().family_id
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
s.setsockopt(270, 11, 1)  # NETLINK_EXT_ACK
s.bind((0, 0))
s.settimeout(10)

def nla(t, payload, nested=False):
    t |= 0x8000 if nested else 0
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, t) + payload + b"\0" * ((4 - ln % 4) % 4)

def rand_value():
    k = rnd.randrange(8)
    if k == 0: return b""
    if k == 1: return struct.pack("=B", rnd.randrange(256))
    if k == 2: return struct.pack("=I", rnd.choice([0, 1, 2, 0xffffffff, rnd.getrandbits(32)]))
    if k == 3: return struct.pack("=Q", rnd.getrandbits(64))
    if k == 4: return os.urandom(rnd.randrange(1, 64))
    if k == 5: return (b"r" * rnd.choice([1, 63, 64, 65, 127, 128, 300, 4000])) + b"\0"
    if k == 6: return rnd.choice([b"r0\0", b"r1\0", b"/dev/vda\0", b"/dev/ram0\0", b"\0"])
    return b"x" * rnd.randrange(1, 300)  # no NUL

def rand_struct():
    st = rnd.choice(abi.STRUCTS)
    body = b""
    for f, i in abi.field_ids(st):
        if rnd.random() < 0.5:
            body += nla(rnd.choice([i, i, i, rnd.randrange(0, 40)]), rand_value())
    attr = abi.top_attr_ids()[st.attr]
    return nla(rnd.choice([attr, attr, rnd.randrange(0, 64)]), body, nested=rnd.random() < 0.9)

def rand_payload():
    k = rnd.randrange(6)
    if k == 0: return b""
    if k == 1: return os.urandom(rnd.randrange(1, 200))
    attrs = b"".join(rand_struct() for _ in range(rnd.randrange(1, 5)))
    if k == 2 and attrs:  # truncated nest
        return attrs[:rnd.randrange(1, len(attrs))]
    return attrs

def message(seq):
    cmd = rnd.choice([rnd.randrange(0, 256), rnd.randrange(0, len(abi.COMMANDS) + 2),
                      rnd.randrange(1, len(abi.COMMANDS) + 1)])
    minor = rnd.choice([abi.MINOR_NONE, 0, 1, rnd.getrandbits(32)])
    hdr = struct.pack("=BBH", cmd, 1, 0)
    user = struct.pack("=Ii", minor, 0) if rnd.random() < 0.95 else os.urandom(rnd.randrange(0, 8))
    payload = hdr + user + rand_payload()
    flags = NLM_F_REQUEST | rnd.choice([NLM_F_ACK, NLM_F_ACK, NLM_F_DUMP, NLM_F_ACK | NLM_F_DUMP])
    return struct.pack("=IHHII", 16 + len(payload), fam, flags, seq, 0) + payload

counts = {"error": 0, "reply": 0, "done": 0}
for seq in range(1, N + 1):
    s.send(message(seq))
    finished = False
    while not finished:
        data = s.recv(1 << 17)
        off = 0
        while off + 16 <= len(data):
            ln, typ, flags, rseq, pid = struct.unpack_from("=IHHII", data, off)
            if ln < 16:
                break
            if rseq == seq:
                if typ == NLMSG_ERROR:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    counts["error" if err else "done"] += 1
                    finished = True
                elif typ == NLMSG_DONE:
                    counts["done"] += 1
                    finished = True
                else:
                    counts["reply"] += 1
            off += (ln + 3) & ~3
print(json.dumps(counts))
'''

SANITY = r'''
import json
from bsr.netlink import BsrNetlink
nl = BsrNetlink()
for m in nl.dump("GET_RESOURCES"):
    nl.request("DOWN", ctx={"res_name": m.structs["ctx"]["res_name"]})
nl.request("NEW_RESOURCE", ctx={"res_name": "sane"}, res_opts={"node_id": 0})
nl.request("NEW_MINOR", ctx={"res_name": "sane"}, new_minor_parms={"minor": 9})
nl.request("DOWN", ctx={"res_name": "sane"})
print(json.dumps({"left": len(nl.dump("GET_INITIAL_STATE"))}))
'''


def test_ten_thousand_malformed_messages_are_answered_and_module_survives(solo: Guest,
                                                                          bsr_ko) -> None:
    g = solo
    g.rmmod("bsr")
    g.insmod(bsr_ko)
    out = g.check(f"python - 10000 4242 <<'EOF'\n{FUZZ}\nEOF", timeout=900).stdout
    counts = json.loads(out.splitlines()[-1])
    assert sum(counts.values()) >= 10000
    assert counts["error"] > 1000
    out = g.check(f"python - <<'EOF'\n{SANITY}\nEOF", timeout=120).stdout
    assert json.loads(out.splitlines()[-1]) == {"left": 1}  # only EV_INITIAL_DONE
    g.rmmod("bsr")
    assert not g.module_loaded("bsr")
