"""bsrsetup against the real module: the single-node acceptance sequence.

create-md -> new-resource/new-minor/attach -> primary --force -> mkfs/mount ->
files with known checksums -> umount -> secondary -> detach -> attach ->
primary -> mount -> checksums match, with two ``events2 --statistics
--timestamps`` listeners running through all of it.
"""
from __future__ import annotations

import json
import re

import pytest

from bsr.events2 import parse_line
from bsr.model import Kind, State, Verb
from harness import Guest
from harness.plugin import pick_disks

pytestmark = pytest.mark.vm

LISTEN = ("setsid bsrsetup events2 --statistics --timestamps > {out} 2>&1 < /dev/null & "
          "echo $! > {out}.pid; cat {out}.pid")
# generous: guests run under TCG on a shared, busy host
T = 300
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d ")


@pytest.fixture(scope="module")
def disk(solo: Guest) -> str:
    """The module's disk of the session's single-node guest (96 MiB)."""
    return pick_disks(solo, [96])[0].device


@pytest.fixture
def node(solo: Guest, bsr_ko) -> Guest:
    g = solo
    if not g.alive:
        g.boot()
    g.run("umount /tmp/bsrmnt 2>/dev/null; test -e /dev/bsr0 && bsrsetup down r0", timeout=T)
    g.rmmod("bsr")
    g.insmod(bsr_ko)
    yield g
    if g.alive:
        g.run("kill $(cat /tmp/ev*.pid) 2>/dev/null; rm -f /tmp/ev*.pid; "
              "umount /tmp/bsrmnt 2>/dev/null; test -e /dev/bsr0 && bsrsetup down r0",
              timeout=T)
        g.rmmod("bsr")


def _dump_md(g: Guest, disk: str) -> dict[str, str]:
    out = g.check(f"bsrmeta 0 v1 {disk} internal dump-md", timeout=T).stdout
    fields = {}
    for line in out.splitlines():
        k, _, v = line.strip().rstrip(";").partition(" ")
        fields.setdefault(k, v)
    return fields


