"""Admin actions: which key runs which ``bsradm`` command, and running it.

Commands follow drbdadm's CLI (``bsradm primary r0``, ``verify r0:node-b/0``).
The target is the selected object: a resource, a volume, a peer (its
connection name) or a peer volume; each action uses as much of it as its
command accepts.  Commands run asynchronously with a timeout; every run is
kept as a :class:`Task` (command, exit code, output) for the task log.
"""

from __future__ import annotations

import asyncio
import enum
import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable


class Scope(enum.Enum):
    resource = "resource"  # r0
    peer = "peer"  # r0[:peer]
    volume = "volume"  # r0[/vol]
    peer_volume = "peer-volume"  # r0[:peer][/vol]


@dataclass(frozen=True)
class Target:
    resource: str
    peer: str | None = None  # connection name, as drbdadm's res:peer
    volume: int | None = None

    def spec(self, scope: Scope) -> str:
        s = self.resource
        if self.peer and scope in (Scope.peer, Scope.peer_volume):
            s += f":{self.peer}"
        if self.volume is not None and scope in (Scope.volume, Scope.peer_volume):
            s += f"/{self.volume}"
        return s


@dataclass(frozen=True)
class Action:
    key: str
    name: str
    args: tuple[str, ...]
    scope: Scope
    dangerous: bool = False
    help: str = ""

    def argv(self, command: str, target: Target) -> list[str]:
        sub, *opts = self.args
        return [*shlex.split(command), sub, *opts, target.spec(self.scope)]


ACTIONS: tuple[Action, ...] = (
    Action("p", "primary", ("primary",), Scope.resource, help="promote the resource"),
    Action("s", "secondary", ("secondary",), Scope.resource, help="demote the resource"),
    Action("v", "verify", ("verify",), Scope.peer_volume, help="start online verify"),
    Action("a", "adjust", ("adjust",), Scope.resource, help="apply the configuration"),
    Action("c", "connect", ("connect",), Scope.peer, help="connect to the peer(s)"),
    Action("d", "disconnect", ("disconnect",), Scope.peer, help="disconnect the peer(s)"),
    Action("z", "pause-sync", ("pause-sync",), Scope.peer_volume, help="pause resync"),
    Action("r", "resume-sync", ("resume-sync",), Scope.peer_volume, help="resume resync"),
    Action("P", "primary --force", ("primary", "--force"), Scope.resource, dangerous=True,
           help="promote even without UpToDate data"),
    Action("i", "invalidate", ("invalidate",), Scope.volume, dangerous=True,
           help="discard local data, resync from a peer"),
    Action("I", "invalidate-remote", ("invalidate-remote",), Scope.peer_volume, dangerous=True,
           help="make the peer resync from here"),
    Action("D", "connect --discard-my-data", ("connect", "--discard-my-data"), Scope.peer,
           dangerous=True, help="resolve split brain: this node loses its changes"),
)


def action_for_key(key: str) -> Action | None:
    return next((a for a in ACTIONS if a.key == key), None)


class TaskState(enum.Enum):
    running = "running"
    ok = "ok"
    failed = "failed"
    timeout = "timeout"
    error = "error"  # could not be started


@dataclass
class Task:
    id: int
    argv: list[str]
    started: datetime
    state: TaskState = TaskState.running
    rc: int | None = None
    output: str = ""
    seconds: float = 0.0
    quiet: bool = False  # a background query, not an admin action

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def result(self) -> str:
        if self.state is TaskState.running:
            return "running"
        if self.state is TaskState.timeout:
            return f"timeout after {self.seconds:.0f}s"
        if self.state is TaskState.error:
            return "not started"
        return f"exit {self.rc}"


@dataclass
class TaskRunner:
    """Runs commands one per call, never blocking the event loop."""

    timeout: float = 30.0
    on_change: Callable[[Task], None] | None = None
    keep: int = 200
    tasks: list[Task] = field(default_factory=list)
    _next: int = 1

    async def run(self, argv: list[str], *, quiet: bool = False) -> Task:
        task = Task(self._next, argv, datetime.now().astimezone(), quiet=quiet)
        self._next += 1
        self.tasks.append(task)
        del self.tasks[:-self.keep]
        self._notify(task)
        t0 = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except (OSError, ValueError) as e:
            task.state, task.output = TaskState.error, str(getattr(e, "strerror", None) or e)
            self._notify(task)
            return task
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
            task.rc = proc.returncode
            task.state = TaskState.ok if proc.returncode == 0 else TaskState.failed
            task.output = out.decode("utf-8", "replace")
        except asyncio.TimeoutError:
            _kill_group(proc)
            await proc.wait()
            task.state, task.rc = TaskState.timeout, proc.returncode
        except asyncio.CancelledError:  # bsrwatch is quitting: leave nothing behind
            _kill_group(proc)
            await proc.communicate()
            raise
        finally:
            task.seconds = time.monotonic() - t0
        self._notify(task)
        return task

    def _notify(self, task: Task) -> None:
        if self.on_change is not None:
            self.on_change(task)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
