"""bsr.ko on one node, driven through bsr.netlink from inside a guest:
object lifecycle, roles, the I/O path, events, bad input and rmmod."""
from __future__ import annotations

import json
import shlex

import pytest

from harness import Guest
from harness.plugin import pick_disks

pytestmark = pytest.mark.vm

# Runs inside the guest: one JSON line per request on stdout.
PRELUDE = r'''
import json, sys
from bsr.netlink import BsrNetlink, BsrError, encode_addr
nl = BsrNetlink()

def req(cmd, tag=None, **kw):
    try:
        m = nl.request(cmd, **kw)
        out = {"cmd": tag or cmd, "ok": True, "text": m.info_text}
    except BsrError as e:
        out = {"cmd": tag or cmd, "ok": False, "errno": e.errno, "text": e.text}
    print(json.dumps(out), flush=True)
    return out

def device(minor):
    for m in nl.dump("GET_DEVICES"):
        if m.minor == minor:
            return {k: {f: (v.hex() if isinstance(v, bytes) else v) for f, v in d.items()}
                    for k, d in m.structs.items()}
    return None
'''

LISTENER = r'''
import json, sys
from bsr.netlink import BsrNetlink
nl = BsrNetlink()
nl.subscribe()
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "w") as out:
    for ev in nl.events(timeout=900):
        d = {"cmd": ev.cmd, "notify": ev.structs.get("notify"),
             "ctx": {k: v for k, v in ev.structs.get("ctx", {}).items() if isinstance(v, (int, str))},
             "info": {k: v for s, f in ev.structs.items() if s.endswith("_info")
                      for k, v in f.items() if isinstance(v, (int, str))},
             "stats": {k: v for s, f in ev.structs.items() if s.endswith("_stats")
                       for k, v in f.items() if isinstance(v, int)}}
        out.write(json.dumps(d) + "\n")
        out.flush()
        if ev.cmd == "EV_RESOURCE" and d["notify"]["type"] == 3:
            break
'''


def pyrun(g: Guest, code: str, timeout: float = 600, check: bool = True) -> list[dict]:
    script = PRELUDE + code
    cmd = f"python - <<'EOF'\n{script}\nEOF"
    r = g.check(cmd, timeout=timeout) if check else g.run(cmd, timeout=timeout)
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def results(lines: list[dict]) -> dict[str, dict]:
    """Last result per command name (tests name each step distinctly)."""
    return {x["cmd"]: x for x in lines}


DISK_MB = 128  # the module's disk of the session's single-node guest


@pytest.fixture
def node(solo: Guest, bsr_ko) -> Guest:
    g = solo
    if not g.alive:
        g.boot()
    g.run("umount /tmp/mnt 2>/dev/null; true")
    g.rmmod("bsr")
    g.insmod(bsr_ko)
    yield g
    # DOWN of whatever r0 a test left (bsrsetup goes through the guest's
    # tool zygote: a new Python would take seconds to start under TCG)
    g.run("umount /tmp/mnt 2>/dev/null; bsrsetup down r0 2>/dev/null; true", timeout=600)
    g.rmmod("bsr")


def create_md(g: Guest) -> str:
    disk = pick_disks(g, [DISK_MB])[0].device
    g.check(f"dd if=/dev/zero of={disk} bs=1M count=16 oflag=direct status=none")
    g.check(f"bsrmeta --force --node-id=0 0 v1 {disk} internal "
            f"create-md --max-peers=1", timeout=600)
    return disk


UP = r'''
req("NEW_RESOURCE", ctx={"res_name": "r0"}, res_opts={"node_id": 0})
req("NEW_MINOR", ctx={"res_name": "r0", "volume": 0}, new_minor_parms={"minor": 0})
req("ATTACH", minor=0, disk_conf={"backing_dev": DISK, "meta_dev": DISK, "meta_dev_idx": -1})
'''


def up(g: Guest, disk: str) -> dict[str, dict]:
    return results(pyrun(g, f"DISK = {disk!r}\n" + UP))


