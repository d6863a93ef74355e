"""bsrwatch store, severity and view model driven by recorded streams."""

from pathlib import Path

import pytest

from bsrwatch.severity import Severity
from bsrwatch.store import Store
from bsrwatch.view import build_overview, build_resource

DATA = Path(__file__).parent / "data" / "bsrwatch"


def feed(store: Store, *names: str) -> Store:
    for n in names:
        for line in (DATA / f"{n}.events2").read_text().splitlines():
            store.feed_line(line)
    return store


def test_nothing_is_shown_before_the_end_of_the_initial_dump():
    st = Store()
    lines = (DATA / "initial.events2").read_text().splitlines()
    for line in lines[:-1]:
        st.feed_line(line)
    assert not st.ready and build_overview(st).resources == []
    st.feed_line(lines[-1])
    assert [r.name for r in build_overview(st).resources] == ["logs", "db", "web"]


def test_problems_sort_first_and_propagate_to_the_resource():
    ov = build_overview(feed(Store(), "initial"))
    logs = ov.resources[0]
    assert logs.name == "logs" and logs.severity is Severity.alert
    assert "volume 0 disk Outdated" in logs.verdict.reasons
    assert ov.counts[Severity.alert] == 1 and ov.counts[Severity.normal] == 2


def test_problems_only_and_filter():
    st = feed(Store(), "initial")
    assert [r.name for r in build_overview(st, problems_only=True).resources] == ["logs"]
    assert [r.name for r in build_overview(st, pattern="d").resources] == ["db"]
    assert [r.name for r in build_overview(st, pattern="[wl]*").resources] == ["logs", "web"]


def test_sync_progress_speed_and_eta_from_out_of_sync_over_time():
    st = feed(Store(), "sync")
    rv = build_resource(st, "r0")
    pv = rv.peers[0].volumes[0]
    assert pv.replication == "SyncSource" and rv.severity is Severity.warning
    p = pv.progress
    assert p is not None and p.kind == "resync" and p.percent == pytest.approx(50.0)
    # 1048576 -> 524288 KiB between 06:40:01.11 (WFBitMapS) and 06:40:06
    assert p.speed_kib_s == pytest.approx(524288 / 4.89, rel=1e-6)
    assert p.eta_s == pytest.approx(524288 / p.speed_kib_s)
    dev = rv.volumes[0]
    assert dev.write_kib_s == pytest.approx(8192.0, rel=1e-3)
    feed(st, "sync_done")
    rv = build_resource(st, "r0")
    assert rv.severity is Severity.normal and rv.peers[0].volumes[0].progress is None


def test_source_given_done_eta_and_dbdt1_win_over_estimates():
    st = feed(Store(), "drbd9")
    r0 = build_resource(st, "r0")
    beta = r0.peers[0].volumes[0].progress
    assert (beta.percent, beta.eta_s, beta.speed_kib_s) == (46.17, 46.0, 47.5 * 1024)
    gamma = r0.peers[1].volumes[0].progress
    assert gamma.paused and gamma.speed_kib_s is None and gamma.eta_s is None
    # local Inconsistent while SyncTarget is a warning, not an alert
    assert r0.severity is Severity.warning
    r1 = build_resource(st, "r1")
    assert r1.role == "Primary" and r1.severity is Severity.normal  # Diskless client is fine


def test_disconnect_is_an_alert_and_is_logged():
    st = feed(Store(), "initial", "disconnect")
    web = build_resource(st, "web")
    assert web.severity is Severity.alert
    assert web.peers[0].connection == "Connecting" and web.peers[0].peer_role == "Unknown"
    texts = [e.text for e in st.events]
    assert "web:node-b connection:Connected→NetworkFailure role:Secondary→Unknown" in texts
    assert any(e.level == "warning" for e in st.events)


def test_split_brain_marks_resource_until_reconnected():
    st = feed(Store(), "initial", "splitbrain")
    web = build_resource(st, "web")
    assert web.severity is Severity.alert and web.peers[0].split_brain
    assert web.peers[0].connection == "StandAlone"
    assert any("split brain" in e.text and e.level == "alert" for e in st.events)
    st.feed_line("change connection name:web peer-node-id:1 conn-name:node-b connection:Connected role:Secondary")
    assert not build_resource(st, "web").peers[0].split_brain


