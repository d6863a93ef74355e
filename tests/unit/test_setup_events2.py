"""The bsrsetup events2 loop against an in-memory netlink."""

import io
import json

from bsr import abi
from bsr.setup.events import Events2, Events2Options
from bsr.netlink import BsrError

from test_setup_fakes import (CHANGE, CREATE, DESTROY, FakeClock, FakeNetlink, connection,
                              device, initial_state, peer_device, resource)


def run(nl, clock=None, poll_input=None, **opts):
    out = io.StringIO()
    e = Events2(nl, Events2Options(**opts), out, poll_input, clock=clock or FakeClock())
    assert e.run() == 0
    return out.getvalue().splitlines()


def test_subscribes_before_the_initial_dump():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    run(nl, now=True)
    assert nl.calls[0] == ("subscribe",)
    assert nl.calls[1][:2] == ("dump", "GET_INITIAL_STATE")


def test_initial_dump_order_and_end_marker():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    lines = run(nl, now=True)
    assert [ln.split()[1] for ln in lines] == [
        "resource", "device", "connection", "peer-device", "path", "-"]
    assert lines[-1] == "exists -"
    assert all(ln.startswith("exists ") for ln in lines)


def test_now_does_not_read_notifications():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]},
                     batches=[[resource(ntype=CHANGE, seq=11)]])
    run(nl, now=True)
    assert not any(c[0] == "events" for c in nl.calls)


def test_end_marker_added_when_the_kernel_sends_none():
    nl = FakeNetlink({"GET_INITIAL_STATE": [[resource()]]})
    assert run(nl, now=True) == ["exists resource name:r0 role:Secondary suspended:no",
                                 "exists -"]


def test_empty_kernel_prints_only_the_end_marker():
    assert run(FakeNetlink(), now=True) == ["exists -"]


def test_stream_prints_create_change_destroy_after_the_dump():
    batches = [[device(ntype=CREATE, seq=11, volume=1, minor=1),
                resource(ntype=CHANGE, seq=12, role=abi.Role.Primary),
                device(ntype=DESTROY, seq=13, volume=1, minor=1)]]
    lines = run(FakeNetlink({"GET_INITIAL_STATE": [initial_state(seq=10)]}, batches))
    tail = lines[lines.index("exists -") + 1:]
    assert tail == [
        "create device name:r0 volume:1 minor:1 disk:UpToDate client:no "
        "backing_dev:/dev/vdb open:no",
        "change resource name:r0 role:Primary suspended:no",
        "destroy device name:r0 volume:1 minor:1",
    ]


def test_notifications_the_dump_covered_are_dropped_and_gaps_reported():
    batches = [[resource(ntype=CHANGE, seq=9), resource(ntype=CHANGE, seq=10),
                resource(ntype=CHANGE, seq=13, role=abi.Role.Primary)]]
    lines = run(FakeNetlink({"GET_INITIAL_STATE": [initial_state(seq=10)]}, batches))
    tail = lines[lines.index("exists -") + 1:]
    assert tail == ["- skipped 2", "change resource name:r0 role:Primary suspended:no"]


def test_statistics_keys_only_with_statistics():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    plain = run(nl, now=True)
    assert "size:" not in plain[1]
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    stats = run(nl, now=True, statistics=True)
    assert "size:1048576" in stats[1] and "write-ordering:flush" in stats[0]


def test_resource_filter():
    dump = initial_state() + [resource("r1"), device("r1", minor=5)]
    dump.append(dump.pop(5))  # keep the end marker last
    nl = FakeNetlink({"GET_INITIAL_STATE": [dump]},
                     batches=[[resource("r1", ntype=CHANGE, seq=11),
                               resource("r0", ntype=CHANGE, seq=12)]])
    lines = run(nl, resource="r0")
    assert not any("name:r1" in ln for ln in lines)
    assert lines[-1].startswith("change resource name:r0")
    assert nl.calls[1][2] == {"ctx": {"res_name": "r0"}}


