"""``bsrmon run``: one asyncio loop with a source reader, a period timer, the
collector, a writer thread, the control socket and (optionally) the
Prometheus endpoint.

Single instance: the daemon holds an exclusive ``flock`` on its pid file
for as long as it lives, so a stale pid file left by SIGKILL is harmless and
``start``/``status`` never need ``ps``.  The control socket speaks one JSON
object per line in each direction (see :mod:`bsrmon.control`).
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bsrmon import prometheus
from bsrmon.collector import Collector, Tick
from bsrmon.config import SETTABLE, Config, ConfigError, load, parse_listen
from bsrmon.series import TYPES, sort_key
from bsrmon.writer import Limits, Writer

log = logging.getLogger("bsrmon")


class AlreadyRunning(RuntimeError):
    pass


class PidFile:
    """An flock-held pid file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(f"bsrmon is already running (pid {read_pid(self.path)})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(path: Path) -> int | None:
    """The pid of the live daemon holding ``path``, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_pid(path) or -1
    finally:
        os.close(fd)
    return None


@dataclass
class Daemon:
    cfg: Config
    source: Any  # Events2Source | KernelSource (bsrmon.sources)
    control: bool = True
    pinned: frozenset[str] = frozenset()  # keys given on the command line: kept on reload
    started: float = field(default_factory=time.time)
    collector: Collector = field(init=False)
    writer: Writer = field(init=False)
    _stop: asyncio.Event = field(init=False)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _http: asyncio.AbstractServer | None = None
    _ctl: asyncio.AbstractServer | None = None
    _ticker: asyncio.Task | None = None
    # True once the source delivered its first batch: for the kernel source
    # that means subscribed and the initial state read, so nothing that
    # happens after `bsrmon start` returns can be missed.
    source_ready: bool = False

    def _limits(self) -> Limits:
        return Limits(self.cfg.file_size_limit, self.cfg.total_size_limit, self.cfg.compress)

    def _new_writer(self) -> Writer:
        w = Writer(self.cfg.file_path, self._limits(), self.cfg.queue_size)
        w.start()
        return w

    async def run(self) -> int:
        # Long-lived objects (modules, the state) need no cyclic GC passes;
        # collect rarely: the per-period garbage is acyclic.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        self._stop = asyncio.Event()
        pid = PidFile(self.cfg.pid_file) if self.control else None
        if pid is not None:
            pid.acquire()
        self.writer = self._new_writer()
        self.collector = Collector(self.cfg.types, lambda b: self.writer.submit(b))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        rc = 0
        try:
            if self.control:
                self._ctl = await self._serve_control()
            if self.cfg.listen:
                await self._start_http(self.cfg.listen)
            log.info("bsrmon %d: source %s, writing to %s every %gs", os.getpid(),
                     self.source.describe(), self.cfg.file_path, self.cfg.period)
            if not self.source.ticks_self:
                self._ticker = asyncio.create_task(self._tick_loop())
            reader = asyncio.create_task(self._read_source())
            stopper = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done and reader.exception() is not None:
                log.error("source failed: %s", reader.exception())
                rc = 1
            for t in (reader, stopper):
                t.cancel()
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if pid is not None:
                pid.release()
        return rc

    async def _shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if hasattr(self.source, "stop"):
            self.source.stop()
        self.collector.flush_log()
        for srv in (self._http, self._ctl):
            if srv is not None:
                srv.close()
        if self._ctl is not None:
            try:
                self.cfg.socket.unlink()
            except FileNotFoundError:
                pass
        await asyncio.to_thread(self.writer.stop)

    async def _read_source(self) -> None:
        handle = self.collector.handle
        async for items in self.source.items():
            for item in items:
                handle(item)
            self.source_ready = True

    async def _tick_loop(self) -> None:
        while True:
            p = self.cfg.period
            now = time.time()
            await asyncio.sleep(p - (now % p))
            self.collector.handle(Tick(datetime.now()))

    # -- settings that change at run time ---------------------------------

    def apply(self, key: str, value: Any) -> None:
        new = self.cfg.with_value(key, value)
        old, self.cfg = self.cfg, new
        if new.period != old.period:
            if hasattr(self.source, "period"):
                self.source.period = new.period
        if new.types != old.types:
            self.collector.set_types(new.types)
        if (new.file_size_limit, new.total_size_limit, new.compress) != \
                (old.file_size_limit, old.total_size_limit, old.compress):
            lim = self._limits()
            self.writer.fileset.limits = lim
        if new.file_path != old.file_path:
            old_writer = self.writer
            self.writer = self._new_writer()
            asyncio.get_running_loop().run_in_executor(None, old_writer.stop)
        if new.listen != old.listen:
            asyncio.ensure_future(self._restart_http(new.listen))

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply what changed."""
        if self.cfg.source is None:
            log.info("reload: no config file in use")
            return
        try:
            new = load(self.cfg.source)
        except ConfigError as e:
            log.error("reload: %s (keeping the running settings)", e)
            return
        for key in SETTABLE:
            name = key.replace("-", "_")
            if name in self.pinned:
                continue
            if getattr(new, name) != getattr(self.cfg, name):
                self.apply(key, getattr(new, name))
                log.info("reload: %s = %s", key, self.cfg.get(key))

    async def _start_http(self, listen: str) -> None:
        host, port = parse_listen(listen)
        self._http = await prometheus.serve(host, port, self.metrics_text)
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    async def _restart_http(self, listen: str) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if listen:
            try:
                await self._start_http(listen)
            except OSError as e:
                log.error("cannot listen on %s: %s", listen, e.strerror)

    def metrics_text(self) -> str:
        ws = self.writer.stats
        return prometheus.render(self.collector.state, {
            "bsrmon_samples_dropped_total": ws.dropped_full_queue + ws.dropped_write_error,
            "bsrmon_lines_written_total": ws.lines,
            "bsrmon_events_total": self.collector.events_seen,
        })

    # -- control socket ---------------------------------------------------

    async def _serve_control(self) -> asyncio.AbstractServer:
        path = self.cfg.socket
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.unlink()  # we hold the pid lock: any socket here is stale
        except FileNotFoundError:
            pass
        srv = await asyncio.start_unix_server(self._client, path=str(path))
        os.chmod(path, 0o660)
        return srv

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
                resp = self.request(req)
            except (ValueError, ConfigError) as e:
                resp = {"ok": False, "error": str(e)}
            writer.write(json.dumps(resp).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return {"ok": True, **self.status()}
        if cmd == "show":
            return {"ok": True, "samples": self.show()}
        if cmd == "get":
            key = str(req.get("key", ""))
            return {"ok": True, "key": key, "value": self.cfg.get(key)}
        if cmd == "set":
            self.apply(str(req.get("key", "")), req.get("value"))
            key = str(req.get("key", ""))
            return {"ok": True, "key": key, "value": self.cfg.get(key)}
        if cmd == "stop":
            asyncio.get_running_loop().call_soon(self._stop.set)
            return {"ok": True}
        raise ValueError(f"unknown request {cmd!r}")

    def status(self) -> dict[str, Any]:
        ws = self.writer.stats
        st = self.collector.state
        return {
            "pid": os.getpid(),
            "source": self.source.describe(),
            "source_state": self.source_state(),
            "uptime_s": round(time.time() - self.started, 1),
            "file_path": str(self.cfg.file_path),
            "period": self.cfg.period,
            "types": list(self.cfg.types),
            "resources": len(st.resource_names()),
            "events": self.collector.events_seen,
            "samples": self.collector.ticks,
            "lines_written": ws.lines,
            "rotations": ws.rotations,
            "removed_files": ws.removed_files,
            "dropped_queue_full": ws.dropped_full_queue,
            "dropped_write_error": ws.dropped_write_error,
            "last_write_error": ws.last_error,
            "listen": self.cfg.listen,
        }

    def source_state(self) -> str:
        """``live`` (delivering), ``waiting`` (kernel module not loaded yet,
        retrying) or ``starting``."""
        if self.source_ready:
            return "live"
        if getattr(self.source, "waiting", False):
            return "waiting"
        return "starting"

    def show(self) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.collector.latest, key=sort_key):
            t, values = self.collector.latest[key]
            cols = TYPES[key.type].columns
            out.append({
                "type": key.type, "resource": key.resource, "volume": key.volume,
                "peer": key.peer, "time": t.isoformat(timespec="milliseconds"),
                "values": {c.name: v for c, v in zip(cols, values)},
            })
        return out