def test_lifecycle_data_survives_detach_reattach_and_role_changes(node: Guest) -> None:
    g = node
    disk = create_md(g)
    g.run("rm -f /tmp/ev_*")
    listeners = []
    for name in ("a", "b"):
        code = shlex.quote(LISTENER)
        listeners.append(g.run_async(f"python -c {code} /tmp/ev_{name}.json",
                                     timeout=2400))
    g.check("until [ -e /tmp/ev_a.json.ready ] && [ -e /tmp/ev_b.json.ready ]; do sleep 0.5; done",
            timeout=300)

    r = up(g, disk)
    assert all(x["ok"] for x in r.values()), r
    st = pyrun(g, 'print(json.dumps(device(0)["device_info"]))')
    assert st[0]["disk_state"] == 5  # a fresh create-md is Inconsistent

    r = results(pyrun(g, 'req("PRIMARY", ctx={"res_name": "r0"})'))
    assert not r["PRIMARY"]["ok"] and "UpToDate" in r["PRIMARY"]["text"]
    r = results(pyrun(g, 'req("PRIMARY", ctx={"res_name": "r0"}, role_parms={"force": 1})'))
    assert r["PRIMARY"]["ok"], r

    g.check("mkfs.ext4 -q -F /dev/bsr0 && mkdir -p /tmp/mnt && mount /dev/bsr0 /tmp/mnt", timeout=600)
    g.check("for i in 1 2 3; do head -c 3M /dev/urandom > /tmp/mnt/f$i; done; sync")
    want = g.check("cd /tmp/mnt && sha256sum f1 f2 f3").stdout

    r = results(pyrun(g, 'req("SECONDARY", ctx={"res_name": "r0"})'))
    assert not r["SECONDARY"]["ok"] and r["SECONDARY"]["errno"] == 16  # still mounted
    g.check("umount /tmp/mnt")
    r = results(pyrun(g, '''
req("SECONDARY", ctx={"res_name": "r0"})
req("DETACH", minor=0)
req("ATTACH", minor=0, disk_conf={"backing_dev": %r, "meta_dev": %r})
print(json.dumps({"cmd": "state", "ok": True, "ds": device(0)["device_info"]["disk_state"]}))
req("PRIMARY", ctx={"res_name": "r0"})
''' % (disk, disk)))
    assert all(x["ok"] for x in r.values()), r
    assert r["state"]["ds"] == 9  # UpToDate after re-attach

    g.check("mount /dev/bsr0 /tmp/mnt")
    assert g.check("cd /tmp/mnt && sha256sum f1 f2 f3").stdout == want
    g.check("umount /tmp/mnt")
    stats = pyrun(g, 'print(json.dumps(device(0)["device_stats"]))')[0]
    assert stats["write_ios"] > 0 and stats["read_ios"] > 0
    assert stats["upper_pending"] == 0 and stats["lower_pending"] == 0
    assert stats["io_errors"] == 0

    r = results(pyrun(g, 'req("DOWN", ctx={"res_name": "r0"})'))
    assert r["DOWN"]["ok"], r
    for p in listeners:
        assert p.wait().ok
    evs = [g.check(f"cat /tmp/ev_{n}.json").stdout.splitlines() for n in ("a", "b")]
    assert evs[0] == evs[1], "two listeners saw different events"
    seen = [json.loads(x) for x in evs[0]]
    seqs = [e["notify"]["seq"] for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "sequence has gaps"
    kinds = {(e["cmd"], e["notify"]["type"]) for e in seen}
    for cmd in ("EV_RESOURCE", "EV_DEVICE"):
        for t in (1, 2, 3):
            assert (cmd, t) in kinds, (cmd, t)
    roles = [e["info"]["role"] for e in seen if e["cmd"] == "EV_RESOURCE"]
    assert 1 in roles and roles[-1] == 2
    disk_states = [e["info"]["disk_state"] for e in seen if e["cmd"] == "EV_DEVICE"]
    for ds in (1, 5, 9, 2, 0):  # Attaching Inconsistent UpToDate Detaching Diskless
        assert ds in disk_states
    writes = [e["stats"]["write_ios"] for e in seen if e["cmd"] == "EV_DEVICE"]
    assert writes == sorted(writes), "counters went backwards"


def test_secondary_refuses_open_and_leaves_the_disk_unchanged(node: Guest) -> None:
    g = node
    disk = create_md(g)
    assert all(x["ok"] for x in up(g, disk).values())
    before = g.check(f"dd if={disk} bs=1M count=32 iflag=direct status=none | sha256sum").stdout
    r = g.run("dd if=/dev/zero of=/dev/bsr0 bs=4k count=1 oflag=direct")
    assert r.rc != 0 and "Wrong medium type" in r.stderr
    r = g.run("mkdir -p /tmp/mnt && mount /dev/bsr0 /tmp/mnt")
    assert r.rc != 0
    r = g.run("blockdev --getsize64 /dev/bsr0")
    assert r.rc != 0 and "Wrong medium type" in r.stderr
    after = g.check(f"dd if={disk} bs=1M count=32 iflag=direct status=none | sha256sum").stdout
    assert before == after
    assert "bsr0: not Primary, refusing open for write" in g.dmesg()


def test_detach_and_del_minor_refused_while_primary_device_is_open(node: Guest) -> None:
    g = node
    disk = create_md(g)
    assert all(x["ok"] for x in up(g, disk).values())
    pyrun(g, 'req("PRIMARY", ctx={"res_name": "r0"}, role_parms={"force": 1})')
    g.run("rm -f /tmp/held /tmp/ev_*")
    holder = g.run_async("exec 3</dev/bsr0; echo $$ > /tmp/held.tmp; mv /tmp/held.tmp /tmp/held; "
                         "exec sleep 3000", timeout=3600)
    g.check("until [ -e /tmp/held ]; do sleep 0.2; done", timeout=600)
    r = results(pyrun(g, '''
req("DETACH", minor=0)
req("DEL_MINOR", minor=0)
req("SECONDARY", ctx={"res_name": "r0"})
req("INVALIDATE", minor=0)
req("OUTDATE", minor=0)
print(json.dumps({"cmd": "open", "ok": True, "n": device(0)["device_info"]["open_count"]}))
'''))
    assert r["open"]["n"] == 1
    for cmd in ("DETACH", "DEL_MINOR", "SECONDARY", "INVALIDATE", "OUTDATE"):
        assert not r[cmd]["ok"] and r[cmd]["errno"] == 16, r[cmd]
    assert "Primary" in r["INVALIDATE"]["text"]
    g.check("kill $(cat /tmp/held)")
    holder.wait()


def test_bad_input_gets_clear_errors_and_changes_nothing(node: Guest) -> None:
    g = node
    disk = create_md(g)
    assert all(x["ok"] for x in up(g, disk).values())
    r = results(pyrun(g, r'''
req("PRIMARY", ctx={"res_name": "nosuch"})
req("DETACH", minor=77)
req("NEW_MINOR", "minor_range", ctx={"res_name": "r0", "volume": 1},
    new_minor_parms={"minor": 1 << 20})
req("NEW_RESOURCE", ctx={"res_name": "bad/name"})
req("NEW_PEER", ctx={"res_name": "r0", "conn_name": "p"}, new_peer_parms={"peer_node_id": 0})
req("NEW_MINOR", ctx={"res_name": "r0", "volume": 2}, new_minor_parms={"minor": 2})
req("ATTACH", minor=2, disk_conf={"backing_dev": "/dev/nonexistent", "meta_dev": "/dev/nonexistent"})
req("DISK_OPTS", "al_extents", minor=0, disk_conf={"al_extents": 5})
req("DISK_OPTS", minor=0, disk_conf={"on_io_error": 9})
req("RESOURCE_OPTS", ctx={"res_name": "r0"}, res_opts={"node_id": 3})
req("RESIZE", minor=0, resize_parms={"resize_size": 1 << 39})
req("CONNECT", ctx={"res_name": "r0", "peer_node_id": 1})
req("DEL_RESOURCE", ctx={"res_name": "r0"})
'''))
    assert r["PRIMARY"]["errno"] == 2 and "nosuch" in r["PRIMARY"]["text"]
    assert r["DETACH"]["errno"] == 19 and "minor 77" in r["DETACH"]["text"]
    assert r["minor_range"]["errno"] == 34 and "minor" in r["minor_range"]["text"]
    assert r["NEW_MINOR"]["ok"]  # minor 2: the valid one
    assert r["al_extents"]["errno"] == 34 and "al-extents" in r["al_extents"]["text"]
    assert r["NEW_RESOURCE"]["errno"] == 22 and "invalid resource name" in r["NEW_RESOURCE"]["text"]
    assert r["NEW_PEER"]["errno"] == 22
    assert not r["ATTACH"]["ok"]
    assert r["DISK_OPTS"]["errno"] == 34 and "on-io-error" in r["DISK_OPTS"]["text"]
    assert r["RESOURCE_OPTS"]["errno"] == 22 and "cannot be changed" in r["RESOURCE_OPTS"]["text"]
    assert r["RESIZE"]["errno"] == 28
    assert not r["CONNECT"]["ok"]  # no such peer (or no replication in this build)
    assert r["DEL_RESOURCE"]["errno"] == 16
    st = pyrun(g, 'print(json.dumps(device(0)["device_info"]))')[0]
    assert st["disk_state"] == 5

    # without CAP_NET_ADMIN every mutating command is refused; reads still work
    code = PRELUDE + 'req("PRIMARY", ctx={"res_name": "r0"}, role_parms={"force": 1})\n' \
        'print(json.dumps({"cmd": "dump", "ok": True, "n": len(nl.dump("GET_DEVICES"))}))\n'
    out = g.check("setpriv --inh-caps=-all --bounding-set=-all "
                  "python - <<'EOF'\n" + code + "\nEOF", timeout=600).stdout
    rr = results([json.loads(x) for x in out.splitlines() if x.startswith("{")])
    assert rr["PRIMARY"]["errno"] == 1
    assert rr["dump"]["n"] == 2


def test_rmmod_works_after_down_and_tears_down_leftovers(node: Guest, bsr_ko) -> None:
    g = node
    disk = create_md(g)
    assert all(x["ok"] for x in up(g, disk).values())
    r = results(pyrun(g, 'req("DOWN", ctx={"res_name": "r0"})'))
    assert r["DOWN"]["ok"]
    g.rmmod("bsr")
    assert not g.module_loaded("bsr")
    g.insmod(bsr_ko)
    assert all(x["ok"] for x in up(g, disk).values())
    g.check("rmmod bsr")  # resources still up: module exit tears them down
    assert not g.module_loaded("bsr")
    assert not g.run("ls /dev/bsr0").ok


def _io_error_setup(g: Guest, policy: str) -> str:
    """r0 on a dm-linear device over the disk, Primary, on-io-error ``policy``."""
    disk = pick_disks(g, [DISK_MB])[0].device
    g.run("dmsetup remove bsrlow 2>/dev/null; true")
    sectors = int(g.check(f"blockdev --getsz {disk}").stdout)
    g.check(f"dmsetup create bsrlow --table '0 {sectors} linear {disk} 0'")
    low = "/dev/mapper/bsrlow"
    g.check(f"bsrmeta --force --node-id=0 0 v1 {low} internal "
            f"create-md --max-peers=1", timeout=600)
    r = results(pyrun(g, f'''
req("NEW_RESOURCE", ctx={{"res_name": "r0"}}, res_opts={{"node_id": 0}})
req("NEW_MINOR", ctx={{"res_name": "r0"}}, new_minor_parms={{"minor": 0}})
req("ATTACH", minor=0, disk_conf={{"backing_dev": "{low}", "meta_dev": "{low}",
                                   "on_io_error": {1 if policy == "detach" else 0}}})
req("PRIMARY", ctx={{"res_name": "r0"}}, role_parms={{"force": 1}})
'''))
    assert all(x["ok"] for x in r.values()), r
    g.check("dd if=/dev/urandom of=/dev/bsr0 bs=4k count=16 oflag=direct status=none")
    # from now on every I/O to the lower device fails
    g.check(f"dmsetup suspend bsrlow && dmsetup load bsrlow --table '0 {sectors} error' "
            "&& dmsetup resume bsrlow")
    return low


@pytest.mark.parametrize("policy", ["passthrough", "detach"])
def test_io_errors_follow_on_io_error_policy(node: Guest, policy: str) -> None:
    g = node
    _io_error_setup(g, policy)
    r = g.run("dd if=/dev/zero of=/dev/bsr0 bs=4k count=1 oflag=direct")
    assert r.rc != 0 and "Input/output error" in r.stderr
    g.check("sleep 2")
    st = pyrun(g, 'print(json.dumps({"cmd": "st", "ok": True, **device(0)["device_info"], '
                  '**device(0)["device_stats"]}))')[0]
    assert st["io_errors"] >= 1
    if policy == "detach":
        assert st["disk_state"] == 0  # Failed -> Diskless
        r = g.run("dd if=/dev/bsr0 of=/dev/null bs=4k count=1 iflag=direct")
        assert r.rc != 0 and "Input/output error" in r.stderr
    else:
        assert st["disk_state"] == 9  # the error went up, the disk stays
    g.run("dmsetup remove bsrlow 2>/dev/null; true")
