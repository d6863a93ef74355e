"""Shared steps of the replication tests: one resource r0 with volume 0 on
each lab node, connected to the other node (a = node 0, b = node 1).

Commands go through repl_agent.py (one long-lived Python per guest); the
metadata is created on the host side of the disk image (bsrmeta on the
image file) while bsr has the disk closed."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsr.netlink import encode_addr
from harness import Guest
from harness.lab import Lab

T = 120
PORT = 7789
AGENT_PORT = 9555
HERE = Path(__file__).resolve().parent
BSRMETA = str(Path(sys.executable).with_name("bsrmeta"))


@dataclass
class Node:
    g: Guest
    node_id: int
    peer_id: int
    ip: str
    peer_ip: str

    @property
    def disk(self) -> str:
        return self.g.spec.disks[0].device

    @property
    def image(self) -> Path:
        return self.g.spec.disks[0].path


def call(g: Guest, req: dict[str, Any], timeout: float = T) -> dict[str, Any]:
    cmd = (f"exec 3<>/dev/tcp/127.0.0.1/{AGENT_PORT} && "
           "printf '%s\\n' \"$REQ\" >&3 && cat <&3")
    r = g.run(f"bash -c {shlex.quote(cmd)}", timeout=timeout, env={"REQ": json.dumps(req)})
    if r.rc != 0 or not r.stdout.strip():
        raise RuntimeError(f"{g.name}: repl agent did not answer {req}: rc={r.rc} {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ensure_agent(g: Guest) -> None:
    """Start repl_agent.py in the guest unless it answers already."""
    try:
        if call(g, {"op": "ping"}, timeout=30).get("ok"):
            return
    except Exception:
        pass
    g.check(f"cd {HERE} && (setsid {g.py} repl_agent.py serve {AGENT_PORT} "
            f"> /tmp/repl-agent.log 2>&1 < /dev/null &)", timeout=60)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(3)
        try:
            if call(g, {"op": "ping"}, timeout=30).get("ok"):
                return
        except Exception:
            continue
    log = g.run("cat /tmp/repl-agent.log", timeout=30).stdout
    raise RuntimeError(f"{g.name}: repl agent did not start:\n{log}")


def nodes(lab: Lab, family: int = 4) -> tuple[Node, Node]:
    a_ip, b_ip = Lab.addr(lab.a, family), Lab.addr(lab.b, family)
    return Node(lab.a, 0, 1, a_ip, b_ip), Node(lab.b, 1, 0, b_ip, a_ip)


def addr(ip: str, port: int = PORT) -> str:
    return f"ipv6:[{ip}]:{port}" if ":" in ip else f"ipv4:{ip}:{port}"


def create_md(n: Node, peer_ids: str | None = None) -> None:
    """New metadata on the host side of the image (bsr must not have it open)."""
    subprocess.run(
        [BSRMETA, "--force", f"--node-id={n.node_id}", "0", "v1", str(n.image), "internal",
         "create-md", "--max-peers=2", f"--peer-node-ids={peer_ids or n.peer_id}"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


def nl(n: Node, cmd: str, minor: int = 0xFFFFFFFF, **structs: dict[str, Any]) -> dict[str, Any]:
    return call(n.g, {"op": "nl", "cmd": cmd, "minor": minor, "structs": structs})


def check_nl(n: Node, cmd: str, minor: int = 0xFFFFFFFF, **structs: dict[str, Any]) -> None:
    r = nl(n, cmd, minor, **structs)
    assert r["ok"], f"{n.g.name}: {cmd} failed: {r}"


def path_ctx(n: Node, peer_id: int, my: str, peer: str) -> dict[str, Any]:
    return {"res_name": "r0", "peer_node_id": peer_id,
            "my_addr": {"hex": encode_addr(my).hex()},
            "peer_addr": {"hex": encode_addr(peer).hex()}}


def configure(n: Node, ko: Path, net_conf: dict[str, Any] | None = None, disk_size: int = 0,
              connect: bool = True, peer_ip: str | None = None, peer_id: int | None = None) -> None:
    """insmod, subscribe to events, create r0 with disk, peer, path; connect."""
    pid = n.peer_id if peer_id is None else peer_id
    nc = {"connect_int": 1, "ping_timeo": 20, **(net_conf or {})}
    n.g.check(f"insmod {shlex.quote(str(ko))}", timeout=T)
    ensure_agent(n.g)
    assert call(n.g, {"op": "events_reset"})["ok"]
    check_nl(n, "NEW_RESOURCE", ctx={"res_name": "r0"}, res_opts={"node_id": n.node_id})
    check_nl(n, "NEW_MINOR", ctx={"res_name": "r0", "volume": 0}, new_minor_parms={"minor": 0})
    check_nl(n, "ATTACH", minor=0, disk_conf={"backing_dev": n.disk, "meta_dev": n.disk,
                                              "meta_dev_idx": -1, "disk_size": disk_size})
    check_nl(n, "NEW_PEER", ctx={"res_name": "r0", "peer_node_id": pid, "conn_name": "peer"},
             net_conf=nc, new_peer_parms={"peer_node_id": pid})
    check_nl(n, "NEW_PATH", ctx=path_ctx(n, pid, addr(n.ip), addr(peer_ip or n.peer_ip)))
    if connect:
        check_nl(n, "CONNECT", ctx={"res_name": "r0", "peer_node_id": pid})


def connect(n: Node) -> None:
    check_nl(n, "CONNECT", ctx={"res_name": "r0", "peer_node_id": n.peer_id})


def disconnect(n: Node, force: bool = False) -> None:
    check_nl(n, "DISCONNECT", ctx={"res_name": "r0", "peer_node_id": n.peer_id},
             disconnect_parms={"force": int(force)})


def state(n: Node) -> dict[str, Any]:
    return call(n.g, {"op": "show", "res": "r0", "peer": n.peer_id})["state"]


def wait_state(n: Node, states: str, seconds: float = 60) -> dict[str, Any]:
    r = call(n.g, {"op": "wait", "res": "r0", "peer": n.peer_id, "states": states.split(","),
                   "seconds": seconds}, timeout=seconds + T)
    assert r["ok"], f"{n.g.name}: not {states} within {seconds}s: {r}"
    return r["state"]


def holds_state(n: Node, state_: str, seconds: float) -> dict[str, Any]:
    r = call(n.g, {"op": "hold", "res": "r0", "peer": n.peer_id, "states": state_.split(","),
                   "seconds": seconds}, timeout=seconds + T)
    assert r["ok"], f"{n.g.name}: left {state_} within {seconds}s: {r}"
    return r["state"]


def events(n: Node) -> str:
    return "\n".join(call(n.g, {"op": "events"})["lines"])


def kmsg(n: Node) -> str:
    return n.g.check("dmesg", timeout=T).stdout


def down(n: Node) -> None:
    nl(n, "DOWN", ctx={"res_name": "r0"})
