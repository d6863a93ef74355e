"""Property tests: no stream content crashes the store, the view or the rows."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsrwatch.store import Store
from bsrwatch.view import build_overview
from bsrwatch.widgets.resource_list import build_rows

KEYS = ["role", "disk", "connection", "replication", "peer-disk", "out-of-sync", "done",
        "eta", "dbdt1", "size", "written", "read", "sent", "received", "ap-in-flight",
        "congested", "client", "peer-client", "resync-suspended", "sndbuf-fill", "sndbuf-size",
        "suspended", "zz-unknown"]
VALUES = st.one_of(
    st.sampled_from(["0", "-1", "nan", "inf", "1e999", "18446744073709551616" * 3, "",
                     "UpToDate", "Inconsistent", "SyncTarget", "VerifyS", "Ahead", "Primary",
                     "Connected", "StandAlone", "Diskless", "yes", "no", "user,peer"]),
    st.integers(min_value=-2**70, max_value=2**70).map(str),
    st.text(alphabet=st.characters(blacklist_characters=" \n\r\t"), max_size=8))
OBJECTS = {
    "resource": "name:r{r}",
    "device": "name:r{r} volume:{v} minor:{v}",
    "connection": "name:r{r} peer-node-id:{p} conn-name:n{p}",
    "peer-device": "name:r{r} peer-node-id:{p} conn-name:n{p} volume:{v}",
    "split-brain": "name:r{r} peer-node-id:{p}",
}


@st.composite
def event_lines(draw):
    obj = draw(st.sampled_from(sorted(OBJECTS)))
    ident = OBJECTS[obj].format(r=draw(st.integers(0, 2)), v=draw(st.integers(0, 1)),
                                p=draw(st.integers(1, 2)))
    kv = draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
    verb = draw(st.sampled_from(["exists", "create", "change", "change", "destroy"]))
    ts = draw(st.sampled_from(["", "2026-11-21T06:00:00.000000+00:00 ",
                               "2026-11-21T06:00:01.500000+00:00 ", "2026-11-21T05:59:59.000000+00:00 "]))
    return f"{ts}{verb} {obj} {ident} " + " ".join(f"{k}:{v}" for k, v in kv.items())


LINES = st.lists(st.one_of(event_lines(), st.binary(max_size=40), st.just("exists -"),
                           st.just("- skipped 3")), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES, st.integers(20, 200), st.booleans())
def test_any_stream_renders(lines, width, ascii_only):
    store = Store(clock=lambda: 1000.0)
    for line in lines:
        store.feed_line(line)
    store.feed_line("exists -")
    ov = build_overview(store)
    for r in ov.resources:
        for p in r.peers:
            for v in p.volumes:
                if v.progress is not None and v.progress.percent is not None:
                    assert 0.0 <= v.progress.percent <= 100.0
                if v.progress is not None and v.progress.eta_s is not None:
                    assert v.progress.eta_s >= 0
    rows = build_rows(ov, width, ascii_only)
    if ascii_only:  # glyphs (severity marks, bars) stay ASCII whatever the stream holds
        assert all(t.isascii() for r in rows for t, cls in r.runs
                   if cls.startswith("rl--bar") or t == r.runs[0][0])
