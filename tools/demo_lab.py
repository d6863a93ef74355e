#!/usr/bin/env python3
"""bsr two-node demo: two QEMU guests replicating one resource, bsrwatch on top.

    demo_lab.py run [--check SECONDS] [--keep-workdir]
    demo_lab.py exec a|b COMMAND [ARG ...]

``run`` boots guests ``a`` (198.18.0.1) and ``b`` (198.18.0.2) joined by a
point-to-point link (the test harness in tests/vm/harness), loads bsr.ko,
writes /etc/bsr.conf in both (their /etc is a tmpfs overlay), runs
``bsradm create-md`` and ``bsradm up r0`` on both, ``bsradm primary --force
r0`` on a (the initial sync towards b), starts a moderate fio write load on
/dev/bsr0 of a and opens bsrwatch showing a.  bsrwatch's keys run bsradm in
guest a.  Quitting bsrwatch (or Ctrl-C, SIGTERM, SIGHUP) powers both guests
off and removes every temporary file.

``--check SECONDS`` runs the same flow without a terminal: bsrwatch runs
headless for SECONDS once it lists r0, then the state is checked (r0
Primary and Connected on a, bytes written and sent) and the lab is shut
down; exit 0 when all held.

``exec`` runs a command in a guest of a running demo and streams its output
(standard output as it comes, standard error at the end) with the command's
exit status.  It finds the demo through $BSR_DEMO_SOCK, which ``run`` sets
for bsrwatch; this is how bsrwatch's --events-cmd and --command reach the
guest.
"""
from __future__ import annotations

import argparse
import codecs
import json
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SOCK_ENV = "BSR_DEMO_SOCK"
RESOURCE = "r0"
PORT = 7789
NODES = ("a", "b")
LONG = 7 * 24 * 3600.0  # bound of the guest commands that run until the demo ends
STEP_TIMEOUT = 900.0  # one bsradm call in a guest under TCG on a loaded host
FIRST_EVENTS_TIMEOUT = 300.0  # bsrwatch's first events from the guest (headless check)
EVENTS_ARGV = ["bsrsetup", "events2", "--statistics", "--timestamps", "--interval=1"]
FIO_ARGS = ("--name=demo --filename=/dev/bsr0 --rw=randwrite --bs=64k --direct=1 "
            "--rate=4m --time_based --runtime=604800 --ioengine=psync")


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


# ------------------------------------------------------------------ config
def bsr_conf(disks: dict[str, str], addrs: dict[str, str]) -> str:
    """/etc/bsr.conf for r0 on both guests (same text on each node)."""
    hosts = "".join(
        f"    on {name} {{\n"
        f"        node-id {i};\n"
        f"        address ipv4 {addrs[name]}:{PORT};\n"
        f"        volume 0 {{\n"
        f"            device /dev/bsr0 minor 0;\n"
        f"            disk {disks[name]};\n"
        f"            meta-disk internal;\n"
        f"        }}\n"
        f"    }}\n"
        for i, name in enumerate(NODES))
    return (f"# written by tools/demo_lab.py\n"
            f"resource {RESOURCE} {{\n"
            f"    net {{\n        protocol C;\n        verify-alg crc32c;\n        connect-int 2;\n    }}\n"
            f"    disk {{\n        resync-rate 20M;\n    }}\n"
            f"{hosts}}}\n")


# ------------------------------------------------------------- exec server
@dataclass
class ExecRequest:
    node: str
    argv: list[str]


