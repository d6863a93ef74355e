"""Exposition text is accepted by prometheus_client's parser; HTTP endpoint."""
from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bsr.events2 import iter_events
from bsr.model import State

from bsrmon import prometheus

REC = Path(__file__).parent / "data" / "bsrmon" / "r0_write.events2"


def state() -> State:
    st = State()
    for ev in iter_events(REC.read_text().splitlines()):
        st.apply(ev)
    return st


def families() -> dict:
    text = prometheus.render(state(), {"bsrmon_samples_dropped_total": 0})
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_exposition_parses_and_uses_base_units() -> None:
    fam = families()
    (w,) = fam["bsr_device_written_bytes"].samples  # parser strips _total of counters
    assert w.name == "bsr_device_written_bytes_total"
    assert w.value == 5 * 4096 * 1024
    assert w.labels == {"name": "r0", "volume": "0", "minor": "0"}
    assert fam["bsr_device_written_bytes"].type == "counter"
    (s,) = fam["bsr_connection_sent_bytes"].samples
    assert s.value == 5 * (4096 * 1024 + 1000)
    assert s.labels == {"name": "r0", "peer_node_id": "1", "conn_name": "bravo"}
    lat = fam["bsr_device_local_latency_seconds"].samples[0]
    assert abs(lat.value - 5 * 1024 * 100e-6) < 1e-9


def test_enums_are_one_series_per_state() -> None:
    fam = families()
    states = {s.labels["state"]: s.value for s in fam["bsr_connection_state"].samples}
    assert states["Connected"] == 1 and sum(states.values()) == 1 and len(states) == 10
    roles = {s.labels["role"]: s.value for s in fam["bsr_resource_role"].samples}
    assert roles == {"Unknown": 0, "Primary": 1, "Secondary": 0}
    repl = {s.labels["state"]: s.value for s in fam["bsr_peerdevice_replication_state"].samples}
    assert repl["Established"] == 1


def test_label_values_are_escaped() -> None:
    st = state()
    st.resources[("r0",)].name = 'we"ird\\name'
    text = prometheus.render(st)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["bsr_resource_role"].samples[0].labels["name"] == 'we"ird\\name'


async def test_http_endpoint_serves_metrics_and_404() -> None:
    srv = await prometheus.serve("127.0.0.1", 0, lambda: prometheus.render(state()))
    port = srv.sockets[0].getsockname()[1]

    async def get(path: str) -> bytes:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = await r.read()
        w.close()
        return data

    try:
        ok = await get("/metrics")
        head, _, body = ok.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK")
        assert b"text/plain; version=0.0.4" in head
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"bsr_device_written_bytes", "bsr_peerdevice_sent_bytes", "bsrmon_up"} <= names
        assert (await get("/nope")).startswith(b"HTTP/1.0 404")
    finally:
        srv.close()
        await srv.wait_closed()
