"""Host side of the guests' tool zygote (see zygote_server.py for why).

The harness compiles ``zygote_client.c`` once into ``.cache/zygote`` and
links it under each short-lived tool's name; each guest starts the server at
boot and puts that directory first on the PATH of every command it runs.
``BSR_VM_ZYGOTE=0`` turns all of it off (every command then starts its own
interpreter, as on a real machine, only 50x slower).
"""
from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "zygote_server.py"
CLIENT_SRC = HERE / "zygote_client.c"
GUEST_SOCK = "/tmp/bsr-zygote.sock"
GUEST_LOG = "/tmp/bsr-zygote.log"
# Short-lived tools only: bsrmon and bsrwatch are daemons/TUIs that want a
# terminal, their own pid and their own signals.
TOOLS = ("bsradm", "bsrsetup", "bsrmeta", "bsrcon")
# Imported up front besides the entry modules (some are imported lazily).
PRELOAD = ("pyroute2", "bsr.setup.cli", "bsr.netlink")


def enabled() -> bool:
    return os.environ.get("BSR_VM_ZYGOTE", "1") != "0"


def entry_points(pyproject: Path) -> dict[str, str]:
    """tool -> "module:function", straight from [project.scripts]."""
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    return {tool: scripts[tool] for tool in TOOLS}


@dataclass(frozen=True)
class Zygote:
    bin_dir: Path  # client links named like the tools
    entries: tuple[tuple[str, str], ...]  # (tool, module:function)

    def server_command(self, python: Path, pythonpath: str) -> str:
        """Shell fragment that starts the server in the background."""
        args = [str(python), str(SERVER), GUEST_SOCK]
        args += [f"{tool}={entry}" for tool, entry in self.entries]
        args += [f"+{m}" for m in PRELOAD]
        return (f"PYTHONPATH={shlex.quote(pythonpath)} {shlex.join(args)} "
                f"</dev/null >{GUEST_LOG} 2>&1 &")

    def guest_env(self, venv_bin: Path) -> dict[str, str]:
        """Environment for guest commands (PATH is prepended by the caller)."""
        return {
            "BSR_ZYGOTE_SOCK": GUEST_SOCK,
            "BSR_ZYGOTE_REAL": str(venv_bin),
            # bsradm starts its low-level tools through these overrides
            "BSRSETUP": str(self.bin_dir / "bsrsetup"),
            "BSRMETA": str(self.bin_dir / "bsrmeta"),
        }


def build(cache_dir: Path, pyproject: Path) -> Zygote:
    """Compile the client if its source changed; raise RuntimeError on failure."""
    bin_dir = cache_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    client = cache_dir / "zygote_client"
    if not client.exists() or client.stat().st_mtime < CLIENT_SRC.stat().st_mtime:
        tmp = cache_dir / "zygote_client.tmp"
        proc = subprocess.run(["cc", "-O2", "-Wall", "-o", str(tmp), str(CLIENT_SRC)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building {CLIENT_SRC.name} failed:\n{proc.stdout}")
        tmp.rename(client)
    for tool in TOOLS:
        link = bin_dir / tool
        if not link.is_symlink():
            link.symlink_to("../zygote_client")
    return Zygote(bin_dir, tuple(entry_points(pyproject).items()))