class ExecServer:
    """Unix socket in the demo's work directory; one connection per command.

    The command runs in the guest with its standard output going to a file
    in the guest-shared directory, which is streamed back as it grows; when
    the client goes away (bsrwatch killed its source), the command's process
    group in the guest is killed."""

    def __init__(self, guests: dict[str, Any], shared: Path, path: Path) -> None:
        self.guests = guests
        self.shared = shared
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.closed = False

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                req = self._read_request(conn)
            except (OSError, ValueError, KeyError) as e:
                self._send(conn, {"rc": 2, "err": f"demo exec: bad request: {e}\n"})
                return
            g = self.guests.get(req.node)
            if g is None or not g.alive:
                self._send(conn, {"rc": 2, "err": f"demo exec: no running guest {req.node!r}\n"})
                return
            self._run(conn, g, req)

    @staticmethod
    def _read_request(conn: socket.socket) -> ExecRequest:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError("connection closed before the request")
            data += chunk
        obj = json.loads(data)
        return ExecRequest(str(obj["node"]), [str(a) for a in obj["argv"]])

    @staticmethod
    def _send(conn: socket.socket, obj: dict[str, Any]) -> bool:
        try:
            conn.sendall(json.dumps(obj).encode() + b"\n")
        except OSError:
            return False
        return True

    def _run(self, conn: socket.socket, g: Any, req: ExecRequest) -> None:
        tag = uuid.uuid4().hex[:12]
        out, pidf = self.shared / f"exec-{tag}.out", self.shared / f"exec-{tag}.pid"
        out.touch()
        script = f"echo $$ > {pidf}; exec {shlex.join(req.argv)} > {out}"
        pending = g.run_async(script, timeout=LONG, env={"BSR_HOSTNAME": req.node})
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            with open(out, "rb") as f:
                while True:
                    finished = pending.done()
                    text = decoder.decode(f.read())
                    if text and not self._send(conn, {"out": text}):
                        break
                    if finished:
                        res = pending.wait()
                        self._remove(out, pidf)  # before the answer: the client may exit at once
                        self._send(conn, {"out": decoder.decode(b"", final=True),
                                          "err": res.stderr, "rc": res.rc if res.rc is not None else 1})
                        return
                    if self._client_gone(conn):
                        break
            # the client is gone: stop the command in the guest
            g.run(f"test -s {pidf} && kill -9 -- -$(cat {pidf}); true", timeout=60)
        except Exception as e:  # the guest went away under us
            self._send(conn, {"rc": 1, "err": f"demo exec: {e}\n"})
        finally:
            self._remove(out, pidf)

    @staticmethod
    def _remove(*paths: Path) -> None:
        for p in paths:
            with suppress(OSError):
                p.unlink()

    @staticmethod
    def _client_gone(conn: socket.socket) -> bool:
        ready, _, _ = select.select([conn], [], [], 0.2)
        if not ready:
            return False
        try:
            return conn.recv(1) == b""
        except OSError:
            return True


