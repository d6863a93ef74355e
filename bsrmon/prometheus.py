"""Prometheus text exposition of the collector's state.

Names follow drbd-reactor's exporter with ``bsr_`` instead of ``drbd_``:
``bsr_resource_*``, ``bsr_device_*``, ``bsr_connection_*``,
``bsr_peerdevice_*``; base units (bytes, seconds); counters end in
``_total``; an enum state is one series per possible value (1 for the
current one).  Labels: ``name`` (resource), ``volume``, ``minor``,
``peer_node_id``, ``conn_name``.

The server is a tiny HTTP/1.0 responder on asyncio streams: ``GET
/metrics`` returns the text, anything else 404.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any, Callable

from bsr.abi import ConnState, DiskState, ReplState, Role
from bsr.model import State

from bsrmon.sampler import _counters_connection, _counters_device, _counters_peer_device

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(d: dict[str, Any]) -> str:
    if not d:
        return ""
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in d.items()) + "}"


@dataclass
class Exposition:
    """Collects samples grouped by metric family."""

    families: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)

    def add(self, name: str, mtype: str, help_: str, labels: dict[str, Any],
            value: float | int | None) -> None:
        if value is None:
            return
        fam = self.families.setdefault(name, (mtype, help_, []))
        if isinstance(value, bool):
            value = int(value)
        fam[2].append(f"{name}{_labels(labels)} {value}")

    def enum(self, name: str, help_: str, labels: dict[str, Any], cls: type[enum.Enum],
             cur: enum.Enum | None, label: str) -> None:
        if cur is None:
            return
        for member in cls:
            self.add(name, "gauge", help_, {**labels, label: member.name},
                     1 if member is cur else 0)

    def text(self) -> str:
        out: list[str] = []
        for name, (mtype, help_, lines) in self.families.items():
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {mtype}")
            out.extend(lines)
        return "\n".join(out) + "\n"


def render(state: State, extra: dict[str, float] | None = None) -> str:
    """The whole exposition for the current state."""
    x = Exposition()
    x.add("bsrmon_up", "gauge", "Always 1 while bsrmon serves metrics", {}, 1)
    for name, v in (extra or {}).items():
        x.add(name, "counter" if name.endswith("_total") else "gauge", name.replace("_", " "),
              {}, v)
    for r in state.resources.values():
        lab = {"name": r.name}
        x.enum("bsr_resource_role", "Role of the local node", lab, Role, r.role, "role")
        if r.suspended is not None:
            x.add("bsr_resource_suspended", "gauge", "Whether I/O is suspended", lab,
                  int(r.suspended != "no"))
    for d in state.devices.values():
        lab = {"name": d.name, "volume": d.volume, "minor": d.minor if d.minor is not None else ""}
        c = _counters_device(d)
        x.enum("bsr_device_state", "Local disk state", lab, DiskState, d.disk, "state")
        kib = (lambda v: None if v is None else v * 1024)
        x.add("bsr_device_size_bytes", "gauge", "Usable device size", lab, kib(d.size_kib))
        x.add("bsr_device_read_bytes_total", "counter", "Data read from the device", lab,
              kib(c["read_kib"]))
        x.add("bsr_device_written_bytes_total", "counter", "Data written to the device", lab,
              kib(c["write_kib"]))
        x.add("bsr_device_reads_total", "counter", "Read requests", lab, c["read_ios"])
        x.add("bsr_device_writes_total", "counter", "Write requests", lab, c["write_ios"])
        x.add("bsr_device_alwrites_total", "counter", "Activity log updates", lab, c["al_writes"])
        x.add("bsr_device_bmwrites_total", "counter", "Bitmap updates", lab, c["bm_writes"])
        x.add("bsr_device_al_hits_total", "counter", "Writes to an active AL extent", lab,
              c["al_hits"])
        x.add("bsr_device_al_misses_total", "counter", "Writes that activated an AL extent", lab,
              c["al_misses"])
        x.add("bsr_device_al_starving_total", "counter", "Writes that waited for an AL slot", lab,
              c["al_starving"])
        x.add("bsr_device_upperpending", "gauge", "Application requests in flight", lab,
              c["upper_pending"])
        x.add("bsr_device_lowerpending", "gauge", "Requests in flight to the backing disk", lab,
              c["lower_pending"])
        ns = (lambda v: None if v is None else v / 1e9)
        x.add("bsr_device_local_latency_seconds_total", "counter",
              "Sum of backing-disk completion times", lab, ns(c["local_lat_ns"]))
        x.add("bsr_device_master_latency_seconds_total", "counter",
              "Sum of request completion times", lab, ns(c["master_lat_ns"]))
        x.add("bsr_device_completed_total", "counter", "Requests in the latency sums", lab,
              c["completed_ios"])
        x.add("bsr_device_io_errors_total", "counter", "I/O errors", lab, c["io_errors"])
        if d.client is not None:
            x.add("bsr_device_client", "gauge", "Intentionally diskless", lab, int(d.client))
    for cn in state.connections.values():
        lab = {"name": cn.name, "peer_node_id": cn.peer_node_id, "conn_name": cn.conn_name or ""}
        c = _counters_connection(
            cn, lambda cn=cn: state.peer_devices_of(cn.name, cn.peer_node_id))
        x.enum("bsr_connection_state", "Connection state", lab, ConnState, cn.connection, "state")
        x.enum("bsr_connection_role", "Role of the peer", lab, Role, cn.peer_role, "role")
        if cn.congested is not None:
            x.add("bsr_connection_congested", "gauge", "Send buffer congested", lab,
                  int(cn.congested))
        x.add("bsr_connection_apinflight_bytes", "gauge", "Application data in flight", lab,
              c["ap_in_flight"])
        x.add("bsr_connection_rsinflight_bytes", "gauge", "Resync data in flight", lab,
              c["rs_in_flight"])
        x.add("bsr_connection_sent_bytes_total", "counter", "Bytes sent to the peer", lab,
              c["sent_bytes"])
        x.add("bsr_connection_received_bytes_total", "counter", "Bytes received from the peer",
              lab, c["recv_bytes"])
        x.add("bsr_connection_sendbuf_fill_bytes", "gauge", "Bytes queued in the send buffer",
              lab, c["sndbuf_fill"])
    for p in state.peer_devices.values():
        lab = {"name": p.name, "volume": p.volume, "peer_node_id": p.peer_node_id,
               "conn_name": p.conn_name or ""}
        c = _counters_peer_device(p)
        kib = (lambda v: None if v is None else v * 1024)
        x.enum("bsr_peerdevice_replication_state", "Replication state", lab, ReplState,
               p.replication, "state")
        x.enum("bsr_peerdevice_peer_disk_state", "Disk state of the peer", lab, DiskState,
               p.peer_disk, "state")
        x.add("bsr_peerdevice_sent_bytes_total", "counter", "Data sent to the peer", lab,
              kib(p.sent_kib))
        x.add("bsr_peerdevice_received_bytes_total", "counter", "Data received from the peer",
              lab, kib(p.received_kib))
        x.add("bsr_peerdevice_resync_sent_bytes_total", "counter", "Resync data sent", lab,
              kib(c["rs_sent_kib"]))
        x.add("bsr_peerdevice_outofsync_bytes", "gauge", "Data out of sync with the peer", lab,
              kib(p.out_of_sync_kib))
        x.add("bsr_peerdevice_pending", "gauge", "Requests sent, not yet answered", lab,
              p.pending)
        x.add("bsr_peerdevice_unacked", "gauge", "Requests received, not yet acknowledged", lab,
              p.unacked)
    return x.text()


async def serve(host: str, port: int, body: Callable[[], str]) -> asyncio.AbstractServer:
    """Start the HTTP endpoint; ``body`` renders the exposition on demand."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode(errors="replace") if len(parts) > 1 else ""
            method = parts[0] if parts else b""
            if method not in (b"GET", b"HEAD"):
                status, text, ctype = "405 Method Not Allowed", "GET only\n", "text/plain"
            elif path.split("?")[0] in ("/metrics", "/metrics/"):
                status, text, ctype = "200 OK", body(), CONTENT_TYPE
            elif path == "/":
                status, text, ctype = "200 OK", "bsrmon: metrics at /metrics\n", "text/plain"
            else:
                status, text, ctype = "404 Not Found", "not found\n", "text/plain"
            data = text.encode()
            writer.write(f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode())
            if method != b"HEAD":
                writer.write(data)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=16384)
