"""Kernel messages -> events2 events (bsr.kevents)."""

import struct

import pytest

from bsr import abi
from bsr.events2 import format_event, parse_line
from bsr.kevents import Converter, SyncHistory
from bsr.model import Kind, State, Verb
from bsr.netlink import Message

from test_setup_fakes import (CHANGE, CREATE, DESTROY, FakeClock, connection, device,
                              initial_done, path, peer_device, resource)


def line(msg, **kw):
    conv = Converter(statistics=kw.pop("statistics", False), clock=kw.pop("clock", FakeClock()))
    evs = conv.convert(msg, **kw)
    assert len(evs) == 1
    return format_event(evs[0])


def test_resource_state_keys_in_drbd_order():
    assert line(resource(role=abi.Role.Primary)) == \
        "exists resource name:r0 role:Primary suspended:no"


def test_resource_suspended_reasons_and_write_ordering_statistic():
    text = line(resource(susp=1, susp_nod=1, ntype=CHANGE), statistics=True)
    assert text == "change resource name:r0 role:Secondary suspended:user,no-data " \
        "write-ordering:flush"


def test_device_identity_state_and_statistics_in_kib():
    msg = device(minor=7, volume=1, read_sectors=4096, write_sectors=2048, al_writes=3,
                 bm_writes=2, upper_pending=1, lower_pending=4, blocked=1,
                 read_ios=8, io_errors=0, out_of_sync=64)
    text = line(msg, statistics=True)
    assert text.startswith(
        "exists device name:r0 volume:1 minor:7 disk:UpToDate client:no backing_dev:/dev/vdb "
        "open:no size:1048576 read:2048 written:1024 al-writes:3 bm-writes:2 upper-pending:1 "
        "lower-pending:4 al-suspended:no blocked:upper ")
    # extension keys only after the standard ones
    assert text.endswith("read-ios:8 io-errors:0 oos:32")


def test_device_without_statistics_has_state_keys_only():
    assert line(device(disk=abi.DiskState.Diskless, backing="")) == \
        "exists device name:r0 volume:0 minor:0 disk:Diskless client:no backing_dev:none open:no"


def test_latency_histogram_is_a_comma_list():
    hist = struct.pack(f"={abi.LAT_BUCKETS}Q", *range(abi.LAT_BUCKETS))
    text = line(device(local_lat_hist=hist), statistics=True)
    assert "local-lat-hist:" + ",".join(map(str, range(abi.LAT_BUCKETS))) in text


def test_connection_keys():
    text = line(connection(ntype=CREATE, cstate=abi.ConnState.Connecting,
                           peer_role=abi.Role.Unknown, ap_in_flight=8, sent_bytes=100),
                statistics=True)
    assert text == ("create connection name:r0 peer-node-id:1 conn-name:node-b "
                    "connection:Connecting role:Unknown congested:no ap-in-flight:8 "
                    "rs-in-flight:0 sent-bytes:100")


def test_peer_device_keys_and_resync_suspended():
    text = line(peer_device(resync_susp=int(abi.SuspReason.user | abi.SuspReason.peer),
                            out_of_sync=2048, received_sectors=10), statistics=True)
    assert text == ("exists peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0 "
                    "replication:Established peer-disk:UpToDate peer-client:no "
                    "resync-suspended:user,peer received:5 sent:0 out-of-sync:1024 "
                    "pending:0 unacked:0 rs-total:0 rs-done:0")


def test_path_keys():
    assert line(path(established=0)) == (
        "exists path name:r0 peer-node-id:1 conn-name:node-b local:ipv4:198.18.0.1:7789 "
        "peer:ipv4:198.18.0.2:7789 established:no")


def test_ipv6_path():
    text = line(path(local="ipv6:[fd00::1]:7789", remote="ipv6:[fd00::2]:7790"))
    assert "local:ipv6:[fd00::1]:7789 peer:ipv6:[fd00::2]:7790" in text


def test_destroy_carries_identity_only():
    assert line(device(ntype=DESTROY), statistics=True) == \
        "destroy device name:r0 volume:0 minor:0"


