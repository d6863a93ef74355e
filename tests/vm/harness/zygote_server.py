"""Pre-imported Python for the command-line tools inside a test guest.

Under TCG a Python tool spends 4-6 s just starting (interpreter, site,
imports) before it does 50 ms of real work, and the guest tests run
thousands of bsradm/bsrsetup commands.  This server starts once per boot
under the project's interpreter, imports the tools' entry modules, and then
forks one child per request: the child takes over the caller's stdin,
stdout and stderr, argv, environment and working directory, and runs the
tool's ``main()`` exactly as the console script would.

The caller is ``zygote_client`` (C), installed under each tool's name ahead
of the virtualenv on the guest's PATH.  Wire format, one request per
connection:

    client -> server  u32 length, then NUL-terminated fields:
                      tool, cwd, argc, argv[0..argc), envc, env[0..envc)
                      with the client's fds 0, 1, 2 as SCM_RIGHTS
    client -> server  later single bytes: a signal number to deliver to the
                      child's process group (the client forwards what it gets)
    server -> client  i32 exit status (0-255, or 128+N when killed by N)

When the client goes away (killed by a test's timeout), the child's process
group is killed.  Standard library only; never imported by the host.
"""
from __future__ import annotations

import atexit
import errno
import importlib
import io
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import traceback

MAX_REQUEST = 1 << 20


def parse_request(data: bytes) -> tuple[str, str, list[str], dict[str, str]]:
    fields = data.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    text = [f.decode("utf-8", "surrogateescape") for f in fields]
    tool, cwd, argc_s = text[0], text[1], text[2]
    argc = int(argc_s)
    argv = text[3:3 + argc]
    envc = int(text[3 + argc])
    env: dict[str, str] = {}
    for item in text[4 + argc:4 + argc + envc]:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return tool, cwd, argv, env


def read_request(conn: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if len(data) < 4:
        while len(data) < 4:
            more = conn.recv(4 - len(data))
            if not more:
                raise ConnectionError("short request")
            data += more
    (length,) = struct.unpack("<I", data[:4])
    if length > MAX_REQUEST:
        raise ConnectionError(f"request of {length} bytes")
    body = data[4:]
    while len(body) < length:
        more = conn.recv(length - len(body))
        if not more:
            raise ConnectionError("short request")
        body += more
    return body, list(fds)


def exit_code(value: object) -> int:
    """What the interpreter would exit with for ``sys.exit(value)``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def run_child(entry: str, fds: list[int], cwd: str, argv: list[str], env: dict[str, str]) -> None:
    """In the forked child: become the tool and never return."""
    code = 1
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      line_buffering=os.isatty(1))
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        module, _, func = entry.partition(":")
        code = exit_code(getattr(importlib.import_module(module), func)())
    except SystemExit as e:
        code = exit_code(e.code)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # what the interpreter prints for an uncaught error
        traceback.print_exc()
        code = 1
    finally:
        try:
            threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads
            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                code = code or 120  # as the interpreter does when flushing fails
        os._exit(code)


class Server:
    def __init__(self, path: str, entries: dict[str, str]) -> None:
        self.entries = entries
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener.bind(path + ".new")
        self.listener.listen(64)
        os.rename(path + ".new", path)  # clients only ever see a ready socket
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        self.children: dict[int, socket.socket] = {}  # pid -> client connection
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "sigchld")

    def serve(self) -> None:
        while True:
            for key, _ in self.sel.select():
                if key.data == "accept":
                    self.accept()
                elif key.data == "sigchld":
                    self.reap()
                else:
                    self.from_client(key.fileobj, key.data)  # type: ignore[arg-type]

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(10)
            body, fds = read_request(conn)
            tool, cwd, argv, env = parse_request(body)
            entry = self.entries[tool]
            if len(fds) != 3:
                raise ConnectionError(f"{len(fds)} fds")
        except (OSError, ValueError, IndexError, KeyError, ConnectionError) as e:
            print(f"zygote: bad request: {e!r}", file=sys.stderr, flush=True)
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            self.sel.close()
            self.listener.close()
            conn.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            run_child(entry, fds, cwd, argv, env)
        for fd in fds:
            os.close(fd)
        try:
            os.setpgid(pid, pid)  # no race with the child's own setpgid
        except OSError:
            pass
        conn.setblocking(False)
        self.children[pid] = conn
        self.sel.register(conn, selectors.EVENT_READ, pid)

    def from_client(self, conn: socket.socket, pid: int) -> None:
        try:
            data = conn.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        signals = list(data) if data else [signal.SIGKILL]
        for sig in signals:
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
        if not data:  # the caller is gone: nobody will read a status
            self.sel.unregister(conn)

    def reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            try:
                self.sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            try:
                conn.setblocking(True)
                conn.sendall(struct.pack("<i", code))
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                    print(f"zygote: status for {pid}: {e}", file=sys.stderr, flush=True)
            conn.close()


def main(argv: list[str]) -> int:
    """``zygote_server.py SOCKET TOOL=module:func... [+module...]``"""
    path, specs = argv[0], argv[1:]
    entries: dict[str, str] = {}
    for spec in specs:
        if spec.startswith("+"):  # only a speed-up: a missing one is not fatal
            try:
                importlib.import_module(spec[1:])
            except ImportError as e:
                print(f"zygote: preload {spec[1:]}: {e}", file=sys.stderr, flush=True)
            continue
        tool, _, entry = spec.partition("=")
        importlib.import_module(entry.partition(":")[0])
        entries[tool] = entry
    Server(path, entries).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
