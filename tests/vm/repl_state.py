"""In-guest helper for the replication tests: read or wait for the state of
one connection through bsr.netlink, in a single process (starting Python in
an emulated guest is slow, so the tests poll from here, not with bsrsetup).

    python3 repl_state.py show RES PEER
    python3 repl_state.py wait RES PEER STATE[,STATE...] TIMEOUT
    python3 repl_state.py hold RES PEER STATE SECONDS   # must stay in STATE

Prints one JSON object: connection state, peer role, statistics, the peer
devices' replication/peer-disk and the paths' established flags.  ``wait``
exits 1 when the state was not reached in time, ``hold`` exits 1 when it
left the state.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from bsr import abi
from bsr.netlink import BsrNetlink


def _name(enum: type, value: Any) -> str:
    try:
        return enum(int(value)).name
    except (TypeError, ValueError):
        return str(value)


def snapshot(nl: BsrNetlink, res: str, peer: int) -> dict[str, Any]:
    ctx = {"res_name": res}
    out: dict[str, Any] = {"connection": None, "peer_devices": {}, "paths": []}
    for m in nl.dump("GET_CONNECTIONS", ctx=ctx):
        if int(m.get("ctx", "peer_node_id", -1)) != peer:
            continue
        out["connection"] = _name(abi.ConnState, m.get("conn_info", "conn_state"))
        out["peer_role"] = _name(abi.Role, m.get("conn_info", "peer_role"))
        out["agreed_proto"] = int(m.get("conn_info", "agreed_proto", 0))
        out["stats"] = {k: int(v) for k, v in m.structs.get("conn_stats", {}).items()}
    for m in nl.dump("GET_PEER_DEVICES", ctx=ctx):
        if int(m.get("ctx", "peer_node_id", -1)) != peer:
            continue
        out["peer_devices"][str(m.get("ctx", "volume"))] = {
            "replication": _name(abi.ReplState, m.get("peer_device_info", "repl_state")),
            "peer_disk": _name(abi.DiskState, m.get("peer_device_info", "peer_disk_state")),
            "peer_current_uuid": int(m.get("peer_device_info", "peer_current_uuid", 0)),
        }
    for m in nl.dump("GET_PATHS", ctx=ctx):
        if int(m.get("ctx", "peer_node_id", -1)) == peer:
            out["paths"].append(bool(int(m.get("path_info", "established", 0))))
    return out


def main(argv: list[str]) -> int:
    cmd, res, peer = argv[0], argv[1], int(argv[2])
    with BsrNetlink() as nl:
        if cmd == "show":
            print(json.dumps(snapshot(nl, res, peer)))
            return 0
        wanted = set(argv[3].split(","))
        seconds = float(argv[4])
        deadline = time.monotonic() + seconds
        while True:
            snap = snapshot(nl, res, peer)
            inside = snap["connection"] in wanted
            if cmd == "wait" and inside:
                print(json.dumps(snap))
                return 0
            if cmd == "hold" and not inside:
                print(json.dumps(snap))
                return 1
            if time.monotonic() >= deadline:
                print(json.dumps(snap))
                return 1 if cmd == "wait" else 0
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