def test_initial_done_is_exists_dash():
    evs = Converter().convert(initial_done())
    assert [format_event(e) for e in evs] == ["exists -"]
    assert evs[0].is_initial_done


def test_continues_flag_is_not_part_of_the_verb():
    msg = resource()
    msg.structs["notify"]["type"] = int(abi.NotifyType.exists) | abi.NOTIFY_CONTINUES
    assert line(msg).startswith("exists resource")


def test_verb_override_for_polls():
    assert line(resource(ntype=CREATE), verb=Verb.change).startswith("change resource")


def test_sequence_gap_is_reported_as_skipped():
    conv = Converter()
    conv.baseline(10)
    assert len(conv.convert(resource(ntype=CHANGE, seq=11), live=True)) == 1
    evs = conv.convert(resource(ntype=CHANGE, seq=15), live=True)
    assert [format_event(e) for e in evs][0] == "- skipped 3"
    assert evs[1].kind is Kind.resource


def test_events_the_dump_already_covered_are_dropped():
    conv = Converter()
    conv.baseline(20)
    assert conv.convert(resource(ntype=CHANGE, seq=19), live=True) == []
    assert conv.convert(resource(ntype=CHANGE, seq=20), live=True) == []
    assert len(conv.convert(resource(ntype=CHANGE, seq=21), live=True)) == 1


def test_sequence_wraps_around_without_a_gap():
    conv = Converter()
    conv.baseline(0xFFFFFFFF)
    evs = conv.convert(resource(ntype=CHANGE, seq=0), live=True)
    assert len(evs) == 1 and not evs[0].skipped


def test_dump_replies_are_not_sequence_checked():
    conv = Converter()
    conv.baseline(50)
    assert len(conv.convert(resource(seq=3))) == 1


def test_message_without_resource_name_is_ignored():
    assert Converter().convert(Message("EV_RESOURCE", structs={"notify": {"type": 1}})) == []


def test_unknown_notify_type_is_ignored():
    msg = resource()
    msg.structs["notify"]["type"] = 77
    assert Converter().convert(msg) == []


# ---------------------------------------------------------------- progress

def syncing(total, done, **kw):
    return peer_device(ntype=CHANGE, repl=abi.ReplState.SyncSource,
                       peer_disk=abi.DiskState.Inconsistent, rs_total=total, rs_done=done, **kw)


def fields(conv, msg):
    (ev,) = conv.convert(msg)
    return ev.fields


def test_done_eta_dbdt1_from_two_samples():
    clock = FakeClock()
    conv = Converter(statistics=True, clock=clock)
    total = 2 * 1024 * 1024 * 2  # 2 GiB in sectors
    f = fields(conv, syncing(total, 0))
    assert f["done"] == "0.00" and f["dbdt1"] == "0.00" and "eta" not in f
    clock.advance(2.0)
    f = fields(conv, syncing(total, 2 * 100 * 2048))  # 200 MiB in 2 s
    assert f["done"] == "9.77"
    assert f["dbdt1"] == "100.00"
    # 1848 MiB left at 100 MiB/s
    assert f["eta"] == "18"
    keys = list(f)
    assert keys.index("unacked") < keys.index("done") < keys.index("eta") < keys.index("dbdt1")


def test_zero_total_does_not_divide_by_zero():
    clock = FakeClock()
    conv = Converter(statistics=True, clock=clock)
    f = fields(conv, syncing(0, 0))
    assert f["done"] == "0.00" and f["dbdt1"] == "0.00"
    f = fields(conv, syncing(0, 0))  # same instant: no time passed
    assert f["dbdt1"] == "0.00" and "eta" not in f


def test_progress_only_while_syncing_and_history_resets():
    clock = FakeClock()
    conv = Converter(statistics=True, clock=clock)
    fields(conv, syncing(1000, 100))
    clock.advance(1)
    f = fields(conv, peer_device(ntype=CHANGE, rs_total=1000, rs_done=1000))
    assert "done" not in f and "dbdt1" not in f
    clock.advance(1)
    f = fields(conv, syncing(1000, 500))  # a new resync: no rate from the old one
    assert f["dbdt1"] == "0.00"