def exec_client(node: str, argv: list[str]) -> int:
    path = os.environ.get(SOCK_ENV)
    if not path:
        print(f"demo_lab exec: ${SOCK_ENV} is not set (is 'make demo' running?)", file=sys.stderr)
        return 2
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError as e:
            print(f"demo_lab exec: cannot reach the demo at {path}: {e.strerror}", file=sys.stderr)
            return 2
        s.sendall(json.dumps({"node": node, "argv": argv}).encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                print("demo_lab exec: the demo ended the command", file=sys.stderr)
                return 1
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("out"):
                    sys.stdout.write(msg["out"])
                    sys.stdout.flush()
                if "rc" in msg:
                    sys.stderr.write(msg.get("err", ""))
                    return int(msg["rc"])


# ---------------------------------------------------------------- the lab
class DemoLab:
    """The two guests, the exec server and everything to undo at the end."""

    def __init__(self, workdir: Path) -> None:
        sys.path.insert(0, str(REPO / "tests" / "vm"))
        from harness.kernel import find_env
        from harness.lab import HostUdpBuffers, Lab

        env, problem = find_env()
        if env is None:
            raise SystemExit(f"demo: cannot boot guests: {problem}")
        if not env.bsr_ko.exists():
            raise SystemExit(f"demo: {env.bsr_ko} is missing (make kmod)")
        self.env = env
        self.workdir = workdir
        self.buffers = HostUdpBuffers()
        self.lab = Lab(env, workdir / "lab", disk_mb=256)
        self.shared = workdir / "lab" / "shared"
        self.server: ExecServer | None = None
        self.fio: Any = None

    @property
    def sock_path(self) -> Path:
        return self.workdir / "exec.sock"

    def node(self, name: str) -> Any:
        return self.lab.a if name == "a" else self.lab.b

    def boot(self) -> None:
        if not self.buffers.raise_():
            say("could not raise the host's UDP receive buffers (not root): the link may drop packets")
        say(f"booting guests a (198.18.0.1) and b (198.18.0.2) on {self.env.vmlinuz} "
            "under QEMU/TCG, about a minute ...")
        start = time.monotonic()
        self.lab.boot()
        say(f"guests up after {time.monotonic() - start:.0f} s")
        self.server = ExecServer({n: self.node(n) for n in NODES}, self.shared, self.sock_path)
        self.server.start()

    def both(self, what: str, fn: Any) -> None:
        """Run fn(name) for a and b in parallel; the first error is raised."""
        errors: list[BaseException] = []

        def one(name: str) -> None:
            try:
                fn(name)
            except BaseException as e:
                errors.append(e)

        start = time.monotonic()
        threads = [threading.Thread(target=one, args=(n,)) for n in NODES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        say(f"{what}: done on a and b ({time.monotonic() - start:.0f} s)")

    def adm(self, name: str, args: str, timeout: float = STEP_TIMEOUT) -> str:
        g = self.node(name)
        return g.check(f"bsradm {args}", timeout=timeout, env={"BSR_HOSTNAME": name}).stdout

    def configure(self) -> None:
        disks = {n: self.node(n).spec.disks[0].device for n in NODES}
        addrs = {n: self.lab.addr(self.node(n)) for n in NODES}
        conf = bsr_conf(disks, addrs)

        def setup(name: str) -> None:
            g = self.node(name)
            g.insmod(self.env.bsr_ko)
            g.check(f"printf %s {shlex.quote(conf)} > /etc/bsr.conf")
            self.adm(name, f"create-md --force {RESOURCE}")
            self.adm(name, f"up {RESOURCE}")

        say(f"loading bsr.ko, writing /etc/bsr.conf, bsradm create-md + up {RESOURCE} on both ...")
        self.both("bsradm create-md/up", setup)
        say("waiting for a and b to connect ...")
        self.wait_for("a", "cstate", "Connected", 180)
        say("a: bsradm primary --force r0 (a becomes the sync source of the initial sync)")
        self.adm("a", f"primary --force {RESOURCE}")
        say("a: fio writes random 64 KiB blocks to /dev/bsr0 at 4 MiB/s until the demo ends")
        self.fio = self.lab.a.run_async(f"fio {FIO_ARGS} > /dev/null", timeout=LONG)

    def wait_for(self, name: str, what: str, wanted: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        seen = ""
        while time.monotonic() < deadline:
            r = self.node(name).run(f"bsradm {what} {RESOURCE}", timeout=STEP_TIMEOUT,
                                    env={"BSR_HOSTNAME": name})
            seen = r.stdout.strip()
            if wanted in seen.split():
                return
            time.sleep(1)
        raise RuntimeError(f"{name}: bsradm {what} {RESOURCE} did not show {wanted} "
                           f"within {seconds:g} s (last: {seen or 'nothing'})")

    def exec_prefix(self, node: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "exec", node]

    def bsrwatch_argv(self) -> list[str]:
        return ["--events-cmd", shlex.join(self.exec_prefix("a") + EVENTS_ARGV),
                "--command", shlex.join(self.exec_prefix("a") + ["bsradm"]),
                "--timeout", str(int(STEP_TIMEOUT))]

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.close()
        self.lab.shutdown()
        self.buffers.restore()


def qemu_left(workdir: Path) -> list[int]:
    """Pids of QEMU processes still using files of ``workdir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmd and str(workdir) in cmd:
            pids.append(int(proc.name))
    return pids


# -------------------------------------------------------------- bsrwatch
def run_bsrwatch(demo: DemoLab) -> int:
    env = dict(os.environ, **{SOCK_ENV: str(demo.sock_path)})
    argv = [str(Path(sys.executable).with_name("bsrwatch")), *demo.bsrwatch_argv()]
    say("starting bsrwatch on a: p/s promote/demote, v verify, ? all keys, q quits "
        "and powers the lab off")
    time.sleep(1.5)
    return subprocess.run(argv, env=env).returncode


def headless_check(demo: DemoLab, seconds: float) -> dict[str, Any]:
    """bsrwatch without a terminal for ``seconds`` after it first listed r0
    (waiting up to FIRST_EVENTS_TIMEOUT for that); what it and the module showed."""
    import asyncio

    from bsrwatch.app import BsrWatchApp
    from bsrwatch.settings import Settings
    from bsrwatch.sources import CommandSource
    from bsrwatch.widgets.resource_list import ResourceList

    os.environ[SOCK_ENV] = str(demo.sock_path)
    args = demo.bsrwatch_argv()
    source = CommandSource(args[1])
    settings = Settings(command=args[3], timeout=STEP_TIMEOUT)

    def line(app: BsrWatchApp) -> str:
        for text in app.overview.query_one(ResourceList).text_lines():
            if text[2:].split(" ", 1)[0] == RESOURCE:
                return text
        return ""

    async def watch() -> dict[str, Any]:
        app = BsrWatchApp(source, settings)
        seen: dict[str, Any] = {"first": "", "last": ""}
        async with app.run_test(size=(120, 30)) as pilot:
            # the first events come after a Python start in the guest, which
            # takes long under TCG on a busy host: the SECONDS count from there
            listed = time.monotonic() + FIRST_EVENTS_TIMEOUT
            while not line(app) and time.monotonic() < listed:
                await pilot.pause(0.5)
            seen["first"] = line(app)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await pilot.pause(0.5)
            seen["last"] = line(app)
            seen["lines"] = app.overview.query_one(ResourceList).text_lines()
            seen["status"] = app.store.status.text
        return seen

    seen = asyncio.run(watch())
    status = demo.lab.a.check(f"bsrsetup status --statistics {RESOURCE}", timeout=STEP_TIMEOUT).stdout
    seen["status_a"] = status
    return seen


def peer_line(status: str, peer: str = "b") -> str | None:
    """The connection line of ``peer`` in 'bsrsetup status' output."""
    for line in status.splitlines():
        if line.startswith(f"  {peer} "):
            return line
    return None


def counters(status: str, key: str) -> list[int]:
    return [int(w.split(":", 1)[1]) for w in status.split() if w.startswith(f"{key}:")]


def verdict(seen: dict[str, Any]) -> list[str]:
    """Problems with what the headless run saw; empty when the demo worked:
    a Primary and connected to b, fio's writes counted on a, data sent to b
    (the initial sync and the replicated writes), bsrwatch showing r0 Primary."""
    problems = []
    status = seen.get("status_a", "")
    if f"{RESOURCE} role:Primary" not in status:
        problems.append("a is not Primary")
    peer = peer_line(status)
    if peer is None or "connection:" in peer:
        problems.append(f"a is not connected to b: {peer!r}")
    if max(counters(status, "written"), default=0) == 0:
        problems.append("nothing was written to /dev/bsr0 on a")
    if max(counters(status, "sent"), default=0) == 0:
        problems.append("nothing was sent to b (no resync, no replicated write)")
    if not seen.get("first"):
        problems.append(f"bsrwatch never listed {RESOURCE}")
    elif " Primary " not in seen.get("last", ""):
        problems.append(f"bsrwatch does not show {RESOURCE} Primary: {seen.get('last')!r}")
    return problems


# ------------------------------------------------------------------- main
class Stop(Exception):
    pass


def _stop(signum: int, _frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bsr-demo-"))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    demo: DemoLab | None = None
    rc = 1
    try:
        demo = DemoLab(workdir)
        demo.boot()
        demo.configure()
        if args.check is None:
            rc = run_bsrwatch(demo)
        else:
            say(f"headless check: bsrwatch runs without a terminal for {args.check:g} s")
            seen = headless_check(demo, args.check)
            problems = verdict(seen)
            seen["sent_kib"] = max(counters(seen["status_a"], "sent"), default=0)
            print(json.dumps({"ok": not problems, "problems": problems, **seen}), flush=True)
            rc = 0 if not problems else 1
    except (KeyboardInterrupt, Stop) as e:
        say(f"interrupted ({e or 'Ctrl-C'})")
        rc = 130
    except Exception as e:
        say(f"failed: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        say("powering the guests off ...")
        if demo is not None:
            demo.shutdown()
        for pid in qemu_left(workdir):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if args.keep_workdir:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        say("lab shut down")
    return rc


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="demo_lab.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="boot the lab, set r0 up, open bsrwatch; power off on quit")
    r.add_argument("--check", type=float, metavar="SECONDS",
                   help="no terminal: run bsrwatch headless for SECONDS once it lists r0, "
                        "check, shut down")
    r.add_argument("--keep-workdir", action="store_true",
                   help="keep the disk images and logs (the path is printed)")
    e = sub.add_parser("exec", help="run a command in guest a or b of a running demo")
    e.add_argument("node", choices=NODES)
    e.add_argument("command", nargs=argparse.REMAINDER)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.cmd == "exec":
        if not args.command:
            print("demo_lab exec: no command", file=sys.stderr)
            return 2
        return exec_client(args.node, args.command)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
