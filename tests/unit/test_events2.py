"""events2 text <-> Event, and merging into the typed state."""

from bsr.events2 import format_event, format_json, iter_events, parse_line
from bsr.model import ConnState, DiskState, Kind, ReplState, Role, State, Verb, counter_delta

DUMP = """\
exists resource name:r0 role:Secondary suspended:no write-ordering:flush
exists connection name:r0 peer-node-id:1 conn-name:node-b connection:Connecting role:Unknown
exists device name:r0 volume:0 minor:0 disk:UpToDate client:no quorum:yes size:1048576 read:0 written:0
exists peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0 replication:Off peer-disk:DUnknown peer-client:no resync-suspended:no
exists path name:r0 peer-node-id:1 conn-name:node-b local:ipv4:198.18.0.1:7789 peer:ipv4:198.18.0.2:7789 established:no
exists -
"""


def test_initial_dump_builds_typed_objects_and_marks_done():
    st = State()
    for ev in iter_events(DUMP.splitlines()):
        st.apply(ev)
    assert st.initial_done
    assert st.resources[("r0",)].role is Role.Secondary
    dev = st.devices[("r0", "0")]
    assert dev.disk is DiskState.UpToDate and dev.size_kib == 1048576 and dev.minor == 0
    assert st.connections[("r0", "1")].connection is ConnState.Connecting
    assert st.peer_devices[("r0", "1", "0")].replication is ReplState.Off
    path = st.paths[("r0", "1", "ipv4:198.18.0.1:7789", "ipv4:198.18.0.2:7789")]
    assert path.established is False


def test_partial_change_keeps_other_fields():
    st = State()
    for ev in iter_events(DUMP.splitlines()):
        st.apply(ev)
    st.apply(parse_line("change device name:r0 volume:0 minor:0 written:4096"))
    dev = st.devices[("r0", "0")]
    assert dev.written_kib == 4096 and dev.disk is DiskState.UpToDate


def test_unknown_keys_and_bad_values_are_kept_raw_not_raised():
    st = State()
    st.apply(parse_line("exists device name:r0 volume:0 minor:0 disk:Weird size:-5 newkey:1"))
    dev = st.devices[("r0", "0")]
    assert dev.disk is None and dev.extra["disk"] == "Weird"
    assert dev.size_kib is None and dev.extra["size"] == "-5"
    assert dev.extra["newkey"] == "1"


def test_destroy_resource_drops_its_children():
    st = State()
    for ev in iter_events(DUMP.splitlines()):
        st.apply(ev)
    st.apply(parse_line("destroy resource name:r0"))
    assert not st.resources and not st.devices and not st.connections and not st.paths


def test_timestamps_and_skipped_lines_parse():
    ev = parse_line("2026-11-21T06:30:00.123456+00:00 change resource name:r0 role:Primary")
    assert ev.timestamp is not None and ev.timestamp.microsecond == 123456
    assert ev.verb is Verb.change and ev.fields["role"] == "Primary"
    sk = parse_line("- skipped 7")
    assert sk.skipped == 7
    st = State()
    st.apply(sk)
    assert st.skipped == 7


def test_format_round_trips_text_and_json():
    for line in DUMP.splitlines():
        ev = parse_line(line)
        assert format_event(ev) == line
        assert format_event(parse_line(format_json(ev))) == line
    ev = parse_line("2026-11-21T06:30:00.123456+00:00 change resource name:r0 role:Primary")
    assert format_event(ev, timestamps=True) == "2026-11-21T06:30:00.123456+00:00 change resource name:r0 role:Primary"


def test_garbage_lines_are_not_events():
    for junk in ["", "hello", "change", "change device novalue", "\x00\x01\x02",
                 "{not json", '{"event": 5}', "x" * 100000, b"\xff\xfe change device"]:
        assert parse_line(junk) is None


def test_counter_going_down_is_a_reset():
    assert counter_delta(100, 150) == 50
    assert counter_delta(150, 20) == 20
    assert counter_delta(None, 5) is None
