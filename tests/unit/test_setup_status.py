"""bsrsetup status and show: text and JSON from fabricated kernel state."""

import io
import json

from bsr import abi
from bsr.netlink import Message, encode_addr
from bsr.setup import show, status
from bsr.setup.cli import main

from test_setup_fakes import (FakeNetlink, connection, device, initial_done, initial_state,
                              path, peer_device, resource)


def state(msgs):
    return status.load_state(FakeNetlink({"GET_INITIAL_STATE": [msgs]}), None)


def test_status_connected_uptodate():
    assert status.format_text(state(initial_state())) == (
        "r0 role:Secondary\n"
        "  disk:UpToDate\n"
        "  node-b role:Secondary\n"
        "    peer-disk:UpToDate\n"
        "\n")


def test_status_syncing_shows_replication_and_done():
    msgs = [resource(role=abi.Role.Primary), device(), connection(),
            peer_device(repl=abi.ReplState.SyncSource, peer_disk=abi.DiskState.Inconsistent,
                        rs_total=1000, rs_done=452), initial_done()]
    text = status.format_text(state(msgs))
    assert "r0 role:Primary\n" in text
    assert "    replication:SyncSource peer-disk:Inconsistent done:45.20\n" in text


def test_status_disconnected_peer_shows_connection_state_not_peer_devices():
    msgs = [resource(), device(), connection(cstate=abi.ConnState.Connecting,
                                             peer_role=abi.Role.Unknown),
            peer_device(repl=abi.ReplState.Off, peer_disk=abi.DiskState.DUnknown)]
    assert status.format_text(state(msgs)) == (
        "r0 role:Secondary\n  disk:UpToDate\n  node-b connection:Connecting\n\n")


def test_status_suspended_and_several_volumes():
    msgs = [resource(susp=1), device(volume=0, minor=0),
            device(volume=1, minor=1, disk=abi.DiskState.Inconsistent)]
    text = status.format_text(state(msgs))
    assert text.startswith("r0 role:Secondary suspended:user\n")
    assert "  volume:0 disk:UpToDate\n  volume:1 disk:Inconsistent\n" in text


def test_status_verbose_and_statistics():
    text = status.format_text(state(initial_state()), verbose=True, statistics=True)
    lines = text.splitlines()
    assert lines[0] == "r0 role:Secondary suspended:no"
    assert lines[1] == "    write-ordering:flush"
    assert lines[2] == ("  volume:0 minor:0 disk:UpToDate client:no backing_dev:/dev/vdb "
                        "open:no")
    assert lines[3].startswith("      size:1048576 read:0 written:0 al-writes:0")
    assert lines[4] == "  node-b node-id:1 connection:Connected role:Secondary congested:no"
    assert lines[5] == "      ap-in-flight:0 rs-in-flight:0"
    assert lines[6] == ("    volume:0 replication:Established peer-disk:UpToDate "
                        "peer-client:no resync-suspended:no")
    assert lines[7] == "        received:0 sent:0 out-of-sync:0 pending:0 unacked:0"


def test_status_color_marks_states():
    text = status.format_text(state(initial_state()), color=True)
    assert "\x1b[32mUpToDate\x1b[0m" in text


def test_status_json():
    msgs = initial_state()
    msgs[3] = peer_device(repl=abi.ReplState.SyncTarget, rs_total=100, rs_done=50,
                          out_of_sync=100)
    (res,) = status.to_json(state(msgs))
    assert res["name"] == "r0" and res["role"] == "Secondary"
    assert res["devices"][0]["disk-state"] == "UpToDate"
    assert res["devices"][0]["size"] == 1048576
    conn = res["connections"][0]
    assert conn["name"] == "node-b" and conn["connection-state"] == "Connected"
    pd = conn["peer_devices"][0]
    assert pd["replication-state"] == "SyncTarget" and pd["percent-in-sync"] == 50.0
    assert pd["out-of-sync"] == 50 and pd["rs-total"] == 50


def test_status_through_main_filters_resource():
    msgs = initial_state() + [resource("r1")]
    out = io.StringIO()
    rc = main(["status", "r1"], netlink=lambda: FakeNetlink({"GET_INITIAL_STATE": [msgs]}),
              stdout=out, stderr=io.StringIO())
    assert rc == 0 and out.getvalue() == "r1 role:Secondary\n\n"


# ------------------------------------------------------------------- show

