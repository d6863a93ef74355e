"""bsr.conf parsing: the shipped examples, inheritance, units, canonical dump."""
from __future__ import annotations

from pathlib import Path

import pytest

from bsr import abi
from bsr.config import dump, load, loads
from bsr.config.schema import DISK_OPTIONS, NET_OPTIONS
from bsr.units import format_number, parse_number

DATA = Path(__file__).parent / "data" / "configs"
GOOD = sorted((DATA / "good").glob("*.conf")) + [DATA / "tree" / "bsr.conf"]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", GOOD + [REPO / "etc" / "bsr.conf"], ids=lambda p: p.name)
def test_example_configs_parse_and_dump_is_stable(path: Path) -> None:
    cfg = load(str(path))
    assert cfg.resources or path.parent.name == "etc"
    text = dump(cfg)
    again = dump(loads(text, "dumped.conf"))
    assert again == text


def test_include_tree_reads_global_common_and_all_res_files() -> None:
    cfg = load(str(DATA / "tree" / "bsr.conf"))
    assert list(cfg.resources) == ["r0", "r1"]
    assert cfg.global_opts == {"usage-count": "no"}
    r0 = cfg.resources["r0"]
    # common's disk section is inherited, resource's net is its own plus common's
    assert r0.section("disk")["resync-rate"] == 40 * 1024
    assert r0.section("net")["protocol"] == "C"
    assert r0.section("net")["on-congestion"] == "pull-ahead"


def test_units_are_converted_to_the_abi_base_unit() -> None:
    r0 = load(str(DATA / "tree" / "bsr.conf")).resources["r0"]
    net = r0.section("net")
    assert NET_OPTIONS["congestion-fill"].unit == "sectors"
    assert net["congestion-fill"] == (1 << 30) // 512
    assert net["sndbuf-size"] == 1 << 30
    assert abi.PEER_DEVICE_CONF.field("c_min_rate").unit == "KiB/s"
    assert r0.section("disk")["c-min-rate"] == 40960


def test_resource_level_volume_reaches_every_host_and_host_overrides_win() -> None:
    r1 = load(str(DATA / "tree" / "bsr.conf")).resources["r1"]
    alpha, beta = r1.hosts["alpha"], r1.hosts["beta"]
    assert alpha.volumes[0].minor == 10 and alpha.volumes[0].meta_disk == "/dev/vdd"
    assert alpha.volumes[0].meta_index is None
    assert alpha.volumes[1].meta_index == 1 and alpha.volumes[1].device == "/dev/bsr11"
    assert alpha.volumes[1].disk_opts == {"resync-rate": 100 * 1024}
    assert beta.volumes[1].diskless

    sync = load(str(DATA / "good" / "seeds_examples.conf")).resources["sync"]
    vol = sync.hosts["hostname"].volumes[0]
    assert (vol.device, vol.minor, vol.disk, vol.meta_disk) == \
        ("/dev/bsr1", 1, "/dev/sdb1", "internal")


def test_connection_paths_use_host_addresses_and_port_override() -> None:
    r1 = load(str(DATA / "tree" / "bsr.conf")).resources["r1"]
    (conn,) = r1.connections
    path = conn.paths[0].addresses
    assert path["alpha"].spec() == "ipv4:198.18.0.1:7790"
    assert path["beta"].spec() == "ipv4:198.18.0.2:7791"
    assert conn.net["after-sb-0pri"] == "discard-zero-changes"


def test_two_hosts_without_connection_get_an_implicit_one_and_mesh_expands() -> None:
    r0 = load(str(DATA / "tree" / "bsr.conf")).resources["r0"]
    assert [c.hosts for c in r0.connections] == [("alpha", "beta")]
    three = load(str(DATA / "good" / "seeds_examples.conf")).resources["three"]
    assert [c.hosts for c in three.connections] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert three.connections[0].paths[0].addresses["a"].spec() == "ipv6:[fd00::1]:7789"


def test_defaults_and_ranges_come_from_the_abi() -> None:
    f = abi.DISK_CONF.field("al_extents")
    opt = DISK_OPTIONS["al-extents"]
    assert (opt.default, opt.min, opt.max) == (f.default, f.min, f.max)
    assert DISK_OPTIONS["on-io-error"].choices == ("passthrough", "detach")


@pytest.mark.parametrize("text,unit,value", [
    ("4096", "KiB/s", 4096), ("250k", "KiB/s", 250), ("40M", "KiB/s", 40960),
    ("1G", "KiB/s", 1 << 20), ("2G", "sectors", 4194304), ("100", "sectors", 100),
    ("8s", "sectors", 8), ("20M", "bytes", 20 << 20), ("1s", "bytes", 512),
])
def test_unit_suffixes(text: str, unit: str, value: int) -> None:
    assert parse_number(text, unit) == value
    assert parse_number(format_number(value, unit), unit) == value


def test_host_is_found_by_short_name() -> None:
    r0 = load(str(DATA / "tree" / "bsr.conf")).resources["r0"]
    assert r0.host_for("alpha.example.com").name == "alpha"
    assert r0.host_for("gamma") is None
