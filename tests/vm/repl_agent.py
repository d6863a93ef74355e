"""In-guest netlink server for the replication tests.

Starting the project's Python inside an emulated guest costs tens of
seconds on a loaded host, so each guest runs this one process for the
whole test module and the tests talk to it with bash's /dev/tcp:

    python3 repl_agent.py serve PORT

One JSON request per connection, one JSON answer, then the server closes.
Ops: ``ping``; ``nl`` (one command: cmd, structs; answers ok/errno/text);
``show``/``wait``/``hold`` (state of one connection, see repl_state.py);
``events_reset`` (subscribe again, forget recorded events), ``events``
(the events2 lines of every notification since the reset) and ``fuzz``
(run repl_fuzz.Fuzzer with the request's parameters, answer its summary).
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

from bsr.events2 import format_event
from bsr.kevents import Converter
from bsr.model import Verb
from bsr.netlink import BsrError, BsrNetlink
from repl_fuzz import Fuzzer
from repl_state import snapshot


class Recorder:
    """Notifications as events2 text, from a subscription made on demand."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.generation = 0

    def reset(self) -> None:
        with self.lock:
            self.lines = []
            self.generation += 1
        gen = self.generation
        nl = BsrNetlink()
        nl.subscribe()
        threading.Thread(target=self._run, args=(nl, gen), daemon=True).start()

    def _run(self, nl: BsrNetlink, gen: int) -> None:
        conv = Converter()
        try:
            while gen == self.generation:
                for m in nl.events(timeout=0.5):
                    for ev in conv.convert(m, live=True):
                        with self.lock:
                            if gen == self.generation:
                                self.lines.append(format_event(ev, timestamps=True))
                    if gen != self.generation:
                        break
        except Exception as e:  # module unloaded: the stream ends here
            with self.lock:
                if gen == self.generation:
                    self.lines.append(f"# events ended: {e!r}")
        finally:
            nl.close()


def _state_op(req: dict[str, Any]) -> dict[str, Any]:
    wanted = set(req.get("states", []))
    deadline = time.monotonic() + float(req.get("seconds", 0))
    with BsrNetlink() as nl:
        while True:
            snap = snapshot(nl, req["res"], int(req["peer"]))
            inside = snap["connection"] in wanted
            if req["op"] == "show":
                return {"ok": True, "state": snap}
            if req["op"] == "wait" and inside:
                return {"ok": True, "state": snap}
            if req["op"] == "hold" and not inside:
                return {"ok": False, "state": snap}
            if time.monotonic() >= deadline:
                return {"ok": req["op"] == "hold", "state": snap}
            time.sleep(0.2)


def _nl_op(req: dict[str, Any]) -> dict[str, Any]:
    structs = req.get("structs", {})
    for s in structs.values():
        for k, v in list(s.items()):
            if isinstance(v, dict) and "hex" in v:
                s[k] = bytes.fromhex(v["hex"])
    try:
        with BsrNetlink() as nl:
            r = nl.request(req["cmd"], minor=int(req.get("minor", 0xFFFFFFFF)), **structs)
        return {"ok": True, "text": r.info_text}
    except BsrError as e:
        return {"ok": False, "errno": e.errno, "text": e.text}


def handle(rec: Recorder, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "ping":
        return {"ok": True}
    if op == "nl":
        return _nl_op(req)
    if op == "nl_batch":  # one round trip for a bring-up; stops at the first failure
        done = []
        for one in req["reqs"]:
            done.append(_nl_op(one))
            if not done[-1]["ok"]:
                return {"ok": False, "cmd": one["cmd"], **done[-1]}
        return {"ok": True, "results": done}
    if op in ("show", "wait", "hold"):
        return _state_op(req)
    if op == "events_reset":
        rec.reset()
        return {"ok": True}
    if op == "fuzz":
        fz = Fuzzer(req["target"], int(req.get("port", 7789)), req.get("source"),
                    int(req["my_node"]), int(req["peer_node"]), int(req.get("seed", 1)),
                    req.get("stranger"))
        return {"ok": True, **fz.run(int(req["hello"]), int(req["handshake"]),
                                     int(req["connected"]), int(req["stranger_frames"]),
                                     int(req["sectors"]))}
    if op == "events":
        with rec.lock:
            return {"ok": True, "lines": list(rec.lines)}
    return {"ok": False, "text": f"unknown op {op!r}"}


def serve(port: int) -> None:
    rec = Recorder()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)

    def one(conn: socket.socket) -> None:
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            try:
                answer = handle(rec, json.loads(data))
            except Exception as e:  # report, keep serving
                answer = {"ok": False, "text": f"{type(e).__name__}: {e}"}
            conn.sendall(json.dumps(answer).encode() + b"\n")

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
