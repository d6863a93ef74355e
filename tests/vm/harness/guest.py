"""Host side of a test guest: boot with virtme-ng, talk to the in-guest agent.

A :class:`Guest` is one QEMU process running the Debian kernel over the
host's filesystem (9p, copy-on-write overlays), with file-backed virtio
disks and an optional point-to-point network link.  Commands run through the
agent (``agent.py``) over a virtio-serial port backed by a unix socket.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pyzip, zygote
from .kernel import KernelEnv

AGENT = Path(__file__).with_name("agent.py")
BOOT_TIMEOUT = float(os.environ.get("BSR_VM_BOOT_TIMEOUT", "240"))
# Host-side grace added to a command's own bound before the guest is
# declared unresponsive.
REPLY_GRACE = 15.0
# Drivers udev would load at boot for QEMU's emulated board (KVM, AHCI and
# its CD-ROM, PS/2 mouse, watchdogs, SMBus, PC speaker): no test uses them,
# and under TCG loading them doubles the wait for udev to settle (~19 s ->
# ~38 s measured on a loaded 2-core host).  Kept out via kmod's blacklist:
# nothing is logged, and an explicit modprobe/insmod still works.
UNUSED_DRIVERS = (
    "kvm", "kvm_amd", "kvm_intel", "ccp", "irqbypass", "ahci", "libahci", "sr_mod", "sg",
    "psmouse", "serio_raw", "evdev", "pcspkr", "i2c_i801", "i2c_smbus", "lpc_ich",
    "iTCO_wdt", "iTCO_vendor_support", "intel_pmc_bxt", "i6300esb", "qemu_fw_cfg",
)


class GuestError(Exception):
    """Something went wrong talking to a guest; message carries its logs."""


class GuestBootError(GuestError):
    pass


class GuestUnresponsive(GuestError):
    """The agent did not answer within the bound (guest hung or died)."""


class CommandFailed(GuestError):
    def __init__(self, guest: str, cmd: str, result: "Result") -> None:
        self.result = result
        super().__init__(
            f"[{guest}] command failed (rc={result.rc}): {cmd}\n"
            f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
        )


class CommandTimeout(GuestError):
    def __init__(self, guest: str, cmd: str, timeout: float, result: "Result") -> None:
        self.result = result
        super().__init__(
            f"[{guest}] command exceeded its {timeout:g}s bound and was killed: {cmd}\n"
            f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
        )


@dataclass(frozen=True)
class Result:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass
class Disk:
    """A host file attached to the guest as a virtio-blk disk."""

    path: Path
    size_mb: int = 256
    serial: str = ""
    cache: str = "none"  # none/directsync: a killed QEMU loses no flushed write
    device: str = ""  # /dev/vdX inside the guest, filled in at boot

    def ensure(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as f:
                f.truncate(self.size_mb * 1024 * 1024)

    def qemu_args(self, index: int) -> str:
        return (
            f"-drive file={self.path},format=raw,if=none,id=bd{index},cache={self.cache},aio=threads "
            f"-device virtio-blk-pci,drive=bd{index},serial={self.serial}"
        )


@dataclass
class Nic:
    """One end of a QEMU dgram link on 127.0.0.1 (no host network involved)."""

    mac: str
    local_port: int
    remote_port: int
    ipv4: str  # e.g. 198.18.0.1/24
    ipv6: str  # e.g. fd00::1/64
    mtu: int = 9000
    ifname: str = ""  # filled in at boot

    def qemu_args(self) -> str:
        return (
            f"-netdev dgram,id=bsrnet0,local.type=inet,local.host=127.0.0.1,local.port={self.local_port},"
            f"remote.type=inet,remote.host=127.0.0.1,remote.port={self.remote_port} "
            f"-device virtio-net-pci,netdev=bsrnet0,mac={self.mac}"
        )


@dataclass
class GuestSpec:
    name: str
    workdir: Path
    disks: list[Disk] = field(default_factory=list)
    nic: Nic | None = None
    cpus: int = 1
    memory: str = "1G"
    rwdir: Path | None = None
    extra_append: list[str] = field(default_factory=list)


class Guest:
    """A bootable guest.  ``boot()`` may be called again after ``kill()`` or
    ``shutdown()``; disks keep their contents across boots."""

    def __init__(self, spec: GuestSpec, env: KernelEnv) -> None:
        self.spec = spec
        self.env = env
        self.name = spec.name
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._next_id = 1
        self._reader: threading.Thread | None = None
        self._console_file: Any = None
        self.boots = 0
        self.boot_seconds: list[float] = []
        self.kmsg_cursor = -1
        # kernel log records already fetched but not yet checked by the
        # post-test scan (e.g. collected during a clean shutdown)
        self.unchecked: list[list[Any]] = []
        self.kmsg_seen: list[list[Any]] = []

    # ---- paths -------------------------------------------------------
    @property
    def console_path(self) -> Path:
        """Console log of the current (or last) boot; one file per boot
        because QEMU truncates the file it is handed as stdout."""
        return self.spec.workdir / f"{self.name}.boot{max(self.boots, 1)}.console.log"

    @property
    def sock_path(self) -> Path:
        return self.spec.workdir / f"{self.name}.agent.sock"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pythonpath(self) -> str:
        """Modules from the tmpfs zip first (fast), then the repo over 9p."""
        if self.env.pyzip is None:
            return str(self.env.repo)
        return f"{pyzip.GUEST_PATH}:{self.env.repo}"

    @property
    def py(self) -> str:
        """The project's Python inside the guest (the host venv, over 9p)."""
        return str(self.env.venv_python)

    # ---- lifecycle ---------------------------------------------------
    def command_line(self) -> list[str]:
        qemu_opts = [
            f"-chardev socket,id=bsragent,path={self.sock_path},server=on,wait=off",
            "-device virtio-serial-pci",
            "-device virtserialport,chardev=bsragent,name=bsr.agent",
        ]
        for i, disk in enumerate(self.spec.disks):
            qemu_opts.append(disk.qemu_args(i))
        if self.spec.nic is not None:
            qemu_opts.append(self.spec.nic.qemu_args())
        cmd = [
            str(self.env.vng), "-r", str(self.env.vmlinuz),
            "--disable-kvm", "--force-9p", "--verbose",
            "--name", self.name,
            "-p", str(self.spec.cpus), "-m", self.spec.memory,
            "-a", "oops=panic", "-a", "panic_on_warn=0",
            "-a", "hung_task_timeout_secs=60",
            "-a", "modprobe.blacklist=" + ",".join(UNUSED_DRIVERS),
        ]
        for a in self.spec.extra_append:
            cmd += ["-a", a]
        if self.spec.rwdir is not None:
            cmd += ["--rwdir", str(self.spec.rwdir)]
        cmd += [f"-o={' '.join(qemu_opts)}"]
        agent = f"exec /usr/bin/python3 {shlex.quote(str(AGENT))}"
        if self.env.zygote is not None:
            agent = f"{self.env.zygote.server_command(self.env.venv_python, self.pythonpath)} {agent}"
        if self.env.pyzip is not None:
            agent = f"cp {shlex.quote(str(self.env.pyzip))} {pyzip.GUEST_PATH}; {agent}"
        cmd += ["-e", agent]
        return cmd

    def boot(self) -> "Guest":
        if self.alive:
            raise GuestError(f"[{self.name}] already running")
        self.spec.workdir.mkdir(parents=True, exist_ok=True)
        for disk in self.spec.disks:
            disk.ensure()
        if self.sock_path.exists():
            self.sock_path.unlink()
        self.boots += 1
        self._console_file = open(self.console_path, "wb")
        start = time.monotonic()
        env = dict(os.environ)
        env["PATH"] = f"{self.env.venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
        self.proc = subprocess.Popen(
            self.command_line(),
            stdin=subprocess.DEVNULL,
            stdout=self._console_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd="/",
        )
        self.kmsg_cursor = -1
        try:
            self._connect(start + BOOT_TIMEOUT)
            self._wait_ready(start + BOOT_TIMEOUT)
            self._after_boot()
        except BaseException:
            self.kill()
            raise
        self.boot_seconds.append(round(time.monotonic() - start, 1))
        return self

    def _connect(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self.alive:
                raise GuestBootError(f"[{self.name}] QEMU exited during boot\n{self.console_tail()}")
            if self.sock_path.exists():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(str(self.sock_path))
                except OSError:
                    s.close()
                else:
                    self.sock = s
                    self._reader = threading.Thread(target=self._read_loop, args=(s,), daemon=True)
                    self._reader.start()
                    return
            time.sleep(0.1)
        raise GuestBootError(f"[{self.name}] agent socket never appeared\n{self.console_tail()}")

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self.alive:
                raise GuestBootError(f"[{self.name}] QEMU exited during boot\n{self.console_tail()}")
            fut = self._send({"op": "ping"})
            try:
                fut.result(timeout=2.0)
                return
            except Exception:
                with self._lock:
                    self._pending = {k: v for k, v in self._pending.items() if v is not fut}
        raise GuestBootError(
            f"[{self.name}] agent did not answer within {BOOT_TIMEOUT:g}s\n{self.console_tail()}"
        )

    def _after_boot(self) -> None:
        if self.env.zygote is not None:
            r = self.run(f"timeout 120 sh -c 'until test -S {zygote.GUEST_SOCK}; do sleep 0.2; done' || "
                         f"{{ cat {zygote.GUEST_LOG}; exit 1; }}", timeout=150)
            if r.rc != 0:
                raise GuestBootError(f"[{self.name}] tool zygote did not start:\n{r.stdout}{r.stderr}")
        by_serial = self.check(
            "for d in /sys/block/vd*; do [ -e \"$d\" ] && echo \"$(basename $d) $(cat $d/serial)\"; done; true",
            timeout=30,
        ).stdout
        mapping = dict(
            (parts[1], parts[0]) for parts in (ln.split() for ln in by_serial.splitlines()) if len(parts) == 2
        )
        for disk in self.spec.disks:
            if disk.serial not in mapping:
                raise GuestBootError(f"[{self.name}] disk {disk.serial} not visible: {mapping}")
            disk.device = "/dev/" + mapping[disk.serial]
        nic = self.spec.nic
        if nic is not None:
            nic.ifname = self.check(
                "ls /sys/class/net | grep -vx lo | head -n1", timeout=30
            ).stdout.strip()
            self.check(
                f"ip link set dev {nic.ifname} mtu {nic.mtu} up && "
                f"ip addr add {nic.ipv4} dev {nic.ifname} && "
                f"ip -6 addr add {nic.ipv6} dev {nic.ifname} nodad",
                timeout=30,
            )

    def _read_loop(self, s: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                mid = msg.get("id")
                with self._lock:
                    fut = self._pending.pop(mid, None) if mid is not None else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(GuestUnresponsive(f"[{self.name}] connection to agent closed"))

    def _send(self, req: dict[str, Any]) -> Future[dict[str, Any]]:
        fut: Future[dict[str, Any]] = Future()
        if self.sock is None or not self.alive:
            fut.set_exception(GuestUnresponsive(f"[{self.name}] guest is not running"))
            return fut
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            self._pending[rid] = fut
        req = dict(req, id=rid)
        try:
            self.sock.sendall((json.dumps(req) + "\n").encode())
        except OSError as e:
            with self._lock:
                self._pending.pop(rid, None)
            fut.set_exception(GuestUnresponsive(f"[{self.name}] send failed: {e}"))
        return fut

    def _request(self, req: dict[str, Any], bound: float) -> dict[str, Any]:
        fut = self._send(req)
        try:
            reply = fut.result(timeout=bound)
        except TimeoutError:
            raise GuestUnresponsive(
                f"[{self.name}] no reply within {bound:g}s to {req.get('op')} "
                f"{req.get('cmd', '')!r}\n{self.console_tail()}"
            ) from None
        if "error" in reply:
            raise GuestError(f"[{self.name}] agent error: {reply['error']}")
        return reply

    # ---- commands ----------------------------------------------------
    def run_async(self, cmd: str, timeout: float = 60, env: dict[str, str] | None = None) -> "Pending":
        """Start ``cmd`` (bash) in the guest and return at once."""
        path = f"{self.env.venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        guest_env = {"PATH": path, "PYTHONPATH": self.pythonpath}
        if self.env.zygote is not None:
            guest_env["PATH"] = f"{self.env.zygote.bin_dir}:{path}"
            guest_env.update(self.env.zygote.guest_env(self.env.venv_bin))
        guest_env.update(env or {})
        fut = self._send({"op": "run", "cmd": cmd, "timeout": timeout, "env": guest_env})
        return Pending(self, cmd, timeout, fut)

    def run(self, cmd: str, timeout: float = 60, env: dict[str, str] | None = None) -> Result:
        """Run ``cmd`` and return its result; a command over its bound raises
        :class:`CommandTimeout` (the guest-side process group is killed)."""
        return self.run_async(cmd, timeout, env).wait()

    def check(self, cmd: str, timeout: float = 60, env: dict[str, str] | None = None) -> Result:
        """Like :meth:`run` but a nonzero exit raises :class:`CommandFailed`."""
        result = self.run(cmd, timeout, env)
        if result.rc != 0:
            raise CommandFailed(self.name, cmd, result)
        return result

    def tcp(self, port: int, line: str, timeout: float = 60) -> str:
        """Send ``line`` to guest-local TCP ``port``; what comes back until the
        peer closes.  Raises :class:`GuestError` when nothing listens or the
        exchange outlives ``timeout``."""
        reply = self._request({"op": "tcp", "port": port, "line": line, "timeout": timeout},
                              timeout + 20)
        return reply["stdout"]

    def kmsg(self, timeout: float = 20) -> list[list[Any]]:
        """Kernel log records [seq, level, text] not fetched before."""
        reply = self._request({"op": "kmsg", "since": self.kmsg_cursor}, timeout)
        records: list[list[Any]] = reply["records"]
        if records:
            self.kmsg_cursor = records[-1][0]
        self.kmsg_seen.extend(records)
        self.unchecked.extend(records)
        return records

    def dmesg(self, timeout: float = 20) -> str:
        return self.check("dmesg", timeout=timeout).stdout

    # ---- kernel module helpers ----------------------------------------
    def insmod(self, ko: Path | str, params: str = "") -> None:
        self.check(f"insmod {shlex.quote(str(ko))} {params}", timeout=60)

    def module_loaded(self, name: str) -> bool:
        return self.run(f"test -d /sys/module/{name}/sections", timeout=20).rc == 0

    def rmmod(self, name: str) -> None:
        if self.module_loaded(name):
            self.check(f"rmmod {name}", timeout=60)

    # ---- ending a boot -------------------------------------------------
    def kill(self) -> None:
        """SIGKILL QEMU: the node dies without flushing anything."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        self._close()

    def shutdown(self, timeout: float = 60) -> None:
        """Clean power-off; the remaining kernel log is kept for the scan."""
        if not self.alive:
            self._close()
            return
        try:
            self.kmsg(timeout=20)
            self._request({"op": "shutdown"}, 20)
            assert self.proc is not None
            self.proc.wait(timeout=timeout)
        except (GuestError, subprocess.TimeoutExpired):
            self.kill()
        self._close()

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if self._console_file is not None:
            self._console_file.close()
            self._console_file = None

    # ---- logs ----------------------------------------------------------
    def console_text(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def console_tail(self, lines: int = 80) -> str:
        text = self.console_text().splitlines()[-lines:]
        return f"--- console of {self.name}, boot {self.boots} ({self.console_path}) ---\n" + "\n".join(text)


@dataclass
class Pending:
    """A command started with :meth:`Guest.run_async`."""

    guest: Guest
    cmd: str
    timeout: float
    future: Future[dict[str, Any]]

    def done(self) -> bool:
        return self.future.done()

    def wait(self) -> Result:
        try:
            reply = self.future.result(timeout=self.timeout + REPLY_GRACE)
        except TimeoutError:
            raise GuestUnresponsive(
                f"[{self.guest.name}] no reply within {self.timeout + REPLY_GRACE:g}s to: {self.cmd}\n"
                f"{self.guest.console_tail()}"
            ) from None
        if "error" in reply:
            raise GuestError(f"[{self.guest.name}] agent error: {reply['error']}")
        result = Result(
            rc=reply["rc"], stdout=reply["stdout"], stderr=reply["stderr"],
            seconds=reply.get("seconds", 0.0), timed_out=reply.get("timed_out", False),
        )
        if result.timed_out:
            raise CommandTimeout(self.guest.name, self.cmd, self.timeout, result)
        return result