def test_ahead_behind_and_congestion():
    st = feed(Store(), "initial", "ahead")
    peer = build_resource(st, "web").peers[0]
    assert peer.congested and peer.in_flight_kib == 20480
    assert (peer.sndbuf_fill, peer.sndbuf_size) == (9961472, 10485760)
    v = peer.volumes[0]
    assert v.replication == "Ahead" and v.verdict.severity is Severity.alert
    assert v.out_of_sync_kib == 20480


def test_oos_while_uptodate_is_a_warning():
    st = feed(Store(), "initial")
    st.feed_line("change peer-device name:web peer-node-id:1 conn-name:node-b volume:0 out-of-sync:4")
    assert build_resource(st, "web").severity is Severity.warning


def test_source_restart_rebuilds_state_from_the_new_dump():
    st = feed(Store(), "initial", "splitbrain")
    st.reset("source restarted: state cleared, rebuilding")
    lines = (DATA / "initial.events2").read_text().splitlines()
    dump = [l for l in lines if "name:logs" not in l]
    for line in dump[:-1]:
        st.feed_line(line)
    assert build_overview(st).total == 3  # old state stays visible until the dump is complete
    st.feed_line(dump[-1])
    ov = build_overview(st)
    assert [r.name for r in ov.resources] == ["db", "web"]  # logs is gone, split brain forgotten
    assert all(r.severity is Severity.normal for r in ov.resources)
    texts = [e.text for e in st.events]
    assert "source restarted: state cleared, rebuilding" in texts
    assert "state rebuilt: 2 resources (logs gone)" in texts
    st.feed_line("change resource name:web role:Secondary")
    assert st.events[-1].text == "web role:Primary→Secondary"


def test_counter_reset_does_not_give_negative_rates():
    st = Store()
    st.feed_line("2026-11-21T06:00:00.000000+00:00 change device name:r volume:0 minor:0 written:100000")
    st.feed_line("2026-11-21T06:00:01.000000+00:00 change device name:r volume:0 minor:0 written:50")
    assert build_resource(st, "r").volumes[0].write_kib_s == 50.0


@pytest.mark.parametrize("junk", [
    b"\x00\xff\xfe\x01binary", "change device name:r0 volume:0 minor:0 size:0 disk:Inconsistent",
    "change peer-device name:r0 peer-node-id:1 conn-name:x volume:0 replication:SyncTarget out-of-sync:0 done:nan",
    "change peer-device name:r0 peer-node-id:1 conn-name:x volume:0 out-of-sync:99999999999999999999999999 dbdt1:0",
    "change peer-device name:r0 peer-node-id:1 conn-name:x volume:0 replication:VerifyS eta:-1 done:1e400",
    "change connection name:r0 peer-node-id:", "change peer-device name:r0 peer-node-id:x volume:y",
    "exists device name:r0 volume:0 minor:0 size:0", "change resource name:r0 role:Primary extra:" + "9" * 5000,
    "2026-11-21T06:00:00.000000+00:00 change device name:r0 vol", "change split-brain peer-node-id:1",
    "destroy resource name:nope", "- skipped x", "rename connection name:r0",
])
def test_garbage_never_crashes(junk):
    st = feed(Store(), "sync")
    st.feed_line(junk)
    st.feed_line("change peer-device name:r0 peer-node-id:1 conn-name:x volume:0 replication:SyncTarget out-of-sync:0")
    ov = build_overview(st)
    for r in ov.resources:
        for p in r.peers:
            for v in p.volumes:
                if v.progress and v.progress.percent is not None:
                    assert 0.0 <= v.progress.percent <= 100.0


def test_verify_progress_is_a_warning_with_its_own_kind():
    st = feed(Store(), "initial")
    st.feed_line("2026-11-21T06:31:00.000000+00:00 change peer-device name:web peer-node-id:1 "
                 "conn-name:node-b volume:0 replication:VerifyS")
    st.feed_line("2026-11-21T06:31:02.000000+00:00 change peer-device name:web peer-node-id:1 "
                 "conn-name:node-b volume:0 done:12.50 eta:14")
    web = build_resource(st, "web")
    p = web.peers[0].volumes[0].progress
    assert p.kind == "verify" and p.percent == 12.5 and p.eta_s == 14.0 and p.speed_kib_s is None
    assert web.severity is Severity.warning and "node-b: volume 0 verify running" in web.verdict.reasons
