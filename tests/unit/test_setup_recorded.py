"""Recorded events2 streams: DRBD 9's and bsrsetup's for the same story.

``data/events2/drbd9-statistics.txt`` is a ``drbdsetup events2 --timestamps
--statistics`` stream (connect, resync, promote, demote, disconnect).
``data/events2/bsr-statistics.txt`` is what bsrsetup prints for that story
from kernel messages (golden file: regenerate with ``BSR_REGEN=1``).
"""

import io
import os
from pathlib import Path

from bsr import abi
from bsr.events2 import iter_events, parse_line
from bsr.model import ConnState, DiskState, ReplState, Role, State
from bsr.setup.events import Events2, Events2Options

from test_setup_fakes import (CHANGE, DESTROY, FakeClock, FakeNetlink, connection, device,
                              initial_done, path, peer_device, resource)

DATA = Path(__file__).parent / "data" / "events2"
TOTAL = 1048508 * 2  # sectors to sync


def story() -> tuple[list, list[list]]:
    s = iter(range(11, 100))
    sync = dict(repl=abi.ReplState.SyncSource, peer_disk=abi.DiskState.Inconsistent,
                rs_total=TOTAL)
    dump = [resource(seq=10), device(read_sectors=4432, capacity=TOTAL, seq=10),
            connection(cstate=abi.ConnState.Connecting, peer_role=abi.Role.Unknown, seq=10),
            peer_device(repl=abi.ReplState.Off, peer_disk=abi.DiskState.DUnknown, seq=10),
            path(established=0, seq=10), initial_done(10)]
    dev = dict(read_sectors=4432, capacity=TOTAL)
    batches = [
        [path(ntype=CHANGE, seq=next(s)),
         connection(ntype=CHANGE, seq=next(s)),
         peer_device(ntype=CHANGE, seq=next(s), peer_disk=abi.DiskState.Inconsistent),
         peer_device(ntype=CHANGE, seq=next(s), **sync, rs_done=0, out_of_sync=TOTAL)],
        [peer_device(ntype=CHANGE, seq=next(s), **sync, rs_done=221184, sent_sectors=221184,
                     out_of_sync=TOTAL - 221184)],
        [resource(ntype=CHANGE, seq=next(s), role=abi.Role.Primary),
         device(ntype=CHANGE, seq=next(s), write_sectors=8192, al_writes=3, bm_writes=1,
                **dev)],
        [peer_device(ntype=CHANGE, seq=next(s), **sync, rs_done=442368, sent_sectors=442368,
                     out_of_sync=TOTAL - 442368)],
        [peer_device(ntype=CHANGE, seq=next(s), sent_sectors=TOTAL),
         resource(ntype=CHANGE, seq=next(s)),
         peer_device(ntype=CHANGE, seq=next(s), repl=abi.ReplState.Off,
                     peer_disk=abi.DiskState.DUnknown, sent_sectors=TOTAL),
         connection(ntype=CHANGE, seq=next(s), cstate=abi.ConnState.StandAlone,
                    peer_role=abi.Role.Unknown),
         path(ntype=DESTROY, seq=next(s)), peer_device(ntype=DESTROY, seq=next(s)),
         connection(ntype=DESTROY, seq=next(s))],
    ]
    return dump, batches


def bsr_stream() -> str:
    dump, batches = story()
    clock = FakeClock()
    # one notification per second, all in one stream
    nl = FakeNetlink({"GET_INITIAL_STATE": [dump]}, [sum(batches, [])], clock=clock, step=1.0)
    out = io.StringIO()
    Events2(nl, Events2Options(statistics=True), out, clock=clock).run()
    return out.getvalue()


def test_bsr_stream_matches_the_golden_file():
    text = bsr_stream()
    golden = DATA / "bsr-statistics.txt"
    if os.environ.get("BSR_REGEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def fold(text: str) -> State:
    st = State()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        assert parse_line(ln) is not None, ln
    for ev in iter_events(lines):
        st.apply(ev)
    return st


def test_both_streams_parse_and_end_in_the_same_state():
    for name in ("drbd9-statistics.txt", "bsr-statistics.txt"):
        st = fold((DATA / name).read_text())
        assert st.initial_done and not st.skipped, name
        assert st.resources[("r0",)].role is Role.Secondary, name
        dev = st.devices[("r0", "0")]
        assert dev.disk is DiskState.UpToDate and dev.minor == 0, name
        assert dev.written_kib == 4096 or dev.written_kib == 8192, name
        assert not st.connections and not st.peer_devices and not st.paths, name


def test_both_streams_show_the_resync_progress():
    for name in ("drbd9-statistics.txt", "bsr-statistics.txt"):
        st = State()
        done = []
        for ev in iter_events((DATA / name).read_text().splitlines()):
            obj = st.apply(ev)
            if ev.fields.get("done") and obj is not None:
                done.append(obj.done_pct)
                assert obj.replication is ReplState.SyncSource
        assert done == sorted(done) and done[0] == 0.0 and done[-1] > 20, (name, done)


def test_connection_went_through_connected():
    for name in ("drbd9-statistics.txt", "bsr-statistics.txt"):
        states = [ConnState[ev.fields["connection"]]
                  for ev in iter_events((DATA / name).read_text().splitlines())
                  if "connection" in ev.fields]
        assert ConnState.Connected in states and states[-1] is ConnState.StandAlone, name
