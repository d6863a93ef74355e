"""bsrwatch against the real module in one guest: the overview follows the
module's netlink events and its keys run bsradm (two-node replication is
another issue, so this is one node with a local-only resource)."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from harness import Disk, Guest

pytestmark = pytest.mark.vm

HOST = "solo"
BSRADM = f"env BSR_HOSTNAME={HOST} bsradm -c /tmp/bsr.conf"
DRIVER = Path(__file__).with_name("bsrwatch_driver.py")
BSR_NODE_DISKS_MB = [64]
BSR_NODE_CLEANUP = f"{BSRADM} down r0"


def _config(disk: str) -> str:
    return (f"resource r0 {{\n    on {HOST} {{\n        node-id 0;\n"
            f"        address ipv4 198.18.0.1:7789;\n"
            f"        volume 0 {{\n            device /dev/bsr0 minor 0;\n"
            f"            disk {disk};\n            meta-disk internal;\n        }}\n"
            f"    }}\n}}\n")


def test_p_and_s_in_bsrwatch_promote_and_demote_through_bsradm(bsr_node: Guest,
                                                               bsr_disks: list[Disk]) -> None:
    node = bsr_node
    disk = bsr_disks[0].device
    node.check(f"printf %s {shlex.quote(_config(disk))} > /tmp/bsr.conf")
    node.check(f"{BSRADM} create-md --force r0", timeout=900)
    node.check(f"{BSRADM} up r0", timeout=900)
    node.check(f"{BSRADM} primary --force r0", timeout=600)  # makes the data UpToDate
    node.check(f"{BSRADM} secondary r0", timeout=600)

    def watch(step: str) -> dict:
        r = node.check(f"python {DRIVER} r0 {shlex.quote(BSRADM)} {step}", timeout=1800)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def module_role() -> str:
        status = node.check("bsrsetup status r0", timeout=600).stdout
        m = re.search(r"^r0 role:(\w+)", status, re.M)
        assert m, status
        return m.group(1)

    seen = watch("p:Primary")
    assert re.match(r"\S+ r0 +Secondary +UpToDate", seen["initial"]), seen
    (promote,) = seen["steps"]
    assert promote["argv"] == [*shlex.split(BSRADM), "primary", "r0"]
    assert promote["result"]["rc"] == 0, promote
    assert re.match(r"\S+ r0 +Primary +UpToDate", promote["line"]), promote
    assert "r0 role:Secondary→Primary" in promote["log"], promote
    assert seen["status"] == "live: bsr netlink events"
    assert module_role() == "Primary"

    seen = watch("s:Secondary")
    (demote,) = seen["steps"]
    assert demote["argv"] == [*shlex.split(BSRADM), "secondary", "r0"]
    assert demote["result"]["rc"] == 0, demote
    assert module_role() == "Secondary"