def test_rate_uses_only_recent_samples():
    h = SyncHistory()
    h.add(0.0, 100000, 0)
    h.add(100.0, 100000, 2048)  # slow start, long ago
    p = h.add(105.0, 100000, 2048 + 5 * 2048 * 10)  # then 10 MiB/s for 5 s
    assert round(p.dbdt1, 2) == 10.0


def test_verify_shows_progress_too():
    conv = Converter(statistics=True, clock=FakeClock())
    f = fields(conv, peer_device(ntype=CHANGE, repl=abi.ReplState.VerifyS, rs_total=200,
                                 rs_done=50))
    assert f["done"] == "25.00"


def test_events_merge_into_the_shared_model():
    conv = Converter(statistics=True, clock=FakeClock())
    st = State()
    for m in (resource(), device(write_sectors=8, read_ios=3), connection(), peer_device(), path()):
        for ev in conv.convert(m):
            st.apply(parse_line(format_event(ev)))
    assert st.devices[("r0", "0")].written_kib == 4
    assert st.connections[("r0", "1")].conn_name == "node-b"
    assert st.devices[("r0", "0")].extra["read-ios"] == "3"


@pytest.mark.parametrize("cmd", ["EV_HELPER", "GET_VERSION"])
def test_other_commands_are_not_events(cmd):
    assert Converter().convert(Message(cmd, structs={"ctx": {"res_name": "r0"}})) == []


from hypothesis import given, strategies as st  # noqa: E402

_STRUCTS = ["ctx", "notify", "res_info", "res_stats", "device_info", "device_stats",
            "conn_info", "conn_stats", "peer_device_info", "peer_device_stats", "path_info"]
_VALUES = st.one_of(st.integers(min_value=0, max_value=(1 << 64) - 1), st.text(max_size=8),
                    st.binary(max_size=40))


@given(st.sampled_from(["EV_RESOURCE", "EV_DEVICE", "EV_CONNECTION", "EV_PEER_DEVICE",
                        "EV_PATH", "EV_INITIAL_DONE"]),
       st.dictionaries(st.sampled_from(_STRUCTS),
                       st.dictionaries(st.sampled_from(
                           ["res_name", "volume", "peer_node_id", "conn_name", "my_addr",
                            "peer_addr", "type", "seq", "role", "susp", "disk_state",
                            "capacity", "repl_state", "rs_total", "rs_done", "established",
                            "local_lat_hist", "resync_susp"]), _VALUES, max_size=6),
                       max_size=6),
       st.booleans())
def test_malformed_messages_never_raise(cmd, structs, statistics):
    conv = Converter(statistics=statistics, clock=FakeClock())
    evs = conv.convert(Message(cmd, structs=structs), live=True)
    for ev in evs:
        format_event(ev)


def test_wrongly_typed_message_is_counted_and_ignored():
    conv = Converter()
    assert conv.convert(Message("EV_RESOURCE", structs={"ctx": {"res_name": "r0"},
                                                        "notify": {"type": ""}})) == []
    assert conv.malformed == 1
    assert len(conv.convert(resource())) == 1 and conv.malformed == 1


def helper_msg(ntype: int, **info) -> Message:
    return Message("EV_HELPER", structs={
        "ctx": {"res_name": "r0", "peer_node_id": 1, "conn_name": "node-b", "volume": 0},
        "notify": {"type": ntype, "seq": 0}, "helper_info": info})


def test_split_brain_helper_call_prints_like_drbd9():
    assert line(helper_msg(abi.NotifyType.call, helper_name="split-brain")) == \
        "call helper name:r0 peer-node-id:1 conn-name:node-b volume:0 helper:split-brain"


def test_helper_response_carries_the_exit_status_and_parses_back():
    text = line(helper_msg(abi.NotifyType.response, helper_name="split-brain",
                           helper_status=3))
    assert text.endswith("helper:split-brain status:3")
    ev = parse_line(text)
    assert ev.verb is Verb.response and ev.kind is Kind.helper
    assert ev.fields["helper"] == "split-brain"


def test_helper_message_without_a_name_is_no_event():
    conv = Converter(clock=FakeClock())
    assert conv.convert(helper_msg(abi.NotifyType.call)) == []
