"""Option values with units (bsr.units)."""

import pytest

from bsr import abi
from bsr.units import format_value, parse_value

F = abi.Field
SECTORS = F("x", "u64", min=0, max=1 << 40, unit="sectors")
BYTES = F("x", "u32", min=0, max=1 << 30, unit="bytes")
RATE = abi.PEER_DEVICE_CONF.field("resync_rate")
DS = abi.NET_CONF.field("timeout")
SECS = abi.NET_CONF.field("connect_int")
COUNT = abi.DISK_CONF.field("al_extents")


@pytest.mark.parametrize("text,want", [
    ("100", 100), ("100s", 100), ("100S", 100), ("1k", 2), ("1K", 2), ("1M", 2048),
    ("1m", 2048), ("2G", 4 << 20), ("1T", 1 << 31), ("0", 0),
])
def test_sectors(text, want):
    assert parse_value(SECTORS, text) == want


def test_bytes_suffixes():
    assert parse_value(BYTES, "4096") == 4096
    assert parse_value(BYTES, "4k") == 4096
    assert parse_value(BYTES, "1M") == 1 << 20
    assert parse_value(BYTES, "8s") == 4096


def test_rate_default_unit_is_kib_per_second():
    assert parse_value(RATE, "4096") == 4096
    assert parse_value(RATE, "40M") == 40 * 1024
    assert parse_value(RATE, "250k") == 250
    assert parse_value(RATE, "1G") == 1 << 20


@pytest.mark.parametrize("field,text", [(DS, "60"), (SECS, "10"), (COUNT, "6001")])
def test_plain_units(field, text):
    assert parse_value(field, text) == int(text)


@pytest.mark.parametrize("field,text", [(DS, "6s"), (COUNT, "1k"), (RATE, "1T"), (SECTORS, "1x")])
def test_suffix_not_allowed(field, text):
    with pytest.raises(ValueError, match="suffix"):
        parse_value(field, text)


def test_range_edges_and_message():
    assert parse_value(COUNT, "67") == 67
    assert parse_value(COUNT, "65534") == 65534
    with pytest.raises(ValueError, match=r"^70000 is out of range 67\.\.65534$"):
        parse_value(COUNT, "70000")
    with pytest.raises(ValueError, match="out of range"):
        parse_value(COUNT, "66")


def test_range_applies_after_the_suffix():
    with pytest.raises(ValueError, match=r"5G \(5242880 KiB/s\) is out of range"):
        parse_value(RATE, "5G")


def test_signed_field_accepts_minus_one():
    assert parse_value(abi.DISK_CONF.field("resync_after"), "-1") == -1
    with pytest.raises(ValueError):
        parse_value(abi.DISK_CONF.field("resync_after"), "-2")


@pytest.mark.parametrize("text", ["", "abc", "1.5", "0x10", "1 k", "--1"])
def test_garbage_numbers(text):
    with pytest.raises(ValueError, match="is not a number"):
        parse_value(COUNT, text)


def test_enums_by_keyword_with_dashes():
    f = abi.NET_CONF.field("on_congestion")
    assert parse_value(f, "pull-ahead") == abi.OnCongestion.pull_ahead
    assert parse_value(f, "Pull-Ahead") == abi.OnCongestion.pull_ahead
    assert parse_value(abi.NET_CONF.field("wire_protocol"), "C") == abi.WireProtocol.C
    assert parse_value(abi.NET_CONF.field("after_sb_0p"), "discard-zero-changes") == 3
    with pytest.raises(ValueError, match="not one of block, pull-ahead, disconnect"):
        parse_value(f, "pull")


@pytest.mark.parametrize("text,want", [("yes", 1), ("no", 0), ("on", 1), ("off", 0),
                                       ("true", 1), ("false", 0), ("1", 1), ("0", 0)])
def test_flags(text, want):
    assert parse_value(abi.DISK_CONF.field("al_updates"), text) == want


def test_bad_flag():
    with pytest.raises(ValueError, match="not yes or no"):
        parse_value(abi.DISK_CONF.field("al_updates"), "maybe")


def test_strings_and_length_limit():
    f = abi.NET_CONF.field("verify_alg")
    assert parse_value(f, "crc32c") == "crc32c"
    assert parse_value(f, "x" * 63) == "x" * 63
    with pytest.raises(ValueError, match="longer than 63 bytes"):
        parse_value(f, "x" * 64)


def test_named_integer_values():
    f = abi.RES_OPTS.field("on_no_data_accessible")
    assert parse_value(f, "suspend-io") == 1
    assert parse_value(f, "0") == 0
    assert format_value(f, 1) == "suspend-io"


@pytest.mark.parametrize("field,value,text", [
    (RATE, 40 * 1024, "40M"), (RATE, 250, "250k"), (SECTORS, 2048, "1M"), (SECTORS, 3, "3"),
    (BYTES, 4096, "4k"), (DS, 60, "60"), (abi.DISK_CONF.field("al_updates"), 1, "yes"),
    (abi.NET_CONF.field("on_congestion"), 1, "pull-ahead"),
    (abi.NET_CONF.field("wire_protocol"), 3, "C"), (abi.NET_CONF.field("verify_alg"), "md5", "md5"),
])
def test_format_reads_back(field, value, text):
    assert format_value(field, value) == text
    assert parse_value(field, text) == value


def test_every_config_default_formats_and_parses_back():
    for s in (abi.RES_OPTS, abi.DISK_CONF, abi.NET_CONF, abi.PEER_DEVICE_CONF):
        for f in s.fields:
            if f.default is None or f.type == "bin":
                continue
            v = f.default if isinstance(f.default, str) else int(f.default)
            assert parse_value(f, format_value(f, v)) == v, f.name


from hypothesis import given, strategies as st  # noqa: E402

_ALL_FIELDS = [f for s in (abi.RES_OPTS, abi.DISK_CONF, abi.NET_CONF, abi.PEER_DEVICE_CONF)
               for f in s.fields if f.type != "bin"]


@given(st.sampled_from(_ALL_FIELDS), st.text(max_size=30))
def test_any_text_parses_or_raises_valueerror_with_a_message(field, text):
    try:
        v = parse_value(field, text)
    except ValueError as e:
        assert str(e)
    else:
        assert parse_value(field, format_value(field, v)) == v
