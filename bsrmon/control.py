"""Client side of the control socket: one JSON request line, one JSON answer.

Requests: ``{"cmd": "status"}``, ``{"cmd": "show"}``, ``{"cmd": "get",
"key": K}``, ``{"cmd": "set", "key": K, "value": V}``, ``{"cmd": "stop"}``.
Answers carry ``"ok": true`` or ``"ok": false, "error": "..."``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class NotRunning(ConnectionError):
    pass


def call(path: Path, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"bsrmon is not running (no answer on {path})") from None
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    try:
        resp = json.loads(data)
    except ValueError:
        raise NotRunning(f"bsrmon did not answer properly on {path}") from None
    if not isinstance(resp, dict):
        raise NotRunning(f"bsrmon did not answer properly on {path}")
    return resp