def test_interval_prints_only_changed_keys():
    clock = FakeClock()
    first = initial_state()
    later = initial_state()
    later[1] = device(write_sectors=4096, seq=10)  # only "written" changed
    nl = FakeNetlink({"GET_INITIAL_STATE": [first, later, later]},
                     batches=[[], [], [], [], [], []], clock=clock)
    lines = run(nl, clock=clock, statistics=True, interval=1.0)
    tail = lines[lines.index("exists -") + 1:]
    assert tail == ["change device name:r0 volume:0 minor:0 written:2048"]


def test_poll_on_n_from_stdin_and_exit_at_end_of_input():
    class Input:
        def __init__(self):
            self.feed = [["n"], ["x"], None]

        def commands(self):
            return self.feed.pop(0)

    later = initial_state()
    later[2] = connection(cstate=abi.ConnState.Connecting, seq=10)
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state(), later]},
                     batches=[[], [], [], []])
    lines = run(nl, poll_input=Input(), poll=True)
    tail = lines[lines.index("exists -") + 1:]
    assert tail == ["change connection name:r0 peer-node-id:1 conn-name:node-b "
                    "connection:Connecting"]
    assert sum(1 for c in nl.calls if c[:2] == ("dump", "GET_INITIAL_STATE")) == 2


def test_overrun_prints_skipped_and_rereads_state():
    class Overrun(FakeNetlink):
        def events(self, timeout=None):
            if not getattr(self, "raised", False):
                self.raised = True
                raise BsrError(105, "event queue overrun")
            return super().events(timeout)

    later = initial_state()
    later[0] = resource(role=abi.Role.Primary)
    later[1] = device(volume=1, minor=1)  # volume 0 went away, volume 1 appeared
    nl = Overrun({"GET_INITIAL_STATE": [initial_state(), later]}, batches=[])
    lines = run(nl)
    tail = lines[lines.index("exists -") + 1:]
    assert tail == ["- skipped 1", "change resource name:r0 role:Primary",
                    "create device name:r0 volume:1 minor:1 disk:UpToDate client:no "
                    "backing_dev:/dev/vdb open:no",
                    "destroy device name:r0 volume:0 minor:0"]


def test_sync_progress_in_the_stream():
    clock = FakeClock()
    total = 1 << 21  # 1 GiB in sectors
    batches = [[peer_device(ntype=CHANGE, seq=11, repl=abi.ReplState.SyncSource,
                            rs_total=total, rs_done=0)],
               [peer_device(ntype=CHANGE, seq=12, repl=abi.ReplState.SyncSource,
                            rs_total=total, rs_done=total // 4)]]
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]}, batches, clock=clock)
    # the fake clock advances by the events() timeout; force a 4 s step
    lines = run(nl, clock=clock, statistics=True, interval=4.0)
    assert "done:0.00" in lines[-2]
    assert "done:25.00" in lines[-1]


def test_json_output_one_object_per_line():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    lines = run(nl, now=True, json=True, timestamps=True)
    objs = [json.loads(ln) for ln in lines]
    assert objs[0]["event"] == "exists" and objs[0]["object"] == "resource"
    assert objs[0]["fields"]["role"] == "Secondary" and "timestamp" in objs[0]
    assert objs[-1]["object"] == "-"


def test_timestamps_prefix():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    lines = run(nl, now=True, timestamps=True)
    stamp, rest = lines[0].split(" ", 1)
    assert stamp[4] == "-" and stamp[10] == "T" and "." in stamp
    assert rest.startswith("exists resource")


def test_closed_output_ends_events2_quietly():
    from bsr.setup.cli import main

    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]}, batches=[[]] * 3)
    err = io.StringIO()
    assert main(["events2"], netlink=lambda: nl, stdout=Closed(), stderr=err) == 0
    assert err.getvalue() == ""


def test_interrupt_ends_events2_with_status_0():
    from bsr.setup.cli import main
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]}, batches=[])  # ^C at once
    out = io.StringIO()
    assert main(["events2"], netlink=lambda: nl, stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue().splitlines()[-1] == "exists -"