def config_msgs():
    ctx = {"res_name": "r0"}
    pctx = {**ctx, "peer_node_id": 1, "conn_name": "node-b"}
    return [
        Message("GET_CONFIG", structs={"ctx": ctx, "res_opts": {
            "node_id": 0, "cpu_mask": "", "on_no_data_accessible": 0, "max_io_depth": 8000,
            "persist_role": 1, "target_only": 0}}),
        Message("GET_CONFIG", minor=0, structs={"ctx": {**ctx, "volume": 0}, "disk_conf": {
            "backing_dev": "/dev/vdb", "meta_dev": "/dev/vdb", "meta_dev_idx": -1,
            "disk_size": 0, "on_io_error": 1, "al_extents": 6001, "al_updates": 1,
            "disk_flushes": 1, "md_flushes": 1}}),
        Message("GET_CONFIG", minor=1, structs={"ctx": {**ctx, "volume": 1}, "disk_conf": {
            "backing_dev": "", "meta_dev": "", "meta_dev_idx": -1, "al_extents": 6001}}),
        Message("GET_CONFIG", structs={"ctx": pctx, "net_conf": {
            "shared_secret": "s3cret", "cram_hmac_alg": "sha256", "wire_protocol": 3,
            "timeout": 60, "on_congestion": 1, "sndbuf_size": 0, "tcp_cork": 1}}),
        Message("GET_PATHS", structs={"ctx": {**pctx, "my_addr": encode_addr(
            "ipv4:198.18.0.1:7789"), "peer_addr": encode_addr("ipv4:198.18.0.2:7789")},
            "path_info": {"established": 0}}),
        Message("GET_CONFIG", structs={"ctx": {**pctx, "volume": 0}, "peer_device_conf": {
            "resync_rate": 40960, "c_plan_ahead": 20, "bitmap": 1}}),
    ]


def test_show_json_contract():
    (r,) = show.to_json(show.collect(config_msgs()))
    assert r == {
        "resource": "r0", "node-id": 0,
        "options": {"cpu-mask": "", "on-no-data-accessible": 0, "max-io-depth": 8000,
                    "persist-role": True, "target-only": False},
        "volumes": [
            {"volume": 0, "minor": 0, "disk": {
                "backing-dev": "/dev/vdb", "meta-dev": "internal", "meta-dev-idx": -1,
                "size": 0, "on-io-error": "detach", "al-extents": 6001, "al-updates": True,
                "disk-flushes": True, "md-flushes": True}},
            {"volume": 1, "minor": 1, "disk": None}],
        "connections": [{
            "peer-node-id": 1, "name": "node-b",
            "net": {"cram-hmac-alg": "sha256", "protocol": "C", "timeout": 60,
                    "on-congestion": "pull-ahead", "sndbuf-size": 0, "tcp-cork": True},
            "paths": [{"local": "ipv4:198.18.0.1:7789", "peer": "ipv4:198.18.0.2:7789"}],
            "peer-devices": [{"volume": 0, "options": {"resync-rate": 40960,
                                                       "c-plan-ahead": 20, "bitmap": True}}],
        }],
    }


def test_show_json_never_contains_the_secret():
    text = show.format_json(show.collect(config_msgs()))
    assert "s3cret" not in text and "shared-secret" not in text
    json.loads(text)


def test_show_text_non_defaults_only():
    text = show.format_text(show.collect(config_msgs()))
    assert text.startswith("resource r0 {\n    options {\n        persist-role")
    assert "max-io-depth" not in text and "al-extents" not in text
    assert "on-io-error             detach;" in text
    assert 'disk "/dev/vdb";' in text and "meta-disk internal;" in text
    assert "disk none;" in text
    assert "_this_host ipv4 198.18.0.1:7789;" in text
    assert "on-congestion           pull-ahead;" in text
    assert "resync-rate             40M;" in text
    assert 'cram-hmac-alg           "sha256";' in text
    assert "s3cret" not in text


def test_show_text_with_defaults_marks_them():
    text = show.format_text(show.collect(config_msgs()), show_defaults=True)
    assert "al-extents              6001;  # default" in text
    assert "protocol                C;  # default" in text


def test_show_through_main():
    out = io.StringIO()
    nl = FakeNetlink({"GET_CONFIG": [config_msgs()[:4] + config_msgs()[5:]],
                      "GET_PATHS": [config_msgs()[4:5]]})
    assert main(["show", "r0", "--json"], netlink=lambda: nl, stdout=out,
                stderr=io.StringIO()) == 0
    (r,) = json.loads(out.getvalue())
    assert r["resource"] == "r0" and r["connections"][0]["paths"][0]["local"] == \
        "ipv4:198.18.0.1:7789"
    assert nl.calls[0][:2] == ("dump", "GET_CONFIG")


def test_status_ignores_paths():
    msgs = initial_state() + [path(local="ipv4:10.0.0.1:1", remote="ipv4:10.0.0.2:1")]
    assert "10.0.0.1" not in status.format_text(state(msgs))
