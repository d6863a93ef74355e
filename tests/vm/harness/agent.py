#!/usr/bin/python3
"""Command agent that runs inside a test guest.

Started by virtme-ng as the guest's exec command.  It serves one
virtio-serial port (named ``bsr.agent``) with a line-oriented JSON protocol:

    host -> guest  {"id": N, "op": "run", "cmd": "...", "timeout": 60}
    guest -> host  {"id": N, "rc": 0, "stdout": "...", "stderr": "...",
                    "timed_out": false, "seconds": 0.12}

Each request runs in its own thread, so a long background command and a
short foreground one proceed at the same time.  A command that outlives its
timeout is killed together with its whole process group.

Other ops: ``ping`` (liveness), ``tcp`` (send one line to a guest-local
TCP port and return what comes back until the peer closes: a request to a
long-lived test helper without starting a shell for it), ``kmsg`` (kernel
log records after a sequence number, read from /dev/kmsg), ``shutdown``
(reply, sync, exit so the guest powers off).

This file must only use the standard library: it runs under the guest's
/usr/bin/python3, independent of the project's virtualenv.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

PORT_NAME = "bsr.agent"


def find_port(name: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        base = "/sys/class/virtio-ports"
        if os.path.isdir(base):
            for entry in sorted(os.listdir(base)):
                try:
                    with open(os.path.join(base, entry, "name")) as f:
                        if f.read().strip() == name:
                            return "/dev/" + entry
                except OSError:
                    continue
        time.sleep(0.1)
    raise SystemExit(f"agent: virtio port {name} not found")


def read_kmsg(since: int) -> list[list[Any]]:
    """Return [seq, level, text] for every kernel log record with seq > since."""
    records: list[list[Any]] = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                if e.errno == errno.EPIPE:  # overwritten records; keep reading
                    continue
                raise
            if not raw:
                break
            line = raw.decode("utf-8", "replace")
            prefix, _, text = line.partition(";")
            fields = prefix.split(",")
            seq = int(fields[1])
            if seq <= since:
                continue
            level = int(fields[0]) & 7
            # continuation lines (" KEY=value") carry device info; keep text only
            message = text.split("\n", 1)[0]
            records.append([seq, level, message])
    finally:
        os.close(fd)
    return records


class Agent:
    def __init__(self, port_path: str) -> None:
        self.fd = os.open(port_path, os.O_RDWR)
        self.write_lock = threading.Lock()
        self.stop = threading.Event()

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        with self.write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]

    def run_command(self, req: dict[str, Any]) -> dict[str, Any]:
        timeout = float(req.get("timeout", 60))
        env = dict(os.environ)
        env.update(req.get("env") or {})
        start = time.monotonic()
        proc = subprocess.Popen(
            ["/bin/bash", "-c", req["cmd"]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
            cwd=req.get("cwd") or "/",
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                # A process in uninterruptible sleep (stuck I/O) keeps the
                # pipes open; report what we have rather than hang the agent.
                out, err = b"", b"agent: process did not die after SIGKILL (D state?)\n"
        return {
            "rc": proc.returncode if not timed_out else None,
            "stdout": out.decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace"),
            "timed_out": timed_out,
            "seconds": round(time.monotonic() - start, 3),
        }

    @staticmethod
    def tcp_exchange(req: dict[str, Any]) -> dict[str, Any]:
        timeout = float(req.get("timeout", 60))
        chunks = []
        # the timeout holds for the connect and for every send and receive
        with socket.create_connection(("127.0.0.1", int(req["port"])), timeout=timeout) as s:
            s.sendall(req["line"].encode() + b"\n")
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return {"stdout": b"".join(chunks).decode("utf-8", "replace")}

    def handle(self, req: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": req.get("id")}
        op = req.get("op")
        try:
            if op == "ping":
                reply["pong"] = True
            elif op == "run":
                reply.update(self.run_command(req))
            elif op == "tcp":
                reply.update(self.tcp_exchange(req))
            elif op == "kmsg":
                reply["records"] = read_kmsg(int(req.get("since", -1)))
            elif op == "shutdown":
                reply["bye"] = True
                os.sync()
                self.stop.set()
            else:
                reply["error"] = f"unknown op {op!r}"
        except Exception as e:  # report, never let a thread die silently
            reply["error"] = f"{type(e).__name__}: {e}"
        self.send(reply)

    def serve(self) -> None:
        buf = b""
        while not self.stop.is_set():
            chunk = os.read(self.fd, 65536)
            if not chunk:
                # host side not connected yet (or reconnecting)
                time.sleep(0.05)
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                except ValueError:
                    continue
                if req.get("op") == "shutdown":
                    self.handle(req)
                    break
                threading.Thread(target=self.handle, args=(req,), daemon=True).start()


def main() -> int:
    # Show everything the kernel says on the serial console: the host keeps it
    # as the console log, which is all that survives a crash.
    try:
        with open("/proc/sys/kernel/printk", "w") as f:
            f.write("7")
    except OSError:
        pass
    agent = Agent(find_port(PORT_NAME))
    agent.send({"id": None, "ready": True, "kernel": os.uname().release})
    agent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
