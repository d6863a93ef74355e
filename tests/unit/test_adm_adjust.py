"""adjust: from a recorded 'bsrsetup show --json' to the commands that differ."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bsr.adm.adjust import ShowFormatError, adjust
from bsr.adm.local import localize
from bsr.config import load, loads

DATA = Path(__file__).parent / "data" / "configs"
TREE = DATA / "tree" / "bsr.conf"
SHOW = json.loads((DATA / "show" / "r0_alpha_up.json").read_text())


def _r0(text: str | None = None):
    if text is None:
        return localize(load(str(TREE)).resources["r0"], "alpha")
    return localize(loads(text, "r0.res").resources["r0"], "alpha")


R0 = (DATA / "tree" / "bsr.d" / "r0.res").read_text()
COMMON = (DATA / "tree" / "bsr.d" / "global_common.conf").read_text()


def test_running_state_equal_to_config_needs_nothing() -> None:
    assert adjust(_r0(), SHOW) == []


def test_resource_not_running_is_brought_up() -> None:
    cmds = adjust(_r0(), [])
    assert [c[1] for c in cmds] == ["new-resource", "new-minor", "attach", "new-peer",
                                    "new-path", "peer-device-options", "connect"]


def test_changed_resync_rate_only_sets_that_peer_device_option() -> None:
    text = COMMON.replace("resync-rate 40M", "resync-rate 80M") + R0
    assert adjust(_r0(text), SHOW) == [
        ["bsrsetup", "peer-device-options", "r0", "1", "0", "--resync-rate=81920"]]


def test_added_volume_gets_minor_attach_and_peer_device_options() -> None:
    text = COMMON + R0.replace("    on alpha {", """    volume 1 {
        device /dev/bsr1 minor 1;
        disk /dev/vdc;
        meta-disk internal;
    }
    on alpha {""")
    assert adjust(_r0(text), SHOW) == [
        ["bsrsetup", "new-minor", "r0", "1", "1"],
        ["bsrsetup", "attach", "1", "/dev/vdc", "/dev/vdc", "internal"],
        ["bsrsetup", "peer-device-options", "r0", "1", "1", "--resync-rate=40960",
         "--c-plan-ahead=0", "--c-min-rate=40960"],
    ]


def test_removed_volume_is_detached_and_deleted() -> None:
    show = copy.deepcopy(SHOW)
    show[0]["volumes"].append({"volume": 5, "minor": 7, "disk": {"backing-dev": "/dev/x",
                                                               "meta-dev": "/dev/x",
                                                               "meta-dev-idx": -1}})
    assert adjust(_r0(), show) == [["bsrsetup", "detach", "7"], ["bsrsetup", "del-minor", "7"]]


def test_changed_disk_and_net_and_resource_options() -> None:
    text = COMMON + R0.replace("persist-role yes;", "persist-role no;").replace(
        "sndbuf-size 1G;", "sndbuf-size 1G;\n        protocol A;").replace(
        "        meta-disk internal;\n", "        meta-disk internal;\n"
        "        disk { al-extents 3001; disk-flushes no; }\n")
    text = text.replace("net {\n        protocol C;\n    }", "")
    assert adjust(_r0(text), SHOW) == [
        ["bsrsetup", "resource-options", "r0", "--persist-role=no"],
        ["bsrsetup", "disk-options", "0", "--al-extents=3001", "--disk-flushes=no"],
        ["bsrsetup", "net-options", "r0", "1", "--protocol=A"],
    ]


def test_option_removed_from_config_goes_back_to_its_default() -> None:
    text = COMMON + R0.replace("        on-congestion pull-ahead;\n", "")
    assert adjust(_r0(text), SHOW) == [
        ["bsrsetup", "net-options", "r0", "1", "--on-congestion=block"]]


def test_peer_not_in_config_is_deleted_and_new_peer_added() -> None:
    show = copy.deepcopy(SHOW)
    show[0]["connections"][0]["peer-node-id"] = 2
    cmds = adjust(_r0(), show)
    assert cmds[0] == ["bsrsetup", "del-peer", "r0", "2"]
    assert [c[1] for c in cmds[1:]] == ["new-peer", "new-path", "peer-device-options", "connect"]


def test_changed_address_replaces_the_path() -> None:
    text = COMMON + R0.replace("198.18.0.2:7789", "198.18.0.3:7789")
    assert adjust(_r0(text), SHOW) == [
        ["bsrsetup", "del-path", "r0", "1", "ipv4:198.18.0.1:7789", "ipv4:198.18.0.2:7789"],
        ["bsrsetup", "new-path", "r0", "1", "ipv4:198.18.0.1:7789", "ipv4:198.18.0.3:7789"],
    ]


def test_changed_backing_disk_detaches_and_attaches_again() -> None:
    text = COMMON + R0.replace("disk /dev/vdb;", "disk /dev/vdz;")
    assert adjust(_r0(text), SHOW) == [
        ["bsrsetup", "detach", "0"],
        ["bsrsetup", "attach", "0", "/dev/vdz", "/dev/vdz", "internal"],
    ]


@pytest.mark.parametrize("bad", [{"resource": "r0"}, [{"resource": "r0", "volumes": [{}]}],
                                 [{"resource": "r0", "options": {"max-io-depth": "lots"}}]])
def test_unreadable_show_output_is_reported(bad) -> None:
    with pytest.raises(ShowFormatError):
        adjust(_r0(), bad)
