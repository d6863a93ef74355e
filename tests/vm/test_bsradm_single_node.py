"""bsradm against the real module in one guest: a resource whose only host is
this node (replication between two guests is another issue)."""
from __future__ import annotations

import re
import shlex

import pytest

from harness import Disk, Guest

pytestmark = pytest.mark.vm

HOST = "solo"
BSRADM = f"BSR_HOSTNAME={HOST} bsradm -c /tmp/bsr.conf"
BSR_NODE_DISKS_MB = [64, 64]
BSR_NODE_CLEANUP = f"{BSRADM} down r0"


def _config(d0: str, d1: str, changed: bool) -> str:
    disk = "    disk {\n        on-io-error detach;\n    }\n" if changed else ""
    vol1 = (f"        volume 1 {{\n            device minor 1;\n            disk {d1};\n"
            "            meta-disk internal;\n        }\n") if changed else ""
    return (f"resource r0 {{\n{disk}    on {HOST} {{\n        node-id 0;\n"
            f"        address ipv4 198.18.0.1:7789;\n"
            f"        volume 0 {{\n            device /dev/bsr0 minor 0;\n"
            f"            disk {d0};\n            meta-disk internal;\n        }}\n"
            f"{vol1}    }}\n}}\n")


def _write(g: Guest, text: str) -> None:
    g.check(f"printf %s {shlex.quote(text)} > /tmp/bsr.conf")


def _status(g: Guest) -> str:
    return g.check(f"{BSRADM} status r0", timeout=600).stdout


def test_up_primary_status_adjust_down_through_bsradm_only(bsr_node: Guest,
                                                          bsr_disks: list[Disk]) -> None:
    node = bsr_node
    d0, d1 = (d.device for d in bsr_disks)
    _write(node, _config(d0, d1, changed=False))

    dry = node.check(f"{BSRADM} -d up r0", timeout=600).stdout.splitlines()
    assert dry == ["bsrsetup new-resource r0 0", "bsrsetup new-minor r0 0 0",
                   f"bsrsetup attach 0 {d0} {d0} internal"]

    node.check(f"{BSRADM} create-md --force r0", timeout=900)
    node.check(f"{BSRADM} up r0", timeout=900)
    assert node.run("test -b /dev/bsr0").rc == 0
    out = _status(node)
    assert re.search(r"^r0 role:Secondary", out, re.M), out
    assert re.search(r"disk:Inconsistent", out), out

    node.check(f"{BSRADM} primary --force r0", timeout=600)
    out = _status(node)
    assert re.search(r"^r0 role:Primary", out, re.M), out
    assert re.search(r"disk:UpToDate", out), out
    assert node.check(f"{BSRADM} role r0", timeout=600).stdout.strip() == "Primary"

    # nothing changed: adjust has nothing to do
    assert node.check(f"{BSRADM} -d adjust r0", timeout=600).stdout == ""

    # a changed disk option and a new volume: only those are applied
    _write(node, _config(d0, d1, changed=True))
    node.check(f"{BSRADM} create-md --force r0/1", timeout=900)
    plan = node.check(f"{BSRADM} -d adjust r0", timeout=600).stdout.splitlines()
    assert plan == ["bsrsetup disk-options 0 --on-io-error=detach",
                    "bsrsetup new-minor r0 1 1",
                    f"bsrsetup attach 1 {d1} {d1} internal --on-io-error=detach"]
    node.check(f"{BSRADM} adjust r0", timeout=900)
    assert node.run("test -b /dev/bsr1").rc == 0
    assert re.search(r"^r0 role:Primary", _status(node), re.M)
    assert node.check(f"{BSRADM} -d adjust r0", timeout=600).stdout == ""

    node.check(f"{BSRADM} secondary r0", timeout=600)
    node.check(f"{BSRADM} down r0", timeout=600)
    assert node.run("test -e /dev/bsr0").rc != 0
    assert node.run(f"{BSRADM} role r0", timeout=600).rc == 1


def test_failed_up_stops_and_down_cleans_up(bsr_node: Guest) -> None:
    node = bsr_node
    _write(node, _config("/dev/does-not-exist", "/dev/null", changed=False))
    r = node.run(f"{BSRADM} up r0", timeout=600)
    assert r.rc == 1, r
    assert "'bsrsetup attach 0 /dev/does-not-exist" in r.stderr
    assert "'bsradm down r0' removes what was created" in r.stderr
    node.check(f"{BSRADM} down r0", timeout=600)
    assert node.run("test -e /dev/bsr0").rc != 0