def _events(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        assert TS.match(ln), f"no timestamp: {ln!r}"
    return [TS.sub("", ln) for ln in lines]


def _wait_both(g: Guest, pattern: str) -> None:
    """Until both listeners (/tmp/ev1, /tmp/ev2) have printed a line ending
    in ``pattern`` (an extended regex, after the timestamp)."""
    g.check(f"until grep -Eq ' {pattern}' /tmp/ev1 && grep -Eq ' {pattern}' /tmp/ev2; "
            "do sleep 0.1; done", timeout=T)


def test_acceptance_sequence_through_the_clis(node: Guest, disk: str) -> None:
    g = node
    pids = [g.check(LISTEN.format(out=f"/tmp/ev{i}"), timeout=T).stdout.strip() for i in (1, 2)]
    _wait_both(g, "exists -$")  # both subscribed: their initial state is out

    g.check(f"bsrmeta --force 0 v1 {disk} internal create-md --max-peers=1 "
            "--peer-node-ids=1", timeout=T)
    g.check(f"bsrsetup new-resource r0 0 && bsrsetup new-minor r0 0 0 && "
            f"bsrsetup attach 0 {disk} {disk} internal", timeout=T)
    assert g.check("bsrsetup dstate 0", timeout=T).stdout.split("/")[0].strip() == "Inconsistent"

    r = g.run("bsrsetup primary r0", timeout=T)
    assert r.rc == 1 and r.stderr.startswith("r0: "), (r.rc, r.stderr)
    g.check("bsrsetup primary --force r0", timeout=T)
    assert g.check("bsrsetup role r0", timeout=T).stdout.strip() == "Primary"
    status = g.check("bsrsetup status r0", timeout=T).stdout
    assert status.splitlines()[:2] == ["r0 role:Primary", "  disk:UpToDate"], status

    g.check("mkfs.ext4 -q -F /dev/bsr0 && mkdir -p /tmp/bsrmnt && mount /dev/bsr0 /tmp/bsrmnt",
            timeout=T)
    g.check("for i in 1 2 3; do head -c 3M /dev/urandom > /tmp/bsrmnt/f$i; done; sync",
            timeout=T)
    sums = g.check("cd /tmp/bsrmnt && sha256sum f1 f2 f3", timeout=T).stdout
    g.check("umount /tmp/bsrmnt && bsrsetup secondary r0", timeout=T)

    r = g.run("mount /dev/bsr0 /tmp/bsrmnt", timeout=T)
    assert r.rc != 0, "a Secondary must not be mountable"
    assert r.stderr.strip(), "mount of a Secondary must say why"

    g.check("bsrsetup detach 0", timeout=T)
    assert g.check("bsrsetup dstate 0", timeout=T).stdout.strip() == "Diskless"
    md = _dump_md(g, disk)
    assert md.get("current-uuid", "0x0") not in ("0x0", "0x0000000000000000"), md

    g.check(f"bsrsetup attach 0 {disk} {disk} internal && bsrsetup primary r0", timeout=T)
    g.check("mount /dev/bsr0 /tmp/bsrmnt", timeout=T)
    assert g.check("cd /tmp/bsrmnt && sha256sum f1 f2 f3", timeout=T).stdout == sums

    shown = json.loads(g.check("bsrsetup show r0 --json", timeout=T).stdout)
    assert shown[0]["resource"] == "r0" and shown[0]["node-id"] == 0
    assert shown[0]["volumes"][0]["disk"]["backing-dev"] == disk
    assert shown[0]["volumes"][0]["disk"]["meta-dev"] == "internal"
    now = g.check("bsrsetup events2 --now --statistics r0", timeout=T).stdout.splitlines()
    assert now[-1] == "exists -" and now[0].startswith("exists resource name:r0 role:Primary")

    g.check("umount /tmp/bsrmnt && bsrsetup secondary r0 && bsrsetup down r0", timeout=T)
    _wait_both(g, "destroy resource name:r0$")  # the last event of down
    g.check("kill " + " ".join(pids))
    ev1 = _events(g.check("cat /tmp/ev1").stdout)
    ev2 = _events(g.check("cat /tmp/ev2").stdout)

    assert ev1[0] == "exists -", ev1[:3]
    # both listeners saw the same events with the same counters
    assert ev1 == ev2
    st = State()
    seen = []
    for line in ev1:
        ev = parse_line(line)
        assert ev is not None, line
        st.apply(ev)
        seen.append((ev.verb, ev.kind))
    for want in [(Verb.create, Kind.resource), (Verb.create, Kind.device),
                 (Verb.change, Kind.device), (Verb.change, Kind.resource),
                 (Verb.destroy, Kind.device), (Verb.destroy, Kind.resource)]:
        assert want in seen, f"{want} missing from\n" + "\n".join(ev1)
    assert not any("skipped" in ln for ln in ev1)
    roles = [ln for ln in ev1 if ln.startswith("change resource") and "role:Primary" in ln]
    assert roles, "\n".join(ev1)
    written = [int(m.group(1)) for ln in ev1 for m in [re.search(r" written:(\d+)", ln)] if m]
    assert written and max(written) >= 9 * 1024, written  # the three 3 MiB files at least
    assert not st.resources, "everything was destroyed"


def test_kernel_errors_and_usage_errors_exit_codes(node: Guest, bsr_ko) -> None:
    g = node
    r = g.run("bsrsetup primary nope", timeout=T)
    assert (r.rc, r.stderr.strip()) == (1, "nope: Failure: (-2) no such resource")
    r = g.run("bsrsetup status nope", timeout=T)
    assert r.rc == 10 and "nope: No such resource" in r.stderr
    r = g.run("bsrsetup attach 0 /dev/vdb /dev/vdb internal --al-extents=70000", timeout=T)
    assert r.rc == 20 and "--al-extents: 70000 is out of range 67..65534" in r.stderr
    out = g.check("bsrsetup --version", timeout=T).stdout
    assert re.search(r"bsr module: \S+ \(ABI 1", out), out
    g.rmmod("bsr")
    r = g.run("bsrsetup status", timeout=T)
    assert r.rc == 20 and "generic netlink family" in r.stderr, (r.rc, r.stderr)
    g.insmod(bsr_ko)


def test_interval_prints_only_changed_counters(node: Guest, disk: str) -> None:
    g = node
    g.check(f"bsrmeta --force 0 v1 {disk} internal create-md --max-peers=1 "
            f"--peer-node-ids=1 && bsrsetup new-resource r0 0 && bsrsetup new-minor r0 0 0 && "
            f"bsrsetup attach 0 {disk} {disk} internal && bsrsetup primary --force r0",
            timeout=T)
    g.check("setsid bsrsetup events2 --statistics --interval=1 r0 > /tmp/iv 2>&1 < /dev/null & "
            "echo $! > /tmp/ev_iv.pid; "
            "for i in $(seq 3000); do grep -q '^exists -$' /tmp/iv && break; sleep 0.1; done; "
            # write through a descriptor held open: no open/close notification
            # carries the counters, only the 1 s polls can show them
            "exec 3<>/dev/bsr0; sleep 2; "
            "dd if=/dev/urandom bs=1M count=4 oflag=direct status=none >&3; "
            # until a 1 s poll has shown the write, then one more poll
            "for i in $(seq 300); do grep -Eq ' written:4096( |$)' /tmp/iv && break; sleep 0.2; "
            "done; sleep 1; "
            "exec 3>&-; sleep 1; kill $(cat /tmp/ev_iv.pid)", timeout=T)
    lines = g.check("cat /tmp/iv", timeout=T).stdout.splitlines()
    tail = lines[lines.index("exists -") + 1:]
    dev = [ln for ln in tail if ln.startswith("change device name:r0 volume:0 minor:0 ")]
    # poll lines carry the identity and what changed, not the unchanged state
    polled = [ln for ln in dev if " disk:" not in ln]
    assert polled, "\n".join(lines)
    assert not any(" size:" in ln or " open:" in ln for ln in polled), "\n".join(polled)
    assert any(re.search(r" written:4096\b", ln) for ln in polled), "\n".join(dev)

    st = json.loads(g.check("bsrsetup status --json r0", timeout=T).stdout)
    assert st[0]["role"] == "Primary" and st[0]["devices"][0]["written"] >= 4096
    text = g.check("bsrsetup status --statistics r0", timeout=T).stdout
    assert re.search(r"^      size:\d+ read:\d+ written:\d+ ", text, re.M), text
